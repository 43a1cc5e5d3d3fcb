/* test-tool.c: the rndz program end to end, as separate processes
 *
 * SPDX-License-Identifier: MIT
 */

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "rndz-test-program.h"
#include "rndz-test-util.h"

/* Limits on open files for a program to start with (soft, hard) */
static struct rlimit child_nofile;

static void
set_child_nofile (gpointer user_data)
{
  if (child_nofile.rlim_cur != 0)
    setrlimit (RLIMIT_NOFILE, &child_nofile);
}

/* A server on a free loopback port; *address is "127.0.0.1:PORT" */
static RndzTestProgram *
start_server (char **address)
{
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                         "--forward-timeout", "1", NULL };
  RndzTestProgram *server = rndz_test_program_start (argv, NULL, NULL, set_child_nofile);
  g_autofree char *line = rndz_test_program_read_line (server);
  const char *prefix = "Listening on ";

  g_assert_true (g_str_has_prefix (line, prefix));
  *address = g_strdup (line + strlen (prefix));
  g_assert_true (g_str_has_prefix (*address, "127.0.0.1:"));
  return server;
}

static RndzTestProgram *
start_listener (const char *address,
                const char *id,
                gboolean    tcp)
{
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", id, "--server-addr", address,
                         tcp ? "--tcp" : NULL, NULL };
  RndzTestProgram *listener = rndz_test_program_start (argv, NULL, NULL, set_child_nofile);
  g_autofree char *line = rndz_test_program_read_line (listener);
  g_autofree char *expected = g_strdup_printf ("Registered as %s on port ", id);

  g_assert_true (g_str_has_prefix (line, expected));
  return listener;
}

static void
test_rendezvous (gconstpointer user_data)
{
  gboolean tcp = GPOINTER_TO_INT (user_data);
  g_autofree char *address = NULL;
  g_autoptr(RndzTestProgram) server G_GNUC_UNUSED = start_server (&address);
  g_autoptr(RndzTestProgram) listener = start_listener (address, "alice", tcp);

  g_test_summary ("A server, a listener and a connector, each its own process: the "
                  "connector's message comes back as the listener's echo");

  for (guint i = 0; i < 2; i++)
    {
      g_autofree char *id = g_strdup_printf ("bob-%u", i);
      g_autofree char *message = g_strdup_printf ("hello from %s", id);
      const char *argv[] = { rndz_test_tool_path (), "client", "--id", id, "--server-addr", address,
                             "--remote-peer", "alice", "--message", message,
                             i == 1 ? "--verbose" : "--timeout=10", tcp ? "--tcp" : NULL, NULL };
      g_autofree char *out = NULL, *err = NULL;
      g_autofree char *expected = g_strdup_printf ("%s\n", message);

      g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 0);
      g_assert_cmpstr (out, ==, expected);
      /* With --verbose, the path taken */
      if (i == 1)
        g_assert_nonnull (strstr (err, "Connected to peer “alice” ("));
    }

  /* Both stop cleanly on SIGTERM; the listener says bye first */
  g_assert_cmpint (rndz_test_program_stop (listener, SIGTERM), ==, 0);
  g_assert_cmpint (rndz_test_program_stop (server, SIGINT), ==, 0);
}

/* How many descriptors the program has open */
static guint
count_fds (RndzTestProgram *program)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/fd",
                                           g_subprocess_get_identifier (program->process));

  return rndz_test_count_entries (path);
}

static void
test_idle_peer (void)
{
  g_autofree char *address = NULL;
  g_autoptr(RndzTestProgram) server G_GNUC_UNUSED = start_server (&address);
  const char *listener_argv[] = { rndz_test_tool_path (), "client", "--id", "alice",
                                  "--server-addr", address, "--insecure", "--no-port-mapping",
                                  "--idle-timeout", "1", NULL };
  g_autoptr(RndzTestProgram) listener = NULL;
  g_autofree char *line = NULL;
  gint64 connected, closed = 0;
  guint n_connected;

  g_test_summary ("A listening rndz client closes the socket of a UDP peer that sent "
                  "nothing for --idle-timeout, and still lets the next peers in");

  if (!g_file_test ("/proc/self/fd", G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("No /proc/self/fd to count descriptors");
      return;
    }

  listener = rndz_test_program_start (listener_argv, NULL, NULL, NULL);
  line = rndz_test_program_read_line (listener);
  g_assert_true (g_str_has_prefix (line, "Registered as alice"));

  for (guint i = 0; i < 2; i++)
    {
      const char *argv[] = { rndz_test_tool_path (), "client", "--id", i == 0 ? "bob" : "carol",
                             "--server-addr", address, "--remote-peer", "alice", "--insecure",
                             "--message", "hi", NULL };
      g_autofree char *out = NULL, *err = NULL;

      g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 0);
      g_assert_cmpstr (out, ==, "hi\n");
      if (i == 1)
        break;

      /* bob's socket, kept by the echo, goes after a second of silence */
      connected = g_get_monotonic_time ();
      n_connected = count_fds (listener);
      while (closed == 0 && g_get_monotonic_time () - connected < 5 * G_USEC_PER_SEC)
        {
          g_usleep (50 * 1000);
          if (count_fds (listener) < n_connected)
            closed = g_get_monotonic_time ();
        }
      g_assert_cmpint (closed, >, 0);
      g_assert_cmpint (closed - connected, >=, 900 * G_TIME_SPAN_MILLISECOND);
    }

  g_assert_cmpint (rndz_test_program_stop (listener, SIGTERM), ==, 0);
}

static void
test_unknown_peer (gconstpointer user_data)
{
  gboolean tcp = GPOINTER_TO_INT (user_data);
  g_autofree char *address = NULL;
  g_autoptr(RndzTestProgram) server G_GNUC_UNUSED = start_server (&address);
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr", address,
                         "--remote-peer", "nobody", tcp ? "--tcp" : NULL, NULL };
  g_autofree char *out = NULL, *err = NULL;
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("Reaching an unknown peer fails at once with a clear message");

  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 3 * G_USEC_PER_SEC);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "nobody"));
  g_assert_nonnull (strstr (err, "not registered"));
}

static void
test_vanished_listener (void)
{
  g_autofree char *address = NULL;
  g_autoptr(RndzTestProgram) server G_GNUC_UNUSED = start_server (&address);
  g_autoptr(RndzTestProgram) listener = start_listener (address, "alice", FALSE);
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr", address,
                         "--remote-peer", "alice", "--timeout", "5", NULL };
  g_autofree char *out = NULL, *err = NULL;
  gint64 start;

  g_test_summary ("A listener killed without a word makes the connector fail promptly "
                  "(the server's forward timeout), not hang");

  g_assert_cmpint (rndz_test_program_stop (listener, SIGKILL), ==, -1);
  start = g_get_monotonic_time ();
  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 4 * G_USEC_PER_SEC);
  g_assert_nonnull (strstr (err, "alice"));
}

static void
test_server_down (void)
{
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                         "--server-addr", "127.0.0.1:1", "--remote-peer", "alice",
                         "--timeout", "3", NULL };
  g_autofree char *out = NULL, *err = NULL;
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("With no server there, the connector fails within its timeout, saying why");

  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 4 * G_USEC_PER_SEC);
  g_assert_cmpstr (err, !=, "");
}

static void
test_relay_server (void)
{
  g_autoptr(GSocket) probe = NULL;
  g_autoptr(GSocketAddress) probe_address = NULL;
  g_autoptr(RndzTestProgram) server = NULL;
  g_autofree char *port_text = NULL;
  g_autofree char *line = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr probed;
  guint16 port;

  g_test_summary ("With --relay-port, the server says where it relays, and holds that port");

  /* A port free a moment ago; another program may take it meanwhile,
   * and the server then fails at once: another port */
  for (guint attempt = 0; attempt < 3 && line == NULL; attempt++)
    {
      const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                             "--relay-port", NULL, "--relay-max-sessions", "2",
                             "--relay-rate", "0", "--relay-idle-timeout", "5", NULL };

      probe = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, &probed);
      port = probed.port;
      g_socket_close (probe, NULL);
      g_clear_object (&probe);
      g_free (port_text);
      port_text = g_strdup_printf ("%u", port);
      argv[5] = port_text;

      g_clear_pointer (&server, rndz_test_program_free);
      server = rndz_test_program_start (argv, NULL, NULL, set_child_nofile);
      line = rndz_test_program_try_read_line (server);
    }
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "Listening on 127.0.0.1:"));
  g_clear_pointer (&line, g_free);
  line = rndz_test_program_read_line (server);
  expected = g_strdup_printf ("Relaying on 127.0.0.1:%u", port);
  g_assert_cmpstr (line, ==, expected);

  probe = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  probe_address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  g_assert_false (g_socket_bind (probe, probe_address, FALSE, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);

  /* Stopped as soon as it said where it listens: it catches the signal
   * before it says so, and exits cleanly */
  g_assert_cmpint (rndz_test_program_stop (server, SIGTERM), ==, 0);
}

static void
test_option_units (void)
{
  g_autofree char *out = NULL, *err = NULL;
  const char *peer_zero[] = { rndz_test_tool_path (), "server", "--peer-timeout", "0", NULL };
  const char *forward_long[] = { rndz_test_tool_path (), "server", "--forward-timeout", "3601",
                                 NULL };
  const char *idle_long[] = { rndz_test_tool_path (), "server", "--relay-idle-timeout", "604801",
                              NULL };
  const char *timeout_long[] = { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr",
                                 "127.0.0.1:1", "--timeout", "3601", NULL };

  g_test_summary ("The options take seconds, the properties they set milliseconds: "
                  "an option's range is its property's range in seconds");

  g_assert_cmpint (rndz_test_run_program (peer_zero, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "from 1 to 2147483"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (rndz_test_run_program (forward_long, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "--forward-timeout"));
  g_assert_nonnull (strstr (err, "from 1 to 3600"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (rndz_test_run_program (idle_long, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "from 1 to 604800"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (rndz_test_run_program (timeout_long, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "--timeout"));
  g_assert_nonnull (strstr (err, "from 1 to 3600"));
}

static void
test_command_line (void)
{
  g_autofree char *out = NULL, *err = NULL;
  const char *help[] = { rndz_test_tool_path (), "--help", NULL };
  const char *version[] = { rndz_test_tool_path (), "--version", NULL };
  const char *unknown[] = { rndz_test_tool_path (), "dance", NULL };
  const char *no_id[] = { rndz_test_tool_path (), "client", "--server-addr", "127.0.0.1:1", NULL };
  const char *bad_addr[] = { rndz_test_tool_path (), "server", "--listen-addr", "localhost", NULL };

  g_test_summary ("Help and version go to stdout; usage errors to stderr, with status 1");

  g_assert_cmpint (rndz_test_run_program (help, NULL, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "server"));
  g_assert_nonnull (strstr (out, "client"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  {
    const char *server_help[] = { rndz_test_tool_path (), "server", "--help", NULL };
    const char *bad_rate[] = { rndz_test_tool_path (), "server", "--relay-rate", "-1", NULL };

    g_assert_cmpint (rndz_test_run_program (server_help, NULL, &out, &err), ==, 0);
    g_assert_nonnull (strstr (out, "--relay-port=PORT"));
    g_assert_nonnull (strstr (out, "--relay-max-sessions=N"));
    g_assert_nonnull (strstr (out, "--relay-rate=BYTES"));
    g_assert_nonnull (strstr (out, "--relay-idle-timeout=SECONDS"));
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);

    g_assert_cmpint (rndz_test_run_program (bad_rate, NULL, &out, &err), ==, 1);
    g_assert_nonnull (strstr (err, "--relay-rate"));
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);
  }

  g_assert_cmpint (rndz_test_run_program (version, NULL, &out, &err), ==, 0);
  g_assert_true (g_str_has_prefix (out, "rndz "));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (rndz_test_run_program (unknown, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "dance"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (rndz_test_run_program (no_id, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "--id"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (rndz_test_run_program (bad_addr, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "localhost"));
}

static void
test_auth (void)
{
  g_autofree char *dir = g_dir_make_tmp ("rndz-tool-XXXXXX", NULL);
  g_autofree char *secret_file = g_build_filename (dir, "secret", NULL);
  g_autofree char *key_file = g_build_filename (dir, "alice.key", NULL);
  g_autofree char *alice_key = NULL, *bob_key = NULL, *err = NULL, *address = NULL;
  const char *derive_alice[] = { rndz_test_tool_path (), "key", "--secret-file", secret_file,
                                 "--id", "alice", NULL };
  const char *derive_bob[] = { rndz_test_tool_path (), "key", "--id", "bob", NULL };
  const char *secret_env[] = { "RNDZ_SECRET", "a secret of the operator", NULL };
  g_autoptr(RndzTestProgram) server = NULL;
  g_autoptr(RndzTestProgram) listener = NULL;
  g_autofree char *line = NULL;

  g_test_summary ("With a server secret (from a file, or the environment), peers with "
                  "keys from rndz key meet; a peer without one cannot register");

  g_assert_true (g_file_set_contents (secret_file, "a secret of the operator\n", -1, NULL));
  g_assert_cmpint (rndz_test_run_program (derive_alice, NULL, &alice_key, &err), ==, 0);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (rndz_test_run_program (derive_bob, secret_env, &bob_key, &err), ==, 0);
  g_assert_cmpuint (strlen (alice_key), ==, 65);
  g_assert_cmpstr (alice_key, !=, bob_key);
  g_strstrip (bob_key);
  g_assert_true (g_file_set_contents (key_file, alice_key, -1, NULL));

  {
    const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                           "--secret-file", secret_file, NULL };

    server = rndz_test_program_start (argv, NULL, NULL, set_child_nofile);
    line = rndz_test_program_read_line (server);
    g_assert_true (g_str_has_prefix (line, "Listening on "));
    address = g_strdup (line + strlen ("Listening on "));
  }

  {
    const char *argv[] = { rndz_test_tool_path (), "client", "--id", "alice",
                           "--server-addr", address, "--key-file", key_file, "--require-auth",
                           NULL };

    listener = rndz_test_program_start (argv, NULL, NULL, set_child_nofile);
    g_clear_pointer (&line, g_free);
    line = rndz_test_program_read_line (listener);
    g_assert_true (g_str_has_prefix (line, "Registered as alice"));
  }

  {
    const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                           "--server-addr", address, "--remote-peer", "alice",
                           "--message", "signed", NULL };
    const char *env[] = { "RNDZ_KEY", bob_key, NULL };
    g_autofree char *out = NULL, *err2 = NULL;

    g_assert_cmpint (rndz_test_run_program (argv, env, &out, &err2), ==, 0);
    g_assert_cmpstr (out, ==, "signed\n");
  }

  {
    /* Without a key the server does not even answer: the timeout ends it */
    const char *argv[] = { rndz_test_tool_path (), "client", "--id", "mallory",
                           "--server-addr", address, "--remote-peer", "alice",
                           "--timeout", "1", NULL };
    g_autofree char *out = NULL, *err2 = NULL;

    g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err2), ==, 1);
    g_assert_cmpstr (out, ==, "");
  }

  g_assert_cmpint (rndz_test_program_stop (listener, SIGTERM), ==, 0);
  g_assert_cmpint (rndz_test_program_stop (server, SIGTERM), ==, 0);
  g_unlink (secret_file);
  g_unlink (key_file);
  g_rmdir (dir);
}

/* Sends @server a ping for alice signed for @srv: is it answered? */
static gboolean
signed_ping_answered (guint16     port,
                      GBytes     *secret,
                      const char *srv)
{
  g_autoptr(RndzTestPeer) peer = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, port);
  g_autoptr(GBytes) key = rndz_derive_key (secret, "alice");
  RndzAddr server = rndz_test_addr (srv);
  RndzMessage ping;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 5);
  g_strlcpy (ping.id, "alice", sizeof ping.id);
  rndz_message_sign (&ping, &server, key, g_get_real_time () / 1000);
  rndz_test_peer_send (peer, &ping);
  if (!rndz_test_run_until_readable (NULL, peer->socket, 1000))
    return FALSE;
  rndz_test_peer_expect (NULL, peer, RNDZ_MESSAGE_PONG, 5, NULL, 1000);
  return TRUE;
}

static void
test_public_address (void)
{
  g_autofree char *dir = g_dir_make_tmp ("rndz-tool-XXXXXX", NULL);
  g_autofree char *secret_file = g_build_filename (dir, "secret", NULL);
  g_autoptr(GBytes) secret = g_bytes_new_static ("a secret", 8);
  g_autoptr(RndzTestProgram) server = NULL;
  g_autofree char *line = NULL;
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                         "--secret-file", secret_file,
                         "--public-address", "198.51.100.7:8888",
                         "--public-address", "[2001:DB8::7]:8888", NULL };
  guint16 port;

  g_test_summary ("rndz server --public-address (repeatable) accepts messages signed for "
                  "those addresses, besides its own; a bad address is a usage error");

  g_assert_true (g_file_set_contents (secret_file, "a secret", -1, NULL));
  server = rndz_test_program_start (argv, NULL, NULL, set_child_nofile);
  line = rndz_test_program_read_line (server);
  g_assert_true (g_str_has_prefix (line, "Listening on 127.0.0.1:"));
  port = atoi (line + strlen ("Listening on 127.0.0.1:"));

  g_assert_true (signed_ping_answered (port, secret, "198.51.100.7:8888"));
  g_assert_true (signed_ping_answered (port, secret, "[2001:db8::7]:8888"));
  {
    g_autofree char *own = g_strdup_printf ("127.0.0.1:%u", port);

    g_assert_true (signed_ping_answered (port, secret, own));
  }
  g_assert_false (signed_ping_answered (port, secret, "198.51.100.7:8889"));
  g_assert_cmpint (rndz_test_program_stop (server, SIGTERM), ==, 0);

  {
    const char *bad[][6] = {
      { rndz_test_tool_path (), "server", "--public-address", "rndz.example:8888", NULL },
      { rndz_test_tool_path (), "server", "--public-address", "198.51.100.7", NULL },
      { rndz_test_tool_path (), "server", "--public-address", "198.51.100.7:0", NULL },
    };

    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        g_autofree char *out = NULL, *err = NULL;

        g_assert_cmpint (rndz_test_run_program (bad[i], NULL, &out, &err), ==, 1);
        g_assert_nonnull (strstr (err, "--public-address"));
        g_assert_nonnull (strstr (err, bad[i][3]));
      }
  }

  g_unlink (secret_file);
  g_rmdir (dir);
}

static void
test_translation (void)
{
  const char *localedir = g_getenv ("RNDZ_BUILD_LOCALEDIR");
  const char *help[] = { rndz_test_tool_path (), "--help", NULL };
  const char *down[] = { rndz_test_tool_path (), "client", "--id", "bob",
                         "--server-addr", "127.0.0.1:1", "--remote-peer", "alice",
                         "--timeout", "2", NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_test_summary ("With LANGUAGE=de the tool and the library's errors speak German");

  if (localedir == NULL)
    {
      g_test_skip ("RNDZ_BUILD_LOCALEDIR is not set");
      return;
    }

  {
    const char *env[] = { "RNDZ_LOCALEDIR", localedir, "LANGUAGE", "de", "LC_ALL", "C.UTF-8", NULL };

    g_assert_cmpint (rndz_test_run_program (help, env, &out, &err), ==, 0);
    g_assert_nonnull (strstr (out, "Aufruf"));
    g_assert_nonnull (strstr (out, "Rendezvous-Server"));
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);

    /* An error of the library itself */
    g_assert_cmpint (rndz_test_run_program (down, env, &out, &err), ==, 1);
    g_assert_nonnull (strstr (err, "Kein Rendezvous-Server"));
  }
}

/* The soft and hard limits on open files of a running process */
static void
read_nofile (GSubprocess *process,
             guint64     *soft,
             guint64     *hard)
{
  g_autofree char *path = g_strdup_printf ("/proc/%s/limits", g_subprocess_get_identifier (process));
  g_autofree char *limits = NULL;
  const char *line;

  g_assert_true (g_file_get_contents (path, &limits, NULL, NULL));
  line = strstr (limits, "Max open files");
  g_assert_nonnull (line);
  g_assert_cmpint (sscanf (line, "Max open files %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                           soft, hard), ==, 2);
}

static void
test_descriptor_limit_raised (void)
{
  g_autoptr(RndzTestProgram) server = NULL;
  g_autofree char *address = NULL;
  struct rlimit ours;
  guint64 soft, hard;

  g_test_summary ("rndz server raises its soft limit on open files to the hard one");

  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &ours), ==, 0);
  if (ours.rlim_max != RLIM_INFINITY && ours.rlim_max <= 256)
    {
      g_test_skip ("The hard limit on open files is too low to test raising the soft one");
      return;
    }
  child_nofile.rlim_cur = 256;
  child_nofile.rlim_max = ours.rlim_max;
  server = start_server (&address);
  child_nofile.rlim_cur = 0;

  read_nofile (server->process, &soft, &hard);
  g_assert_cmpuint (hard, ==, ours.rlim_max);
  g_assert_cmpuint (soft, ==, hard);
}

/* A TCP connection attempt from @host to @port, left pending or open */
static GSocket *
connect_from (const char *host,
              guint16     port)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocketAddress) remote = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  g_assert_true (g_socket_bind (socket, local, FALSE, &error));
  if (!g_socket_connect (socket, remote, NULL, &error))
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_PENDING);
  return g_steal_pointer (&socket);
}

static void
test_descriptor_limit_flood (void)
{
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                         "--register-timeout", "60", NULL };
  g_autoptr(GPtrArray) flood = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(RndzTestProgram) server = NULL;
  g_autoptr(RndzTestProgram) listener = NULL;
  g_autofree char *line = NULL;
  const char *address;
  gint64 start;
  guint64 soft, hard;
  guint16 port;

  g_test_summary ("With few descriptors, silent connections make room for a peer that "
                  "registers, instead of accept() running out");

  /* 128 descriptors, hard limit too: more connections than fit */
  child_nofile.rlim_cur = child_nofile.rlim_max = 128;
  server = rndz_test_program_start (argv, NULL, NULL, set_child_nofile);
  child_nofile.rlim_cur = child_nofile.rlim_max = 0;
  line = rndz_test_program_read_line (server);
  g_assert_true (g_str_has_prefix (line, "Listening on 127.0.0.1:"));
  address = line + strlen ("Listening on ");
  port = atoi (address + strlen ("127.0.0.1:"));
  /* Without the limit the flood proves nothing */
  read_nofile (server->process, &soft, &hard);
  g_assert_cmpuint (soft, ==, 128);
  g_assert_cmpuint (hard, ==, 128);

  /* 150 connections that never say a word, 25 from each of six hosts
   * (a host may hold 32) */
  for (guint i = 0; i < 150; i++)
    {
      g_autofree char *host = g_strdup_printf ("127.0.0.%u", 2 + i / 25);

      g_ptr_array_add (flood, connect_from (host, port));
    }
  rndz_test_run_for (NULL, 500);

  start = g_get_monotonic_time ();
  listener = start_listener (address, "alice", TRUE);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
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

  g_test_add_data_func ("/tool/udp/rendezvous", GINT_TO_POINTER (FALSE), test_rendezvous);
  g_test_add_data_func ("/tool/tcp/rendezvous", GINT_TO_POINTER (TRUE), test_rendezvous);
  g_test_add_data_func ("/tool/udp/unknown-peer", GINT_TO_POINTER (FALSE), test_unknown_peer);
  g_test_add_data_func ("/tool/tcp/unknown-peer", GINT_TO_POINTER (TRUE), test_unknown_peer);
  g_test_add_func ("/tool/udp/vanished-listener", test_vanished_listener);
  g_test_add_func ("/tool/udp/idle-peer", test_idle_peer);
  g_test_add_func ("/tool/server-down", test_server_down);
  g_test_add_func ("/tool/relay-server", test_relay_server);
  g_test_add_func ("/tool/command-line", test_command_line);
  g_test_add_func ("/tool/option-units", test_option_units);
  g_test_add_func ("/tool/auth", test_auth);
  g_test_add_func ("/tool/public-address", test_public_address);
  g_test_add_func ("/tool/translation", test_translation);
  g_test_add_func ("/tool/server/descriptor-limit/raised", test_descriptor_limit_raised);
  g_test_add_func ("/tool/server/descriptor-limit/flood", test_descriptor_limit_flood);

  return g_test_run ();
}
