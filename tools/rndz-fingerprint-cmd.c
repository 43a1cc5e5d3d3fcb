/* rndz-fingerprint-cmd.c: `rndz fingerprint`, the fingerprint of an identity
 *
 * SPDX-License-Identifier: MIT
 *
 *   rndz fingerprint FILE
 *
 * Prints, on one line, the fingerprint of the identity in FILE (as
 * `rndz client --identity FILE` made it): what the peers of its owner
 * give to --peer-fingerprint. Unlike --identity, it never creates FILE:
 * a missing file is an error, not a new identity.
 */

#include <stdlib.h>

#include <glib/gi18n.h>

#include <rndz-glib/rndz.h>

#include "rndz-tool.h"

/* The library's errors name the file and say what is wrong with it */
static RndzIdentity *
load_existing_identity (const char  *path,
                        GError     **error)
{
  /* rndz_identity_new_from_file() creates a missing file; this command
   * only reads. G_FILE_TEST_EXISTS follows symbolic links, so a dangling
   * one is missing too, and nothing is made where it points. */
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("No identity file “%s”"), path);
      return NULL;
    }

  return rndz_identity_new_from_file (path, error);
}

int
rndz_tool_fingerprint_main (int    argc,
                            char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(RndzIdentity) identity = NULL;
  g_autoptr(GError) error = NULL;

  context = g_option_context_new (_("FILE"));
  g_option_context_set_summary (context, _("Print the fingerprint of the identity in FILE, which “rndz client --identity FILE” made, for its peers’ --peer-fingerprint. FILE is not created when it is missing."));

  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      rndz_tool_print_error ("%s", error->message);
      return EXIT_FAILURE;
    }
  if (argc < 2)
    {
      rndz_tool_print_error (_("No identity file given"));
      return EXIT_FAILURE;
    }
  if (argc > 2)
    {
      rndz_tool_print_error (_("Unexpected argument “%s”"), argv[2]);
      return EXIT_FAILURE;
    }

  identity = load_existing_identity (argv[1], &error);
  if (identity == NULL)
    {
      rndz_tool_print_error ("%s", error->message);
      return EXIT_FAILURE;
    }

  g_print ("%s\n", rndz_identity_get_fingerprint (identity));
  return EXIT_SUCCESS;
}
