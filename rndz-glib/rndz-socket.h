/* rndz-socket.h: socket helpers for bindings
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(__RNDZ_H_INSIDE__) && !defined(RNDZ_COMPILATION)
#error "Only <rndz-glib/rndz.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rndz-glib/rndz-types.h>

G_BEGIN_DECLS

RNDZ_AVAILABLE_IN_1_0
GBytes *rndz_socket_receive_bytes (GSocket         *socket,
                                   gsize            max_size,
                                   GSocketAddress **address,
                                   GCancellable    *cancellable,
                                   GError         **error);

RNDZ_AVAILABLE_IN_1_0
RndzPath rndz_socket_get_path      (GSocket         *socket);

G_END_DECLS
