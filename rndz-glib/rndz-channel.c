/* rndz-channel.c: sockets, and framed messages over TCP
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib-unix.h>

#include "rndz-channel-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

/* Enough for a burst of replies; a peer that lets more pile up is not
 * reading and loses its connection. */
#define OUTPUT_LIMIT (16 * 1024)

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

GSocket *
rndz_socket_new_bound (GSocketAddress  *local,
                       GSocketType      type,
                       GError         **error)
{
  g_autoptr(GSocket) socket = NULL;
  struct sockaddr_storage ss;
  gssize len;

  socket = rndz_socket_new_for_family (g_socket_address_get_family (local), type, error);
  if (socket == NULL)
    return NULL;

  /* Not g_socket_bind(): it turns SO_REUSEPORT off for TCP sockets, and
   * a TCP peer needs its listening socket and its connections on one
   * port. */
  len = g_socket_address_get_native_size (local);
  if (len < 0 || !g_socket_address_to_native (local, &ss, sizeof ss, error))
    return NULL;

  if (bind (g_socket_get_fd (socket), (struct sockaddr *) &ss, len) < 0)
    {
      int errsv = errno;
      g_autofree char *text = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (local));

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Error binding to address %s: %s"), text, g_strerror (errsv));
      return NULL;
    }

  return g_steal_pointer (&socket);
}

void
rndz_socket_set_nodelay (GSocket *socket)
{
  /* Frames are written whole; without this, Nagle and delayed ACKs add
   * tens of milliseconds to every exchange. */
  g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
}

struct _RndzChannel
{
  GSocket *socket;
  GMainContext *context;
  RndzAddr remote;
  gsize max_size;

  RndzChannelFunc func;
  gpointer user_data;

  /* Either one source per direction, or a registration with a poller */
  GSource *in_source;
  GSource *out_source;
  RndzPoller *poller;
  gboolean polled;
  gboolean polled_out;

  guint8 *in_buf;           /* only while a frame is incomplete */
  gsize in_len;
  GByteArray *out_buf;

  gboolean closed;
};

static void poller_remove (RndzPoller *poller, RndzChannel *channel);
static void poller_watch (RndzPoller *poller, RndzChannel *channel, gboolean out);

static void
channel_stop (RndzChannel *channel)
{
  if (channel->poller != NULL)
    {
      RndzPoller *poller = g_steal_pointer (&channel->poller);

      poller_remove (poller, channel);
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
static void
channel_watch_out (RndzChannel *channel)
{
  if (channel->poller != NULL)
    {
      if (!channel->polled_out)
        poller_watch (channel->poller, channel, TRUE);
      return;
    }

  if (channel->out_source == NULL)
    {
      channel->out_source = g_socket_create_source (channel->socket, G_IO_OUT, NULL);
      g_source_set_callback (channel->out_source, G_SOURCE_FUNC (channel_write_cb), channel, NULL);
      g_source_set_static_name (channel->out_source, "[rndz] channel write");
      g_source_attach (channel->out_source, channel->context);
    }
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

/**
 * rndz_channel_new_polled:
 *
 * Like rndz_channel_new(), but the socket is watched by @poller rather
 * than by sources of its own.
 */
RndzChannel *
rndz_channel_new_polled (GSocket         *socket,
                         RndzPoller      *poller,
                         gsize            max_size,
                         RndzChannelFunc  func,
                         gpointer         user_data)
{
  RndzChannel *channel = channel_new (socket, g_source_get_context ((GSource *) poller),
                                      max_size, func, user_data);

  channel->poller = poller;
  poller_watch (poller, channel, FALSE);
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
    channel_watch_out (channel);

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

/* Sources */

GSource *
rndz_timeout_add (GMainContext *context,
                  guint         ms,
                  GSourceFunc   func,
                  gpointer      user_data)
{
  GSource *source = g_timeout_source_new (ms);

  g_source_set_callback (source, func, user_data, NULL);
  g_source_set_static_name (source, "[rndz] timeout");
  g_source_attach (source, context);
  return source;
}

void
rndz_source_clear (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

/*
 * rndz_udp_drain:
 * @is_control: says whether a message is rndz's, not the application's
 *
 * Handing a UDP socket to the application, discards the datagrams at the
 * head of its queue that are rndz's own (answers to messages sent again,
 * say). The first that is not, or does not decode, stays.
 */
void
rndz_udp_drain (GSocket         *socket,
                RndzControlFunc  is_control,
                gpointer         user_data)
{
  for (;;)
    {
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
      GInputVector vector = { buf, sizeof buf };
      gint flags = G_SOCKET_MSG_PEEK;
      RndzMessage msg;
      gssize n;

      n = g_socket_receive_message (socket, NULL, &vector, 1, NULL, NULL, &flags, NULL, NULL);
      if (n < 0 || !rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) ||
          !is_control (&msg, user_data))
        return;

      g_socket_receive (socket, buf, sizeof buf, NULL, NULL);
    }
}

/* Watches @socket for input on @context; named for profilers */
GSource *
rndz_socket_source_add (GSocket           *socket,
                        GMainContext      *context,
                        GSocketSourceFunc  func,
                        gpointer           user_data,
                        const char        *name)
{
  GSource *source = g_socket_create_source (socket, G_IO_IN, NULL);

  g_source_set_callback (source, G_SOURCE_FUNC (func), user_data, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, context);
  return source;
}

/* Deadline sources
 *
 * One timer for many deadlines: its owner keeps them in order, arms the
 * source for the earliest, and on dispatch handles what is due and arms
 * it again. Arming for a later deadline than the one set is a no-op, so
 * callers need not know which deadline is the earliest.
 */

static gboolean
deadline_dispatch (GSource     *source,
                   GSourceFunc  callback,
                   gpointer     user_data)
{
  /* Not armed again until the callback says when */
  g_source_set_ready_time (source, -1);
  return callback (user_data);
}

static GSourceFuncs deadline_funcs = {
  .dispatch = deadline_dispatch,
};

GSource *
rndz_deadline_source_new (GMainContext *context,
                          const char   *name,
                          GSourceFunc   func,
                          gpointer      user_data)
{
  GSource *source = g_source_new (&deadline_funcs, sizeof (GSource));

  g_source_set_callback (source, func, user_data, NULL);
  g_source_set_static_name (source, name);
  g_source_set_ready_time (source, -1);
  g_source_attach (source, context);
  return source;
}

/* Makes @source fire at @deadline (monotonic µs) at the latest */
void
rndz_deadline_source_arm (GSource *source,
                          gint64   deadline)
{
  gint64 ready;

  if (source == NULL)
    return;

  ready = g_source_get_ready_time (source);
  if (ready < 0 || deadline < ready)
    g_source_set_ready_time (source, deadline);
}

/* Non-blocking connect */

struct _RndzConnectAttempt
{
  GSocket *socket;
  GSource *source;
  GError *error;         /* failed at once; reported from an idle */
  RndzConnectFunc func;
  gpointer user_data;
};

static gboolean
connect_ready_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  RndzConnectAttempt *attempt = user_data;
  g_autoptr(GError) error = NULL;

  if (attempt->error == NULL)
    g_socket_check_connect_result (socket, &error);
  else
    error = g_steal_pointer (&attempt->error);

  /* One shot: the callback usually frees the attempt */
  g_clear_pointer (&attempt->source, g_source_unref);
  attempt->func (socket, error, attempt->user_data);
  return G_SOURCE_REMOVE;
}

static gboolean
connect_failed_cb (gpointer user_data)
{
  RndzConnectAttempt *attempt = user_data;

  return connect_ready_cb (attempt->socket, 0, attempt);
}

RndzConnectAttempt *
rndz_connect_attempt_new (GSocket         *socket,
                          const RndzAddr  *to,
                          GMainContext    *context,
                          RndzConnectFunc  func,
                          gpointer         user_data)
{
  RndzConnectAttempt *attempt = g_new0 (RndzConnectAttempt, 1);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  attempt->socket = g_object_ref (socket);
  attempt->func = func;
  attempt->user_data = user_data;

  g_socket_set_blocking (socket, FALSE);
  /* An IPv4 peer from a dual-stack socket is reached v4-mapped */
  address = rndz_addr_to_socket_address (to, g_socket_get_family (socket));
  if (address == NULL)
    attempt->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                          _("Address family not supported"));
  else if (g_socket_connect (socket, address, NULL, &error) ||
           g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING))
    {
      attempt->source = g_socket_create_source (socket, G_IO_OUT, NULL);
      g_source_set_callback (attempt->source, G_SOURCE_FUNC (connect_ready_cb), attempt, NULL);
      g_source_set_static_name (attempt->source, "[rndz] connect");
      g_source_attach (attempt->source, context);
      return attempt;
    }
  else
    attempt->error = g_steal_pointer (&error);

  attempt->source = g_idle_source_new ();
  g_source_set_callback (attempt->source, connect_failed_cb, attempt, NULL);
  g_source_set_static_name (attempt->source, "[rndz] connect failed");
  g_source_attach (attempt->source, context);
  return attempt;
}

void
rndz_connect_attempt_free (RndzConnectAttempt *attempt)
{
  rndz_source_clear (&attempt->source);
  g_clear_error (&attempt->error);
  g_object_unref (attempt->socket);
  g_free (attempt);
}

/* Poller
 *
 * GLib's main loop polls every file descriptor of every source on every
 * iteration: with ten thousand connections, each wake-up would cost ten
 * thousand pollfds. A server's connections share one source instead,
 * which polls a single epoll descriptor and asks it which sockets are
 * ready. Each registered channel is referenced by the poller; a channel
 * removed while a batch of events is being dispatched is released only
 * after the batch, so events already fetched never point at freed
 * memory.
 */

#define POLLER_BATCH 256

struct _RndzPoller
{
  GSource source;
  int epfd;
  gboolean dispatching;
  GPtrArray *released;
};

static gboolean
poller_dispatch (GSource     *source,
                 GSourceFunc  callback,
                 gpointer     user_data)
{
  RndzPoller *poller = (RndzPoller *) source;
  struct epoll_event events[POLLER_BATCH];
  int n;

  n = epoll_wait (poller->epfd, events, G_N_ELEMENTS (events), 0);
  poller->dispatching = TRUE;

  for (int i = 0; i < n; i++)
    {
      RndzChannel *channel = events[i].data.ptr;

      if (!channel->closed && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        channel_read_cb (channel->socket, G_IO_IN, channel);
      if (!channel->closed && (events[i].events & EPOLLOUT) &&
          !channel_writable (channel) && !channel->closed && channel->poller != NULL)
        poller_watch (poller, channel, FALSE);
    }

  poller->dispatching = FALSE;
  g_ptr_array_set_size (poller->released, 0);
  return G_SOURCE_CONTINUE;
}

static void
poller_finalize (GSource *source)
{
  RndzPoller *poller = (RndzPoller *) source;

  close (poller->epfd);
  g_ptr_array_unref (poller->released);
}

static GSourceFuncs poller_funcs = {
  .dispatch = poller_dispatch,
  .finalize = poller_finalize,
};

RndzPoller *
rndz_poller_new (GMainContext *context)
{
  RndzPoller *poller = (RndzPoller *) g_source_new (&poller_funcs, sizeof (RndzPoller));

  poller->epfd = epoll_create1 (EPOLL_CLOEXEC);
  g_assert (poller->epfd >= 0);
  poller->released = g_ptr_array_new_with_free_func ((GDestroyNotify) rndz_channel_unref);
  g_source_add_unix_fd ((GSource *) poller, poller->epfd, G_IO_IN);
  g_source_set_static_name ((GSource *) poller, "[rndz] connections");
  g_source_attach ((GSource *) poller, context);
  return poller;
}

void
rndz_poller_free (RndzPoller *poller)
{
  g_source_destroy ((GSource *) poller);
  g_source_unref ((GSource *) poller);
}

static void
poller_watch (RndzPoller  *poller,
              RndzChannel *channel,
              gboolean     out)
{
  struct epoll_event event = { 0 };
  int fd = g_socket_get_fd (channel->socket);

  event.events = EPOLLIN | (out ? EPOLLOUT : 0);
  event.data.ptr = channel;

  if (channel->polled)
    epoll_ctl (poller->epfd, EPOLL_CTL_MOD, fd, &event);
  else if (epoll_ctl (poller->epfd, EPOLL_CTL_ADD, fd, &event) == 0)
    {
      /* The poller keeps a registered channel alive */
      rndz_channel_ref (channel);
      channel->polled = TRUE;
    }
  channel->polled_out = out;
}

static void
poller_remove (RndzPoller  *poller,
               RndzChannel *channel)
{
  if (!channel->polled)
    return;

  channel->polled = FALSE;
  epoll_ctl (poller->epfd, EPOLL_CTL_DEL, g_socket_get_fd (channel->socket), NULL);

  if (poller->dispatching)
    g_ptr_array_add (poller->released, channel);
  else
    rndz_channel_unref (channel);
}
