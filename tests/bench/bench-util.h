/* bench-util.h: what the benchmarks share
 *
 * SPDX-License-Identifier: MIT
 *
 * Samples and their summary (median, p99, min), clocks, a time limit for
 * the whole program, child processes, and what /proc says about CPU time
 * and memory. Every figure a benchmark prints goes through bench_report()
 * or bench_target() so that the output has one shape:
 *
 *   name                          median   p99      min      max      n
 *   TARGET what ............................................ MET | MISSED
 */

#pragma once

#include <glib.h>
#include <sys/types.h>

G_BEGIN_DECLS

/* Nanoseconds on the monotonic clock */
gint64      bench_now_ns            (void);

typedef struct
{
  GArray *values;   /* gdouble */
} BenchSamples;

void        bench_samples_init      (BenchSamples       *samples);
void        bench_samples_clear     (BenchSamples       *samples);
void        bench_samples_add       (BenchSamples       *samples,
                                     gdouble             value);
guint       bench_samples_count     (const BenchSamples *samples);
/* 0 ≤ q ≤ 1, nearest rank; sorts the samples */
gdouble     bench_samples_quantile  (BenchSamples       *samples,
                                     gdouble             q);
gdouble     bench_samples_min       (BenchSamples       *samples);
gdouble     bench_samples_max       (BenchSamples       *samples);
gdouble     bench_samples_median    (BenchSamples       *samples);
gdouble     bench_samples_p99       (BenchSamples       *samples);
/* How many samples are at least @threshold */
guint       bench_samples_count_at_least (const BenchSamples *samples,
                                          gdouble             threshold);

void        bench_header            (const char         *title);
void        bench_report_header     (const char         *unit);
void        bench_report            (const char         *name,
                                     BenchSamples       *samples);
void        bench_figure            (const char         *name,
                                     const char         *format,
                                     ...) G_GNUC_PRINTF (2, 3);
/* Prints the target and whether it is met; remembers a miss */
gboolean    bench_target            (gboolean            met,
                                     const char         *format,
                                     ...) G_GNUC_PRINTF (2, 3);
/* The exit status: 0, or 1 with --check when a target was missed */
int         bench_exit_status       (void);

/* Prints the number of CPUs, the load average and how much of a core a
 * busy thread gets right now */
void        bench_print_machine     (void);

/* Parses the common options (--check, --iterations N, --time-limit
 * SECONDS) and the program's own @entries (may be NULL), and installs
 * the time limit: when it expires the program prints why and exits with
 * status 2, and its children get SIGKILL. */
void        bench_init              (int                *argc,
                                     char             ***argv,
                                     const char         *summary,
                                     const GOptionEntry *entries,
                                     guint               default_time_limit);
guint       bench_iterations        (guint               fallback);
/* A child that the time limit kills too (0: none); for children that
 * cannot set PR_SET_PDEATHSIG themselves, such as posix_spawn()ed ones */
void        bench_track_child       (pid_t               pid);

/* Seconds of CPU time of every thread of @pid (clock_getcpuclockid(), else
 * utime + stime of /proc/PID/stat), or of this process for 0 */
gdouble     bench_cpu_seconds       (pid_t               pid);
/* Seconds of CPU time all the CPUs of the machine spent busy (not idle,
 * not waiting for I/O), from /proc/stat; -1 if unknown */
gdouble     bench_machine_busy_seconds (void);
/* Seconds of CPU time of the calling thread */
gdouble     bench_thread_cpu_seconds (void);
/* VmRSS of this process in bytes */
gsize       bench_rss_bytes         (void);

/* Raises RLIMIT_NOFILE (soft and, as root, hard) to at least @wanted.
 * Returns the new soft limit. */
guint       bench_raise_nofile      (guint               wanted);

/* Children: started with stdout on a pipe and stderr on /dev/null (or
 * inherited with BENCH_VERBOSE set), LC_ALL=C.UTF-8 */
typedef struct
{
  pid_t pid;
  int stdout_fd;
} BenchChild;

gboolean    bench_spawn             (BenchChild         *child,
                                     const char * const *argv,
                                     GError            **error);
/* Reads one line from the child's stdout within @timeout_ms */
char *      bench_child_read_line   (BenchChild         *child,
                                     guint               timeout_ms,
                                     GError            **error);
/* SIGTERM, then SIGKILL after a while; reaps the child */
void        bench_child_stop        (BenchChild         *child);
/* The number after the last ':' of a line like "Listening on 127.0.0.1:4242" */
guint16     bench_parse_port        (const char         *line);
/* The number after "port " in "Registered as ID on port 4242" */
guint16     bench_parse_registered_port (const char     *line);

/* The path of the rndz tool: $RNDZ_TOOL, or the one compiled in */
const char *bench_tool_path         (void);

G_END_DECLS
