/* rndz-registry-private.h: the registered peers of RndzServer
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

#include "rndz-message-private.h"
#include "rndz-server-io-private.h"
#include "rndz-server-types-private.h"

G_BEGIN_DECLS

/*
 * RndzRegistry:
 *
 * The peers registered with the server, one table per transport (id →
 * #RndzPeer), a queue of them by last ping for the peer timeout, the
 * max-peers limit and the caps per source address and network. It
 * answers ping and bye, and tells its owner of every registration, move
 * and removal through a #RndzRegistryFunc: it emits nothing itself.
 */
typedef struct _RndzRegistry RndzRegistry;

/* A registered peer. Kept small: a server may hold a million of them. */
typedef struct
{
  char *id;
  RndzAddr addr;
  guint8 transport;
  guint8 n_cands;
  gint64 last_seen;
  GList link;            /* in the expiry queue, oldest first */
  RndzServerConn *conn;  /* TCP only */
  RndzAddr *cands;       /* its local addresses, if it gave any */
} RndzPeer;

typedef enum
{
  RNDZ_REGISTRY_ADDED,   /* a new id */
  RNDZ_REGISTRY_MOVED,   /* an id registered anew: another address or connection */
  RNDZ_REGISTRY_REMOVED, /* @peer is freed when the function returns */
  RNDZ_REGISTRY_KEPT,    /* pinged again, once per refresh interval */
} RndzRegistryChange;

/* The address prefixes whose registrations are capped */
typedef enum
{
  RNDZ_PREFIX_ADDRESS, /* an IPv4 address, an IPv6 /64 */
  RNDZ_PREFIX_NETWORK, /* an IPv4 /16, an IPv6 /48 */
  N_PREFIXES
} RndzPrefix;

typedef void (*RndzRegistryFunc) (gpointer            owner,
                                  RndzRegistryChange  change,
                                  const RndzPeer     *peer);

RndzRegistry *rndz_registry_new          (RndzServerIo           *io,
                                          const RndzServerConfig *config,
                                          RndzServerStats        *stats,
                                          RndzRegistryFunc        func,
                                          gpointer                owner);
void          rndz_registry_free         (RndzRegistry           *registry);

guint         rndz_registry_get_count    (RndzRegistry           *registry);
guint         rndz_registry_count_transport (RndzRegistry        *registry,
                                             RndzTransport        transport);
guint         rndz_registry_count_prefix (RndzRegistry           *registry,
                                          const RndzAddr         *addr,
                                          RndzPrefix              level);
RndzPeer     *rndz_registry_lookup       (RndzRegistry           *registry,
                                          RndzTransport           transport,
                                          const char             *id);
void          rndz_registry_touch        (RndzRegistry           *registry,
                                          RndzPeer               *peer);
void          rndz_registry_set_refresh  (RndzRegistry           *registry,
                                          guint                   interval_ms);
void          rndz_registry_foreach      (RndzRegistry           *registry,
                                          RndzRegistryFunc        func,
                                          gpointer                user_data);
void          rndz_registry_remove       (RndzRegistry           *registry,
                                          RndzPeer               *peer);
void          rndz_registry_remove_all   (RndzRegistry           *registry);
void          rndz_registry_conn_closed  (RndzRegistry           *registry,
                                          RndzServerConn         *conn);
void          rndz_registry_expire       (RndzRegistry           *registry,
                                          gint64                  now);
void          rndz_registry_send         (RndzRegistry           *registry,
                                          RndzPeer               *peer,
                                          const RndzMessage      *msg);

void          rndz_registry_handle_ping  (RndzRegistry           *registry,
                                          const RndzServerSource *src,
                                          const RndzMessage      *msg);
gboolean      rndz_registry_ping_moves   (RndzRegistry           *registry,
                                          const RndzServerSource *src,
                                          const RndzMessage      *msg);
void          rndz_registry_handle_bye   (RndzRegistry           *registry,
                                          const RndzServerSource *src,
                                          const RndzMessage      *msg);

gboolean      rndz_peer_matches_source   (const RndzPeer         *peer,
                                          const RndzServerSource *src);
void          rndz_peer_get_cands        (const RndzPeer         *peer,
                                          RndzMessage            *msg);

G_END_DECLS
