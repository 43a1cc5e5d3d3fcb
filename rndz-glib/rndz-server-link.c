/* rndz-server-link.c: a client's connection to one server
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rndz-server-link-private.h"
#include "rndz-channel-private.h"
#include "rndz-connect-attempt-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"
#include "rndz-i18n-private.h"
#include "rndz-udp-private.h"

struct _RndzServerLink
{
  RndzPeerContext *peer;
  RndzTransport transport;
  GSocketFamily family;
  RndzAddr server;
  RndzServerLinkFunc func;
  gpointer user_data;
  gboolean freed;               /* by its owner; the memory goes with the last reference */

  GSocket *socket;              /* UDP: connected to the server */
  GSource *source;
  GSocket *connecting;          /* TCP, until connected */
  RndzConnectAttempt *attempt;
  GSource *redial;              /* TCP: the SYN again, from a new socket */
  guint redial_ms;
  RndzChannel *channel;         /* TCP, connected */
};

static RndzServerLink *
link_ref (RndzServerLink *link)
{
  return g_rc_box_acquire (link);
}

static void
link_clear (RndzServerLink *link)
{
  rndz_server_link_close (link);
  rndz_peer_context_unref (link->peer);
}

static void
link_unref (RndzServerLink *link)
{
  g_rc_box_release_full (link, (GDestroyNotify) link_clear);
}

RndzServerLink *
rndz_server_link_new (RndzPeerContext    *peer,
                      RndzTransport       transport,
                      GSocketFamily       family,
                      const RndzAddr     *server,
                      RndzServerLinkFunc  func,
                      gpointer            user_data)
{
  RndzServerLink *link = g_rc_box_new0 (RndzServerLink);

  link->peer = rndz_peer_context_ref (peer);
  link->transport = transport;
  link->family = family;
  link->server = *server;
  link->func = func;
  link->user_data = user_data;
  return link;
}

/* Closes the sockets; the link can be opened again */
void
rndz_server_link_close (RndzServerLink *link)
{
  rndz_source_clear (&link->source);
  if (link->socket != NULL)
    g_socket_close (link->socket, NULL);
  g_clear_object (&link->socket);
  g_clear_pointer (&link->attempt, rndz_connect_attempt_free);
  rndz_source_clear (&link->redial);
  if (link->connecting != NULL)
    g_socket_close (link->connecting, NULL);
  g_clear_object (&link->connecting);
  if (link->channel != NULL)
    rndz_channel_close (link->channel);
  g_clear_pointer (&link->channel, rndz_channel_unref);
}

/* Closes the link, over TCP without the goodbye. A connection we give
 * up on because it no longer answers (its path went with the network,
 * or the server went quiet) cannot say it: its FIN would be resent for
 * minutes, and until then, or through TIME_WAIT after, the kernel keeps
 * the tuple (our address, P, the server), from which we connect again:
 * connect() fails with EADDRNOTAVAIL. With SO_LINGER 0, close() sends a
 * RST and forgets the connection at once. */
void
rndz_server_link_abort (RndzServerLink *link)
{
  if (link->channel != NULL)
    {
      struct linger linger = { .l_onoff = 1, .l_linger = 0 };
      GSocket *socket = rndz_channel_get_socket (link->channel);

      if (setsockopt (g_socket_get_fd (socket), SOL_SOCKET, SO_LINGER,
                      &linger, sizeof linger) < 0)
        g_debug ("Cannot reset the connection to the server: %s", g_strerror (errno));
    }
  rndz_server_link_close (link);
}

/*
 * rndz_server_link_address_gone:
 *
 * Over TCP: whether the connection's own address is no longer one of
 * ours, because it went with the network. Such a connection never
 * answers again. Binding a socket to the address tells: EADDRNOTAVAIL.
 */
gboolean
rndz_server_link_address_gone (RndzServerLink *link)
{
  g_autoptr(GSocketAddress) local = NULL;
  struct sockaddr_storage native;
  gboolean gone;
  int fd;

  if (link->channel == NULL)
    return FALSE;
  local = g_socket_get_local_address (rndz_channel_get_socket (link->channel), NULL);
  if (local == NULL || !g_socket_address_to_native (local, &native, sizeof native, NULL))
    return FALSE;

  /* Any port: ours is taken, by the connection itself */
  if (native.ss_family == AF_INET)
    ((struct sockaddr_in *) &native)->sin_port = 0;
  else
    ((struct sockaddr_in6 *) &native)->sin6_port = 0;

  fd = socket (native.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return FALSE;
  gone = bind (fd, (struct sockaddr *) &native, g_socket_address_get_native_size (local)) < 0 &&
    errno == EADDRNOTAVAIL;
  close (fd);
  return gone;
}

/* Safe from within the link's own callback */
void
rndz_server_link_free (RndzServerLink *link)
{
  link->freed = TRUE;
  rndz_server_link_close (link);
  link_unref (link);
}

static void
link_emit (RndzServerLink      *link,
           RndzServerLinkEvent  event,
           const RndzMessage   *msg,
           const GError        *error)
{
  link->func (link, event, msg, error, link->user_data);
}

/* UDP */

static gboolean
link_udp_read_one (GSocket           *socket,
                   const RndzAddr    *from,
                   const RndzMessage *msg,
                   gpointer           user_data)
{
  RndzServerLink *link = user_data;

  link_emit (link, RNDZ_SERVER_LINK_MESSAGE, msg, NULL);
  return !link->freed && link->socket != NULL;
}

static gboolean
link_udp_read_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  RndzServerLink *link = link_ref (user_data);
  g_autoptr(GError) error = NULL;

  /* An ICMP error for an earlier datagram: nobody serves there */
  if (!rndz_udp_read_messages (socket, FALSE, link_udp_read_one, link, &error) &&
      error != NULL && !link->freed)
    link_emit (link, RNDZ_SERVER_LINK_FAILED, NULL, error);

  link_unref (link);
  return G_SOURCE_CONTINUE;
}

static gboolean
link_udp_open (RndzServerLink  *link,
               guint16          port,
               GError         **error)
{
  g_autoptr(GSocketAddress) address = NULL;

  address = rndz_addr_to_socket_address (&link->server, link->family);
  if (address == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("The server’s address family cannot be reached from the local address"));
      return FALSE;
    }

  link->socket = rndz_peer_context_bind (link->peer, link->family, G_SOCKET_TYPE_DATAGRAM,
                                         port, error);
  if (link->socket == NULL || !g_socket_connect (link->socket, address, NULL, error))
    {
      rndz_server_link_close (link);
      return FALSE;
    }

  link->source = rndz_socket_source_add (link->socket, link->peer->context, link_udp_read_cb,
                                         link, "[rndz] server link UDP");
  return TRUE;
}

/* TCP */

static void
link_tcp_message_cb (RndzChannel       *channel,
                     const RndzMessage *msg,
                     const GError      *error,
                     gpointer           user_data)
{
  RndzServerLink *link = user_data;

  if (msg != NULL)
    {
      link_emit (link, RNDZ_SERVER_LINK_MESSAGE, msg, NULL);
      return;
    }

  /* No more callbacks come from the channel */
  g_clear_pointer (&link->channel, rndz_channel_unref);
  link_emit (link, RNDZ_SERVER_LINK_FAILED, NULL, error);
}

static void
link_tcp_connected_cb (GSocket      *socket,
                       const GError *error,
                       gpointer      user_data)
{
  RndzServerLink *link = user_data;
  g_autoptr(GSocket) connected = g_steal_pointer (&link->connecting);

  g_clear_pointer (&link->attempt, rndz_connect_attempt_free);
  rndz_source_clear (&link->redial);

  if (error != NULL)
    {
      g_socket_close (connected, NULL);
      link_emit (link, RNDZ_SERVER_LINK_FAILED, NULL, error);
      return;
    }

  /* The request, its forward, the answer and the redirect go this way:
   * a frame lost again and again waits no more than 1 s a time, and the
   * link lives as long as the listener would keep it (the keepalive at
   * the time of connecting) */
  rndz_socket_limit_tcp_backoff (connected, rndz_peer_context_get_server_silence_ms (link->peer));
  link->channel = rndz_channel_new (connected, link->peer->context, RNDZ_MESSAGE_DEFAULT_MAX_SIZE,
                                    link_tcp_message_cb, link);
  link_emit (link, RNDZ_SERVER_LINK_READY, NULL, NULL);
}

static gboolean link_tcp_redial_cb (gpointer user_data);

static gboolean
link_tcp_open (RndzServerLink  *link,
               guint16          port,
               GError         **error)
{
  link->connecting = rndz_peer_context_bind (link->peer, link->family, G_SOCKET_TYPE_STREAM,
                                             port, error);
  if (link->connecting == NULL)
    return FALSE;

  link->attempt = rndz_connect_attempt_new (link->connecting, &link->server, link->peer->context,
                                            link_tcp_connected_cb, link);
  /* A server that does not answer gets the kernel's own pace, not a SYN
   * every second (the cap is for punching) */
  rndz_connect_attempt_hand_over (link->connecting, link->peer->context, 0);
  if (link->redial_ms <= RNDZ_CONNECT_REDIAL_MAX_MS)
    link->redial = rndz_timeout_add (link->peer->context, link->redial_ms,
                                     link_tcp_redial_cb, link);
  return TRUE;
}

/* A lost SYN costs a connector 1 s (the kernel's first RTO) before the
 * server hears its request: while the SYN has no answer, it goes again
 * from a new socket on the same port (rndz_connect_attempt_unanswered()).
 * The server is no NAT's peer: a late SYN-ACK for the old socket that
 * the new one resets leaves no mapping closed on the way, as it would
 * between peers. With growing gaps, and a few times only: a server that
 * is not there gets no more SYNs than the kernel would send. */
static gboolean
link_tcp_redial_cb (gpointer user_data)
{
  RndzServerLink *link = user_data;
  g_autoptr(GError) error = NULL;
  guint16 port;

  if (link->attempt == NULL || !rndz_connect_attempt_unanswered (link->attempt))
    return G_SOURCE_CONTINUE;

  port = rndz_server_link_get_port (link);
  link->redial_ms *= 2;
  g_clear_pointer (&link->redial, g_source_unref);
  g_clear_pointer (&link->attempt, rndz_connect_attempt_free);
  g_socket_close (link->connecting, NULL);
  g_clear_object (&link->connecting);
  if (!link_tcp_open (link, port, &error))
    link_emit (link, RNDZ_SERVER_LINK_FAILED, NULL, error);
  return G_SOURCE_REMOVE;
}

/*
 * rndz_server_link_open:
 * @port: our port P, or 0 for any (then rndz_server_link_get_port() tells)
 *
 * Opens the link, closing what was open. Over UDP it is ready at once;
 * over TCP, %RNDZ_SERVER_LINK_READY or %RNDZ_SERVER_LINK_FAILED comes
 * later, never from within this call.
 */
gboolean
rndz_server_link_open (RndzServerLink  *link,
                       guint16          port,
                       GError         **error)
{
  rndz_server_link_close (link);
  link->redial_ms = RNDZ_CONNECT_REDIAL_MS;

  if (link->transport == RNDZ_TRANSPORT_UDP)
    return link_udp_open (link, port, error);
  return link_tcp_open (link, port, error);
}

gboolean
rndz_server_link_is_open (RndzServerLink *link)
{
  return link->socket != NULL || link->connecting != NULL || link->channel != NULL;
}

gboolean
rndz_server_link_is_ready (RndzServerLink *link)
{
  return link->socket != NULL || link->channel != NULL;
}

const RndzAddr *
rndz_server_link_get_server (RndzServerLink *link)
{
  return &link->server;
}

/* The link's socket: UDP, or TCP connected or connecting; %NULL if closed */
GSocket *
rndz_server_link_get_socket (RndzServerLink *link)
{
  if (link->socket != NULL)
    return link->socket;
  if (link->channel != NULL)
    return rndz_channel_get_socket (link->channel);
  return link->connecting;
}

guint16
rndz_server_link_get_port (RndzServerLink *link)
{
  GSocket *socket = rndz_server_link_get_socket (link);
  g_autoptr(GSocketAddress) local = NULL;

  if (socket == NULL || (local = g_socket_get_local_address (socket, NULL)) == NULL)
    return 0;

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
}

/*
 * rndz_server_link_send:
 *
 * Sends @msg (padded as it asks). Over UDP a datagram the kernel could
 * not queue is not an error: requests are sent again until answered.
 *
 * Returns: %FALSE if the link is not ready or failed to send
 */
gboolean
rndz_server_link_send (RndzServerLink     *link,
                       const RndzMessage  *msg,
                       GError            **error)
{
  g_autoptr(GError) local_error = NULL;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  if (link->channel != NULL)
    return rndz_channel_send (link->channel, msg, error);

  if (link->socket == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                           _("Not connected to the server"));
      return FALSE;
    }

  len = rndz_message_encode (msg, buf, sizeof buf);
  if (rndz_udp_test_drop != NULL && rndz_udp_test_drop (buf, len, TRUE))
    return TRUE;
  if (g_socket_send (link->socket, buf, len, NULL, &local_error) < 0 &&
      !g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return TRUE;
}
