/* rndz-metrics.c: `rndz server --metrics-addr`, Prometheus metrics over HTTP
 *
 * SPDX-License-Identifier: MIT
 *
 * Serves rndz_server_get_statistics() at http://ADDRESS:PORT/metrics in
 * the Prometheus text exposition format, version 0.0.4, through a
 * SoupServer on the thread-default main context, the server's. Every
 * other path is 404. The library does not depend on libsoup: only this
 * program does, and only when built with it (meson option "metrics");
 * without it, rndz_metrics_new() says so. Even then the program is not
 * linked with libsoup: rndz-soup.c opens it when metrics are first asked
 * for, so that `rndz client` does not load it. doc/metrics.md lists the
 * metrics and what to alert on.
 */

#include <string.h>

#include <glib/gi18n.h>

#if RNDZ_HAVE_METRICS
#include "rndz-soup.h"
#endif

#include "rndz-metrics.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum
{
  COUNTER,
  GAUGE,
  SUMMARY,
} MetricType;

static const char * const type_names[] = { "counter", "gauge", "summary" };

/* One line of the exposition: a statistic of rndz_server_get_statistics()
 * under its metric name. Lines of one family follow each other; the
 * family's HELP and TYPE come before its first. The HELP texts are for
 * machines and operators' dashboards: not translated. */
typedef struct
{
  const char *statistic;
  const char *family;
  const char *suffix;   /* a summary's _sum or _count; labels */
  MetricType type;
  const char *help;
} Metric;

static const Metric metrics_table[] = {
  { "peers_udp", "rndz_peers", "{transport=\"udp\"}", GAUGE,
    "Peers registered, by transport" },
  { "peers_tcp", "rndz_peers", "{transport=\"tcp\"}", GAUGE, NULL },
  { "messages", "rndz_messages_total", "", COUNTER, "Valid messages handled" },
  { "malformed", "rndz_malformed_total", "", COUNTER,
    "Datagrams dropped and TCP connections closed for bad input" },
  { "redirected", "rndz_redirected_total", "", COUNTER,
    "Connection requests answered with the target's address (rendezvous completed)" },
  { "not_found", "rndz_not_found_total", "", COUNTER,
    "Connection requests answered peer-not-found" },
  { "no_answer", "rndz_no_answer_total", "", COUNTER,
    "Connection requests answered peer-no-answer: the target did not answer in time" },
  { "unavailable", "rndz_unavailable_total", "", COUNTER,
    "Connection requests that failed because the cluster could not be reached" },
  { "rate_limited", "rndz_rate_limited_total", "", COUNTER,
    "Requests refused or left unanswered by the rate limits or a full table" },
  { "auth_failed", "rndz_auth_failed_total", "", COUNTER,
    "Messages dropped because their authentication failed" },
  { "amplification", "rndz_amplification_total", "", COUNTER,
    "Replies not sent because they would have been larger than their request" },
  { "forwarded", "rndz_forwarded_total", "", COUNTER,
    "Connection requests passed on to their target (fsync sent)" },
  { "forwarded_across", "rndz_forwarded_across_total", "", COUNTER,
    "Connection requests sent to another node of the cluster" },
  { "answers_across_us", "rndz_forward_across_latency_seconds", "_sum", SUMMARY,
    "Time from sending a request to another node of the cluster to its answer" },
  { "answers_across", "rndz_forward_across_latency_seconds", "_count", SUMMARY, NULL },
  { "evicted", "rndz_evicted_total", "", COUNTER,
    "Silent TCP connections closed to make room" },
  { "refused_connections", "rndz_refused_connections_total", "", COUNTER,
    "TCP connections refused at max-connections" },
  { "relay_sessions_open", "rndz_relay_sessions_open", "", GAUGE, "Relay sessions open" },
  { "relay_sessions", "rndz_relay_sessions_total", "", COUNTER, "Relay sessions opened" },
  { "relay_bytes", "rndz_relay_bytes_total", "", COUNTER, "Bytes relayed, both directions" },
  { "relay_dropped", "rndz_relay_dropped_total", "", COUNTER,
    "Relay port: datagrams dropped and connections closed for bad input or over the limits" },
  { "cluster_connected", "rndz_cluster_connected", "", GAUGE,
    "1 if the server is in a cluster and reaches its Redis, else 0" },
};

static const Metric *
metric_for (const char *statistic)
{
  for (guint i = 0; i < G_N_ELEMENTS (metrics_table); i++)
    if (g_str_equal (metrics_table[i].statistic, statistic))
      return &metrics_table[i];
  return NULL;
}

static void
append_header (GString    *out,
               const char *family,
               const char *type,
               const char *help)
{
  g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", family, help, family, type);
}

static void
append_value (GString *out,
              guint64  value)
{
  g_string_append_printf (out, " %" G_GUINT64_FORMAT "\n", value);
}

/* The settings an alert compares the gauges with */
static void
append_limits (GString    *out,
               RndzServer *server)
{
  append_header (out, "rndz_peers_max", "gauge", "The most peers the server registers (max-peers)");
  g_string_append (out, "rndz_peers_max");
  append_value (out, rndz_server_get_max_peers (server));
  append_header (out, "rndz_relay_sessions_max", "gauge",
                 "The most relay sessions open at once (relay-max-sessions)");
  g_string_append (out, "rndz_relay_sessions_max");
  append_value (out, rndz_server_get_relay_max_sessions (server));
}

/* Statistics the table does not know yet (a newer library): exported
 * under their own names, untyped */
static void
append_unknown (GString  *out,
                GVariant *stats)
{
  const char *statistic;
  GVariantIter iter;
  guint64 value;

  g_variant_iter_init (&iter, stats);
  while (g_variant_iter_next (&iter, "{&st}", &statistic, &value))
    {
      g_autofree char *family = NULL;

      if (metric_for (statistic) != NULL)
        continue;
      family = g_strconcat ("rndz_", statistic, NULL);
      append_header (out, family, "untyped", "A statistic of rndz_server_get_statistics()");
      g_string_append (out, family);
      append_value (out, value);
    }
}

/* A sample line; microseconds go out as seconds, the unit of Prometheus */
static void
append_sample (GString      *out,
               const Metric *metric,
               guint64       value)
{
  char seconds[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append_printf (out, "%s%s", metric->family, metric->suffix);
  if (!g_str_has_suffix (metric->statistic, "_us"))
    {
      append_value (out, value);
      return;
    }
  /* Never the locale's decimal comma */
  g_ascii_formatd (seconds, sizeof seconds, "%.6f", value / 1e6);
  g_string_append_printf (out, " %s\n", seconds);
}

/*
 * rndz_metrics_format:
 *
 * Returns: the statistics of @server in the Prometheus text exposition
 *   format 0.0.4
 */
char *
rndz_metrics_format (RndzServer *server)
{
  g_autoptr(GVariant) stats = rndz_server_get_statistics (server);
  GString *out = g_string_new (NULL);
  const char *previous = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (metrics_table); i++)
    {
      const Metric *metric = &metrics_table[i];
      guint64 value;

      if (!g_variant_lookup (stats, metric->statistic, "t", &value))
        continue;
      if (previous == NULL || !g_str_equal (previous, metric->family))
        append_header (out, metric->family, type_names[metric->type], metric->help);
      previous = metric->family;
      append_sample (out, metric, value);
    }
  append_limits (out, server);
  append_unknown (out, stats);

  return g_string_free (out, FALSE);
}

#if RNDZ_HAVE_METRICS

/* A scraper needs one connection, a few scrapers a few: more are closed
 * when accepted, so that nobody who reaches the port can make the
 * program hold more */
#define MAX_CONNECTIONS 16

/* The connections are accepted here and handed to the SoupServer, not
 * accepted by SoupServer's own listener: the one of libsoup 3.2 (Debian
 * 12) leaks the GSocket of every connection, and this way they can be
 * counted. */
struct _RndzMetrics
{
  const RndzSoupApi *api;
  RndzServer *server;
  SoupServer *soup;
  GSocketService *service;
  GSocketAddress *local_address;
  GHashTable *connections;      /* open ones, not referenced: weak references */
};

static void
metrics_request_cb (SoupServer        *soup,
                    SoupServerMessage *msg,
                    const char        *path,
                    GHashTable        *query,
                    gpointer           user_data)
{
  RndzMetrics *metrics = user_data;
  const RndzSoupApi *api = metrics->api;
  const char *method = api->server_message_get_method (msg);
  SoupMessageHeaders *headers = api->server_message_get_response_headers (msg);
  char *body;

  /* SoupServer keeps no connection alive that it did not accept itself:
   * say so, so that clients do not send a second request into a closed
   * connection */
  api->message_headers_replace (headers, "Connection", "close");

  if (!g_str_equal (path, "/metrics"))
    {
      api->server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
      return;
    }
  /* Not SOUP_METHOD_GET: that macro reads a variable of libsoup's */
  if (!g_str_equal (method, "GET") && !g_str_equal (method, "HEAD"))
    {
      api->message_headers_append (headers, "Allow", "GET, HEAD");
      api->server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
      return;
    }

  body = rndz_metrics_format (metrics->server);
  api->server_message_set_response (msg, CONTENT_TYPE, SOUP_MEMORY_TAKE, body, strlen (body));
  api->server_message_set_status (msg, SOUP_STATUS_OK, NULL);
}

/* A connection is gone: SoupServer dropped it */
static void
connection_gone_cb (gpointer  user_data,
                    GObject  *connection)
{
  RndzMetrics *metrics = user_data;

  g_hash_table_remove (metrics->connections, connection);
}

static gboolean
incoming_cb (GSocketService    *service,
             GSocketConnection *connection,
             GObject           *source,
             gpointer           user_data)
{
  RndzMetrics *metrics = user_data;
  g_autoptr(GSocketAddress) remote = NULL;
  g_autoptr(GError) error = NULL;

  if (g_hash_table_size (metrics->connections) >= MAX_CONNECTIONS)
    {
      g_debug ("Metrics: %u connections open, closing a new one", MAX_CONNECTIONS);
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      return TRUE;
    }

  remote = g_socket_connection_get_remote_address (connection, NULL);
  if (remote == NULL ||
      !metrics->api->server_accept_iostream (metrics->soup, G_IO_STREAM (connection),
                                             metrics->local_address, remote, &error))
    {
      g_debug ("Metrics: cannot serve a connection: %s", error != NULL ? error->message : "no address");
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      return TRUE;
    }

  g_hash_table_add (metrics->connections, connection);
  g_object_weak_ref (G_OBJECT (connection), connection_gone_cb, metrics);
  return TRUE;
}

/*
 * rndz_metrics_new:
 * @address: where to listen, an address of this host (the caller chose
 *   it: nothing listens on a wildcard address unless asked to)
 *
 * Serves the metrics of @server, on the thread-default main context,
 * until rndz_metrics_free().
 */
RndzMetrics *
rndz_metrics_new (RndzServer      *server,
                  GSocketAddress  *address,
                  GError         **error)
{
  const RndzSoupApi *api = rndz_soup_api (error);
  g_autoptr(RndzMetrics) metrics = NULL;

  if (api == NULL)
    return NULL;

  metrics = g_new0 (RndzMetrics, 1);
  metrics->api = api;
  metrics->server = g_object_ref (server);
  metrics->connections = g_hash_table_new (NULL, NULL);
  metrics->soup = api->server_new ("server-header", "rndz", NULL);
  api->server_add_handler (metrics->soup, NULL, metrics_request_cb, metrics, NULL);

  metrics->service = g_socket_service_new ();
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (metrics->service), address,
                                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
                                      &metrics->local_address, error))
    return NULL;
  g_signal_connect (metrics->service, "incoming", G_CALLBACK (incoming_cb), metrics);
  g_socket_service_start (metrics->service);

  return g_steal_pointer (&metrics);
}

void
rndz_metrics_free (RndzMetrics *metrics)
{
  GHashTableIter iter;
  gpointer connection;

  if (metrics->service != NULL)
    {
      g_signal_handlers_disconnect_by_data (metrics->service, metrics);
      g_socket_service_stop (metrics->service);
      g_socket_listener_close (G_SOCKET_LISTENER (metrics->service));
      g_object_unref (metrics->service);
    }
  g_hash_table_iter_init (&iter, metrics->connections);
  while (g_hash_table_iter_next (&iter, &connection, NULL))
    g_object_weak_unref (connection, connection_gone_cb, metrics);
  g_hash_table_unref (metrics->connections);
  metrics->api->server_disconnect (metrics->soup);
  g_object_unref (metrics->soup);
  g_clear_object (&metrics->local_address);
  g_object_unref (metrics->server);
  g_free (metrics);
}

/* Where it listens, with the port the system chose for port 0 */
GSocketAddress *
rndz_metrics_get_local_address (RndzMetrics *metrics)
{
  return g_object_ref (metrics->local_address);
}

#else /* !RNDZ_HAVE_METRICS */

struct _RndzMetrics
{
  int unused;
};

RndzMetrics *
rndz_metrics_new (RndzServer      *server,
                  GSocketAddress  *address,
                  GError         **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       _("Metrics are not built in: this rndz was built without libsoup 3 (meson option “metrics”)"));
  return NULL;
}

void
rndz_metrics_free (RndzMetrics *metrics)
{
  g_free (metrics);
}

GSocketAddress *
rndz_metrics_get_local_address (RndzMetrics *metrics)
{
  return NULL;
}

#endif
