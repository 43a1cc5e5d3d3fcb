/* rndz-server-stats.c: what RndzServer counts, for operators
 *
 * SPDX-License-Identifier: MIT
 *
 * Reads the statistics that the parts of the server count into
 * (rndz-server-types-private.h) and the sizes of their tables; changes
 * nothing. Shares rndz-server-object-private.h with rndz-server.c.
 */

#include "config.h"

#include "rndz-server-object-private.h"

static void
add (GVariantBuilder *builder,
     const char      *name,
     guint64          value)
{
  g_variant_builder_add (builder, "{st}", name, value);
}

/**
 * rndz_server_get_statistics:
 * @server: a #RndzServer
 *
 * Gets what the server counts, for monitoring: a dictionary (`a{st}`)
 * from a name to a number. The names are stable (new ones may be added,
 * none is renamed), in lower case with underscores, ready to be metric
 * names.
 *
 * Counters count since the server was created; they never decrease, and
 * go on across [method@Rndz.Server.stop] and a new
 * [method@Rndz.Server.listen]:
 *
 * - `messages`: valid messages handled
 * - `malformed`: datagrams dropped and connections closed for bad input
 * - `rate_limited`: requests refused or left unanswered by the rate
 *   limits, and requests refused because the table of pending requests
 *   was full
 * - `amplification`: replies not sent because they would have been
 *   larger than the datagram that asked for them
 * - `auth_failed`: messages dropped because their authentication failed
 * - `forwarded`: connection requests passed on to their target (`fsync`
 *   sent, retransmissions included)
 * - `forwarded_across`: requests sent to another node of the cluster
 *   (retransmissions included)
 * - `redirected`: rendezvous completed (`redirect` sent to a requester)
 * - `not_found`: `peer-not-found` answers: the requested peer is not
 *   registered (here, or anywhere in the cluster)
 * - `no_answer`: `peer-no-answer` answers: the target did not answer
 *   within [property@Rndz.Server:forward-timeout]
 * - `unavailable`: requests that failed because the cluster's Redis or
 *   the node holding the target could not be reached
 * - `answers_across`: answers received from another node of the cluster
 *   to requests sent there
 * - `answers_across_us`: the sum, in microseconds, of the time from
 *   sending each of those requests across to its answer (the other
 *   node's round trip to its peer included)
 * - `evicted`: silent TCP connections closed to make room
 * - `refused_connections`: TCP connections refused at
 *   [property@Rndz.Server:max-connections]
 * - `relay_sessions`: relay sessions opened
 * - `relay_bytes`: bytes relayed, both directions
 * - `relay_dropped`: datagrams dropped and connections closed by the
 *   relay port for bad input or over its limits
 *
 * Requests are counted at the node that answers the requester: in a
 * cluster, the sums over the nodes count each request once.
 *
 * Gauges say how things are now:
 *
 * - `peers_udp`, `peers_tcp`: peers registered over UDP and over TCP
 * - `relay_sessions_open`: relay sessions open (at most
 *   [property@Rndz.Server:relay-max-sessions])
 * - `cluster_connected`: 1 if the server is in a cluster and reaches its
 *   Redis, else 0 (see [property@Rndz.Server:cluster-connected])
 *
 * In Python, `server.get_statistics().unpack()` is a `dict`; in GJS,
 * `server.get_statistics().deepUnpack()` an object.
 *
 * Returns: (transfer full): the statistics, a `a{st}` dictionary
 *
 * Since: 1.0
 */
GVariant *
rndz_server_get_statistics (RndzServer *server)
{
  const RndzServerStats *stats;
  GVariantBuilder builder;

  g_return_val_if_fail (RNDZ_IS_SERVER (server), NULL);

  stats = &server->stats;
  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{st}"));
  add (&builder, "peers_udp", rndz_registry_count_transport (server->registry, RNDZ_TRANSPORT_UDP));
  add (&builder, "peers_tcp", rndz_registry_count_transport (server->registry, RNDZ_TRANSPORT_TCP));
  add (&builder, "relay_sessions_open", rndz_server_get_relay_session_count (server));
  add (&builder, "cluster_connected", rndz_server_get_cluster_connected (server) ? 1 : 0);
  add (&builder, "messages", stats->messages);
  add (&builder, "malformed", stats->malformed);
  add (&builder, "rate_limited", stats->rate_limited);
  add (&builder, "amplification", stats->amplification);
  add (&builder, "auth_failed", stats->auth_failed);
  add (&builder, "forwarded", stats->forwarded);
  add (&builder, "forwarded_across", stats->forwarded_across);
  add (&builder, "redirected", stats->redirected);
  add (&builder, "not_found", stats->not_found);
  add (&builder, "no_answer", stats->no_answer);
  add (&builder, "unavailable", stats->unavailable);
  add (&builder, "answers_across", stats->answers_across);
  add (&builder, "answers_across_us", stats->answers_across_us);
  add (&builder, "evicted", stats->evicted);
  add (&builder, "refused_connections", stats->refused_connections);
  add (&builder, "relay_sessions", stats->relay_sessions);
  add (&builder, "relay_bytes", stats->relay_bytes);
  add (&builder, "relay_dropped", stats->relay_dropped);

  return g_variant_ref_sink (g_variant_builder_end (&builder));
}
