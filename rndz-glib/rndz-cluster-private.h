/* rndz-cluster-private.h: server nodes that share one registry through Redis
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-message-private.h"
#include "rndz-types.h"

G_BEGIN_DECLS

/*
 * RndzCluster:
 *
 * A server node's link to the cluster: two connections to Redis (one for
 * commands, one subscribed to this node's channel), the published
 * whereabouts of the node's peers, lookups of the others', and signed
 * messages between nodes. See doc/cluster.md.
 */
typedef struct _RndzCluster RndzCluster;
typedef struct _RndzClusterLookup RndzClusterLookup;

/* A node id: 16 lowercase hexadecimal digits, random at start-up */
#define RNDZ_CLUSTER_NODE_LEN 16

typedef enum
{
  RNDZ_CLUSTER_DOWN,
  RNDZ_CLUSTER_CONNECTING,
  RNDZ_CLUSTER_UP,
} RndzClusterState;

/*
 * RndzClusterMessage:
 * @origin: the node that sent it
 * @transport: the transport of the request it is about
 * @target: the id the request names (a forward only)
 * @msg: an fsync to pass on (a forward), or the redirect or error that
 *   answers one; its tid is the origin node's id for the request
 */
typedef struct
{
  char origin[RNDZ_CLUSTER_NODE_LEN + 1];
  RndzTransport transport;
  char target[RNDZ_ID_MAX_LEN + 1];
  RndzMessage msg;
} RndzClusterMessage;

typedef struct
{
  void (*message)       (gpointer                  owner,
                         const RndzClusterMessage *message);
  /* UP again after being down: the node publishes its peers anew */
  void (*state_changed) (gpointer                  owner,
                         RndzClusterState          state);
} RndzClusterCallbacks;

/* @node: the node that holds the id, or NULL if none does or the lookup
 * failed (@failed: Redis could not be asked) */
typedef void (*RndzClusterLookupFunc) (gpointer    user_data,
                                       const char *node,
                                       gboolean    failed);

gboolean          rndz_cluster_parse_url    (const char                 *url,
                                             GError                    **error);
RndzCluster      *rndz_cluster_new          (GMainContext               *context,
                                             const char                 *url,
                                             GBytes                     *key,
                                             const RndzClusterCallbacks *callbacks,
                                             gpointer                    owner);
void              rndz_cluster_free         (RndzCluster                *cluster);

const char       *rndz_cluster_get_node     (RndzCluster                *cluster);
RndzClusterState  rndz_cluster_get_state    (RndzCluster                *cluster);

void              rndz_cluster_announce     (RndzCluster                *cluster,
                                             RndzTransport               transport,
                                             const char                 *id,
                                             guint                       ttl_ms);
void              rndz_cluster_withdraw     (RndzCluster                *cluster,
                                             RndzTransport               transport,
                                             const char                 *id);

RndzClusterLookup *rndz_cluster_lookup      (RndzCluster                *cluster,
                                             RndzTransport               transport,
                                             const char                 *id,
                                             RndzClusterLookupFunc       func,
                                             gpointer                    user_data);
void              rndz_cluster_lookup_cancel (RndzClusterLookup         *lookup);

/* @fresh: no node claimed the MAC before (or Redis could not say: the
 * node's own replay cache stands); @aborted: the cluster went away */
typedef void (*RndzClusterClaimFunc) (gpointer user_data,
                                      gboolean fresh,
                                      gboolean aborted);

gboolean          rndz_cluster_claim_mac    (RndzCluster                *cluster,
                                             const char                 *mac,
                                             RndzClusterClaimFunc        func,
                                             gpointer                    user_data);

gboolean          rndz_cluster_send         (RndzCluster                *cluster,
                                             const char                 *node,
                                             const RndzClusterMessage   *message);

/* The envelope of a message between nodes (rndz-cluster-message.c) */
char             *rndz_cluster_message_seal (const RndzClusterMessage   *message,
                                             GBytes                     *key,
                                             gint64                      now_ms,
                                             gsize                      *len);
gboolean          rndz_cluster_message_open (RndzClusterMessage         *message,
                                             const char                 *data,
                                             gsize                       len,
                                             GBytes                     *key,
                                             gint64                      now_ms,
                                             GError                    **error);

G_END_DECLS
