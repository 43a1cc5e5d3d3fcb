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

/* A pin no identity has */
#define NOBODY_FINGERPRINT \
  "0000000000000000000000000000000000000000000000000000000000000000"

/* A server, files in a directory of their own, and the listener "alice" */
typedef struct
{
  char *dir;
  char *address;                /* "127.0.0.1:PORT" */
  RndzTestProgram *server;
  RndzTestProgram *listener;
  char *listener_err;
  char *fingerprint;            /* what the listener printed */
} Fixture;

static char *
fixture_path (Fixture    *fixture,
              const char *name)
{
  return g_build_filename (fixture->dir, name, NULL);
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  user_data)
{
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                         "--forward-timeout", "1", NULL };
  g_autofree char *line = NULL;

  fixture->dir = g_dir_make_tmp ("rndz-tool-secure-XXXXXX", NULL);
  g_assert_nonnull (fixture->dir);
  fixture->server = rndz_test_program_start (argv, NULL, NULL, NULL);
  line = rndz_test_program_read_line (fixture->server);
  g_assert_true (g_str_has_prefix (line, "Listening on 127.0.0.1:"));
  fixture->address = g_strdup (line + strlen ("Listening on "));
  fixture->listener_err = fixture_path (fixture, "alice.err");
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  g_clear_pointer (&fixture->listener, rndz_test_program_free);
  g_assert_cmpint (rndz_test_program_stop (fixture->server, SIGTERM), ==, 0);
  g_clear_pointer (&fixture->server, rndz_test_program_free);

  dir = g_dir_open (fixture->dir, 0, NULL);
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = fixture_path (fixture, name);

      g_unlink (path);
    }
  g_rmdir (fixture->dir);
  g_free (fixture->dir);
  g_free (fixture->address);
  g_free (fixture->listener_err);
  g_free (fixture->fingerprint);
}

/* Starts alice, listening over @tcp or UDP with the @extra options (up to
 * three, NULL-terminated), and reads what she prints once registered:
 * secure, her fingerprint, which goes to fixture->fingerprint */
static void
start_listener (Fixture     *fixture,
                gboolean     tcp,
                gboolean     secure,
                const char **extra)
{
  const char *argv[12] = { rndz_test_tool_path (), "client", "--id", "alice",
                           "--server-addr", fixture->address, "--verbose", NULL };
  guint n = 7;
  g_autofree char *line = NULL;

  if (tcp)
    argv[n++] = "--tcp";
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    argv[n++] = extra[i];
  g_assert_cmpuint (n, <, G_N_ELEMENTS (argv));

  fixture->listener = rndz_test_program_start (argv, NULL, fixture->listener_err, NULL);
  line = rndz_test_program_read_line (fixture->listener);
  g_assert_true (g_str_has_prefix (line, "Registered as alice on port "));
  if (!secure)
    return;

  g_clear_pointer (&line, g_free);
  line = rndz_test_program_read_line (fixture->listener);
  g_assert_true (g_str_has_prefix (line, "Fingerprint: "));
  fixture->fingerprint = g_strdup (line + strlen ("Fingerprint: "));
  g_assert_cmpuint (strlen (fixture->fingerprint), ==, 64);
}

/* Stops alice, and returns what she said on standard error */
static char *
stop_listener (Fixture *fixture)
{
  char *err = NULL;

  g_assert_cmpint (rndz_test_program_stop (fixture->listener, SIGTERM), ==, 0);
  g_assert_true (g_file_get_contents (fixture->listener_err, &err, NULL, NULL));
  return err;
}

/* `rndz fingerprint PATH`, which must succeed */
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

/* "ab12…" as "AB:12:…": another spelling the options accept */
static char *
colon_form (const char *fingerprint)
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; fingerprint[i] != '\0'; i += 2)
    g_string_append_printf (text, "%s%c%c", i > 0 ? ":" : "",
                            g_ascii_toupper (fingerprint[i]), g_ascii_toupper (fingerprint[i + 1]));
  return g_string_free (text, FALSE);
}

static void
assert_mode_0600 (const char *path)
{
  GStatBuf st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
}

static void
test_exchange (Fixture       *fixture,
               gconstpointer  user_data)
{
  gboolean tcp = GPOINTER_TO_INT (user_data);
  g_autofree char *alice_file = fixture_path (fixture, "alice.pem");
  g_autofree char *bob_file = fixture_path (fixture, "bob.pem");
  const char *alice_options[] = { "--identity", alice_file, NULL };
  g_autofree char *alice_fingerprint = NULL, *bob_fingerprint = NULL, *pin = NULL;
  g_autofree char *out = NULL, *err = NULL, *alice_err = NULL, *expected = NULL;

  g_test_summary ("Two rndz clients, secure by default, exchange a message over DTLS or "
                  "TLS; each prints the other's fingerprint, which is what rndz fingerprint "
                  "says of its identity file, made with mode 0600");

  start_listener (fixture, tcp, TRUE, alice_options);
  assert_mode_0600 (alice_file);
  alice_fingerprint = fingerprint_of (alice_file);
  g_assert_cmpstr (fixture->fingerprint, ==, alice_fingerprint);

  /* Pinned in another spelling of the same fingerprint */
  pin = colon_form (fixture->fingerprint);
  {
    const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                           "--server-addr", fixture->address, "--remote-peer", "alice",
                           "--message", "a secret", "--identity", bob_file,
                           "--peer-fingerprint", pin, tcp ? "--tcp" : NULL, NULL };

    g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 0);
  }
  g_assert_cmpstr (out, ==, "a secret\n");
  expected = g_strdup_printf ("Peer “alice” has the fingerprint %s\n", alice_fingerprint);
  g_assert_nonnull (strstr (err, expected));

  assert_mode_0600 (bob_file);
  bob_fingerprint = fingerprint_of (bob_file);
  g_assert_cmpstr (bob_fingerprint, !=, alice_fingerprint);
  alice_err = stop_listener (fixture);
  g_clear_pointer (&expected, g_free);
  expected = g_strdup_printf ("Peer “bob” has the fingerprint %s\n", bob_fingerprint);
  g_assert_nonnull (strstr (alice_err, expected));
}

static void
test_identity_kept (Fixture       *fixture,
                    gconstpointer  user_data)
{
  g_autofree char *alice_file = fixture_path (fixture, "alice.pem");
  const char *alice_options[] = { "--identity", alice_file, NULL };
  g_autofree char *first = NULL, *err = NULL;

  g_test_summary ("An identity file, once made, is used again: the same fingerprint; "
                  "without --identity, each run has a new one");

  start_listener (fixture, FALSE, TRUE, alice_options);
  first = g_strdup (fixture->fingerprint);
  err = stop_listener (fixture);
  g_clear_pointer (&fixture->listener, rndz_test_program_free);
  g_clear_pointer (&fixture->fingerprint, g_free);

  start_listener (fixture, FALSE, TRUE, alice_options);
  g_assert_cmpstr (fixture->fingerprint, ==, first);
  g_clear_pointer (&err, g_free);
  err = stop_listener (fixture);
  g_clear_pointer (&fixture->listener, rndz_test_program_free);
  g_clear_pointer (&fixture->fingerprint, g_free);

  start_listener (fixture, FALSE, TRUE, NULL);
  g_assert_cmpstr (fixture->fingerprint, !=, first);
}

static void
test_wrong_pin (Fixture       *fixture,
                gconstpointer  user_data)
{
  gboolean tcp = GPOINTER_TO_INT (user_data);
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                         "--server-addr", fixture->address, "--remote-peer", "alice",
                         "--peer-fingerprint", NOBODY_FINGERPRINT, "--timeout", "10",
                         tcp ? "--tcp" : NULL, NULL };
  g_autofree char *out = NULL, *err = NULL, *alice_err = NULL;
  gint64 start;

  g_test_summary ("A connector whose --peer-fingerprint is not the listener's fails "
                  "within 3 s, saying so, and sends nothing");

  start_listener (fixture, tcp, TRUE, NULL);
  start = g_get_monotonic_time ();
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 3 * G_USEC_PER_SEC);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "does not have the fingerprint " NOBODY_FINGERPRINT));
  g_assert_nonnull (strstr (err, "--peer-fingerprint"));

  /* Nor does a plain connector reach a secure listener, and it is told why */
  argv[8] = "--insecure";
  argv[9] = "--verbose";
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "does not answer --insecure"));

  /* Nothing came through to be echoed */
  alice_err = stop_listener (fixture);
  g_assert_null (strstr (alice_err, "Echoing"));
}

static void
test_long_message (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autofree char *message = g_strnfill (4000, 'x');
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                         "--server-addr", fixture->address, "--remote-peer", "alice",
                         "--message", message, NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_test_summary ("A message too long for one DTLS record fails at once, saying so, "
                  "instead of being resent until the timeout");

  start_listener (fixture, FALSE, TRUE, NULL);
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "too long for a secure datagram"));
}

/* Runs bob (with the identity file @identity) against alice; returns
 * his exit status */
static int
run_bob (Fixture    *fixture,
         const char *identity,
         gboolean    tcp)
{
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                         "--server-addr", fixture->address, "--remote-peer", "alice",
                         "--identity", identity, "--message", "pinned", "--timeout", "5",
                         tcp ? "--tcp" : NULL, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = rndz_test_run_program (argv, NULL, &out, &err);

  g_assert_cmpstr (out, ==, status == 0 ? "pinned\n" : "");
  return status;
}

static void
test_listener_pin (Fixture       *fixture,
                   gconstpointer  user_data)
{
  gboolean tcp = GPOINTER_TO_INT (user_data);
  g_autofree char *bob_file = fixture_path (fixture, "bob.pem");
  g_autofree char *carol_file = fixture_path (fixture, "carol.pem");
  g_autofree char *bob_fingerprint = NULL, *carol_fingerprint = NULL;
  const char *options[] = { "--peer-fingerprint", NULL, NULL };
  const char *make[] = { rndz_test_tool_path (), "client", "--id", "bob",
                         "--server-addr", "127.0.0.1:1", "--identity", NULL,
                         "--remote-peer", "alice", "--timeout", "1", NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_test_summary ("A listener with --peer-fingerprint lets in the peer with that "
                  "fingerprint, and no other");

  /* Bob's identity file, made by a run that reaches nobody */
  make[7] = bob_file;
  g_assert_cmpint (rndz_test_run_program (make, NULL, &out, &err), ==, 1);
  bob_fingerprint = fingerprint_of (bob_file);

  options[1] = bob_fingerprint;
  start_listener (fixture, tcp, TRUE, options);
  g_assert_cmpint (run_bob (fixture, bob_file, tcp), ==, 0);
  g_assert_cmpint (run_bob (fixture, carol_file, tcp), ==, 1);
  carol_fingerprint = fingerprint_of (carol_file);
  g_assert_cmpstr (carol_fingerprint, !=, bob_fingerprint);
}

static void
test_insecure (Fixture       *fixture,
               gconstpointer  user_data)
{
  gboolean tcp = GPOINTER_TO_INT (user_data);
  const char *insecure[] = { "--insecure", NULL };
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                         "--server-addr", fixture->address, "--remote-peer", "alice",
                         "--message", "in the clear", "--insecure", tcp ? "--tcp" : NULL, NULL };
  g_autofree char *out = NULL, *err = NULL, *alice_err = NULL, *rest = NULL;

  g_test_summary ("With --insecure on both sides, the plain exchange of before: the "
                  "same output, no fingerprint anywhere; without it on one side, a clear "
                  "failure");

  start_listener (fixture, tcp, FALSE, insecure);
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 0);
  g_assert_cmpstr (out, ==, "in the clear\n");
  g_assert_null (strstr (err, "fingerprint"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* A secure connector is told why it cannot reach a plain listener */
  argv[10] = tcp ? "--tcp" : NULL;
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "securely"));
  g_assert_nonnull (strstr (err, "--insecure"));

  alice_err = stop_listener (fixture);
  g_assert_null (strstr (alice_err, "fingerprint"));
  g_assert_nonnull (strstr (alice_err, "Echoing"));
  /* Nothing on standard output after "Registered as …" */
  rest = rndz_test_program_try_read_line (fixture->listener);
  g_assert_null (rest);
}

static void
test_second_signal (Fixture       *fixture,
                    gconstpointer  user_data)
{
  g_test_summary ("A listener that gets SIGTERM twice, as from timeout(1), which signals "
                  "the program and its group, still says bye and exits with status 0");

  start_listener (fixture, FALSE, TRUE, NULL);
  g_subprocess_send_signal (fixture->listener->process, SIGTERM);
  /* Within the time the bye and the port mapping's removal take */
  rndz_test_run_for (NULL, 100);
  g_assert_cmpint (rndz_test_program_stop (fixture->listener, SIGTERM), ==, 0);
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

static void
test_options (void)
{
  const char *bad[][14] = {
    { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr", "127.0.0.1:1",
      "--insecure", "--identity", "/nonexistent/bob.pem", NULL },
    { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr", "127.0.0.1:1",
      "--insecure", "--peer-fingerprint", NOBODY_FINGERPRINT, NULL },
    { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr", "127.0.0.1:1",
      "--peer-fingerprint", "abc", NULL },
    { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr", "127.0.0.1:1",
      "--remote-peer", "alice", "--peer-fingerprint", NOBODY_FINGERPRINT,
      "--peer-fingerprint", NOBODY_FINGERPRINT, NULL },
  };
  const char *expected[] = { "--identity", "--peer-fingerprint", "“abc”", "only once" };

  g_test_summary ("Options that contradict each other, and a bad fingerprint, are "
                  "usage errors");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *out = NULL, *err = NULL;

      g_assert_cmpint (rndz_test_run_program (bad[i], NULL, &out, &err), ==, 1);
      g_assert_cmpstr (out, ==, "");
      g_assert_nonnull (strstr (err, expected[i]));
    }
}

static void
test_translation (void)
{
  const char *localedir = g_getenv ("RNDZ_BUILD_LOCALEDIR");
  const char *argv[] = { rndz_test_tool_path (), "fingerprint", "/nonexistent/alice.pem", NULL };
  const char *env[] = { "RNDZ_LOCALEDIR", localedir, "LANGUAGE", "de", "LC_ALL", "C.UTF-8", NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_test_summary ("The new messages speak German with LANGUAGE=de");

  if (localedir == NULL)
    {
      g_test_skip ("RNDZ_BUILD_LOCALEDIR is not set");
      return;
    }

  g_assert_cmpint (rndz_test_run_program (argv, env, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "Keine Identitätsdatei"));
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

#define ADD(path, data, func) \
  g_test_add (path, Fixture, GINT_TO_POINTER (data), fixture_setup, func, fixture_teardown)

  ADD ("/tool/secure/udp/exchange", FALSE, test_exchange);
  ADD ("/tool/secure/tcp/exchange", TRUE, test_exchange);
  ADD ("/tool/secure/identity-kept", FALSE, test_identity_kept);
  ADD ("/tool/secure/udp/wrong-pin", FALSE, test_wrong_pin);
  ADD ("/tool/secure/tcp/wrong-pin", TRUE, test_wrong_pin);
  ADD ("/tool/secure/udp/listener-pin", FALSE, test_listener_pin);
  ADD ("/tool/secure/udp/long-message", FALSE, test_long_message);
  ADD ("/tool/secure/tcp/listener-pin", TRUE, test_listener_pin);
  ADD ("/tool/listener/second-signal", FALSE, test_second_signal);
  ADD ("/tool/insecure/udp/exchange", FALSE, test_insecure);
  ADD ("/tool/insecure/tcp/exchange", TRUE, test_insecure);
  g_test_add_func ("/tool/fingerprint/file", test_fingerprint_of_file);
  g_test_add_func ("/tool/fingerprint/errors", test_fingerprint_command);
  g_test_add_func ("/tool/secure/options", test_options);
  g_test_add_func ("/tool/secure/translation", test_translation);

  return g_test_run ();
}
