/* rndz-channel.c: framed messages over TCP
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/epoll.h>

#include "rndz-channel-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

/* Enough for a burst of replies; a peer that lets more pile up is not
 * reading and loses its connection. */
#define OUTPUT_LIMIT (16 * 1024)

struct _RndzChannel
{
  GSocket *socket;
  GMainContext *context;
  RndzAddr remote;
  gsize max_size;

  RndzChannelFunc func;
  gpointer user_data;

  /* Either one source per direction, or a watch of a poller */
  GSource *in_source;
  GSource *out_source;
  RndzPoller *poller;
  RndzPollerWatch *watch;

  guint8 *in_buf;           /* only while a frame is incomplete */
  gsize in_len;
  GByteArray *out_buf;

  gboolean closed;
};

static void
channel_stop (RndzChannel *channel)
{
  if (channel->watch != NULL)
    {
      rndz_poller_remove (channel->poller, g_steal_pointer (&channel->watch));
      channel->poller = NULL;
    }
  if (channel->in_source != NULL)
    {
      g_source_destroy (channel->in_source);
      g_clear_pointer (&channel->in_source, g_source_unref);
    }
  if (channel->out_source != NULL)
    {
      g_source_destroy (channel->out_source);
      g_clear_pointer (&channel->out_source, g_source_unref);
    }
}

static void
channel_fail (RndzChannel  *channel,
              const GError *error)
{
  if (channel->closed)
    return;

  channel->closed = TRUE;
  channel_stop (channel);
  g_socket_close (channel->socket, NULL);
  channel->func (channel, NULL, error, channel->user_data);
}

/* Hands out every complete frame in the input buffer. Returns FALSE if
 * the channel was closed meanwhile. */
static gboolean
channel_dispatch_frames (RndzChannel *channel)
{
  gsize offset = 0;

  while (!channel->closed)
    {
      g_autoptr(GError) error = NULL;
      RndzMessage msg;
      gssize payload;

      payload = rndz_frame_peek (channel->in_buf + offset, channel->in_len - offset,
                                 channel->max_size, &error);
      if (payload == 0)
        break;
      if (payload < 0 ||
          !rndz_message_decode (&msg, (const char *) channel->in_buf + offset + RNDZ_FRAME_HEADER_SIZE,
                                payload, channel->max_size, &error))
        {
          /* A later version may add message types: skip those */
          if (payload > 0 &&
              g_error_matches (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE))
            {
              offset += RNDZ_FRAME_HEADER_SIZE + payload;
              continue;
            }
          channel_fail (channel, error);
          return FALSE;
        }

      offset += RNDZ_FRAME_HEADER_SIZE + payload;
      channel->func (channel, &msg, NULL, channel->user_data);
    }

  if (channel->closed)
    return FALSE;

  memmove (channel->in_buf, channel->in_buf + offset, channel->in_len - offset);
  channel->in_len -= offset;
  return TRUE;
}

static gboolean
channel_read_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  g_autoptr(RndzChannel) channel = rndz_channel_ref (user_data);
  gsize capacity = RNDZ_FRAME_HEADER_SIZE + channel->max_size;

  while (!channel->closed)
    {
      g_autoptr(GError) error = NULL;
      gssize n;

      if (channel->in_buf == NULL)
        channel->in_buf = g_malloc (capacity);

      n = g_socket_receive (channel->socket, (char *) channel->in_buf + channel->in_len,
                            capacity - channel->in_len, NULL, &error);
      if (n < 0)
        {
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            break;
          channel_fail (channel, error);
          break;
        }
      if (n == 0)
        {
          g_autoptr(GError) closed = NULL;

          closed = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                        _("Connection closed by the other side"));
          channel_fail (channel, closed);
          break;
        }

      channel->in_len += n;
      if (!channel_dispatch_frames (channel))
        break;
    }

  /* Idle connections hold no buffer: a server may have ten thousand */
  if (channel->in_len == 0)
    g_clear_pointer (&channel->in_buf, g_free);

  return G_SOURCE_CONTINUE;
}

static gboolean
channel_flush (RndzChannel  *channel,
               GError      **error)
{
  while (channel->out_buf->len > 0)
    {
      g_autoptr(GError) local_error = NULL;
      gssize n;

      n = g_socket_send (channel->socket, (const char *) channel->out_buf->data,
                         channel->out_buf->len, NULL, &local_error);
      if (n < 0)
        {
          if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            return TRUE;
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      g_byte_array_remove_range (channel->out_buf, 0, n);
    }

  return TRUE;
}

/* Returns TRUE while output is still queued */
static gboolean
channel_writable (RndzChannel *channel)
{
  g_autoptr(GError) error = NULL;

  if (!channel_flush (channel, &error))
    {
      channel_fail (channel, error);
      return FALSE;
    }

  return channel->out_buf->len > 0;
}

static gboolean
channel_write_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  g_autoptr(RndzChannel) channel = rndz_channel_ref (user_data);

  if (channel_writable (channel))
    return G_SOURCE_CONTINUE;

  g_clear_pointer (&channel->out_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

/* Waits for the socket to take more output */
static gboolean
channel_watch_out (RndzChannel  *channel,
                   GError      **error)
{
  if (channel->watch != NULL)
    return rndz_poller_set_events (channel->poller, channel->watch, EPOLLIN | EPOLLOUT, error);

  if (channel->out_source == NULL)
    {
      channel->out_source = g_socket_create_source (channel->socket, G_IO_OUT, NULL);
      g_source_set_callback (channel->out_source, G_SOURCE_FUNC (channel_write_cb), channel, NULL);
      g_source_set_static_name (channel->out_source, "[rndz] channel write");
      g_source_attach (channel->out_source, channel->context);
    }
  return TRUE;
}

static RndzChannel *
channel_new (GSocket         *socket,
             GMainContext    *context,
             gsize            max_size,
             RndzChannelFunc  func,
             gpointer         user_data)
{
  RndzChannel *channel = g_rc_box_new0 (RndzChannel);
  g_autoptr(GSocketAddress) remote = NULL;

  channel->socket = g_object_ref (socket);
  channel->context = g_main_context_ref (context);
  channel->max_size = max_size;
  channel->func = func;
  channel->user_data = user_data;
  channel->out_buf = g_byte_array_new ();

  remote = g_socket_get_remote_address (socket, NULL);
  if (remote != NULL)
    rndz_addr_from_socket_address (&channel->remote, remote);

  g_socket_set_blocking (socket, FALSE);
  rndz_socket_set_nodelay (socket);

  return channel;
}

RndzChannel *
rndz_channel_new (GSocket         *socket,
                  GMainContext    *context,
                  gsize            max_size,
                  RndzChannelFunc  func,
                  gpointer         user_data)
{
  RndzChannel *channel = channel_new (socket, context, max_size, func, user_data);

  channel->in_source = rndz_socket_source_add (socket, context, channel_read_cb, channel,
                                              "[rndz] channel read");

  return channel;
}

/* The poller's callback: both directions in one */
static void
channel_poll_cb (guint32  events,
                 gpointer user_data)
{
  g_autoptr(RndzChannel) channel = rndz_channel_ref (user_data);
  g_autoptr(GError) error = NULL;

  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
    channel_read_cb (channel->socket, G_IO_IN, channel);

  /* All written: stop watching for room */
  if (!channel->closed && (events & EPOLLOUT) && !channel_writable (channel) &&
      !channel->closed &&
      !rndz_poller_set_events (channel->poller, channel->watch, EPOLLIN, &error))
    channel_fail (channel, error);
}

/*
 * rndz_channel_new_polled:
 *
 * Like rndz_channel_new(), but the socket is watched by @poller rather
 * than by sources of its own; the callbacks run on the poller's context.
 * @poller outlives the channel.
 *
 * Returns: the channel, or %NULL if @poller cannot watch @socket; the
 *   socket then stays open, for the caller to close
 */
RndzChannel *
rndz_channel_new_polled (GSocket          *socket,
                         RndzPoller       *poller,
                         gsize             max_size,
                         RndzChannelFunc   func,
                         gpointer          user_data,
                         GError          **error)
{
  RndzChannel *channel = channel_new (socket, rndz_poller_get_context (poller),
                                      max_size, func, user_data);

  channel->watch = rndz_poller_add (poller, g_socket_get_fd (socket), EPOLLIN,
                                    channel_poll_cb, channel, error);
  if (channel->watch == NULL)
    {
      /* Not ours to close */
      channel->closed = TRUE;
      rndz_channel_unref (channel);
      return NULL;
    }

  channel->poller = poller;
  return channel;
}

void
rndz_channel_set_callback (RndzChannel     *channel,
                           RndzChannelFunc  func,
                           gpointer         user_data)
{
  channel->func = func;
  channel->user_data = user_data;
}

RndzChannel *
rndz_channel_ref (RndzChannel *channel)
{
  return g_rc_box_acquire (channel);
}

static void
channel_clear (RndzChannel *channel)
{
  channel_stop (channel);
  if (!channel->closed)
    g_socket_close (channel->socket, NULL);
  g_object_unref (channel->socket);
  g_main_context_unref (channel->context);
  g_free (channel->in_buf);
  g_byte_array_unref (channel->out_buf);
}

void
rndz_channel_unref (RndzChannel *channel)
{
  g_rc_box_release_full (channel, (GDestroyNotify) channel_clear);
}

/*
 * rndz_channel_send:
 *
 * Queues one frame and writes as much as the socket takes, in one write
 * when the queue was empty. Fails if the other side stopped reading and
 * the queue is full; the caller then closes the channel.
 */
gboolean
rndz_channel_send (RndzChannel        *channel,
                   const RndzMessage  *msg,
                   GError            **error)
{
  char frame[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  if (channel->closed)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED, _("Connection is closed"));
      return FALSE;
    }

  len = rndz_message_encode_frame (msg, frame, sizeof frame);
  g_return_val_if_fail (len > 0, FALSE);

  if (channel->out_buf->len + len > OUTPUT_LIMIT)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                           _("The other side does not read its messages"));
      return FALSE;
    }

  g_byte_array_append (channel->out_buf, (const guint8 *) frame, len);
  if (!channel_flush (channel, error))
    return FALSE;

  if (channel->out_buf->len > 0)
    return channel_watch_out (channel, error);

  return TRUE;
}

/* Closes the socket; no callback follows. */
void
rndz_channel_close (RndzChannel *channel)
{
  if (channel->closed)
    return;

  channel->closed = TRUE;
  channel_stop (channel);
  g_socket_close (channel->socket, NULL);
}

gboolean
rndz_channel_is_closed (RndzChannel *channel)
{
  return channel->closed;
}

GSocket *
rndz_channel_get_socket (RndzChannel *channel)
{
  return channel->socket;
}

const RndzAddr *
rndz_channel_get_remote (RndzChannel *channel)
{
  return &channel->remote;
}

void
rndz_channel_set_remote (RndzChannel    *channel,
                         const RndzAddr *remote)
{
  channel->remote = *remote;
}
