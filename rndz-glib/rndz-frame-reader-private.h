/* rndz-frame-reader-private.h: reading exactly one frame from a TCP socket
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-message-private.h"

G_BEGIN_DECLS

/*
 * rndz_frame_read_async:
 * @socket: a connected TCP socket; it is made non-blocking
 * @context: (nullable): the main context to run on; it must be the
 *   thread-default context of the caller, where @callback runs too.
 *   %NULL means the thread-default context.
 * @max_size: the largest payload accepted, in bytes
 * @timeout_ms: how long to wait for the whole frame; 0 for no limit
 *
 * Reads one frame (see rndz_frame_peek()) and not a byte more: what
 * follows it on the connection stays in the socket for whoever reads
 * next. The socket is never closed; that is up to the caller, whatever
 * the outcome.
 */
void     rndz_frame_read_async  (GSocket              *socket,
                                 GMainContext         *context,
                                 gsize                 max_size,
                                 guint                 timeout_ms,
                                 GCancellable         *cancellable,
                                 GAsyncReadyCallback   callback,
                                 gpointer              user_data);

/*
 * rndz_frame_read_finish:
 * @msg: (out caller-allocates): the decoded message
 *
 * Returns: %TRUE with @msg set; %FALSE with @error set:
 *   %G_IO_ERROR_TIMED_OUT, %G_IO_ERROR_CONNECTION_CLOSED (end of stream
 *   before the frame was complete), %G_IO_ERROR_CANCELLED, an error of
 *   the %RNDZ_PROTOCOL_ERROR domain for an invalid frame or message, or
 *   the socket's own error.
 */
gboolean rndz_frame_read_finish (GAsyncResult         *result,
                                 RndzMessage          *msg,
                                 GError              **error);

G_END_DECLS
