/* rndz-socket.c: socket helpers for bindings
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-socket-private.h"

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

static GQuark
path_quark (void)
{
  static GQuark quark;

  if (G_UNLIKELY (quark == 0))
    quark = g_quark_from_static_string ("rndz-path");
  return quark;
}

/*
 * rndz_socket_set_path:
 *
 * Records how @socket reaches its peer, for rndz_socket_get_path().
 */
void
rndz_socket_set_path (GSocket  *socket,
                      RndzPath  path)
{
  g_object_set_qdata (G_OBJECT (socket), path_quark (), GUINT_TO_POINTER (path));
}

/**
 * rndz_socket_get_path:
 * @socket: a #GSocket
 *
 * Tells how a socket that [class@Rndz.Client] made reaches its peer:
 * directly, over a shared local network, or through the server's relay.
 * For a #GSocketConnection, pass g_socket_connection_get_socket().
 *
 * The sockets of [method@Rndz.Client.connect_udp],
 * [method@Rndz.Client.connect_tcp], [method@Rndz.Client.accept] and of the
 * [signal@Rndz.Client::peer-socket] signal know their path; any other
 * socket, the listening one of [method@Rndz.Client.listen_udp] included,
 * is %RNDZ_PATH_UNKNOWN.
 *
 * Returns: the path
 *
 * Since: 1.0
 */
RndzPath
rndz_socket_get_path (GSocket *socket)
{
  g_return_val_if_fail (G_IS_SOCKET (socket), RNDZ_PATH_UNKNOWN);

  return GPOINTER_TO_UINT (g_object_get_qdata (G_OBJECT (socket), path_quark ()));
}
