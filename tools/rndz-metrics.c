/* rndz-metrics.c: `rndz server --metrics-addr`, Prometheus metrics over HTTP
 *
 * SPDX-License-Identifier: MIT
 *
 * Serves rndz_server_get_statistics() at http://ADDRESS:PORT/metrics in
 * the Prometheus text exposition format, version 0.0.4, through a
 * SoupServer on the thread-default main context, the server's. Every
 * other path is 404. The library does not depend on libsoup: only this
 * program does, and only when built with it (meson option "metrics");
 * without it, rndz_metrics_new() says so. doc/metrics.md lists the
 * metrics and what to alert on.
 */

#include <string.h>

#include <glib/gi18n.h>

#if RNDZ_HAVE_METRICS
#include <libsoup/soup.h>
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

struct _RndzMetrics
{
  RndzServer *server;
  SoupServer *soup;
};

static void
metrics_request_cb (SoupServer        *soup,
                    SoupServerMessage *msg,
                    const char        *path,
                    GHashTable        *query,
                    gpointer           user_data)
{
  RndzMetrics *metrics = user_data;
  const char *method = soup_server_message_get_method (msg);
  char *body;

  if (!g_str_equal (path, "/metrics"))
    {
      soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
      return;
    }
  if (!g_str_equal (method, SOUP_METHOD_GET) && !g_str_equal (method, SOUP_METHOD_HEAD))
    {
      soup_message_headers_append (soup_server_message_get_response_headers (msg), "Allow",
                                   "GET, HEAD");
      soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
      return;
    }

  body = rndz_metrics_format (metrics->server);
  soup_server_message_set_response (msg, CONTENT_TYPE, SOUP_MEMORY_TAKE, body, strlen (body));
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
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
  g_autoptr(RndzMetrics) metrics = g_new0 (RndzMetrics, 1);

  metrics->server = g_object_ref (server);
  metrics->soup = soup_server_new ("server-header", "rndz", NULL);
  soup_server_add_handler (metrics->soup, NULL, metrics_request_cb, metrics, NULL);
  if (!soup_server_listen (metrics->soup, address, 0, error))
    return NULL;

  return g_steal_pointer (&metrics);
}

void
rndz_metrics_free (RndzMetrics *metrics)
{
  soup_server_disconnect (metrics->soup);
  g_object_unref (metrics->soup);
  g_object_unref (metrics->server);
  g_free (metrics);
}

/* Where it listens, with the port the system chose for port 0 */
GSocketAddress *
rndz_metrics_get_local_address (RndzMetrics *metrics)
{
  g_autoptr(GSList) listeners = soup_server_get_listeners (metrics->soup);

  g_return_val_if_fail (listeners != NULL, NULL);
  return g_socket_get_local_address (listeners->data, NULL);
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
