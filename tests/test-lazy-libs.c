/* test-lazy-libs.c: what the rndz program loads, and when
 *
 * SPDX-License-Identifier: MIT
 *
 * rndz-glib opens GnuTLS when the first identity is made (rndz-gnutls.c),
 * not at start-up: a program that never makes one, such as
 * `rndz --version` or `rndz client --insecure`, does not load it, nor
 * p11-kit, libtasn1, Nettle, GMP and the rest it brings. The dynamic
 * loader says what it opens with LD_DEBUG=libs.
 */

#include <gio/gio.h>
#include <signal.h>
#include <string.h>

#include "rndz-test-program.h"
#include "rndz-test-util.h"

static const char * const ld_debug_env[] = { "LD_DEBUG", "libs", NULL };

/* What the loader said while @argv ran, and its exit status */
static char *
run_traced (const char * const *argv,
            int                *status)
{
  g_autofree char *out = NULL;
  char *err = NULL;

  *status = rndz_test_run_program (argv, ld_debug_env, &out, &err);
  /* The loader did speak: this is not an empty log */
  g_assert_nonnull (strstr (err, "libglib-2.0.so"));
  return err;
}

static void
test_version (void)
{
  const char *argv[] = { rndz_test_tool_path (), "--version", NULL };
  g_autofree char *loaded = NULL;
  int status;

  g_test_summary ("rndz --version does not load GnuTLS");

  loaded = run_traced (argv, &status);
  g_assert_cmpint (status, ==, 0);
  g_assert_null (strstr (loaded, "libgnutls"));
}

/* "Listening on ADDRESS" → ADDRESS */
static char *
start_server (RndzTestProgram **server)
{
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0", NULL };
  g_autofree char *line = NULL;

  *server = rndz_test_program_start (argv, NULL, NULL, NULL);
  line = rndz_test_program_read_line (*server);
  g_assert_true (g_str_has_prefix (line, "Listening on "));
  return g_strdup (line + strlen ("Listening on "));
}

static void
test_connector (void)
{
  g_autoptr(RndzTestProgram) server = NULL;
  g_autofree char *address = start_server (&server);
  g_autofree char *plain = NULL, *secure = NULL;
  const char *plain_argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                               "--server-addr", address, "--remote-peer", "nobody",
                               "--insecure", NULL };
  const char *secure_argv[] = { rndz_test_tool_path (), "client", "--id", "carol",
                                "--server-addr", address, "--remote-peer", "nobody", NULL };
  int status;

  g_test_summary ("rndz client --insecure does not load GnuTLS; the default, secure, "
                  "client loads it for its identity");

  /* Both ask for a peer that is not there: the server answers at once */
  plain = run_traced (plain_argv, &status);
  g_assert_cmpint (status, ==, 1);
  g_assert_null (strstr (plain, "libgnutls"));

  secure = run_traced (secure_argv, &status);
  g_assert_cmpint (status, ==, 1);
  g_assert_nonnull (strstr (secure, "libgnutls"));

  g_assert_cmpint (rndz_test_program_stop (server, SIGTERM), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  if (!g_file_test (rndz_test_tool_path (), G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("RNDZ_TOOL does not name the rndz program");
      return g_test_run ();
    }

  g_test_add_func ("/lazy-libs/version", test_version);
  g_test_add_func ("/lazy-libs/connector", test_connector);

  return g_test_run ();
}
