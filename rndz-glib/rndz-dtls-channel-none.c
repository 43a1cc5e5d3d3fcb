/* rndz-dtls-channel-none.c: secure channels in a build without GnuTLS
 *
 * SPDX-License-Identifier: MIT
 *
 * RndzDtlsChannel exists (rndz-dtls-channel.c), so that the API and the
 * introspection data are the same in every build, but no channel ever
 * opens: the handshake fails at once, before it touches the socket, and
 * this file takes the place of rndz-dtls-record.c and
 * rndz-dtls-handshake.c for what the GObject calls. A channel an
 * application makes itself (g_object_new()) stays in its first phase:
 * closed for every purpose, it sends nothing and receives nothing.
 */

#include "config.h"

#include "rndz-dtls-record-private.h"
#include "rndz-i18n-private.h"

static void
set_not_supported (GError **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       _("rndz-glib was built without TLS support"));
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
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;

  g_return_if_fail (G_IS_SOCKET (socket));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, rndz_dtls_channel_handshake_async);
  set_not_supported (&error);
  g_task_return_error (task, error);
}

RndzDtlsChannel *
rndz_dtls_channel_handshake_finish (GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_async_result_is_tagged (result, rndz_dtls_channel_handshake_async),
                        NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

void
rndz_dtls_channel_get_stats (RndzDtlsChannel *channel,
                             RndzDtlsStats   *stats)
{
  g_return_if_fail (RNDZ_IS_DTLS_CHANNEL (channel));

  *stats = channel->stats;
}

/* What rndz-dtls-channel.c calls: a channel that never opened */

gboolean
rndz_dtls_check_open (RndzDtlsChannel  *self,
                      GError          **error)
{
  set_not_supported (error);
  return FALSE;
}

gboolean
rndz_dtls_send_record (RndzDtlsChannel     *self,
                       RndzDtlsRecordType   type,
                       const guint8        *data,
                       gsize                len,
                       GError             **error)
{
  return rndz_dtls_check_open (self, error);
}

GIOCondition
rndz_dtls_condition (RndzDtlsChannel *self)
{
  /* Whoever waits on it wakes at once, and finds it closed */
  return G_IO_HUP | G_IO_ERR;
}

gboolean
rndz_dtls_wait (RndzDtlsChannel  *self,
                GIOCondition      condition,
                gint64            timeout_us,
                GCancellable     *cancellable,
                GError          **error)
{
  return TRUE;
}

void
rndz_dtls_pump (RndzDtlsChannel *self)
{
}

void
rndz_dtls_close (RndzDtlsChannel *self,
                 GError          *reason)
{
  self->phase = RNDZ_DTLS_PHASE_CLOSED;
  g_clear_error (&reason);
}

void
rndz_dtls_reschedule (RndzDtlsChannel *self)
{
}

void
rndz_dtls_teardown (RndzDtlsChannel *self)
{
}

void
rndz_dtls_say_bye (RndzDtlsChannel *self)
{
}

void
rndz_dtls_free_session (RndzDtlsChannel *self)
{
}
