/* bench-dtls.c: secure channels (DTLS 1.2) against plain UDP, on loopback
 *
 * SPDX-License-Identifier: MIT
 *
 * Three figures, each with its baseline in the same run:
 *
 *  1. Datagram rate: 1000-byte datagrams from one socket to another, in
 *     windows of 64 (sent, then received), for --seconds each: plain
 *     connected UDP sockets (g_socket_send / g_socket_receive), then a
 *     pair of RndzDtlsChannels (g_datagram_based_send_messages /
 *     g_datagram_based_receive_messages), in turns of half a second so
 *     that both see the same load. One thread does both ends, so either
 *     rate is that of sending plus receiving on one core.
 *  2. Handshake: the time from starting both handshakes to both channels
 *     being open (-n of them, 50 by default; the identities exist
 *     before). A plain socket needs none: all of it is what security adds.
 *  3. Idle channels: --channels pairs of channels (both ends in this
 *     process) with a 1 s keepalive, left alone for --idle-seconds; the
 *     CPU time of the process in that time, per channel.
 *
 *   bench-dtls [-n HANDSHAKES] [--seconds S] [--channels N] [--idle-seconds S] [--check]
 *
 * Targets (issue 15): the DTLS datagram rate at least 40 % of plain UDP's;
 * the secure handshake adds under 3 ms.
 */

#include <string.h>

#include "bench-util.h"
#include "rndz-dtls-channel-private.h"

#define DATAGRAM 1000
#define WINDOW 64

static gint opt_seconds = 3;
static gint opt_channels = 200;
static gint opt_idle_seconds = 10;

static const GOptionEntry entries[] = {
  { "seconds", 0, 0, G_OPTION_ARG_INT, &opt_seconds,
    "Seconds of each datagram rate run (default 3)", "S" },
  { "channels", 0, 0, G_OPTION_ARG_INT, &opt_channels,
    "Pairs of idle channels (default 200)", "N" },
  { "idle-seconds", 0, 0, G_OPTION_ARG_INT, &opt_idle_seconds,
    "Seconds the idle channels are measured (default 10)", "S" },
  { NULL }
};

typedef struct
{
  GSocket *socket_a;
  GSocket *socket_b;
  RndzDtlsChannel *a;
  RndzDtlsChannel *b;
} Pair;

static GSocket *
bound_socket (guint16 *port)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) local = NULL;
  GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                  G_SOCKET_PROTOCOL_UDP, NULL);

  g_socket_set_blocking (socket, FALSE);
  if (!g_socket_bind (socket, any, FALSE, NULL))
    g_error ("bench-dtls: cannot bind a socket on 127.0.0.1");
  local = g_socket_get_local_address (socket, NULL);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  return socket;
}

static void
connect_to (GSocket *socket,
            guint16  port)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) to = g_inet_socket_address_new (loopback, port);

  if (!g_socket_connect (socket, to, NULL, NULL))
    g_error ("bench-dtls: cannot connect a socket on 127.0.0.1");
}

static void
pair_sockets (Pair *pair)
{
  guint16 port_a, port_b;

  pair->socket_a = bound_socket (&port_a);
  pair->socket_b = bound_socket (&port_b);
  connect_to (pair->socket_a, port_b);
  connect_to (pair->socket_b, port_a);
}

static void
pair_clear (Pair *pair)
{
  g_clear_object (&pair->a);
  g_clear_object (&pair->b);
  g_clear_object (&pair->socket_a);
  g_clear_object (&pair->socket_b);
}

static void
store_result (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* Starts both handshakes of @pair; @results get what they give */
static void
pair_start (Pair          *pair,
            RndzIdentity  *id_a,
            RndzIdentity  *id_b,
            GAsyncResult **results)
{
  rndz_dtls_channel_handshake_async (pair->socket_b, TRUE, id_b, rndz_identity_get_fingerprint (id_a),
                                     10000, NULL, store_result, &results[1]);
  rndz_dtls_channel_handshake_async (pair->socket_a, FALSE, id_a, rndz_identity_get_fingerprint (id_b),
                                     10000, NULL, store_result, &results[0]);
}

static void
pair_finish (Pair          *pair,
             GAsyncResult **results)
{
  g_autoptr(GError) error = NULL;

  while (results[0] == NULL || results[1] == NULL)
    g_main_context_iteration (NULL, TRUE);
  pair->a = rndz_dtls_channel_handshake_finish (results[0], &error);
  if (pair->a != NULL)
    pair->b = rndz_dtls_channel_handshake_finish (results[1], &error);
  if (error != NULL)
    g_error ("bench-dtls: handshake failed: %s", error->message);
  g_clear_object (&results[0]);
  g_clear_object (&results[1]);
}

/* 1. Datagram rate */

typedef struct
{
  guint64 sent;
  guint64 received;
  gint64 ns;
} Rate;

/* Rounds of half a second, plain and secure in turn, so that both see
 * the same load of the machine */
#define ROUND_NS G_GINT64_CONSTANT (500000000)

static void
plain_round (Pair *pair,
             Rate *rate)
{
  char buf[2048] = { 0 };
  gint64 end, start = bench_now_ns ();
  guint64 received = 0, sent = 0;

  end = start + ROUND_NS;
  while (bench_now_ns () < end)
    {
      guint got = 0;

      for (guint i = 0; i < WINDOW; i++)
        sent += g_socket_send (pair->socket_a, buf, DATAGRAM, NULL, NULL) == DATAGRAM;
      while (got < WINDOW &&
             g_socket_condition_timed_wait (pair->socket_b, G_IO_IN, 10000, NULL, NULL))
        while (got < WINDOW && g_socket_receive (pair->socket_b, buf, sizeof buf, NULL, NULL) > 0)
          got++;
      received += got;
    }
  rate->sent += sent;
  rate->received += received;
  rate->ns += bench_now_ns () - start;
}

static guint
dtls_receive_window (RndzDtlsChannel *channel)
{
  static char buffers[WINDOW][2048];
  GInputVector vectors[WINDOW];
  GInputMessage messages[WINDOW];
  guint got = 0;

  for (guint i = 0; i < WINDOW; i++)
    {
      vectors[i] = (GInputVector) { buffers[i], sizeof buffers[i] };
      messages[i] = (GInputMessage) { NULL, &vectors[i], 1, 0, 0, NULL, NULL };
    }
  while (got < WINDOW)
    {
      gint n = g_datagram_based_receive_messages (G_DATAGRAM_BASED (channel), messages + got,
                                                  WINDOW - got, 0, 10000, NULL, NULL);
      if (n <= 0)
        break;
      got += n;
    }
  return got;
}

static void
dtls_round (Pair *pair,
            Rate *rate)
{
  char buf[DATAGRAM] = { 0 };
  GOutputVector vector = { buf, DATAGRAM };
  GOutputMessage messages[WINDOW];
  guint64 received = 0, sent = 0;
  gint64 end, start;

  for (guint i = 0; i < WINDOW; i++)
    messages[i] = (GOutputMessage) { NULL, &vector, 1, 0, NULL, 0 };
  start = bench_now_ns ();
  end = start + ROUND_NS;
  while (bench_now_ns () < end)
    {
      gint n = g_datagram_based_send_messages (G_DATAGRAM_BASED (pair->a), messages, WINDOW,
                                               0, -1, NULL, NULL);

      sent += MAX (n, 0);
      received += dtls_receive_window (pair->b);
    }
  rate->sent += sent;
  rate->received += received;
  rate->ns += bench_now_ns () - start;
}

static void
bench_rate (RndzIdentity *id_a,
            RndzIdentity *id_b)
{
  Pair plain_pair = { NULL }, dtls_pair = { NULL };
  GAsyncResult *results[2] = { NULL, NULL };
  Rate plain = { 0 }, dtls = { 0 };
  gdouble plain_rate, dtls_rate;

  bench_header ("DTLS datagram rate against plain UDP (1000-byte datagrams, loopback)");
  pair_sockets (&plain_pair);
  pair_sockets (&dtls_pair);
  pair_start (&dtls_pair, id_a, id_b, results);
  pair_finish (&dtls_pair, results);
  for (gint round = 0; round < 2 * opt_seconds; round++)
    {
      plain_round (&plain_pair, &plain);
      dtls_round (&dtls_pair, &dtls);
    }
  pair_clear (&plain_pair);
  pair_clear (&dtls_pair);

  plain_rate = plain.received / (plain.ns / 1e9);
  dtls_rate = dtls.received / (dtls.ns / 1e9);
  bench_figure ("plain UDP", "%.0f datagrams/s (%.0f MB/s), %" G_GUINT64_FORMAT " lost",
                plain_rate, plain_rate * DATAGRAM / 1e6, plain.sent - plain.received);
  bench_figure ("DTLS 1.2 channel", "%.0f datagrams/s (%.0f MB/s), %" G_GUINT64_FORMAT " lost",
                dtls_rate, dtls_rate * DATAGRAM / 1e6, dtls.sent - dtls.received);
  bench_target (dtls_rate >= 0.4 * plain_rate,
                "DTLS datagram rate at least 40%% of plain UDP: %.0f%%",
                100 * dtls_rate / plain_rate);
}

/* 2. Handshake time */

static void
bench_handshake (RndzIdentity *id_a,
                 RndzIdentity *id_b)
{
  BenchSamples samples;
  guint n = bench_iterations (50);

  bench_header ("DTLS handshake on loopback (both ends in this process)");
  bench_samples_init (&samples);
  for (guint i = 0; i < n; i++)
    {
      Pair pair = { NULL };
      GAsyncResult *results[2] = { NULL, NULL };
      gint64 start;

      pair_sockets (&pair);
      start = bench_now_ns ();
      pair_start (&pair, id_a, id_b, results);
      pair_finish (&pair, results);
      bench_samples_add (&samples, (bench_now_ns () - start) / 1e6);
      pair_clear (&pair);
    }
  bench_report_header ("ms");
  bench_report ("handshake, both sides", &samples);
  bench_target (bench_samples_median (&samples) < 3.0,
                "the secure handshake adds under 3 ms (median): %.2f ms",
                bench_samples_median (&samples));
  bench_samples_clear (&samples);
}

/* 3. Idle channels */

static void
bench_idle (RndzIdentity *id_a,
            RndzIdentity *id_b)
{
  guint n = opt_channels;
  g_autofree Pair *pairs = g_new0 (Pair, n);
  g_autofree GAsyncResult **results = g_new0 (GAsyncResult *, 2 * n);
  RndzDtlsStats stats;
  guint64 pings = 0, server_pings = 0;
  gdouble cpu_before, cpu;
  gint64 end;

  bench_header ("Idle secure channels: CPU at rest, 1 s keepalive");
  bench_raise_nofile (4 * n + 64);
  for (guint i = 0; i < n; i++)
    {
      pair_sockets (&pairs[i]);
      pair_start (&pairs[i], id_a, id_b, &results[2 * i]);
    }
  for (guint i = 0; i < n; i++)
    {
      pair_finish (&pairs[i], &results[2 * i]);
      rndz_dtls_channel_set_keepalive_interval (pairs[i].a, 1000);
      rndz_dtls_channel_set_keepalive_interval (pairs[i].b, 1000);
    }

  cpu_before = bench_cpu_seconds (0);
  end = bench_now_ns () + (gint64) opt_idle_seconds * G_GINT64_CONSTANT (1000000000);
  while (bench_now_ns () < end)
    g_main_context_iteration (NULL, TRUE);
  cpu = bench_cpu_seconds (0) - cpu_before;

  for (guint i = 0; i < n; i++)
    {
      if (rndz_dtls_channel_is_closed (pairs[i].a) || rndz_dtls_channel_is_closed (pairs[i].b))
        g_error ("bench-dtls: an idle channel closed");
      rndz_dtls_channel_get_stats (pairs[i].a, &stats);
      pings += stats.pings_sent;
      rndz_dtls_channel_get_stats (pairs[i].b, &stats);
      pings += stats.pings_sent;
      server_pings += stats.pings_sent;
      pair_clear (&pairs[i]);
    }
  bench_figure ("channels (both ends here)", "%u, for %d s", 2 * n, opt_idle_seconds);
  bench_figure ("keepalive pings sent", "%" G_GUINT64_FORMAT " (%.2f per pair per second), "
                "%" G_GUINT64_FORMAT " of them by servers",
                pings, pings / ((gdouble) n * opt_idle_seconds), server_pings);
  bench_figure ("CPU time of the process", "%.3f s (%.1f%% of a core)",
                cpu, 100 * cpu / opt_idle_seconds);
  bench_figure ("CPU per idle channel", "%.1f us per second (%.2f ms per hour)",
                1e6 * cpu / (2.0 * n * opt_idle_seconds), 3600e3 * cpu / (2.0 * n * opt_idle_seconds));
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(RndzIdentity) id_a = NULL;
  g_autoptr(RndzIdentity) id_b = NULL;
  g_autoptr(GError) error = NULL;

  bench_init (&argc, &argv, "Secure channels (DTLS 1.2) against plain UDP", entries, 300);
  id_a = rndz_identity_new (&error);
  if (id_a != NULL)
    id_b = rndz_identity_new (&error);
  if (id_b == NULL)
    g_error ("bench-dtls: no identity: %s", error->message);

  bench_rate (id_a, id_b);
  bench_handshake (id_a, id_b);
  bench_idle (id_a, id_b);
  return bench_exit_status ();
}
