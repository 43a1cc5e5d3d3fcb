/* test-direct-only.c: TCP direct paths with no relay to fall back on
 *
 * SPDX-License-Identifier: MIT
 *
 * Through loss, a TCP path may open only after the direct timeout: the
 * kernel sends a lost SYN again a second later at best, three chances
 * within the default 3 s. When there is no relay to turn to (the
 * server's is off, or the client's), a requester keeps trying its direct
 * paths until its timeout (issue 19, item 4; measured through lossy
 * NATs in tests/netns/test-nat.sh). Here alice is the test's own: she
 * registers over TCP from a port that nobody listens on, so bob's SYNs
 * towards it are refused, and starts to listen there only well after
 * bob's direct timeout. With a relay, and when a NAT rewrites ports
 * (a direct path is unlikely), nothing changes.
 *
 * Before its own SYN, a requester sends spare SYNs towards a peer behind
 * a NAT, which open its own NAT and, with two hops to go, die before the
 * peer's (rndz-connect.c; their TTL is checked through real NATs in
 * tests/netns/test-nat.sh). Here alice's port listens with a full queue
 * and the kernel counts the SYNs it drops.
 */

#include <rndz-glib/rndz.h>

#include "rndz-relay-join-private.h"
#include "rndz-socket-private.h"
#include "rndz-test-util.h"

#define DIRECT_MS 600
#define TIMEOUT_MS 6000
/* When alice's port starts to listen, from bob's start */
#define OPENS_AFTER_MS 1500

typedef enum
{
  NO_RELAY_ON_SERVER,           /* the server says no-relay */
  NO_RELAY_ON_CLIENT,           /* bob's relay property is off */
  RELAY,                        /* the server relays */
} Setup;

typedef struct
{
  Setup setup;
  RndzServer *server;
  char *address;
  RndzTestPeer *alice;          /* raw, over TCP */

  RndzClient *bob;
  gint64 start;                 /* monotonic */
  gint64 end;
  GSocketConnection *connection;
  GError *error;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->setup = GPOINTER_TO_UINT (data);
  f->server = rndz_server_new ();
  if (f->setup == RELAY)
    rndz_server_set_relay_port (f->server, rndz_test_free_port ());
  f->address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4,
                                          rndz_test_server_listen (f->server,
                                                                   G_SOCKET_FAMILY_IPV4, 0));
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_object (&f->connection);
  g_clear_error (&f->error);
  g_clear_object (&f->bob);
  g_clear_pointer (&f->alice, rndz_test_peer_free);
  g_clear_object (&f->server);
  g_clear_pointer (&f->address, g_free);
  rndz_test_drain (NULL);
}

/* Alice registers from @host with address and port reuse, as a
 * listener's socket: it may listen later. With @cand, she offers a
 * candidate on that host (behind a NAT, hers), on her port or with
 * @rewritten on another port, as behind a NAT that rewrote hers. */
static void
alice_register_from (Fixture    *f,
                     const char *host,
                     const char *cand,
                     gboolean    rewritten)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) error = NULL;
  RndzTestPeer *alice = g_new0 (RndzTestPeer, 1);
  RndzMessage ping;

  alice->transport = RNDZ_TRANSPORT_TCP;
  alice->to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4,
                                          rndz_server_get_port (f->server));
  alice->socket = rndz_socket_new_bound (any, G_SOCKET_TYPE_STREAM, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (alice->socket, TRUE);
  g_socket_connect (alice->socket, alice->to, NULL, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (alice->socket, FALSE);
  local = g_socket_get_local_address (alice->socket, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&alice->local, local));
  f->alice = alice;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (ping.id, "alice", sizeof ping.id);
  if (cand != NULL)
    {
      g_autofree char *text = g_strdup_printf ("%s:1", cand);

      ping.cands[0] = rndz_test_addr (text);
      ping.cands[0].port = alice->local.port;
      if (rewritten)
        ping.cands[0].port = alice->local.port == 65535 ? 1024 : alice->local.port + 1;
      ping.n_cands = 1;
    }
  rndz_test_peer_send (alice, &ping);
  rndz_test_peer_expect (NULL, alice, RNDZ_MESSAGE_PONG, 1, NULL, RNDZ_TEST_TIMEOUT_MS);
}

static void
alice_register (Fixture  *f,
                gboolean  rewritten)
{
  alice_register_from (f, "127.0.0.1", rewritten ? "127.0.0.2" : NULL, rewritten);
}

static void
connected_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Fixture *f = user_data;

  f->connection = rndz_client_connect_tcp_finish (RNDZ_CLIENT (source), result, &f->error);
  f->end = g_get_monotonic_time ();
}

static gboolean
bob_done (gpointer data)
{
  Fixture *f = data;

  return f->end != 0;
}

/* Bob asks for alice, who answers the server's forward */
static void
bob_asks (Fixture *f)
{
  const char *servers[] = { f->address, NULL };
  RndzMessage fsync, rsync;

  f->bob = rndz_client_new ("bob", servers);
  g_object_set (f->bob, "port-mapping", FALSE, NULL);
  rndz_client_set_direct_timeout (f->bob, DIRECT_MS);
  rndz_client_set_timeout (f->bob, TIMEOUT_MS);
  rndz_client_set_relay (f->bob, f->setup != NO_RELAY_ON_CLIENT);
  f->start = g_get_monotonic_time ();
  rndz_client_connect_tcp_async (f->bob, "alice", NULL, connected_cb, f);

  rndz_test_peer_expect (NULL, f->alice, RNDZ_MESSAGE_FSYNC, 0, &fsync, RNDZ_TEST_TIMEOUT_MS);
  g_assert_cmpstr (fsync.id, ==, "bob");
  rndz_message_init (&rsync, RNDZ_MESSAGE_RSYNC, fsync.tid);
  g_strlcpy (rsync.id, "alice", sizeof rsync.id);
  g_strlcpy (rsync.target, "bob", sizeof rsync.target);
  rndz_test_peer_send (f->alice, &rsync);
}

static gint64
bob_ms (Fixture *f)
{
  g_assert_true (rndz_test_run_until (NULL, bob_done, f, TIMEOUT_MS + 2000));
  return (f->end - f->start) / 1000;
}

/* Alice's port listens from now on, with a queue of @backlog
 * connections (or GLib's default, -1) */
static GSocket *
alice_listens_queue (Fixture *f,
                     int      backlog)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GError) error = NULL;

  local = rndz_addr_to_socket_address (&f->alice->local, G_SOCKET_FAMILY_IPV4);
  listening = rndz_socket_new_bound (local, G_SOCKET_TYPE_STREAM, &error);
  g_assert_no_error (error);
  if (backlog >= 0)
    g_socket_set_listen_backlog (listening, backlog);
  g_assert_true (g_socket_listen (listening, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&listening);
}

static GSocket *
alice_listens (Fixture *f)
{
  return alice_listens_queue (f, -1);
}

/* What bob sends first on the connection alice accepts: its use */
static void
alice_accepts_use (GSocket *listening)
{
  g_autoptr(GError) error = NULL;
  RndzTestPeer *peer = g_new0 (RndzTestPeer, 1);
  g_autoptr(RndzTestPeer) accepted = peer;
  RndzMessage use;

  rndz_test_wait_readable (NULL, listening, RNDZ_TEST_TIMEOUT_MS, "bob's connection");
  peer->transport = RNDZ_TRANSPORT_TCP;
  peer->socket = g_socket_accept (listening, NULL, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (peer->socket, FALSE);
  peer->to = g_socket_get_remote_address (peer->socket, &error);
  g_assert_no_error (error);
  rndz_test_peer_expect (NULL, peer, RNDZ_MESSAGE_USE, 0, &use, RNDZ_TEST_TIMEOUT_MS);
  g_assert_cmpstr (use.id, ==, "bob");
  g_assert_cmpstr (use.target, ==, "alice");
}

static void
test_late_path (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GSocket) listening = NULL;
  GSocket *socket;
  gint64 ms;

  g_test_summary ("Without a relay to fall back on, a TCP path that opens only after "
                  "the direct timeout still connects, before the timeout");

  alice_register (f, FALSE);
  bob_asks (f);
  rndz_test_run_for (NULL, OPENS_AFTER_MS - (g_get_monotonic_time () - f->start) / 1000);
  /* Bob is still at it, long after his direct timeout */
  g_assert_no_error (f->error);
  g_assert_cmpint (f->end, ==, 0);

  listening = alice_listens (f);
  alice_accepts_use (listening);
  ms = bob_ms (f);
  g_test_message ("Connected after %" G_GINT64_FORMAT " ms (direct timeout %u ms)", ms, DIRECT_MS);
  g_assert_no_error (f->error);
  socket = g_socket_connection_get_socket (f->connection);
  g_assert_cmpint (rndz_socket_get_path (socket), !=, RNDZ_PATH_RELAYED);
  g_assert_cmpint (ms, >=, OPENS_AFTER_MS);
  g_assert_cmpint (ms, <, TIMEOUT_MS);
}

static void
test_never (Fixture       *f,
            gconstpointer  data)
{
  gint64 ms;

  g_test_summary ("Without a relay, a TCP path that never opens fails at the timeout, "
                  "with the error of no path");

  alice_register (f, FALSE);
  bob_asks (f);
  ms = bob_ms (f);
  g_test_message ("Failed after %" G_GINT64_FORMAT " ms: %s", ms, f->error->message);
  g_assert_error (f->error, RNDZ_ERROR, RNDZ_ERROR_NO_PATH);
  g_assert_cmpint (ms, >=, TIMEOUT_MS - 100);
}

static void
test_rewritten (Fixture       *f,
                gconstpointer  data)
{
  gint64 ms;

  g_test_summary ("Without a relay, when the target's NAT rewrites ports (a TCP path "
                  "is unlikely), the requester still fails at its direct timeout");

  alice_register (f, TRUE);
  bob_asks (f);
  ms = bob_ms (f);
  g_test_message ("Failed after %" G_GINT64_FORMAT " ms: %s", ms, f->error->message);
  g_assert_error (f->error, RNDZ_ERROR, RNDZ_ERROR_NO_PATH);
  g_assert_cmpint (ms, >=, DIRECT_MS);
  g_assert_cmpint (ms, <, TIMEOUT_MS / 2);
}

static void
joined_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GSocket **joined = user_data;
  g_autoptr(GError) error = NULL;

  *joined = rndz_relay_join_finish (result, &error);
  g_assert_no_error (error);
}

static void
test_relay (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GSocket) joined = NULL;
  RndzMessage session;
  RndzAddr relay;
  gint64 ms;

  g_test_summary ("With a relay, the relay is asked for at the direct timeout, as before, "
                  "and is the path");

  alice_register (f, FALSE);
  bob_asks (f);
  rndz_test_peer_expect (NULL, f->alice, RNDZ_MESSAGE_SESSION, 0, &session, RNDZ_TEST_TIMEOUT_MS);
  ms = (g_get_monotonic_time () - f->start) / 1000;
  g_test_message ("The relay's session came after %" G_GINT64_FORMAT " ms", ms);
  g_assert_cmpint (ms, >=, DIRECT_MS);
  g_assert_cmpint (ms, <, TIMEOUT_MS / 2);

  relay = rndz_test_addr ("127.0.0.1:1");
  relay.port = session.port;
  rndz_relay_join_async (RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, &relay, "alice",
                         session.token, RNDZ_TEST_TIMEOUT_MS, NULL, NULL, joined_cb, &joined);
  bob_ms (f);
  g_assert_no_error (f->error);
  g_assert_cmpint (rndz_socket_get_path (g_socket_connection_get_socket (f->connection)), ==,
                   RNDZ_PATH_RELAYED);
  g_assert_true (rndz_test_run_until_set (NULL, (gpointer *) &joined, RNDZ_TEST_TIMEOUT_MS));
}

/* The requester's spare SYNs (rndz-connect.c) */

typedef struct
{
  const char *alice;            /* where alice registers from */
  const char *cand;             /* her candidate's host, on her port */
  guint syns;                   /* how many SYNs of bob's reach her first */
} Spares;

/* On loopback, bob's spares reach alice whatever their TTL (its two hops
 * are what keeps them from a peer behind a NAT: tests/netns/test-nat.sh) */
static const Spares spares_nat = { "127.0.0.3", "127.0.0.2", 3 };
static const Spares spares_no_nat = { "127.0.0.3", "127.0.0.3", 1 };
static const Spares spares_same_nat = { "127.0.0.1", "127.0.0.2", 1 };

static void
test_spares (Fixture      *f,
             const Spares *spares)
{
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocket) filler = NULL;
  g_autoptr(GSocketAddress) alice_address = NULL;
  g_autoptr(GError) error = NULL;
  gint64 before;

  g_test_summary ("A TCP requester sends spare SYNs from its port before its own, to "
                  "open its NAT, only towards a peer behind a NAT that is not its own");

  if (rndz_test_listen_overflows () < 0)
    {
      g_test_skip ("No /proc/net/netstat to count the SYNs by");
      return;
    }

  /* Alice's port listens with a full accept queue: the kernel drops the
   * SYNs that come, and counts them */
  alice_register_from (f, spares->alice, spares->cand, FALSE);
  listening = alice_listens_queue (f, 0);
  alice_address = rndz_addr_to_socket_address (&f->alice->local, G_SOCKET_FAMILY_IPV4);
  filler = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (filler, alice_address, NULL, &error));
  g_assert_no_error (error);

  before = rndz_test_listen_overflows ();
  bob_asks (f);
  /* Well before the kernel sends bob's SYN again (1 s) */
  rndz_test_run_for (NULL, 300);
  g_assert_cmpint (rndz_test_listen_overflows () - before, >=, spares->syns);
  /* (Other tests may fill accept queues meanwhile: at most a few more) */
  if (spares->syns == 1)
    g_assert_cmpint (rndz_test_listen_overflows () - before, <, 3);
}

static void
test_spares_nat (Fixture       *f,
                 gconstpointer  data)
{
  test_spares (f, &spares_nat);
}

static void
test_spares_no_nat (Fixture       *f,
                    gconstpointer  data)
{
  test_spares (f, &spares_no_nat);
}

static void
test_spares_same_nat (Fixture       *f,
                      gconstpointer  data)
{
  test_spares (f, &spares_same_nat);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/direct-only/tcp/late-path/server-without-relay", Fixture,
              GUINT_TO_POINTER (NO_RELAY_ON_SERVER), fixture_setup, test_late_path,
              fixture_teardown);
  g_test_add ("/direct-only/tcp/late-path/client-without-relay", Fixture,
              GUINT_TO_POINTER (NO_RELAY_ON_CLIENT), fixture_setup, test_late_path,
              fixture_teardown);
  g_test_add ("/direct-only/tcp/never", Fixture, GUINT_TO_POINTER (NO_RELAY_ON_SERVER),
              fixture_setup, test_never, fixture_teardown);
  g_test_add ("/direct-only/tcp/rewritten", Fixture, GUINT_TO_POINTER (NO_RELAY_ON_SERVER),
              fixture_setup, test_rewritten, fixture_teardown);
  g_test_add ("/direct-only/tcp/relay", Fixture, GUINT_TO_POINTER (RELAY),
              fixture_setup, test_relay, fixture_teardown);

  g_test_add ("/direct-only/tcp/spares/behind-nat", Fixture,
              GUINT_TO_POINTER (NO_RELAY_ON_SERVER), fixture_setup, test_spares_nat,
              fixture_teardown);
  g_test_add ("/direct-only/tcp/spares/no-nat", Fixture,
              GUINT_TO_POINTER (NO_RELAY_ON_SERVER), fixture_setup, test_spares_no_nat,
              fixture_teardown);
  g_test_add ("/direct-only/tcp/spares/same-nat", Fixture,
              GUINT_TO_POINTER (NO_RELAY_ON_SERVER), fixture_setup, test_spares_same_nat,
              fixture_teardown);

  return g_test_run ();
}
