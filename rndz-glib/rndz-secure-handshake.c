/* rndz-secure-handshake.c: one handshake, TLS or DTLS
 *
 * SPDX-License-Identifier: MIT
 *
 * What reaching a peer securely and letting one in securely share: the
 * handshake over the path the rendezvous found, with the right protocol
 * for its transport and a time limit. DTLS keeps its own time
 * (gnutls_dtls_set_timeouts()); GIO's TLS has none, so a peer that goes
 * quiet in the middle of a TLS handshake is given up on here.
 */

#include "config.h"

#include "rndz-secure-handshake-private.h"
#include "rndz-dtls-channel-private.h"
#include "rndz-i18n-private.h"
#include "rndz-source-private.h"
#include "rndz-tls-private.h"
#include "rndz-types.h"

typedef struct
{
  GCancellable *cancellable;    /* the caller's, or the timer's */
  GCancellable *caller;
  gulong cancelled_id;
  GSource *timer;
  gboolean timed_out;
} Handshake;

static void
handshake_free (Handshake *handshake)
{
  rndz_source_clear (&handshake->timer);
  if (handshake->caller != NULL)
    g_cancellable_disconnect (handshake->caller, handshake->cancelled_id);
  g_clear_object (&handshake->caller);
  g_clear_object (&handshake->cancellable);
  g_free (handshake);
}

static void
caller_cancelled_cb (GCancellable *caller,
                     gpointer      user_data)
{
  g_cancellable_cancel (user_data);
}

static gboolean
timeout_cb (gpointer user_data)
{
  Handshake *handshake = user_data;

  g_clear_pointer (&handshake->timer, g_source_unref);
  handshake->timed_out = TRUE;
  g_cancellable_cancel (handshake->cancellable);
  return G_SOURCE_REMOVE;
}

static void
handshake_return (GTask   *task,
                  GObject *channel,
                  GError  *error)
{
  Handshake *handshake = g_task_get_task_data (task);

  rndz_source_clear (&handshake->timer);
  if (channel != NULL)
    {
      g_task_return_pointer (task, channel, g_object_unref);
      return;
    }
  if (handshake->timed_out && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_clear_error (&error);
      error = g_error_new_literal (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                                   _("The secure handshake timed out"));
    }
  g_task_return_error (task, error);
}

static void
tls_done_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  GTlsConnection *connection = rndz_tls_handshake_finish (result, &error);

  handshake_return (task, (GObject *) connection, error);
}

static void
dtls_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  RndzDtlsChannel *channel = rndz_dtls_channel_handshake_finish (result, &error);

  handshake_return (task, (GObject *) channel, error);
}

void
rndz_secure_handshake_async (GObject             *path,
                             gboolean             server,
                             RndzIdentity        *identity,
                             const char          *expected,
                             guint                timeout_ms,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);
  Handshake *handshake = g_new0 (Handshake, 1);

  g_task_set_source_tag (task, rndz_secure_handshake_async);
  g_task_set_task_data (task, handshake, (GDestroyNotify) handshake_free);

  if (G_IS_SOCKET (path))
    {
      rndz_dtls_channel_handshake_async (G_SOCKET (path), server, identity, expected, timeout_ms,
                                         cancellable, dtls_done_cb, task);
      return;
    }

  handshake->cancellable = g_cancellable_new ();
  if (cancellable != NULL)
    {
      handshake->caller = g_object_ref (cancellable);
      handshake->cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (caller_cancelled_cb),
                                                       handshake->cancellable, NULL);
    }
  handshake->timer = rndz_timeout_add (context, timeout_ms, timeout_cb, handshake);
  rndz_tls_handshake_async (G_IO_STREAM (path), server, identity, expected,
                            handshake->cancellable, tls_done_cb, task);
}

GObject *
rndz_secure_handshake_finish (GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
