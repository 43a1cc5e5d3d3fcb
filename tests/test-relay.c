/* test-relay.c: the server's relay, driven by raw sockets acting as peers
 *
 * SPDX-License-Identifier: MIT
 *
 * Every test runs its own server on a fresh thread-default main context,
 * on 127.0.0.1 or ::1, with a relay port found free just before. Peers
 * are plain non-blocking GSockets: "bob" asks the server to relay to
 * "alice"; both then join the session on the relay port. Every wait is
 * bounded: a test fails rather than hangs.
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
#define SECRET "correct horse battery staple"

typedef struct
{
  RndzTransport transport;
  GSocketFamily family;
} TestParams;

/* Sends to the main port or the relay port; replies come from there */
typedef RndzTestPeer Peer;

typedef struct
{
  const TestParams *params;
  RndzTransport transport;
  GSocketFamily family;
  GMainContext *context;
  RndzServer *server;
  guint16 port;
  guint16 relay_port;
  guint32 next_tid;
  gboolean skipped;
  GPtrArray *peers;
  GBytes *secret;           /* authentication on when set */
} Fixture;

/* The two peers of a relayed exchange, once both joined */
typedef struct
{
  Peer *alice_server;
  Peer *bob_server;
  Peer *alice;
  Peer *bob;
  char token[RNDZ_TOKEN_LEN + 1];
} Pair;

/* Main context */

static gboolean
continue_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the context until @done says so or @ms passed. @done moves bytes
 * between the test's own sockets, which no source watches: a 1 ms tick
 * has it run often. */
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

static guint
session_count (Fixture *f)
{
  return rndz_server_get_relay_session_count (f->server);
}

static gboolean
no_sessions_cb (gpointer user_data)
{
  return session_count (user_data) == 0;
}

/* Peers */

/* A socket talking to @port of the server: the main port or the relay
 * port; the fixture frees it */
static Peer *
peer_new (Fixture       *f,
          RndzTransport  transport,
          guint16        port)
{
  Peer *peer = rndz_test_peer_new (transport, f->family, port);

  g_ptr_array_add (f->peers, peer);
  return peer;
}

/* Nothing arrives for a while */
static void
expect_silence (Fixture *f,
                Peer    *peer)
{
  rndz_test_peer_expect_silence (f->context, peer, QUIET_MS);
}

/* The server closes the connection (EOF or reset) */
static void
expect_closed (Fixture *f,
               Peer    *peer)
{
  rndz_test_peer_expect_closed (f->context, peer, WAIT_MS);
}

/* Messages */

static GBytes *
key_for (const char *id)
{
  g_autoptr(GBytes) secret = g_bytes_new_static (SECRET, strlen (SECRET));

  return rndz_derive_key (secret, id);
}

static void
maybe_sign (Fixture     *f,
            RndzMessage *msg)
{
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GSocketAddress) server = NULL;
  RndzAddr srv;

  if (f->secret == NULL)
    return;
  key = key_for (msg->id);
  /* Signed for the server's main port, where the peers send */
  server = rndz_test_loopback_address (f->family, f->port);
  g_assert_true (rndz_addr_from_socket_address (&srv, server));
  rndz_message_sign (msg, &srv, key, g_get_real_time () / 1000);
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
  maybe_sign (f, &msg);
  rndz_test_peer_send (peer, &msg);
  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_PONG, tid, NULL, WAIT_MS);
}

static void
send_relay_tid (Fixture    *f,
                Peer       *peer,
                guint32     tid,
                const char *id,
                const char *target,
                gboolean    sign)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_RELAY, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  if (sign)
    maybe_sign (f, &msg);
  rndz_test_peer_send (peer, &msg);
}

static guint32
send_relay (Fixture    *f,
            Peer       *peer,
            const char *id,
            const char *target)
{
  guint32 tid = f->next_tid++;

  send_relay_tid (f, peer, tid, id, target, TRUE);
  return tid;
}

static void
expect_error (Fixture       *f,
              Peer          *peer,
              guint32        tid,
              RndzWireError  code)
{
  RndzMessage msg;

  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_ERROR, tid, &msg, WAIT_MS);
  g_assert_cmpint (msg.code, ==, code);
}

/* A session message: to the requester (@tid its own) or to the target
 * (@tid 0: the server chooses) */
static void
expect_session (Fixture     *f,
                Peer        *peer,
                guint32      tid,
                const char  *id,
                RndzMessage *msg)
{
  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_SESSION, tid, msg, WAIT_MS);
  g_assert_cmpstr (msg->id, ==, id);
  g_assert_cmpuint (msg->port, ==, f->relay_port);
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

/* Registers alice, has bob ask for a relay to her; returns the token
 * that both got */
static void
open_session (Fixture *f,
              Pair    *pair)
{
  RndzMessage to_bob, to_alice;
  guint32 tid;

  pair->alice_server = peer_new (f, f->transport, f->port);
  pair->bob_server = peer_new (f, f->transport, f->port);
  register_peer (f, pair->alice_server, "alice");
  register_peer (f, pair->bob_server, "bob");

  tid = send_relay (f, pair->bob_server, "bob", "alice");
  expect_session (f, pair->bob_server, tid, "alice", &to_bob);
  expect_session (f, pair->alice_server, 0, "bob", &to_alice);
  g_assert_cmpstr (to_bob.token, ==, to_alice.token);
  g_assert_cmpint (to_alice.auth, ==, f->secret != NULL);
  g_assert_false (to_bob.auth);
  g_strlcpy (pair->token, to_bob.token, sizeof pair->token);
}

/* Both join: bob first (told to wait, over UDP; told nothing over TCP),
 * then alice; both get ready */
static void
join_session (Fixture *f,
              Pair    *pair)
{
  pair->bob = peer_new (f, f->transport, f->relay_port);
  pair->alice = peer_new (f, f->transport, f->relay_port);

  send_hello (pair->bob, "bob", pair->token, 101);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    rndz_test_peer_expect (f->context, pair->bob, RNDZ_MESSAGE_WAIT, 101, NULL, WAIT_MS);
  else
    expect_silence (f, pair->bob);

  send_hello (pair->alice, "alice", pair->token, 202);
  rndz_test_peer_expect (f->context, pair->alice, RNDZ_MESSAGE_READY, 202, NULL, WAIT_MS);
  rndz_test_peer_expect (f->context, pair->bob, RNDZ_MESSAGE_READY, 101, NULL, WAIT_MS);
}

static void
relay_pair (Fixture *f,
            Pair    *pair)
{
  open_session (f, pair);
  join_session (f, pair);
}

/* Data */

static GBytes *
random_bytes (gsize len)
{
  guint8 *data = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    data[i] = g_random_int_range (0, 256);
  return g_bytes_new_take (data, len);
}

/* A datagram from @from arrives at @to, byte for byte, from the relay */
static void
expect_forwarded_data (Fixture    *f,
                       Peer       *from,
                       Peer       *to,
                       const void *data,
                       gsize       len)
{
  g_autoptr(GBytes) sent = g_bytes_new (data, len);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) source = NULL;
  g_autofree char *buf = g_malloc (len + 1);
  gssize n;

  rndz_test_peer_send_raw (from, g_bytes_get_data (sent, NULL), len);
  do
    {
      g_clear_error (&error);
      g_clear_object (&source);
      rndz_test_wait_readable (f->context, to->socket, WAIT_MS, "a forwarded datagram");
      n = g_socket_receive_from (to->socket, &source, buf, len + 1, NULL, &error);
    }
  while (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK));
  g_assert_no_error (error);
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (source)), ==, f->relay_port);
  g_assert_cmpmem (buf, n, g_bytes_get_data (sent, NULL), len);
}

static void
expect_forwarded (Fixture *f,
                  Peer    *from,
                  Peer    *to,
                  gsize    len)
{
  g_autoptr(GBytes) sent = random_bytes (len);

  expect_forwarded_data (f, from, to, g_bytes_get_data (sent, NULL), len);
}

/* One direction of a TCP transfer */
typedef struct
{
  GSocket *from;
  GSocket *to;
  GBytes *data;
  gsize sent;
  gboolean shut;
  GByteArray *received;
  gboolean eof;
  gboolean close_when_sent;
} Stream;

static void
stream_init (Stream  *stream,
             Peer    *from,
             Peer    *to,
             GBytes  *data)
{
  memset (stream, 0, sizeof *stream);
  stream->from = from->socket;
  stream->to = to->socket;
  stream->data = data != NULL ? g_bytes_ref (data) : NULL;
  stream->received = g_byte_array_new ();
  /* Bytes read with a frame already */
  g_byte_array_append (stream->received, to->in_buf, to->in_len);
  to->in_len = 0;
}

static void
stream_clear (Stream *stream)
{
  g_clear_pointer (&stream->data, g_bytes_unref);
  g_byte_array_unref (stream->received);
}

/* Moves what the sockets take; TRUE if anything moved */
static gboolean
stream_pump (Stream *stream)
{
  gboolean progress = FALSE;
  gsize len = 0;
  const guint8 *data = stream->data != NULL ? g_bytes_get_data (stream->data, &len) : NULL;
  guint8 buf[65536];

  while (stream->sent < len)
    {
      gssize n = send (g_socket_get_fd (stream->from), data + stream->sent,
                       MIN (len - stream->sent, 65536), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n <= 0)
        break;
      stream->sent += n;
      progress = TRUE;
    }
  if (stream->data != NULL && stream->sent == len && !stream->shut && stream->close_when_sent)
    {
      shutdown (g_socket_get_fd (stream->from), SHUT_WR);
      stream->shut = TRUE;
    }

  while (!stream->eof)
    {
      gssize n = recv (g_socket_get_fd (stream->to), buf, sizeof buf, MSG_DONTWAIT);

      if (n < 0)
        break;
      if (n == 0)
        stream->eof = TRUE;
      else
        g_byte_array_append (stream->received, buf, n);
      progress = TRUE;
    }

  return progress;
}

typedef struct
{
  Stream *streams;
  guint n_streams;
} Transfer;

static gboolean
transfer_done_cb (gpointer user_data)
{
  Transfer *transfer = user_data;
  gboolean done = TRUE;

  for (guint i = 0; i < transfer->n_streams; i++)
    {
      stream_pump (&transfer->streams[i]);
      done = done && transfer->streams[i].eof;
    }
  return done;
}

/* Sockets */

/* Fixture */

static void
fixture_listen (Fixture  *f,
                gboolean  relay)
{
  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GSocketAddress) address = rndz_test_loopback_address (f->family, 0);
      g_autoptr(GError) error = NULL;

      f->relay_port = relay ? rndz_test_free_port_for (f->family) : 0;
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
fixture_setup (Fixture       *f,
               gconstpointer  user_data)
{
  f->params = user_data;
  f->transport = f->params->transport;
  f->family = f->params->family;
  f->next_tid = 1;
  f->peers = g_ptr_array_new_with_free_func ((GDestroyNotify) rndz_test_peer_free);

  if (f->family == G_SOCKET_FAMILY_IPV6 && !rndz_test_have_ipv6 ())
    {
      g_test_skip ("IPv6 loopback is unavailable");
      f->skipped = TRUE;
      return;
    }

  f->context = g_main_context_new ();
  g_main_context_push_thread_default (f->context);
  f->server = rndz_server_new ();
  /* Tests ask for sessions quickly, from one address */
  rndz_server_set_request_rate (f->server, 1000);
  fixture_listen (f, TRUE);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  user_data)
{
  g_ptr_array_unref (f->peers);
  g_clear_pointer (&f->secret, g_bytes_unref);
  if (f->skipped)
    return;

  g_clear_object (&f->server);
  /* Let destroyed sources go */
  rndz_test_drain (f->context);
  g_main_context_pop_thread_default (f->context);
  g_main_context_unref (f->context);
}

/* Tests */

static void
test_properties (Fixture       *f,
                 gconstpointer  user_data)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  guint port, max_sessions, rate, idle;
  GParamSpec *pspec;

  g_test_summary ("The relay properties: defaults, setters and GObject access agree");

  g_object_get (server, "relay-port", &port, "relay-max-sessions", &max_sessions,
                "relay-rate", &rate, "relay-idle-timeout", &idle, NULL);
  g_assert_cmpuint (port, ==, 0);
  g_assert_cmpuint (max_sessions, ==, 64);
  g_assert_cmpuint (rate, ==, 1048576);
  g_assert_cmpuint (idle, ==, 60000);

  g_object_set (server, "relay-port", 7777, "relay-max-sessions", 3,
                "relay-rate", 0, "relay-idle-timeout", 5500, NULL);
  g_assert_cmpuint (rndz_server_get_relay_port (server), ==, 7777);
  g_assert_cmpuint (rndz_server_get_relay_max_sessions (server), ==, 3);
  g_assert_cmpuint (rndz_server_get_relay_rate (server), ==, 0);
  g_assert_cmpuint (rndz_server_get_relay_idle_timeout (server), ==, 5500);

  /* A port is a guint16; the property is a uint up to G_MAXUINT16 */
  rndz_server_set_relay_port (server, G_MAXUINT16);
  g_assert_cmpuint (rndz_server_get_relay_port (server), ==, G_MAXUINT16);
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (server), "relay-port");
  g_assert_cmpuint (G_PARAM_SPEC_UINT (pspec)->maximum, ==, G_MAXUINT16);
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (server), "relay-idle-timeout");
  g_assert_cmpuint (G_PARAM_SPEC_UINT (pspec)->minimum, ==, 1000);
  g_assert_cmpuint (G_PARAM_SPEC_UINT (pspec)->maximum, ==, 7 * 24 * 3600 * 1000);
}

static void
test_listen_errors (Fixture       *f,
                    gconstpointer  user_data)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GSocket) taken = NULL;
  g_autoptr(GSocket) check = NULL;
  g_autoptr(GSocketAddress) taken_address = NULL;
  g_autoptr(GSocketAddress) main_address = NULL;
  g_autoptr(GError) error = NULL;
  guint16 main_port;

  g_test_summary ("A relay port that cannot be bound fails listen() with an error, and "
                  "leaves nothing bound; the relay port cannot be the server's port");

  if (f->skipped)
    return;
  rndz_server_stop (f->server);

  /* Someone else has the relay port, over UDP */
  taken = g_socket_new (f->family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  taken_address = rndz_test_loopback_address (f->family, rndz_test_free_port_for (f->family));
  g_socket_bind (taken, taken_address, FALSE, &error);
  g_assert_no_error (error);

  main_port = rndz_test_free_port_for (f->family);
  main_address = rndz_test_loopback_address (f->family, main_port);
  rndz_server_set_relay_port (server, g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (taken_address)));
  g_assert_false (rndz_server_listen (server, main_address, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
  g_test_message ("%s", error->message);
  g_clear_error (&error);
  g_assert_cmpuint (rndz_server_get_port (server), ==, 0);

  /* The main port was let go */
  check = g_socket_new (f->family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (check, main_address, FALSE, &error));
  g_assert_no_error (error);
  g_socket_close (check, NULL);

  rndz_server_set_relay_port (server, main_port);
  g_assert_false (rndz_server_listen (server, main_address, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
}

static void
test_no_relay (Fixture       *f,
               gconstpointer  user_data)
{
  Peer *alice, *bob;
  guint32 tid;
  gint64 start;

  g_test_summary ("Without a relay port, a relay request gets no-relay at once");

  if (f->skipped)
    return;
  rndz_server_stop (f->server);
  fixture_listen (f, FALSE);

  alice = peer_new (f, f->transport, f->port);
  bob = peer_new (f, f->transport, f->port);
  register_peer (f, alice, "alice");

  start = g_get_monotonic_time ();
  tid = send_relay (f, bob, "bob", "alice");
  expect_error (f, bob, tid, RNDZ_WIRE_ERROR_NO_RELAY);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
  expect_silence (f, alice);
}

static void
test_unknown_target (Fixture       *f,
                     gconstpointer  user_data)
{
  Peer *bob;
  guint32 tid;

  g_test_summary ("A relay to a peer that is not registered gets peer-not-found; "
                  "a relay to oneself gets bad-request");

  if (f->skipped)
    return;

  bob = peer_new (f, f->transport, f->port);
  tid = send_relay (f, bob, "bob", "nobody");
  expect_error (f, bob, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);

  register_peer (f, bob, "bob");
  tid = send_relay (f, bob, "bob", "bob");
  expect_error (f, bob, tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
  g_assert_cmpuint (session_count (f), ==, 0);
}

static void
test_max_sessions (Fixture       *f,
                   gconstpointer  user_data)
{
  Pair pair = { 0, };
  RndzMessage msg;
  guint32 tid;

  g_test_summary ("Beyond relay-max-sessions, relay requests get server-full; "
                  "a retransmitted request gets its session again");

  if (f->skipped)
    return;
  rndz_server_set_relay_max_sessions (f->server, 1);

  open_session (f, &pair);
  g_assert_cmpuint (session_count (f), ==, 1);

  /* The same tid again: the same session, told to both again */
  send_relay_tid (f, pair.bob_server, f->next_tid - 1, "bob", "alice", TRUE);
  expect_session (f, pair.bob_server, f->next_tid - 1, "alice", &msg);
  g_assert_cmpstr (msg.token, ==, pair.token);
  expect_session (f, pair.alice_server, 0, "bob", &msg);
  g_assert_cmpstr (msg.token, ==, pair.token);

  /* Another pair (the same pair again would replace the session) */
  tid = send_relay (f, pair.bob_server, "carol", "alice");
  expect_error (f, pair.bob_server, tid, RNDZ_WIRE_ERROR_SERVER_FULL);
  g_assert_cmpuint (session_count (f), ==, 1);
}

static void
test_exchange (Fixture       *f,
               gconstpointer  user_data)
{
  Pair pair = { 0, };
  RndzServerStats stats;

  g_test_summary ("Two peers join a session; traffic goes both ways unchanged");

  if (f->skipped)
    return;

  relay_pair (f, &pair);

  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      /* A hello again from a bound endpoint: ready, not forwarded */
      send_hello (pair.bob, "bob", pair.token, 303);
      rndz_test_peer_expect (f->context, pair.bob, RNDZ_MESSAGE_READY, 303, NULL, WAIT_MS);
      expect_silence (f, pair.alice);

      expect_forwarded (f, pair.bob, pair.alice, 1);
      expect_forwarded (f, pair.alice, pair.bob, 1200);
      expect_forwarded (f, pair.bob, pair.alice, 8000);
      /* Data that looks like a hello, but is not one for this session */
      {
        const char *lookalike = "{\"v\":1,\"type\":\"hello\",\"tid\":1,\"id\":\"alice\","
                                "\"token\":\"0123456789abcdef0123456789abcdef\"}";

        expect_forwarded_data (f, pair.alice, pair.bob, lookalike, strlen (lookalike));
      }
    }
  else
    {
      g_autoptr(GBytes) to_alice = random_bytes (1000);
      g_autoptr(GBytes) to_bob = random_bytes (3000);
      Stream streams[2];
      Transfer transfer = { streams, 2 };

      stream_init (&streams[0], pair.bob, pair.alice, to_alice);
      stream_init (&streams[1], pair.alice, pair.bob, to_bob);
      streams[0].close_when_sent = streams[1].close_when_sent = TRUE;
      g_assert_true (pump_until (f, transfer_done_cb, &transfer, WAIT_MS));
      g_assert_cmpmem (streams[0].received->data, streams[0].received->len,
                       g_bytes_get_data (to_alice, NULL), 1000);
      g_assert_cmpmem (streams[1].received->data, streams[1].received->len,
                       g_bytes_get_data (to_bob, NULL), 3000);
      stream_clear (&streams[0]);
      stream_clear (&streams[1]);

      /* Both directions done: the session is over */
      g_assert_true (pump_until (f, no_sessions_cb, f, WAIT_MS));
    }

  rndz_server_get_stats (f->server, &stats);
  g_assert_cmpuint (stats.relay_sessions, ==, 1);
  g_assert_cmpuint (stats.relay_bytes, >, 0);
}

static void
test_udp_late_hello (Fixture       *f,
                     gconstpointer  user_data)
{
  Pair pair = { 0, };
  Peer *intruder;

  g_test_summary ("A side is bound by its first hello: the same id from another address "
                  "is dropped, and cannot take the session over");

  if (f->skipped)
    return;

  relay_pair (f, &pair);
  intruder = peer_new (f, RNDZ_TRANSPORT_UDP, f->relay_port);
  send_hello (intruder, "alice", pair.token, 404);
  expect_silence (f, intruder);
  expect_forwarded (f, pair.bob, pair.alice, 100);
  expect_silence (f, intruder);
}

static void
test_tcp_large (Fixture       *f,
                gconstpointer  user_data)
{
  Pair pair = { 0, };
  g_autoptr(GBytes) to_alice = random_bytes (4 * 1024 * 1024);
  g_autoptr(GBytes) to_bob = random_bytes (4 * 1024 * 1024 + 17);
  Stream streams[2];
  Transfer transfer = { streams, 2 };
  gint64 start;
  double seconds;

  g_test_summary ("A TCP session carries 4 MiB each way intact, at once");

  if (f->skipped)
    return;
  rndz_server_set_relay_rate (f->server, 0);

  relay_pair (f, &pair);
  stream_init (&streams[0], pair.bob, pair.alice, to_alice);
  stream_init (&streams[1], pair.alice, pair.bob, to_bob);
  streams[0].close_when_sent = streams[1].close_when_sent = TRUE;

  start = g_get_monotonic_time ();
  g_assert_true (pump_until (f, transfer_done_cb, &transfer, 20 * WAIT_MS));
  seconds = (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_test_message ("8 MiB relayed in %.3f s: %.1f MiB/s", seconds, 8 / seconds);

  g_assert_cmpuint (streams[0].received->len, ==, g_bytes_get_size (to_alice));
  g_assert_cmpmem (streams[0].received->data, streams[0].received->len,
                   g_bytes_get_data (to_alice, NULL), g_bytes_get_size (to_alice));
  g_assert_cmpmem (streams[1].received->data, streams[1].received->len,
                   g_bytes_get_data (to_bob, NULL), g_bytes_get_size (to_bob));
  stream_clear (&streams[0]);
  stream_clear (&streams[1]);
}

static void
test_tcp_half_close (Fixture       *f,
                     gconstpointer  user_data)
{
  Pair pair = { 0, };
  g_autoptr(GBytes) request = random_bytes (5000);
  g_autoptr(GBytes) response = random_bytes (70000);
  Stream streams[2];
  Transfer one = { &streams[0], 1 };
  Transfer both = { streams, 2 };

  g_test_summary ("A TCP side that shuts down writing still gets the other side's answer");

  if (f->skipped)
    return;

  relay_pair (f, &pair);

  /* Bob sends and shuts down: alice reads to the end */
  stream_init (&streams[0], pair.bob, pair.alice, request);
  streams[0].close_when_sent = TRUE;
  g_assert_true (pump_until (f, transfer_done_cb, &one, WAIT_MS));
  g_assert_cmpmem (streams[0].received->data, streams[0].received->len,
                   g_bytes_get_data (request, NULL), 5000);

  /* Then answers, at length */
  g_assert_cmpuint (session_count (f), ==, 1);
  stream_init (&streams[1], pair.alice, pair.bob, response);
  streams[1].close_when_sent = TRUE;
  g_assert_true (pump_until (f, transfer_done_cb, &both, WAIT_MS));
  g_assert_cmpmem (streams[1].received->data, streams[1].received->len,
                   g_bytes_get_data (response, NULL), 70000);
  stream_clear (&streams[0]);
  stream_clear (&streams[1]);

  g_assert_true (pump_until (f, no_sessions_cb, f, WAIT_MS));
}

static void
test_tcp_exact_hello (Fixture       *f,
                      gconstpointer  user_data)
{
  Pair pair = { 0, };
  RndzMessage hello;
  char buf[256];
  gsize len;
  Stream stream;
  Transfer transfer = { &stream, 1 };

  g_test_summary ("The relay reads the hello frame and not a byte more: data sent "
                  "right behind it reaches the other side");

  if (f->skipped)
    return;

  open_session (f, &pair);
  pair.bob = peer_new (f, RNDZ_TRANSPORT_TCP, f->relay_port);
  pair.alice = peer_new (f, RNDZ_TRANSPORT_TCP, f->relay_port);

  rndz_message_init (&hello, RNDZ_MESSAGE_HELLO, 7);
  g_strlcpy (hello.id, "bob", sizeof hello.id);
  g_strlcpy (hello.token, pair.token, sizeof hello.token);
  len = rndz_message_encode_frame (&hello, buf, sizeof buf);
  memcpy (buf + len, "early", 5);
  rndz_test_peer_send_raw (pair.bob, buf, len + 5);
  expect_silence (f, pair.bob);

  send_hello (pair.alice, "alice", pair.token, 8);
  rndz_test_peer_expect (f->context, pair.alice, RNDZ_MESSAGE_READY, 8, NULL, WAIT_MS);
  rndz_test_peer_expect (f->context, pair.bob, RNDZ_MESSAGE_READY, 7, NULL, WAIT_MS);

  stream_init (&stream, pair.bob, pair.alice, NULL);
  shutdown (g_socket_get_fd (pair.bob->socket), SHUT_WR);
  g_assert_true (pump_until (f, transfer_done_cb, &transfer, WAIT_MS));
  g_assert_cmpmem (stream.received->data, stream.received->len, "early", 5);
  stream_clear (&stream);
}

static void
test_tcp_leave_before_ready (Fixture       *f,
                             gconstpointer  user_data)
{
  Pair pair = { 0, };
  Peer *first;

  g_test_summary ("A TCP side that leaves before the other came may join again");

  if (f->skipped)
    return;

  open_session (f, &pair);
  first = peer_new (f, RNDZ_TRANSPORT_TCP, f->relay_port);
  send_hello (first, "bob", pair.token, 1);
  expect_silence (f, first);
  g_socket_close (first->socket, NULL);
  rndz_test_run_for (f->context, QUIET_MS);

  join_session (f, &pair);
}

static void
test_rate (Fixture       *f,
           gconstpointer  user_data)
{
  const guint rate = 100000;
  const guint window_ms = 1000;
  Pair pair = { 0, };
  /* Made before the clock starts: slow under valgrind */
  g_autoptr(GBytes) data = random_bytes (1024 * 1024);
  gsize received = 0;
  gint64 start, end;
  double bound;

  g_test_summary ("relay-rate holds: over a second, a session forwards about the rate "
                  "(plus the burst), whatever is offered");

  if (f->skipped)
    return;
  rndz_server_set_relay_rate (f->server, rate);
  relay_pair (f, &pair);

  start = g_get_monotonic_time ();
  end = start + window_ms * 1000;

  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      char buf[2048];

      /* Offer five times the rate, paced */
      while (g_get_monotonic_time () < end)
        {
          rndz_test_peer_send_raw (pair.bob, g_bytes_get_data (data, NULL), 1000);
          rndz_test_run_for (f->context, 2);
          for (;;)
            {
              gssize n = recv (g_socket_get_fd (pair.alice->socket), buf, sizeof buf, MSG_DONTWAIT);
              if (n <= 0)
                break;
              received += n;
            }
        }
    }
  else
    {
      Stream stream;

      stream_init (&stream, pair.bob, pair.alice, data);
      while (g_get_monotonic_time () < end)
        {
          rndz_test_run_for (f->context, 1);
          stream_pump (&stream);
        }
      received = stream.received->len;
      stream_clear (&stream);
    }

  /* The burst is max (rate / 4, 64 KiB) */
  bound = 65536 + rate * (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
  g_test_message ("%" G_GSIZE_FORMAT " bytes in %u ms, at most %.0f allowed",
                  received, window_ms, bound);
  g_assert_cmpfloat (received, <=, bound + 2000);
  g_assert_cmpuint (received, >=, rate * window_ms / 1000 / 4);

  /* Over TCP the burst is gone at once and the sender's side pauses:
   * more than the burst arrives only if the relay reads it again when
   * the pause ends (the timer's resume, nothing else wakes it) */
  if (f->transport == RNDZ_TRANSPORT_TCP)
    g_assert_cmpuint (received, >=, 65536 + rate * window_ms / 1000 / 4);
}

static void
test_idle_timeout (Fixture       *f,
                   gconstpointer  user_data)
{
  Pair pair = { 0, };

  g_test_summary ("A session without traffic for relay-idle-timeout is closed and forgotten");

  if (f->skipped)
    return;
  rndz_server_set_relay_idle_timeout (f->server, 1000);
  relay_pair (f, &pair);
  g_assert_cmpuint (session_count (f), ==, 1);

  g_assert_true (pump_until (f, no_sessions_cb, f, 3 * WAIT_MS));

  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      char data[] = "after the end";

      rndz_test_peer_send_raw (pair.bob, data, sizeof data);
      expect_silence (f, pair.alice);
    }
  else
    {
      expect_closed (f, pair.alice);
      expect_closed (f, pair.bob);
    }
}

static void
test_join_timeout (Fixture       *f,
                   gconstpointer  user_data)
{
  Pair pair = { 0, };
  Peer *bob, *alice;

  g_test_summary ("A session that only one side joined is forgotten after the join timeout");

  if (f->skipped)
    return;
  rndz_server_set_relay_join_timeout (f->server, 300);

  open_session (f, &pair);
  bob = peer_new (f, f->transport, f->relay_port);
  send_hello (bob, "bob", pair.token, 1);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    rndz_test_peer_expect (f->context, bob, RNDZ_MESSAGE_WAIT, 1, NULL, WAIT_MS);

  g_assert_true (pump_until (f, no_sessions_cb, f, WAIT_MS));

  alice = peer_new (f, f->transport, f->relay_port);
  send_hello (alice, "alice", pair.token, 2);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    expect_silence (f, alice);
  else
    {
      expect_closed (f, bob);
      expect_closed (f, alice);
    }
}

static void
test_garbage (Fixture       *f,
              gconstpointer  user_data)
{
  static const char *const garbage[] = {
    "",
    "\x01\x02\x03",
    "{",
    "{\"v\":1,\"type\":\"hello\"}",
    "{\"v\":1,\"type\":\"hello\",\"tid\":1,\"id\":\"bob\",\"token\":\"0123456789abcdef0123456789abcdef\"}",
    "{\"v\":1,\"type\":\"ready\",\"tid\":1}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"hello\"",
  };
  Pair pair = { 0, };
  RndzServerStats stats;

  g_test_summary ("Garbage, wrong tokens and wrong ids on the relay port are dropped "
                  "(UDP) or close their connection (TCP), and do not disturb a session");

  if (f->skipped)
    return;

  open_session (f, &pair);

  for (guint i = 0; i < G_N_ELEMENTS (garbage); i++)
    {
      Peer *peer = peer_new (f, f->transport, f->relay_port);
      gsize len = strlen (garbage[i]);

      if (f->transport == RNDZ_TRANSPORT_UDP)
        {
          rndz_test_peer_send_raw (peer, garbage[i], len);
          expect_silence (f, peer);
        }
      else
        {
          guint8 frame[512];

          /* As a frame, and as raw bytes */
          frame[0] = len >> 8;
          frame[1] = len & 0xff;
          memcpy (frame + 2, garbage[i], len);
          rndz_test_peer_send_raw (peer, frame, len + 2);
          expect_closed (f, peer);
          /* Raw: only what announces too long a frame closes at once */
          if (len >= 2 && (((guint8) garbage[i][0] << 8) | (guint8) garbage[i][1]) > RNDZ_MESSAGE_DEFAULT_MAX_SIZE)
            {
              Peer *raw = peer_new (f, f->transport, f->relay_port);

              rndz_test_peer_send_raw (raw, garbage[i], len);
              expect_closed (f, raw);
            }
        }
    }

  /* The right token with an id of neither side */
  {
    Peer *peer = peer_new (f, f->transport, f->relay_port);

    send_hello (peer, "mallory", pair.token, 9);
    if (f->transport == RNDZ_TRANSPORT_UDP)
      expect_silence (f, peer);
    else
      expect_closed (f, peer);
  }

  if (f->transport == RNDZ_TRANSPORT_TCP)
    {
      /* A frame longer than any message */
      Peer *peer = peer_new (f, f->transport, f->relay_port);
      guint8 prefix[2] = { 0xff, 0xff };

      rndz_test_peer_send_raw (peer, prefix, 2);
      expect_closed (f, peer);
    }

  join_session (f, &pair);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    expect_forwarded (f, pair.alice, pair.bob, 500);

  rndz_server_get_stats (f->server, &stats);
  g_assert_cmpuint (stats.relay_dropped, >=, G_N_ELEMENTS (garbage));
}

static void
test_auth (Fixture       *f,
           gconstpointer  user_data)
{
  Pair pair = { 0, };
  Peer *alice, *bob;
  guint32 tid;

  g_test_summary ("With authentication, an unsigned relay request gets auth-required; "
                  "a signed one works, and the target hears that the requester was "
                  "authenticated");

  if (f->skipped)
    return;

  f->secret = g_bytes_new_static (SECRET, strlen (SECRET));
  rndz_server_set_secret (f->server, f->secret);

  alice = peer_new (f, f->transport, f->port);
  bob = peer_new (f, f->transport, f->port);
  register_peer (f, alice, "alice");
  register_peer (f, bob, "bob");
  tid = f->next_tid++;
  send_relay_tid (f, bob, tid, "bob", "alice", FALSE);
  expect_error (f, bob, tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED);
  expect_silence (f, alice);
  g_assert_cmpuint (session_count (f), ==, 0);

  /* Signed: a session, auth:true to alice (checked by open_session) */
  relay_pair (f, &pair);
}

static void
test_stop (Fixture       *f,
           gconstpointer  user_data)
{
  Pair pair = { 0, };
  Pair other = { 0, };
  Peer *waiting;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  g_test_summary ("rndz_server_stop() closes the relay port and every session; the "
                  "server can listen on the same ports again");

  if (f->skipped)
    return;

  relay_pair (f, &pair);
  open_session (f, &other);
  waiting = peer_new (f, f->transport, f->relay_port);
  send_hello (waiting, "bob", other.token, 1);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    rndz_test_peer_expect (f->context, waiting, RNDZ_MESSAGE_WAIT, 1, NULL, WAIT_MS);
  else
    rndz_test_run_for (f->context, QUIET_MS);
  g_assert_cmpuint (session_count (f), ==, 2);

  rndz_server_stop (f->server);
  g_assert_cmpuint (session_count (f), ==, 0);
  if (f->transport == RNDZ_TRANSPORT_TCP)
    {
      expect_closed (f, pair.alice);
      expect_closed (f, pair.bob);
      expect_closed (f, waiting);
    }

  address = rndz_test_loopback_address (f->family, f->port);
  g_assert_true (rndz_server_listen (f->server, address, &error));
  g_assert_no_error (error);
}

/* Registration */

static const TestParams udp4 = { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4 };
static const TestParams tcp4 = { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4 };
static const TestParams udp6 = { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV6 };
static const TestParams tcp6 = { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV6 };

static void
add_test (const char       *path,
          const TestParams *params,
          void (*func) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, params, fixture_setup, func, fixture_teardown);
}

static void
add_both (const char *name,
          void (*func) (Fixture *, gconstpointer))
{
  g_autofree char *udp = g_strdup_printf ("/relay/udp/%s", name);
  g_autofree char *tcp = g_strdup_printf ("/relay/tcp/%s", name);

  add_test (udp, &udp4, func);
  add_test (tcp, &tcp4, func);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  add_test ("/relay/properties", &udp4, test_properties);
  add_test ("/relay/listen-errors", &udp4, test_listen_errors);
  add_both ("no-relay", test_no_relay);
  add_both ("unknown-target", test_unknown_target);
  add_both ("max-sessions", test_max_sessions);
  add_both ("exchange", test_exchange);
  add_test ("/relay/udp/ipv6/exchange", &udp6, test_exchange);
  add_test ("/relay/tcp/ipv6/exchange", &tcp6, test_exchange);
  add_test ("/relay/udp/late-hello", &udp4, test_udp_late_hello);
  add_test ("/relay/tcp/large", &tcp4, test_tcp_large);
  add_test ("/relay/tcp/half-close", &tcp4, test_tcp_half_close);
  add_test ("/relay/tcp/exact-hello", &tcp4, test_tcp_exact_hello);
  add_test ("/relay/tcp/leave-before-ready", &tcp4, test_tcp_leave_before_ready);
  add_both ("rate", test_rate);
  add_both ("idle-timeout", test_idle_timeout);
  add_both ("join-timeout", test_join_timeout);
  add_both ("garbage", test_garbage);
  add_both ("auth", test_auth);
  add_both ("stop", test_stop);

  return g_test_run ();
}
