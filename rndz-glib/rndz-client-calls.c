/* rndz-client-calls.c: what a RndzClient does
 *
 * SPDX-License-Identifier: MIT
 *
 * The operations of the client: listening (and following the listeners'
 * state and requests), accepting, reaching a peer, stopping. The object
 * itself, its properties and signals are in rndz-client.c, which calls
 * here and is never called from here: this file emits the client's
 * signals and notifies its properties by name (rndz-client-internal.h).
 */

#include "config.h"

#include <string.h>

#include "rndz-client.h"
#include "rndz-client-internal.h"
#include "rndz-connect-private.h"
#include "rndz-i18n-private.h"

/* What the listener tells */

/* Orders the states from the best to the worst */
static guint
state_rank (RndzClientState state)
{
  switch (state)
    {
    case RNDZ_CLIENT_STATE_IDLE:
      return 0;
    case RNDZ_CLIENT_STATE_REGISTERED:
      return 1;
    case RNDZ_CLIENT_STATE_REGISTERING:
      return 2;
    case RNDZ_CLIENT_STATE_RECONNECTING:
    default:
      return 3;
    }
}

static RndzClientState
state_unrank (guint rank)
{
  static const RndzClientState states[] = {
    RNDZ_CLIENT_STATE_IDLE, RNDZ_CLIENT_STATE_REGISTERED,
    RNDZ_CLIENT_STATE_REGISTERING, RNDZ_CLIENT_STATE_RECONNECTING,
  };

  return states[MIN (rank, G_N_ELEMENTS (states) - 1)];
}

static void
client_update_state (RndzClient *client)
{
  RndzClientState state = RNDZ_CLIENT_STATE_IDLE;
  gint64 last_pong = 0;

  /* Listening on both transports, the client is as far as the one that
   * is behind */
  for (guint i = 0; i < G_N_ELEMENTS (client->listeners); i++)
    if (client->listeners[i] != NULL)
      {
        state = MAX (state, state_rank (rndz_listener_get_state (client->listeners[i])));
        last_pong = MAX (last_pong, rndz_listener_get_last_pong (client->listeners[i]));
      }
  state = state_unrank (state);

  g_object_freeze_notify (G_OBJECT (client));

  if (client->state != state)
    {
      gboolean was_idle = client->state == RNDZ_CLIENT_STATE_IDLE;

      client->state = state;
      g_object_notify (G_OBJECT (client), "state");
      if (was_idle != (state == RNDZ_CLIENT_STATE_IDLE))
        g_object_notify (G_OBJECT (client), "local-port");
    }

  if (last_pong != 0 && client->last_pong != last_pong)
    {
      client->last_pong = last_pong;
      g_object_notify (G_OBJECT (client), "last-pong");
    }

  g_object_thaw_notify (G_OBJECT (client));
}

static void
listener_state_changed_cb (RndzListener *listener,
                           gpointer      user_data)
{
  client_update_state (RNDZ_CLIENT (user_data));
}

/* Asks the application about a forwarded request, then tells it */
static gboolean
listener_peer_request_cb (RndzListener   *listener,
                          const char     *peer_id,
                          GSocketAddress *address,
                          const char     *fingerprint,
                          gpointer        user_data)
{
  RndzClient *client = user_data;
  g_autoptr(RndzClient) self G_GNUC_UNUSED = g_object_ref (client);
  guint authorize_peer = g_signal_lookup ("authorize-peer", G_OBJECT_TYPE (client));
  guint authorize_fingerprint = g_signal_lookup ("authorize-fingerprint", G_OBJECT_TYPE (client));
  gboolean allowed = TRUE;

  /* Without a handler everyone is let in */
  if (g_signal_has_handler_pending (client, authorize_peer, 0, TRUE))
    g_signal_emit (client, authorize_peer, 0, peer_id, address, &allowed);
  if (allowed && fingerprint != NULL &&
      g_signal_has_handler_pending (client, authorize_fingerprint, 0, TRUE))
    g_signal_emit (client, authorize_fingerprint, 0, peer_id, fingerprint, &allowed);
  if (allowed)
    g_signal_emit_by_name (client, "peer-request", peer_id, address);
  return allowed;
}

static void
listener_peer_socket_cb (RndzListener *listener,
                         const char   *peer_id,
                         GSocket      *socket,
                         gpointer      user_data)
{
  /* With an identity, the peer's socket carries its secure channel */
  if (!rndz_client_secure_take_socket (user_data, listener, peer_id, socket))
    g_signal_emit_by_name (user_data, "peer-socket", peer_id, socket);
}

/* A direct peer gets a socket of its own only if someone takes it:
 * otherwise its datagrams go to the listening socket, as they did before
 * sockets of their own existed */
static gboolean
listener_peer_socket_wanted_cb (RndzListener *listener,
                                gpointer      user_data)
{
  RndzClient *client = user_data;
  guint peer_socket = g_signal_lookup ("peer-socket", RNDZ_TYPE_CLIENT);

  /* With an identity, every peer gets a secure channel of its own */
  return client->identity != NULL ||
         g_signal_has_handler_pending (client, peer_socket, 0, FALSE);
}

static void
client_set_listener (RndzClient   *client,
                     RndzListener *listener)
{
  client->listeners[rndz_listener_get_transport (listener)] = listener;
  g_signal_connect (listener, "state-changed", G_CALLBACK (listener_state_changed_cb), client);
  g_signal_connect (listener, "peer-socket", G_CALLBACK (listener_peer_socket_cb), client);
  g_signal_connect (listener, "peer-socket-wanted", G_CALLBACK (listener_peer_socket_wanted_cb),
                    client);
  g_signal_connect (listener, "peer-request", G_CALLBACK (listener_peer_request_cb), client);
}

/* Stops the listener and lets go of it. Stopping notifies the state, and
 * handlers may call this again: the listener is taken off first. */
static void
client_drop_listener (RndzClient    *client,
                      RndzTransport  transport)
{
  g_autoptr(RndzListener) listener = g_steal_pointer (&client->listeners[transport]);

  if (listener == NULL)
    return;

  rndz_listener_stop (listener);
  g_signal_handlers_disconnect_by_data (listener, client);
  client_update_state (client);
}

/* Synchronous calls
 *
 * A synchronous call starts its asynchronous twin and runs a main context
 * until the result is there. The operation's sources live on the client's
 * context: if this thread can own that context, run it; if another thread
 * runs it, wait on a private context that only receives the result.
 */

void
rndz_sync_call_begin (RndzClient   *client,
                      RndzSyncCall *call)
{
  memset (call, 0, sizeof *call);

  if (g_main_context_acquire (client->peer->context))
    {
      call->acquired = TRUE;
      call->context = g_main_context_ref (client->peer->context);
    }
  else
    call->context = g_main_context_new ();

  g_main_context_push_thread_default (call->context);
}

void
rndz_sync_call_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  RndzSyncCall *call = user_data;

  call->result = g_object_ref (result);
}

GAsyncResult *
rndz_sync_call_end (RndzSyncCall *call)
{
  while (call->result == NULL)
    g_main_context_iteration (call->context, TRUE);

  g_main_context_pop_thread_default (call->context);
  if (call->acquired)
    g_main_context_release (call->context);
  g_main_context_unref (call->context);

  return call->result;
}

/* Listening */

static gboolean
check_can_listen (RndzClient    *client,
                  RndzTransport  transport,
                  GTask         *task)
{
  RndzListener *listener = client->listeners[transport];

  /* A listen that failed leaves a stopped listener behind */
  if (listener != NULL && !rndz_listener_is_active (listener))
    client_drop_listener (client, transport);

  if (client->listeners[transport] != NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_BUSY,
                               transport == RNDZ_TRANSPORT_UDP ?
                               _("The client is already listening on UDP") :
                               _("The client is already listening on TCP"));
      return FALSE;
    }

  /* No server would answer: say why at once rather than time out */
  if (client->peer->id == NULL || !rndz_id_is_valid (client->peer->id, -1))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("Invalid id “%s”: an id is 1 to 64 bytes of UTF-8 without control characters"),
                               client->peer->id != NULL ? client->peer->id : "");
      return FALSE;
    }

  return TRUE;
}

/* Runs in the client's context */
static void
listen_start (GTask    *task,
              gpointer  user_data)
{
  RndzClient *client = g_task_get_source_object (task);
  RndzTransport transport = GPOINTER_TO_UINT (user_data);

  if (!check_can_listen (client, transport, task))
    return;

  client_set_listener (client, rndz_listener_new (client->peer, transport));
  rndz_listener_start (client->listeners[transport], g_object_ref (task));
}

static void
listen_async (RndzClient          *client,
              RndzTransport        transport,
              gpointer             source_tag,
              GCancellable        *cancellable,
              GAsyncReadyCallback  callback,
              gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  task = g_task_new (client, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  rndz_peer_context_invoke (client->peer, listen_start, task, GUINT_TO_POINTER (transport));
}

/* A listen that failed leaves the client idle again */
static gboolean
listen_finish_check (RndzClient    *client,
                     GAsyncResult  *result,
                     gpointer       source_tag,
                     GError       **error)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, client), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, FALSE);

  if (!g_task_had_error (G_TASK (result)))
    return TRUE;

  g_task_propagate_boolean (G_TASK (result), error);
  return FALSE;
}

/**
 * rndz_client_listen_udp_async:
 * @client: a #RndzClient
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when the client is
 *   registered, or failed to
 * @user_data: data for @callback
 *
 * Binds a UDP port and registers the client's id with every server from
 * it, then keeps the registration alive. The operation finishes as soon as
 * one server answered, or fails when none did within
 * [property@Rndz.Client:timeout].
 *
 * The client may listen over TCP as well, at the same time; a second
 * listen over UDP fails with %G_IO_ERROR_BUSY.
 *
 * Since: 1.0
 */
void
rndz_client_listen_udp_async (RndzClient          *client,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  listen_async (client, RNDZ_TRANSPORT_UDP, rndz_client_listen_udp_async,
                cancellable, callback, user_data);
}

/**
 * rndz_client_listen_udp_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes rndz_client_listen_udp_async().
 *
 * The returned socket is bound to the listening port, the one the
 * servers know. Peers that come through the rendezvous get sockets of
 * their own, through the [signal@Rndz.Client::peer-socket] signal, and
 * their datagrams reach only those; what arrives on the returned socket
 * is from senders that no rendezvous let in, and an application that
 * only talks to its peers need not read it (it must not answer it
 * blindly: a sender's address may be forged). Without a handler for
 * peer-socket, though, the datagrams of peers that reach the client
 * directly arrive here too, as they did before sockets of their own
 * existed (those on the relay or on a port of their own are dropped).
 * No message of the rendezvous protocol ever arrives on it: the
 * datagrams that start with `{"v":1,"type":"` are dropped.
 *
 * The client talks to the servers and to requesters from other sockets
 * bound to the same port. The returned socket stays open after
 * rndz_client_stop(): it is the caller's.
 *
 * Returns: (transfer full): the bound, non-blocking socket, or %NULL on
 *   error
 *
 * Since: 1.0
 */
GSocket *
rndz_client_listen_udp_finish (RndzClient    *client,
                               GAsyncResult  *result,
                               GError       **error)
{
  if (!listen_finish_check (client, result, rndz_client_listen_udp_async, error))
    return NULL;

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * rndz_client_listen_udp:
 * @client: a #RndzClient
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_listen_udp_async().
 *
 * Returns: (transfer full): the bound listening socket (see
 *   rndz_client_listen_udp_finish()), or %NULL on error
 *
 * Since: 1.0
 */
GSocket *
rndz_client_listen_udp (RndzClient    *client,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_listen_udp_async (client, cancellable, rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_listen_udp_finish (client, result, error);
}

/**
 * rndz_client_listen_tcp_async:
 * @client: a #RndzClient
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when the client is
 *   registered, or failed to
 * @user_data: data for @callback
 *
 * Binds a TCP port, listens on it, and registers the client's id with
 * every server over a connection from that same port; then keeps the
 * registration alive. Peers that reach the client come out of
 * rndz_client_accept_async(). The operation finishes as soon as one server
 * answered, or fails when none did within [property@Rndz.Client:timeout].
 *
 * Since: 1.0
 */
void
rndz_client_listen_tcp_async (RndzClient          *client,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  listen_async (client, RNDZ_TRANSPORT_TCP, rndz_client_listen_tcp_async,
                cancellable, callback, user_data);
}

/**
 * rndz_client_listen_tcp_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes rndz_client_listen_tcp_async().
 *
 * Returns: %TRUE if the client is registered and listening
 *
 * Since: 1.0
 */
gboolean
rndz_client_listen_tcp_finish (RndzClient    *client,
                               GAsyncResult  *result,
                               GError       **error)
{
  if (!listen_finish_check (client, result, rndz_client_listen_tcp_async, error))
    return FALSE;

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * rndz_client_listen_tcp:
 * @client: a #RndzClient
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_listen_tcp_async().
 *
 * Returns: %TRUE if the client is registered and listening
 *
 * Since: 1.0
 */
gboolean
rndz_client_listen_tcp (RndzClient    *client,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), FALSE);

  rndz_sync_call_begin (client, &call);
  rndz_client_listen_tcp_async (client, cancellable, rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_listen_tcp_finish (client, result, error);
}

/* Runs in the client's context */
static void
accept_start (GTask    *task,
              gpointer  user_data)
{
  RndzClient *client = g_task_get_source_object (task);
  RndzListener *listener = client->listeners[RNDZ_TRANSPORT_TCP];

  if (listener == NULL || !rndz_listener_is_active (listener))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                               _("The client is not listening on TCP"));
      return;
    }

  rndz_listener_accept (listener, g_object_ref (task));
}

/**
 * rndz_client_accept_async:
 * @client: a #RndzClient listening on TCP
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when a peer came in
 * @user_data: data for @callback
 *
 * Waits for the next peer that reaches the client through a server. Only
 * peers that asked a server for this client are handed out; other
 * connections to the listening port are closed.
 *
 * Since: 1.0
 */
void
rndz_client_accept_async (RndzClient          *client,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (client, cancellable, callback, user_data);
  g_task_set_source_tag (task, rndz_client_accept_async);
  rndz_peer_context_invoke (client->peer, accept_start, task, NULL);
}

/**
 * rndz_client_accept_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @peer_id: (out) (optional) (transfer full): return location for the id of
 *   the peer
 * @error: return location for a #GError
 *
 * Finishes rndz_client_accept_async().
 *
 * Returns: (transfer full): the connection to the peer, or %NULL on error
 *
 * Since: 1.0
 */
GSocketConnection *
rndz_client_accept_finish (RndzClient    *client,
                           GAsyncResult  *result,
                           char         **peer_id,
                           GError       **error)
{
  g_autoptr(RndzIncoming) incoming = NULL;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);
  g_return_val_if_fail (g_task_is_valid (result, client), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rndz_client_accept_async, NULL);

  incoming = g_task_propagate_pointer (G_TASK (result), error);
  if (incoming == NULL)
    return NULL;

  if (peer_id != NULL)
    *peer_id = g_steal_pointer (&incoming->peer_id);

  return g_steal_pointer (&incoming->connection);
}

/**
 * rndz_client_accept:
 * @client: a #RndzClient listening on TCP
 * @peer_id: (out) (optional) (transfer full): return location for the id of
 *   the peer
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_accept_async().
 *
 * Returns: (transfer full): the connection to the peer, or %NULL on error
 *
 * Since: 1.0
 */
GSocketConnection *
rndz_client_accept (RndzClient    *client,
                    char         **peer_id,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_accept_async (client, cancellable, rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_accept_finish (client, result, peer_id, error);
}

/**
 * rndz_client_stop:
 * @client: a #RndzClient
 *
 * Stops listening: says bye to every server, stops the keepalives and
 * closes the client's own sockets. Pending accepts fail with
 * %G_IO_ERROR_CLOSED, a listen in progress with %G_IO_ERROR_CANCELLED.
 * The socket returned by rndz_client_listen_udp() and accepted connections
 * stay open. Connections to peers being made are not affected.
 *
 * Since: 1.0
 */
void
rndz_client_stop (RndzClient *client)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));

  client_drop_listener (client, RNDZ_TRANSPORT_UDP);
  client_drop_listener (client, RNDZ_TRANSPORT_TCP);
  rndz_client_secure_stop (client);
}

/* Reaching a peer */

/* Runs in the client's context */
static void
connect_start (GTask    *task,
               gpointer  user_data)
{
  RndzClient *client = g_task_get_source_object (task);
  g_autofree char *peer_id = g_strdup (g_task_get_task_data (task));

  rndz_connect_start (client->peer, GPOINTER_TO_UINT (user_data), peer_id, NULL,
                      g_object_ref (task));
}

static void
connect_async (RndzClient          *client,
               RndzTransport        transport,
               const char          *peer_id,
               gpointer             source_tag,
               GCancellable        *cancellable,
               GAsyncReadyCallback  callback,
               gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  task = g_task_new (client, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);

  if (!rndz_id_is_valid (peer_id, -1))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("Invalid peer id “%s”"), peer_id);
      return;
    }

  /* The id travels with the task: the start may run later, elsewhere */
  g_task_set_task_data (task, g_strdup (peer_id), g_free);
  rndz_peer_context_invoke (client->peer, connect_start, task, GUINT_TO_POINTER (transport));
}

/**
 * rndz_client_connect_udp_async:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when the peer was
 *   reached, or could not be
 * @user_data: data for @callback
 *
 * Asks the servers to reach @peer_id over UDP. The request goes to every
 * server, and the first that knows the peer wins. Every message is sent
 * again until it is answered, so the rendezvous survives lost packets.
 *
 * A server that limits requests says when this one would pass: the
 * request goes again then, if the answer can still come within
 * [property@Rndz.Client:timeout], and fails at once with
 * %RNDZ_ERROR_RATE_LIMITED otherwise.
 *
 * Fails with %RNDZ_ERROR_PEER_NOT_FOUND if no server knows the peer,
 * %RNDZ_ERROR_PEER_NO_ANSWER if the peer did not answer its server,
 * %RNDZ_ERROR_SERVER_UNREACHABLE if no server could be reached,
 * %RNDZ_ERROR_RATE_LIMITED as above, %RNDZ_ERROR_AUTH_REQUIRED if the
 * server requires a key and the client has none,
 * %RNDZ_ERROR_NO_PATH if no path to the peer works (and no relay),
 * %G_IO_ERROR_TIMED_OUT after [property@Rndz.Client:timeout] and
 * %G_IO_ERROR_CANCELLED if @cancellable was cancelled.
 *
 * Since: 1.0
 */
void
rndz_client_connect_udp_async (RndzClient          *client,
                               const char          *peer_id,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (peer_id != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  connect_async (client, RNDZ_TRANSPORT_UDP, peer_id, rndz_client_connect_udp_async,
                 cancellable, callback, user_data);
}

/**
 * rndz_client_connect_udp_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes rndz_client_connect_udp_async().
 *
 * Only the peer's datagrams reach the socket (the relay's, when the path
 * is %RNDZ_PATH_RELAYED), and never a message of the rendezvous protocol,
 * not even the peer's late retransmissions: it drops every datagram that
 * starts with `{"v":1,"type":"`, as the sockets of
 * [signal@Rndz.Client::peer-socket] do.
 *
 * Returns: (transfer full): a non-blocking UDP socket connected to the
 *   peer, bound to the port that talked to the servers, or %NULL on error
 *
 * Since: 1.0
 */
GSocket *
rndz_client_connect_udp_finish (RndzClient    *client,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);
  g_return_val_if_fail (g_task_is_valid (result, client), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rndz_client_connect_udp_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * rndz_client_connect_udp:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_connect_udp_async().
 *
 * Returns: (transfer full): a UDP socket connected to the peer, or %NULL
 *   on error
 *
 * Since: 1.0
 */
GSocket *
rndz_client_connect_udp (RndzClient    *client,
                         const char    *peer_id,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_connect_udp_async (client, peer_id, cancellable, rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_connect_udp_finish (client, result, error);
}

/**
 * rndz_client_connect_tcp_async:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when the peer was
 *   reached, or could not be
 * @user_data: data for @callback
 *
 * Asks the servers to reach @peer_id over TCP, then opens a connection to
 * the peer from the port that talked to the servers. The two peers connect
 * towards each other at once (a TCP simultaneous open), which gets through
 * NATs that track connections. Errors are those of
 * rndz_client_connect_udp_async().
 *
 * Since: 1.0
 */
void
rndz_client_connect_tcp_async (RndzClient          *client,
                               const char          *peer_id,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (peer_id != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  connect_async (client, RNDZ_TRANSPORT_TCP, peer_id, rndz_client_connect_tcp_async,
                 cancellable, callback, user_data);
}

/**
 * rndz_client_connect_tcp_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes rndz_client_connect_tcp_async().
 *
 * Returns: (transfer full): a connection to the peer, or %NULL on error
 *
 * Since: 1.0
 */
GSocketConnection *
rndz_client_connect_tcp_finish (RndzClient    *client,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);
  g_return_val_if_fail (g_task_is_valid (result, client), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rndz_client_connect_tcp_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * rndz_client_connect_tcp:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_connect_tcp_async().
 *
 * Returns: (transfer full): a connection to the peer, or %NULL on error
 *
 * Since: 1.0
 */
GSocketConnection *
rndz_client_connect_tcp (RndzClient    *client,
                         const char    *peer_id,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_connect_tcp_async (client, peer_id, cancellable, rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_connect_tcp_finish (client, result, error);
}
