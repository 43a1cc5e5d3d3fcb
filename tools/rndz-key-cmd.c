/* rndz-key-cmd.c: `rndz key`, a peer's key from a server's secret
 *
 * SPDX-License-Identifier: MIT
 *
 *   rndz key --id ID [--secret-file FILE]
 *
 * Prints the key in hexadecimal, for the peer's --key-file.
 */

#include <stdlib.h>

#include <glib/gi18n.h>

#include <rndz-glib/rndz.h>

#include "rndz-tool.h"

static char *key_secret_file = NULL;
static char *key_id = NULL;

static const GOptionEntry key_entries[] = {
  { "secret-file", 0, 0, G_OPTION_ARG_FILENAME, &key_secret_file,
    N_("The server’s secret, in FILE (or in the RNDZ_SECRET environment variable)"), N_("FILE") },
  { "id", 0, 0, G_OPTION_ARG_STRING, &key_id,
    N_("The id of the peer (required)"), N_("ID") },
  { NULL }
};

int
rndz_tool_key_main (int    argc,
                    char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GBytes) secret = NULL;
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *hex = NULL;
  int status = EXIT_FAILURE;

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, _("Print the key of a peer, derived from the server’s secret, for the peer’s --key-file."));
  g_option_context_add_main_entries (context, key_entries, GETTEXT_PACKAGE);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    rndz_tool_print_error ("%s", error->message);
  else if (argc > 1)
    rndz_tool_print_error (_("Unexpected argument “%s”"), argv[1]);
  else if (key_id == NULL)
    rndz_tool_print_error (_("The option --id is required"));
  else if ((secret = rndz_tool_read_secret (key_secret_file, "RNDZ_SECRET", &error)) == NULL)
    rndz_tool_print_error ("%s", error != NULL ? error->message
                                               : _("No secret: give --secret-file or set RNDZ_SECRET"));
  else
    {
      key = rndz_derive_key (secret, key_id);
      hex = rndz_key_to_hex (key);
      g_print ("%s\n", hex);
      status = EXIT_SUCCESS;
    }

  g_clear_pointer (&key_secret_file, g_free);
  g_clear_pointer (&key_id, g_free);
  return status;
}
