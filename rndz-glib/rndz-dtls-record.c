/* rndz-dtls-record.c: records between the socket and GnuTLS; keepalive
 *
 * SPDX-License-Identifier: MIT
 *
 * Every record's plaintext starts with one byte, its RndzDtlsRecordType:
 * data for the application, or a keepalive ping or pong. Anything that
 * authenticates counts as a sign of life of the peer; whatever does not
 * is dropped by GnuTLS (and counted: gnutls_record_get_discarded()), so
 * that only the peer's data ever reaches the application.
 *
 * Keepalive: a ping goes out when nothing was sent, or nothing heard,
 * for an interval (and no ping went out in the last one; the server
 * waits a quarter of an interval more); the peer answers each with a
 * pong. Nothing heard for RNDZ_DTLS_DEAD_INTERVALS
 * intervals closes the channel with RNDZ_ERROR_PATH_DEAD. One deadline
 * source carries both timers; it is not moved on every datagram: when it
 * fires early, it works out the real deadlines again.
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include <gnutls/dtls.h>

#include "rndz-dtls-record-private.h"
#include "rndz-i18n-private.h"
#include "rndz-source-private.h"

/* How long a send waits for room in a full socket buffer before it lets
 * the datagram go, as a lossy path would: the buffer drains at line rate,
 * and DTLS copes with loss. (GnuTLS cannot be told to drop a record it
 * could not send: it would pass it off as the next one.) */
#define SEND_WAIT_US 10000
/* Datagrams read per dispatch, so that a flood cannot starve the context */
#define READ_BATCH 64
/* gnutls_record_recv() calls per datagram: its records, and what GnuTLS
 * had buffered (a DTLS datagram holds at most 1400 / 13 records) */
#define MAX_RECORD_CALLS 128

/* Transport: GnuTLS pushes straight to the socket, and pulls only the
 * datagram that rndz_dtls_read_datagram() read for it */

static ssize_t
transport_push (gnutls_transport_ptr_t  ptr,
                const void             *data,
                size_t                  len)
{
  RndzDtlsChannel *self = ptr;
  g_autoptr(GError) error = NULL;
  gssize sent;

  sent = g_socket_send (self->socket, data, len, NULL, &error);
  if (sent < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    {
      g_clear_error (&error);
      if (g_socket_condition_timed_wait (self->socket, G_IO_OUT, SEND_WAIT_US, NULL, NULL))
        sent = g_socket_send (self->socket, data, len, NULL, &error);
    }
  if (sent < 0)
    {
      /* ECONNREFUSED (an ICMP error about an earlier datagram, as when
       * the peer's socket is not there yet), a buffer still full: the
       * datagram is lost, as on any path. An error here would end the
       * GnuTLS session for good; retransmissions and keepalives cope. */
      self->stats.send_failures++;
      return len;
    }
  return sent;
}

static ssize_t
transport_pull (gnutls_transport_ptr_t  ptr,
                void                   *data,
                size_t                  len)
{
  RndzDtlsChannel *self = ptr;
  gsize n;

  if (!self->in_full)
    {
      gnutls_transport_set_errno (self->session, EAGAIN);
      return -1;
    }
  n = MIN (len, self->in_len);
  memcpy (data, self->in_buf, n);
  self->in_full = FALSE;
  return n;
}

static int
transport_pull_timeout (gnutls_transport_ptr_t ptr,
                        unsigned int           ms)
{
  RndzDtlsChannel *self = ptr;

  /* Never blocks: the session is GNUTLS_NONBLOCK, and the main context
   * does the waiting */
  return self->in_full ? 1 : 0;
}

void
rndz_dtls_transport_init (RndzDtlsChannel *self)
{
  gnutls_transport_set_ptr (self->session, self);
  gnutls_transport_set_push_function (self->session, transport_push);
  gnutls_transport_set_pull_function (self->session, transport_pull);
  gnutls_transport_set_pull_timeout_function (self->session, transport_pull_timeout);
}

/* Reads one datagram for GnuTLS; FALSE when the socket has none */
gboolean
rndz_dtls_read_datagram (RndzDtlsChannel *self)
{
  guint attempt;

  for (attempt = 0; attempt < 8; attempt++)
    {
      g_autoptr(GError) error = NULL;
      gssize n;

      n = g_socket_receive (self->socket, (char *) self->in_buf,
                            sizeof self->in_buf, NULL, &error);
      if (n == 0)
        {
          /* GnuTLS would take an empty read for the end of the
           * transport, and end the session: anyone could send one */
          self->stats.datagrams_in++;
          self->stats.dropped++;
          continue;
        }
      if (n > 0)
        {
          self->in_len = n;
          self->in_full = TRUE;
          self->stats.datagrams_in++;
          return TRUE;
        }
      /* An ICMP error about a datagram we sent: the next one may be there */
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
        return FALSE;
    }
  return FALSE;
}

/* Closing */

gboolean
rndz_dtls_check_open (RndzDtlsChannel  *self,
                      GError          **error)
{
  if (self->phase == RNDZ_DTLS_PHASE_OPEN)
    return TRUE;
  if (self->close_reason != NULL)
    g_propagate_error (error, g_error_copy (self->close_reason));
  else
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                         _("The secure channel is closed"));
  return FALSE;
}

void
rndz_dtls_teardown (RndzDtlsChannel *self)
{
  rndz_source_clear (&self->read_source);
  rndz_source_clear (&self->timer);
  rndz_source_clear (&self->cancel_source);
}

/* Tells the peer the channel closes (a close_notify alert), without
 * waiting for its answer */
void
rndz_dtls_say_bye (RndzDtlsChannel *self)
{
  if (self->session != NULL)
    gnutls_bye (self->session, GNUTLS_SHUT_WR);
}

void
rndz_dtls_free_session (RndzDtlsChannel *self)
{
  g_clear_pointer (&self->session, gnutls_deinit);
}

static void
fail_receivers (RndzDtlsChannel *self)
{
  GTask *task;

  while ((task = g_queue_pop_head (&self->receivers)) != NULL)
    {
      g_autoptr(GError) error = NULL;

      rndz_dtls_check_open (self, &error);
      g_task_return_error (task, g_steal_pointer (&error));
      g_object_unref (task);
    }
}

/* Closes the channel for good, for @reason (transfer full; NULL when its
 * owner closed it): what is queued is dropped, what waits fails */
void
rndz_dtls_close (RndzDtlsChannel *self,
                 GError          *reason)
{
  g_autoptr(RndzDtlsChannel) hold = NULL;

  if (self->phase == RNDZ_DTLS_PHASE_CLOSED)
    {
      g_clear_error (&reason);
      return;
    }

  /* The handlers may drop the last reference */
  hold = g_object_ref (self);
  self->phase = RNDZ_DTLS_PHASE_CLOSED;
  self->close_reason = reason;
  rndz_dtls_teardown (self);
  g_queue_clear_full (&self->incoming, (GDestroyNotify) g_bytes_unref);
  fail_receivers (self);
  g_object_notify (G_OBJECT (self), "closed");
  g_signal_emit_by_name (self, "closed", reason);
}

/* Sending */

gboolean
rndz_dtls_send_record (RndzDtlsChannel     *self,
                       RndzDtlsRecordType   type,
                       const guint8        *data,
                       gsize                len,
                       GError             **error)
{
  guint8 record[RNDZ_DTLS_DATAGRAM_MAX];
  ssize_t ret;

  if (!rndz_dtls_check_open (self, error))
    return FALSE;
  if (len > self->max_payload)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                   _("A datagram of %lu bytes is larger than the %lu bytes a secure "
                     "channel carries"),
                   (gulong) len, (gulong) self->max_payload);
      return FALSE;
    }

  record[0] = type;
  if (len > 0)
    memcpy (record + 1, data, len);
  /* The push function never reports EAGAIN: no retry to make */
  ret = gnutls_record_send (self->session, record, len + 1);
  if (ret < 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("Could not send on the secure channel: %s"), gnutls_strerror (ret));
      return FALSE;
    }
  self->last_sent = g_get_monotonic_time ();
  return TRUE;
}

/* Receiving */

static void
deliver (RndzDtlsChannel *self,
         GBytes          *payload)
{
  GTask *task = g_queue_pop_head (&self->receivers);

  if (task != NULL)
    {
      g_task_return_pointer (task, payload, (GDestroyNotify) g_bytes_unref);
      g_object_unref (task);
      return;
    }
  if (self->incoming.length >= RNDZ_DTLS_QUEUE_MAX)
    {
      self->stats.overflow++;
      g_bytes_unref (payload);
      return;
    }
  g_queue_push_tail (&self->incoming, payload);
}

static void
take_record (RndzDtlsChannel *self,
             const guint8    *record,
             gsize            len)
{
  switch (record[0])
    {
    case RNDZ_DTLS_RECORD_DATA:
      deliver (self, g_bytes_new (record + 1, len - 1));
      break;
    case RNDZ_DTLS_RECORD_PING:
      if (rndz_dtls_send_record (self, RNDZ_DTLS_RECORD_PONG, NULL, 0, NULL))
        self->stats.pongs_sent++;
      break;
    default:
      /* A pong (its arrival was the point), or a type of a later
       * version: authentic, so the peer lives, but nothing to do */
      break;
    }
}

/* An error of gnutls_record_recv() after the handshake */
static void
take_error (RndzDtlsChannel *self,
            int              ret)
{
  if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
    {
      /* Alerts come encrypted after the handshake: the peer sent it */
      gnutls_alert_description_t alert = gnutls_alert_get (self->session);

      rndz_dtls_close (self, g_error_new (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                          _("The peer ended the secure channel (%s)"),
                                          gnutls_alert_get_name (alert)));
      return;
    }
  /* A renegotiation the peer asks for (refused by ignoring it), or a
   * record GnuTLS would not take: the datagram goes, and if the session
   * stays broken, the keepalive finds the path dead */
  self->stats.dropped++;
  g_debug ("Secure channel: record dropped: %s", gnutls_strerror (ret));
}

/* Takes the records of the datagram just read */
static void
take_records (RndzDtlsChannel *self)
{
  guint8 record[RNDZ_DTLS_DATAGRAM_MAX];
  guint calls;

  for (calls = 0; calls < MAX_RECORD_CALLS && self->phase == RNDZ_DTLS_PHASE_OPEN; calls++)
    {
      ssize_t ret = gnutls_record_recv (self->session, record, sizeof record);

      if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
        {
          /* GnuTLS may stop at what was left of an earlier datagram
           * (the peer's retransmitted last flight, which it discards)
           * before it pulls this one: ask until it did */
          if (!self->in_full)
            return;
          continue;
        }
      if (ret == 0)
        {
          rndz_dtls_close (self, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                                      _("The peer closed the secure channel")));
          return;
        }
      if (ret < 0)
        {
          take_error (self, ret);
          return;
        }
      self->last_heard = g_get_monotonic_time ();
      take_record (self, record, ret);
    }
}

/* Reads what the socket holds (a batch at most) */
void
rndz_dtls_pump (RndzDtlsChannel *self)
{
  g_autoptr(RndzDtlsChannel) hold G_GNUC_UNUSED = g_object_ref (self);
  guint i;

  for (i = 0; i < READ_BATCH && self->phase == RNDZ_DTLS_PHASE_OPEN; i++)
    {
      if (!rndz_dtls_read_datagram (self))
        break;
      take_records (self);
      self->in_full = FALSE;
    }
}

static gboolean
on_readable (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  rndz_dtls_pump (user_data);
  return G_SOURCE_CONTINUE;
}

/* Keepalive */

static gint64
next_ping (RndzDtlsChannel *self,
           gint64           interval)
{
  gint64 quiet = interval;

  /* Both sides would ping at the same moments, each before the other's
   * ping came: the server waits a quarter longer, so that while the
   * client pings it only answers (half the traffic at rest) */
  if (self->server)
    quiet += interval / 4;
  return MAX (self->last_ping, MIN (self->last_sent, self->last_heard)) + quiet;
}

void
rndz_dtls_reschedule (RndzDtlsChannel *self)
{
  gint64 interval = (gint64) self->keepalive_ms * 1000;
  gint64 dead = self->last_heard + RNDZ_DTLS_DEAD_INTERVALS * interval;

  if (self->timer != NULL && self->phase == RNDZ_DTLS_PHASE_OPEN)
    g_source_set_ready_time (self->timer, MIN (dead, next_ping (self, interval)));
}

static void
keepalive_tick (RndzDtlsChannel *self)
{
  gint64 now = g_get_monotonic_time ();
  gint64 interval = (gint64) self->keepalive_ms * 1000;

  if (self->phase != RNDZ_DTLS_PHASE_OPEN)
    return;
  if (now - self->last_heard >= RNDZ_DTLS_DEAD_INTERVALS * interval)
    {
      rndz_dtls_close (self, g_error_new (RNDZ_ERROR, RNDZ_ERROR_PATH_DEAD,
                                          _("Nothing came from the peer for %u ms: the path is dead"),
                                          RNDZ_DTLS_DEAD_INTERVALS * self->keepalive_ms));
      return;
    }
  if (now >= next_ping (self, interval))
    {
      if (rndz_dtls_send_record (self, RNDZ_DTLS_RECORD_PING, NULL, 0, NULL))
        self->stats.pings_sent++;
      self->last_ping = now;
    }
  rndz_dtls_reschedule (self);
}

static gboolean
on_keepalive (gpointer user_data)
{
  g_autoptr(RndzDtlsChannel) self = g_object_ref (user_data);

  keepalive_tick (self);
  return G_SOURCE_CONTINUE;
}

/* The handshake is done: the channel carries data, and keeps alive */
void
rndz_dtls_open (RndzDtlsChannel *self)
{
  gint64 now = g_get_monotonic_time ();

  self->phase = RNDZ_DTLS_PHASE_OPEN;
  self->last_heard = self->last_sent = self->last_ping = now;
  self->max_payload = gnutls_dtls_get_data_mtu (self->session) - 1;
  g_debug ("Secure channel open: %s, %" G_GSIZE_FORMAT " bytes of payload at most",
           gnutls_cipher_get_name (gnutls_cipher_get (self->session)), self->max_payload);
  rndz_dtls_teardown (self);
  self->read_source = rndz_socket_source_add (self->socket, self->context, on_readable,
                                              self, "[rndz] secure channel");
  self->timer = rndz_deadline_source_new (self->context, "[rndz] secure channel keepalive",
                                          on_keepalive, self);
  rndz_dtls_reschedule (self);
}

/* What the channel can do now, without waiting */
GIOCondition
rndz_dtls_condition (RndzDtlsChannel *self)
{
  GIOCondition condition = G_IO_OUT;

  /* Not open yet counts as closed: only a channel that its handshake
   * made is ever open */
  if (self->phase != RNDZ_DTLS_PHASE_OPEN)
    return G_IO_HUP | G_IO_ERR;
  if (self->incoming.length > 0)
    condition |= G_IO_IN;
  return condition;
}

/* Blocks until @condition (or the channel closed), reading the socket
 * and keeping the path alive meanwhile. @timeout_us: 0 checks once (then
 * G_IO_ERROR_WOULD_BLOCK), < 0 waits for ever, else G_IO_ERROR_TIMED_OUT */
gboolean
rndz_dtls_wait (RndzDtlsChannel  *self,
                GIOCondition      condition,
                gint64            timeout_us,
                GCancellable     *cancellable,
                GError          **error)
{
  g_autoptr(RndzDtlsChannel) hold G_GNUC_UNUSED = g_object_ref (self);
  gint64 deadline = timeout_us > 0 ? g_get_monotonic_time () + timeout_us : -1;

  condition |= G_IO_HUP | G_IO_ERR;
  for (;;)
    {
      gint64 now, wake;

      rndz_dtls_pump (self);
      now = g_get_monotonic_time ();
      wake = self->timer != NULL ? g_source_get_ready_time (self->timer) : -1;
      if (wake >= 0 && wake <= now)
        keepalive_tick (self);
      if (rndz_dtls_condition (self) & condition)
        return TRUE;
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (timeout_us == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                               _("Nothing to receive on the secure channel"));
          return FALSE;
        }
      if (deadline >= 0 && now >= deadline)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                               _("Timed out waiting on the secure channel"));
          return FALSE;
        }
      wake = self->timer != NULL ? g_source_get_ready_time (self->timer) : -1;
      if (deadline >= 0 && (wake < 0 || deadline < wake))
        wake = deadline;
      g_socket_condition_timed_wait (self->socket, G_IO_IN,
                                     wake < 0 ? -1 : MAX (wake - now, 0),
                                     cancellable, NULL);
    }
}

void
rndz_dtls_channel_get_stats (RndzDtlsChannel *channel,
                             RndzDtlsStats   *stats)
{
  g_return_if_fail (RNDZ_IS_DTLS_CHANNEL (channel));

  *stats = channel->stats;
  if (channel->session != NULL)
    stats->dropped += gnutls_record_get_discarded (channel->session);
}
