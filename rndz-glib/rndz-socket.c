/* rndz-socket.c: the library's sockets: how it makes them, what it
 * records on them, and reading them from bindings
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "rndz-socket-private.h"
#include "rndz-i18n-private.h"

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

/* Sockets the library makes */

/*
 * rndz_socket_new_for_family:
 *
 * A non-blocking socket with SO_REUSEADDR and SO_REUSEPORT set: the
 * rendezvous works only if a peer talks to the server and to its peers
 * from the same local port, from several sockets at once.
 */
GSocket *
rndz_socket_new_for_family (GSocketFamily   family,
                            GSocketType     type,
                            GError        **error)
{
  g_autoptr(GSocket) socket = NULL;
  GSocketProtocol protocol = type == G_SOCKET_TYPE_STREAM ?
    G_SOCKET_PROTOCOL_TCP : G_SOCKET_PROTOCOL_UDP;

  socket = g_socket_new (family, type, protocol, error);
  if (socket == NULL)
    return NULL;

  g_socket_set_blocking (socket, FALSE);
  if (!g_socket_set_option (socket, SOL_SOCKET, SO_REUSEADDR, 1, error) ||
      !g_socket_set_option (socket, SOL_SOCKET, SO_REUSEPORT, 1, error))
    return NULL;

  return g_steal_pointer (&socket);
}

/* A port no socket uses, for @type on @local's address. A socket with
 * SO_REUSEADDR or SO_REUSEPORT bound to port 0 may be given a port that
 * another such socket of ours, or of any program of the same user,
 * already has (measured: 153 of 3000 UDP sockets on this kernel), and
 * the two then share each other's datagrams. A socket without them is
 * given a port nobody has. Returns 0 on failure. */
static guint16
socket_free_port (GSocketAddress *local,
                  GSocketType     type)
{
  GInetAddress *inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (local));
  g_autoptr(GSocketAddress) any_port = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GSocket) probe = NULL;

  probe = g_socket_new (g_inet_address_get_family (inet), type,
                        type == G_SOCKET_TYPE_STREAM ? G_SOCKET_PROTOCOL_TCP : G_SOCKET_PROTOCOL_UDP,
                        NULL);
  if (probe == NULL || !g_socket_bind (probe, any_port, FALSE, NULL) ||
      (bound = g_socket_get_local_address (probe, NULL)) == NULL)
    return 0;

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
}

static gboolean
socket_bind (GSocket         *socket,
             GSocketAddress  *local,
             GError         **error)
{
  struct sockaddr_storage ss;
  gssize len;

  /* Not g_socket_bind(): it turns SO_REUSEPORT off for TCP sockets, and
   * a TCP peer needs its listening socket and its connections on one
   * port. */
  len = g_socket_address_get_native_size (local);
  if (len < 0 || !g_socket_address_to_native (local, &ss, sizeof ss, error))
    return FALSE;

  if (bind (g_socket_get_fd (socket), (struct sockaddr *) &ss, len) < 0)
    {
      int errsv = errno;
      g_autofree char *text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (local));

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Error binding to address %s: %s"), text, g_strerror (errsv));
      return FALSE;
    }

  return TRUE;
}

/*
 * rndz_socket_new_bound:
 *
 * A non-blocking socket with SO_REUSEADDR and SO_REUSEPORT bound to
 * @local. To port 0, it gets a port no other socket has (see
 * socket_free_port()), so that the sockets that share it later are ours
 * only.
 */
GSocket *
rndz_socket_new_bound (GSocketAddress  *local,
                       GSocketType      type,
                       GError         **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) chosen = NULL;
  guint16 port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));

  socket = rndz_socket_new_for_family (g_socket_address_get_family (local), type, error);
  if (socket == NULL)
    return NULL;

  if (port == 0)
    {
      /* The port was free a moment ago; between the probe and the bind
       * another program may take it, so a few tries */
      for (guint i = 0; i < 3 && chosen == NULL; i++)
        {
          g_autoptr(GSocketAddress) candidate = NULL;
          guint16 free_port = socket_free_port (local, type);

          if (free_port == 0)
            break;
          candidate = g_inet_socket_address_new (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (local)),
                                                 free_port);
          if (socket_bind (socket, candidate, NULL))
            chosen = g_steal_pointer (&candidate);
        }
      if (chosen != NULL)
        return g_steal_pointer (&socket);
    }

  if (!socket_bind (socket, local, error))
    return NULL;

  return g_steal_pointer (&socket);
}

void
rndz_socket_set_nodelay (GSocket *socket)
{
  /* Frames are written whole; without this, Nagle and delayed ACKs add
   * tens of milliseconds to every exchange. */
  g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
}

/*
 * rndz_socket_limit_tcp_backoff:
 * @socket: a TCP socket between a peer and a server
 * @give_up_ms: how long its owner waits for an answer before it gives
 *   the connection up on its own
 *
 * A frame lost several times in a row on an established connection goes
 * again after about 0.2, 0.4, 0.8 and 1.6 s: four losses hold it back
 * 3 s, a rendezvous's whole direct timeout. The links between peers and
 * servers carry a rendezvous's request, its forward, the answer and the
 * redirect: where the kernel lets a socket cap its RTO (Linux 6.15,
 * TCP_RTO_MAX_MS), they go again at least every second (2.4 s for four
 * losses). The kernel then counts its retries (tcp_retries2) at that
 * pace and would give the connection up after some 13 s of outage:
 * TCP_USER_TIMEOUT keeps it until its owner would give it up anyway.
 * Elsewhere nothing changes.
 */
void
rndz_socket_limit_tcp_backoff (GSocket *socket,
                               guint    give_up_ms)
{
#ifdef __linux__
  if (g_socket_set_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, RNDZ_LINK_RTO_MAX_MS, NULL))
    g_socket_set_option (socket, IPPROTO_TCP, TCP_USER_TIMEOUT, MIN (give_up_ms, G_MAXINT), NULL);
#endif
}
