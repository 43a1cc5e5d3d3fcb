/* test-cluster.c: server nodes that share one registry through a real Redis
 *
 * SPDX-License-Identifier: MIT
 *
 * Each test starts its own redis-server on a free loopback port, in a
 * temporary directory, without persistence, and stops it at the end;
 * the nodes are RndzServers in this process, on the default context,
 * with real RndzClients as peers.
 */

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "rndz-test-redis.h"
#include "rndz-test-util.h"
#include "rndz-server-private.h"
#include "rndz-message-private.h"
#include "rndz-connect-private.h"
#include "rndz-cluster-private.h"
#include "rndz-server-object-private.h"

#define WAIT_MS 5000

typedef struct
{
  RndzTestRedis *redis;
  char *redis_dir;
  guint16 redis_port;
  char *url;
  GBytes *secret;
  RndzServer *nodes[3];
  char *addresses[3];
} Fixture;

/* Redis */

static void
redis_start (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  f->redis = rndz_test_redis_start (f->redis_dir, f->redis_port, WAIT_MS, &error);
  g_assert_no_error (error);
}

/* Nodes */

static gboolean
node_connected (gpointer data)
{
  return rndz_server_get_cluster_connected (data);
}

static gboolean
node_disconnected (gpointer data)
{
  return !rndz_server_get_cluster_connected (data);
}

static RndzServer *
node_new_full (Fixture       *f,
               GBytes        *secret,
               GSocketFamily  family,
               guint16        port,
               gboolean       reuse_port)
{
  RndzServer *node = rndz_server_new ();

  rndz_server_set_cluster (node, f->url);
  rndz_server_set_cluster_secret (node, secret);
  rndz_server_set_reuse_port (node, reuse_port);
  rndz_server_set_forward_timeout (node, 1000);
  rndz_test_server_listen (node, family, port);
  g_assert_true (rndz_test_run_until (NULL, node_connected, node, WAIT_MS));
  return node;
}

static RndzServer *
node_new (Fixture *f,
          GBytes  *secret,
          guint16  port,
          gboolean reuse_port)
{
  return node_new_full (f, secret, G_SOCKET_FAMILY_IPV4, port, reuse_port);
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  if (!rndz_test_redis_installed ())
    return;

  f->redis_dir = g_dir_make_tmp ("rndz-cluster-XXXXXX", NULL);
  f->redis_port = rndz_test_free_port ();
  f->url = g_strdup_printf ("redis://127.0.0.1:%u", f->redis_port);
  f->secret = g_bytes_new_static ("a secret the nodes share", 24);
  redis_start (f);

  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    {
      f->nodes[i] = node_new (f, f->secret, 0, FALSE);
      f->addresses[i] = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (f->nodes[i]));
    }
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    {
      g_clear_object (&f->nodes[i]);
      g_clear_pointer (&f->addresses[i], g_free);
    }
  g_clear_pointer (&f->redis, rndz_test_redis_stop);
  if (f->redis_dir != NULL)
    {
      g_autofree char *dump = g_build_filename (f->redis_dir, "dump.rdb", NULL);

      g_unlink (dump);
      g_rmdir (f->redis_dir);
    }
  g_clear_pointer (&f->redis_dir, g_free);
  g_clear_pointer (&f->url, g_free);
  g_clear_pointer (&f->secret, g_bytes_unref);
  rndz_test_drain (NULL);
}

/* Peers */

static RndzClient *
peer_new (const char *id,
          const char *server)
{
  const char *servers[] = { server, NULL };
  RndzClient *client = rndz_client_new (id, servers);

  rndz_client_set_timeout (client, 3000);
  return client;
}

/* Listens with @client, set up as the test wants it */
static void
peer_listen (RndzClient *client,
             gboolean    tcp)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  if (tcp)
    {
      rndz_client_listen_tcp_async (client, NULL, rndz_test_async_cb, &result);
      rndz_test_wait_async (NULL, &result, WAIT_MS);
      g_assert_true (rndz_client_listen_tcp_finish (client, result, &error));
    }
  else
    {
      g_autoptr(GSocket) socket = NULL;

      rndz_client_listen_udp_async (client, NULL, rndz_test_async_cb, &result);
      rndz_test_wait_async (NULL, &result, WAIT_MS);
      socket = rndz_client_listen_udp_finish (client, result, &error);
    }
  g_assert_no_error (error);
}

static RndzClient *
listener_new (const char *id,
              const char *server,
              gboolean    tcp)
{
  RndzClient *client = peer_new (id, server);

  peer_listen (client, tcp);
  return client;
}

/* Connects @connector to @id; returns the error, or NULL on success */
static GError *
try_connect (RndzClient *connector,
             const char *id,
             gboolean    tcp)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GObject) object = NULL;
  GError *error = NULL;

  if (tcp)
    {
      rndz_client_connect_tcp_async (connector, id, NULL, rndz_test_async_cb, &result);
      rndz_test_wait_async (NULL, &result, WAIT_MS);
      object = (GObject *) rndz_client_connect_tcp_finish (connector, result, &error);
    }
  else
    {
      rndz_client_connect_udp_async (connector, id, NULL, rndz_test_async_cb, &result);
      rndz_test_wait_async (NULL, &result, WAIT_MS);
      object = (GObject *) rndz_client_connect_udp_finish (connector, result, &error);
    }
  g_assert_true ((object != NULL) == (error == NULL));
  return error;
}

/* Tests */

static void
test_across (Fixture       *f,
             gconstpointer  data)
{
  guint flags = GPOINTER_TO_UINT (data);
  gboolean tcp = (flags & 1) != 0;
  gboolean ipv6 = (flags & 2) != 0;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A connector that asks node 3 reaches a listener registered at node 1, "
                  "over UDP and TCP, IPv4 and IPv6");
  if (g_test_failed () || f->redis == NULL)
    return;
  if (ipv6 && !rndz_test_have_ipv6 ())
    {
      g_test_skip ("No IPv6 loopback");
      return;
    }

  /* Nodes on ::1 for IPv6 (Redis stays on 127.0.0.1) */
  if (ipv6)
    for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
      {
        g_clear_object (&f->nodes[i]);
        g_free (f->addresses[i]);
        f->nodes[i] = node_new_full (f, f->secret, G_SOCKET_FAMILY_IPV6, 0, FALSE);
        f->addresses[i] = g_strdup_printf ("[::1]:%u", rndz_server_get_port (f->nodes[i]));
      }

  alice = listener_new ("alice", f->addresses[0], tcp);
  bob = peer_new ("bob", f->addresses[2]);
  error = try_connect (bob, "alice", tcp);
  g_assert_no_error (error);
  g_assert_cmpuint (rndz_server_get_peer_count (f->nodes[0]), ==, 1);
  g_assert_cmpuint (rndz_server_get_peer_count (f->nodes[2]), ==, 0);
}

static void
test_not_found (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  g_test_summary ("An id that no node holds is not found, at once");
  if (f->redis == NULL)
    return;

  bob = peer_new ("bob", f->addresses[2]);
  start = g_get_monotonic_time ();
  error = try_connect (bob, "nobody", FALSE);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_PEER_NOT_FOUND);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 1 * G_USEC_PER_SEC);
}

static void
test_redis_down (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) carol = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  g_test_summary ("Without Redis a node serves its own peers and says at once that it "
                  "cannot find the others; once Redis is back (empty), the nodes "
                  "publish their peers again and the cluster works as before");
  if (f->redis == NULL)
    return;

  alice = listener_new ("alice", f->addresses[0], FALSE);
  carol = listener_new ("carol", f->addresses[2], FALSE);
  bob = peer_new ("bob", f->addresses[2]);

  g_clear_pointer (&f->redis, rndz_test_redis_stop);
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    g_assert_true (rndz_test_run_until (NULL, node_disconnected, f->nodes[i], WAIT_MS));

  start = g_get_monotonic_time ();
  error = try_connect (bob, "alice", FALSE);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_SERVER_UNAVAILABLE);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 1 * G_USEC_PER_SEC);
  g_clear_error (&error);

  /* Node 3's own peer is still served */
  error = try_connect (bob, "carol", FALSE);
  g_assert_no_error (error);

  redis_start (f);
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    g_assert_true (rndz_test_run_until (NULL, node_connected, f->nodes[i], 10 * 1000));
  rndz_test_run_for (NULL, 100);
  error = try_connect (bob, "alice", FALSE);
  g_assert_no_error (error);
}

static void
test_wrong_secret (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GBytes) other = g_bytes_new_static ("not the cluster's secret", 24);
  g_autoptr(RndzServer) stranger = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *address = NULL;

  g_test_summary ("A node acts only on messages signed with the cluster's secret: "
                  "a node with another one finds the peer in Redis, but its request "
                  "goes unanswered");
  if (f->redis == NULL)
    return;

  stranger = node_new (f, other, 0, FALSE);
  address = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (stranger));
  alice = listener_new ("alice", f->addresses[0], FALSE);
  bob = peer_new ("bob", address);

  error = try_connect (bob, "alice", FALSE);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER);
}

static void
test_no_secret (void)
{
  g_autoptr(RndzServer) node = rndz_server_new ();
  g_autoptr(GSocketAddress) address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  g_autoptr(GBytes) secret = g_bytes_new_static ("s", 1);
  g_autoptr(GError) error = NULL;

  g_test_summary ("A cluster without a secret for its nodes' messages does not start; "
                  "nor does one with a wrong address");

  rndz_server_set_cluster (node, "redis://127.0.0.1:1");
  g_assert_false (rndz_server_listen (node, address, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  rndz_server_set_cluster_secret (node, secret);
  rndz_server_set_cluster (node, "http://127.0.0.1:1");
  g_assert_false (rndz_server_listen (node, address, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
}

static gboolean
holds_alice (gpointer data)
{
  Fixture *f = data;

  for (guint i = 1; i < G_N_ELEMENTS (f->nodes); i++)
    if (f->nodes[i] != NULL && rndz_server_get_peer_count (f->nodes[i]) > 0)
      return TRUE;
  return FALSE;
}

static void
test_node_dies (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *address = NULL;
  guint16 port;
  guint holder = G_N_ELEMENTS (f->nodes);
  gint64 start;

  g_test_summary ("Three nodes on one port (SO_REUSEPORT): when the node that holds a "
                  "listener stops, the listener's next pings land on another node, "
                  "which takes it over, within two keepalive intervals");
  if (f->redis == NULL)
    return;

  /* The fixture's nodes make way for three on one port */
  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    g_clear_object (&f->nodes[i]);
  f->nodes[0] = node_new (f, f->secret, 0, TRUE);
  port = rndz_server_get_port (f->nodes[0]);
  for (guint i = 1; i < G_N_ELEMENTS (f->nodes); i++)
    f->nodes[i] = node_new (f, f->secret, port, TRUE);
  address = g_strdup_printf ("127.0.0.1:%u", port);

  alice = peer_new ("alice", address);
  rndz_client_set_keepalive_interval (alice, 1000);
  peer_listen (alice, FALSE);

  for (guint i = 0; i < G_N_ELEMENTS (f->nodes); i++)
    if (rndz_server_get_peer_count (f->nodes[i]) > 0)
      holder = i;
  g_assert_cmpuint (holder, <, G_N_ELEMENTS (f->nodes));

  /* The holder goes; node 0 stays in front, the others stand behind */
  if (holder != 0)
    {
      RndzServer *tmp = f->nodes[0];

      f->nodes[0] = f->nodes[holder];
      f->nodes[holder] = tmp;
    }
  start = g_get_monotonic_time ();
  g_clear_object (&f->nodes[0]);
  g_assert_true (rndz_test_run_until (NULL, holds_alice, f, 2 * 1000 + 500));
  g_test_message ("taken over after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - start) / 1000);

  bob = peer_new ("bob", address);
  error = try_connect (bob, "alice", FALSE);
  g_assert_no_error (error);
}

/* Two nodes on their own ports, both named 127.0.0.1:PORT of the first
 * (as nodes on one address would be), with authentication on */
static void
test_replay_across_nodes (Fixture       *f,
                          gconstpointer  data)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("the peers' secret", 17);
  g_autoptr(GBytes) key = rndz_derive_key (secret, "alice");
  g_autoptr(RndzServer) a = NULL;
  g_autoptr(RndzServer) b = NULL;
  RndzTestPeer *to_a, *to_b;
  char buf[1400];
  g_autofree char *name = NULL;
  const char *names[2] = { NULL, NULL };
  RndzMessage ping, pong;
  RndzAddr srv;
  gsize len;

  g_test_summary ("Nodes that share an address share the name signed messages carry: "
                  "a ping that one node accepted, replayed to another from elsewhere, "
                  "registers nothing there");
  if (f->redis == NULL)
    return;

  a = rndz_server_new ();
  b = rndz_server_new ();
  for (guint i = 0; i < 2; i++)
    {
      RndzServer *node = i == 0 ? a : b;

      rndz_server_set_secret (node, secret);
      rndz_server_set_cluster (node, f->url);
      rndz_test_server_listen (node, G_SOCKET_FAMILY_IPV4, 0);
      if (name == NULL)
        name = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (a));
      names[0] = name;
      rndz_server_set_public_addresses (node, names);
      g_assert_true (rndz_test_run_until (NULL, node_connected, node, WAIT_MS));
    }

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 7);
  g_strlcpy (ping.id, "alice", sizeof ping.id);
  ping.pad_to = rndz_message_max_reply_size (&ping);
  g_assert_true (rndz_addr_parse (&srv, name, NULL));
  rndz_message_sign (&ping, &srv, key, g_get_real_time () / 1000);
  len = rndz_message_encode (&ping, buf, sizeof buf);
  g_assert_cmpuint (len, >, 0);

  to_a = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, rndz_server_get_port (a));
  to_b = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, rndz_server_get_port (b));
  rndz_test_peer_send_raw (to_a, buf, len);
  rndz_test_peer_expect (NULL, to_a, RNDZ_MESSAGE_PONG, 7, &pong, WAIT_MS);
  g_assert_cmpuint (rndz_server_get_peer_count (a), ==, 1);

  /* The same bytes, from another port, to the other node */
  rndz_test_peer_send_raw (to_b, buf, len);
  rndz_test_peer_expect_silence (NULL, to_b, 300);
  g_assert_cmpuint (rndz_server_get_peer_count (b), ==, 0);

  rndz_test_peer_free (to_a);
  rndz_test_peer_free (to_b);
}

static void
peer_socket_cb (RndzClient *client,
                const char *peer_id,
                GSocket    *socket,
                gpointer    user_data)
{
  GSocket **out = user_data;

  g_set_object (out, socket);
}

static void
test_relay_across (Fixture       *f,
                   gconstpointer  data)
{
  gboolean tcp = GPOINTER_TO_INT (data);
  g_autoptr(RndzServer) a = NULL;
  g_autoptr(RndzServer) b = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) alice_side = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GObject) bob_side = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *address_a = NULL;
  g_autofree char *address_b = NULL;
  GSocket *socket;

  g_test_summary ("A relay request to node 2 for a peer registered at node 1 gets a "
                  "session on node 2's relay, which node 1 passes on to the peer: both "
                  "sides join it");
  if (f->redis == NULL)
    return;

  a = rndz_server_new ();
  b = rndz_server_new ();
  for (guint i = 0; i < 2; i++)
    {
      RndzServer *node = i == 0 ? a : b;

      rndz_server_set_cluster (node, f->url);
      rndz_server_set_cluster_secret (node, f->secret);
      rndz_server_set_relay_port (node, rndz_test_free_port ());
      /* Node 2 on a host of its own: the target, registered at node 1,
       * finds node 2's relay only if the session names it */
      if (i == 0)
        rndz_test_server_listen (node, G_SOCKET_FAMILY_IPV4, 0);
      else
        {
          g_autoptr(GInetAddress) host = g_inet_address_new_from_string ("127.0.0.2");
          g_autoptr(GSocketAddress) address = g_inet_socket_address_new (host, 0);

          g_assert_true (rndz_server_listen (node, address, &error));
        }
      g_assert_true (rndz_test_run_until (NULL, node_connected, node, WAIT_MS));
    }
  address_a = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (a));
  address_b = g_strdup_printf ("127.0.0.2:%u", rndz_server_get_port (b));

  alice = listener_new ("alice", address_a, tcp);
  g_signal_connect (alice, "peer-socket", G_CALLBACK (peer_socket_cb), &alice_side);

  bob = peer_new ("bob", address_b);
  rndz_client_set_direct_timeout (bob, 200);
  rndz_connect_try_direct = FALSE;
  if (tcp)
    {
      rndz_client_connect_tcp_async (bob, "alice", NULL, rndz_test_async_cb, &result);
      rndz_test_wait_async (NULL, &result, WAIT_MS);
      bob_side = (GObject *) rndz_client_connect_tcp_finish (bob, result, &error);
      socket = bob_side != NULL ? g_socket_connection_get_socket (G_SOCKET_CONNECTION (bob_side)) : NULL;
    }
  else
    {
      rndz_client_connect_udp_async (bob, "alice", NULL, rndz_test_async_cb, &result);
      rndz_test_wait_async (NULL, &result, WAIT_MS);
      bob_side = (GObject *) rndz_client_connect_udp_finish (bob, result, &error);
      socket = G_SOCKET (bob_side);
    }
  rndz_connect_try_direct = TRUE;
  g_assert_no_error (error);
  g_assert_cmpint (rndz_socket_get_path (socket), ==, RNDZ_PATH_RELAYED);
  g_assert_cmpuint (rndz_server_get_peer_count (b), ==, 0);

  if (!tcp)
    {
      g_assert_true (rndz_test_run_until_set (NULL, (gpointer *) &alice_side, WAIT_MS));
      g_assert_cmpint (rndz_socket_get_path (alice_side), ==, RNDZ_PATH_RELAYED);
    }
}

/* The envelope of messages between nodes */
static void
test_envelope (void)
{
  g_autoptr(GBytes) key = g_bytes_new_static ("the cluster key", 15);
  g_autoptr(GBytes) other = g_bytes_new_static ("another key", 11);
  g_autoptr(GError) error = NULL;
  RndzClusterMessage message = { { 0 } }, opened;
  g_autofree char *sealed = NULL;
  gint64 now = 1700000000000;
  gsize len;

  g_test_summary ("Messages between nodes open only with the cluster key, unchanged, "
                  "within 30 s of their time");

  g_strlcpy (message.origin, "0123456789abcdef", sizeof message.origin);
  message.transport = RNDZ_TRANSPORT_TCP;
  g_strlcpy (message.target, "alice", sizeof message.target);
  rndz_message_init (&message.msg, RNDZ_MESSAGE_FSYNC, 42);
  g_strlcpy (message.msg.id, "bob", sizeof message.msg.id);
  g_assert_true (rndz_addr_parse (&message.msg.addr, "192.0.2.7:4000", NULL));
  sealed = rndz_cluster_message_seal (&message, key, now, &len);
  g_assert_nonnull (sealed);

  g_assert_true (rndz_cluster_message_open (&opened, sealed, len, key, now + 29000, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (opened.origin, ==, message.origin);
  g_assert_cmpint (opened.transport, ==, RNDZ_TRANSPORT_TCP);
  g_assert_cmpstr (opened.target, ==, "alice");
  g_assert_cmpint (opened.msg.type, ==, RNDZ_MESSAGE_FSYNC);
  g_assert_cmpuint (opened.msg.tid, ==, 42);
  g_assert_cmpstr (opened.msg.id, ==, "bob");

  /* Another key, another time, any byte changed */
  g_assert_false (rndz_cluster_message_open (&opened, sealed, len, other, now, &error));
  g_clear_error (&error);
  g_assert_false (rndz_cluster_message_open (&opened, sealed, len, key, now + 31000, &error));
  g_clear_error (&error);
  g_assert_false (rndz_cluster_message_open (&opened, sealed, len, key, now - 31000, &error));
  g_clear_error (&error);
  for (gsize i = 0; i < len; i++)
    {
      g_autofree char *changed = g_memdup2 (sealed, len);

      changed[i] ^= 0x01;
      g_assert_false (rndz_cluster_message_open (&opened, changed, len, key, now, &error));
      g_clear_error (&error);
    }
}

static void
test_message_replay (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) subscriber = NULL;
  g_autoptr(GSocket) publisher = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *channel = NULL;
  g_autofree char *captured = NULL;
  RndzServerStats before, after;
  const char *args[3];
  gsize lens[3];
  gsize len;

  g_test_summary ("A message between nodes, published again on Redis, is dropped by "
                  "its node: it passes on nothing a second time");
  if (f->redis == NULL)
    return;

  /* Everything node 1 hears */
  channel = g_strdup_printf ("rndz:node:%s", rndz_cluster_get_node (f->nodes[0]->cluster));
  subscriber = rndz_test_redis_connect (f->redis_port);
  args[0] = "SUBSCRIBE", args[1] = channel;
  lens[0] = strlen (args[0]), lens[1] = strlen (args[1]);
  rndz_test_redis_send (subscriber, args, lens, 2);

  alice = listener_new ("alice", f->addresses[0], FALSE);
  bob = peer_new ("bob", f->addresses[2]);
  error = try_connect (bob, "alice", FALSE);
  g_assert_no_error (error);
  captured = rndz_test_redis_read_message (subscriber, channel, &len, WAIT_MS);

  rndz_server_get_stats (f->nodes[0], &before);
  publisher = rndz_test_redis_connect (f->redis_port);
  args[0] = "PUBLISH", args[1] = channel, args[2] = captured;
  lens[0] = strlen (args[0]), lens[1] = strlen (args[1]), lens[2] = len;
  rndz_test_redis_send (publisher, args, lens, 3);
  rndz_test_run_for (NULL, 300);
  rndz_server_get_stats (f->nodes[0], &after);
  g_assert_cmpuint (after.forwarded, ==, before.forwarded);
}

static void
test_authenticated (Fixture       *f,
                    gconstpointer  data)
{
  gboolean tcp = GPOINTER_TO_INT (data);
  g_autoptr(GBytes) secret = g_bytes_new_static ("the peers' secret", 17);
  g_autoptr(GBytes) alice_key = rndz_derive_key (secret, "alice");
  g_autoptr(GBytes) bob_key = rndz_derive_key (secret, "bob");
  g_autoptr(RndzServer) a = NULL;
  g_autoptr(RndzServer) b = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(RndzClient) mallory = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *address_a = NULL;
  g_autofree char *address_b = NULL;

  g_test_summary ("With authentication on every node (and the cluster key derived from "
                  "its secret), signed peers meet across nodes, the listener insisting on "
                  "authenticated requests; an unsigned requester gets auth-required");
  if (f->redis == NULL)
    return;

  a = rndz_server_new ();
  b = rndz_server_new ();
  for (guint i = 0; i < 2; i++)
    {
      RndzServer *node = i == 0 ? a : b;

      rndz_server_set_secret (node, secret);
      rndz_server_set_cluster (node, f->url);
      rndz_test_server_listen (node, G_SOCKET_FAMILY_IPV4, 0);
      g_assert_true (rndz_test_run_until (NULL, node_connected, node, WAIT_MS));
    }
  address_a = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (a));
  address_b = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (b));

  alice = peer_new ("alice", address_a);
  rndz_client_set_key (alice, alice_key);
  rndz_client_set_require_auth (alice, TRUE);
  /* A signed registration waits for the cluster's MAC claim: over TCP,
   * on the connection it came on */
  peer_listen (alice, tcp);
  g_assert_cmpuint (rndz_server_get_peer_count (a), ==, 1);

  bob = peer_new ("bob", address_b);
  rndz_client_set_key (bob, bob_key);
  error = try_connect (bob, "alice", tcp);
  g_assert_no_error (error);

  mallory = peer_new ("mallory", address_b);
  error = try_connect (mallory, "alice", tcp);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_AUTH_REQUIRED);
}

/* The milliseconds Redis gives @key to live, -2 if it is gone */
static gint64
redis_pttl (Fixture    *f,
            const char *key)
{
  g_autoptr(GSocket) socket = rndz_test_redis_connect (f->redis_port);
  const char *args[] = { "PTTL", key };
  gsize lens[] = { 4, strlen (key) };
  char reply[64] = { 0 };

  rndz_test_redis_send (socket, args, lens, 2);
  g_assert_cmpint (g_socket_receive (socket, reply, sizeof reply - 1, NULL, NULL), >, 0);
  g_assert_cmpint (reply[0], ==, ':');
  return g_ascii_strtoll (reply + 1, NULL, 10);
}

static void
test_claim_renewed (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(RndzServer) node = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autofree char *address = NULL;
  gint64 first;

  g_test_summary ("A node's claim on a peer lives the peer timeout and a half, and is "
                  "renewed while the peer pings: it outlives its first TTL");
  if (f->redis == NULL)
    return;

  node = rndz_server_new ();
  rndz_server_set_cluster (node, f->url);
  rndz_server_set_cluster_secret (node, f->secret);
  rndz_server_set_peer_timeout (node, 2000);
  rndz_test_server_listen (node, G_SOCKET_FAMILY_IPV4, 0);
  g_assert_true (rndz_test_run_until (NULL, node_connected, node, WAIT_MS));
  address = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (node));

  alice = peer_new ("alice", address);
  rndz_client_set_keepalive_interval (alice, 1000);
  peer_listen (alice, FALSE);

  rndz_test_run_for (NULL, 100);
  first = redis_pttl (f, "rndz:peer:udp:alice");
  g_assert_cmpint (first, >, 2000);
  g_assert_cmpint (first, <=, 3000);

  /* Past the first TTL, still there */
  rndz_test_run_for (NULL, 4000);
  g_assert_cmpint (redis_pttl (f, "rndz:peer:udp:alice"), >, 0);

  /* The peer gone, the claim goes (withdrawn, or expired) */
  g_clear_object (&alice);
  rndz_test_run_for (NULL, 3500);
  g_assert_cmpint (redis_pttl (f, "rndz:peer:udp:alice"), ==, -2);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/cluster/udp/across", Fixture, GUINT_TO_POINTER (0),
              fixture_set_up, test_across, fixture_tear_down);
  g_test_add ("/cluster/tcp/across", Fixture, GUINT_TO_POINTER (1),
              fixture_set_up, test_across, fixture_tear_down);
  g_test_add ("/cluster/udp/across-ipv6", Fixture, GUINT_TO_POINTER (2),
              fixture_set_up, test_across, fixture_tear_down);
  g_test_add ("/cluster/tcp/across-ipv6", Fixture, GUINT_TO_POINTER (3),
              fixture_set_up, test_across, fixture_tear_down);
  g_test_add ("/cluster/not-found", Fixture, NULL,
              fixture_set_up, test_not_found, fixture_tear_down);
  g_test_add ("/cluster/redis-down", Fixture, NULL,
              fixture_set_up, test_redis_down, fixture_tear_down);
  g_test_add ("/cluster/wrong-secret", Fixture, NULL,
              fixture_set_up, test_wrong_secret, fixture_tear_down);
  g_test_add ("/cluster/node-dies", Fixture, NULL,
              fixture_set_up, test_node_dies, fixture_tear_down);
  g_test_add ("/cluster/replay-across-nodes", Fixture, NULL,
              fixture_set_up, test_replay_across_nodes, fixture_tear_down);
  g_test_add ("/cluster/udp/relay-across", Fixture, GINT_TO_POINTER (FALSE),
              fixture_set_up, test_relay_across, fixture_tear_down);
  g_test_add ("/cluster/tcp/relay-across", Fixture, GINT_TO_POINTER (TRUE),
              fixture_set_up, test_relay_across, fixture_tear_down);
  g_test_add ("/cluster/message-replay", Fixture, NULL,
              fixture_set_up, test_message_replay, fixture_tear_down);
  g_test_add ("/cluster/udp/authenticated", Fixture, GINT_TO_POINTER (FALSE),
              fixture_set_up, test_authenticated, fixture_tear_down);
  g_test_add ("/cluster/tcp/authenticated", Fixture, GINT_TO_POINTER (TRUE),
              fixture_set_up, test_authenticated, fixture_tear_down);
  g_test_add ("/cluster/claim-renewed", Fixture, NULL,
              fixture_set_up, test_claim_renewed, fixture_tear_down);
  g_test_add_func ("/cluster/envelope", test_envelope);
  g_test_add_func ("/cluster/no-secret", test_no_secret);

  return g_test_run ();
}
