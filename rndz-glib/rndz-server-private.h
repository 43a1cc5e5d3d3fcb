/* rndz-server-private.h: RndzServer internals for tests, fuzzers and tools
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-server.h"
#include "rndz-addr-private.h"

G_BEGIN_DECLS

typedef struct
{
  guint64 messages;            /* valid messages handled */
  guint64 malformed;           /* bad datagrams dropped, connections closed for bad input */
  guint64 rate_limited;        /* requests refused by the rate limits */
  guint64 amplification;       /* replies not sent: larger than their request */
  guint64 forwarded;           /* fsyncs sent */
  guint64 redirected;          /* rendezvous completed */
  guint64 evicted;             /* silent connections closed to make room */
  guint64 refused_connections; /* connections refused at the limit */
  guint64 auth_failed;         /* messages dropped for failed authentication */
  guint64 relay_sessions;      /* relay sessions opened */
  guint64 relay_bytes;         /* bytes relayed, both directions */
  guint64 relay_dropped;       /* relay port: datagrams dropped, connections closed for bad input */
} RndzServerStats;

typedef void (*RndzServerSendFunc) (const RndzAddr *to,
                                    const char     *data,
                                    gsize           len,
                                    gpointer        user_data);

void     rndz_server_get_stats          (RndzServer         *server,
                                         RndzServerStats    *stats);
void     rndz_server_set_udp_sender     (RndzServer         *server,
                                         RndzServerSendFunc  func,
                                         gpointer            user_data);
void     rndz_server_receive_datagram   (RndzServer         *server,
                                         const RndzAddr     *from,
                                         const char         *data,
                                         gsize               len);
void     rndz_server_add_connection     (RndzServer         *server,
                                         GSocket            *socket,
                                         const RndzAddr     *remote);
guint    rndz_server_get_relay_session_count (RndzServer    *server);
/* Tests: how long a relay session waits to be joined; 0 for the default */
void     rndz_server_set_relay_join_timeout  (RndzServer    *server,
                                              guint          ms);

G_END_DECLS
