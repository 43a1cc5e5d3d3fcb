/* test-statistics.c: rndz_server_get_statistics(), over real sockets
 *
 * SPDX-License-Identifier: MIT
 */

#include <rndz-glib/rndz.h>

#include "rndz-message-private.h"
#include "rndz-test-util.h"

/* Every name the documentation of rndz_server_get_statistics() lists */
static const char * const names[] = {
  "peers_udp", "peers_tcp", "relay_sessions_open", "cluster_connected",
  "messages", "malformed", "rate_limited", "amplification", "auth_failed",
  "forwarded", "forwarded_across", "redirected", "not_found", "no_answer",
  "unavailable", "answers_across", "answers_across_us", "evicted",
  "refused_connections", "relay_sessions", "relay_bytes", "relay_dropped",
};

typedef struct
{
  RndzServer *server;
  guint16 port;
  guint32 next_tid;
} Fixture;

static void
fixture_setup (Fixture       *f,
               gconstpointer  user_data)
{
  f->server = rndz_server_new ();
  f->port = rndz_test_server_listen (f->server, G_SOCKET_FAMILY_IPV4, 0);
  f->next_tid = 1;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  user_data)
{
  rndz_server_stop (f->server);
  g_clear_object (&f->server);
  rndz_test_drain (NULL);
}

/* One statistic, which must be there */
static guint64
stat (Fixture    *f,
      const char *name)
{
  g_autoptr(GVariant) stats = rndz_server_get_statistics (f->server);
  guint64 value = 0;

  if (!g_variant_lookup (stats, name, "t", &value))
    g_error ("No statistic “%s”", name);
  return value;
}

static guint32
send_request (Fixture         *f,
              RndzTestPeer    *peer,
              RndzMessageType  type,
              const char      *id,
              const char      *target)
{
  RndzMessage msg;
  guint32 tid = f->next_tid++;

  rndz_message_init (&msg, type, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  if (target != NULL)
    g_strlcpy (msg.target, target, sizeof msg.target);
  rndz_test_peer_send (peer, &msg);
  return tid;
}

static void
register_peer (Fixture      *f,
               RndzTestPeer *peer,
               const char   *id)
{
  guint32 tid = send_request (f, peer, RNDZ_MESSAGE_PING, id, NULL);

  rndz_test_peer_expect (NULL, peer, RNDZ_MESSAGE_PONG, tid, NULL, RNDZ_TEST_TIMEOUT_MS);
}

/* The answer to an fsync: with the server's tid */
static void
send_rsync (RndzTestPeer *peer,
            guint32       server_tid,
            const char   *id,
            const char   *target)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, server_tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  rndz_test_peer_send (peer, &msg);
}

static void
expect_error (RndzTestPeer  *peer,
              guint32        tid,
              RndzWireError  code)
{
  RndzMessage msg;

  rndz_test_peer_expect (NULL, peer, RNDZ_MESSAGE_ERROR, tid, &msg, RNDZ_TEST_TIMEOUT_MS);
  g_assert_cmpint (msg.code, ==, code);
}

static void
test_names (Fixture       *f,
            gconstpointer  user_data)
{
  g_autoptr(GVariant) stats = rndz_server_get_statistics (f->server);

  g_test_summary ("The statistics are an a{st} with every documented name, all 0 on a new server");

  g_assert_cmpstr (g_variant_get_type_string (stats), ==, "a{st}");
  g_assert_false (g_variant_is_floating (stats));
  g_assert_cmpuint (g_variant_n_children (stats), ==, G_N_ELEMENTS (names));
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    g_assert_cmpuint (stat (f, names[i]), ==, 0);
}

static void
test_ping (Fixture       *f,
           gconstpointer  user_data)
{
  RndzTransport transport = GPOINTER_TO_INT (user_data);
  g_autoptr(RndzTestPeer) peer = rndz_test_peer_new (transport, G_SOCKET_FAMILY_IPV4, f->port);
  const char *counted = transport == RNDZ_TRANSPORT_UDP ? "peers_udp" : "peers_tcp";
  const char *other = transport == RNDZ_TRANSPORT_UDP ? "peers_tcp" : "peers_udp";

  g_test_summary ("A ping counts as a message, and its peer among the peers of its transport");

  register_peer (f, peer, "alice");
  g_assert_cmpuint (stat (f, "messages"), ==, 1);
  g_assert_cmpuint (stat (f, counted), ==, 1);
  g_assert_cmpuint (stat (f, other), ==, 0);

  /* The same peer again is still one peer */
  register_peer (f, peer, "alice");
  g_assert_cmpuint (stat (f, "messages"), ==, 2);
  g_assert_cmpuint (stat (f, counted), ==, 1);
}

static void
test_unknown_peer (Fixture       *f,
                   gconstpointer  user_data)
{
  g_autoptr(RndzTestPeer) peer = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, f->port);
  guint32 tid;

  g_test_summary ("A request for an unknown peer counts as not_found, and as nothing else");

  tid = send_request (f, peer, RNDZ_MESSAGE_ISYNC, "bob", "nobody");
  expect_error (peer, tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
  g_assert_cmpuint (stat (f, "not_found"), ==, 1);
  g_assert_cmpuint (stat (f, "messages"), ==, 1);
  g_assert_cmpuint (stat (f, "forwarded"), ==, 0);
  g_assert_cmpuint (stat (f, "no_answer"), ==, 0);
  g_assert_cmpuint (stat (f, "rate_limited"), ==, 0);
}

static void
test_rate_limited (Fixture       *f,
                   gconstpointer  user_data)
{
  g_autoptr(RndzTestPeer) target = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, f->port);
  g_autoptr(RndzTestPeer) requester = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, f->port);
  guint32 tid;

  g_test_summary ("A request over the rate limit counts as rate_limited; those within "
                  "it as forwarded");

  /* One a second, a burst of two */
  rndz_server_set_request_rate (f->server, 1);
  register_peer (f, target, "alice");
  for (guint i = 0; i < 2; i++)
    {
      send_request (f, requester, RNDZ_MESSAGE_ISYNC, "bob", "alice");
      rndz_test_peer_expect (NULL, target, RNDZ_MESSAGE_FSYNC, 0, NULL, RNDZ_TEST_TIMEOUT_MS);
    }
  g_assert_cmpuint (stat (f, "forwarded"), ==, 2);
  g_assert_cmpuint (stat (f, "rate_limited"), ==, 0);

  tid = send_request (f, requester, RNDZ_MESSAGE_ISYNC, "bob", "alice");
  expect_error (requester, tid, RNDZ_WIRE_ERROR_RATE_LIMITED);
  g_assert_cmpuint (stat (f, "rate_limited"), ==, 1);
  g_assert_cmpuint (stat (f, "forwarded"), ==, 2);
}

static void
test_outcomes (Fixture       *f,
               gconstpointer  user_data)
{
  g_autoptr(RndzTestPeer) target = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, f->port);
  g_autoptr(RndzTestPeer) requester = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, f->port);
  RndzMessage fsync;
  guint32 tid;

  g_test_summary ("An answered request counts as redirected, an unanswered one as no_answer "
                  "once forward-timeout has passed");

  rndz_server_set_forward_timeout (f->server, 1000);
  register_peer (f, target, "alice");

  tid = send_request (f, requester, RNDZ_MESSAGE_ISYNC, "bob", "alice");
  rndz_test_peer_expect (NULL, target, RNDZ_MESSAGE_FSYNC, 0, &fsync, RNDZ_TEST_TIMEOUT_MS);
  send_rsync (target, fsync.tid, "alice", "bob");
  rndz_test_peer_expect (NULL, requester, RNDZ_MESSAGE_REDIRECT, tid, NULL, RNDZ_TEST_TIMEOUT_MS);
  g_assert_cmpuint (stat (f, "redirected"), ==, 1);
  g_assert_cmpuint (stat (f, "no_answer"), ==, 0);

  tid = send_request (f, requester, RNDZ_MESSAGE_ISYNC, "bob", "alice");
  rndz_test_peer_expect (NULL, target, RNDZ_MESSAGE_FSYNC, 0, NULL, RNDZ_TEST_TIMEOUT_MS);
  expect_error (requester, tid, RNDZ_WIRE_ERROR_PEER_NO_ANSWER);
  g_assert_cmpuint (stat (f, "no_answer"), ==, 1);
  g_assert_cmpuint (stat (f, "redirected"), ==, 1);
  g_assert_cmpuint (stat (f, "forwarded"), ==, 2);
  g_assert_cmpuint (stat (f, "not_found"), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/statistics/names", Fixture, NULL, fixture_setup, test_names, fixture_teardown);
  g_test_add ("/statistics/udp/ping", Fixture, GINT_TO_POINTER (RNDZ_TRANSPORT_UDP),
              fixture_setup, test_ping, fixture_teardown);
  g_test_add ("/statistics/tcp/ping", Fixture, GINT_TO_POINTER (RNDZ_TRANSPORT_TCP),
              fixture_setup, test_ping, fixture_teardown);
  g_test_add ("/statistics/udp/unknown-peer", Fixture, NULL, fixture_setup, test_unknown_peer,
              fixture_teardown);
  g_test_add ("/statistics/udp/rate-limited", Fixture, NULL, fixture_setup, test_rate_limited,
              fixture_teardown);
  g_test_add ("/statistics/udp/outcomes", Fixture, NULL, fixture_setup, test_outcomes,
              fixture_teardown);

  return g_test_run ();
}
