/* rndz-echo.c: the echo service of `rndz client` when it listens
 *
 * SPDX-License-Identifier: MIT
 *
 * Once registered, a listening `rndz client` sends back whatever peers
 * send it:
 *
 *   - over UDP, the datagrams of each socket that RndzClient::peer-socket
 *     hands out: one per peer that came through the rendezvous, connected
 *     to it, on which the library lets nothing else in. What arrives on
 *     the socket that rndz_client_listen_udp_async() returned is from
 *     senders no rendezvous let in: it is read and dropped, never
 *     answered (echoing it would make the listener a reflector);
 *   - over TCP, each connection from rndz_client_accept_async(), until it
 *     closes.
 *
 * Secure (the default of `rndz client`), the peers come from
 * rndz_client_accept_dtls_async() and rndz_client_accept_tls_async()
 * instead, once their handshake is done: one RndzDtlsChannel or
 * GTlsConnection each, whose fingerprint is printed, and whose data is
 * echoed the same way, encrypted. The library then hands out no plain
 * socket per peer, and this file asks for none.
 *
 * This file knows nothing of the rest of the program: rndz-client-cmd.c
 * starts it once registered, cancels the GCancellable it was given to end
 * it, and counts its operations in flight (rndz_tool_echo_get_pending())
 * before it frees it. The owner's cancellable being cancelled is what
 * "quitting" means here.
 */

#include <glib/gi18n.h>

#include "rndz-echo.h"
#include "rndz-tool.h"

/* The pause before accepting again after a failure */
#define ACCEPT_RETRY_MS 200

struct _RndzToolEcho
{
  RndzClient *client;
  GCancellable *cancellable;
  gboolean secure;
  guint pending;

  /* UDP */
  guint8 *datagram;
  GSource *receive_source;
  GPtrArray *peers;             /* EchoPeer, one per peer on its own socket */
  gulong peer_socket_id;
  guint idle_timeout_s;
};

/* A UDP peer on a socket of its own. UDP has no end: a peer that sends
 * nothing for a while is forgotten and its socket closed, else a
 * listener that runs for days would keep a descriptor for every peer it
 * ever had, and poll them all at each wake-up. */
typedef struct
{
  RndzToolEcho *echo;
  char *peer_id;
  GSocket *socket;
  GSource *source;
  GSource *idle;
} EchoPeer;

/* One TCP connection accepted while listening: a GSocketConnection, or
 * a GTlsConnection over one */
typedef struct
{
  RndzToolEcho *echo;
  GIOStream *connection;
  char *peer_id;
  guint8 buffer[4096];
} EchoConnection;

/* One secure UDP peer */
typedef struct
{
  RndzToolEcho *echo;
  RndzDtlsChannel *channel;
  char *peer_id;
} EchoChannel;

static gboolean
echo_quitting (RndzToolEcho *echo)
{
  return g_cancellable_is_cancelled (echo->cancellable);
}

/* UDP */

static void
echo_peer_free (EchoPeer *peer)
{
  g_source_destroy (peer->source);
  g_source_unref (peer->source);
  g_source_destroy (peer->idle);
  g_source_unref (peer->idle);
  g_socket_close (peer->socket, NULL);
  g_object_unref (peer->socket);
  g_free (peer->peer_id);
  g_free (peer);
}

static gboolean
echo_peer_idle_cb (gpointer user_data)
{
  EchoPeer *peer = user_data;
  RndzToolEcho *echo = peer->echo;

  rndz_tool_print_note (_("Peer “%s” sent nothing for %u s: forgotten"),
                        peer->peer_id, echo->idle_timeout_s);
  g_ptr_array_remove_fast (echo->peers, peer);
  return G_SOURCE_REMOVE;
}

/* A peer's own socket: connected to it, so whatever comes is the peer's */
static gboolean
echo_datagrams_cb (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  EchoPeer *peer = user_data;
  RndzToolEcho *echo = peer->echo;

  g_source_set_ready_time (peer->idle, g_get_monotonic_time () +
                           echo->idle_timeout_s * G_TIME_SPAN_SECOND);

  /* A bounded batch, so that a flood does not starve the rest */
  for (guint i = 0; i < 64; i++)
    {
      g_autoptr(GSocketAddress) sender = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *sender_text = NULL;
      gssize received;

      received = g_socket_receive_from (socket, &sender, (char *) echo->datagram,
                                        G_MAXUINT16, NULL, &error);
      if (received < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            rndz_tool_print_note (_("Receiving failed: %s"), error->message);
          break;
        }

      sender_text = rndz_tool_format_address (sender);
      rndz_tool_print_note (_("Echoing %u bytes to %s"), (guint) received, sender_text);

      if (g_socket_send (socket, (const char *) echo->datagram, received, NULL, &error) < 0)
        rndz_tool_print_note (_("Sending to %s failed: %s"), sender_text, error->message);
    }

  return G_SOURCE_CONTINUE;
}

/* The listening socket: whoever sends there did not come through the
 * rendezvous (a peer that did has a socket of its own) */
static gboolean
ignore_datagrams_cb (GSocket      *socket,
                     GIOCondition  condition,
                     gpointer      user_data)
{
  RndzToolEcho *echo = user_data;

  for (guint i = 0; i < 64; i++)
    {
      g_autoptr(GSocketAddress) sender = NULL;
      g_autofree char *sender_text = NULL;
      gssize received;

      received = g_socket_receive_from (socket, &sender, (char *) echo->datagram,
                                        G_MAXUINT16, NULL, NULL);
      if (received < 0)
        break;

      sender_text = rndz_tool_format_address (sender);
      rndz_tool_print_note (_("Ignoring %u bytes from %s: not a peer of the rendezvous"),
                            (guint) received, sender_text);
    }

  return G_SOURCE_CONTINUE;
}

static GSource *
echo_socket_source_new (gpointer           user_data,
                        GSocket           *socket,
                        GSocketSourceFunc  func)
{
  GSource *source;

  g_socket_set_blocking (socket, FALSE);
  source = g_socket_create_source (socket, G_IO_IN, NULL);
  g_source_set_callback (source, G_SOURCE_FUNC (func), user_data, NULL);
  g_source_attach (source, NULL);
  return source;
}

/* A peer that came through the rendezvous, on a socket of its own
 * (directly, through the server's relay, or through our NAT's port for
 * it alone): its datagrams are echoed */
static void
echo_peer_socket_cb (RndzClient *client,
                     const char *peer_id,
                     GSocket    *socket,
                     gpointer    user_data)
{
  RndzToolEcho *echo = user_data;
  EchoPeer *peer;

  if (echo_quitting (echo) || echo->datagram == NULL)
    return;

  rndz_tool_print_note (_("Peer “%s” comes in (%s)"), peer_id, rndz_tool_path_name (socket));
  peer = g_new0 (EchoPeer, 1);
  peer->echo = echo;
  peer->peer_id = g_strdup (peer_id);
  peer->socket = g_object_ref (socket);
  peer->source = echo_socket_source_new (peer, socket, echo_datagrams_cb);
  peer->idle = g_timeout_source_new (echo->idle_timeout_s * 1000);
  g_source_set_callback (peer->idle, echo_peer_idle_cb, peer, NULL);
  g_source_attach (peer->idle, NULL);
  g_ptr_array_add (echo->peers, peer);
}

/* UDP, secure */

static void echo_channel_receive (EchoChannel *channel);

static void
echo_channel_free (EchoChannel *channel)
{
  rndz_dtls_channel_close (channel->channel);
  g_object_unref (channel->channel);
  g_free (channel->peer_id);
  g_free (channel);
}

static void
echo_channel_receive_cb (GObject      *object,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  EchoChannel *channel = user_data;
  RndzToolEcho *echo = channel->echo;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;

  echo->pending--;
  bytes = rndz_dtls_channel_receive_bytes_finish (channel->channel, result, &error);
  if (bytes == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        rndz_tool_print_note (_("Secure channel with peer “%s” closed: %s"), channel->peer_id,
                              error->message);
      echo_channel_free (channel);
      return;
    }
  if (echo_quitting (echo))
    {
      echo_channel_free (channel);
      return;
    }

  rndz_tool_print_note (_("Echoing %u bytes to peer “%s”"), (guint) g_bytes_get_size (bytes),
                        channel->peer_id);
  if (!rndz_dtls_channel_send_bytes (channel->channel, bytes, NULL, &error))
    rndz_tool_print_note (_("Sending to peer “%s” failed: %s"), channel->peer_id, error->message);

  echo_channel_receive (channel);
}

static void
echo_channel_receive (EchoChannel *channel)
{
  channel->echo->pending++;
  rndz_dtls_channel_receive_bytes_async (channel->channel, channel->echo->cancellable,
                                         echo_channel_receive_cb, channel);
}

static void echo_accept_dtls (RndzToolEcho *echo);

static gboolean
accept_dtls_again_cb (gpointer user_data)
{
  RndzToolEcho *echo = user_data;

  echo->pending--;
  echo_accept_dtls (echo);
  return G_SOURCE_REMOVE;
}

static void
accept_dtls_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  RndzToolEcho *echo = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzDtlsChannel) accepted = NULL;
  g_autofree char *peer_id = NULL;
  EchoChannel *channel;

  echo->pending--;
  accepted = rndz_client_accept_dtls_finish (echo->client, result, &peer_id, &error);
  if (accepted == NULL)
    {
      if (echo_quitting (echo))
        return;

      rndz_tool_print_error (_("Cannot accept a peer: %s"), error->message);
      /* As over TCP: go on, after a pause */
      echo->pending++;
      g_timeout_add (ACCEPT_RETRY_MS, accept_dtls_again_cb, echo);
      return;
    }
  if (echo_quitting (echo))
    {
      rndz_dtls_channel_close (accepted);
      return;
    }

  channel = g_new0 (EchoChannel, 1);
  channel->echo = echo;
  channel->channel = g_steal_pointer (&accepted);
  channel->peer_id = peer_id != NULL ? g_steal_pointer (&peer_id) : g_strdup ("?");
  rndz_tool_print_note (_("Peer “%s” comes in (%s)"), channel->peer_id,
                        rndz_tool_path_name (rndz_dtls_channel_get_socket (channel->channel)));
  rndz_tool_print_peer_fingerprint (channel->peer_id,
                                    rndz_dtls_channel_get_peer_fingerprint (channel->channel));
  echo_channel_receive (channel);

  echo_accept_dtls (echo);
}

static void
echo_accept_dtls (RndzToolEcho *echo)
{
  if (echo_quitting (echo))
    return;

  echo->pending++;
  rndz_client_accept_dtls_async (echo->client, echo->cancellable, accept_dtls_cb, echo);
}

/* Echoes the datagrams of the peers, each on its own socket or secure
 * channel; drops those of @socket, which listen_udp returned */
void
rndz_tool_echo_udp_start (RndzToolEcho *echo,
                          GSocket      *socket)
{
  echo->datagram = g_malloc (G_MAXUINT16);
  echo->receive_source = echo_socket_source_new (echo, socket, ignore_datagrams_cb);
  if (echo->secure)
    echo_accept_dtls (echo);
}

/* TCP */

static void echo_connection_read (EchoConnection *connection);

static void
echo_connection_free (EchoConnection *connection)
{
  g_io_stream_close (connection->connection, NULL, NULL);
  g_object_unref (connection->connection);
  g_free (connection->peer_id);
  g_free (connection);
}

static void
echo_connection_write_cb (GObject      *object,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  EchoConnection *connection = user_data;
  g_autoptr(GError) error = NULL;

  connection->echo->pending--;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (object), result, NULL, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        rndz_tool_print_note (_("Connection with peer “%s” failed: %s"), connection->peer_id,
                              error->message);
      echo_connection_free (connection);
      return;
    }

  echo_connection_read (connection);
}

static void
echo_connection_read_cb (GObject      *object,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  EchoConnection *connection = user_data;
  RndzToolEcho *echo = connection->echo;
  g_autoptr(GError) error = NULL;
  gssize n_read;

  echo->pending--;
  n_read = g_input_stream_read_finish (G_INPUT_STREAM (object), result, &error);
  if (n_read <= 0)
    {
      if (n_read == 0)
        rndz_tool_print_note (_("Peer “%s” closed the connection"), connection->peer_id);
      else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        rndz_tool_print_note (_("Connection with peer “%s” failed: %s"), connection->peer_id,
                              error->message);
      echo_connection_free (connection);
      return;
    }

  rndz_tool_print_note (_("Echoing %u bytes to peer “%s”"), (guint) n_read, connection->peer_id);
  echo->pending++;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (connection->connection),
                                   connection->buffer, n_read, G_PRIORITY_DEFAULT,
                                   echo->cancellable, echo_connection_write_cb, connection);
}

static void
echo_connection_read (EchoConnection *connection)
{
  RndzToolEcho *echo = connection->echo;

  echo->pending++;
  g_input_stream_read_async (g_io_stream_get_input_stream (connection->connection),
                             connection->buffer, sizeof connection->buffer, G_PRIORITY_DEFAULT,
                             echo->cancellable, echo_connection_read_cb, connection);
}

static void echo_accept (RndzToolEcho *echo);

static gboolean
accept_again_cb (gpointer user_data)
{
  RndzToolEcho *echo = user_data;

  echo->pending--;
  echo_accept (echo);
  return G_SOURCE_REMOVE;
}

static void
accept_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  RndzToolEcho *echo = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GIOStream) accepted = NULL;
  g_autofree char *peer_id = NULL;
  EchoConnection *connection;

  echo->pending--;
  if (echo->secure)
    accepted = G_IO_STREAM (rndz_client_accept_tls_finish (echo->client, result, &peer_id, &error));
  else
    accepted = G_IO_STREAM (rndz_client_accept_finish (echo->client, result, &peer_id, &error));
  if (accepted == NULL)
    {
      if (echo_quitting (echo))
        return;

      rndz_tool_print_error (_("Cannot accept a connection: %s"), error->message);

      /* Most failures concern one peer only: go on accepting, after a
       * pause so that a lasting failure does not spin. */
      echo->pending++;
      g_timeout_add (ACCEPT_RETRY_MS, accept_again_cb, echo);
      return;
    }

  if (echo_quitting (echo))
    {
      g_io_stream_close (accepted, NULL, NULL);
      return;
    }

  connection = g_new0 (EchoConnection, 1);
  connection->echo = echo;
  connection->connection = g_steal_pointer (&accepted);
  connection->peer_id = peer_id != NULL ? g_steal_pointer (&peer_id) : g_strdup ("?");

  rndz_tool_print_note (_("Accepted a connection from peer “%s” (%s)"), connection->peer_id,
                        rndz_tool_path_name (rndz_tool_stream_get_socket (connection->connection)));
  if (echo->secure)
    rndz_tool_print_tls_peer (connection->peer_id, G_TLS_CONNECTION (connection->connection));
  echo_connection_read (connection);

  echo_accept (echo);
}

static void
echo_accept (RndzToolEcho *echo)
{
  if (echo_quitting (echo))
    return;

  echo->pending++;
  if (echo->secure)
    rndz_client_accept_tls_async (echo->client, echo->cancellable, accept_cb, echo);
  else
    rndz_client_accept_async (echo->client, echo->cancellable, accept_cb, echo);
}

/* Accepts the peers' connections and echoes each until it closes */
void
rndz_tool_echo_tcp_start (RndzToolEcho *echo)
{
  echo_accept (echo);
}

/* Life cycle */

/* An echo for the peers of @client, a listening client, over secure
 * channels if @secure, whose operations end when @cancellable is
 * cancelled. A plain UDP peer that sends nothing for @idle_timeout_s
 * seconds is forgotten. */
RndzToolEcho *
rndz_tool_echo_new (RndzClient   *client,
                    gboolean      secure,
                    guint         idle_timeout_s,
                    GCancellable *cancellable)
{
  RndzToolEcho *echo = g_new0 (RndzToolEcho, 1);

  echo->client = g_object_ref (client);
  echo->cancellable = g_object_ref (cancellable);
  echo->secure = secure;
  echo->idle_timeout_s = idle_timeout_s;
  echo->peers = g_ptr_array_new_with_free_func ((GDestroyNotify) echo_peer_free);
  /* A secure peer's socket belongs to its channel: asking for it would
   * read its ciphertext here */
  if (!secure)
    echo->peer_socket_id = g_signal_connect (client, "peer-socket",
                                             G_CALLBACK (echo_peer_socket_cb), echo);
  return echo;
}

/* The operations in flight: each ends soon once the cancellable is
 * cancelled, and frees what it holds */
guint
rndz_tool_echo_get_pending (RndzToolEcho *echo)
{
  return echo->pending;
}

/* Echoes no more datagrams. The TCP connections end with the
 * cancellable. */
void
rndz_tool_echo_stop (RndzToolEcho *echo)
{
  if (echo->receive_source != NULL)
    g_source_destroy (echo->receive_source);
  g_clear_pointer (&echo->receive_source, g_source_unref);
  g_ptr_array_set_size (echo->peers, 0);
  g_clear_signal_handler (&echo->peer_socket_id, echo->client);
}

/* Once the operations in flight have ended */
void
rndz_tool_echo_free (RndzToolEcho *echo)
{
  rndz_tool_echo_stop (echo);
  g_clear_pointer (&echo->peers, g_ptr_array_unref);
  g_clear_pointer (&echo->datagram, g_free);
  g_clear_object (&echo->client);
  g_clear_object (&echo->cancellable);
  g_free (echo);
}
