/* rndz-listener-mapped.c: what comes to a UDP listener through its router's port mapping
 *
 * SPDX-License-Identifier: MIT
 *
 * The router maps a public port to one of ours (rndz-portmap.c), which
 * the listener offers as a candidate. A requester behind a NAT that gives
 * each destination a port of its own sends its checks there from a port
 * nobody has seen: not the one the server saw. On P, such a check would
 * reach U, the application's socket, whose filter drops it (the kernel
 * gives the connected check sockets only what comes from their address).
 * So the router maps another port, M, held by a socket of ours that
 * the application never reads: a check on M from a host that asked the
 * server for us recently opens a check socket on M connected to where it
 * came from (rndz_listener_check_mapped()), and the path proceeds from
 * there as one on P does. Its answers leave from M, so through the
 * router's mapping, which is the address the requester checked.
 */

#include "config.h"

#include "rndz-listener-internal.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"
#include "rndz-udp-private.h"

/* The requester @from's host asked for us recently, as @check's id */
static const char *
find_requester (RndzListener      *listener,
                const RndzAddr    *from,
                const RndzMessage *check)
{
  for (guint i = 0; i < RECENT_REQUESTS; i++)
    if (listener->recent[i].peer_id[0] != '\0' && !listener->recent[i].refused &&
        g_str_equal (listener->recent[i].peer_id, check->id) &&
        rndz_addr_same_host (&listener->recent[i].addr, from))
      return listener->recent[i].peer_id;

  return NULL;
}

static gboolean
mapped_handle (GSocket           *socket,
               const RndzAddr    *from,
               const RndzMessage *msg,
               gpointer           user_data)
{
  RndzListener *listener = user_data;
  const char *peer_id;
  char peer_id_copy[RNDZ_ID_MAX_LEN + 1];

  if (msg->type != RNDZ_MESSAGE_CHECK || !g_str_equal (msg->target, listener->peer->id))
    return TRUE;

  peer_id = find_requester (listener, from, msg);
  if (peer_id == NULL)
    return TRUE;

  g_strlcpy (peer_id_copy, peer_id, sizeof peer_id_copy);
  rndz_listener_check_mapped (listener, listener->mapped_port, peer_id_copy, from, msg);
  return !listener->stopped;
}

static gboolean
mapped_read_cb (GSocket      *socket,
                GIOCondition  condition,
                gpointer      user_data)
{
  RndzListener *listener = user_data;
  g_autoptr(RndzListener) self G_GNUC_UNUSED = listener_ref (listener);
  g_autoptr(GError) error = NULL;

  if (rndz_udp_read_messages (socket, TRUE, mapped_handle, listener, &error) ||
      listener->stopped)
    return G_SOURCE_CONTINUE;

  /* Not connected: an ICMP error does not come here */
  if (error != NULL)
    g_debug ("The mapped socket failed: %s", error->message);
  return G_SOURCE_CONTINUE;
}

/*
 * rndz_listener_mapped_open:
 * @port: (out): M, the port for the router to map
 *
 * Opens the socket on M: with address and port reuse, like P's, so that
 * check sockets can share M.
 */
gboolean
rndz_listener_mapped_open (RndzListener  *listener,
                           guint16       *port,
                           GError       **error)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GInetAddress) any = NULL;
  GInetAddress *inet;

  if (listener->peer->local_address != NULL)
    inet = g_inet_socket_address_get_address (listener->peer->local_address);
  else
    inet = any = g_inet_address_new_any (listener->family);

  /* Port 0 even when the client's local address names one: that is P */
  local = g_inet_socket_address_new (inet, 0);
  listener->mapped_socket = rndz_socket_new_bound (local, G_SOCKET_TYPE_DATAGRAM, error);
  if (listener->mapped_socket == NULL)
    return FALSE;

  bound = g_socket_get_local_address (listener->mapped_socket, error);
  if (bound == NULL)
    {
      rndz_listener_mapped_close (listener);
      return FALSE;
    }

  *port = listener->mapped_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  listener->mapped_source = rndz_socket_source_add (listener->mapped_socket, listener->context,
                                                   mapped_read_cb, listener,
                                                   "[rndz] listener mapped port");
  return TRUE;
}

void
rndz_listener_mapped_close (RndzListener *listener)
{
  rndz_source_clear (&listener->mapped_source);
  if (listener->mapped_socket != NULL)
    g_socket_close (listener->mapped_socket, NULL);
  g_clear_object (&listener->mapped_socket);
}
