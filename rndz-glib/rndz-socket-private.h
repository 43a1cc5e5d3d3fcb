/* rndz-socket-private.h: how the library makes its sockets, and what it
 * records on them
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#ifdef __linux__
#include <netinet/tcp.h>
/* Linux 6.15: the longest RTO of a socket, 1 s at the least; older C
 * libraries do not name it (the kernel then refuses the option) */
#ifndef TCP_RTO_MAX_MS
#define TCP_RTO_MAX_MS 44
#endif
#endif

#include "rndz-socket.h"
#include "rndz-message-private.h"

G_BEGIN_DECLS

void     rndz_socket_set_path         (GSocket         *socket,
                                       RndzPath         path);

GSocket *rndz_socket_new_bound        (GSocketAddress  *local,
                                       GSocketType      type,
                                       GError         **error);
void     rndz_socket_set_nodelay      (GSocket         *socket);
/* A link to a server sends a lost frame again at least this often */
#define RNDZ_LINK_RTO_MAX_MS 1000
void     rndz_socket_limit_tcp_backoff (GSocket        *socket,
                                        guint           give_up_ms);
GSocket *rndz_socket_new_for_family   (GSocketFamily    family,
                                       GSocketType      type,
                                       GError         **error);

G_END_DECLS
