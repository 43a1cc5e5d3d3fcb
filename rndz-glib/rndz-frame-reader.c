/* rndz-frame-reader.c: reading exactly one frame from a TCP socket
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-frame-reader-private.h"
#include "rndz-channel-private.h"
#include "rndz-peer-context-private.h"
#include "rndz-source-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

/* A connection handed to the application starts with one frame of ours
 * (a relay's `ready`, a peer's `use`); everything after it is the
 * application's. RndzChannel reads as much as the socket has, so it
 * cannot be used there: this reads the two header bytes, then exactly
 * the payload they announce, with no buffer beyond that payload.
 *
 * Phases: header (header_len < 2), payload (payload != NULL), done
 * (task == NULL).
 */

typedef struct
{
  GTask *task;                    /* owned while reading */
  GSocket *socket;
  GMainContext *context;
  gsize max_size;

  GSource *source;
  GSource *timeout;
  GSource *cancel;

  guint8 header[RNDZ_FRAME_HEADER_SIZE];
  gsize header_len;
  guint8 *payload;                /* once the header is complete */
  gsize payload_size;
  gsize payload_len;

  RndzMessage msg;                /* the result */
} FrameRead;

static void
frame_read_stop (FrameRead *read)
{
  rndz_source_clear (&read->source);
  rndz_source_clear (&read->timeout);
  rndz_source_clear (&read->cancel);
  g_clear_pointer (&read->payload, g_free);
}

static void
frame_read_free (FrameRead *read)
{
  frame_read_stop (read);
  g_object_unref (read->socket);
  g_main_context_unref (read->context);
  g_free (read);
}

/* g_task_return_*() may run the callback at once, and the callback may
 * drop the last reference to the task and so free @read: nothing may
 * touch @read after these. */
static void
frame_read_return_error (FrameRead *read,
                         GError    *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&read->task);

  frame_read_stop (read);
  g_task_return_error (task, error);
}

static void
frame_read_return_message (FrameRead *read)
{
  g_autoptr(GTask) task = g_steal_pointer (&read->task);

  frame_read_stop (read);
  g_task_return_boolean (task, TRUE);
}

/* Fills @buf up to @size bytes, from where *@len says it stands. Fails
 * with %G_IO_ERROR_WOULD_BLOCK while the socket has nothing more yet. */
static gboolean
fill (GSocket  *socket,
      guint8   *buf,
      gsize     size,
      gsize    *len,
      GError  **error)
{
  while (*len < size)
    {
      gssize n;

      n = g_socket_receive (socket, (char *) buf + *len, size - *len, NULL, error);
      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                               _("Connection closed before a whole message arrived"));
          return FALSE;
        }
      *len += n;
    }

  return TRUE;
}

/* Reads what the socket has of the frame; TRUE once it is decoded */
static gboolean
frame_read_step (FrameRead  *read,
                 GError    **error)
{
  if (read->payload == NULL)
    {
      if (!fill (read->socket, read->header, sizeof read->header, &read->header_len, error))
        return FALSE;

      /* The codec's checks (empty, too large) and its messages; it
       * answers 0, "more needed", for any valid header alone. */
      if (rndz_frame_peek (read->header, read->header_len, read->max_size, error) < 0)
        return FALSE;

      read->payload_size = ((gsize) read->header[0] << 8) | read->header[1];
      read->payload = g_malloc (read->payload_size);
    }

  if (!fill (read->socket, read->payload, read->payload_size, &read->payload_len, error))
    return FALSE;

  return rndz_message_decode (&read->msg, (const char *) read->payload, read->payload_size,
                              read->max_size, error);
}

static gboolean
frame_read_ready_cb (GSocket      *socket,
                     GIOCondition  condition,
                     gpointer      user_data)
{
  FrameRead *read = user_data;
  g_autoptr(GError) error = NULL;

  if (frame_read_step (read, &error))
    frame_read_return_message (read);
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;
  else
    frame_read_return_error (read, g_steal_pointer (&error));

  /* @read may be gone; its source was destroyed before it went */
  return G_SOURCE_REMOVE;
}

static gboolean
frame_read_timeout_cb (gpointer user_data)
{
  FrameRead *read = user_data;

  frame_read_return_error (read, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                                      _("Timed out waiting for a message")));
  return G_SOURCE_REMOVE;
}

static gboolean
frame_read_cancelled_cb (GCancellable *cancellable,
                         gpointer      user_data)
{
  FrameRead *read = user_data;

  frame_read_return_error (read, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                                      _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

void
rndz_frame_read_async (GSocket             *socket,
                       GMainContext        *context,
                       gsize                max_size,
                       guint                timeout_ms,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             user_data)
{
  FrameRead *read;

  g_return_if_fail (G_IS_SOCKET (socket));
  g_return_if_fail (max_size > 0 && max_size <= RNDZ_MESSAGE_MAX_MAX_SIZE);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  read = g_new0 (FrameRead, 1);
  /* Callers run in @context: the callback runs there too */
  read->task = context != NULL ? rndz_task_new_in (context, cancellable, callback, user_data)
                               : g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (read->task, rndz_frame_read_async);
  g_task_set_name (read->task, "[rndz] frame read");
  g_task_set_task_data (read->task, read, (GDestroyNotify) frame_read_free);

  read->socket = g_object_ref (socket);
  read->context = context != NULL ? g_main_context_ref (context)
                                  : g_main_context_ref_thread_default ();
  read->max_size = max_size;
  g_socket_set_blocking (socket, FALSE);

  /* Nothing is read before the first dispatch: the callback never runs
   * from within this function. */
  read->source = rndz_socket_source_add (socket, read->context, frame_read_ready_cb, read,
                                        "[rndz] frame read");

  if (timeout_ms > 0)
    read->timeout = rndz_timeout_add (read->context, timeout_ms, frame_read_timeout_cb, read);

  if (cancellable != NULL)
    {
      read->cancel = g_cancellable_source_new (cancellable);
      g_source_set_callback (read->cancel, G_SOURCE_FUNC (frame_read_cancelled_cb), read, NULL);
      g_source_set_static_name (read->cancel, "[rndz] frame read cancelled");
      g_source_attach (read->cancel, read->context);
    }
}

gboolean
rndz_frame_read_finish (GAsyncResult  *result,
                        RndzMessage   *msg,
                        GError       **error)
{
  GTask *task = G_TASK (result);
  FrameRead *read;

  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (task) == rndz_frame_read_async, FALSE);
  g_return_val_if_fail (msg != NULL, FALSE);

  if (!g_task_propagate_boolean (task, error))
    return FALSE;

  read = g_task_get_task_data (task);
  *msg = read->msg;
  return TRUE;
}
