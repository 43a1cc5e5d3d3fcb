/* rndz-source.c: main-context sources the library shares
 *
 * SPDX-License-Identifier: MIT
 *
 * Every source here is attached to the context its caller passes, and
 * its callback runs there.
 */

#include "config.h"

#include "rndz-source-private.h"

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


/* Socket sources
 *
 * While GLib dispatches a source that may not recurse, it takes the
 * source's descriptors out of the context's poll set and puts them back
 * afterwards, and each of these changes wakes the context up: two
 * eventfd writes, two reads and an extra poll for every datagram a
 * socket of the library takes in (a tenth of a rendezvous on loopback).
 * These sources may recurse, so GLib leaves them alone, and do what
 * blocking was for themselves: should a callback run the context again
 * (a signal handler with a nested main loop), the source stops watching
 * its socket until the callback returns, instead of being dispatched
 * inside itself.
 */

typedef struct
{
  GSource source;
  GSocket *socket;
  gpointer tag;                   /* NULL while the socket is not watched */
  gboolean dispatching;
  gboolean paused;                /* while dispatching, in a nested loop */
} SocketSource;

static gboolean
socket_source_dispatch (GSource     *source,
                        GSourceFunc  callback,
                        gpointer     user_data)
{
  SocketSource *self = (SocketSource *) source;
  GSocketSourceFunc func = (GSocketSourceFunc) (void (*) (void)) callback;
  GIOCondition condition;
  gboolean again;

  if (func == NULL)
    return G_SOURCE_REMOVE;

  /* Inside our own callback: not watched until it returns (a descriptor
   * out of the poll set cannot report an error over and over either) */
  if (self->dispatching)
    {
      g_source_remove_unix_fd (source, self->tag);
      self->tag = NULL;
      self->paused = TRUE;
      return G_SOURCE_CONTINUE;
    }

  /* As GIO's own socket sources do: a socket closed under us is watched
   * no more, and the callback hears G_IO_NVAL once, instead of being
   * called for ever on a descriptor that is no longer there */
  if (g_socket_is_closed (self->socket))
    {
      g_source_remove_unix_fd (source, self->tag);
      self->tag = NULL;
      condition = G_IO_NVAL;
    }
  else
    condition = g_source_query_unix_fd (source, self->tag);

  self->dispatching = TRUE;
  again = func (self->socket, condition, user_data);
  self->dispatching = FALSE;
  if (self->paused && !g_source_is_destroyed (source) && !g_socket_is_closed (self->socket))
    self->tag = g_source_add_unix_fd (source, g_socket_get_fd (self->socket), G_IO_IN);
  self->paused = FALSE;
  return again;
}

static void
socket_source_finalize (GSource *source)
{
  g_clear_object (&((SocketSource *) source)->socket);
}

static GSourceFuncs socket_source_funcs = {
  .dispatch = socket_source_dispatch,
  .finalize = socket_source_finalize,
};

/* Watches @socket for input on @context; named for profilers */
GSource *
rndz_socket_source_add (GSocket           *socket,
                        GMainContext      *context,
                        GSocketSourceFunc  func,
                        gpointer           user_data,
                        const char        *name)
{
  GSource *source = g_source_new (&socket_source_funcs, sizeof (SocketSource));
  SocketSource *self = (SocketSource *) source;

  self->socket = g_object_ref (socket);
  self->tag = g_source_add_unix_fd (source, g_socket_get_fd (socket), G_IO_IN);
  g_source_set_can_recurse (source, TRUE);
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
