/* rndz-forward-private.h: how RndzServer forwards requests between peers
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

#include "rndz-cluster-private.h"
#include "rndz-registry-private.h"
#include "rndz-relay-private.h"
#include "rndz-server-io-private.h"

G_BEGIN_DECLS

/*
 * RndzForwarder:
 *
 * The requests between peers: an isync is forwarded to its target as an
 * fsync and kept as a #RndzForward until the target's rsync turns it into
 * a redirect (or the forward timeout into peer-no-answer); a relay
 * request opens a session on the relay port. Both are rate limited per
 * requester and per target address; isyncs also per (target, requester)
 * pair, with a target budget for requesters new to it (rndz-forward.c,
 * isync_admit()).
 */
typedef struct _RndzForwarder RndzForwarder;

RndzForwarder *rndz_forwarder_new           (RndzServerIo           *io,
                                             RndzRegistry           *registry,
                                             const RndzServerConfig *config,
                                             RndzServerStats        *stats,
                                             guint                   request_rate);
void           rndz_forwarder_free          (RndzForwarder          *forwarder);
void           rndz_forwarder_set_rate      (RndzForwarder          *forwarder,
                                             guint                   per_second);
void           rndz_forwarder_set_relay     (RndzForwarder          *forwarder,
                                             RndzRelay              *relay);
void           rndz_forwarder_set_cluster   (RndzForwarder          *forwarder,
                                             RndzCluster            *cluster);
void           rndz_forwarder_set_relay_address (RndzForwarder      *forwarder,
                                                 const RndzAddr     *addr);
void           rndz_forwarder_clear         (RndzForwarder          *forwarder);
void           rndz_forwarder_conn_closed   (RndzForwarder          *forwarder,
                                             RndzServerConn         *conn);
void           rndz_forwarder_expire        (RndzForwarder          *forwarder,
                                             gint64                  now);

void           rndz_forwarder_handle_isync  (RndzForwarder          *forwarder,
                                             const RndzServerSource *src,
                                             const RndzMessage      *msg,
                                             gboolean                authenticated);
void           rndz_forwarder_handle_rsync  (RndzForwarder          *forwarder,
                                             const RndzServerSource *src,
                                             const RndzMessage      *msg);
void           rndz_forwarder_handle_relay  (RndzForwarder          *forwarder,
                                             const RndzServerSource *src,
                                             const RndzMessage      *msg,
                                             gboolean                authenticated);

void           rndz_forwarder_handle_cluster (RndzForwarder            *forwarder,
                                              const RndzClusterMessage *message);

G_END_DECLS
