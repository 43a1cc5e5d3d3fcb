/* bench-load.h: UDP ping load on rendezvous servers, from this process
 *
 * SPDX-License-Identifier: MIT
 *
 * Many simulated peers, one UDP socket (one source port on 127.0.0.1)
 * each, send padded pings to a server port and count the answers. A
 * window bounds the pings in flight so that the servers' socket buffers
 * do not overflow; sendmmsg() and recvmmsg() keep the generator's own
 * cost per ping low, so that the servers, not the generator, are the
 * limit. Used by rndz-load (one server) and bench-cluster (nodes sharing
 * one port).
 */

#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Processes whose CPU time a run measures, at most */
#define BENCH_LOAD_MAX_PIDS 4

typedef struct
{
  guint64 sent;
  guint64 received;
  guint64 lost;          /* given up on: no answer within 10 ms */
  gdouble seconds;
  gdouble cpu[BENCH_LOAD_MAX_PIDS];  /* seconds, of each process measured */
  gdouble server_cpu;    /* seconds, all of them together */
  gdouble own_cpu;       /* seconds, of the generating thread */
  gdouble machine_cpu;   /* seconds, all CPUs busy, whoever used them */
} BenchLoadResult;

typedef struct _BenchLoad BenchLoad;

/* @n_peers sockets, each connected to 127.0.0.1:@port, pinging as
 * "PREFIX-000042" (ids unique to @id_prefix) */
BenchLoad * bench_load_new        (guint             n_peers,
                                   guint16           port,
                                   const char       *id_prefix,
                                   guint             window,
                                   GError          **error);
/* Loads for @seconds, counting only what happens in that time, and the
 * CPU time of @pids (up to BENCH_LOAD_MAX_PIDS) over it */
void        bench_load_run        (BenchLoad        *load,
                                   const pid_t      *pids,
                                   guint             n_pids,
                                   gdouble           seconds,
                                   BenchLoadResult  *result);
/* A warm-up run of 1 s (registers every peer) then one of @seconds;
 * fails if nothing answered the warm-up */
gboolean    bench_load_measure    (BenchLoad        *load,
                                   const pid_t      *pids,
                                   guint             n_pids,
                                   gdouble           seconds,
                                   BenchLoadResult  *result,
                                   GError          **error);
void        bench_load_free       (BenchLoad        *load);

G_END_DECLS
