/* bench-cluster.c: server nodes that share one registry through Redis
 *
 * SPDX-License-Identifier: MIT
 *
 * Three measurements, each with its baseline in the same run, against a
 * redis-server of the benchmark's own (free loopback port, temporary
 * directory, no persistence; it dies with the benchmark):
 *
 *  a. UDP pings answered per second of wall time by one node, then by two
 *     nodes sharing its port (SO_REUSEPORT), each a bench-server process
 *     in the cluster, loaded by many UDP peers from this process
 *     (bench-load.c, as rndz-load). Target: two nodes answer at least
 *     1.7 times as many.
 *  b. Rendezvous latency with real RndzClients, the listener registered at
 *     node A, the connector asking node A (same node) or node B (cross
 *     node), in alternating sets, over UDP and TCP. Target: the
 *     cross-node median at most twice the same-node one.
 *  c. What a node costs Redis: 100,000 peers (own ids, own 127.X.Y.Z
 *     addresses) registered through one node and pinging at the default
 *     keepalive (10 s); Redis's used_memory before and after, and its
 *     commands (INFO commandstats) and CPU time over a window, per
 *     million peers and for ten million. No target: figures for sizing.
 *
 *   bench-cluster [--only a|b|c] [--peers N] [--seconds S] [--window W]
 *                 [--rounds R] [-n N] [--registry-peers N]
 *                 [--registry-seconds S] [--check] [--time-limit S]
 */

#include <rndz-glib/rndz.h>
#include <stdlib.h>
#include <string.h>

#include "bench-load.h"
#include "bench-redis.h"
#include "bench-rig.h"
#include "bench-swarm.h"
#include "bench-util.h"

#define SECRET "the secret of the bench-cluster nodes"
#define MAX_ROUNDS 10
/* The client's default keepalive interval */
#define KEEPALIVE_MS 10000
#define LATENCY_SET 50
#define LATENCY_WARMUP 20

static char *opt_only = NULL;
static gint opt_peers = 1000;
static gint opt_seconds = 5;
static gint opt_window = 256;
static gint opt_rounds = 2;
static gint opt_registry_peers = 100000;
static gint opt_registry_seconds = 60;

static const GOptionEntry entries[] = {
  { "only", 0, 0, G_OPTION_ARG_STRING, &opt_only, "Run one measurement only: a (throughput), b (latency) or c (Redis)", "a|b|c" },
  { "peers", 0, 0, G_OPTION_ARG_INT, &opt_peers, "a: simulated peers, one socket each (default 1000)", "N" },
  { "seconds", 0, 0, G_OPTION_ARG_INT, &opt_seconds, "a: seconds per measurement (default 5)", "S" },
  { "window", 0, 0, G_OPTION_ARG_INT, &opt_window, "a: pings in flight at most (default 256)", "W" },
  { "rounds", 0, 0, G_OPTION_ARG_INT, &opt_rounds, "a: rounds of one node then two (default 2)", "R" },
  { "registry-peers", 0, 0, G_OPTION_ARG_INT, &opt_registry_peers, "c: registered peers (default 100000)", "N" },
  { "registry-seconds", 0, 0, G_OPTION_ARG_INT, &opt_registry_seconds, "c: seconds of keepalive measured (default 60)", "S" },
  { NULL }
};

static gboolean
wanted (const char *part)
{
  return opt_only == NULL || g_str_equal (opt_only, part);
}

/* Nodes: bench-server processes in the cluster of @redis */

static gboolean
node_start (BenchChild  *node,
            BenchRedis  *redis,
            guint16      port,
            gboolean     reuse_port,
            guint16     *port_out,
            GError     **error)
{
  g_autofree char *port_arg = g_strdup_printf ("%u", port);
  const char *argv[] = { BENCH_SERVER_PATH, "--port", port_arg,
                         "--cluster", bench_redis_url (redis), "--cluster-secret", SECRET,
                         reuse_port ? "--reuse-port" : NULL, NULL };
  g_autofree char *line = NULL;

  if (!bench_spawn (node, argv, error))
    return FALSE;
  /* GLib writes debug messages to stdout too (G_MESSAGES_DEBUG) */
  do
    g_clear_pointer (&line, g_free);
  while ((line = bench_child_read_line (node, 8000, error)) != NULL &&
         !g_str_has_prefix (line, "Listening on "));
  if (line == NULL)
    {
      g_prefix_error (error, "bench-server (cluster node): ");
      bench_child_stop (node);
      return FALSE;
    }
  *port_out = bench_parse_port (line);
  return TRUE;
}

/* a. Throughput */

typedef struct
{
  BenchLoadResult one[MAX_ROUNDS];   /* cpu: node A, Redis */
  BenchLoadResult two[MAX_ROUNDS];   /* cpu: node A, Redis, node B */
  guint rounds;
} Throughput;

static gboolean
throughput_round (BenchLoad        *load,
                  BenchChild       *a,
                  BenchRedis       *redis,
                  guint16           port,
                  BenchLoadResult  *one,
                  BenchLoadResult  *two,
                  GError          **error)
{
  pid_t pids[3] = { a->pid, bench_redis_pid (redis), 0 };
  BenchChild b = { 0 };
  guint16 port_b;
  gboolean ok;

  if (!bench_load_measure (load, pids, 2, opt_seconds, one, error))
    return FALSE;

  if (!node_start (&b, redis, port, TRUE, &port_b, error))
    return FALSE;
  pids[2] = b.pid;
  /* The warm-up registers at B the peers that the kernel now hands to it */
  ok = bench_load_measure (load, pids, 3, opt_seconds, two, error);
  bench_child_stop (&b);
  return ok;
}

static gdouble
nodes_cpu (const BenchLoadResult *r,
           guint                  nodes)
{
  return r->cpu[0] + (nodes == 2 ? r->cpu[2] : 0);
}

static void
throughput_row (const char            *name,
                const BenchLoadResult *r,
                guint                  nodes)
{
  gdouble s = r->seconds;

  g_print ("%-22s %10.0f %8.0f%% %8.0f%% %8.1f%% %8.0f%% %8.0f%% %8.0f%% %12.0f %7.2f%%\n", name,
           r->received / s, 100 * r->cpu[0] / s, nodes == 2 ? 100 * r->cpu[2] / s : 0.0,
           100 * r->cpu[1] / s, 100 * r->own_cpu / s,
           100 * (r->server_cpu + r->own_cpu) / s, 100 * r->machine_cpu / s,
           r->received / nodes_cpu (r, nodes),
           r->sent > 0 ? 100.0 * r->lost / r->sent : 0.0);
}

/* Sums of the rounds: answers, seconds, CPU of the nodes */
static void
throughput_totals (const BenchLoadResult *results,
                   guint                  rounds,
                   guint                  nodes,
                   gdouble               *per_second,
                   gdouble               *per_cpu_second)
{
  gdouble received = 0, seconds = 0, cpu = 0;

  for (guint i = 0; i < rounds; i++)
    {
      received += results[i].received;
      seconds += results[i].seconds;
      cpu += nodes_cpu (&results[i], nodes);
    }
  *per_second = received / seconds;
  *per_cpu_second = received / cpu;
}

/* What the load generator spends per answer it counts */
static gdouble
load_us_per_pong (const BenchLoadResult *results,
                  guint                  rounds)
{
  gdouble received = 0, cpu = 0;

  for (guint i = 0; i < rounds; i++)
    {
      received += results[i].received;
      cpu += results[i].own_cpu;
    }
  return 1e6 * cpu / received;
}

static void
throughput_report (Throughput *t)
{
  gdouble one, two, one_cpu, two_cpu;

  g_print ("%d peers (one socket each, 127.0.0.1), window %d pings, %d s per measurement, "
           "after 1 s of warm-up\n", opt_peers, opt_window, opt_seconds);
  g_print ("%-22s %10s %9s %9s %9s %9s %9s %9s %12s %8s\n", "", "pongs/s", "node A", "node B",
           "Redis", "load", "these 4", "machine", "pongs/node-", "lost");
  g_print ("%-22s %10s %9s %9s %9s %9s %9s %9s %12s %8s\n", "", "(wall)", "CPU", "CPU",
           "CPU", "CPU", "CPU", "busy", "CPU-second", "");
  for (guint i = 0; i < t->rounds; i++)
    {
      g_autofree char *one_name = g_strdup_printf ("round %u: 1 node", i + 1);
      g_autofree char *two_name = g_strdup_printf ("round %u: 2 nodes", i + 1);

      throughput_row (one_name, &t->one[i], 1);
      throughput_row (two_name, &t->two[i], 2);
    }

  throughput_totals (t->one, t->rounds, 1, &one, &one_cpu);
  throughput_totals (t->two, t->rounds, 2, &two, &two_cpu);
  bench_figure ("1 node: pongs per second (all rounds)", "%.0f", one);
  bench_figure ("2 nodes: pongs per second (all rounds)", "%.0f", two);
  bench_figure ("2 nodes / 1 node, per second of wall time", "%.2f", two / one);
  bench_figure ("2 nodes / 1 node, per CPU-second of the nodes", "%.2f", two_cpu / one_cpu);
  bench_figure ("CPU per pong, 2 nodes: nodes, load generator", "%.2f us, %.2f us",
                1e6 / two_cpu, load_us_per_pong (t->two, t->rounds));
  bench_target (two / one >= 1.7, "2 nodes answer %.2f times as many pings as 1 (>= 1.7)", two / one);
}

static gboolean
measure_throughput (BenchRedis  *redis,
                    GError     **error)
{
  Throughput t = { .rounds = CLAMP (opt_rounds, 1, MAX_ROUNDS) };
  BenchChild a = { 0 };
  BenchLoad *load = NULL;
  guint16 port;
  gboolean ok = FALSE;

  bench_header ("7a. Cluster throughput: UDP pings answered by 1 node, and by 2 nodes on one port");
  if (!node_start (&a, redis, 0, TRUE, &port, error))
    return FALSE;
  load = bench_load_new (opt_peers, port, "load", opt_window, error);
  if (load == NULL)
    goto out;

  for (guint i = 0; i < t.rounds; i++)
    if (!throughput_round (load, &a, redis, port, &t.one[i], &t.two[i], error))
      goto out;

  throughput_report (&t);
  ok = TRUE;

out:
  bench_load_free (load);
  bench_child_stop (&a);
  return ok;
}

/* b. Latency */

/* Rendezvous of @same and @cross in alternating sets, so that what the
 * machine does meanwhile falls on both alike */
static gboolean
latency_sets (BenchRig      *same,
              BenchRig      *cross,
              BenchSamples  *same_samples,
              BenchSamples  *cross_samples,
              GError       **error)
{
  guint n = bench_iterations (500);
  BenchSamples warmup;
  gboolean ok;

  bench_samples_init (&warmup);
  ok = bench_rig_measure (same, LATENCY_WARMUP, 0, 30000, &warmup, error) &&
       bench_rig_measure (cross, LATENCY_WARMUP, 0, 30000, &warmup, error);
  bench_samples_clear (&warmup);

  for (guint done = 0; ok && done < n; done += LATENCY_SET)
    {
      guint k = MIN (LATENCY_SET, n - done);

      ok = bench_rig_measure (same, k, 0, 60000, same_samples, error) &&
           bench_rig_measure (cross, k, 0, 60000, cross_samples, error);
    }
  return ok;
}

static gboolean
latency_transport (const char     *a,
                   const char     *b,
                   RndzTransport   transport,
                   GError        **error)
{
  const char *name = transport == RNDZ_TRANSPORT_UDP ? "udp" : "tcp";
  g_autofree char *same_id = g_strdup_printf ("same-%s", name);
  g_autofree char *cross_id = g_strdup_printf ("cross-%s", name);
  g_autofree char *same_name = g_strdup_printf ("%s same node (A -> A)", name);
  g_autofree char *cross_name = g_strdup_printf ("%s cross node (B -> A)", name);
  BenchRig *same = NULL, *cross = NULL;
  BenchSamples same_samples, cross_samples;
  gboolean ok = FALSE;

  bench_samples_init (&same_samples);
  bench_samples_init (&cross_samples);
  same = bench_rig_new_split (a, a, transport, same_id, error);
  if (same != NULL)
    cross = bench_rig_new_split (a, b, transport, cross_id, error);
  if (cross != NULL && latency_sets (same, cross, &same_samples, &cross_samples, error))
    {
      gdouble ratio = bench_samples_median (&cross_samples) / bench_samples_median (&same_samples);

      bench_report (same_name, &same_samples);
      bench_report (cross_name, &cross_samples);
      bench_figure ("cross / same, median", "%.2f", ratio);
      bench_target (ratio <= 2.0, "%s: cross-node median %.2f x same-node (<= 2)", name, ratio);
      ok = TRUE;
    }

  g_clear_pointer (&cross, bench_rig_free);
  g_clear_pointer (&same, bench_rig_free);
  bench_samples_clear (&same_samples);
  bench_samples_clear (&cross_samples);
  return ok;
}

static gboolean
measure_latency (BenchRedis  *redis,
                 GError     **error)
{
  BenchChild a = { 0 }, b = { 0 };
  guint16 port_a, port_b;
  g_autofree char *addr_a = NULL, *addr_b = NULL;
  gboolean ok = FALSE;

  bench_header ("7b. Cluster rendezvous latency: connector at the listener's node, and at another");
  if (!node_start (&a, redis, 0, FALSE, &port_a, error) ||
      !node_start (&b, redis, 0, FALSE, &port_b, error))
    goto out;
  addr_a = g_strdup_printf ("127.0.0.1:%u", port_a);
  addr_b = g_strdup_printf ("127.0.0.1:%u", port_b);

  g_print ("nodes A %s and B %s (bench-server processes); listener registered at A; "
           "%u rendezvous each, in alternating sets of %d\n",
           addr_a, addr_b, bench_iterations (500), LATENCY_SET);
  bench_report_header ("microseconds");
  ok = latency_transport (addr_a, addr_b, RNDZ_TRANSPORT_UDP, error) &&
       latency_transport (addr_a, addr_b, RNDZ_TRANSPORT_TCP, error);

out:
  bench_child_stop (&b);
  bench_child_stop (&a);
  return ok;
}

/* c. Redis */

/* cmdstat_NAME → calls, from INFO commandstats */
static GHashTable *
parse_commandstats (const char *info)
{
  GHashTable *calls = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_auto(GStrv) lines = g_strsplit (info != NULL ? info : "", "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *colon = strchr (lines[i], ':');
      const char *count = strstr (lines[i], ":calls=");

      if (g_str_has_prefix (lines[i], "cmdstat_") && colon != NULL && count == colon)
        g_hash_table_insert (calls, g_strndup (lines[i] + 8, colon - lines[i] - 8),
                             GSIZE_TO_POINTER (g_ascii_strtoull (count + 7, NULL, 10)));
    }
  return calls;
}

typedef struct
{
  guint n_peers;
  gdouble bytes_per_peer;       /* used_memory */
  gdouble rss_per_peer;         /* used_memory_rss */
  gint64 keys;
  guint64 first_pongs;
  gdouble window;               /* seconds */
  guint64 sets;                 /* over the window */
  GArray *per_second;           /* guint64 SET calls in each second */
  GArray *cpu_per_second;       /* gdouble Redis CPU seconds in each one */
  gdouble capacity_per_second;  /* baseline: pipelined SETs */
  gdouble capacity_per_cpu;
  char *other_commands;
  gdouble redis_cpu;            /* seconds, over the window */
  gdouble node_cpu;
} RegistryFigures;

/* Keeps the swarm pinging until @deadline_ns */
static void
swarm_run_until (BenchSwarm *swarm,
                 gint64      deadline_ns)
{
  while (bench_now_ns () < deadline_ns)
    bench_swarm_step (swarm, 1);
}

static gboolean
read_memory (BenchRedis  *redis,
             gdouble     *used,
             gdouble     *rss,
             GError     **error)
{
  g_autofree char *info = bench_redis_info (redis, "memory", error);

  if (info == NULL)
    return FALSE;
  *used = bench_redis_info_field (info, "used_memory");
  *rss = bench_redis_info_field (info, "used_memory_rss");
  return TRUE;
}

static guint64
read_sets (BenchRedis  *redis,
           GError     **error)
{
  g_autofree char *info = bench_redis_info (redis, "commandstats", error);

  return bench_redis_info_calls (info, "set");
}

/* The commands of the window other than SET (and our INFO), with their
 * counts */
static char *
other_commands (GHashTable *before,
                GHashTable *after)
{
  GString *text = g_string_new (NULL);
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, after);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      guint64 calls = GPOINTER_TO_SIZE (value) - GPOINTER_TO_SIZE (g_hash_table_lookup (before, key));

      if (calls > 0 && !g_str_equal (key, "set") && !g_str_equal (key, "info"))
        g_string_append_printf (text, "%s%s %" G_GUINT64_FORMAT, text->len > 0 ? ", " : "",
                                (const char *) key, calls);
    }
  if (text->len == 0)
    g_string_append (text, "none");
  return g_string_free (text, FALSE);
}

/* Keeps the swarm pinging for the window, reading Redis's SET calls and
 * CPU time at the end of each second */
static gboolean
sample_seconds (BenchRedis       *redis,
                BenchSwarm       *swarm,
                RegistryFigures  *f,
                GError          **error)
{
  gint64 start = bench_now_ns ();
  guint64 last = read_sets (redis, error);
  gdouble last_cpu = bench_cpu_seconds (bench_redis_pid (redis));

  for (guint s = 1; last > 0 && s <= (guint) opt_registry_seconds; s++)
    {
      guint64 now;
      gdouble cpu;

      swarm_run_until (swarm, start + s * G_GINT64_CONSTANT (1000000000));
      now = read_sets (redis, error);
      cpu = bench_cpu_seconds (bench_redis_pid (redis));
      if (now == 0)
        return FALSE;
      g_array_append_vals (f->per_second, (guint64[]) { now - last }, 1);
      g_array_append_vals (f->cpu_per_second, (gdouble[]) { cpu - last_cpu }, 1);
      last = now;
      last_cpu = cpu;
    }
  return last > 0;
}

/* The keepalive window: SET calls every second, everything at its ends */
static gboolean
registry_window (BenchRedis       *redis,
                 BenchSwarm       *swarm,
                 pid_t             node_pid,
                 RegistryFigures  *f,
                 GError          **error)
{
  g_autofree char *info0 = bench_redis_info (redis, "commandstats", error);
  g_autofree char *info1 = NULL;
  g_autoptr(GHashTable) before = parse_commandstats (info0);
  g_autoptr(GHashTable) after = NULL;
  gdouble redis_cpu0 = bench_cpu_seconds (bench_redis_pid (redis));
  gdouble node_cpu0 = bench_cpu_seconds (node_pid);
  gint64 start = bench_now_ns ();

  if (info0 == NULL || !sample_seconds (redis, swarm, f, error))
    return FALSE;

  f->window = (bench_now_ns () - start) / 1e9;
  f->redis_cpu = bench_cpu_seconds (bench_redis_pid (redis)) - redis_cpu0;
  f->node_cpu = bench_cpu_seconds (node_pid) - node_cpu0;
  info1 = bench_redis_info (redis, "commandstats", error);
  if (info1 == NULL)
    return FALSE;
  after = parse_commandstats (info1);
  f->sets = bench_redis_info_calls (info1, "set") - bench_redis_info_calls (info0, "set");
  f->other_commands = other_commands (before, after);
  return TRUE;
}

/* Registers the swarm (one keepalive interval, and a second to settle),
 * and what that took of Redis's memory */
static gboolean
registry_fill (BenchRedis       *redis,
               BenchSwarm       *swarm,
               RegistryFigures  *f,
               GError          **error)
{
  gdouble used0, rss0, used1, rss1;
  gint64 keys0, start = bench_now_ns ();

  if (!read_memory (redis, &used0, &rss0, error) ||
      (keys0 = bench_redis_integer (redis, "DBSIZE", error)) < 0)
    return FALSE;

  swarm_run_until (swarm, start + (KEEPALIVE_MS + 1000) * G_GINT64_CONSTANT (1000000));
  f->first_pongs = bench_swarm_received (swarm);
  if (!read_memory (redis, &used1, &rss1, error) ||
      (f->keys = bench_redis_integer (redis, "DBSIZE", error)) < 0)
    return FALSE;

  f->keys -= keys0;
  if (f->keys <= 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "No peer registered in Redis (%" G_GUINT64_FORMAT
                   " pongs to %" G_GUINT64_FORMAT " pings)", f->first_pongs, bench_swarm_sent (swarm));
      return FALSE;
    }
  f->bytes_per_peer = (used1 - used0) / f->keys;
  f->rss_per_peer = (rss1 - rss0) / f->keys;
  return TRUE;
}

static void
print_per_second (GArray *per_second)
{
  g_print ("SET calls in each second of the window:");
  for (guint i = 0; i < per_second->len; i++)
    g_print ("%s%" G_GUINT64_FORMAT, i % 15 == 0 ? "\n  " : " ", g_array_index (per_second, guint64, i));
  g_print ("\n");
}

/* The second with the most SETs */
static guint
busiest_second (GArray *per_second)
{
  guint busiest = 0;

  for (guint i = 1; i < per_second->len; i++)
    if (g_array_index (per_second, guint64, i) > g_array_index (per_second, guint64, busiest))
      busiest = i;
  return busiest;
}

/* Baseline: how many SETs like the nodes' Redis takes a second, pipelined */
static gboolean
registry_capacity (BenchRedis       *redis,
                   RegistryFigures  *f,
                   GError          **error)
{
  guint n = 200000;
  gdouble cpu0 = bench_cpu_seconds (bench_redis_pid (redis));
  gint64 start = bench_now_ns ();

  if (!bench_redis_pipeline_sets (redis, n, 32, error))
    return FALSE;
  f->capacity_per_second = n / ((bench_now_ns () - start) / 1e9);
  f->capacity_per_cpu = n / (bench_cpu_seconds (bench_redis_pid (redis)) - cpu0);
  return TRUE;
}

static void
registry_report (RegistryFigures *f)
{
  guint busiest = busiest_second (f->per_second);
  gdouble rate = f->sets / f->window, peak = g_array_index (f->per_second, guint64, busiest);
  gdouble peak_cpu = g_array_index (f->cpu_per_second, gdouble, busiest);
  gdouble scale = 1e6 / f->keys;

  g_print ("%u peers (ids peer-0000042, 127.X.Y.Z addresses) through one node, each pinging "
           "every %d s\n", f->n_peers, KEEPALIVE_MS / 1000);
  bench_figure ("keys in Redis after one keepalive", "%" G_GINT64_FORMAT " (%" G_GUINT64_FORMAT " pongs)",
                f->keys, f->first_pongs);
  bench_figure ("Redis used_memory per peer", "%.1f bytes (RSS %.1f)", f->bytes_per_peer, f->rss_per_peer);
  bench_figure ("window", "%.1f s of keepalive", f->window);
  bench_figure ("SET calls", "%" G_GUINT64_FORMAT ": %.0f/s, one per peer every %.1f s",
                f->sets, rate, f->keys * f->window / MAX (f->sets, 1));
  bench_figure ("other commands", "%s", f->other_commands);
  print_per_second (f->per_second);
  bench_figure ("busiest second", "%.0f SET/s (%.1f x the mean), Redis %.1f%% of a core",
                peak, peak / MAX (rate, 1), 100 * peak_cpu);
  bench_figure ("Redis CPU over the window", "%.1f%% of a core", 100 * f->redis_cpu / f->window);
  bench_figure ("node CPU over the window", "%.1f%% of a core (%.0f pings/s)", 100 * f->node_cpu / f->window,
                f->n_peers * 1000.0 / KEEPALIVE_MS);
  bench_figure ("baseline: Redis, SETs pipelined 32 deep", "%.0f/s, %.0f per Redis CPU-second",
                f->capacity_per_second, f->capacity_per_cpu);

  /* A million peers of B bytes each are B MB */
  g_print ("per million peers: %.0f MB used_memory (%.0f MB RSS), %.0f SET/s mean, %.0f SET/s "
           "in the busiest second\n", f->bytes_per_peer, f->rss_per_peer, rate * scale, peak * scale);
  g_print ("ten million peers: %.1f GB used_memory, %.0f SET/s mean, %.0f SET/s at the peak: "
           "%.2f Redis cores at the baseline's rate\n",
           f->bytes_per_peer * 1e7 / 1e9, rate * scale * 10, peak * scale * 10,
           peak * scale * 10 / f->capacity_per_cpu);
}

static gboolean
measure_registry (BenchRedis  *redis,
                  GError     **error)
{
  RegistryFigures f = { .n_peers = MAX (opt_registry_peers, 1) };
  BenchChild node = { 0 };
  BenchSwarm *swarm = NULL;
  guint16 port;
  gboolean ok = FALSE;

  bench_header ("7c. Cluster registry in Redis: memory and writes per registered peer");
  f.per_second = g_array_new (FALSE, FALSE, sizeof (guint64));
  f.cpu_per_second = g_array_new (FALSE, FALSE, sizeof (gdouble));
  if (!bench_redis_command (redis, "FLUSHALL", error) ||
      !bench_redis_command (redis, "CONFIG RESETSTAT", error) ||
      !node_start (&node, redis, 0, FALSE, &port, error))
    goto out;

  swarm = bench_swarm_new (f.n_peers, port, KEEPALIVE_MS, error);
  if (swarm == NULL || !registry_fill (redis, swarm, &f, error) ||
      !registry_window (redis, swarm, node.pid, &f, error))
    goto out;
  bench_child_stop (&node);
  if (!registry_capacity (redis, &f, error))
    goto out;

  registry_report (&f);
  ok = TRUE;

out:
  bench_swarm_free (swarm);
  bench_child_stop (&node);
  g_array_unref (f.per_second);
  g_array_unref (f.cpu_per_second);
  g_free (f.other_commands);
  return ok;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  BenchRedis *redis = NULL;
  gboolean ok;

  bench_init (&argc, &argv, "Cluster of server nodes sharing one Redis: throughput, "
              "cross-node latency, Redis cost per peer", entries, 400);
  if (opt_only != NULL && !g_str_equal (opt_only, "a") && !g_str_equal (opt_only, "b") &&
      !g_str_equal (opt_only, "c"))
    {
      g_printerr ("bench-cluster: --only takes a, b or c, not “%s”\n", opt_only);
      return EXIT_FAILURE;
    }
  if (bench_raise_nofile (opt_peers + 256) < (guint) opt_peers + 256)
    {
      g_printerr ("bench-cluster: cannot open %d sockets\n", opt_peers);
      return EXIT_FAILURE;
    }

  redis = bench_redis_start (&error);
  if (redis == NULL)
    {
      /* Meson's (and automake's) "skipped" */
      g_print ("SKIP: %s\n", error->message);
      return 77;
    }
  g_print ("redis-server %s, pid %d\n", bench_redis_url (redis), (int) bench_redis_pid (redis));

  ok = (!wanted ("a") || measure_throughput (redis, &error)) &&
       (!wanted ("b") || measure_latency (redis, &error)) &&
       (!wanted ("c") || measure_registry (redis, &error));
  bench_redis_stop (redis);
  if (!ok)
    {
      g_printerr ("bench-cluster: %s\n", error->message);
      return EXIT_FAILURE;
    }
  return bench_exit_status ();
}
