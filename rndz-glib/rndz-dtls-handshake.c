/* rndz-dtls-handshake.c: the DTLS 1.2 handshake of a secure channel
 *
 * SPDX-License-Identifier: MIT
 *
 * One GTask, whose source object is the channel, through these phases:
 *
 *  1. setup: a GnuTLS session over the connected socket: DTLS 1.2 only,
 *     ECDHE key exchange and AEAD ciphers only, a 1400-byte path, and a
 *     certificate required of the peer whichever side it is.
 *  2. flights: gnutls_handshake() runs whenever a datagram comes and
 *     whenever GnuTLS's retransmission timer (gnutls_dtls_get_timeout())
 *     runs out, until it completes or fails.
 *  3. verify: inside the handshake, as soon as the peer's certificate
 *     arrives, its SHA-256 fingerprint must be the expected one
 *     (verify_peer()): else the handshake fails before this side sends
 *     its Finished, and no data ever flows.
 *  4. open: the channel carries data (rndz-dtls-record.c); the task
 *     returns it.
 *
 * The deadline (timeout_ms) and the cancellable end phase 2 early.
 *
 * No DTLS cookies (gnutls_dtls_cookie_send/verify): they keep a server
 * from spending state on ClientHellos from spoofed addresses, but this
 * socket is connected to the one peer the rendezvous admitted, and the
 * kernel hands it nothing from anywhere else.
 */

#include "config.h"

#include <gnutls/dtls.h>

#include "rndz-dtls-record-private.h"
#include "rndz-i18n-private.h"
#include "rndz-identity-private.h"
#include "rndz-source-private.h"

/* DTLS 1.2 only; forward secrecy (ECDHE) and authenticated encryption
 * (AEAD: AES-GCM, ChaCha20-Poly1305) only */
#define PRIORITY "NORMAL:-VERS-ALL:+VERS-DTLS1.2:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:" \
                 "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:-MAC-ALL:+AEAD"
/* The first retransmission of a flight; GnuTLS doubles it each time */
#define RETRANSMIT_MS 400
/* gnutls_handshake() calls in a row that may report a non-fatal event */
#define MAX_STEPS 16

/* Phase 3: GnuTLS calls this when the peer's certificate has come */
static int
verify_peer (gnutls_session_t session)
{
  RndzDtlsChannel *self = gnutls_session_get_ptr (session);
  const gnutls_datum_t *certificates;
  unsigned int n = 0;
  g_autofree char *fingerprint = NULL;

  certificates = gnutls_certificate_get_peers (session, &n);
  if (certificates != NULL && n > 0)
    fingerprint = rndz_fingerprint_of_der (certificates[0].data, certificates[0].size);
  if (fingerprint == NULL || g_strcmp0 (fingerprint, self->expected) != 0)
    {
      self->mismatch = TRUE;
      g_free (self->peer_fingerprint);
      self->peer_fingerprint = g_steal_pointer (&fingerprint);
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
  g_free (self->peer_fingerprint);
  self->peer_fingerprint = g_steal_pointer (&fingerprint);
  return 0;
}

/* Phase 1 */
static gboolean
session_setup (RndzDtlsChannel                  *self,
               gboolean                          server,
               gnutls_certificate_credentials_t  credentials,
               guint                             timeout_ms,
               GError                          **error)
{
  unsigned int flags = GNUTLS_DATAGRAM | GNUTLS_NONBLOCK;
  int ret;

  ret = gnutls_init (&self->session, flags | (server ? GNUTLS_SERVER : GNUTLS_CLIENT));
  if (ret == 0)
    ret = gnutls_priority_set_direct (self->session, PRIORITY, NULL);
  if (ret == 0)
    ret = gnutls_credentials_set (self->session, GNUTLS_CRD_CERTIFICATE, credentials);
  if (ret != 0)
    {
      g_set_error (error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                   _("Could not set up DTLS: %s"), gnutls_strerror (ret));
      return FALSE;
    }
  self->server = server;
  if (server)
    gnutls_certificate_server_set_request (self->session, GNUTLS_CERT_REQUIRE);
  gnutls_session_set_ptr (self->session, self);
  gnutls_session_set_verify_function (self->session, verify_peer);
  gnutls_dtls_set_mtu (self->session, RNDZ_DTLS_CHANNEL_PATH_MTU);
  gnutls_dtls_set_timeouts (self->session, RETRANSMIT_MS, timeout_ms);
  rndz_dtls_transport_init (self);
  return TRUE;
}

static void
handshake_fail (RndzDtlsChannel *self,
                GError          *error)
{
  GTask *task = g_steal_pointer (&self->handshake);

  rndz_dtls_teardown (self);
  self->phase = RNDZ_DTLS_PHASE_CLOSED;
  if (task == NULL)
    {
      g_error_free (error);
      return;
    }
  g_task_return_error (task, error);
  g_object_unref (task);
}

static GError *
handshake_error (RndzDtlsChannel *self,
                 int              ret)
{
  if (self->mismatch)
    return g_error_new (RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH,
                        _("The peer's certificate has the fingerprint %s, not %s"),
                        self->peer_fingerprint != NULL ? self->peer_fingerprint : _("(none)"),
                        self->expected);
  if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
    return g_error_new (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                        _("The peer ended the DTLS handshake (%s)"),
                        gnutls_alert_get_name (gnutls_alert_get (self->session)));
  return g_error_new (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                      _("The DTLS handshake failed: %s"), gnutls_strerror (ret));
}

static void
handshake_done (RndzDtlsChannel *self)
{
  GTask *task = g_steal_pointer (&self->handshake);

  /* The verify function is what sets the fingerprint; a handshake
   * without it would be one without the peer's certificate */
  if (self->peer_fingerprint == NULL)
    {
      self->mismatch = TRUE;
      self->handshake = task;
      handshake_fail (self, handshake_error (self, GNUTLS_E_NO_CERTIFICATE_FOUND));
      return;
    }
  rndz_dtls_open (self);
  g_task_return_pointer (task, g_object_ref (self), g_object_unref);
  g_object_unref (task);
}

/* Phase 2: one step of the handshake, now that a datagram came or the
 * retransmission timer ran out */
static void
handshake_step (RndzDtlsChannel *self)
{
  int ret;
  guint steps = 0;

  do
    ret = gnutls_handshake (self->session);
  while (ret < 0 && ret != GNUTLS_E_AGAIN && !gnutls_error_is_fatal (ret) && ++steps < MAX_STEPS);

  if (ret == 0)
    {
      handshake_done (self);
      return;
    }
  if (ret < 0 && gnutls_error_is_fatal (ret))
    {
      /* Tell the peer, so that it fails now rather than at its deadline */
      if (ret != GNUTLS_E_FATAL_ALERT_RECEIVED)
        gnutls_alert_send_appropriate (self->session, ret);
      handshake_fail (self, handshake_error (self, ret));
      return;
    }
  g_source_set_ready_time (self->timer,
                           MIN (self->handshake_deadline,
                                g_get_monotonic_time () +
                                (gint64) gnutls_dtls_get_timeout (self->session) * 1000));
}

static gboolean
on_handshake_readable (GSocket      *socket,
                       GIOCondition  condition,
                       gpointer      user_data)
{
  g_autoptr(RndzDtlsChannel) self = g_object_ref (user_data);
  guint i;

  for (i = 0; i < MAX_STEPS && self->handshake != NULL; i++)
    {
      guint steps;

      if (!rndz_dtls_read_datagram (self))
        break;
      /* As for records: GnuTLS may finish with what it had buffered
       * before it pulls the new datagram */
      for (steps = 0; steps < MAX_STEPS && self->in_full && self->handshake != NULL; steps++)
        handshake_step (self);
      self->in_full = FALSE;
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_handshake_timer (gpointer user_data)
{
  g_autoptr(RndzDtlsChannel) self = g_object_ref (user_data);

  if (g_get_monotonic_time () >= self->handshake_deadline)
    handshake_fail (self, g_error_new_literal (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                                               _("The peer did not complete the DTLS handshake in time")));
  else
    handshake_step (self);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_handshake_cancelled (GCancellable *cancellable,
                        gpointer      user_data)
{
  g_autoptr(RndzDtlsChannel) self = g_object_ref (user_data);
  GError *error = NULL;

  g_cancellable_set_error_if_cancelled (cancellable, &error);
  handshake_fail (self, error);
  return G_SOURCE_REMOVE;
}

static void
watch_handshake (RndzDtlsChannel *self,
                 GCancellable    *cancellable)
{
  self->read_source = rndz_socket_source_add (self->socket, self->context,
                                              on_handshake_readable, self,
                                              "[rndz] secure channel handshake");
  self->timer = rndz_deadline_source_new (self->context, "[rndz] secure channel handshake timer",
                                          on_handshake_timer, self);
  if (cancellable != NULL)
    {
      self->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (self->cancel_source, G_SOURCE_FUNC (on_handshake_cancelled),
                             self, NULL);
      g_source_set_static_name (self->cancel_source, "[rndz] secure channel cancellation");
      g_source_attach (self->cancel_source, self->context);
    }
}

void
rndz_dtls_channel_handshake_async (GSocket             *socket,
                                   gboolean             server,
                                   RndzIdentity        *identity,
                                   const char          *expected,
                                   guint                timeout_ms,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(RndzDtlsChannel) self = NULL;
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (G_IS_SOCKET (socket));
  g_return_if_fail (RNDZ_IS_IDENTITY (identity));
  g_return_if_fail (expected != NULL);

  self = g_object_new (RNDZ_TYPE_DTLS_CHANNEL, "socket", socket, NULL);
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, rndz_dtls_channel_handshake_async);
  self->expected = g_strdup (expected);
  /* It owns the credentials the session uses */
  self->identity = g_object_ref (identity);

  if (!session_setup (self, server, rndz_identity_get_credentials (identity), timeout_ms, &error))
    {
      self->phase = RNDZ_DTLS_PHASE_CLOSED;
      g_task_return_error (task, error);
      return;
    }
  g_socket_set_blocking (socket, FALSE);
  self->handshake = g_object_ref (task);
  self->handshake_deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  watch_handshake (self, cancellable);
  handshake_step (self);
}

RndzDtlsChannel *
rndz_dtls_channel_handshake_finish (GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_async_result_is_tagged (result, rndz_dtls_channel_handshake_async),
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
