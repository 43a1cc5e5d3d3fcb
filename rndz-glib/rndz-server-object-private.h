/* rndz-server-object-private.h: the instance of RndzServer
 *
 * SPDX-License-Identifier: MIT
 *
 * Shared by rndz-server.c (the object, its signals, listen and stop),
 * rndz-server-settings.c (the getters and setters of its properties and
 * keys), rndz-server-cluster.c and rndz-server-stats.c (its statistics)
 * only; the parts below them never see it.
 */

#pragma once

#include "rndz-server-private.h"
#include "rndz-cluster-private.h"
#include "rndz-forward-private.h"
#include "rndz-registry-private.h"
#include "rndz-relay-private.h"
#include "rndz-server-auth-private.h"
#include "rndz-server-io-private.h"
#include "rndz-server-names-private.h"

G_BEGIN_DECLS

/* The ranges of the timeouts, in milliseconds like every timeout of the
 * API; the longest relay-idle-timeout is a week, the longest peer-timeout
 * about 24 days (the largest gint) */
#define MIN_TIMEOUT_MS 1000
#define MAX_PEER_TIMEOUT_MS ((guint) G_MAXINT)
#define MAX_FORWARD_TIMEOUT_MS (3600 * 1000)
#define MAX_REGISTER_TIMEOUT_MS (3600 * 1000)
#define MAX_RELAY_IDLE_TIMEOUT_MS (7 * 24 * 3600 * 1000)

struct _RndzServer
{
  GObject parent_instance;

  GMainContext *context;
  RndzServerIo *io;
  RndzRegistry *registry;
  RndzForwarder *forwarder;
  RndzServerAuth *auth;
  RndzServerNames *names;      /* what signed messages must name */
  GStrv public_addresses;      /* canonical, as names has them */
  RndzRelay *relay;            /* while listening with a relay port */

  GQueue events;               /* ServerEvent, in the order they happened */
  guint depth;                 /* server_enter() without server_leave() */
  gboolean peer_count_changed; /* notify::peer-count owed */

  RndzServerConfig config;
  RndzServerStats stats;

  guint request_rate;
  guint16 relay_port;
  guint relay_max_sessions;
  guint relay_rate;
  guint relay_idle_timeout_ms;
  guint relay_join_timeout_ms;

  char *cluster_url;
  GBytes *cluster_secret;
  gboolean reuse_port;
  RndzCluster *cluster;        /* while listening in a cluster */
  guint relay_max_per_address;
  guint relay_max_per_network;
  guint relay_max_lifetime_ms;
};

enum
{
  PROP_0,
  PROP_PEER_TIMEOUT,
  PROP_FORWARD_TIMEOUT,
  PROP_REGISTER_TIMEOUT,
  PROP_MAX_PEERS,
  PROP_MAX_PEERS_PER_ADDRESS,
  PROP_MAX_PEERS_PER_NETWORK,
  PROP_MAX_CONNECTIONS,
  PROP_MAX_MESSAGE_SIZE,
  PROP_REQUEST_RATE,
  PROP_RELAY_PORT,
  PROP_RELAY_MAX_SESSIONS,
  PROP_RELAY_RATE,
  PROP_RELAY_IDLE_TIMEOUT,
  PROP_RELAY_MAX_PER_ADDRESS,
  PROP_RELAY_MAX_PER_NETWORK,
  PROP_RELAY_MAX_LIFETIME,
  PROP_AUTH_REQUIRED,
  PROP_PUBLIC_ADDRESSES,
  PROP_PEER_COUNT,
  PROP_CLUSTER,
  PROP_CLUSTER_CONNECTED,
  PROP_REUSE_PORT,
  N_PROPS
};

extern GParamSpec *rndz_server_properties[N_PROPS];

void     rndz_server_enter                (RndzServer         *server);
void     rndz_server_leave                (RndzServer         *server);

/* rndz-server-cluster.c */
gboolean rndz_server_cluster_start        (RndzServer         *server,
                                           GError            **error);
void     rndz_server_cluster_stop         (RndzServer         *server);
gboolean rndz_server_cluster_hold_ping    (RndzServer             *server,
                                           const RndzServerSource *src,
                                           const RndzMessage      *msg);
void     rndz_server_cluster_peer_changed (RndzServer         *server,
                                           RndzRegistryChange  change,
                                           const RndzPeer     *peer);

G_END_DECLS
