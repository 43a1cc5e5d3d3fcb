/* rndz-dtls-channel.c: a secure channel over a punched UDP path
 *
 * SPDX-License-Identifier: MIT
 *
 * The GObject, its GDatagramBased interface and the GBytes helpers for
 * Python and GJS. The records and the keepalive are in
 * rndz-dtls-record.c, the handshake in rndz-dtls-handshake.c (or, in a
 * build without GnuTLS, neither, in rndz-dtls-channel-none.c); the model
 * of contexts is in rndz-dtls-record-private.h.
 */

#include "config.h"

#include <string.h>
#include <sys/socket.h>

#include "rndz-dtls-record-private.h"
#include "rndz-i18n-private.h"
#include "rndz-source-private.h"

/**
 * RndzDtlsChannel:
 *
 * A private, authenticated datagram channel to one peer: DTLS 1.2 over a
 * connected UDP socket, made by the rendezvous (a direct or a relayed
 * path), driven by the main context, without threads.
 *
 * Both peers proved their identity in the handshake: each presented a
 * certificate whose fingerprint is the one the other expected
 * ([property@Rndz.DtlsChannel:peer-fingerprint]). Every datagram is
 * encrypted and authenticated; whatever comes on the socket and does not
 * authenticate (tampered, replayed, or not from the peer) is dropped,
 * never delivered. Payloads are at most
 * rndz_dtls_channel_get_max_payload_size() bytes: the 1400-byte path
 * ([const@Rndz.DTLS_CHANNEL_PATH_MTU]) less the DTLS record overhead
 * (29 to 37 bytes, by cipher) and one byte of the channel's own, which
 * tells data from keepalives. Like UDP, the channel may lose, reorder
 * (never duplicate) datagrams.
 *
 * The channel implements [iface@Gio.DatagramBased]: receive and send
 * datagrams with g_datagram_based_receive_messages() and
 * g_datagram_based_send_messages(), wait with
 * g_datagram_based_create_source(). Bindings that cannot pass arrays of
 * messages use rndz_dtls_channel_send_bytes(),
 * rndz_dtls_channel_receive_bytes() and
 * rndz_dtls_channel_receive_bytes_async().
 *
 * The channel keeps the path alive: when it has sent nothing, or heard
 * nothing, for [property@Rndz.DtlsChannel:keepalive-interval], it sends
 * a ping, which the peer answers, and which keeps the NATs' mappings
 * open. Nothing authentic from the peer for three intervals closes it
 * with %RNDZ_ERROR_PATH_DEAD. A blocking receive keeps doing this while
 * it waits.
 *
 * In a build without TLS support the type exists, but no channel ever
 * opens: rndz_client_connect_dtls() and rndz_client_accept_dtls() fail
 * with %G_IO_ERROR_NOT_SUPPORTED.
 *
 * Its sources are attached to the main context that was the thread-
 * default one when the channel was made, and its signal is emitted
 * there; use it from that context's thread.
 *
 * The library makes channels, with their handshake; one made with
 * g_object_new() is closed from the start.
 *
 * Since: 1.0
 */

enum
{
  PROP_0,
  PROP_SOCKET,
  PROP_PEER_FINGERPRINT,
  PROP_KEEPALIVE_INTERVAL,
  PROP_CLOSED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_CLOSED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

static void rndz_dtls_channel_datagram_based_init (GDatagramBasedInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (RndzDtlsChannel, rndz_dtls_channel, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_DATAGRAM_BASED,
                                                      rndz_dtls_channel_datagram_based_init))

/* GDatagramBased */

/* Copies @payload into the buffers of @message; what does not fit is
 * cut, and flagged so */
static void
scatter (GInputMessage *message,
         GBytes        *payload)
{
  gsize size, copied = 0;
  const guint8 *data = g_bytes_get_data (payload, &size);
  guint i;

  for (i = 0; i < message->num_vectors && copied < size; i++)
    {
      gsize n = MIN (message->vectors[i].size, size - copied);

      memcpy (message->vectors[i].buffer, data + copied, n);
      copied += n;
    }
  message->bytes_received = copied;
  message->flags = copied < size ? MSG_TRUNC : 0;
}

static gint
channel_receive_messages (GDatagramBased  *datagram_based,
                          GInputMessage   *messages,
                          guint            num_messages,
                          gint             flags,
                          gint64           timeout,
                          GCancellable    *cancellable,
                          GError         **error)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (datagram_based);
  guint i;

  if (flags != 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("A secure channel takes no flags for receiving"));
      return -1;
    }
  if (num_messages == 0)
    return 0;
  if (!rndz_dtls_wait (self, G_IO_IN, timeout, cancellable, error) ||
      !rndz_dtls_check_open (self, error))
    return -1;

  for (i = 0; i < num_messages && self->incoming.length > 0; i++)
    {
      g_autoptr(GBytes) payload = g_queue_pop_head (&self->incoming);

      scatter (&messages[i], payload);
      if (messages[i].address != NULL)
        *messages[i].address = g_socket_get_remote_address (self->socket, NULL);
      if (messages[i].control_messages != NULL)
        *messages[i].control_messages = NULL;
      if (messages[i].num_control_messages != NULL)
        *messages[i].num_control_messages = 0;
    }
  return i;
}

/* Gathers the buffers of @message into @buffer, or fails if they hold
 * more than the channel carries */
static gboolean
gather (RndzDtlsChannel  *self,
        GOutputMessage   *message,
        guint8           *buffer,
        gsize            *len,
        GError          **error)
{
  gsize total = 0;
  guint i;

  for (i = 0; i < message->num_vectors; i++)
    {
      if (message->vectors[i].size > self->max_payload - total)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                       _("The datagram is larger than the %lu bytes a secure channel carries"),
                       (gulong) self->max_payload);
          return FALSE;
        }
      memcpy (buffer + total, message->vectors[i].buffer, message->vectors[i].size);
      total += message->vectors[i].size;
    }
  *len = total;
  return TRUE;
}

static gint
channel_send_messages (GDatagramBased  *datagram_based,
                       GOutputMessage  *messages,
                       guint            num_messages,
                       gint             flags,
                       gint64           timeout,
                       GCancellable    *cancellable,
                       GError         **error)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (datagram_based);
  guint8 buffer[RNDZ_DTLS_DATAGRAM_MAX];
  guint i;

  if (g_cancellable_set_error_if_cancelled (cancellable, error) ||
      !rndz_dtls_check_open (self, error))
    return -1;

  for (i = 0; i < num_messages; i++)
    {
      g_autoptr(GError) local = NULL;
      gsize len = 0;

      if (messages[i].address != NULL)
        g_set_error_literal (&local, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                             _("A secure channel sends to its peer only"));
      else if (gather (self, &messages[i], buffer, &len, &local))
        rndz_dtls_send_record (self, RNDZ_DTLS_RECORD_DATA, buffer, len, &local);
      if (local != NULL)
        {
          /* Like sendmmsg(): what went out counts, the error only when
           * nothing did */
          if (i == 0)
            g_propagate_error (error, g_steal_pointer (&local));
          return i == 0 ? -1 : (gint) i;
        }
      messages[i].bytes_sent = len;
    }
  return i;
}

static GIOCondition
channel_condition_check (GDatagramBased *datagram_based,
                         GIOCondition    condition)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (datagram_based);

  /* What the socket holds counts, not only what was read from it */
  if (condition & G_IO_IN)
    rndz_dtls_pump (self);
  return rndz_dtls_condition (self) & (condition | G_IO_HUP | G_IO_ERR);
}

static gboolean
channel_condition_wait (GDatagramBased  *datagram_based,
                        GIOCondition     condition,
                        gint64           timeout,
                        GCancellable    *cancellable,
                        GError         **error)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (datagram_based);
  g_autoptr(GError) local = NULL;

  if (rndz_dtls_wait (self, condition, timeout, cancellable, &local))
    return TRUE;
  /* GSocket's convention: timing out is timing out, even right away */
  if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    local->code = G_IO_ERROR_TIMED_OUT;
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

/* The source of g_datagram_based_create_source(): ready when the channel
 * is; it watches the socket itself, so that it works in any context */
typedef struct
{
  GSource source;
  RndzDtlsChannel *channel;
  GIOCondition condition;
  GCancellable *cancellable;
} ChannelSource;

static gboolean
channel_source_ready (GSource *source)
{
  ChannelSource *self = (ChannelSource *) source;

  return (rndz_dtls_condition (self->channel) & (self->condition | G_IO_HUP | G_IO_ERR)) != 0 ||
         g_cancellable_is_cancelled (self->cancellable);
}

static gboolean
channel_source_prepare (GSource *source,
                        gint    *timeout)
{
  *timeout = -1;
  return channel_source_ready (source);
}

static gboolean
channel_source_dispatch (GSource     *source,
                         GSourceFunc  callback,
                         gpointer     user_data)
{
  ChannelSource *self = (ChannelSource *) source;
  GDatagramBasedSourceFunc func = (GDatagramBasedSourceFunc) (void (*) (void)) callback;

  /* Woken by the socket: its datagrams may have been keepalives only */
  if (self->condition & G_IO_IN)
    rndz_dtls_pump (self->channel);
  if (!channel_source_ready (source))
    return G_SOURCE_CONTINUE;
  if (func == NULL)
    return G_SOURCE_REMOVE;
  return func (G_DATAGRAM_BASED (self->channel),
               rndz_dtls_condition (self->channel) & (self->condition | G_IO_HUP | G_IO_ERR),
               user_data);
}

static void
channel_source_finalize (GSource *source)
{
  ChannelSource *self = (ChannelSource *) source;

  g_clear_object (&self->channel);
  g_clear_object (&self->cancellable);
}

static GSourceFuncs channel_source_funcs = {
  .prepare = channel_source_prepare,
  .check = channel_source_ready,
  .dispatch = channel_source_dispatch,
  .finalize = channel_source_finalize,
};

/* Children only wake their parent */
static gboolean
socket_woke (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  return G_SOURCE_CONTINUE;
}

static gboolean
cancellable_woke (GCancellable *cancellable,
                  gpointer      user_data)
{
  return G_SOURCE_CONTINUE;
}

static void
add_child (GSource     *source,
           GSource     *child,
           GSourceFunc  woke)
{
  g_source_set_callback (child, woke, NULL, NULL);
  g_source_add_child_source (source, child);
  g_source_unref (child);
}

static GSource *
channel_create_source (GDatagramBased *datagram_based,
                       GIOCondition    condition,
                       GCancellable   *cancellable)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (datagram_based);
  GSource *source = g_source_new (&channel_source_funcs, sizeof (ChannelSource));
  ChannelSource *channel_source = (ChannelSource *) source;

  g_source_set_static_name (source, "[rndz] secure channel (application)");
  channel_source->channel = g_object_ref (self);
  channel_source->condition = condition;
  g_set_object (&channel_source->cancellable, cancellable);
  if ((condition & G_IO_IN) && self->phase == RNDZ_DTLS_PHASE_OPEN)
    add_child (source, g_socket_create_source (self->socket, G_IO_IN, NULL),
               G_SOURCE_FUNC (socket_woke));
  if (cancellable != NULL)
    add_child (source, g_cancellable_source_new (cancellable), G_SOURCE_FUNC (cancellable_woke));
  return source;
}

static void
rndz_dtls_channel_datagram_based_init (GDatagramBasedInterface *iface)
{
  iface->receive_messages = channel_receive_messages;
  iface->send_messages = channel_send_messages;
  iface->create_source = channel_create_source;
  iface->condition_check = channel_condition_check;
  iface->condition_wait = channel_condition_wait;
}

/* GObject */

static void
rndz_dtls_channel_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (object);

  switch (prop_id)
    {
    case PROP_SOCKET:
      g_value_set_object (value, self->socket);
      break;
    case PROP_PEER_FINGERPRINT:
      g_value_set_string (value, rndz_dtls_channel_get_peer_fingerprint (self));
      break;
    case PROP_KEEPALIVE_INTERVAL:
      g_value_set_uint (value, self->keepalive_ms);
      break;
    case PROP_CLOSED:
      g_value_set_boolean (value, rndz_dtls_channel_is_closed (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_dtls_channel_set_property (GObject      *object,
                                guint         prop_id,
                                const GValue *value,
                                GParamSpec   *pspec)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (object);

  switch (prop_id)
    {
    case PROP_SOCKET:
      self->socket = g_value_dup_object (value);
      break;
    case PROP_KEEPALIVE_INTERVAL:
      rndz_dtls_channel_set_keepalive_interval (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_dtls_channel_dispose (GObject *object)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (object);

  /* Dropped while open: tell the peer, which would wait for the path to
   * die otherwise */
  if (self->phase == RNDZ_DTLS_PHASE_OPEN)
    rndz_dtls_say_bye (self);
  self->phase = RNDZ_DTLS_PHASE_CLOSED;
  rndz_dtls_teardown (self);
  g_queue_clear_full (&self->incoming, (GDestroyNotify) g_bytes_unref);

  G_OBJECT_CLASS (rndz_dtls_channel_parent_class)->dispose (object);
}

static void
rndz_dtls_channel_finalize (GObject *object)
{
  RndzDtlsChannel *self = RNDZ_DTLS_CHANNEL (object);

  rndz_dtls_free_session (self);
  g_clear_object (&self->identity);
  g_clear_object (&self->socket);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->expected, g_free);
  g_clear_pointer (&self->peer_fingerprint, g_free);
  g_clear_error (&self->close_reason);

  G_OBJECT_CLASS (rndz_dtls_channel_parent_class)->finalize (object);
}

static void
rndz_dtls_channel_class_init (RndzDtlsChannelClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->get_property = rndz_dtls_channel_get_property;
  object_class->set_property = rndz_dtls_channel_set_property;
  object_class->dispose = rndz_dtls_channel_dispose;
  object_class->finalize = rndz_dtls_channel_finalize;

  /**
   * RndzDtlsChannel:socket:
   *
   * The UDP socket the channel runs on, connected to the peer.
   *
   * Since: 1.0
   */
  properties[PROP_SOCKET] =
    g_param_spec_object ("socket", NULL, NULL, G_TYPE_SOCKET,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzDtlsChannel:peer-fingerprint:
   *
   * The fingerprint of the certificate the peer proved it holds the key
   * of: the SHA-256 of the certificate, as 64 lowercase hex digits.
   *
   * Since: 1.0
   */
  properties[PROP_PEER_FINGERPRINT] =
    g_param_spec_string ("peer-fingerprint", NULL, NULL, NULL, ro);

  /**
   * RndzDtlsChannel:keepalive-interval:
   *
   * How long the channel may stay silent before it sends a keepalive, in
   * milliseconds, from 100; 15000 by default (NATs forget a UDP mapping
   * after 30 s of silence, some sooner). Nothing from the peer for three
   * intervals closes the channel with %RNDZ_ERROR_PATH_DEAD. The peer
   * needs no setting: it answers whatever comes.
   *
   * Since: 1.0
   */
  properties[PROP_KEEPALIVE_INTERVAL] =
    g_param_spec_uint ("keepalive-interval", NULL, NULL,
                       RNDZ_DTLS_MIN_KEEPALIVE_MS, G_MAXUINT / RNDZ_DTLS_DEAD_INTERVALS,
                       RNDZ_DTLS_DEFAULT_KEEPALIVE_MS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzDtlsChannel:closed:
   *
   * Whether the channel is closed, for good. See
   * [signal@Rndz.DtlsChannel::closed].
   *
   * Since: 1.0
   */
  properties[PROP_CLOSED] =
    g_param_spec_boolean ("closed", NULL, NULL, FALSE, ro);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * RndzDtlsChannel::closed:
   * @channel: the channel
   * @reason: (nullable): why: %RNDZ_ERROR_PATH_DEAD when nothing came
   *   from the peer for three keepalive intervals,
   *   %G_IO_ERROR_CONNECTION_CLOSED when the peer closed the channel
   *   (or ended it with an alert); %NULL when rndz_dtls_channel_close()
   *   closed it
   *
   * Emitted once, when the channel closes. Receives waiting then, and
   * every receive and send after, fail with @reason (or
   * %G_IO_ERROR_CLOSED); datagrams not yet received are dropped.
   *
   * Since: 1.0
   */
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
rndz_dtls_channel_init (RndzDtlsChannel *self)
{
  self->context = g_main_context_ref_thread_default ();
  self->keepalive_ms = RNDZ_DTLS_DEFAULT_KEEPALIVE_MS;
  g_queue_init (&self->incoming);
  g_queue_init (&self->receivers);
}

/* Public API */

/**
 * rndz_dtls_channel_get_socket:
 * @channel: a channel
 *
 * Gets the UDP socket the channel runs on. Do not read from it or send
 * on it: that is the channel's job.
 *
 * Returns: (transfer none): the socket
 *
 * Since: 1.0
 */
GSocket *
rndz_dtls_channel_get_socket (RndzDtlsChannel *channel)
{
  g_return_val_if_fail (RNDZ_IS_DTLS_CHANNEL (channel), NULL);

  return channel->socket;
}

/**
 * rndz_dtls_channel_get_peer_fingerprint:
 * @channel: a channel
 *
 * Gets the fingerprint of the peer's certificate, which the handshake
 * checked: see [property@Rndz.DtlsChannel:peer-fingerprint].
 *
 * Returns: (nullable): the fingerprint, or %NULL before the handshake
 *   verified it
 *
 * Since: 1.0
 */
const char *
rndz_dtls_channel_get_peer_fingerprint (RndzDtlsChannel *channel)
{
  g_return_val_if_fail (RNDZ_IS_DTLS_CHANNEL (channel), NULL);

  return channel->mismatch ? NULL : channel->peer_fingerprint;
}

/**
 * rndz_dtls_channel_get_keepalive_interval:
 * @channel: a channel
 *
 * Gets [property@Rndz.DtlsChannel:keepalive-interval].
 *
 * Returns: the interval, in milliseconds
 *
 * Since: 1.0
 */
guint
rndz_dtls_channel_get_keepalive_interval (RndzDtlsChannel *channel)
{
  g_return_val_if_fail (RNDZ_IS_DTLS_CHANNEL (channel), 0);

  return channel->keepalive_ms;
}

/**
 * rndz_dtls_channel_set_keepalive_interval:
 * @channel: a channel
 * @milliseconds: the interval, from 100
 *
 * Sets [property@Rndz.DtlsChannel:keepalive-interval]; it counts from
 * the last ping and the last sign of life of the peer, so a shorter one
 * may send a ping now, or find the path dead now.
 *
 * Since: 1.0
 */
void
rndz_dtls_channel_set_keepalive_interval (RndzDtlsChannel *channel,
                                          guint            milliseconds)
{
  g_return_if_fail (RNDZ_IS_DTLS_CHANNEL (channel));
  g_return_if_fail (milliseconds >= RNDZ_DTLS_MIN_KEEPALIVE_MS);

  if (channel->keepalive_ms == milliseconds)
    return;
  channel->keepalive_ms = MIN (milliseconds, G_MAXUINT / RNDZ_DTLS_DEAD_INTERVALS);
  rndz_dtls_reschedule (channel);
  g_object_notify_by_pspec (G_OBJECT (channel), properties[PROP_KEEPALIVE_INTERVAL]);
}

/**
 * rndz_dtls_channel_get_max_payload_size:
 * @channel: a channel
 *
 * Gets the size of the largest datagram the channel carries: 1400 bytes
 * ([const@Rndz.DTLS_CHANNEL_PATH_MTU]) less the DTLS record overhead of
 * the cipher the handshake chose (13 bytes of header, 16 of tag, 8 of
 * explicit nonce with AES-GCM) and one byte of the channel's: 1362 with
 * AES-GCM, 1370 with ChaCha20-Poly1305. Larger sends fail with
 * %G_IO_ERROR_MESSAGE_TOO_LARGE.
 *
 * Returns: the size in bytes
 *
 * Since: 1.0
 */
gsize
rndz_dtls_channel_get_max_payload_size (RndzDtlsChannel *channel)
{
  g_return_val_if_fail (RNDZ_IS_DTLS_CHANNEL (channel), 0);

  return channel->max_payload;
}

/**
 * rndz_dtls_channel_send_bytes:
 * @channel: a channel
 * @bytes: the payload of one datagram
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Sends one datagram, encrypted, to the peer. It does not block: when
 * the socket's buffer stays full, the datagram is lost, as it would be
 * on the path.
 *
 * Returns: %TRUE if the datagram went out; %FALSE with
 *   %G_IO_ERROR_MESSAGE_TOO_LARGE when it is larger than
 *   rndz_dtls_channel_get_max_payload_size(), or the reason the channel
 *   closed
 *
 * Since: 1.0
 */
gboolean
rndz_dtls_channel_send_bytes (RndzDtlsChannel  *channel,
                              GBytes           *bytes,
                              GCancellable     *cancellable,
                              GError          **error)
{
  gsize len;
  const guint8 *data;

  g_return_val_if_fail (RNDZ_IS_DTLS_CHANNEL (channel), FALSE);
  g_return_val_if_fail (bytes != NULL, FALSE);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  data = g_bytes_get_data (bytes, &len);
  return rndz_dtls_send_record (channel, RNDZ_DTLS_RECORD_DATA, data, len, error);
}

/**
 * rndz_dtls_channel_receive_bytes:
 * @channel: a channel
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Receives the next datagram from the peer, blocking until one comes.
 * While it blocks, the channel still answers the peer's keepalives, and
 * still finds the path dead.
 *
 * Returns: (transfer full): the payload, or %NULL with an error: the
 *   reason the channel closed, or %G_IO_ERROR_CANCELLED
 *
 * Since: 1.0
 */
GBytes *
rndz_dtls_channel_receive_bytes (RndzDtlsChannel  *channel,
                                 GCancellable     *cancellable,
                                 GError          **error)
{
  g_return_val_if_fail (RNDZ_IS_DTLS_CHANNEL (channel), NULL);

  if (!rndz_dtls_wait (channel, G_IO_IN, -1, cancellable, error) ||
      !rndz_dtls_check_open (channel, error))
    return NULL;
  return g_queue_pop_head (&channel->incoming);
}

static void
destroy_source (gpointer source)
{
  g_source_destroy (source);
  g_source_unref (source);
}

static gboolean
on_receive_cancelled (GCancellable *cancellable,
                      gpointer      user_data)
{
  GTask *task = user_data;
  RndzDtlsChannel *self = g_task_get_source_object (task);

  if (g_queue_remove (&self->receivers, task))
    {
      g_task_return_error_if_cancelled (task);
      g_object_unref (task);
    }
  return G_SOURCE_REMOVE;
}

/**
 * rndz_dtls_channel_receive_bytes_async:
 * @channel: a channel
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): what to call with the datagram
 * @user_data: (closure): data for @callback
 *
 * Receives the next datagram from the peer. Several receives may wait at
 * once; datagrams go to them in turn.
 *
 * Since: 1.0
 */
void
rndz_dtls_channel_receive_bytes_async (RndzDtlsChannel     *channel,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  GBytes *payload;

  g_return_if_fail (RNDZ_IS_DTLS_CHANNEL (channel));

  task = g_task_new (channel, cancellable, callback, user_data);
  g_task_set_source_tag (task, rndz_dtls_channel_receive_bytes_async);
  if (!rndz_dtls_check_open (channel, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  payload = g_queue_pop_head (&channel->incoming);
  if (payload != NULL)
    {
      g_task_return_pointer (task, payload, (GDestroyNotify) g_bytes_unref);
      return;
    }
  if (cancellable != NULL)
    {
      GSource *source = g_cancellable_source_new (cancellable);

      g_source_set_callback (source, G_SOURCE_FUNC (on_receive_cancelled), task, NULL);
      g_source_attach (source, channel->context);
      g_task_set_task_data (task, source, destroy_source);
    }
  g_queue_push_tail (&channel->receivers, g_steal_pointer (&task));
}

/**
 * rndz_dtls_channel_receive_bytes_finish:
 * @channel: a channel
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes rndz_dtls_channel_receive_bytes_async().
 *
 * Returns: (transfer full): the payload, or %NULL with an error: the
 *   reason the channel closed, or %G_IO_ERROR_CANCELLED
 *
 * Since: 1.0
 */
GBytes *
rndz_dtls_channel_receive_bytes_finish (RndzDtlsChannel  *channel,
                                        GAsyncResult     *result,
                                        GError          **error)
{
  g_return_val_if_fail (g_task_is_valid (result, channel), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, rndz_dtls_channel_receive_bytes_async),
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * rndz_dtls_channel_close:
 * @channel: a channel
 *
 * Closes the channel: tells the peer (a DTLS close_notify, after which
 * the peer's channel closes with %G_IO_ERROR_CONNECTION_CLOSED), closes
 * the socket, and emits [signal@Rndz.DtlsChannel::closed] with no
 * reason. Closing a closed channel does nothing. Dropping the last
 * reference to an open channel tells the peer too.
 *
 * Since: 1.0
 */
void
rndz_dtls_channel_close (RndzDtlsChannel *channel)
{
  g_autoptr(RndzDtlsChannel) hold = NULL;

  g_return_if_fail (RNDZ_IS_DTLS_CHANNEL (channel));

  if (channel->phase != RNDZ_DTLS_PHASE_OPEN)
    return;
  hold = g_object_ref (channel);
  rndz_dtls_say_bye (channel);
  rndz_dtls_close (channel, NULL);
  g_socket_close (channel->socket, NULL);
}

/**
 * rndz_dtls_channel_is_closed:
 * @channel: a channel
 *
 * Gets [property@Rndz.DtlsChannel:closed].
 *
 * Returns: whether the channel is closed
 *
 * Since: 1.0
 */
gboolean
rndz_dtls_channel_is_closed (RndzDtlsChannel *channel)
{
  g_return_val_if_fail (RNDZ_IS_DTLS_CHANNEL (channel), TRUE);

  return channel->phase != RNDZ_DTLS_PHASE_OPEN;
}
