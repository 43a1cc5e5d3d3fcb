/* rndz-socket-private.h: how the library makes its sockets, and what it
 * records on them
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-socket.h"
#include "rndz-message-private.h"

G_BEGIN_DECLS

void     rndz_socket_set_path         (GSocket         *socket,
                                       RndzPath         path);

GSocket *rndz_socket_new_bound        (GSocketAddress  *local,
                                       GSocketType      type,
                                       GError         **error);
void     rndz_socket_set_nodelay      (GSocket         *socket);
GSocket *rndz_socket_new_for_family   (GSocketFamily    family,
                                       GSocketType      type,
                                       GError         **error);

G_END_DECLS
