/* rndz-server-cluster.c: RndzServer as one node of a cluster
 *
 * SPDX-License-Identifier: MIT
 *
 * The glue between the server and its RndzCluster (rndz-cluster.c): the
 * cluster properties, the key that signs messages between nodes, the
 * peers published as they register, ping and go, and the messages of
 * other nodes handed to the forwarder. See doc/cluster.md.
 */

#include "config.h"

#include <string.h>

#include "rndz-cluster-private.h"
#include "rndz-features.h"
#include "rndz-i18n-private.h"
#include "rndz-server-object-private.h"

#ifdef RNDZ_HAVE_CLUSTER
/* The key of the messages between nodes, derived from the peers'
 * authentication secret when no cluster secret is given. What is hashed
 * starts with a NUL, which no peer id has: no peer's key is the cluster
 * key. */
static GBytes *
derive_cluster_key (GBytes *secret)
{
  static const char label[] = "\0rndz cluster";
  g_autoptr(GHmac) hmac = NULL;
  guint8 digest[32];
  gsize len = sizeof digest;
  gsize secret_len;
  const guint8 *data = g_bytes_get_data (secret, &secret_len);

  hmac = g_hmac_new (G_CHECKSUM_SHA256, data, secret_len);
  g_hmac_update (hmac, (const guchar *) label, sizeof label - 1);
  g_hmac_get_digest (hmac, digest, &len);
  return g_bytes_new (digest, len);
}
#endif

/* How long a node's claim on a peer lasts in Redis, and how often it is
 * renewed: the peer pings at least once per peer timeout while it lives,
 * and its claim is renewed at its first ping of every half peer timeout,
 * so the claim outlives every renewal. */
static guint
refresh_interval_ms (RndzServer *server)
{
  return MAX (server->config.peer_timeout_ms / 2, 1000);
}

static guint
claim_ttl_ms (RndzServer *server)
{
  return server->config.peer_timeout_ms + refresh_interval_ms (server);
}

static void
announce_cb (gpointer            owner,
             RndzRegistryChange  change,
             const RndzPeer     *peer)
{
  RndzServer *server = owner;

  rndz_cluster_announce (server->cluster, peer->transport, peer->id, claim_ttl_ms (server));
}

void
rndz_server_cluster_peer_changed (RndzServer         *server,
                                  RndzRegistryChange  change,
                                  const RndzPeer     *peer)
{
  if (server->cluster == NULL)
    return;

  if (change == RNDZ_REGISTRY_REMOVED)
    rndz_cluster_withdraw (server->cluster, peer->transport, peer->id);
  else
    announce_cb (server, change, peer);
}

#ifdef RNDZ_HAVE_CLUSTER
static void
cluster_message_cb (gpointer                  owner,
                    const RndzClusterMessage *message)
{
  RndzServer *server = owner;

  rndz_server_enter (server);
  rndz_forwarder_handle_cluster (server->forwarder, message);
  rndz_server_leave (server);
}
#endif

/* A signed ping that would register or move an id, waiting for the
 * cluster to say that no node saw its MAC */
typedef struct
{
  RndzServer *server;
  RndzServerSource src;
  RndzMessage msg;
} HeldPing;

static void
held_ping_cb (gpointer user_data,
              gboolean fresh,
              gboolean aborted)
{
  HeldPing *held = user_data;
  RndzServer *server = held->server;

  /* The connection it came on may have closed meanwhile */
  if (!aborted && fresh && server->cluster != NULL &&
      (held->src.conn == NULL ||
       rndz_server_io_has_conn (server->io, held->src.conn, &held->src.from)))
    {
      rndz_server_enter (server);
      rndz_registry_handle_ping (server->registry, &held->src, &held->msg);
      rndz_server_leave (server);
    }
  else if (!aborted && !fresh)
    {
      server->stats.auth_failed++;
      g_debug ("Dropping a ping of “%s” that another node of the cluster accepted before",
               held->msg.id);
    }
  g_object_unref (server);
  g_free (held);
}

/*
 * rndz_server_cluster_hold_ping:
 *
 * Nodes that share an address accept the same signed messages (they
 * share `srv`), and each keeps its own replay cache: a ping that one
 * accepted could register its id, at the replayer's address, at another.
 * A signed ping that would register or move an id therefore waits until
 * Redis says no node saw its MAC. Pings that only keep a registration
 * alive, the most of them, do not wait. With Redis away, each node's own
 * cache is all there is (see doc/cluster.md).
 *
 * Returns: %TRUE if the ping is held (and handled later, or dropped)
 */
gboolean
rndz_server_cluster_hold_ping (RndzServer             *server,
                               const RndzServerSource *src,
                               const RndzMessage      *msg)
{
  HeldPing *held;

  if (server->cluster == NULL || msg->mac[0] == '\0' ||
      !rndz_registry_ping_moves (server->registry, src, msg))
    return FALSE;

  held = g_new0 (HeldPing, 1);
  held->server = g_object_ref (server);
  held->src = *src;
  held->msg = *msg;
  if (rndz_cluster_claim_mac (server->cluster, msg->mac, held_ping_cb, held))
    return TRUE;

  g_object_unref (server);
  g_free (held);
  return FALSE;
}

#ifdef RNDZ_HAVE_CLUSTER
/* Back after Redis was away (or lost its data): our claims again */
static void
cluster_state_cb (gpointer          owner,
                  RndzClusterState  state)
{
  RndzServer *server = owner;

  if (state == RNDZ_CLUSTER_UP)
    rndz_registry_foreach (server->registry, announce_cb, server);
  g_object_notify_by_pspec (G_OBJECT (server), rndz_server_properties[PROP_CLUSTER_CONNECTED]);
}

static const RndzClusterCallbacks cluster_callbacks = {
  .message = cluster_message_cb,
  .state_changed = cluster_state_cb,
};
#endif

/*
 * rndz_server_cluster_start:
 *
 * Joins the cluster of the cluster property, if any, as listen() starts.
 * Fails if the address is wrong, if there is no key for the messages
 * between nodes, or if the library was built without cluster support.
 */
gboolean
rndz_server_cluster_start (RndzServer  *server,
                           GError     **error)
{
  g_autoptr(GBytes) key = NULL;

  if (server->cluster_url == NULL)
    return TRUE;

#ifndef RNDZ_HAVE_CLUSTER
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       _("This build of rndz-glib has no cluster support (hiredis)"));
  return FALSE;
#else
  if (!rndz_cluster_parse_url (server->cluster_url, error))
    return FALSE;

  if (server->cluster_secret != NULL)
    key = g_bytes_ref (server->cluster_secret);
  else if (rndz_server_auth_get_secret (server->auth) != NULL)
    key = derive_cluster_key (rndz_server_auth_get_secret (server->auth));
  else
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           _("A cluster needs a secret for the messages between its nodes: "
                             "a cluster secret, or an authentication secret"));
      return FALSE;
    }

  server->cluster = rndz_cluster_new (server->context, server->cluster_url, key,
                                      &cluster_callbacks, server);
  rndz_forwarder_set_cluster (server->forwarder, server->cluster);
  rndz_registry_set_refresh (server->registry, refresh_interval_ms (server));
  g_debug ("Cluster node %s, through %s", rndz_cluster_get_node (server->cluster),
           server->cluster_url);
  return TRUE;
#endif
}

void
rndz_server_cluster_stop (RndzServer *server)
{
  rndz_forwarder_set_cluster (server->forwarder, NULL);
  rndz_registry_set_refresh (server->registry, 0);
  g_clear_pointer (&server->cluster, rndz_cluster_free);
}

/* Properties */

/**
 * rndz_server_get_cluster:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:cluster].
 *
 * Returns: (nullable): the address of the cluster's Redis, or %NULL
 *
 * Since: 1.0
 */
const char *
rndz_server_get_cluster (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), NULL);

  return server->cluster_url;
}

/**
 * rndz_server_set_cluster:
 * @server: a #RndzServer
 * @url: (nullable): `redis://[:PASSWORD@]ADDRESS[:PORT][/DB]`, or %NULL to
 *   serve alone
 *
 * Sets [property@Rndz.Server:cluster]. It takes effect at the next
 * rndz_server_listen().
 *
 * Since: 1.0
 */
void
rndz_server_set_cluster (RndzServer *server,
                         const char *url)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));

  if (g_strcmp0 (server->cluster_url, url) == 0)
    return;

  g_free (server->cluster_url);
  server->cluster_url = g_strdup (url != NULL && *url != '\0' ? url : NULL);
  g_object_notify_by_pspec (G_OBJECT (server), rndz_server_properties[PROP_CLUSTER]);
}

/**
 * rndz_server_set_cluster_secret:
 * @server: a #RndzServer
 * @secret: (nullable): the secret every node of the cluster shares
 *
 * Sets the key that signs the messages between the nodes of the cluster:
 * a node acts only on messages signed with it. Without one, the key is
 * derived from the authentication secret (rndz_server_set_secret()); a
 * cluster without either does not start. It takes effect at the next
 * rndz_server_listen().
 *
 * Since: 1.0
 */
void
rndz_server_set_cluster_secret (RndzServer *server,
                                GBytes     *secret)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));

  g_clear_pointer (&server->cluster_secret, g_bytes_unref);
  if (secret != NULL && g_bytes_get_size (secret) > 0)
    server->cluster_secret = g_bytes_ref (secret);
}

/**
 * rndz_server_get_cluster_connected:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:cluster-connected].
 *
 * Returns: whether the server is in a cluster and reaches its Redis
 *
 * Since: 1.0
 */
gboolean
rndz_server_get_cluster_connected (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);

  return server->cluster != NULL && rndz_cluster_get_state (server->cluster) == RNDZ_CLUSTER_UP;
}

/**
 * rndz_server_get_cluster_node:
 * @server: a #RndzServer
 *
 * Gets the id this server has as a node of its cluster: 16 hexadecimal
 * digits, random at each rndz_server_listen(). It names the node in
 * Redis (the values of the `rndz:peer:` keys, the channel
 * `rndz:node:NODE`), which is how operators tell the nodes apart.
 *
 * Returns: (nullable): the node id, or %NULL if the server is not
 *   listening in a cluster
 *
 * Since: 1.0
 */
const char *
rndz_server_get_cluster_node (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), NULL);

  if (server->cluster == NULL)
    return NULL;
  return rndz_cluster_get_node (server->cluster);
}

/**
 * rndz_server_get_reuse_port:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:reuse-port].
 *
 * Returns: whether the server shares its port with other processes
 *
 * Since: 1.0
 */
gboolean
rndz_server_get_reuse_port (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);

  return server->reuse_port;
}

/**
 * rndz_server_set_reuse_port:
 * @server: a #RndzServer
 * @reuse_port: whether to share the port
 *
 * Sets [property@Rndz.Server:reuse-port]. It takes effect at the next
 * rndz_server_listen().
 *
 * Since: 1.0
 */
void
rndz_server_set_reuse_port (RndzServer *server,
                            gboolean    reuse_port)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));

  reuse_port = !!reuse_port;
  if (server->reuse_port == reuse_port)
    return;

  server->reuse_port = reuse_port;
  g_object_notify_by_pspec (G_OBJECT (server), rndz_server_properties[PROP_REUSE_PORT]);
}
