/* bench-secure.c: what TLS and DTLS cost over the plain rendezvous
 *
 * SPDX-License-Identifier: MIT
 *
 * One process, one main context: a RndzServer on 127.0.0.1, four
 * listeners (plain and secure, UDP and TCP) and one connector. Each part
 * measures the secure side and the plain one in the same run,
 * interleaved, so that the machine's drift weighs on both:
 *
 *   latency     connect call → channel up → one echo back, median of
 *               --iterations (default 50) per kind; target: the secure
 *               median under the plain one + 3 ms, UDP and TCP
 *   throughput  bytes from connector to listener over one connection
 *               (a reader thread at the listener); target: TLS at least
 *               50 % of plain TCP
 *   datagrams   1,000-byte datagrams, bursts of 16 sent then received,
 *               through GDatagramBased on both sides; target: DTLS at
 *               least 40 % of plain UDP
 *   idle        CPU time of the process while --idle-channels DTLS
 *               channels (both ends here) sit idle with the default
 *               keepalive, less that of the same process without them,
 *               per channel-hour
 *
 *   bench-secure [latency|throughput|datagrams|idle|all] [-n N] [--check]
 */

#include <rndz-glib/rndz.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"

#define WAIT_MS 10000
#define ECHO "ping"
#define DATAGRAM_SIZE 1000
#define BURST 16
#define THROUGHPUT_RUNS 3
#define DATAGRAM_RUNS 3

static gint opt_megabytes = 128;
static gint opt_datagrams = 100000;
static gint opt_idle_channels = 100;
static gint opt_idle_seconds = 30;

static const GOptionEntry entries[] = {
  { "megabytes", 0, 0, G_OPTION_ARG_INT, &opt_megabytes,
    "Throughput: MiB per run (default 128)", "N" },
  { "datagrams", 0, 0, G_OPTION_ARG_INT, &opt_datagrams,
    "Datagram rate: datagrams per run (default 100000)", "N" },
  { "idle-channels", 0, 0, G_OPTION_ARG_INT, &opt_idle_channels,
    "Idle CPU: DTLS channels (default 100)", "N" },
  { "idle-seconds", 0, 0, G_OPTION_ARG_INT, &opt_idle_seconds,
    "Idle CPU: seconds measured (default 30)", "S" },
  { NULL }
};

typedef enum
{
  KIND_PLAIN_UDP,
  KIND_SECURE_UDP,
  KIND_PLAIN_TCP,
  KIND_SECURE_TCP,
  N_KINDS
} Kind;

static const char *kind_ids[N_KINDS] = { "plain-udp", "secure-udp", "plain-tcp", "secure-tcp" };

typedef struct
{
  RndzServer *server;
  RndzClient *listeners[N_KINDS];
  GSocket *listening;           /* plain UDP: where its datagrams come */
  GSource *udp_echo;
  RndzClient *connector;
  gboolean echo;                /* the listeners echo a first message */
  guint serial;                 /* connections made */
  gboolean suite_shown;
  GPtrArray *accepted;          /* every channel the listeners took */
} Rig;

static gboolean
is_udp (Kind kind)
{
  return kind == KIND_PLAIN_UDP || kind == KIND_SECURE_UDP;
}

static gboolean
is_secure (Kind kind)
{
  return kind == KIND_SECURE_UDP || kind == KIND_SECURE_TCP;
}

/* Iterates the main context until *@pointer is set; FALSE on timeout */
static gboolean
wait_set (gpointer *pointer)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * (gint64) 1000;

  while (*pointer == NULL && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  return *pointer != NULL;
}

static void
store_result_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

static void
run_for (guint ms)
{
  gint64 end = g_get_monotonic_time () + ms * (gint64) 1000;
  GSource *timer = g_timeout_source_new (ms);

  g_source_set_dummy_callback (timer);
  g_source_attach (timer, NULL);
  while (g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (timer);
  g_source_unref (timer);
}

/* The listeners' side */

static void accept_next (Rig *rig, Kind kind);

static GInputStream *
stream_in (GObject *channel)
{
  return g_io_stream_get_input_stream (G_IO_STREAM (channel));
}

static void
tcp_echo_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GObject) channel = user_data;
  g_autoptr(GBytes) bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), result, NULL);

  if (bytes != NULL && g_bytes_get_size (bytes) > 0)
    g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (channel)),
                               g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
                               NULL, NULL, NULL);
}

static void
dtls_echo_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  RndzDtlsChannel *channel = RNDZ_DTLS_CHANNEL (source);
  g_autoptr(GBytes) bytes = rndz_dtls_channel_receive_bytes_finish (channel, result, NULL);

  if (bytes != NULL)
    rndz_dtls_channel_send_bytes (channel, bytes, NULL, NULL);
}

typedef struct
{
  Rig *rig;
  Kind kind;
} Accept;

static void
accepted_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autofree Accept *accept = user_data;
  RndzClient *listener = RNDZ_CLIENT (source);
  GObject *channel;

  if (accept->kind == KIND_SECURE_UDP)
    channel = (GObject *) rndz_client_accept_dtls_finish (listener, result, NULL, NULL);
  else if (accept->kind == KIND_SECURE_TCP)
    channel = (GObject *) rndz_client_accept_tls_finish (listener, result, NULL, NULL);
  else
    channel = (GObject *) rndz_client_accept_finish (listener, result, NULL, NULL);
  if (channel == NULL)
    return;                     /* stopped */

  g_ptr_array_add (accept->rig->accepted, channel);
  if (accept->rig->echo && accept->kind == KIND_SECURE_UDP)
    rndz_dtls_channel_receive_bytes_async (RNDZ_DTLS_CHANNEL (channel), NULL, dtls_echo_cb, NULL);
  else if (accept->rig->echo)
    g_input_stream_read_bytes_async (stream_in (channel), 64, G_PRIORITY_DEFAULT, NULL,
                                     tcp_echo_cb, g_object_ref (channel));
  accept_next (accept->rig, accept->kind);
}

static void
accept_next (Rig  *rig,
             Kind  kind)
{
  Accept *accept = g_new0 (Accept, 1);

  accept->rig = rig;
  accept->kind = kind;
  if (kind == KIND_SECURE_UDP)
    rndz_client_accept_dtls_async (rig->listeners[kind], NULL, accepted_cb, accept);
  else if (kind == KIND_SECURE_TCP)
    rndz_client_accept_tls_async (rig->listeners[kind], NULL, accepted_cb, accept);
  else
    rndz_client_accept_async (rig->listeners[kind], NULL, accepted_cb, accept);
}

static gboolean
udp_echo_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  Rig *rig = user_data;
  g_autoptr(GSocketAddress) from = NULL;
  char buf[2048];
  gssize len = g_socket_receive_from (socket, &from, buf, sizeof buf, NULL, NULL);

  if (len > 0 && rig->echo)
    g_socket_send_to (socket, from, buf, len, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

static gboolean
listen_one (Rig     *rig,
            Kind     kind,
            GError **error)
{
  RndzClient *listener = rig->listeners[kind];
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GSocket) socket = NULL;

  if (is_udp (kind))
    {
      rndz_client_listen_udp_async (listener, NULL, store_result_cb, &result);
      if (!wait_set ((gpointer *) &result))
        return FALSE;
      socket = rndz_client_listen_udp_finish (listener, result, error);
      if (socket != NULL && kind == KIND_PLAIN_UDP)
        rig->listening = g_object_ref (socket);
      return socket != NULL;
    }
  rndz_client_listen_tcp_async (listener, NULL, store_result_cb, &result);
  return wait_set ((gpointer *) &result) && rndz_client_listen_tcp_finish (listener, result, error);
}

static Rig *
rig_new (GError **error)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any_port = g_inet_socket_address_new (loopback, 0);
  g_autofree char *address = NULL;
  const char *servers[2] = { NULL, NULL };
  Rig *rig = g_new0 (Rig, 1);

  rig->echo = TRUE;
  rig->accepted = g_ptr_array_new_with_free_func (g_object_unref);
  rig->server = rndz_server_new ();
  /* One requester, over and over: the default rate limits would pace
   * the benchmark */
  rndz_server_set_request_rate (rig->server, G_MAXUINT16);
  if (!rndz_server_listen (rig->server, any_port, error))
    return NULL;
  address = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (rig->server));
  servers[0] = address;

  rig->connector = rndz_client_new ("bob", servers);
  for (Kind kind = 0; kind < N_KINDS; kind++)
    {
      rig->listeners[kind] = rndz_client_new (kind_ids[kind], servers);
      if (is_secure (kind))
        {
          g_autoptr(RndzIdentity) identity = rndz_identity_new (error);

          if (identity == NULL)
            return NULL;
          rndz_client_set_identity (rig->listeners[kind], identity);
        }
      if (!listen_one (rig, kind, error))
        return NULL;
      if (kind != KIND_PLAIN_UDP)
        accept_next (rig, kind);
    }
  rig->udp_echo = g_socket_create_source (rig->listening, G_IO_IN, NULL);
  g_source_set_callback (rig->udp_echo, (GSourceFunc) (void (*) (void)) udp_echo_cb, rig, NULL);
  g_source_attach (rig->udp_echo, NULL);
  return rig;
}

/* The connector's side */

/* A fresh requester address for each rendezvous, 127.A.B.C, as
 * bench-rig.c does: a server forwards at most 2 requests a second for
 * one pair of requester and target addresses, whatever its request rate */
static void
next_local_address (Rig *rig)
{
  guint serial = ++rig->serial;
  g_autofree char *text = g_strdup_printf ("127.%u.%u.%u", 100 + serial / (254 * 256) % 100,
                                           serial / 254 % 256, serial % 254 + 1);
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (text);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (inet, 0);

  rndz_client_set_local_address (rig->connector, G_INET_SOCKET_ADDRESS (local));
}

static GObject *
connect_one (Rig      *rig,
             Kind      kind,
             GError  **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzClient *client = rig->connector;
  const char *id = kind_ids[kind];

  next_local_address (rig);
  if (kind == KIND_PLAIN_UDP)
    rndz_client_connect_udp_async (client, id, NULL, store_result_cb, &result);
  else if (kind == KIND_SECURE_UDP)
    rndz_client_connect_dtls_async (client, id, NULL, NULL, store_result_cb, &result);
  else if (kind == KIND_PLAIN_TCP)
    rndz_client_connect_tcp_async (client, id, NULL, store_result_cb, &result);
  else
    rndz_client_connect_tls_async (client, id, NULL, NULL, store_result_cb, &result);
  if (!wait_set ((gpointer *) &result))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "No connection to %s in time", id);
      return NULL;
    }

  if (kind == KIND_PLAIN_UDP)
    return (GObject *) rndz_client_connect_udp_finish (client, result, error);
  if (kind == KIND_SECURE_UDP)
    return (GObject *) rndz_client_connect_dtls_finish (client, result, error);
  if (kind == KIND_PLAIN_TCP)
    return (GObject *) rndz_client_connect_tcp_finish (client, result, error);
  return (GObject *) rndz_client_connect_tls_finish (client, result, error);
}

static gboolean
readable_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
socket_echo (GSocket  *socket,
             GError  **error)
{
  GSource *source = g_socket_create_source (socket, G_IO_IN, NULL);
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * (gint64) 1000;
  gboolean readable = FALSE;
  char buf[64];

  if (g_socket_send (socket, ECHO, strlen (ECHO), NULL, error) < 0)
    return FALSE;
  g_source_set_callback (source, (GSourceFunc) (void (*) (void)) readable_cb, &readable, NULL);
  g_source_attach (source, NULL);
  while (!readable && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (source);
  g_source_unref (source);
  return readable && g_socket_receive (socket, buf, sizeof buf, NULL, error) == strlen (ECHO);
}

/* One message there and back */
static gboolean
echo_one (GObject  *channel,
          GError  **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GBytes) ping = g_bytes_new_static (ECHO, strlen (ECHO));

  if (G_IS_SOCKET (channel))
    return socket_echo (G_SOCKET (channel), error);
  if (RNDZ_IS_DTLS_CHANNEL (channel))
    {
      if (!rndz_dtls_channel_send_bytes (RNDZ_DTLS_CHANNEL (channel), ping, NULL, error))
        return FALSE;
      rndz_dtls_channel_receive_bytes_async (RNDZ_DTLS_CHANNEL (channel), NULL, store_result_cb,
                                             &result);
      if (wait_set ((gpointer *) &result))
        bytes = rndz_dtls_channel_receive_bytes_finish (RNDZ_DTLS_CHANNEL (channel), result, error);
    }
  else
    {
      if (!g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (channel)), ECHO,
                                      strlen (ECHO), NULL, NULL, error))
        return FALSE;
      g_input_stream_read_bytes_async (stream_in (channel), 64, G_PRIORITY_DEFAULT, NULL,
                                       store_result_cb, &result);
      if (wait_set ((gpointer *) &result))
        bytes = g_input_stream_read_bytes_finish (stream_in (channel), result, error);
    }
  return bytes != NULL && g_bytes_get_size (bytes) == strlen (ECHO);
}

static void
channel_close (GObject *channel)
{
  if (G_IS_SOCKET (channel))
    g_socket_close (G_SOCKET (channel), NULL);
  else if (RNDZ_IS_DTLS_CHANNEL (channel))
    rndz_dtls_channel_close (RNDZ_DTLS_CHANNEL (channel));
  else
    g_io_stream_close (G_IO_STREAM (channel), NULL, NULL);
  g_object_unref (channel);
}

/* The listener's end of the connection just made */
static GObject *
accepted_end (Rig   *rig,
              guint  before)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * (gint64) 1000;

  while (rig->accepted->len <= before && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  return rig->accepted->len > before ? g_ptr_array_index (rig->accepted, before) : NULL;
}

/* 1. Latency */

static gboolean
bench_latency (Rig     *rig,
               GError **error)
{
  BenchSamples samples[N_KINDS];
  guint n = bench_iterations (50);
  gdouble added;

  bench_header ("1. Rendezvous latency: connect -> channel up -> one echo (interleaved)");
  for (Kind kind = 0; kind < N_KINDS; kind++)
    bench_samples_init (&samples[kind]);

  for (guint i = 0; i < n + 5; i++)
    for (Kind kind = 0; kind < N_KINDS; kind++)
      {
        gint64 start = bench_now_ns ();
        GObject *channel = connect_one (rig, kind, error);

        if (channel == NULL || !echo_one (channel, error))
          return FALSE;
        /* The first rounds warm up GnuTLS and the caches */
        if (i >= 5)
          bench_samples_add (&samples[kind], (bench_now_ns () - start) / 1000.0);
        channel_close (channel);
        g_ptr_array_set_size (rig->accepted, 0);
      }

  bench_report_header ("microseconds");
  for (Kind kind = 0; kind < N_KINDS; kind++)
    bench_report (kind_ids[kind], &samples[kind]);
  added = bench_samples_median (&samples[KIND_SECURE_UDP]) - bench_samples_median (&samples[KIND_PLAIN_UDP]);
  bench_target (added < 3000.0, "UDP: DTLS adds %.0f us to the median < 3000 us", added);
  added = bench_samples_median (&samples[KIND_SECURE_TCP]) - bench_samples_median (&samples[KIND_PLAIN_TCP]);
  bench_target (added < 3000.0, "TCP: TLS adds %.0f us to the median < 3000 us", added);
  for (Kind kind = 0; kind < N_KINDS; kind++)
    bench_samples_clear (&samples[kind]);
  return TRUE;
}

/* 2. Throughput, TCP */

typedef struct
{
  GInputStream *in;
  gsize total;
  gsize got;
} Reader;

static gpointer
reader_thread (gpointer data)
{
  Reader *reader = data;
  g_autofree char *buf = g_malloc (65536);

  while (reader->got < reader->total)
    {
      gssize len = g_input_stream_read (reader->in, buf, 65536, NULL, NULL);

      if (len <= 0)
        break;
      reader->got += len;
    }
  return NULL;
}

/* MiB/s of one run over a new connection of @kind */
static gboolean
throughput_run (Rig      *rig,
                Kind      kind,
                gdouble  *rate,
                gdouble  *cpu,
                GError  **error)
{
  guint before = rig->accepted->len;
  GObject *channel = connect_one (rig, kind, error);
  g_autofree char *block = g_malloc0 (65536);
  Reader reader = { NULL, (gsize) opt_megabytes << 20, 0 };
  GOutputStream *out;
  GThread *thread;
  GObject *end;
  gdouble cpu_start;
  gint64 start;

  if (channel == NULL)
    return FALSE;
  end = accepted_end (rig, before);
  if (end == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s: not accepted", kind_ids[kind]);
      return FALSE;
    }
  reader.in = stream_in (end);
  out = g_io_stream_get_output_stream (G_IO_STREAM (channel));

  cpu_start = bench_cpu_seconds (0);
  start = bench_now_ns ();
  thread = g_thread_new ("reader", reader_thread, &reader);
  for (gsize sent = 0; sent < reader.total; sent += 65536)
    if (!g_output_stream_write_all (out, block, 65536, NULL, NULL, error))
      break;
  g_thread_join (thread);
  *rate = (reader.got / 1048576.0) / ((bench_now_ns () - start) / 1e9);
  /* Both ends: whether the run was bound by the CPU or by waiting */
  *cpu = 100.0 * (bench_cpu_seconds (0) - cpu_start) / ((bench_now_ns () - start) / 1e9);
  if (G_IS_TLS_CONNECTION (channel) && !rig->suite_shown++)
    bench_figure ("TLS cipher suite", "%s",
                  g_tls_connection_get_ciphersuite_name (G_TLS_CONNECTION (channel)));
  channel_close (channel);
  g_ptr_array_set_size (rig->accepted, 0);
  if (reader.got < reader.total && (error == NULL || *error == NULL))
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: short read", kind_ids[kind]);
  return reader.got == reader.total;
}

static gboolean
bench_throughput (Rig     *rig,
                  GError **error)
{
  BenchSamples plain, secure, plain_cpu, secure_cpu;
  gdouble ratio;

  bench_header ("2. TCP throughput over the rendezvous, connector -> listener (interleaved)");
  bench_samples_init (&plain);
  bench_samples_init (&secure);
  bench_samples_init (&plain_cpu);
  bench_samples_init (&secure_cpu);
  rig->echo = FALSE;
  for (guint i = 0; i < THROUGHPUT_RUNS; i++)
    {
      gdouble rate, cpu;

      if (!throughput_run (rig, KIND_PLAIN_TCP, &rate, &cpu, error))
        return FALSE;
      bench_samples_add (&plain, rate);
      bench_samples_add (&plain_cpu, cpu);
      if (!throughput_run (rig, KIND_SECURE_TCP, &rate, &cpu, error))
        return FALSE;
      bench_samples_add (&secure, rate);
      bench_samples_add (&secure_cpu, cpu);
    }
  rig->echo = TRUE;

  bench_report_header ("MiB/s");
  bench_report ("plain TCP", &plain);
  bench_report ("TLS 1.3", &secure);
  bench_report_header ("CPU, % of one core (both ends)");
  bench_report ("plain TCP", &plain_cpu);
  bench_report ("TLS 1.3", &secure_cpu);
  ratio = bench_samples_median (&secure) / bench_samples_median (&plain);
  bench_target (ratio >= 0.5, "TLS throughput %.0f %% of plain TCP >= 50 %%", 100 * ratio);
  bench_samples_clear (&plain);
  bench_samples_clear (&secure);
  bench_samples_clear (&plain_cpu);
  bench_samples_clear (&secure_cpu);
  return TRUE;
}

/* 3. Datagram rate, UDP */

/* Datagrams per second of one run over a new path of @kind: bursts sent,
 * then received, by GDatagramBased on both sides */
static gboolean
datagram_run (Rig      *rig,
              Kind      kind,
              gdouble  *rate,
              guint    *lost,
              GError  **error)
{
  guint before = rig->accepted->len;
  GObject *channel = connect_one (rig, kind, error);
  char payload[DATAGRAM_SIZE] = { 0 };
  char bufs[BURST][2048];
  GOutputVector vector = { payload, sizeof payload };
  GOutputMessage out[BURST];
  GInputVector in_vectors[BURST];
  GInputMessage in[BURST];
  GDatagramBased *receiver;
  guint received = 0;
  gint64 start;

  if (channel == NULL)
    return FALSE;
  receiver = kind == KIND_PLAIN_UDP ? G_DATAGRAM_BASED (rig->listening)
                                    : G_DATAGRAM_BASED (accepted_end (rig, before));
  for (guint i = 0; i < BURST; i++)
    {
      out[i] = (GOutputMessage) { NULL, &vector, 1, 0, NULL, 0 };
      in_vectors[i] = (GInputVector) { bufs[i], sizeof bufs[i] };
      in[i] = (GInputMessage) { NULL, &in_vectors[i], 1, 0, 0, NULL, NULL };
    }

  *lost = 0;
  start = bench_now_ns ();
  while (received + *lost < (guint) opt_datagrams)
    {
      gint sent = g_datagram_based_send_messages (G_DATAGRAM_BASED (channel), out, BURST, 0, -1,
                                                  NULL, error);
      gint got = 0;

      if (sent <= 0)
        return FALSE;
      while (got < sent)
        {
          gint n = g_datagram_based_receive_messages (receiver, in, sent - got, 0, 200000, NULL, NULL);

          if (n <= 0)
            break;
          got += n;
        }
      received += got;
      *lost += sent - got;
    }
  *rate = received / ((bench_now_ns () - start) / 1e9);
  channel_close (channel);
  g_ptr_array_set_size (rig->accepted, 0);
  return TRUE;
}

static gboolean
bench_datagrams (Rig     *rig,
                 GError **error)
{
  BenchSamples plain, secure;
  guint lost_plain = 0, lost_secure = 0;
  gdouble ratio;

  bench_header ("3. UDP datagram rate over the rendezvous, 1000 B, bursts of 16 (interleaved)");
  bench_samples_init (&plain);
  bench_samples_init (&secure);
  rig->echo = FALSE;
  for (guint i = 0; i < DATAGRAM_RUNS; i++)
    {
      gdouble rate;
      guint lost;

      if (!datagram_run (rig, KIND_PLAIN_UDP, &rate, &lost, error))
        return FALSE;
      bench_samples_add (&plain, rate);
      lost_plain += lost;
      if (!datagram_run (rig, KIND_SECURE_UDP, &rate, &lost, error))
        return FALSE;
      bench_samples_add (&secure, rate);
      lost_secure += lost;
    }
  rig->echo = TRUE;

  bench_report_header ("datagrams/s (sent and received, one thread)");
  bench_report ("plain UDP", &plain);
  bench_report ("DTLS 1.2", &secure);
  bench_figure ("datagrams lost: plain / DTLS", "%u / %u", lost_plain, lost_secure);
  ratio = bench_samples_median (&secure) / bench_samples_median (&plain);
  bench_target (ratio >= 0.4, "DTLS datagram rate %.0f %% of plain UDP >= 40 %%", 100 * ratio);
  bench_samples_clear (&plain);
  bench_samples_clear (&secure);
  return TRUE;
}

/* 4. Idle channels */

static gboolean
bench_idle (Rig     *rig,
            GError **error)
{
  g_autoptr(GPtrArray) channels = g_ptr_array_new_with_free_func ((GDestroyNotify) channel_close);
  guint baseline_s = MAX (opt_idle_seconds / 3, 1);
  gdouble cpu, baseline, extra;

  bench_header ("4. CPU of idle DTLS channels, default keepalive");
  rig->echo = FALSE;
  cpu = bench_cpu_seconds (0);
  run_for (baseline_s * 1000);
  baseline = (bench_cpu_seconds (0) - cpu) / baseline_s;

  for (gint i = 0; i < opt_idle_channels; i++)
    {
      GObject *channel = connect_one (rig, KIND_SECURE_UDP, error);

      if (channel == NULL)
        return FALSE;
      g_ptr_array_add (channels, channel);
    }
  if (accepted_end (rig, opt_idle_channels - 1) == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Not every channel was accepted");
      return FALSE;
    }

  cpu = bench_cpu_seconds (0);
  run_for (opt_idle_seconds * 1000);
  cpu = bench_cpu_seconds (0) - cpu;
  extra = cpu - baseline * opt_idle_seconds;

  bench_figure ("process CPU without channels", "%.4f s per s", baseline);
  bench_figure ("process CPU with the channels", "%.4f s in %d s (%d channels, both ends here)",
                cpu, opt_idle_seconds, opt_idle_channels);
  bench_figure ("CPU per channel-hour (both ends)", "%.4f s",
                extra / opt_idle_channels * 3600.0 / opt_idle_seconds);
  bench_figure ("CPU per channel end-hour", "%.4f s",
                extra / (2.0 * opt_idle_channels) * 3600.0 / opt_idle_seconds);
  g_ptr_array_set_size (rig->accepted, 0);
  rig->echo = TRUE;
  return TRUE;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GError) error = NULL;
  const char *mode;
  gboolean all;
  Rig *rig;

  bench_init (&argc, &argv, "Mode: latency, throughput, datagrams, idle or all (default)",
              entries, 900);
  mode = argc > 1 ? argv[1] : "all";
  all = g_str_equal (mode, "all");
  bench_print_machine ();

  rig = rig_new (&error);
  if (rig == NULL)
    {
      g_printerr ("Cannot set up: %s\n", error != NULL ? error->message : "timed out");
      return EXIT_FAILURE;
    }
  if (((all || g_str_equal (mode, "latency")) && !bench_latency (rig, &error)) ||
      ((all || g_str_equal (mode, "throughput")) && !bench_throughput (rig, &error)) ||
      ((all || g_str_equal (mode, "datagrams")) && !bench_datagrams (rig, &error)) ||
      ((all || g_str_equal (mode, "idle")) && !bench_idle (rig, &error)))
    {
      g_printerr ("%s\n", error != NULL ? error->message : "failed");
      return EXIT_FAILURE;
    }
  return bench_exit_status ();
}
