/* rndz.c: the rndz command line tool
 *
 * SPDX-License-Identifier: MIT
 *
 * One program, four modes, with the options of the Rust rndz so that
 * existing scripts keep working:
 *
 *   rndz server [--listen-addr ADDRESS:PORT] [limits…]      rndz-server-cmd.c
 *   rndz client --id ID --server-addr HOST:PORT [--remote-peer PEER] [--tcp]
 *                                                          rndz-client-cmd.c
 *   rndz key --id ID [--secret-file FILE]                  rndz-key-cmd.c
 *   rndz fingerprint FILE                                  rndz-fingerprint-cmd.c
 *
 * This file sets up the locale and the translations, reads the options
 * before the mode (--help, --version) and runs the mode; the modes share
 * the helpers of rndz-tool.c. A mode that this build leaves out
 * (-Dserver=false, -Dclient=false) says so.
 */

#include <locale.h>
#include <stdlib.h>

#include <glib/gi18n.h>
#include <gio/gio.h>

#include <rndz-glib/rndz.h>

#include "rndz-tool.h"

static gboolean show_version = FALSE;

static const GOptionEntry main_entries[] = {
  { "version", 0, 0, G_OPTION_ARG_NONE, &show_version,
    N_("Print the version and exit"), NULL },
  { NULL }
};

static int
run_mode (const char  *mode,
          int          argc,
          char       **argv)
{
  g_autofree char *prgname = NULL;

  /* Like gio(1): "rndz server" in the usage line and in errors */
  prgname = g_strdup_printf ("%s %s", g_get_prgname (), mode);
  g_set_prgname (prgname);

  if (g_str_equal (mode, "key"))
    return rndz_tool_key_main (argc, argv);
  if (g_str_equal (mode, "fingerprint"))
    return rndz_tool_fingerprint_main (argc, argv);

  if (g_str_equal (mode, "server"))
    {
#ifdef RNDZ_HAVE_SERVER
      return rndz_tool_server_main (argc, argv);
#else
      rndz_tool_print_error (_("The server mode is not built into this program (rndz-glib was configured with -Dserver=false)"));
      return EXIT_FAILURE;
#endif
    }

#ifdef RNDZ_HAVE_CLIENT
  return rndz_tool_client_main (argc, argv);
#else
  rndz_tool_print_error (_("The client mode is not built into this program (rndz-glib was configured with -Dclient=false)"));
  return EXIT_FAILURE;
#endif
}

static void
setup_locale (void)
{
  setlocale (LC_ALL, "");
  /* RNDZ_LOCALEDIR runs translations from a build tree */
  bindtextdomain (GETTEXT_PACKAGE, g_getenv ("RNDZ_LOCALEDIR") != NULL ? g_getenv ("RNDZ_LOCALEDIR")
                                                                       : RNDZ_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *prgname = NULL;

  setup_locale ();

  prgname = g_path_get_basename (argc > 0 && argv[0] != NULL ? argv[0] : "rndz");
  g_set_prgname (prgname);

  /* Debug messages go to stderr: stdout is for scripts */
  g_log_writer_default_set_use_stderr (TRUE);

  context = g_option_context_new (_("MODE"));
  g_option_context_set_summary (context, _("NAT traversal by rendezvous.\n\n"
                                           "Modes:\n"
                                           "  server       Run a rendezvous server\n"
                                           "  client       Register with a rendezvous server and echo what peers send,\n"
                                           "               or reach a peer through it and exchange a message\n"
                                           "  key          Print a peer’s key, derived from a server’s secret\n"
                                           "  fingerprint  Print the fingerprint of an identity file"));
  g_option_context_set_description (context, _("Run “rndz MODE --help” for the options of a mode."));
  g_option_context_add_main_entries (context, main_entries, GETTEXT_PACKAGE);
  /* Stop at the mode: what follows it is the mode's business */
  g_option_context_set_strict_posix (context, TRUE);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      rndz_tool_print_error ("%s", error->message);
      return EXIT_FAILURE;
    }

  if (show_version)
    {
      g_print ("%s %s\n", g_get_prgname (), RNDZ_VERSION_S);
      return EXIT_SUCCESS;
    }

  if (argc < 2)
    {
      rndz_tool_print_error (_("No mode given; run “%s --help” for the modes"), g_get_prgname ());
      return EXIT_FAILURE;
    }

  if (!g_str_equal (argv[1], "server") && !g_str_equal (argv[1], "client") &&
      !g_str_equal (argv[1], "key") && !g_str_equal (argv[1], "fingerprint"))
    {
      rndz_tool_print_error (_("Unknown mode “%s”: expected “server”, “client”, “key” or “fingerprint”"),
                             argv[1]);
      return EXIT_FAILURE;
    }

  rndz_tool_raise_descriptor_limit ();
  return run_mode (argv[1], argc - 1, argv + 1);
}
