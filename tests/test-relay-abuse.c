/* test-relay-abuse.c: the relay against hostile peers
 *
 * SPDX-License-Identifier: MIT
 *
 * What test-relay.c does not cover: a peer of the relay that lies about
 * its address, takes every session, never lets one end, or makes the
 * server send more than it received. Peers are raw sockets on the IPv4
 * loopback; a forger or another host is a socket bound to 127.0.0.2 or
 * another address of 127.0.0.0/8, which Linux routes to the loopback.
 * Every wait is bounded.
 */

#include <string.h>
#include <sys/socket.h>

#include <rndz-glib/rndz.h>

#include "rndz-message-private.h"
#include "rndz-server-private.h"
#include "rndz-test-util.h"

/* How long to wait for something that should happen now */
#define WAIT_MS 3000
/* How long to watch for something that should not happen */
#define QUIET_MS 200

typedef RndzTestPeer Peer;

typedef struct
{
  RndzTransport transport;
  GMainContext *context;
  RndzServer *server;
  guint16 port;
  guint16 relay_port;
  guint32 next_tid;
  GPtrArray *peers;
} Fixture;

/* Main context */

static gboolean
continue_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

static gboolean
no_sessions_cb (gpointer user_data)
{
  Fixture *f = user_data;

  return rndz_server_get_relay_session_count (f->server) == 0;
}

/* Runs the context until @done, ticking every millisecond, or @ms */
static gboolean
pump_until (Fixture      *f,
            RndzTestCond  done,
            gpointer      user_data,
            guint         ms)
{
  g_autoptr(GSource) tick = g_timeout_source_new (1);
  gboolean ok;

  g_source_set_callback (tick, continue_cb, NULL, NULL);
  g_source_attach (tick, f->context);
  ok = rndz_test_run_until (f->context, done, user_data, ms);
  g_source_destroy (tick);
  return ok;
}

/* Peers */

/* A peer of @transport on @host (an IPv4 loopback address) talking to
 * @port of the server; the fixture frees it */
static Peer *
peer_new_at (Fixture       *f,
             RndzTransport  transport,
             guint16        port,
             const char    *host)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;
  Peer *peer = g_new0 (Peer, 1);

  peer->transport = transport;
  peer->to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  peer->socket = g_socket_new (G_SOCKET_FAMILY_IPV4,
                               transport == RNDZ_TRANSPORT_UDP ? G_SOCKET_TYPE_DATAGRAM : G_SOCKET_TYPE_STREAM,
                               0, &error);
  g_assert_no_error (error);
  g_socket_bind (peer->socket, local, FALSE, &error);
  g_assert_no_error (error);
  if (transport == RNDZ_TRANSPORT_TCP)
    {
      g_socket_connect (peer->socket, peer->to, NULL, &error);
      g_assert_no_error (error);
    }
  g_socket_set_blocking (peer->socket, FALSE);

  bound = g_socket_get_local_address (peer->socket, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&peer->local, bound));
  g_ptr_array_add (f->peers, peer);
  return peer;
}

static Peer *
peer_new (Fixture *f,
          guint16  port)
{
  return peer_new_at (f, f->transport, port, "127.0.0.1");
}

static void
register_peer (Fixture    *f,
               Peer       *peer,
               const char *id)
{
  RndzMessage msg;
  guint32 tid = f->next_tid++;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  rndz_test_peer_send (peer, &msg);
  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_PONG, tid, NULL, WAIT_MS);
}

/* Sends a relay request padded as the client pads it; returns the
 * bytes sent */
static gsize
send_relay_tid (Peer       *peer,
                guint32     tid,
                const char *id,
                const char *target)
{
  char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg;
  gsize len;

  rndz_message_init (&msg, RNDZ_MESSAGE_RELAY, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  if (peer->transport == RNDZ_TRANSPORT_UDP)
    {
      msg.pad_to = rndz_message_max_reply_size (&msg);
      len = rndz_message_encode (&msg, buf, sizeof buf);
    }
  else
    len = rndz_message_encode_frame (&msg, buf, sizeof buf);
  g_assert_cmpuint (len, >, 0);
  rndz_test_peer_send_raw (peer, buf, len);
  return len;
}

static guint32
send_relay (Fixture    *f,
            Peer       *peer,
            const char *id,
            const char *target)
{
  guint32 tid = f->next_tid++;

  send_relay_tid (peer, tid, id, target);
  return tid;
}

static void
expect_session (Fixture     *f,
                Peer        *peer,
                guint32      tid,
                RndzMessage *msg)
{
  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_SESSION, tid, msg, WAIT_MS);
  g_assert_cmpuint (strlen (msg->token), ==, RNDZ_TOKEN_LEN);
}

static void
send_hello (Peer       *peer,
            const char *id,
            const char *token,
            guint32     tid)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_HELLO, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.token, token, sizeof msg.token);
  rndz_test_peer_send (peer, &msg);
}

/* Registers alice, has bob ask for a relay to her; both from 127.0.0.1.
 * Returns the token, to be freed. */
static char *
open_session (Fixture  *f,
              Peer    **alice_server,
              Peer    **bob_server)
{
  RndzMessage to_bob, to_alice;
  guint32 tid;

  *alice_server = peer_new (f, f->port);
  *bob_server = peer_new (f, f->port);
  register_peer (f, *alice_server, "alice");
  register_peer (f, *bob_server, "bob");

  tid = send_relay (f, *bob_server, "bob", "alice");
  expect_session (f, *bob_server, tid, &to_bob);
  expect_session (f, *alice_server, 0, &to_alice);
  g_assert_cmpstr (to_bob.token, ==, to_alice.token);
  return g_strdup (to_bob.token);
}

/* Both join from 127.0.0.1: bob first, then alice; both get ready */
static void
join_session (Fixture     *f,
              const char  *token,
              Peer       **alice,
              Peer       **bob)
{
  *bob = peer_new (f, f->relay_port);
  *alice = peer_new (f, f->relay_port);

  send_hello (*bob, "bob", token, 101);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    rndz_test_peer_expect (f->context, *bob, RNDZ_MESSAGE_WAIT, 101, NULL, WAIT_MS);
  else
    rndz_test_peer_expect_silence (f->context, *bob, QUIET_MS);

  send_hello (*alice, "alice", token, 202);
  rndz_test_peer_expect (f->context, *alice, RNDZ_MESSAGE_READY, 202, NULL, WAIT_MS);
  rndz_test_peer_expect (f->context, *bob, RNDZ_MESSAGE_READY, 101, NULL, WAIT_MS);
}

/* A datagram from @from arrives at @to unchanged */
static void
expect_forwarded (Fixture *f,
                  Peer    *from,
                  Peer    *to)
{
  static const char data[] = "relayed, not read";
  char buf[64];
  gssize n;

  rndz_test_peer_send_raw (from, data, sizeof data);
  n = rndz_test_receive_from (f->context, to->socket, NULL, buf, sizeof buf, WAIT_MS);
  g_assert_cmpmem (buf, n, data, sizeof data);
}

/* Every byte that arrives at the sockets of @peers for @ms */
static gsize
bytes_received (Fixture *f,
                Peer   **peers,
                guint    n_peers,
                guint    ms)
{
  gint64 end = g_get_monotonic_time () + ms * (gint64) 1000;
  gsize total = 0;
  char buf[2048];

  while (g_get_monotonic_time () < end)
    {
      rndz_test_run_for (f->context, 5);
      for (guint i = 0; i < n_peers; i++)
        for (;;)
          {
            gssize n = recv (g_socket_get_fd (peers[i]->socket), buf, sizeof buf, MSG_DONTWAIT);

            if (n <= 0)
              break;
            total += n;
          }
    }
  return total;
}

/* Fixture */

static void
fixture_setup (Fixture       *f,
               gconstpointer  user_data)
{
  f->transport = GPOINTER_TO_INT (user_data);
  f->next_tid = 1;
  f->peers = g_ptr_array_new_with_free_func ((GDestroyNotify) rndz_test_peer_free);
  f->context = g_main_context_new ();
  g_main_context_push_thread_default (f->context);
  f->server = rndz_server_new ();
  /* Tests ask for sessions quickly, from one address */
  rndz_server_set_request_rate (f->server, 1000);

  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GSocketAddress) address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
      g_autoptr(GError) error = NULL;

      f->relay_port = rndz_test_free_port ();
      rndz_server_set_relay_port (f->server, f->relay_port);
      if (rndz_server_listen (f->server, address, &error))
        break;
      /* Someone took the port meanwhile */
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
      g_assert_cmpuint (attempt, <, 8);
    }
  f->port = rndz_server_get_port (f->server);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  user_data)
{
  g_ptr_array_unref (f->peers);
  g_clear_object (&f->server);
  rndz_test_drain (f->context);
  g_main_context_pop_thread_default (f->context);
  g_main_context_unref (f->context);
}

/* Tests */

static void
test_forged_hello (Fixture       *f,
                   gconstpointer  user_data)
{
  g_autofree char *token = NULL;
  Peer *alice_server, *bob_server, *alice, *bob, *forger;
  RndzServerStats before, after;

  g_test_summary ("A hello with the right token and id from another address than the "
                  "server knows for that peer (a forged source) binds nothing, and "
                  "nothing is ever sent there; the real peers then join and talk");

  token = open_session (f, &alice_server, &bob_server);
  rndz_server_get_stats (f->server, &before);

  /* The forger claims both sides, from 127.0.0.2 */
  forger = peer_new_at (f, f->transport, f->relay_port, "127.0.0.2");
  send_hello (forger, "alice", token, 11);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      send_hello (forger, "bob", token, 12);
      rndz_test_peer_expect_silence (f->context, forger, QUIET_MS);
    }
  else
    rndz_test_peer_expect_closed (f->context, forger, WAIT_MS);
  rndz_server_get_stats (f->server, &after);
  g_assert_cmpuint (after.relay_dropped, >, before.relay_dropped);

  /* Neither side was taken: bob waits for alice, both get ready */
  join_session (f, token, &alice, &bob);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      expect_forwarded (f, bob, alice);
      expect_forwarded (f, alice, bob);
      rndz_test_peer_expect_silence (f->context, forger, QUIET_MS);
    }
}

static void
test_hello_other_id (Fixture       *f,
                     gconstpointer  user_data)
{
  g_autofree char *token = NULL;
  Peer *alice_server, *bob_server, *alice, *bob;

  g_test_summary ("A hello for the session from a bound address is answered, whichever "
                  "of the session's ids it names, and never forwarded");

  token = open_session (f, &alice_server, &bob_server);

  /* Bob, alone, says hello in alice's name too: wait, not a bind */
  bob = peer_new (f, f->relay_port);
  send_hello (bob, "bob", token, 1);
  rndz_test_peer_expect (f->context, bob, RNDZ_MESSAGE_WAIT, 1, NULL, WAIT_MS);
  send_hello (bob, "alice", token, 2);
  rndz_test_peer_expect (f->context, bob, RNDZ_MESSAGE_WAIT, 2, NULL, WAIT_MS);

  alice = peer_new (f, f->relay_port);
  send_hello (alice, "alice", token, 3);
  rndz_test_peer_expect (f->context, alice, RNDZ_MESSAGE_READY, 3, NULL, WAIT_MS);
  rndz_test_peer_expect (f->context, bob, RNDZ_MESSAGE_READY, 2, NULL, WAIT_MS);

  /* Ready: hellos naming either id are answered, not forwarded */
  send_hello (bob, "alice", token, 4);
  rndz_test_peer_expect (f->context, bob, RNDZ_MESSAGE_READY, 4, NULL, WAIT_MS);
  send_hello (alice, "bob", token, 5);
  rndz_test_peer_expect (f->context, alice, RNDZ_MESSAGE_READY, 5, NULL, WAIT_MS);
  rndz_test_peer_expect_silence (f->context, alice, QUIET_MS);
  rndz_test_peer_expect_silence (f->context, bob, QUIET_MS);
  expect_forwarded (f, bob, alice);
}

static void
test_amplification (Fixture       *f,
                    gconstpointer  user_data)
{
  Peer *alice_server, *bob_server;
  Peer *receivers[2];
  RndzMessage msg;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize in, out, len;
  guint32 tid;

  g_test_summary ("Over UDP, everything a relay request makes the server send, to the "
                  "requester and to the target, is no larger than the request, for a "
                  "retransmission too; a relay padded for the requester's session only "
                  "gets nothing");

  alice_server = peer_new (f, f->port);
  bob_server = peer_new (f, f->port);
  register_peer (f, alice_server, "alice");
  register_peer (f, bob_server, "bob");
  receivers[0] = bob_server;
  receivers[1] = alice_server;

  /* As the client pads it: both sessions go out */
  tid = f->next_tid++;
  in = send_relay_tid (bob_server, tid, "bob", "alice");
  out = bytes_received (f, receivers, 2, QUIET_MS);
  g_test_message ("relay: %" G_GSIZE_FORMAT " bytes in, %" G_GSIZE_FORMAT " out (%.2fx)",
                  in, out, (double) out / in);
  g_assert_cmpuint (out, >, 2 * 100);
  g_assert_cmpuint (out, <=, in);

  /* Its retransmission */
  in = send_relay_tid (bob_server, tid, "bob", "alice");
  out = bytes_received (f, receivers, 2, QUIET_MS);
  g_test_message ("retransmission: %" G_GSIZE_FORMAT " bytes in, %" G_GSIZE_FORMAT " out (%.2fx)",
                  in, out, (double) out / in);
  g_assert_cmpuint (out, <=, in);
  g_assert_cmpuint (rndz_server_get_relay_session_count (f->server), ==, 1);

  /* Padded as earlier versions padded it: for the reply alone */
  rndz_message_init (&msg, RNDZ_MESSAGE_SESSION, G_MAXUINT32);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  memset (msg.token, 'f', RNDZ_TOKEN_LEN);
  msg.port = G_MAXUINT16;
  len = rndz_message_encode (&msg, buf, sizeof buf);
  rndz_message_init (&msg, RNDZ_MESSAGE_RELAY, f->next_tid++);
  g_strlcpy (msg.id, "carol", sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  msg.pad_to = len;
  in = rndz_message_encode (&msg, buf, sizeof buf);
  rndz_test_peer_send_raw (bob_server, buf, in);
  out = bytes_received (f, receivers, 2, QUIET_MS);
  g_test_message ("relay padded to %" G_GSIZE_FORMAT ": %" G_GSIZE_FORMAT " bytes in, %"
                  G_GSIZE_FORMAT " out", len, in, out);
  g_assert_cmpuint (out, ==, 0);
  g_assert_cmpuint (rndz_server_get_relay_session_count (f->server), ==, 1);
}

/* Sends @n relay requests from a fresh socket on @host, each for
 * another requester id; returns how many got a session */
static guint
relay_burst (Fixture    *f,
             const char *host,
             guint       n)
{
  Peer *peer = peer_new_at (f, RNDZ_TRANSPORT_UDP, f->port, host);
  guint sessions = 0;

  for (guint i = 0; i < n; i++)
    {
      /* Ids never used before: not a request for a pair again */
      g_autofree char *id = g_strdup_printf ("%s-%u", host, f->next_tid);

      send_relay (f, peer, id, "alice");
    }
  /* Refusals are rate limited per address: count the sessions */
  for (;;)
    {
      RndzMessage msg;
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
      gssize len;

      if (!rndz_test_run_until_readable (f->context, peer->socket, QUIET_MS))
        break;
      len = recv (g_socket_get_fd (peer->socket), buf, sizeof buf, MSG_DONTWAIT);
      if (len > 0 && rndz_message_decode (&msg, buf, len, sizeof buf, NULL) &&
          msg.type == RNDZ_MESSAGE_SESSION)
        sessions++;
      else if (len > 0)
        g_assert_true (msg.type == RNDZ_MESSAGE_ERROR && msg.code == RNDZ_WIRE_ERROR_SERVER_FULL);
    }
  g_test_message ("%u relay requests from %s: %u sessions", n, host, sessions);
  return sessions;
}

static void
test_caps (Fixture       *f,
           gconstpointer  user_data)
{
  Peer *alice_server;

  g_test_summary ("One address gets at most relay-max-sessions-per-address sessions "
                  "(4) however many it asks for, one network (IPv4 /16) at most "
                  "relay-max-sessions-per-network (16); other addresses and networks "
                  "still get theirs");

  g_assert_cmpuint (rndz_server_get_relay_max_sessions_per_address (f->server), ==, 4);
  g_assert_cmpuint (rndz_server_get_relay_max_sessions_per_network (f->server), ==, 16);
  g_assert_cmpuint (rndz_server_get_relay_max_sessions (f->server), ==, 64);

  alice_server = peer_new (f, f->port);
  register_peer (f, alice_server, "alice");

  g_assert_cmpuint (relay_burst (f, "127.0.0.1", 64), ==, 4);
  g_assert_cmpuint (relay_burst (f, "127.0.0.2", 1), ==, 1);
  g_assert_cmpuint (relay_burst (f, "127.0.0.2", 64), ==, 3);
  g_assert_cmpuint (relay_burst (f, "127.0.0.3", 64), ==, 4);
  g_assert_cmpuint (relay_burst (f, "127.0.0.4", 64), ==, 4);
  /* 127.0.0.0/16 holds 16 */
  g_assert_cmpuint (relay_burst (f, "127.0.0.5", 1), ==, 0);
  g_assert_cmpuint (relay_burst (f, "127.0.9.9", 1), ==, 0);
  /* Another network */
  g_assert_cmpuint (relay_burst (f, "127.1.0.1", 1), ==, 1);
  g_assert_cmpuint (rndz_server_get_relay_session_count (f->server), ==, 17);

  /* Raised, the caps let more in */
  g_object_set (f->server, "relay-max-sessions-per-address", 8,
                "relay-max-sessions-per-network", 64, NULL);
  g_assert_cmpuint (relay_burst (f, "127.0.0.1", 64), ==, 4);
}

static void
test_same_pair (Fixture       *f,
                gconstpointer  user_data)
{
  g_autofree char *token = NULL;
  Peer *alice_server, *bob_server, *alice, *bob, *late;
  RndzMessage to_bob, to_alice;
  guint32 tid;

  g_test_summary ("A new relay request for the same pair from the same host replaces the "
                  "session not joined yet, rather than holding a second one; a started "
                  "session stays");

  token = open_session (f, &alice_server, &bob_server);
  for (guint i = 0; i < 8; i++)
    {
      tid = send_relay (f, bob_server, "bob", "alice");
      expect_session (f, bob_server, tid, &to_bob);
      expect_session (f, alice_server, 0, &to_alice);
      g_assert_cmpstr (to_bob.token, ==, to_alice.token);
      g_assert_cmpstr (to_bob.token, !=, token);
      g_assert_cmpuint (rndz_server_get_relay_session_count (f->server), ==, 1);
    }

  /* The replaced token is dead; the last one works */
  late = peer_new (f, f->relay_port);
  send_hello (late, "bob", token, 1);
  rndz_test_peer_expect_silence (f->context, late, QUIET_MS);
  join_session (f, to_bob.token, &alice, &bob);

  /* Started: another request is another session */
  tid = send_relay (f, bob_server, "bob", "alice");
  expect_session (f, bob_server, tid, &to_bob);
  g_assert_cmpuint (rndz_server_get_relay_session_count (f->server), ==, 2);
  expect_forwarded (f, bob, alice);
}

/* The relay closed @peer's connection: relayed bytes, then EOF or reset */
static void
expect_eof (Fixture *f,
            Peer    *peer)
{
  char buf[4096];
  gssize n;

  do
    {
      rndz_test_wait_readable (f->context, peer->socket, WAIT_MS, "the end of the connection");
      n = recv (g_socket_get_fd (peer->socket), buf, sizeof buf, MSG_DONTWAIT);
    }
  while (n > 0);
}

static gboolean
send_data_cb (gpointer user_data)
{
  Peer *peer = user_data;

  rndz_test_peer_send_raw (peer, "keepalive", 9);
  return G_SOURCE_CONTINUE;
}

static void
test_max_lifetime (Fixture       *f,
                   gconstpointer  user_data)
{
  g_autofree char *token = NULL;
  Peer *alice_server, *bob_server, *alice, *bob;
  g_autoptr(GSource) traffic = NULL;
  gint64 start;

  g_test_summary ("A session ends at relay-max-lifetime even while traffic flows");

  g_assert_cmpuint (rndz_server_get_relay_max_lifetime (f->server), ==, 3600 * 1000);
  g_object_set (f->server, "relay-max-lifetime", 1000, NULL);
  start = g_get_monotonic_time ();
  token = open_session (f, &alice_server, &bob_server);
  join_session (f, token, &alice, &bob);

  /* Never idle */
  traffic = g_timeout_source_new (50);
  g_source_set_callback (traffic, send_data_cb, bob, NULL);
  g_source_attach (traffic, f->context);
  g_assert_true (pump_until (f, no_sessions_cb, f, WAIT_MS));
  g_source_destroy (traffic);
  g_test_message ("session closed after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - start) / 1000);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 1000 * 1000);

  /* Nothing goes through any more */
  if (f->transport == RNDZ_TRANSPORT_TCP)
    {
      expect_eof (f, alice);
      expect_eof (f, bob);
      return;
    }
  while (g_socket_condition_check (alice->socket, G_IO_IN))
    {
      char buf[64];

      g_assert_cmpint (recv (g_socket_get_fd (alice->socket), buf, sizeof buf, MSG_DONTWAIT), >, 0);
    }
  rndz_test_peer_send_raw (bob, "late", 4);
  rndz_test_peer_expect_silence (f->context, alice, QUIET_MS);
}

int
main (int   argc,
      char *argv[])
{
  gconstpointer udp = GINT_TO_POINTER (RNDZ_TRANSPORT_UDP);
  gconstpointer tcp = GINT_TO_POINTER (RNDZ_TRANSPORT_TCP);

  g_test_init (&argc, &argv, NULL);

  g_test_add ("/relay-abuse/udp/forged-hello", Fixture, udp,
              fixture_setup, test_forged_hello, fixture_teardown);
  g_test_add ("/relay-abuse/tcp/forged-hello", Fixture, tcp,
              fixture_setup, test_forged_hello, fixture_teardown);
  g_test_add ("/relay-abuse/udp/hello-other-id", Fixture, udp,
              fixture_setup, test_hello_other_id, fixture_teardown);
  g_test_add ("/relay-abuse/udp/amplification", Fixture, udp,
              fixture_setup, test_amplification, fixture_teardown);
  g_test_add ("/relay-abuse/udp/caps", Fixture, udp,
              fixture_setup, test_caps, fixture_teardown);
  g_test_add ("/relay-abuse/udp/same-pair", Fixture, udp,
              fixture_setup, test_same_pair, fixture_teardown);
  g_test_add ("/relay-abuse/udp/max-lifetime", Fixture, udp,
              fixture_setup, test_max_lifetime, fixture_teardown);
  g_test_add ("/relay-abuse/tcp/max-lifetime", Fixture, tcp,
              fixture_setup, test_max_lifetime, fixture_teardown);

  return g_test_run ();
}
