/* bench-redis.h: a redis-server of the benchmark's own, and what it says
 *
 * SPDX-License-Identifier: MIT
 *
 * A redis-server on a free loopback port, in a temporary directory,
 * without persistence, that dies with the benchmark (PR_SET_PDEATHSIG),
 * and a synchronous hiredis connection to read INFO from it. Every wait
 * is bounded.
 */

#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef struct _BenchRedis BenchRedis;

/* NULL with an error if redis-server is not installed or does not answer
 * within 5 s */
BenchRedis * bench_redis_start     (GError     **error);
void         bench_redis_stop      (BenchRedis  *redis);
pid_t        bench_redis_pid       (BenchRedis  *redis);
/* redis://127.0.0.1:PORT */
const char * bench_redis_url       (BenchRedis  *redis);

/* INFO @section, as Redis writes it; NULL on error */
char *       bench_redis_info      (BenchRedis  *redis,
                                    const char  *section,
                                    GError     **error);
/* The number after "NAME:" in INFO text; -1 if absent */
gdouble      bench_redis_info_field (const char *info,
                                     const char *name);
/* calls= of "cmdstat_COMMAND:" in INFO commandstats text; 0 if absent */
guint64      bench_redis_info_calls (const char *info,
                                     const char *command);
/* A command with an integer answer (DBSIZE); -1 on error */
gint64       bench_redis_integer   (BenchRedis  *redis,
                                    const char  *command,
                                    GError     **error);
/* A command whose answer does not matter (FLUSHALL, CONFIG RESETSTAT) */
gboolean     bench_redis_command   (BenchRedis  *redis,
                                    const char  *command,
                                    GError     **error);

/* @n SETs of keys like the nodes' ("rndz:bench:udp:peer-0000042", a
 * 16-byte value, PX 90000), @depth at a time on the connection: what a
 * busy node sends */
gboolean     bench_redis_pipeline_sets (BenchRedis *redis,
                                        guint       n,
                                        guint       depth,
                                        GError    **error);

G_END_DECLS
