/* bench-rig.h: a listener and a connector, and the raw baselines
 *
 * SPDX-License-Identifier: MIT
 *
 * Everything runs on the thread-default main context of the calling
 * thread, like an application that does its networking on one main loop.
 */

#pragma once

#include <rndz-glib/rndz.h>

#include "bench-util.h"

G_BEGIN_DECLS

/* Runs the thread-default context until *done, or fails after @timeout_ms */
gboolean   bench_run_until            (gboolean      *done,
                                       guint          timeout_ms,
                                       GError       **error);

/*
 * BenchRig:
 *
 * A RndzClient listening as @listener_id with @transport and echoing what
 * its peers send (UDP: a g_socket_create_source() callback on the socket
 * listen_udp returned; TCP: accept, then async reads and writes on the
 * connection's streams), and a second RndzClient that reaches it.
 */
typedef struct _BenchRig BenchRig;

BenchRig * bench_rig_new              (const char    *server_addr,
                                       RndzTransport  transport,
                                       const char    *listener_id,
                                       GError       **error);
/* The same, with the listener registered at @listener_server and the
 * connector asking @connector_server (nodes of one cluster) */
BenchRig * bench_rig_new_split        (const char    *listener_server,
                                       const char    *connector_server,
                                       RndzTransport  transport,
                                       const char    *listener_id,
                                       GError       **error);
/* One rendezvous: from the connect call to the echo of a first message
 * back at the connector. Returns the time in microseconds, or < 0. */
gdouble    bench_rig_rendezvous       (BenchRig      *rig,
                                       GError       **error);
void       bench_rig_free             (BenchRig      *rig);

/* Runs @n rendezvous into @samples (µs), stopping early after
 * @budget_ms; at least one must succeed. @pause_ms between two keeps
 * under a server's request-rate limit. */
gboolean   bench_rig_measure          (BenchRig      *rig,
                                       guint          n,
                                       guint          pause_ms,
                                       guint          budget_ms,
                                       BenchSamples  *samples,
                                       GError       **error);

/* Raw baselines, on the same main context, in microseconds */
gboolean   bench_raw_udp_round_trips  (guint          n,
                                       BenchSamples  *samples,
                                       GError       **error);
gboolean   bench_raw_tcp_round_trips  (guint          n,
                                       BenchSamples  *samples,
                                       GError       **error);
gboolean   bench_raw_tcp_connect_echo (guint          n,
                                       BenchSamples  *samples,
                                       GError       **error);

G_END_DECLS
