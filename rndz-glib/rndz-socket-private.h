/* rndz-socket-private.h: what the library records on its sockets
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-socket.h"

G_BEGIN_DECLS

void rndz_socket_set_path (GSocket  *socket,
                           RndzPath  path);

G_END_DECLS
