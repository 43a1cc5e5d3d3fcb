/* rndz-server-types-private.h: what every part of RndzServer shares
 *
 * SPDX-License-Identifier: MIT
 *
 * Plain data only: the parts of the server (rndz-server-io.c,
 * rndz-registry.c, rndz-forward.c, rndz-server-auth.c) read the settings
 * and count into the statistics that rndz-server.c owns, and call nothing
 * of it.
 */

#pragma once

#include <glib.h>

#include "rndz-addr-private.h"

G_BEGIN_DECLS

typedef struct
{
  guint64 messages;            /* valid messages handled */
  guint64 malformed;           /* bad datagrams dropped, connections closed for bad input */
  guint64 rate_limited;        /* requests refused by the rate limits */
  guint64 amplification;       /* replies not sent: larger than their request */
  guint64 forwarded;           /* fsyncs sent */
  guint64 forwarded_across;    /* requests sent to another node of the cluster */
  guint64 redirected;          /* rendezvous completed */
  guint64 evicted;             /* silent connections closed to make room */
  guint64 refused_connections; /* connections refused at the limit */
  guint64 auth_failed;         /* messages dropped for failed authentication */
  guint64 relay_sessions;      /* relay sessions opened */
  guint64 relay_bytes;         /* bytes relayed, both directions */
  guint64 relay_dropped;       /* relay port: datagrams dropped, connections closed for bad input */
  /* Answers to requesters, counted at the requester's node only */
  guint64 not_found;           /* peer-not-found answers */
  guint64 no_answer;           /* peer-no-answer answers */
  guint64 unavailable;         /* cluster-unavailable answers */
  /* The origin node: answers received from the target's node, and the
   * microseconds from sending each request across to its answer */
  guint64 answers_across;
  guint64 answers_across_us;
} RndzServerStats;

/* The properties of RndzServer that its parts read when they need them:
 * a change applies at the next use */
typedef struct
{
  guint peer_timeout_ms;
  guint forward_timeout_ms;
  guint register_timeout_ms;
  guint max_peers;
  guint max_peers_per_address; /* an IPv4 address, an IPv6 /64 */
  guint max_peers_per_network; /* an IPv4 /16, an IPv6 /48 */
  guint max_connections;
  guint max_message_size;
} RndzServerConfig;

/* Buckets of each of the server's rate limits (rndz-ratelimit.c) */
#define RNDZ_SERVER_RATE_LIMIT_BUCKETS 4096

typedef void (*RndzServerSendFunc) (const RndzAddr *to,
                                    const char     *data,
                                    gsize           len,
                                    gpointer        user_data);

G_END_DECLS
