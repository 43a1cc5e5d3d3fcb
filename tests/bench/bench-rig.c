/* bench-rig.c: a listener and a connector, and the raw baselines
 *
 * SPDX-License-Identifier: MIT
 */

#include "bench-rig.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#define TOKEN_MAX 64
#define RENDEZVOUS_TIMEOUT_MS 5000

static gboolean
expire_cb (gpointer user_data)
{
  gboolean *expired = user_data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

gboolean
bench_run_until (gboolean  *done,
                 guint      timeout_ms,
                 GError   **error)
{
  GMainContext *context = g_main_context_get_thread_default ();
  gboolean expired = FALSE;
  GSource *timeout;

  if (*done)
    return TRUE;

  timeout = g_timeout_source_new (timeout_ms);
  g_source_set_callback (timeout, expire_cb, &expired, NULL);
  g_source_attach (timeout, context);

  while (!*done && !expired)
    g_main_context_iteration (context, TRUE);

  g_source_destroy (timeout);
  g_source_unref (timeout);

  if (!*done)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timed out after %u ms", timeout_ms);
      return FALSE;
    }
  return TRUE;
}

static GSource *
watch_socket (GSocket           *socket,
              GIOCondition       condition,
              GSocketSourceFunc  func,
              gpointer           user_data)
{
  GSource *source = g_socket_create_source (socket, condition, NULL);

  g_source_set_callback (source, G_SOURCE_FUNC (func), user_data, NULL);
  g_source_attach (source, g_main_context_get_thread_default ());
  return source;
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static GSocket *
loopback_socket (GSocketType   type,
                 GError      **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, type, 0, error);
  if (socket == NULL || !g_socket_bind (socket, address, TRUE, error))
    return NULL;
  g_socket_set_blocking (socket, FALSE);
  return g_steal_pointer (&socket);
}

/* The rig */

typedef struct
{
  BenchRig *rig;
  GSocketConnection *connection;
  char buf[256];
} EchoStream;

struct _BenchRig
{
  RndzTransport transport;
  char *listener_id;
  RndzClient *listener;
  RndzClient *connector;

  GSocket *udp_socket;         /* the listener's */
  GSource *udp_echo;
  char udp_buf[2048];

  GCancellable *cancellable;   /* TCP accepts and echoes */
  guint echo_streams;

  guint serial;
};

static gboolean
rig_udp_echo_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  BenchRig *rig = user_data;

  for (;;)
    {
      g_autoptr(GSocketAddress) from = NULL;
      gssize n;

      n = g_socket_receive_from (socket, &from, rig->udp_buf, sizeof rig->udp_buf, NULL, NULL);
      if (n < 0)
        break;
      g_socket_send_to (socket, from, rig->udp_buf, n, NULL, NULL);
    }

  return G_SOURCE_CONTINUE;
}

static void echo_stream_read (EchoStream *echo);

static void
echo_stream_free (EchoStream *echo)
{
  echo->rig->echo_streams--;
  g_io_stream_close (G_IO_STREAM (echo->connection), NULL, NULL);
  g_object_unref (echo->connection);
  g_free (echo);
}

static void
echo_stream_written_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  EchoStream *echo = user_data;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL))
    {
      echo_stream_free (echo);
      return;
    }
  echo_stream_read (echo);
}

static void
echo_stream_read_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  EchoStream *echo = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (n <= 0)
    {
      echo_stream_free (echo);
      return;
    }

  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (echo->connection)),
                                   echo->buf, n, G_PRIORITY_DEFAULT, echo->rig->cancellable,
                                   echo_stream_written_cb, echo);
}

static void
echo_stream_read (EchoStream *echo)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (echo->connection)),
                             echo->buf, sizeof echo->buf, G_PRIORITY_DEFAULT,
                             echo->rig->cancellable, echo_stream_read_cb, echo);
}

static void rig_accept (BenchRig *rig);

static void
rig_accepted_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  BenchRig *rig = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *peer_id = NULL;
  GSocketConnection *connection;
  EchoStream *echo;

  connection = rndz_client_accept_finish (RNDZ_CLIENT (source), result, &peer_id, &error);
  if (connection == NULL)
    {
      /* Cancelled or stopped: the rig is going away */
      return;
    }

  echo = g_new0 (EchoStream, 1);
  echo->rig = rig;
  echo->connection = connection;
  rig->echo_streams++;
  echo_stream_read (echo);
  rig_accept (rig);
}

static void
rig_accept (BenchRig *rig)
{
  rndz_client_accept_async (rig->listener, rig->cancellable, rig_accepted_cb, rig);
}

typedef struct
{
  gboolean done;
  GObject *object;
  GError *error;
} Result;

static void
listen_udp_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Result *res = user_data;

  res->object = (GObject *) rndz_client_listen_udp_finish (RNDZ_CLIENT (source), result, &res->error);
  res->done = TRUE;
}

static void
listen_tcp_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Result *res = user_data;

  rndz_client_listen_tcp_finish (RNDZ_CLIENT (source), result, &res->error);
  res->done = TRUE;
}

BenchRig *
bench_rig_new (const char     *server_addr,
               RndzTransport   transport,
               const char     *listener_id,
               GError        **error)
{
  return bench_rig_new_split (server_addr, server_addr, transport, listener_id, error);
}

BenchRig *
bench_rig_new_split (const char     *listener_server,
                     const char     *connector_server,
                     RndzTransport   transport,
                     const char     *listener_id,
                     GError        **error)
{
  const char *listener_servers[] = { listener_server, NULL };
  const char *connector_servers[] = { connector_server, NULL };
  g_autofree char *connector_id = g_strdup_printf ("%s-connector", listener_id);
  BenchRig *rig = g_new0 (BenchRig, 1);
  Result res = { 0 };

  rig->transport = transport;
  rig->listener_id = g_strdup (listener_id);
  rig->cancellable = g_cancellable_new ();
  rig->listener = rndz_client_new (listener_id, listener_servers);
  rig->connector = rndz_client_new (connector_id, connector_servers);
  rndz_client_set_timeout (rig->listener, 5000);
  rndz_client_set_timeout (rig->connector, 5000);

  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_listen_udp_async (rig->listener, NULL, listen_udp_cb, &res);
  else
    rndz_client_listen_tcp_async (rig->listener, NULL, listen_tcp_cb, &res);

  if (!bench_run_until (&res.done, RENDEZVOUS_TIMEOUT_MS, error))
    goto fail;
  if (res.error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&res.error));
      goto fail;
    }

  if (transport == RNDZ_TRANSPORT_UDP)
    {
      rig->udp_socket = G_SOCKET (g_steal_pointer (&res.object));
      rig->udp_echo = watch_socket (rig->udp_socket, G_IO_IN, rig_udp_echo_cb, rig);
    }
  else
    rig_accept (rig);

  return rig;

fail:
  g_clear_object (&res.object);
  bench_rig_free (rig);
  return NULL;
}

void
bench_rig_free (BenchRig *rig)
{
  clear_source (&rig->udp_echo);
  g_clear_object (&rig->udp_socket);
  g_cancellable_cancel (rig->cancellable);
  rndz_client_stop (rig->listener);
  /* Let the cancelled accepts and echoes finish */
  for (guint i = 0; i < 100 && (rig->echo_streams > 0 || g_main_context_pending (NULL)); i++)
    g_main_context_iteration (NULL, FALSE);
  g_clear_object (&rig->listener);
  g_clear_object (&rig->connector);
  g_clear_object (&rig->cancellable);
  g_free (rig->listener_id);
  g_free (rig);
}

/* One rendezvous */

typedef struct
{
  gboolean done;
  GError *error;
  gint64 connected_ns;
  gint64 end_ns;
  char token[TOKEN_MAX];
  gsize token_len;

  GSocket *socket;             /* UDP */
  GSource *source;
  GSocketConnection *connection;  /* TCP */
  char buf[TOKEN_MAX];
  gsize received;
} Attempt;

static void
attempt_fail (Attempt *attempt,
              GError  *error)
{
  if (attempt->error == NULL)
    attempt->error = error;
  else
    g_error_free (error);
  attempt->done = TRUE;
}

static gboolean
udp_reply_cb (GSocket      *socket,
              GIOCondition  condition,
              gpointer      user_data)
{
  Attempt *attempt = user_data;

  for (;;)
    {
      gssize n = g_socket_receive (socket, attempt->buf, sizeof attempt->buf, NULL, NULL);

      if (n < 0)
        return G_SOURCE_CONTINUE;

      /* A late punch of the listener is not the echo */
      if ((gsize) n == attempt->token_len && memcmp (attempt->buf, attempt->token, n) == 0)
        {
          attempt->end_ns = bench_now_ns ();
          attempt->done = TRUE;
          return G_SOURCE_CONTINUE;
        }
    }
}

static void
udp_connected_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Attempt *attempt = user_data;
  GError *error = NULL;

  attempt->connected_ns = bench_now_ns ();
  attempt->socket = rndz_client_connect_udp_finish (RNDZ_CLIENT (source), result, &error);
  if (attempt->socket == NULL)
    {
      attempt_fail (attempt, error);
      return;
    }

  attempt->source = watch_socket (attempt->socket, G_IO_IN, udp_reply_cb, attempt);
  if (g_socket_send (attempt->socket, attempt->token, attempt->token_len, NULL, &error) < 0)
    attempt_fail (attempt, error);
}

static void tcp_read_reply (Attempt *attempt);

static void
tcp_reply_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  Attempt *attempt = user_data;
  GError *error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (n <= 0)
    {
      attempt_fail (attempt, error != NULL ? error :
                    g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CLOSED, "Closed before the echo"));
      return;
    }

  attempt->received += n;
  if (attempt->received < attempt->token_len)
    {
      tcp_read_reply (attempt);
      return;
    }

  attempt->end_ns = bench_now_ns ();
  if (memcmp (attempt->buf, attempt->token, attempt->token_len) != 0)
    attempt_fail (attempt, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "Wrong echo"));
  attempt->done = TRUE;
}

static void
tcp_read_reply (Attempt *attempt)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (attempt->connection)),
                             attempt->buf + attempt->received,
                             attempt->token_len - attempt->received,
                             G_PRIORITY_DEFAULT, NULL, tcp_reply_cb, attempt);
}

static void
tcp_written_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  Attempt *attempt = user_data;
  GError *error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      attempt_fail (attempt, error);
      return;
    }
  tcp_read_reply (attempt);
}

static void
tcp_connected_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Attempt *attempt = user_data;
  GError *error = NULL;

  attempt->connected_ns = bench_now_ns ();
  attempt->connection = rndz_client_connect_tcp_finish (RNDZ_CLIENT (source), result, &error);
  if (attempt->connection == NULL)
    {
      attempt_fail (attempt, error);
      return;
    }

  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (attempt->connection)),
                                   attempt->token, attempt->token_len, G_PRIORITY_DEFAULT, NULL,
                                   tcp_written_cb, attempt);
}

/* A fresh requester address for each rendezvous, 127.A.B.C: a server
 * forwards at most 2 requests a second (bursts of 4) for one pair of
 * requester and target addresses, whatever its request-rate, and a
 * benchmark is not a flood */
static GSocketAddress *
next_local_address (guint serial)
{
  g_autofree char *text = g_strdup_printf ("127.%u.%u.%u", 100 + serial / (254 * 256) % 100,
                                           serial / 254 % 256, serial % 254 + 1);
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (text);

  return g_inet_socket_address_new (inet, 0);
}

gdouble
bench_rig_rendezvous (BenchRig  *rig,
                      GError   **error)
{
  Attempt attempt = { 0 };
  g_autoptr(GSocketAddress) local = NULL;
  gint64 start_ns;
  gboolean ok;

  attempt.token_len = g_snprintf (attempt.token, sizeof attempt.token, "rendezvous %u", ++rig->serial);
  local = next_local_address (rig->serial);
  rndz_client_set_local_address (rig->connector, G_INET_SOCKET_ADDRESS (local));

  start_ns = bench_now_ns ();
  if (rig->transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (rig->connector, rig->listener_id, NULL, udp_connected_cb, &attempt);
  else
    rndz_client_connect_tcp_async (rig->connector, rig->listener_id, NULL, tcp_connected_cb, &attempt);

  ok = bench_run_until (&attempt.done, RENDEZVOUS_TIMEOUT_MS, error);
  if (ok && attempt.error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&attempt.error));
      ok = FALSE;
    }
  g_clear_error (&attempt.error);

  clear_source (&attempt.source);
  if (attempt.socket != NULL)
    g_socket_close (attempt.socket, NULL);
  g_clear_object (&attempt.socket);
  if (attempt.connection != NULL)
    g_io_stream_close (G_IO_STREAM (attempt.connection), NULL, NULL);
  g_clear_object (&attempt.connection);

  /* A TCP attempt that timed out still has its callbacks pending: they
   * point to this stack frame. Failures end the benchmark, so that is
   * only a problem if we carry on; run them out here. */
  if (!ok)
    {
      for (guint i = 0; i < 1000 && !attempt.done; i++)
        g_main_context_iteration (NULL, TRUE);
    }

  /* BENCH_TRACE=1: every sample, and how much of it the connect took */
  if (ok && g_getenv ("BENCH_TRACE") != NULL)
    g_printerr ("rendezvous %u: %.1f us, connected after %.1f us\n", rig->serial,
                (attempt.end_ns - start_ns) / 1000.0, (attempt.connected_ns - start_ns) / 1000.0);

  return ok ? (attempt.end_ns - start_ns) / 1000.0 : -1.0;
}

gboolean
bench_rig_measure (BenchRig      *rig,
                   guint          n,
                   guint          pause_ms,
                   guint          budget_ms,
                   BenchSamples  *samples,
                   GError       **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) budget_ms * 1000;

  for (guint i = 0; i < n && g_get_monotonic_time () < deadline; i++)
    {
      gdouble us = bench_rig_rendezvous (rig, error);

      if (us < 0)
        return FALSE;
      bench_samples_add (samples, us);

      /* Closed sockets' sources go, the listener's echo side closes */
      for (guint j = 0; j < 100 && g_main_context_iteration (NULL, FALSE); j++)
        ;
      if (pause_ms > 0)
        {
          gboolean never = FALSE;

          bench_run_until (&never, pause_ms, NULL);
        }
    }

  return bench_samples_count (samples) > 0;
}

/* Raw baselines */

typedef struct
{
  gboolean done;
  gint64 end_ns;
  char buf[TOKEN_MAX];
  gsize expect;
  GSocket *peer;              /* TCP echo: the accepted socket */
  GSource *peer_source;
  GSource *source;
  GError *error;
} Raw;

static gboolean
raw_udp_echo_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  char buf[TOKEN_MAX];

  for (;;)
    {
      g_autoptr(GSocketAddress) from = NULL;
      gssize n = g_socket_receive_from (socket, &from, buf, sizeof buf, NULL, NULL);

      if (n < 0)
        return G_SOURCE_CONTINUE;
      g_socket_send_to (socket, from, buf, n, NULL, NULL);
    }
}

static gboolean
raw_reply_cb (GSocket      *socket,
              GIOCondition  condition,
              gpointer      user_data)
{
  Raw *raw = user_data;
  gssize n = g_socket_receive (socket, raw->buf, sizeof raw->buf, NULL, NULL);

  if (n > 0 && (gsize) n == raw->expect)
    {
      raw->end_ns = bench_now_ns ();
      raw->done = TRUE;
    }
  return G_SOURCE_CONTINUE;
}

gboolean
bench_raw_udp_round_trips (guint          n,
                           BenchSamples  *samples,
                           GError       **error)
{
  g_autoptr(GSocket) a = NULL;
  g_autoptr(GSocket) b = NULL;
  g_autoptr(GSocketAddress) b_address = NULL;
  GSource *echo, *reply;
  Raw raw = { 0 };
  gboolean ok = TRUE;

  a = loopback_socket (G_SOCKET_TYPE_DATAGRAM, error);
  b = a != NULL ? loopback_socket (G_SOCKET_TYPE_DATAGRAM, error) : NULL;
  if (b == NULL || (b_address = g_socket_get_local_address (b, error)) == NULL)
    return FALSE;

  echo = watch_socket (b, G_IO_IN, raw_udp_echo_cb, NULL);
  reply = watch_socket (a, G_IO_IN, raw_reply_cb, &raw);

  for (guint i = 0; i < n && ok; i++)
    {
      char token[TOKEN_MAX];
      gint64 start_ns;

      raw.expect = g_snprintf (token, sizeof token, "round trip %u", i);
      raw.done = FALSE;
      start_ns = bench_now_ns ();
      if (g_socket_send_to (a, b_address, token, raw.expect, NULL, error) < 0 ||
          !bench_run_until (&raw.done, RENDEZVOUS_TIMEOUT_MS, error))
        ok = FALSE;
      else
        bench_samples_add (samples, (raw.end_ns - start_ns) / 1000.0);
    }

  clear_source (&echo);
  clear_source (&reply);
  return ok;
}

static gboolean
raw_tcp_echo_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  Raw *raw = user_data;
  char buf[TOKEN_MAX];
  gssize n = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);

  if (n > 0)
    {
      g_socket_send (socket, buf, n, NULL, NULL);
      return G_SOURCE_CONTINUE;
    }
  if (n == 0)
    {
      /* The other side closed: the attempt is over */
      g_socket_close (socket, NULL);
      g_clear_pointer (&raw->peer_source, g_source_unref);
      g_clear_object (&raw->peer);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
raw_tcp_accept_cb (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  Raw *raw = user_data;
  GSocket *peer = g_socket_accept (socket, NULL, NULL);

  if (peer == NULL)
    return G_SOURCE_CONTINUE;

  /* One connection at a time: the previous one is closed */
  clear_source (&raw->peer_source);
  if (raw->peer != NULL)
    g_socket_close (raw->peer, NULL);
  g_clear_object (&raw->peer);

  g_socket_set_blocking (peer, FALSE);
  g_socket_set_option (peer, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  raw->peer = peer;
  raw->peer_source = watch_socket (peer, G_IO_IN, raw_tcp_echo_cb, raw);
  return G_SOURCE_CONTINUE;
}

static GSocket *
tcp_listening_socket (GSocketAddress **address,
                      GError         **error)
{
  g_autoptr(GSocket) listening = loopback_socket (G_SOCKET_TYPE_STREAM, error);

  if (listening == NULL || !g_socket_listen (listening, error) ||
      (*address = g_socket_get_local_address (listening, error)) == NULL)
    return NULL;
  return g_steal_pointer (&listening);
}

gboolean
bench_raw_tcp_round_trips (guint          n,
                           BenchSamples  *samples,
                           GError       **error)
{
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocket) client = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  GSource *accept_source, *reply;
  Raw raw = { 0 };
  gboolean ok = TRUE;

  listening = tcp_listening_socket (&address, error);
  if (listening == NULL)
    return FALSE;
  accept_source = watch_socket (listening, G_IO_IN, raw_tcp_accept_cb, &raw);

  client = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, error);
  if (client == NULL || !g_socket_connect (client, address, NULL, error))
    {
      clear_source (&accept_source);
      return FALSE;
    }
  g_socket_set_blocking (client, FALSE);
  g_socket_set_option (client, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  reply = watch_socket (client, G_IO_IN, raw_reply_cb, &raw);

  for (guint i = 0; i < n && ok; i++)
    {
      char token[TOKEN_MAX];
      gint64 start_ns;

      raw.expect = g_snprintf (token, sizeof token, "round trip %u", i);
      raw.done = FALSE;
      start_ns = bench_now_ns ();
      if (g_socket_send (client, token, raw.expect, NULL, error) < 0 ||
          !bench_run_until (&raw.done, RENDEZVOUS_TIMEOUT_MS, error))
        ok = FALSE;
      else
        bench_samples_add (samples, (raw.end_ns - start_ns) / 1000.0);
    }

  clear_source (&reply);
  g_socket_close (client, NULL);
  while (raw.peer != NULL && g_main_context_iteration (NULL, FALSE))
    ;
  clear_source (&raw.peer_source);
  g_clear_object (&raw.peer);
  clear_source (&accept_source);
  return ok;
}

typedef struct
{
  Raw *raw;
  GSocket *socket;
  char token[TOKEN_MAX];
  gsize token_len;
  GError *error;
  gboolean failed;
} Connecting;

static gboolean
raw_connected_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  Connecting *connecting = user_data;
  Raw *raw = connecting->raw;

  if (!g_socket_check_connect_result (socket, &connecting->error) ||
      g_socket_send (socket, connecting->token, connecting->token_len, NULL, &connecting->error) < 0)
    {
      connecting->failed = TRUE;
      raw->done = TRUE;
      return G_SOURCE_REMOVE;
    }

  raw->source = watch_socket (socket, G_IO_IN, raw_reply_cb, raw);
  return G_SOURCE_REMOVE;
}

gboolean
bench_raw_tcp_connect_echo (guint          n,
                            BenchSamples  *samples,
                            GError       **error)
{
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  GSource *accept_source;
  Raw raw = { 0 };
  gboolean ok = TRUE;

  listening = tcp_listening_socket (&address, error);
  if (listening == NULL)
    return FALSE;
  accept_source = watch_socket (listening, G_IO_IN, raw_tcp_accept_cb, &raw);

  for (guint i = 0; i < n && ok; i++)
    {
      Connecting connecting = { &raw, NULL };
      GSource *connect_source = NULL;
      g_autoptr(GError) local_error = NULL;
      gint64 start_ns;

      raw.expect = connecting.token_len =
        g_snprintf (connecting.token, sizeof connecting.token, "connect %u", i);
      raw.done = FALSE;

      start_ns = bench_now_ns ();
      connecting.socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, error);
      if (connecting.socket == NULL)
        {
          ok = FALSE;
          break;
        }
      g_socket_set_blocking (connecting.socket, FALSE);
      g_socket_set_option (connecting.socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
      if (!g_socket_connect (connecting.socket, address, NULL, &local_error) &&
          !g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_PENDING))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          ok = FALSE;
        }
      else
        {
          connect_source = watch_socket (connecting.socket, G_IO_OUT, raw_connected_cb, &connecting);
          ok = bench_run_until (&raw.done, RENDEZVOUS_TIMEOUT_MS, error);
          if (ok && connecting.failed)
            {
              g_propagate_error (error, g_steal_pointer (&connecting.error));
              ok = FALSE;
            }
          if (ok)
            bench_samples_add (samples, (raw.end_ns - start_ns) / 1000.0);
        }

      clear_source (&connect_source);
      clear_source (&raw.source);
      g_socket_close (connecting.socket, NULL);
      g_clear_object (&connecting.socket);
      g_clear_error (&connecting.error);
      /* Let the echo side see the close */
      while (raw.peer != NULL && g_main_context_iteration (NULL, FALSE))
        ;
    }

  clear_source (&raw.peer_source);
  if (raw.peer != NULL)
    g_socket_close (raw.peer, NULL);
  g_clear_object (&raw.peer);
  clear_source (&accept_source);
  return ok;
}
