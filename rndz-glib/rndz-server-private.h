/* rndz-server-private.h: RndzServer internals for tests, fuzzers and tools
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-server.h"
#include "rndz-addr-private.h"
#include "rndz-server-types-private.h"

G_BEGIN_DECLS

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
