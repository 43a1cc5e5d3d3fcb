/* rndz-socket.c: socket helpers for bindings
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-socket.h"

/**
 * rndz_socket_receive_bytes:
 * @socket: a #GSocket, such as the one rndz_client_listen_udp() or
 *   rndz_client_connect_udp() returns
 * @max_size: the largest datagram to read, in bytes; longer ones are
 *   truncated
 * @address: (out) (optional) (transfer full) (nullable): return location for
 *   the sender's address
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Receives one datagram, as g_socket_receive_from() does, but returns it
 * as a #GBytes. With GLib 2.74, Python and JavaScript cannot read into
 * the buffer g_socket_receive_from() takes; this is what they call
 * instead (GLib 2.80 has g_socket_receive_bytes_from()).
 *
 * On a non-blocking socket with nothing to read it fails with
 * %G_IO_ERROR_WOULD_BLOCK: wait with g_socket_create_source() or
 * g_socket_condition_timed_wait() first.
 *
 * Returns: (transfer full): the datagram, or %NULL on error
 *
 * Since: 1.0
 */
GBytes *
rndz_socket_receive_bytes (GSocket         *socket,
                           gsize            max_size,
                           GSocketAddress **address,
                           GCancellable    *cancellable,
                           GError         **error)
{
  g_autofree guint8 *buf = NULL;
  gssize n;

  g_return_val_if_fail (G_IS_SOCKET (socket), NULL);
  g_return_val_if_fail (max_size > 0 && max_size <= G_MAXSSIZE, NULL);
  g_return_val_if_fail (address == NULL || *address == NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  buf = g_malloc (max_size);
  n = g_socket_receive_from (socket, address, (char *) buf, max_size, cancellable, error);
  if (n < 0)
    return NULL;

  buf = g_realloc (buf, MAX (n, 1));
  return g_bytes_new_take (g_steal_pointer (&buf), n);
}
