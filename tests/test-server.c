/* test-server.c: RndzServer, driven by raw sockets acting as peers
 *
 * SPDX-License-Identifier: MIT
 *
 * Every test runs its own server on a fresh thread-default main context,
 * listening on 127.0.0.1 or ::1 port 0. The fake peers are plain
 * non-blocking GSockets on the same context: a test sends a message, then
 * iterates the context until the reply arrives, and fails if it does not
 * arrive within WAIT_MS. Nothing here waits without a bound.
 */

#include <string.h>

#include <json-glib/json-glib.h>
#include <rndz-glib/rndz.h>

#include "rndz-message-private.h"
#include "rndz-server-private.h"
#include "rndz-test-util.h"

/* How long to wait for something that should happen now */
#define WAIT_MS 2000
/* How long to watch for something that should not happen */
#define QUIET_MS 150

typedef enum
{
  GARBAGE_NONE,
  GARBAGE_RANDOM,
  GARBAGE_BAD_JSON,
  GARBAGE_NOT_OBJECT,
  GARBAGE_OVERSIZE,
  GARBAGE_OVERSIZE_PREFIX,
  GARBAGE_EMPTY,
  GARBAGE_INVALID_UTF8,
  GARBAGE_DEEP_NESTING,
  GARBAGE_BAD_FIELD,
  GARBAGE_OLD_VERSION,
} Garbage;

typedef struct
{
  RndzTransport transport;
  GSocketFamily family;
  Garbage garbage;
} TestParams;

typedef RndzTestPeer FakePeer;

typedef struct
{
  const TestParams *params;
  GMainContext *context;
  RndzServer *server;
  guint16 port;
  guint wait_ms;
  guint32 next_tid;
  gboolean skipped;

  GPtrArray *fake_peers;
  /* "udp a@127.0.0.1:4000" for each peer-registered */
  GPtrArray *registered;
  GSocketFamily last_registered_family;
  /* "udp a" for each peer-removed */
  GPtrArray *removed;
  guint peer_count_notifies;
} Fixture;

static gboolean ipv6_loopback_available;

/* Utilities */

static const char *
transport_name (RndzTransport transport)
{
  return transport == RNDZ_TRANSPORT_TCP ? "tcp" : "udp";
}

static const char *
format_addr (const RndzAddr *addr)
{
  /* Enough slots for every format_addr() of one assertion */
  static char bufs[4][RNDZ_ADDR_STRLEN];
  static guint next;

  return rndz_addr_format (addr, bufs[next++ % G_N_ELEMENTS (bufs)]);
}

/* Runs the main context for @ms milliseconds */
static void
run_for (Fixture *f,
         guint    ms)
{
  rndz_test_run_for (f->context, ms);
}

static gboolean
removed_contains (Fixture    *f,
                  const char *entry)
{
  for (guint i = 0; i < f->removed->len; i++)
    if (g_str_equal (g_ptr_array_index (f->removed, i), entry))
      return TRUE;
  return FALSE;
}

typedef struct
{
  Fixture *f;
  const char *entry;
} Removed;

static gboolean
removed_cb (gpointer data)
{
  Removed *removed = data;

  return removed_contains (removed->f, removed->entry);
}

/* Runs the main context until peer-removed was emitted for @id, for at
 * most @ms milliseconds. */
static gboolean
run_until_removed (Fixture    *f,
                   const char *id,
                   guint       ms)
{
  g_autofree char *entry = g_strdup_printf ("%s %s", transport_name (f->params->transport), id);
  Removed removed = { f, entry };

  return rndz_test_run_until (f->context, removed_cb, &removed, ms);
}

static void
wait_for_removed (Fixture    *f,
                  const char *id)
{
  if (!run_until_removed (f, id, f->wait_ms))
    g_test_message ("Timed out waiting for peer-removed “%s”", id);
  g_assert_true (run_until_removed (f, id, 0));
}

static guint
peer_count (Fixture *f)
{
  guint count = 0;

  g_object_get (f->server, "peer-count", &count, NULL);
  g_assert_cmpuint (count, ==, rndz_server_get_peer_count (f->server));
  return count;
}

static RndzServerStats
server_stats (Fixture *f)
{
  RndzServerStats stats;

  rndz_server_get_stats (f->server, &stats);
  return stats;
}

/* Fake peers */

/* A peer on the loopback address of @family, talking to the server over
 * @transport; the fixture frees it */
static FakePeer *
fake_peer_new_full (Fixture       *f,
                    RndzTransport  transport,
                    GSocketFamily  family)
{
  FakePeer *peer = rndz_test_peer_new (transport, family, f->port);

  g_ptr_array_add (f->fake_peers, peer);
  return peer;
}

static FakePeer *
fake_peer_new (Fixture *f)
{
  return fake_peer_new_full (f, f->params->transport, f->params->family);
}

static void
peer_send_raw (FakePeer   *peer,
               const void *data,
               gsize       len)
{
  rndz_test_peer_send_raw (peer, data, len);
}

static void
peer_send_unpadded (FakePeer          *peer,
                    const RndzMessage *msg)
{
  rndz_test_peer_send_unpadded (peer, msg);
}

/* Datagrams are padded like the client pads them */
static void
peer_send (FakePeer          *peer,
           const RndzMessage *msg)
{
  rndz_test_peer_send (peer, msg);
}

/* Receives one datagram or frame, as a nul-terminated string */
static char *
peer_recv_payload (Fixture    *f,
                   FakePeer   *peer,
                   gsize      *len_out,
                   const char *what)
{
  return rndz_test_peer_recv_payload (f->context, peer, len_out, f->wait_ms, what);
}

/* Checks that the server closes @peer's connection, without sending
 * anything first. */
static void
expect_closed (Fixture  *f,
               FakePeer *peer)
{
  rndz_test_peer_expect_closed (f->context, peer, f->wait_ms);
}

/* Checks that nothing arrives for @peer for a while */
static void
expect_silence (Fixture  *f,
                FakePeer *peer)
{
  rndz_test_peer_expect_silence (f->context, peer, QUIET_MS);
}

/* Messages */

static guint32
send_ping (Fixture    *f,
           FakePeer   *peer,
           const char *id)
{
  RndzMessage msg;
  guint32 tid = f->next_tid++;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  peer_send (peer, &msg);
  return tid;
}

static void
send_isync_tid (FakePeer   *peer,
                guint32     tid,
                const char *id,
                const char *target)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  peer_send (peer, &msg);
}

static guint32
send_isync (Fixture    *f,
            FakePeer   *peer,
            const char *id,
            const char *target)
{
  guint32 tid = f->next_tid++;

  send_isync_tid (peer, tid, id, target);
  return tid;
}

static void
send_rsync (FakePeer   *peer,
            guint32     tid,
            const char *id,
            const char *target)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  peer_send (peer, &msg);
}

static void
send_bye (Fixture    *f,
          FakePeer   *peer,
          const char *id)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_BYE, f->next_tid++);
  g_strlcpy (msg.id, id, sizeof msg.id);
  peer_send (peer, &msg);
}

static void
expect_type (const RndzMessage *msg,
             RndzMessageType    type)
{
  g_assert_cmpstr (rndz_message_type_to_string (msg->type), ==, rndz_message_type_to_string (type));
}

static void
expect_pong (Fixture  *f,
             FakePeer *peer,
             guint32   tid)
{
  RndzMessage msg;

  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_PONG, tid, &msg, f->wait_ms);
  g_assert_cmpstr (format_addr (&msg.addr), ==, format_addr (&peer->local));
}

static void
register_peer (Fixture    *f,
               FakePeer   *peer,
               const char *id)
{
  guint32 tid = send_ping (f, peer, id);

  expect_pong (f, peer, tid);
}

static void
expect_error (Fixture       *f,
              FakePeer      *peer,
              guint32        tid,
              RndzWireError  code)
{
  RndzMessage msg;

  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_ERROR, tid, &msg, f->wait_ms);
  g_assert_cmpint (msg.code, ==, code);
}

/* Returns the server's tid of the fsync */
static guint32
expect_fsync (Fixture    *f,
              FakePeer   *peer,
              const char *requester_id,
              FakePeer   *requester)
{
  RndzMessage msg;

  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_FSYNC, 0, &msg, f->wait_ms);
  g_assert_cmpstr (msg.id, ==, requester_id);
  g_assert_cmpstr (format_addr (&msg.addr), ==, format_addr (&requester->local));
  return msg.tid;
}

static void
expect_redirect (Fixture    *f,
                 FakePeer   *peer,
                 guint32     tid,
                 const char *target_id,
                 FakePeer   *target)
{
  RndzMessage msg;

  rndz_test_peer_expect (f->context, peer, RNDZ_MESSAGE_REDIRECT, tid, &msg, f->wait_ms);
  g_assert_cmpstr (msg.id, ==, target_id);
  g_assert_cmpstr (format_addr (&msg.addr), ==, format_addr (&target->local));
}

/* A round trip that proves the server handled everything @peer sent
 * before (datagrams from one socket and frames on one connection are
 * handled in order). */
static void
sync_with_server (Fixture  *f,
                  FakePeer *peer)
{
  guint32 tid = send_isync (f, peer, "barrier", "nobody");

  expect_error (f, peer, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
}

static char *
describe_peer (Fixture    *f,
               const char *id,
               FakePeer   *peer)
{
  return g_strdup_printf ("%s %s@%s", transport_name (peer->transport), id,
                          format_addr (&peer->local));
}

/* Fixture */

static void
peer_registered_cb (RndzServer     *server,
                    const char     *id,
                    RndzTransport   transport,
                    GSocketAddress *address,
                    gpointer        user_data)
{
  Fixture *f = user_data;
  RndzAddr addr;

  g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
  g_assert_true (rndz_addr_from_socket_address (&addr, address));
  f->last_registered_family = g_socket_address_get_family (address);
  g_ptr_array_add (f->registered,
                   g_strdup_printf ("%s %s@%s", transport_name (transport), id, format_addr (&addr)));
}

static void
peer_removed_cb (RndzServer    *server,
                 const char    *id,
                 RndzTransport  transport,
                 gpointer       user_data)
{
  Fixture *f = user_data;

  g_ptr_array_add (f->removed, g_strdup_printf ("%s %s", transport_name (transport), id));
}

static void
notify_peer_count_cb (GObject    *object,
                      GParamSpec *pspec,
                      gpointer    user_data)
{
  Fixture *f = user_data;

  f->peer_count_notifies++;
}

static gboolean
fixture_listen (Fixture        *f,
                GSocketAddress *address,
                GError        **error)
{
  if (!rndz_server_listen (f->server, address, error))
    return FALSE;

  f->port = rndz_server_get_port (f->server);
  g_assert_cmpuint (f->port, !=, 0);
  return TRUE;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  f->params = data;
  f->wait_ms = WAIT_MS * (g_getenv ("RNDZ_UNDER_VALGRIND") != NULL ? 10 : 1);
  f->next_tid = 1000;
  f->fake_peers = g_ptr_array_new_with_free_func ((GDestroyNotify) rndz_test_peer_free);
  f->registered = g_ptr_array_new_with_free_func (g_free);
  f->removed = g_ptr_array_new_with_free_func (g_free);

  /* The server attaches its sources to the thread-default context */
  f->context = g_main_context_new ();
  g_main_context_push_thread_default (f->context);

  f->server = rndz_server_new ();
  g_signal_connect (f->server, "peer-registered", G_CALLBACK (peer_registered_cb), f);
  g_signal_connect (f->server, "peer-removed", G_CALLBACK (peer_removed_cb), f);
  g_signal_connect (f->server, "notify::peer-count", G_CALLBACK (notify_peer_count_cb), f);

  if (f->params->family == G_SOCKET_FAMILY_IPV6 && !ipv6_loopback_available)
    {
      g_test_skip ("IPv6 loopback is unavailable");
      f->skipped = TRUE;
      return;
    }

  address = rndz_test_loopback_address (f->params->family, 0);
  fixture_listen (f, address, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_pointer (&f->fake_peers, g_ptr_array_unref);

  /* Nothing else may hold the server (unless a test dropped it already) */
  if (f->server != NULL)
    {
      g_object_add_weak_pointer (G_OBJECT (f->server), (gpointer *) &f->server);
      g_object_unref (f->server);
      g_assert_null (f->server);
    }

  g_main_context_pop_thread_default (f->context);
  rndz_test_drain (f->context);
  g_main_context_unref (f->context);

  g_ptr_array_unref (f->registered);
  g_ptr_array_unref (f->removed);
}

/* Tests */

static void
test_properties (Fixture       *f,
                 gconstpointer  data)
{
  guint peer_timeout, forward_timeout, register_timeout;
  guint max_peers, max_connections, max_message_size;

  g_test_summary ("The server's properties have their documented defaults, and "
                  "the setters and g_object_set() agree");

  /* Timeouts in milliseconds */
  g_assert_cmpuint (rndz_server_get_peer_timeout (f->server), ==, 60000);
  g_assert_cmpuint (rndz_server_get_forward_timeout (f->server), ==, 5000);
  g_assert_cmpuint (rndz_server_get_register_timeout (f->server), ==, 10000);
  g_assert_cmpuint (rndz_server_get_max_peers (f->server), ==, 100000);
  g_assert_cmpuint (rndz_server_get_max_connections (f->server), ==, 1024);
  g_assert_cmpuint (rndz_server_get_max_message_size (f->server), ==, RNDZ_MESSAGE_DEFAULT_MAX_SIZE);
  g_assert_cmpuint (rndz_server_get_request_rate (f->server), ==, 20);
  g_assert_cmpuint (peer_count (f), ==, 0);

  g_object_set (f->server,
                "peer-timeout", 7000,
                "forward-timeout", 2500,
                "register-timeout", 3000,
                "max-peers", 11,
                "max-connections", 13,
                "max-message-size", 600,
                "request-rate", 5,
                NULL);
  g_assert_cmpuint (rndz_server_get_request_rate (f->server), ==, 5);
  g_assert_cmpuint (rndz_server_get_peer_timeout (f->server), ==, 7000);
  g_assert_cmpuint (rndz_server_get_forward_timeout (f->server), ==, 2500);
  g_assert_cmpuint (rndz_server_get_register_timeout (f->server), ==, 3000);
  g_assert_cmpuint (rndz_server_get_max_peers (f->server), ==, 11);
  g_assert_cmpuint (rndz_server_get_max_connections (f->server), ==, 13);
  g_assert_cmpuint (rndz_server_get_max_message_size (f->server), ==, 600);

  rndz_server_set_max_peers (f->server, 17);
  g_object_get (f->server,
                "peer-timeout", &peer_timeout,
                "forward-timeout", &forward_timeout,
                "register-timeout", &register_timeout,
                "max-peers", &max_peers,
                "max-connections", &max_connections,
                "max-message-size", &max_message_size,
                NULL);
  g_assert_cmpuint (peer_timeout, ==, 7000);
  g_assert_cmpuint (forward_timeout, ==, 2500);
  g_assert_cmpuint (register_timeout, ==, 3000);
  g_assert_cmpuint (max_peers, ==, 17);
  g_assert_cmpuint (max_connections, ==, 13);
  g_assert_cmpuint (max_message_size, ==, 600);
}

static void
test_ping (Fixture       *f,
           gconstpointer  data)
{
  FakePeer *a, *b;
  guint32 tid;

  g_test_summary ("A ping registers the peer and is answered with a pong that "
                  "carries the tid of the ping and the peer's address as the "
                  "server sees it");
  if (f->skipped)
    return;

  a = fake_peer_new (f);
  tid = send_ping (f, a, "a");
  expect_pong (f, a, tid);

  /* Pinging again is answered again */
  tid = send_ping (f, a, "a");
  expect_pong (f, a, tid);

  b = fake_peer_new (f);
  register_peer (f, b, "b");
  g_assert_cmpuint (peer_count (f), ==, 2);
}

static void
test_udp_batches (Fixture       *f,
                  gconstpointer  data)
{
  FakePeer *peers[200];
  guint32 tids[G_N_ELEMENTS (peers)];

  g_test_summary ("Pings that arrive together, several batches of them, are each "
                  "answered, to their sender, with their tid");

  for (guint i = 0; i < G_N_ELEMENTS (peers); i++)
    {
      g_autofree char *id = g_strdup_printf ("peer-%u", i);

      peers[i] = fake_peer_new (f);
      tids[i] = send_ping (f, peers[i], id);
    }
  for (guint i = 0; i < G_N_ELEMENTS (peers); i++)
    expect_pong (f, peers[i], tids[i]);
  g_assert_cmpuint (peer_count (f), ==, G_N_ELEMENTS (peers));
}

static void
test_udp_tid_reused (Fixture       *f,
                     gconstpointer  data)
{
  FakePeer *a, *b, *c;

  g_test_summary ("An isync sent again is a retransmission only for the same target: "
                  "the same tid for another target gets bad-request");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  c = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, c, "c");

  send_isync_tid (b, 77, "b", "a");
  expect_fsync (f, a, "b", b);
  send_isync_tid (b, 77, "b", "c");
  expect_error (f, b, 77, RNDZ_WIRE_ERROR_BAD_REQUEST);
  rndz_test_peer_expect_silence (f->context, c, 200);
}

static void
test_peer_count (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *a_registered = NULL;
  g_autofree char *b_registered = NULL;
  g_autofree char *a_removed = NULL;
  g_autofree char *b_removed = NULL;
  FakePeer *a, *b;

  g_test_summary ("RndzServer:peer-count and the peer-registered and peer-removed "
                  "signals follow registrations, pings and removals");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  a_registered = describe_peer (f, "a", a);
  b_registered = describe_peer (f, "b", b);
  a_removed = g_strdup_printf ("%s a", transport_name (f->params->transport));
  b_removed = g_strdup_printf ("%s b", transport_name (f->params->transport));

  g_assert_cmpuint (peer_count (f), ==, 0);

  register_peer (f, a, "a");
  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (f->peer_count_notifies, ==, 1);
  g_assert_cmpuint (f->registered->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (f->registered, 0), ==, a_registered);

  /* A ping from a registered peer changes nothing */
  register_peer (f, a, "a");
  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (f->peer_count_notifies, ==, 1);
  g_assert_cmpuint (f->registered->len, ==, 1);

  register_peer (f, b, "b");
  g_assert_cmpuint (peer_count (f), ==, 2);
  g_assert_cmpuint (f->peer_count_notifies, ==, 2);
  g_assert_cmpuint (f->registered->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (f->registered, 1), ==, b_registered);
  g_assert_cmpuint (f->removed->len, ==, 0);

  send_bye (f, a, "a");
  sync_with_server (f, a);
  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (f->peer_count_notifies, ==, 3);
  g_assert_cmpuint (f->removed->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (f->removed, 0), ==, a_removed);

  if (f->params->transport == RNDZ_TRANSPORT_TCP)
    {
      /* A TCP peer goes away with its connection */
      g_ptr_array_remove (f->fake_peers, b);
      wait_for_removed (f, "b");
    }
  else
    {
      send_bye (f, b, "b");
      sync_with_server (f, b);
    }
  g_assert_cmpuint (peer_count (f), ==, 0);
  g_assert_cmpuint (f->peer_count_notifies, ==, 4);
  g_assert_cmpuint (f->removed->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (f->removed, 1), ==, b_removed);
  g_assert_cmpuint (f->registered->len, ==, 2);
}

static void
test_isync_unknown_peer (Fixture       *f,
                         gconstpointer  data)
{
  FakePeer *a, *b;
  guint32 tid;

  g_test_summary ("An isync for a peer that is not registered is answered with "
                  "error peer-not-found, with the isync's tid");

  b = fake_peer_new (f);
  tid = send_isync (f, b, "b", "nobody");
  expect_error (f, b, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);

  /* Also when the requester is registered, and for an id close to a known one */
  a = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");
  tid = send_isync (f, b, "b", "A");
  expect_error (f, b, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
  expect_silence (f, a);
}

static void
test_isync_exchange (Fixture       *f,
                     gconstpointer  data)
{
  FakePeer *a, *b;
  guint32 tid, server_tid;

  g_test_summary ("isync from B is forwarded to A as fsync with B's id and "
                  "address; A's rsync is forwarded to B as redirect with A's id "
                  "and address and the tid of B's isync");
  if (f->skipped)
    return;

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");

  tid = send_isync (f, b, "b", "a");
  server_tid = expect_fsync (f, a, "b", b);
  g_assert_cmpuint (server_tid, !=, 0);
  expect_silence (f, b);

  send_rsync (a, server_tid, "a", "b");
  expect_redirect (f, b, tid, "a", a);

  /* The request is done: the same rsync again is not forwarded */
  send_rsync (a, server_tid, "a", "b");
  sync_with_server (f, a);
  expect_silence (f, b);

  /* A second request gets a new server tid */
  tid = send_isync (f, b, "b", "a");
  g_assert_cmpuint (expect_fsync (f, a, "b", b), !=, server_tid);
}

#define FP_A "aaaa0000000000000000000000000000000000000000000000000000000000aa"
#define FP_B "bbbb0000000000000000000000000000000000000000000000000000000000bb"

static void
test_fingerprints (Fixture       *f,
                   gconstpointer  data)
{
  FakePeer *a, *b;
  RndzMessage msg;
  guint32 tid, server_tid;

  g_test_summary ("The requester's fingerprint goes from its isync into the fsync, the "
                  "target's from its rsync into the redirect, with the requester's "
                  "address as the server saw it; a plain request's fsync carries none");
  if (f->skipped)
    return;

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");

  tid = f->next_tid++;
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, tid);
  g_strlcpy (msg.id, "b", sizeof msg.id);
  g_strlcpy (msg.target, "a", sizeof msg.target);
  g_strlcpy (msg.fp, FP_B, sizeof msg.fp);
  peer_send (b, &msg);
  rndz_test_peer_expect (f->context, a, RNDZ_MESSAGE_FSYNC, 0, &msg, f->wait_ms);
  g_assert_cmpstr (msg.fp, ==, FP_B);
  server_tid = msg.tid;

  rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, server_tid);
  g_strlcpy (msg.id, "a", sizeof msg.id);
  g_strlcpy (msg.target, "b", sizeof msg.target);
  g_strlcpy (msg.fp, FP_A, sizeof msg.fp);
  peer_send (a, &msg);
  rndz_test_peer_expect (f->context, b, RNDZ_MESSAGE_REDIRECT, tid, &msg, f->wait_ms);
  g_assert_cmpstr (msg.fp, ==, FP_A);
  /* and the requester as the server saw it */
  g_assert_cmpstr (format_addr (&msg.seen), ==, format_addr (&b->local));

  /* A plain request */
  tid = send_isync (f, b, "b", "a");
  rndz_test_peer_expect (f->context, a, RNDZ_MESSAGE_FSYNC, 0, &msg, f->wait_ms);
  g_assert_cmpstr (msg.fp, ==, "");
}

static void
test_peer_no_answer (Fixture       *f,
                     gconstpointer  data)
{
  FakePeer *a, *b;
  guint32 tid, server_tid;
  gint64 start, elapsed;

  g_test_summary ("When the target does not answer the fsync within "
                  "forward-timeout, the requester gets error peer-no-answer "
                  "and a late rsync is not forwarded");

  rndz_server_set_forward_timeout (f->server, 1000);

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");

  start = g_get_monotonic_time ();
  tid = send_isync (f, b, "b", "a");
  server_tid = expect_fsync (f, a, "b", b);
  expect_error (f, b, tid, RNDZ_WIRE_ERROR_PEER_NO_ANSWER);
  elapsed = g_get_monotonic_time () - start;
  g_test_message ("peer-no-answer after %" G_GINT64_FORMAT " ms", elapsed / 1000);
  g_assert_cmpint (elapsed, >=, 900 * 1000);

  send_rsync (a, server_tid, "a", "b");
  sync_with_server (f, a);
  expect_silence (f, b);

  /* The target is still registered: it did not answer, it did not leave */
  g_assert_cmpuint (peer_count (f), ==, 1);
}

static void
test_isync_retransmit (Fixture       *f,
                       gconstpointer  data)
{
  FakePeer *a, *b;
  guint32 tid, server_tid;

  g_test_summary ("A UDP isync sent again with the same tid makes the server send "
                  "the fsync again with the same server tid, rather than start a "
                  "second request");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");

  tid = send_isync (f, b, "b", "a");
  server_tid = expect_fsync (f, a, "b", b);

  send_isync_tid (b, tid, "b", "a");
  g_assert_cmpuint (expect_fsync (f, a, "b", b), ==, server_tid);
  send_isync_tid (b, tid, "b", "a");
  g_assert_cmpuint (expect_fsync (f, a, "b", b), ==, server_tid);

  send_rsync (a, server_tid, "a", "b");
  expect_redirect (f, b, tid, "a", a);
  expect_silence (f, b);

  /* The same tid from another address is another request */
  {
    FakePeer *c = fake_peer_new (f);

    send_isync_tid (c, tid, "c", "a");
    g_assert_cmpuint (expect_fsync (f, a, "c", c), !=, server_tid);
  }
}

static void
test_rsync_wrong_source (Fixture       *f,
                         gconstpointer  data)
{
  FakePeer *a, *b, *c;
  guint32 tid, server_tid;

  g_test_summary ("An rsync is forwarded only if it comes from the target's "
                  "registered address or connection and names the right peers");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  c = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");
  register_peer (f, c, "c");

  tid = send_isync (f, b, "b", "a");
  server_tid = expect_fsync (f, a, "b", b);

  /* Someone else answers for "a" */
  send_rsync (c, server_tid, "a", "b");
  sync_with_server (f, c);
  /* "a" answers, but names the wrong requester, or the wrong tid */
  send_rsync (a, server_tid, "a", "c");
  send_rsync (a, server_tid + 1, "a", "b");
  sync_with_server (f, a);
  expect_silence (f, b);
  expect_silence (f, c);

  /* The request survived all that */
  send_rsync (a, server_tid, "a", "b");
  expect_redirect (f, b, tid, "a", a);
}

static void
test_expiry (Fixture       *f,
             gconstpointer  data)
{
  g_autofree char *b_removed = NULL;
  FakePeer *a, *b, *c;
  gint64 start, elapsed, deadline;
  guint32 tid;

  g_test_summary ("A peer that stops pinging is removed after peer-timeout (in "
                  "milliseconds: 1500 is 1.5 s), one that keeps pinging is not, and "
                  "an isync for the removed peer gets peer-not-found");

  rndz_server_set_peer_timeout (f->server, 1500);

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, b, "b");
  register_peer (f, a, "a");
  start = g_get_monotonic_time ();
  deadline = start + (1500 + f->wait_ms) * G_TIME_SPAN_MILLISECOND;

  /* "a" keeps pinging while "b" stays silent */
  while (!run_until_removed (f, "b", 250))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      register_peer (f, a, "a");
    }
  elapsed = g_get_monotonic_time () - start;
  g_test_message ("“b” expired after %" G_GINT64_FORMAT " ms", elapsed / 1000);
  /* Not a whole second, nor 1.5 ms: the unit is the millisecond */
  g_assert_cmpint (elapsed, >=, 1400 * G_TIME_SPAN_MILLISECOND);

  b_removed = g_strdup_printf ("%s b", transport_name (f->params->transport));
  g_assert_cmpuint (f->removed->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (f->removed, 0), ==, b_removed);
  g_assert_cmpuint (peer_count (f), ==, 1);

  /* An expired TCP peer loses its connection */
  if (f->params->transport == RNDZ_TRANSPORT_TCP)
    expect_closed (f, b);

  c = fake_peer_new (f);
  tid = send_isync (f, c, "c", "b");
  expect_error (f, c, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);

  /* "a" is still reachable */
  send_isync (f, c, "c", "a");
  expect_fsync (f, a, "c", c);
}

static void
test_peer_timeout_change (Fixture       *f,
                          gconstpointer  data)
{
  FakePeer *a;
  gint64 start, elapsed;

  g_test_summary ("Lowering peer-timeout applies to the peers registered "
                  "already, even if none of them pings again");

  a = fake_peer_new (f);
  register_peer (f, a, "a");

  start = g_get_monotonic_time ();
  rndz_server_set_peer_timeout (f->server, 1000);
  g_assert_true (run_until_removed (f, "a", 1000 + f->wait_ms / 4));
  elapsed = g_get_monotonic_time () - start;
  g_test_message ("“a” expired after %" G_GINT64_FORMAT " ms", elapsed / 1000);
  g_assert_cmpuint (peer_count (f), ==, 0);
}

static void
test_bye (Fixture       *f,
          gconstpointer  data)
{
  FakePeer *a, *c;
  guint32 tid;

  g_test_summary ("A bye from the registered address or connection removes the "
                  "peer; a bye for someone else's id from elsewhere is ignored");

  a = fake_peer_new (f);
  c = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, c, "c");

  send_bye (f, c, "a");
  sync_with_server (f, c);
  g_assert_cmpuint (peer_count (f), ==, 2);
  g_assert_cmpuint (f->removed->len, ==, 0);

  /* "a" is still there */
  send_isync (f, c, "c", "a");
  expect_fsync (f, a, "c", c);

  /* A bye for an unknown id changes nothing either */
  send_bye (f, c, "nobody");
  sync_with_server (f, c);
  g_assert_cmpuint (peer_count (f), ==, 2);

  send_bye (f, a, "a");
  sync_with_server (f, a);
  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (f->removed->len, ==, 1);

  tid = send_isync (f, c, "c", "a");
  expect_error (f, c, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);

  /* A TCP connection that said bye stays open and may register again */
  register_peer (f, a, "a");
  g_assert_cmpuint (peer_count (f), ==, 2);
}

static void
test_replace (Fixture       *f,
              gconstpointer  data)
{
  g_autofree char *a1_registered = NULL;
  g_autofree char *a2_registered = NULL;
  FakePeer *a1, *a2, *b;

  g_test_summary ("A newer registration of an id replaces the older one: "
                  "requests go to the new address, and over TCP the server "
                  "closes the old connection");

  a1 = fake_peer_new (f);
  a2 = fake_peer_new (f);
  b = fake_peer_new (f);
  a1_registered = describe_peer (f, "a", a1);
  a2_registered = describe_peer (f, "a", a2);

  register_peer (f, a1, "a");
  register_peer (f, a2, "a");

  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (f->registered->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (f->registered, 0), ==, a1_registered);
  g_assert_cmpstr (g_ptr_array_index (f->registered, 1), ==, a2_registered);
  /* The peer moved; it was not removed */
  g_assert_cmpuint (f->removed->len, ==, 0);

  if (f->params->transport == RNDZ_TRANSPORT_TCP)
    {
      expect_closed (f, a1);
    }
  else
    {
      /* The old address no longer speaks for "a" */
      send_bye (f, a1, "a");
      sync_with_server (f, a1);
      g_assert_cmpuint (peer_count (f), ==, 1);
    }

  send_isync (f, b, "b", "a");
  expect_fsync (f, a2, "b", b);
  if (f->params->transport == RNDZ_TRANSPORT_UDP)
    expect_silence (f, a1);
}

static void
test_replace_notify (Fixture       *f,
                     gconstpointer  data)
{
  FakePeer *a1, *a2;

  g_test_summary ("RndzServer:peer-count is notified only when the count "
                  "changes, not when a peer moves to a new address");

  a1 = fake_peer_new (f);
  a2 = fake_peer_new (f);
  register_peer (f, a1, "a");
  g_assert_cmpuint (f->peer_count_notifies, ==, 1);

  register_peer (f, a2, "a");
  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (f->peer_count_notifies, ==, 1);
}

static void
test_tcp_reregister_other_id (Fixture       *f,
                              gconstpointer  data)
{
  FakePeer *a, *c;
  guint32 tid;

  g_test_summary ("A TCP connection carries one registration: a ping for "
                  "another id removes the old one");

  a = fake_peer_new (f);
  c = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, a, "a2");

  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (f->removed->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (f->removed, 0), ==, "tcp a");

  tid = send_isync (f, c, "c", "a");
  expect_error (f, c, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
  send_isync (f, c, "c", "a2");
  expect_fsync (f, a, "c", c);
}

static void
test_tcp_requester_gone (Fixture       *f,
                         gconstpointer  data)
{
  FakePeer *a, *b, *c;
  guint32 server_tid, tid;

  g_test_summary ("When the requester's TCP connection closes while its "
                  "requests are pending, the target's rsync and the "
                  "forward-timeout go nowhere and the server carries on");

  rndz_server_set_forward_timeout (f->server, 1000);

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");

  /* One request to be answered, one to time out */
  send_isync (f, b, "b", "a");
  server_tid = expect_fsync (f, a, "b", b);
  send_isync (f, b, "b", "a");
  expect_fsync (f, a, "b", b);

  g_ptr_array_remove (f->fake_peers, b);
  wait_for_removed (f, "b");

  send_rsync (a, server_tid, "a", "b");
  sync_with_server (f, a);
  run_for (f, 1200);

  /* A new requester under the same id still gets through */
  c = fake_peer_new (f);
  register_peer (f, c, "b");
  tid = send_isync (f, c, "b", "a");
  server_tid = expect_fsync (f, a, "b", c);
  send_rsync (a, server_tid, "a", "b");
  expect_redirect (f, c, tid, "a", a);
  expect_silence (f, a);
}

static void
test_max_peers (Fixture       *f,
                gconstpointer  data)
{
  FakePeer *a, *b, *c;
  guint32 tid;

  g_test_summary ("Beyond max-peers a registration gets error server-full, "
                  "while the registered peers are still answered");

  rndz_server_set_max_peers (f->server, 2);

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  c = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");

  tid = send_ping (f, c, "c");
  expect_error (f, c, tid, RNDZ_WIRE_ERROR_SERVER_FULL);
  g_assert_cmpuint (peer_count (f), ==, 2);
  g_assert_cmpuint (f->registered->len, ==, 2);

  register_peer (f, a, "a");
  register_peer (f, b, "b");

  /* Requests between registered peers still work */
  send_isync (f, b, "b", "a");
  expect_fsync (f, a, "b", b);

  /* A free slot is taken at once */
  send_bye (f, a, "a");
  sync_with_server (f, a);
  register_peer (f, c, "c");
  g_assert_cmpuint (peer_count (f), ==, 2);
  tid = send_ping (f, a, "a");
  expect_error (f, a, tid, RNDZ_WIRE_ERROR_SERVER_FULL);
}

static void
test_tcp_max_connections (Fixture       *f,
                          gconstpointer  data)
{
  FakePeer *a, *b, *c, *d;
  RndzServerStats stats;
  gint64 start;

  g_test_summary ("At max-connections, when every connection carries a "
                  "registered peer, a new connection is closed as soon as it "
                  "is accepted and the others are still served");

  rndz_server_set_max_connections (f->server, 2);

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");

  start = g_get_monotonic_time ();
  c = fake_peer_new (f);
  expect_closed (f, c);
  g_test_message ("Extra connection closed after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - start) / 1000);
  stats = server_stats (f);
  g_assert_cmpuint (stats.refused_connections, ==, 1);
  g_assert_cmpuint (stats.evicted, ==, 0);

  register_peer (f, a, "a");
  register_peer (f, b, "b");

  /* A closed connection frees its slot */
  g_ptr_array_remove (f->fake_peers, a);
  wait_for_removed (f, "a");
  d = fake_peer_new (f);
  register_peer (f, d, "d");
  g_assert_cmpuint (peer_count (f), ==, 2);
}

static void
test_tcp_max_connections_evict (Fixture       *f,
                                gconstpointer  data)
{
  FakePeer *a, *silent, *c;

  g_test_summary ("At max-connections, a new connection pushes out the oldest "
                  "one that has not registered; registered peers stay");

  rndz_server_set_max_connections (f->server, 2);

  a = fake_peer_new (f);
  silent = fake_peer_new (f);
  register_peer (f, a, "a");
  /* Accepted, not registered */
  sync_with_server (f, silent);

  c = fake_peer_new (f);
  expect_closed (f, silent);
  register_peer (f, c, "c");
  register_peer (f, a, "a");
  g_assert_cmpuint (server_stats (f).evicted, ==, 1);
  g_assert_cmpuint (peer_count (f), ==, 2);
}

static void
test_tcp_unregistered_per_address (Fixture       *f,
                                   gconstpointer  data)
{
  FakePeer *silent[32];
  FakePeer *extra, *late;

  g_test_summary ("One address may hold only so many connections that have not "
                  "registered: beyond that a new one is closed at once, and a "
                  "registration frees a slot");

  for (guint i = 0; i < G_N_ELEMENTS (silent); i++)
    {
      silent[i] = fake_peer_new (f);
      sync_with_server (f, silent[i]);
    }

  extra = fake_peer_new (f);
  expect_closed (f, extra);
  g_assert_cmpuint (server_stats (f).refused_connections, ==, 1);

  /* The others are still served */
  register_peer (f, silent[0], "s0");
  late = fake_peer_new (f);
  register_peer (f, late, "late");
  sync_with_server (f, silent[G_N_ELEMENTS (silent) - 1]);
}

static void
test_tcp_register_timeout (Fixture       *f,
                           gconstpointer  data)
{
  FakePeer *registered, *silent;
  gint64 start, elapsed;

  g_test_summary ("A TCP connection that does not register within "
                  "register-timeout is closed; a registered one is not");

  rndz_server_set_register_timeout (f->server, 1000);

  start = g_get_monotonic_time ();
  registered = fake_peer_new (f);
  silent = fake_peer_new (f);
  register_peer (f, registered, "r");

  expect_closed (f, silent);
  elapsed = g_get_monotonic_time () - start;
  g_test_message ("Silent connection closed after %" G_GINT64_FORMAT " ms", elapsed / 1000);
  g_assert_cmpint (elapsed, >=, 900 * 1000);

  register_peer (f, registered, "r");
  g_assert_cmpuint (peer_count (f), ==, 1);
}

static void
test_udp_amplification (Fixture       *f,
                        gconstpointer  data)
{
  FakePeer *a;
  RndzMessage ping;

  g_test_summary ("The server never answers a datagram with a larger one: an "
                  "unpadded ping gets no pong, a padded one does");

  a = fake_peer_new (f);

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 77);
  g_strlcpy (ping.id, "a", sizeof ping.id);
  peer_send_unpadded (a, &ping);
  expect_silence (f, a);
  g_assert_cmpuint (server_stats (f).amplification, ==, 1);

  ping.tid = 78;
  peer_send (a, &ping);
  expect_pong (f, a, 78);
  g_assert_cmpuint (server_stats (f).amplification, ==, 1);
}

static void
test_udp_request_rate (Fixture       *f,
                       gconstpointer  data)
{
  FakePeer *a, *b;
  guint32 tid[4], server_tid[2];

  g_test_summary ("Beyond request-rate (bursts of twice as many) the server "
                  "forwards no more requests from an address until its budget "
                  "refills; the refused request is dropped before it takes a "
                  "place among the pending ones, and gets a rate-limited error");

  rndz_server_set_request_rate (f->server, 1);
  rndz_server_set_forward_timeout (f->server, 1000);

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");

  for (guint i = 0; i < 2; i++)
    {
      tid[i] = send_isync (f, b, "b", "a");
      server_tid[i] = expect_fsync (f, a, "b", b);
    }
  tid[2] = send_isync (f, b, "b", "a");
  expect_error (f, b, tid[2], RNDZ_WIRE_ERROR_RATE_LIMITED);
  sync_with_server (f, b);
  expect_silence (f, a);
  g_assert_cmpuint (server_stats (f).rate_limited, ==, 1);

  for (guint i = 0; i < 2; i++)
    {
      send_rsync (a, server_tid[i], "a", "b");
      expect_redirect (f, b, tid[i], "a", a);
    }

  /* The refused request was dropped: no peer-no-answer comes
   * once the forward timeout has passed (the requester retries) */
  run_for (f, 1200);
  expect_silence (f, b);

  /* A second later there is room for one more */
  tid[3] = send_isync (f, b, "b", "a");
  server_tid[0] = expect_fsync (f, a, "b", b);
  send_rsync (a, server_tid[0], "a", "b");
  expect_redirect (f, b, tid[3], "a", a);
}

/* Builds @kind of malformed input. Where it can, the input hides a valid
 * ping from "evil", so a missing check shows up as a registration. */
static GByteArray *
make_garbage (Garbage       kind,
              RndzTransport transport)
{
  static const char ping[] = "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"evil\"";
  g_autoptr(GString) text = g_string_new (NULL);
  GByteArray *bytes = g_byte_array_new ();
  gboolean framed = transport == RNDZ_TRANSPORT_TCP;

  switch (kind)
    {
    case GARBAGE_RANDOM:
      for (guint i = 0; i < 512; i++)
        g_string_append_c (text, (char) g_test_rand_int_range (0, 256));
      break;
    case GARBAGE_BAD_JSON:
      /* No closing brace */
      g_string_append (text, ping);
      break;
    case GARBAGE_NOT_OBJECT:
      g_string_append_printf (text, "[%s}]", ping);
      break;
    case GARBAGE_OVERSIZE:
      /* A valid ping, padded beyond the limit */
      g_string_append_printf (text, "%s}", ping);
      while (text->len <= RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 100)
        g_string_insert_c (text, text->len - 1, ' ');
      break;
    case GARBAGE_OVERSIZE_PREFIX:
      /* A frame header announcing far more than the limit */
      g_byte_array_append (bytes, (const guint8 *) "\xff\xff", 2);
      g_byte_array_append (bytes, (const guint8 *) ping, sizeof ping - 1);
      return bytes;
    case GARBAGE_EMPTY:
      /* An empty datagram, or a frame of length zero */
      break;
    case GARBAGE_INVALID_UTF8:
      g_string_append_printf (text, "%s,\"x\":\"\xc3\x28\xff\"}", ping);
      break;
    case GARBAGE_DEEP_NESTING:
      /* Deep enough to be refused, shallow enough for json-glib */
      g_string_append_printf (text, "%s,\"x\":", ping);
      for (guint i = 0; i < 200; i++)
        g_string_append_c (text, '[');
      for (guint i = 0; i < 200; i++)
        g_string_append_c (text, ']');
      g_string_append_c (text, '}');
      break;
    case GARBAGE_BAD_FIELD:
      /* An id one byte too long */
      g_string_append (text, "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"");
      for (guint i = 0; i < RNDZ_ID_MAX_LEN + 1; i++)
        g_string_append_c (text, 'e');
      g_string_append (text, "\"}");
      break;
    case GARBAGE_OLD_VERSION:
      g_string_append (text, "{\"v\":0,\"type\":\"ping\",\"tid\":1,\"id\":\"evil\"}");
      break;
    case GARBAGE_NONE:
    default:
      g_assert_not_reached ();
    }

  if (framed)
    {
      guint8 header[2] = { (text->len >> 8) & 0xff, text->len & 0xff };

      g_assert_cmpuint (text->len, <=, G_MAXUINT16);
      g_byte_array_append (bytes, header, 2);
    }
  g_byte_array_append (bytes, (const guint8 *) text->str, text->len);
  return bytes;
}

static void
assert_no_evil (Fixture *f)
{
  for (guint i = 0; i < f->registered->len; i++)
    g_assert_null (strstr (g_ptr_array_index (f->registered, i), "evil@"));
}

static void
test_udp_garbage (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GByteArray) garbage = make_garbage (f->params->garbage, RNDZ_TRANSPORT_UDP);
  FakePeer *good, *bad;
  guint32 tid;

  g_test_summary ("A malformed datagram is dropped without an answer, and the "
                  "server goes on answering its sender and everyone else");
  if (f->skipped)
    return;

  good = fake_peer_new (f);
  bad = fake_peer_new (f);
  register_peer (f, good, "good");

  peer_send_raw (bad, garbage->data, garbage->len);
  peer_send_raw (bad, garbage->data, garbage->len);

  /* Handled in order: the first answer to @bad must be this pong */
  tid = send_ping (f, bad, "bad");
  expect_pong (f, bad, tid);
  register_peer (f, good, "good");

  assert_no_evil (f);
  g_assert_cmpuint (peer_count (f), ==, 2);
  g_assert_cmpuint (server_stats (f).malformed, ==, 2);
}

static void
test_udp_ignored_messages (Fixture       *f,
                           gconstpointer  data)
{
  FakePeer *a;
  RndzMessage msg;
  guint32 tid;
  static const char future[] = "{\"v\":2,\"type\":\"future\",\"tid\":5,\"id\":\"evil\"}";

  g_test_summary ("Messages that only a server sends, and message types from a "
                  "later protocol version, are ignored");

  a = fake_peer_new (f);

  rndz_message_init (&msg, RNDZ_MESSAGE_PONG, 1);
  msg.addr = a->local;
  peer_send (a, &msg);
  rndz_message_init (&msg, RNDZ_MESSAGE_ERROR, 2);
  msg.code = RNDZ_WIRE_ERROR_SERVER_FULL;
  peer_send (a, &msg);
  rndz_message_init (&msg, RNDZ_MESSAGE_REDIRECT, 3);
  g_strlcpy (msg.id, "evil", sizeof msg.id);
  msg.addr = a->local;
  peer_send (a, &msg);
  peer_send_raw (a, future, sizeof future - 1);

  tid = send_ping (f, a, "a");
  expect_pong (f, a, tid);
  assert_no_evil (f);
}

/* A ping from @id, padded with spaces to @size bytes */
static GString *
padded_ping (guint32     tid,
             const char *id,
             gsize       size)
{
  GString *ping = g_string_new (NULL);

  g_string_printf (ping, "{\"v\":1,\"type\":\"ping\",\"tid\":%u,\"id\":\"%s\"}", tid, id);
  g_assert_cmpuint (ping->len, <=, size);
  while (ping->len < size)
    g_string_insert_c (ping, ping->len - 1, ' ');
  return ping;
}

static void
test_udp_max_message_size (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GString) too_large = padded_ping (7, "evil", 513);
  g_autoptr(GString) just_fits = padded_ping (8, "a", 512);
  FakePeer *a;
  guint32 tid;

  g_test_summary ("A datagram larger than max-message-size is dropped, one of "
                  "exactly that size is answered");

  rndz_server_set_max_message_size (f->server, 512);
  a = fake_peer_new (f);

  peer_send_raw (a, too_large->str, too_large->len);
  peer_send_raw (a, just_fits->str, just_fits->len);
  expect_pong (f, a, 8);
  assert_no_evil (f);

  tid = send_ping (f, a, "a");
  expect_pong (f, a, tid);
}

static void
test_tcp_malformed (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GByteArray) garbage = make_garbage (f->params->garbage, RNDZ_TRANSPORT_TCP);
  FakePeer *good, *bad;

  g_test_summary ("A malformed TCP frame closes the connection it came on, and "
                  "only that one");
  if (f->skipped)
    return;

  good = fake_peer_new (f);
  bad = fake_peer_new (f);
  register_peer (f, good, "good");
  register_peer (f, bad, "bad");

  peer_send_raw (bad, garbage->data, garbage->len);
  expect_closed (f, bad);
  wait_for_removed (f, "bad");

  register_peer (f, good, "good");
  g_assert_cmpuint (peer_count (f), ==, 1);
  g_assert_cmpuint (server_stats (f).malformed, ==, 1);
  assert_no_evil (f);
}

static void
test_tcp_ignored_messages (Fixture       *f,
                           gconstpointer  data)
{
  static const char future[] = "{\"v\":2,\"type\":\"future\",\"tid\":5,\"id\":\"evil\"}";
  guint8 frame[2 + sizeof future] = { 0, sizeof future - 1 };
  FakePeer *a;
  RndzMessage msg;
  guint32 tid;

  g_test_summary ("On TCP, messages that only a server sends are ignored and "
                  "frames of unknown message types are skipped, without "
                  "closing the connection");

  a = fake_peer_new (f);
  register_peer (f, a, "a");

  rndz_message_init (&msg, RNDZ_MESSAGE_PONG, 1);
  msg.addr = a->local;
  peer_send (a, &msg);
  memcpy (frame + 2, future, sizeof future - 1);
  peer_send_raw (a, frame, 2 + sizeof future - 1);
  rndz_message_init (&msg, RNDZ_MESSAGE_FSYNC, 3);
  g_strlcpy (msg.id, "evil", sizeof msg.id);
  msg.addr = a->local;
  peer_send (a, &msg);

  tid = send_ping (f, a, "a");
  expect_pong (f, a, tid);
  assert_no_evil (f);
  g_assert_cmpuint (peer_count (f), ==, 1);
}

static void
test_tcp_split_frames (Fixture       *f,
                       gconstpointer  data)
{
  char buf[2 * (RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE)];
  RndzMessage msg;
  FakePeer *a;
  gsize len;

  g_test_summary ("Frames are reassembled however the stream cuts them: byte "
                  "by byte, and two in one write");

  a = fake_peer_new (f);

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 41);
  g_strlcpy (msg.id, "a", sizeof msg.id);
  len = rndz_message_encode_frame (&msg, buf, sizeof buf);
  g_assert_cmpuint (len, >, 0);
  for (gsize i = 0; i < len; i++)
    {
      peer_send_raw (a, buf + i, 1);
      run_for (f, 1);
    }
  expect_pong (f, a, 41);

  msg.tid = 42;
  len = rndz_message_encode_frame (&msg, buf, sizeof buf);
  msg.tid = 43;
  len += rndz_message_encode_frame (&msg, buf + len, sizeof buf - len);
  peer_send_raw (a, buf, len);
  expect_pong (f, a, 42);
  expect_pong (f, a, 43);
}

static char *
payload_get_addr (const char *payload)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  JsonObject *object;

  json_parser_load_from_data (parser, payload, -1, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)));
  object = json_node_get_object (json_parser_get_root (parser));
  g_assert_true (json_object_has_member (object, "addr"));

  return g_strdup (json_object_get_string_member (object, "addr"));
}

static void
test_dual_stack (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GInetAddress) any = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *payload = NULL;
  g_autofree char *addr = NULL;
  g_autofree char *expected = NULL;
  FakePeer *v4, *v6;
  RndzMessage msg;
  guint32 tid, server_tid;
  gsize len;

  g_test_summary ("A server listening on the IPv6 any address answers IPv4 "
                  "clients too, reports their address as plain IPv4 text, and "
                  "refuses requests across IPv4 and IPv6 with address-family");

  rndz_server_stop (f->server);
  any = g_inet_address_new_any (G_SOCKET_FAMILY_IPV6);
  address = g_inet_socket_address_new (any, 0);
  if (!fixture_listen (f, address, &error))
    {
      g_test_skip_printf ("Cannot listen on [::]: %s", error->message);
      return;
    }

  v4 = fake_peer_new_full (f, f->params->transport, G_SOCKET_FAMILY_IPV4);
  tid = send_ping (f, v4, "v4");
  payload = peer_recv_payload (f, v4, &len, "pong");
  addr = payload_get_addr (payload);
  expected = g_strdup_printf ("127.0.0.1:%u", v4->local.port);
  g_assert_cmpstr (addr, ==, expected);
  rndz_message_decode (&msg, payload, len, RNDZ_MESSAGE_MAX_MAX_SIZE, &error);
  g_assert_no_error (error);
  expect_type (&msg, RNDZ_MESSAGE_PONG);
  g_assert_cmpuint (msg.tid, ==, tid);

  /* The signal has the IPv4 address, not a v4-mapped IPv6 one */
  g_assert_cmpuint (f->registered->len, ==, 1);
  g_assert_cmpint (f->last_registered_family, ==, G_SOCKET_FAMILY_IPV4);

  if (!ipv6_loopback_available)
    {
      g_test_message ("IPv6 loopback is unavailable: not mixing families");
      return;
    }

  /* Peers of both families register, and each family's peers meet;
   * across the two there is no path (a peer is known only by the address
   * the server saw), which the requester learns at once */
  v6 = fake_peer_new_full (f, f->params->transport, G_SOCKET_FAMILY_IPV6);
  register_peer (f, v6, "v6");
  g_assert_cmpint (f->last_registered_family, ==, G_SOCKET_FAMILY_IPV6);

  tid = send_isync (f, v4, "v4", "v6");
  expect_error (f, v4, tid, RNDZ_WIRE_ERROR_ADDRESS_FAMILY);
  expect_silence (f, v6);

  tid = send_isync (f, v6, "v6", "v4");
  expect_error (f, v6, tid, RNDZ_WIRE_ERROR_ADDRESS_FAMILY);
  expect_silence (f, v4);

  {
    FakePeer *v4b = fake_peer_new_full (f, f->params->transport, G_SOCKET_FAMILY_IPV4);

    tid = send_isync (f, v4b, "v4b", "v4");
    server_tid = expect_fsync (f, v4, "v4b", v4b);
    send_rsync (v4, server_tid, "v4", "v4b");
    expect_redirect (f, v4b, tid, "v4", v4);
  }
}

static void
test_stop (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  FakePeer *u, *t;
  guint16 old_port = f->port;

  g_test_summary ("rndz_server_stop() closes the sockets and every connection "
                  "and forgets every peer; the server can listen again after");

  u = fake_peer_new_full (f, RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4);
  t = fake_peer_new_full (f, RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4);
  register_peer (f, u, "u");
  register_peer (f, t, "t");
  g_assert_cmpuint (peer_count (f), ==, 2);

  rndz_server_stop (f->server);
  g_assert_cmpuint (peer_count (f), ==, 0);
  g_assert_cmpuint (f->removed->len, ==, 2);
  g_assert_true (removed_contains (f, "udp u"));
  g_assert_true (removed_contains (f, "tcp t"));
  g_assert_cmpuint (rndz_server_get_port (f->server), ==, 0);
  g_assert_null (rndz_server_get_local_address (f->server));

  expect_closed (f, t);
  send_ping (f, u, "u");
  expect_silence (f, u);

  /* Stopping twice is harmless */
  rndz_server_stop (f->server);

  address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  fixture_listen (f, address, &error);
  g_assert_no_error (error);
  g_test_message ("Listening again on port %u (was %u)", f->port, old_port);

  u = fake_peer_new_full (f, RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4);
  t = fake_peer_new_full (f, RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4);
  register_peer (f, u, "u");
  register_peer (f, t, "t");
  g_assert_cmpuint (peer_count (f), ==, 2);
}

static void
test_listen_twice (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) same_port = NULL;
  g_autoptr(RndzServer) other = NULL;
  g_autoptr(GError) error = NULL;
  FakePeer *a;

  g_test_summary ("Listening while listening fails with G_IO_ERROR_BUSY; "
                  "listening on a port in use fails; neither disturbs the "
                  "server");

  address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  g_assert_false (rndz_server_listen (f->server, address, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_clear_error (&error);

  other = rndz_server_new ();
  same_port = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, f->port);
  g_assert_false (rndz_server_listen (other, same_port, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
  g_assert_cmpuint (rndz_server_get_port (other), ==, 0);

  g_assert_cmpuint (rndz_server_get_port (f->server), ==, f->port);
  a = fake_peer_new_full (f, RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4);
  register_peer (f, a, "a");
  a = fake_peer_new_full (f, RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4);
  register_peer (f, a, "a");
}

/* Binds a UDP socket to a port of 127.0.0.1 whose TCP twin was free a
 * moment ago */
static GSocket *
take_udp_port (guint16 *port)
{
  for (guint attempt = 0; attempt < 16; attempt++)
    {
      g_autoptr(GSocket) tcp = NULL;
      g_autoptr(GSocket) udp = NULL;
      g_autoptr(GSocketAddress) any_port = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
      g_autoptr(GSocketAddress) bound = NULL;
      g_autoptr(GSocketAddress) address = NULL;
      g_autoptr(GError) error = NULL;

      tcp = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
      g_assert_no_error (error);
      g_socket_bind (tcp, any_port, FALSE, &error);
      g_assert_no_error (error);
      bound = g_socket_get_local_address (tcp, &error);
      g_assert_no_error (error);
      *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
      g_socket_close (tcp, NULL);

      udp = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
      g_assert_no_error (error);
      address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, *port);
      if (g_socket_bind (udp, address, FALSE, NULL))
        return g_steal_pointer (&udp);
    }

  g_assert_not_reached ();
}

static void
test_listen_udp_port_taken (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(RndzServer) other = NULL;
  g_autoptr(GSocket) udp = NULL;
  g_autoptr(GSocket) tcp = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  guint16 port;

  g_test_summary ("Listening on a port whose UDP half is taken fails with "
                  "G_IO_ERROR_ADDRESS_IN_USE and leaves the TCP half free");

  udp = take_udp_port (&port);
  address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);

  other = rndz_server_new ();
  g_assert_false (rndz_server_listen (other, address, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
  g_clear_error (&error);
  g_assert_cmpuint (rndz_server_get_port (other), ==, 0);

  /* Without SO_REUSEADDR, this fails if the server kept its listener */
  tcp = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_socket_bind (tcp, address, FALSE, &error);
  g_assert_no_error (error);
  g_socket_close (tcp, NULL);

  /* Once the port is free, the same server can take it */
  g_socket_close (udp, NULL);
  rndz_server_listen (other, address, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rndz_server_get_port (other), ==, port);
}

/* Re-entrancy: a handler may stop the server */

static void
stop_in_handler_cb (RndzServer *server)
{
  rndz_server_stop (server);
}

/* Runs the main context until the server stopped listening, for at most
 * f->wait_ms */
static gboolean
server_stopped (gpointer data)
{
  Fixture *f = data;

  return rndz_server_get_port (f->server) == 0;
}

static void
wait_for_stop (Fixture *f)
{
  rndz_test_run_until (f->context, server_stopped, f, f->wait_ms);

  g_assert_cmpuint (rndz_server_get_port (f->server), ==, 0);
  g_assert_cmpuint (peer_count (f), ==, 0);
}

/* After a stop in a handler, the server is whole: it listens and serves
 * again */
static void
expect_serves_again (Fixture *f)
{
  g_autoptr(GSocketAddress) address = rndz_test_loopback_address (f->params->family, 0);
  g_autoptr(GError) error = NULL;
  FakePeer *b;

  g_signal_handlers_disconnect_by_func (f->server, stop_in_handler_cb, NULL);
  fixture_listen (f, address, &error);
  g_assert_no_error (error);

  b = fake_peer_new (f);
  register_peer (f, b, "b");
  g_assert_cmpuint (peer_count (f), ==, 1);
}

static void
test_stop_in_peer_registered (Fixture       *f,
                              gconstpointer  data)
{
  FakePeer *a;

  g_test_summary ("A peer-registered handler may stop the server: the "
                  "message that registered the peer is not answered on the "
                  "freed connection");

  g_signal_connect (f->server, "peer-registered", G_CALLBACK (stop_in_handler_cb), NULL);
  a = fake_peer_new (f);
  send_ping (f, a, "a");
  wait_for_stop (f);
  g_assert_cmpuint (f->registered->len, ==, 1);
  g_assert_true (removed_contains (f, f->params->transport == RNDZ_TRANSPORT_TCP ? "tcp a" : "udp a"));

  expect_serves_again (f);
}

static void
test_stop_in_peer_removed (Fixture       *f,
                           gconstpointer  data)
{
  FakePeer *a;

  g_test_summary ("A peer-removed handler may stop the server while a "
                  "message removes a peer: over TCP a ping for another id "
                  "(the connection's old registration goes), over UDP a bye");

  a = fake_peer_new (f);
  register_peer (f, a, "a");
  g_signal_connect (f->server, "peer-removed", G_CALLBACK (stop_in_handler_cb), NULL);

  if (f->params->transport == RNDZ_TRANSPORT_TCP)
    send_ping (f, a, "a2");
  else
    send_bye (f, a, "a");
  wait_for_stop (f);
  g_assert_true (removed_contains (f, f->params->transport == RNDZ_TRANSPORT_TCP ? "tcp a" : "udp a"));

  expect_serves_again (f);
}

static void
test_stop_in_expiry (Fixture       *f,
                     gconstpointer  data)
{
  FakePeer *a, *b;

  g_test_summary ("A peer-removed handler may stop the server while the "
                  "timer expires peers");

  rndz_server_set_peer_timeout (f->server, 1000);
  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");
  register_peer (f, b, "b");
  g_signal_connect (f->server, "peer-removed", G_CALLBACK (stop_in_handler_cb), NULL);

  wait_for_removed (f, "a");
  wait_for_stop (f);
  g_assert_true (removed_contains (f, f->params->transport == RNDZ_TRANSPORT_TCP ? "tcp b" : "udp b"));

  expect_serves_again (f);
}

static void
dispose_in_handler_cb (RndzServer *server)
{
  g_object_run_dispose (G_OBJECT (server));
}

static void
unref_in_handler_cb (RndzServer *server,
                     const char *id,
                     gpointer    transport,
                     gpointer    address,
                     gpointer    user_data)
{
  Fixture *f = user_data;

  g_object_add_weak_pointer (G_OBJECT (server), (gpointer *) &f->server);
  g_object_unref (server);
}

static gboolean
server_gone (gpointer data)
{
  Fixture *f = data;

  return f->server == NULL;
}

static void
test_unref_in_peer_registered (Fixture       *f,
                               gconstpointer  data)
{
  FakePeer *a;

  g_test_summary ("A peer-registered handler may drop the last reference to "
                  "the server: it is finalized once the message is handled");

  g_signal_connect (f->server, "peer-registered", G_CALLBACK (unref_in_handler_cb), f);
  a = fake_peer_new (f);
  send_ping (f, a, "a");

  rndz_test_run_until (f->context, server_gone, f, f->wait_ms);
  g_assert_null (f->server);

  if (a->transport == RNDZ_TRANSPORT_TCP)
    {
      /* The pong came first, then the close */
      expect_pong (f, a, f->next_tid - 1);
      expect_closed (f, a);
    }
}

static void
test_dispose_in_peer_registered (Fixture       *f,
                                 gconstpointer  data)
{
  FakePeer *a;

  g_test_summary ("A peer-registered handler may run the server's dispose");

  g_signal_connect (f->server, "peer-registered", G_CALLBACK (dispose_in_handler_cb), NULL);
  a = fake_peer_new (f);
  send_ping (f, a, "a");
  wait_for_stop (f);
  g_signal_handlers_disconnect_by_func (f->server, dispose_in_handler_cb, NULL);
}

/* Refusals: rate-limited, auth-required */

/* Receives an error for @tid with @code; returns its size */
static gsize
expect_error_len (Fixture       *f,
                  FakePeer      *peer,
                  guint32        tid,
                  RndzWireError  code,
                  RndzMessage   *msg)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *payload = NULL;
  gsize len;

  payload = peer_recv_payload (f, peer, &len, "error");
  rndz_message_decode (msg, payload, len, RNDZ_MESSAGE_MAX_MAX_SIZE, &error);
  g_assert_no_error (error);
  expect_type (msg, RNDZ_MESSAGE_ERROR);
  g_assert_cmpuint (msg->tid, ==, tid);
  g_assert_cmpint (msg->code, ==, code);
  return len;
}

/* The size of the isync send_isync() sends over UDP (where the rule
 * that a reply is no larger than its request applies) */
static gsize
isync_size (FakePeer   *peer,
            guint32     tid,
            const char *id,
            const char *target)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  if (peer->transport == RNDZ_TRANSPORT_UDP)
    msg.pad_to = rndz_message_max_reply_size (&msg);
  return rndz_message_encode (&msg, buf, sizeof buf);
}

/* Spends b's budget (request-rate 1: a burst of 2) on requests for a */
static void
spend_budget (Fixture  *f,
              FakePeer *a,
              FakePeer *b)
{
  rndz_server_set_request_rate (f->server, 1);
  register_peer (f, a, "a");
  for (guint i = 0; i < 2; i++)
    {
      send_isync (f, b, "b", "a");
      expect_fsync (f, a, "b", b);
    }
}

static void
test_rate_limited (Fixture       *f,
                   gconstpointer  data)
{
  FakePeer *a, *b;
  RndzMessage msg;
  guint32 tid;
  gsize len;

  g_test_summary ("A request refused by the rate limit gets a rate-limited "
                  "error, no larger than the request, whose retry says when "
                  "the budget has refilled: a request then goes through");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  spend_budget (f, a, b);

  tid = send_isync (f, b, "b", "a");
  len = expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_RATE_LIMITED, &msg);
  g_test_message ("rate-limited: %" G_GSIZE_FORMAT " bytes, retry %u ms", len, msg.retry_ms);
  if (b->transport == RNDZ_TRANSPORT_UDP)
    g_assert_cmpuint (len, <=, isync_size (b, tid, "b", "a"));
  /* One token a second: never longer than that */
  g_assert_cmpuint (msg.retry_ms, >=, 1);
  g_assert_cmpuint (msg.retry_ms, <=, 1000);
  expect_silence (f, a);

  run_for (f, msg.retry_ms + 20);
  send_isync (f, b, "b", "a");
  expect_fsync (f, a, "b", b);
}

static void
test_rate_limited_default (Fixture       *f,
                           gconstpointer  data)
{
  FakePeer *a, *b;
  RndzMessage msg;
  guint32 first_tid;
  guint forwarded = 0;

  g_test_summary ("With the default limits, a quick series of 60 requests from "
                  "one address for one target gets its pair's burst of 4 fsyncs "
                  "through and rate-limited errors (over UDP one), whose retry "
                  "is at most a token's refill time at 2 a second, 500 ms");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  register_peer (f, a, "a");
  first_tid = f->next_tid;

  for (guint i = 0; i < 60; i++)
    send_isync (f, b, "b", "a");

  rndz_test_peer_recv (f->context, b, &msg, f->wait_ms, "rate-limited");
  expect_type (&msg, RNDZ_MESSAGE_ERROR);
  g_assert_cmpint (msg.code, ==, RNDZ_WIRE_ERROR_RATE_LIMITED);
  g_assert_cmpuint (msg.tid, >=, first_tid + 4);
  g_test_message ("request %u refused, retry %u ms", msg.tid - first_tid + 1, msg.retry_ms);
  g_assert_cmpuint (msg.retry_ms, >=, 1);
  g_assert_cmpuint (msg.retry_ms, <=, 500);

  /* Over UDP the barrier's answer is the next thing b hears (one error a
   * second); over TCP every refused request is answered */
  if (f->params->transport == RNDZ_TRANSPORT_TCP)
    for (guint32 tid = msg.tid + 1; tid < first_tid + 60; tid++)
      {
        rndz_test_peer_recv (f->context, b, &msg, f->wait_ms, "rate-limited");
        expect_type (&msg, RNDZ_MESSAGE_ERROR);
        g_assert_cmpint (msg.code, ==, RNDZ_WIRE_ERROR_RATE_LIMITED);
      }
  sync_with_server (f, b);

  while (a->in_len > 0 || g_socket_condition_check (a->socket, G_IO_IN) != 0)
    {
      rndz_test_peer_recv (f->context, a, &msg, f->wait_ms, "fsync");
      expect_type (&msg, RNDZ_MESSAGE_FSYNC);
      forwarded++;
    }
  g_test_message ("%u of 60 requests forwarded", forwarded);
  g_assert_cmpuint (forwarded, >=, 4);
  g_assert_cmpuint (forwarded, <, 10);
  g_assert_cmpuint (server_stats (f).rate_limited, ==, 60 - forwarded);
}

static void
test_rate_limited_flood (Fixture       *f,
                         gconstpointer  data)
{
  FakePeer *a, *b;
  RndzMessage msg;
  guint32 tid;

  g_test_summary ("A flood of refused requests over UDP gets one rate-limited error "
                  "per second and address, not one each; over TCP, whose source is "
                  "not forged, every refused request hears why");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  spend_budget (f, a, b);

  tid = send_isync (f, b, "b", "a");
  for (guint i = 0; i < 50; i++)
    send_isync (f, b, "b", "a");
  expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_RATE_LIMITED, &msg);
  if (f->params->transport == RNDZ_TRANSPORT_TCP)
    for (guint i = 1; i <= 50; i++)
      expect_error_len (f, b, tid + i, RNDZ_WIRE_ERROR_RATE_LIMITED, &msg);
  sync_with_server (f, b);
  expect_silence (f, b);
  expect_silence (f, a);
  g_assert_cmpuint (server_stats (f).rate_limited, ==, 51);
}

static void
test_udp_refusal_amplification (Fixture       *f,
                                gconstpointer  data)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("0123456789abcdef0123456789abcdef", 32);
  FakePeer *b;
  RndzMessage msg, ping;
  guint64 amplification;
  guint32 tid;

  g_test_summary ("An auth-required or rate-limited error is not sent for a "
                  "datagram smaller than itself (the source may be spoofed), "
                  "and such a request does not use up the one error of the "
                  "window");

  rndz_server_set_secret (f->server, secret);
  b = fake_peer_new (f);
  amplification = server_stats (f).amplification;

  /* An unpadded ping is shorter than the error */
  rndz_message_init (&ping, RNDZ_MESSAGE_PING, f->next_tid++);
  g_strlcpy (ping.id, "b", sizeof ping.id);
  peer_send_unpadded (b, &ping);
  expect_silence (f, b);
  g_assert_cmpuint (server_stats (f).amplification, ==, amplification + 1);

  tid = send_isync (f, b, "b", "a");
  expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED, &msg);
}

static void
test_udp_rate_limited_amplification (Fixture       *f,
                                     gconstpointer  data)
{
  FakePeer *a, *b;
  RndzMessage msg, isync;
  guint64 amplification;
  guint32 tid;

  g_test_summary ("A rate-limited isync too small for its answer is dropped "
                  "unanswered, and does not use up the one error of the window");

  a = fake_peer_new (f);
  b = fake_peer_new (f);
  spend_budget (f, a, b);
  amplification = server_stats (f).amplification;

  rndz_message_init (&isync, RNDZ_MESSAGE_ISYNC, f->next_tid++);
  g_strlcpy (isync.id, "b", sizeof isync.id);
  g_strlcpy (isync.target, "a", sizeof isync.target);
  peer_send_unpadded (b, &isync);
  sync_with_server (f, b);
  expect_silence (f, b);
  g_assert_cmpuint (server_stats (f).amplification, ==, amplification + 1);

  tid = send_isync (f, b, "b", "a");
  expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_RATE_LIMITED, &msg);
}

static void
test_auth_required (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("0123456789abcdef0123456789abcdef", 32);
  FakePeer *b;
  RndzMessage msg;
  guint32 tid;
  gsize len;

  g_test_summary ("A server that requires authentication answers an unsigned "
                  "request with auth-required, over UDP once per second and "
                  "address and never larger than the request");

  rndz_server_set_secret (f->server, secret);
  b = fake_peer_new (f);

  tid = send_isync (f, b, "b", "a");
  len = expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED, &msg);
  if (b->transport == RNDZ_TRANSPORT_UDP)
    g_assert_cmpuint (len, <=, isync_size (b, tid, "b", "a"));

  /* Over TCP each request is answered; over UDP one a window */
  tid = send_isync (f, b, "b", "a");
  if (b->transport == RNDZ_TRANSPORT_TCP)
    expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED, &msg);
  tid = send_ping (f, b, "b");
  if (b->transport == RNDZ_TRANSPORT_TCP)
    expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED, &msg);
  expect_silence (f, b);
  g_assert_cmpuint (peer_count (f), ==, 0);
  if (b->transport == RNDZ_TRANSPORT_TCP)
    return;

  /* The next window gets an answer again, to a ping as well */
  run_for (f, 1050);
  tid = send_ping (f, b, "b");
  expect_error_len (f, b, tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED, &msg);
}

/* Registration */

static const TestParams udp4 = { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_NONE };
static const TestParams udp6 = { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV6, GARBAGE_NONE };
static const TestParams tcp4 = { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_NONE };
static const TestParams tcp6 = { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV6, GARBAGE_NONE };

typedef void (*TestFunc) (Fixture *f, gconstpointer data);

static void
add_test (const char       *path,
          const TestParams *params,
          TestFunc          func)
{
  g_test_add (path, Fixture, params, fixture_setup, func, fixture_teardown);
}

/* Adds /server/udp/@name and /server/tcp/@name, both on IPv4 */
static void
add_both (const char *name,
          TestFunc    func)
{
  g_autofree char *udp_path = g_strdup_printf ("/server/udp/%s", name);
  g_autofree char *tcp_path = g_strdup_printf ("/server/tcp/%s", name);

  add_test (udp_path, &udp4, func);
  add_test (tcp_path, &tcp4, func);
}

/* Adds /server/{udp,tcp}/{ipv4,ipv6}/@name */
static void
add_all (const char *name,
         TestFunc    func)
{
  const TestParams *variants[] = { &udp4, &udp6, &tcp4, &tcp6 };

  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autofree char *path = NULL;

      path = g_strdup_printf ("/server/%s/%s/%s", transport_name (variants[i]->transport),
                              variants[i]->family == G_SOCKET_FAMILY_IPV6 ? "ipv6" : "ipv4",
                              name);
      add_test (path, variants[i], func);
    }
}

static const struct
{
  const char *name;
  TestParams params;
} garbage_tests[] = {
  { "/server/udp/garbage/random", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_RANDOM } },
  { "/server/udp/garbage/bad-json", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_BAD_JSON } },
  { "/server/udp/garbage/not-object", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_NOT_OBJECT } },
  { "/server/udp/garbage/oversize", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_OVERSIZE } },
  { "/server/udp/garbage/empty", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_EMPTY } },
  { "/server/udp/garbage/invalid-utf8", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_INVALID_UTF8 } },
  { "/server/udp/garbage/deep-nesting", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_DEEP_NESTING } },
  { "/server/udp/garbage/bad-field", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_BAD_FIELD } },
  { "/server/udp/garbage/old-version", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, GARBAGE_OLD_VERSION } },
  { "/server/udp/ipv6/garbage/deep-nesting", { RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV6, GARBAGE_DEEP_NESTING } },
};

static const struct
{
  const char *name;
  TestParams params;
} malformed_tests[] = {
  { "/server/tcp/malformed/bad-json", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_BAD_JSON } },
  { "/server/tcp/malformed/not-object", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_NOT_OBJECT } },
  { "/server/tcp/malformed/oversize-prefix", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_OVERSIZE_PREFIX } },
  { "/server/tcp/malformed/oversize-frame", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_OVERSIZE } },
  { "/server/tcp/malformed/zero-length", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_EMPTY } },
  { "/server/tcp/malformed/invalid-utf8", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_INVALID_UTF8 } },
  { "/server/tcp/malformed/deep-nesting", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_DEEP_NESTING } },
  { "/server/tcp/malformed/bad-field", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_BAD_FIELD } },
  { "/server/tcp/malformed/old-version", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, GARBAGE_OLD_VERSION } },
  { "/server/tcp/ipv6/malformed/zero-length", { RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV6, GARBAGE_EMPTY } },
};

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  ipv6_loopback_available = rndz_test_have_ipv6 ();

  add_test ("/server/properties", &udp4, test_properties);
  add_test ("/server/stop", &udp4, test_stop);
  add_test ("/server/listen-twice", &udp4, test_listen_twice);
  add_test ("/server/listen-udp-port-taken", &udp4, test_listen_udp_port_taken);

  add_all ("ping", test_ping);
  add_all ("isync-exchange", test_isync_exchange);
  add_both ("peer-count", test_peer_count);
  add_both ("isync-unknown-peer", test_isync_unknown_peer);
  add_both ("peer-no-answer", test_peer_no_answer);
  add_both ("fingerprints", test_fingerprints);
  add_both ("rsync-wrong-source", test_rsync_wrong_source);
  add_both ("expiry", test_expiry);
  add_both ("bye", test_bye);
  add_both ("replace", test_replace);
  add_both ("replace-notify", test_replace_notify);
  add_both ("max-peers", test_max_peers);
  add_both ("dual-stack", test_dual_stack);
  add_both ("rate-limited", test_rate_limited);
  add_both ("rate-limited-flood", test_rate_limited_flood);
  add_both ("rate-limited-default", test_rate_limited_default);
  add_both ("auth-required", test_auth_required);
  add_test ("/server/udp/batches", &udp4, test_udp_batches);
  add_test ("/server/udp/tid-reused", &udp4, test_udp_tid_reused);
  add_test ("/server/udp/rate-limited-amplification", &udp4, test_udp_rate_limited_amplification);
  add_test ("/server/udp/refusal-amplification", &udp4, test_udp_refusal_amplification);
  add_both ("stop-in-peer-registered", test_stop_in_peer_registered);
  add_both ("stop-in-peer-removed", test_stop_in_peer_removed);
  add_both ("stop-in-expiry", test_stop_in_expiry);
  add_both ("dispose-in-peer-registered", test_dispose_in_peer_registered);
  add_both ("unref-in-peer-registered", test_unref_in_peer_registered);

  add_test ("/server/udp/isync-retransmit", &udp4, test_isync_retransmit);
  /* The timer is the same for both transports */
  add_test ("/server/udp/peer-timeout-change", &udp4, test_peer_timeout_change);
  add_test ("/server/udp/max-message-size", &udp4, test_udp_max_message_size);
  add_test ("/server/udp/ignored-messages", &udp4, test_udp_ignored_messages);
  add_test ("/server/udp/amplification", &udp4, test_udp_amplification);
  add_test ("/server/udp/request-rate", &udp4, test_udp_request_rate);
  for (guint i = 0; i < G_N_ELEMENTS (garbage_tests); i++)
    add_test (garbage_tests[i].name, &garbage_tests[i].params, test_udp_garbage);

  add_test ("/server/tcp/reregister-other-id", &tcp4, test_tcp_reregister_other_id);
  add_test ("/server/tcp/requester-gone", &tcp4, test_tcp_requester_gone);
  add_test ("/server/tcp/max-connections", &tcp4, test_tcp_max_connections);
  add_test ("/server/tcp/max-connections-evict", &tcp4, test_tcp_max_connections_evict);
  add_test ("/server/tcp/unregistered-per-address", &tcp4, test_tcp_unregistered_per_address);
  add_test ("/server/tcp/register-timeout", &tcp4, test_tcp_register_timeout);
  add_test ("/server/tcp/split-frames", &tcp4, test_tcp_split_frames);
  add_test ("/server/tcp/ignored-messages", &tcp4, test_tcp_ignored_messages);
  for (guint i = 0; i < G_N_ELEMENTS (malformed_tests); i++)
    add_test (malformed_tests[i].name, &malformed_tests[i].params, test_tcp_malformed);

  return g_test_run ();
}
