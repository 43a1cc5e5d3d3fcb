/* rndz-cluster-none.c: RndzCluster in a build without hiredis
 *
 * SPDX-License-Identifier: MIT
 *
 * Nothing makes a cluster here (rndz_server_listen() refuses the cluster
 * property), so none of these is reached; they let the forwarder be the
 * same code in every build.
 */

#include "config.h"

#include "rndz-cluster-private.h"

const char *
rndz_cluster_get_node (RndzCluster *cluster)
{
  g_return_val_if_reached (NULL);
}

RndzClusterState
rndz_cluster_get_state (RndzCluster *cluster)
{
  return RNDZ_CLUSTER_DOWN;
}

void
rndz_cluster_free (RndzCluster *cluster)
{
}

void
rndz_cluster_announce (RndzCluster   *cluster,
                       RndzTransport  transport,
                       const char    *id,
                       guint          ttl_ms)
{
}

void
rndz_cluster_withdraw (RndzCluster   *cluster,
                       RndzTransport  transport,
                       const char    *id)
{
}

RndzClusterLookup *
rndz_cluster_lookup (RndzCluster           *cluster,
                     RndzTransport          transport,
                     const char            *id,
                     RndzClusterLookupFunc  func,
                     gpointer               user_data)
{
  return NULL;
}

void
rndz_cluster_lookup_cancel (RndzClusterLookup *lookup)
{
}

gboolean
rndz_cluster_claim_mac (RndzCluster          *cluster,
                        const char           *mac,
                        RndzClusterClaimFunc  func,
                        gpointer              user_data)
{
  return FALSE;
}

gboolean
rndz_cluster_send (RndzCluster              *cluster,
                   const char               *node,
                   const RndzClusterMessage *message)
{
  return FALSE;
}
