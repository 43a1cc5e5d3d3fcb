/* bench-rendezvous.c: UDP and TCP rendezvous latency, in one process
 *
 * SPDX-License-Identifier: MIT
 *
 * A RndzServer on 127.0.0.1 port 0, a listening RndzClient that echoes,
 * and a connecting RndzClient, all on one main context. One sample is the
 * time from the connect call to the echo of a first message back at the
 * connector. The baseline, measured in the same run on the same main
 * context: UDP, one round trip between two GSockets; TCP, one round trip
 * on an open connection and one connect + accept + echo.
 *
 *   bench-rendezvous udp|tcp|all [-n ITERATIONS] [--check]
 *
 * Targets: UDP median under 0.5 ms and under 8 raw round trips; TCP
 * median under 1 ms and no sample at or above 40 ms.
 */

#include <rndz-glib/rndz.h>
#include <stdlib.h>

#include "bench-rig.h"

#define DEFAULT_ITERATIONS 1000
#define WARMUP 20
#define RAW_ITERATIONS 5000
#define BUDGET_MS 60000

static gboolean opt_no_baseline = FALSE;

static const GOptionEntry entries[] = {
  { "no-baseline", 0, 0, G_OPTION_ARG_NONE, &opt_no_baseline,
    "Skip the baselines (to profile the rendezvous alone)", NULL },
  { NULL }
};

static RndzServer *
start_server (char **address,
              GError **error)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any_port = g_inet_socket_address_new (loopback, 0);

  /* One requester and one target, over and over: the default limit of
   * 20 forwarded requests per second and address would pace the
   * benchmark, not measure it. */
  rndz_server_set_request_rate (server, G_MAXUINT16);
  if (!rndz_server_listen (server, any_port, error))
    return NULL;

  *address = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (server));
  return g_steal_pointer (&server);
}

static gboolean
bench_udp (const char  *server_addr,
           GError     **error)
{
  BenchSamples raw, warmup, rendezvous;
  BenchRig *rig;
  gdouble raw_median, median;
  guint n = bench_iterations (DEFAULT_ITERATIONS);

  bench_header ("1. UDP rendezvous latency (one process, one main context)");
  bench_samples_init (&raw);
  bench_samples_init (&warmup);
  bench_samples_init (&rendezvous);

  /* The baseline before and after, into one set of samples: a drift of
   * the machine during the run weighs on both sides */
  if (!bench_raw_udp_round_trips (opt_no_baseline ? 1 : RAW_ITERATIONS, &raw, error))
    return FALSE;

  rig = bench_rig_new (server_addr, RNDZ_TRANSPORT_UDP, "bench-udp", error);
  if (rig == NULL)
    return FALSE;
  if (!bench_rig_measure (rig, WARMUP, 0, BUDGET_MS, &warmup, error) ||
      !bench_rig_measure (rig, n, 0, BUDGET_MS, &rendezvous, error))
    {
      bench_rig_free (rig);
      return FALSE;
    }
  bench_rig_free (rig);

  if (!bench_raw_udp_round_trips (opt_no_baseline ? 1 : RAW_ITERATIONS, &raw, error))
    return FALSE;

  bench_report_header ("microseconds");
  bench_report ("baseline: raw UDP round trip, 2 GSockets", &raw);
  bench_report ("UDP rendezvous: connect_udp_async -> echo", &rendezvous);

  raw_median = bench_samples_median (&raw);
  median = bench_samples_median (&rendezvous);
  bench_figure ("rendezvous median / raw round-trip median", "%.1f round trips", median / raw_median);

  bench_target (median < 500.0, "UDP rendezvous median %.1f us < 500 us", median);
  bench_target (median < 8 * raw_median, "UDP rendezvous median < 8 raw round trips (%.1f us)",
                8 * raw_median);

  bench_samples_clear (&raw);
  bench_samples_clear (&warmup);
  bench_samples_clear (&rendezvous);
  return TRUE;
}

static gboolean
bench_tcp (const char  *server_addr,
           GError     **error)
{
  BenchSamples raw, raw_connect, warmup, rendezvous;
  BenchRig *rig;
  gdouble median, max;
  guint n = bench_iterations (DEFAULT_ITERATIONS);
  guint slow;

  bench_header ("2. TCP rendezvous latency (one process, one main context)");
  bench_samples_init (&raw);
  bench_samples_init (&raw_connect);
  bench_samples_init (&warmup);
  bench_samples_init (&rendezvous);

  if (!bench_raw_tcp_round_trips (opt_no_baseline ? 1 : RAW_ITERATIONS, &raw, error) ||
      !bench_raw_tcp_connect_echo (opt_no_baseline ? 1 : n, &raw_connect, error))
    return FALSE;

  rig = bench_rig_new (server_addr, RNDZ_TRANSPORT_TCP, "bench-tcp", error);
  if (rig == NULL)
    return FALSE;
  if (!bench_rig_measure (rig, WARMUP, 0, BUDGET_MS, &warmup, error) ||
      !bench_rig_measure (rig, n, 0, BUDGET_MS, &rendezvous, error))
    {
      bench_rig_free (rig);
      return FALSE;
    }
  bench_rig_free (rig);

  bench_report_header ("microseconds");
  bench_report ("baseline: raw TCP round trip, open conn.", &raw);
  bench_report ("baseline: raw TCP connect+accept+echo", &raw_connect);
  bench_report ("TCP rendezvous: connect_tcp_async -> echo", &rendezvous);

  median = bench_samples_median (&rendezvous);
  max = bench_samples_max (&rendezvous);
  slow = bench_samples_count_at_least (&rendezvous, 40000.0);
  bench_figure ("rendezvous median / raw connect+echo median", "%.1f",
                median / bench_samples_median (&raw_connect));
  bench_figure ("samples at or above 10 ms / 40 ms", "%u / %u",
                bench_samples_count_at_least (&rendezvous, 10000.0), slow);

  bench_target (median < 1000.0, "TCP rendezvous median %.1f us < 1000 us", median);
  bench_target (slow == 0, "TCP rendezvous: no sample >= 40 ms (max %.1f us)", max);

  bench_samples_clear (&raw);
  bench_samples_clear (&raw_connect);
  bench_samples_clear (&warmup);
  bench_samples_clear (&rendezvous);
  return TRUE;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *server_addr = NULL;
  const char *mode;

  bench_init (&argc, &argv, "Mode: udp, tcp or all (default)", entries, 600);
  mode = argc > 1 ? argv[1] : "all";

  server = start_server (&server_addr, &error);
  if (server == NULL)
    {
      g_printerr ("Cannot start the server: %s\n", error->message);
      return EXIT_FAILURE;
    }
  g_print ("server on %s, in this process\n", server_addr);

  if ((g_str_equal (mode, "udp") || g_str_equal (mode, "all")) && !bench_udp (server_addr, &error))
    {
      g_printerr ("UDP: %s\n", error->message);
      return EXIT_FAILURE;
    }
  if ((g_str_equal (mode, "tcp") || g_str_equal (mode, "all")) && !bench_tcp (server_addr, &error))
    {
      g_printerr ("TCP: %s\n", error->message);
      return EXIT_FAILURE;
    }

  return bench_exit_status ();
}
