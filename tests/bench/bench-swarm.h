/* bench-swarm.h: many UDP peers that keep themselves registered
 *
 * SPDX-License-Identifier: MIT
 *
 * N simulated peers, each with its own id ("peer-0000042") and its own
 * source address (127.X.Y.Z, at most 8,000 per /16 so that the server's
 * per-network cap of 10,000 does not refuse them), each pinging a server
 * once per keepalive interval, the pings of all of them spread evenly
 * over it: N / keepalive pings a second, as N real clients at their
 * default keepalive send. A handful of sockets bound to the wildcard
 * address send for all of them, naming each peer's source address with
 * IP_PKTINFO, so that N is not bounded by the limit on open files.
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _BenchSwarm BenchSwarm;

BenchSwarm * bench_swarm_new      (guint        n_peers,
                                   guint16      server_port,
                                   guint        keepalive_ms,
                                   GError     **error);
/* Sends the pings due by now, from the first call on, and receives the
 * answers, waiting for them at most @wait_ms */
void         bench_swarm_step     (BenchSwarm  *swarm,
                                   guint        wait_ms);
guint64      bench_swarm_sent     (BenchSwarm  *swarm);
guint64      bench_swarm_received (BenchSwarm  *swarm);
void         bench_swarm_free     (BenchSwarm  *swarm);

G_END_DECLS
