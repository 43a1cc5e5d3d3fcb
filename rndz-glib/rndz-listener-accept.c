/* rndz-listener-accept.c: the connections a listener hands out
 *
 * SPDX-License-Identifier: MIT
 *
 * TCP connections of requesters (direct, or through the relay) wait
 * here, at most MAX_INCOMING of them, for the application's accept; an
 * accept waits here for a connection. rndz-listener-requests.c delivers
 * them, and calls nothing else here.
 */

#include "config.h"

#include "rndz-listener-internal.h"
#include "rndz-i18n-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"

/* An accept waiting for a connection */
typedef struct
{
  RndzListener *listener;
  GTask *task;
  GSource *cancel_source;
} Waiter;

/* A connection of @peer_id (@fingerprint: what it asked for, or %NULL):
 * to the first accept waiting, else into the queue (closed if the queue
 * is full) */
void
rndz_listener_deliver (RndzListener *listener,
                       const char   *peer_id,
                       const char   *fingerprint,
                       GSocket      *socket,
                       RndzPath      path)
{
  RndzIncoming *incoming = g_new0 (RndzIncoming, 1);
  Waiter *waiter;

  rndz_socket_set_path (socket, path);
  incoming->connection = g_socket_connection_factory_create_connection (socket);
  incoming->peer_id = g_strdup (peer_id);
  incoming->fingerprint = g_strdup (fingerprint);
  g_socket_set_blocking (socket, TRUE);

  waiter = g_queue_pop_head (&listener->waiters);
  if (waiter != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

      rndz_source_clear (&waiter->cancel_source);
      g_free (waiter);
      g_task_return_pointer (task, incoming, (GDestroyNotify) rndz_incoming_free);
      return;
    }

  if (listener->incoming.length >= MAX_INCOMING)
    {
      g_debug ("Closing the connection of “%s”: nobody accepts", peer_id);
      rndz_incoming_free (incoming);
      return;
    }

  g_queue_push_tail (&listener->incoming, incoming);
}

static gboolean
waiter_cancelled_cb (GCancellable *cancellable,
                     gpointer      user_data)
{
  Waiter *waiter = user_data;
  g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

  g_queue_remove (&waiter->listener->waiters, waiter);
  g_clear_pointer (&waiter->cancel_source, g_source_unref);
  g_free (waiter);
  g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                           _("Operation was cancelled"));
  return G_SOURCE_REMOVE;
}

void
rndz_listener_accept (RndzListener *listener,
                      GTask        *task)
{
  GCancellable *cancellable = g_task_get_cancellable (task);
  RndzIncoming *incoming;
  Waiter *waiter;

  incoming = g_queue_pop_head (&listener->incoming);
  if (incoming != NULL)
    {
      g_task_return_pointer (task, incoming, (GDestroyNotify) rndz_incoming_free);
      g_object_unref (task);
      return;
    }

  waiter = g_new0 (Waiter, 1);
  waiter->listener = listener;
  waiter->task = task;
  if (cancellable != NULL)
    {
      waiter->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (waiter->cancel_source, G_SOURCE_FUNC (waiter_cancelled_cb),
                             waiter, NULL);
      g_source_attach (waiter->cancel_source, listener->context);
    }
  g_queue_push_tail (&listener->waiters, waiter);
}

void
rndz_incoming_free (RndzIncoming *incoming)
{
  if (incoming->connection != NULL)
    {
      g_io_stream_close (G_IO_STREAM (incoming->connection), NULL, NULL);
      g_object_unref (incoming->connection);
    }
  g_free (incoming->peer_id);
  g_free (incoming->fingerprint);
  g_free (incoming);
}

/* Accepts still waiting fail, connections not taken close */
void
rndz_listener_accept_clear (RndzListener *listener)
{
  Waiter *waiter;

  g_queue_clear_full (&listener->incoming, (GDestroyNotify) rndz_incoming_free);

  while ((waiter = g_queue_pop_head (&listener->waiters)) != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

      rndz_source_clear (&waiter->cancel_source);
      g_free (waiter);
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CLOSED,
                               _("The client stopped listening"));
    }
}
