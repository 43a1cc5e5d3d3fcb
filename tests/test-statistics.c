/* test-statistics.c: rndz_server_get_statistics(), over real sockets
 *
 * SPDX-License-Identifier: MIT
 */

#include <rndz-glib/rndz.h>
#include <glib/gstdio.h>

#include "rndz-message-private.h"
#include "rndz-test-redis.h"
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

/* One statistic of @server, which must be there */
static guint64
server_stat (RndzServer *server,
             const char *name)
{
  g_autoptr(GVariant) stats = rndz_server_get_statistics (server);
  guint64 value = 0;

  if (!g_variant_lookup (stats, name, "t", &value))
    g_error ("No statistic “%s”", name);
  return value;
}

static guint64
statistic (Fixture    *f,
           const char *name)
{
  return server_stat (f->server, name);
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
    g_assert_cmpuint (statistic (f, names[i]), ==, 0);
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
  g_assert_cmpuint (statistic (f, "messages"), ==, 1);
  g_assert_cmpuint (statistic (f, counted), ==, 1);
  g_assert_cmpuint (statistic (f, other), ==, 0);

  /* The same peer again is still one peer */
  register_peer (f, peer, "alice");
  g_assert_cmpuint (statistic (f, "messages"), ==, 2);
  g_assert_cmpuint (statistic (f, counted), ==, 1);
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
  g_assert_cmpuint (statistic (f, "not_found"), ==, 1);
  g_assert_cmpuint (statistic (f, "messages"), ==, 1);
  g_assert_cmpuint (statistic (f, "forwarded"), ==, 0);
  g_assert_cmpuint (statistic (f, "no_answer"), ==, 0);
  g_assert_cmpuint (statistic (f, "rate_limited"), ==, 0);
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
  g_assert_cmpuint (statistic (f, "forwarded"), ==, 2);
  g_assert_cmpuint (statistic (f, "rate_limited"), ==, 0);

  tid = send_request (f, requester, RNDZ_MESSAGE_ISYNC, "bob", "alice");
  expect_error (requester, tid, RNDZ_WIRE_ERROR_RATE_LIMITED);
  g_assert_cmpuint (statistic (f, "rate_limited"), ==, 1);
  g_assert_cmpuint (statistic (f, "forwarded"), ==, 2);
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
  g_assert_cmpuint (statistic (f, "redirected"), ==, 1);
  g_assert_cmpuint (statistic (f, "no_answer"), ==, 0);

  tid = send_request (f, requester, RNDZ_MESSAGE_ISYNC, "bob", "alice");
  rndz_test_peer_expect (NULL, target, RNDZ_MESSAGE_FSYNC, 0, NULL, RNDZ_TEST_TIMEOUT_MS);
  expect_error (requester, tid, RNDZ_WIRE_ERROR_PEER_NO_ANSWER);
  g_assert_cmpuint (statistic (f, "no_answer"), ==, 1);
  g_assert_cmpuint (statistic (f, "redirected"), ==, 1);
  g_assert_cmpuint (statistic (f, "forwarded"), ==, 2);
  g_assert_cmpuint (statistic (f, "not_found"), ==, 0);
}

#ifdef RNDZ_HAVE_CLUSTER

/* A cluster of two nodes on a redis-server of its own (as in
 * test-cluster.c, which has more of it) */

/* A redis-server on a free loopback port, answering, in a new empty
 * directory @dir (it saves nothing there); its URL in @url */
static RndzTestRedis *
redis_start (char **dir,
             char **url)
{
  g_autoptr(GError) error = NULL;
  guint16 port = rndz_test_free_port ();
  RndzTestRedis *redis;

  *dir = g_dir_make_tmp ("rndz-statistics-XXXXXX", NULL);
  redis = rndz_test_redis_start (*dir, port, RNDZ_TEST_TIMEOUT_MS, &error);
  g_assert_no_error (error);
  *url = g_strdup_printf ("redis://127.0.0.1:%u", port);
  return redis;
}

static gboolean
node_connected (gpointer data)
{
  return rndz_server_get_cluster_connected (data);
}

static RndzServer *
node_new (const char *url,
          guint16    *port)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("a secret the nodes share", 24);
  RndzServer *node = rndz_server_new ();

  rndz_server_set_cluster (node, url);
  rndz_server_set_cluster_secret (node, secret);
  *port = rndz_test_server_listen (node, G_SOCKET_FAMILY_IPV4, 0);
  g_assert_true (rndz_test_run_until (NULL, node_connected, node, RNDZ_TEST_TIMEOUT_MS));
  return node;
}

/* bob at node 2 asks for alice at node 1: until Redis knows where she
 * is, the answer is not-found. Returns the fsync alice got. */
static void
request_across (RndzTestPeer *bob,
                RndzTestPeer *alice,
                RndzMessage  *fsync)
{
  for (guint32 tid = 1; tid < 100; tid++)
    {
      RndzMessage isync, answer;

      rndz_message_init (&isync, RNDZ_MESSAGE_ISYNC, tid);
      g_strlcpy (isync.id, "bob", sizeof isync.id);
      g_strlcpy (isync.target, "alice", sizeof isync.target);
      rndz_test_peer_send (bob, &isync);
      if (rndz_test_run_until_readable (NULL, alice->socket, 200))
        {
          rndz_test_peer_expect (NULL, alice, RNDZ_MESSAGE_FSYNC, 0, fsync, RNDZ_TEST_TIMEOUT_MS);
          return;
        }
      rndz_test_peer_expect (NULL, bob, RNDZ_MESSAGE_ERROR, tid, &answer, RNDZ_TEST_TIMEOUT_MS);
      g_assert_cmpint (answer.code, ==, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
    }
  g_error ("alice was not found across the cluster");
}

static void
test_cluster (void)
{
  g_autofree char *url = NULL, *dir = NULL;
  g_autoptr(RndzTestRedis) redis = NULL;
  g_autoptr(RndzServer) node1 = NULL, node2 = NULL;
  g_autoptr(RndzTestPeer) alice = NULL, bob = NULL;
  guint16 port1, port2;
  RndzMessage ping, fsync, redirect;
  guint64 not_found;

  g_test_summary ("Across a cluster: the requester's node counts the request sent across, "
                  "the answer and its latency, and the rendezvous, once for the fleet");
  if (!rndz_test_redis_installed ())
    return;

  redis = redis_start (&dir, &url);
  node1 = node_new (url, &port1);
  node2 = node_new (url, &port2);
  g_assert_cmpuint (server_stat (node1, "cluster_connected"), ==, 1);

  alice = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, port1);
  bob = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, port2);
  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (ping.id, "alice", sizeof ping.id);
  rndz_test_peer_send (alice, &ping);
  rndz_test_peer_expect (NULL, alice, RNDZ_MESSAGE_PONG, 1, NULL, RNDZ_TEST_TIMEOUT_MS);

  request_across (bob, alice, &fsync);
  not_found = server_stat (node2, "not_found");
  send_rsync (alice, fsync.tid, "alice", "bob");
  rndz_test_peer_expect (NULL, bob, RNDZ_MESSAGE_REDIRECT, 0, &redirect, RNDZ_TEST_TIMEOUT_MS);

  g_test_message ("Answer across after %" G_GUINT64_FORMAT " us",
                  server_stat (node2, "answers_across_us"));
  /* The requester's node */
  g_assert_cmpuint (server_stat (node2, "forwarded_across"), ==, 1);
  g_assert_cmpuint (server_stat (node2, "answers_across"), ==, 1);
  g_assert_cmpuint (server_stat (node2, "answers_across_us"), >, 0);
  g_assert_cmpuint (server_stat (node2, "answers_across_us"), <, RNDZ_TEST_TIMEOUT_MS * 1000);
  g_assert_cmpuint (server_stat (node2, "redirected"), ==, 1);
  g_assert_cmpuint (server_stat (node2, "peers_udp"), ==, 0);
  /* The target's node passed the request on, and does not count the
   * rendezvous again */
  g_assert_cmpuint (server_stat (node1, "forwarded"), ==, 1);
  g_assert_cmpuint (server_stat (node1, "redirected"), ==, 0);
  g_assert_cmpuint (server_stat (node1, "answers_across"), ==, 0);
  g_assert_cmpuint (server_stat (node1, "peers_udp"), ==, 1);
  g_assert_cmpuint (server_stat (node1, "not_found"), ==, 0);
  g_assert_cmpuint (server_stat (node2, "not_found"), ==, not_found);

  rndz_server_stop (node1);
  rndz_server_stop (node2);
  g_clear_pointer (&redis, rndz_test_redis_stop);
  g_rmdir (dir);
  rndz_test_drain (NULL);
}

#endif

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
#ifdef RNDZ_HAVE_CLUSTER
  g_test_add_func ("/statistics/cluster/across", test_cluster);
#endif

  return g_test_run ();
}
