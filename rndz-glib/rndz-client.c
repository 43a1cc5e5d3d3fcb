/* rndz-client.c: a peer of the rendezvous protocol
 *
 * SPDX-License-Identifier: MIT
 */

/**
 * RndzClient:
 *
 * A peer that reaches other peers through one or more rendezvous servers,
 * by id, even when both sit behind NATs or stateful firewalls.
 *
 * A peer that wants to be reached *listens*: it binds one local port,
 * registers its id with every server from that port and keeps pinging
 * them, so that the servers see the address its NAT gives it. When another
 * peer asks a server for it, the server forwards the request with the
 * requester's address; the listener answers and sends a packet towards the
 * requester from its listening port, which opens its NAT for the requester.
 *
 * - Over UDP, rndz_client_listen_udp() returns the bound [class@Gio.Socket]
 *   on which the datagrams of every peer arrive.
 * - Over TCP, rndz_client_listen_tcp() registers, and each peer that comes
 *   in is handed out by rndz_client_accept() as a
 *   [class@Gio.SocketConnection].
 *
 * The [signal@Rndz.Client::peer-request] signal tells which peer asked and
 * from where, before the peer arrives; [property@Rndz.Client:state] and
 * [property@Rndz.Client:last-pong] tell how the registration fares. A
 * listener re-registers by itself when a server restarts or its connection
 * breaks. rndz_client_stop() says bye to the servers.
 *
 * A peer that wants to reach a listener calls rndz_client_connect_udp()
 * or rndz_client_connect_tcp() with its id. Both return an object connected
 * to that peer and bound to the same local port that talked to the servers:
 * that is what lets the packets through the NATs.
 *
 A client listens over UDP and TCP at once if asked to: each transport
 * registers the id on a port of its own, and
 * [property@Rndz.Client:local-port] is the UDP one.
 *
 * ## Threads and contexts
 *
 * A client belongs to the [struct@GLib.MainContext] that was the
 * thread-default one when it was created, the client's context. Every
 * socket, timer and callback of its work, including those of the GIO
 * calls it makes (resolving the servers, for one), runs in that context,
 * in whichever thread runs it; so do its signals and property
 * notifications. A call that starts work (listen, accept, connect) starts
 * it at once when the calling thread can own the client's context, and
 * otherwise hands it to that context, to run in its thread.
 *
 * Results of asynchronous calls are delivered, as usual in GIO, in the
 * thread-default context of the caller. The synchronous calls run the
 * client's context until they are done when their thread can own it;
 * from another thread, while the context's own thread keeps running it,
 * they wait for the result without running anything of the client's.
 * Property setters and rndz_client_stop() are for the context's thread.
 * Any number of clients can share one context.
 *
 * Since: 1.0
 */

#include "config.h"

#include <string.h>

#include "rndz-client.h"
#include "rndz-connect-private.h"
#include "rndz-listener-private.h"
#include "rndz-peer-context-private.h"
#include "rndz-enum-types.h"
#include "rndz-i18n-private.h"
#include "rndz-socket-private.h"

/* Every timeout and interval of the API is in milliseconds, as in GLib */
#define DEFAULT_KEEPALIVE_INTERVAL_MS 10000
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_DIRECT_TIMEOUT_MS 3000
#define MIN_TIMEOUT_MS 1000
#define MAX_TIMEOUT_MS (3600 * 1000)
#define MIN_DIRECT_TIMEOUT_MS 100

struct _RndzClient
{
  GObject parent_instance;

  RndzPeerContext *peer;         /* our id and settings, for the operations */

  RndzClientState state;
  gint64 last_pong;

  RndzListener *listeners[2];    /* by RndzTransport, while listening */
};

enum
{
  PROP_0,
  PROP_ID,
  PROP_SERVERS,
  PROP_LOCAL_ADDRESS,
  PROP_KEEPALIVE_INTERVAL,
  PROP_TIMEOUT,
  PROP_STATE,
  PROP_LAST_PONG,
  PROP_LOCAL_PORT,
  PROP_KEY,
  PROP_REQUIRE_AUTH,
  PROP_RELAY,
  PROP_DIRECT_TIMEOUT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_AUTHORIZE_PEER,
  SIGNAL_PEER_REQUEST,
  SIGNAL_PEER_SOCKET,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (RndzClient, rndz_client, G_TYPE_OBJECT)

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
      g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_STATE]);
      if (was_idle != (state == RNDZ_CLIENT_STATE_IDLE))
        g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_LOCAL_PORT]);
    }

  if (last_pong != 0 && client->last_pong != last_pong)
    {
      client->last_pong = last_pong;
      g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_LAST_PONG]);
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
                          gpointer        user_data)
{
  RndzClient *client = user_data;
  g_autoptr(RndzClient) self = g_object_ref (client);
  gboolean allowed = TRUE;

  /* Without a handler everyone is let in */
  if (g_signal_has_handler_pending (client, signals[SIGNAL_AUTHORIZE_PEER], 0, TRUE))
    g_signal_emit (client, signals[SIGNAL_AUTHORIZE_PEER], 0, peer_id, address, &allowed);
  if (allowed)
    g_signal_emit (client, signals[SIGNAL_PEER_REQUEST], 0, peer_id, address);
  return allowed;
}

static void
listener_peer_socket_cb (RndzListener *listener,
                         const char   *peer_id,
                         GSocket      *socket,
                         gpointer      user_data)
{
  g_signal_emit (user_data, signals[SIGNAL_PEER_SOCKET], 0, peer_id, socket);
}

static void
client_set_listener (RndzClient   *client,
                     RndzListener *listener)
{
  client->listeners[rndz_listener_get_transport (listener)] = listener;
  g_signal_connect (listener, "state-changed", G_CALLBACK (listener_state_changed_cb), client);
  g_signal_connect (listener, "peer-socket", G_CALLBACK (listener_peer_socket_cb), client);
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

typedef struct
{
  GMainContext *context;
  gboolean acquired;
  GAsyncResult *result;
} SyncCall;

static void
sync_call_begin (RndzClient *client,
                 SyncCall   *call)
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

static void
sync_call_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  SyncCall *call = user_data;

  call->result = g_object_ref (result);
}

static GAsyncResult *
sync_call_end (SyncCall *call)
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
 * The datagrams of every peer that reaches the client arrive on the
 * returned socket; the client itself talks to the servers from other
 * sockets bound to the same port, so nothing but peers' datagrams arrives
 * on it. It stays open after rndz_client_stop(): it is the caller's.
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
 * Returns: (transfer full): the bound socket on which peers' datagrams
 *   arrive, or %NULL on error
 *
 * Since: 1.0
 */
GSocket *
rndz_client_listen_udp (RndzClient    *client,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  SyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  sync_call_begin (client, &call);
  rndz_client_listen_udp_async (client, cancellable, sync_call_cb, &call);
  result = sync_call_end (&call);

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
  SyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), FALSE);

  sync_call_begin (client, &call);
  rndz_client_listen_tcp_async (client, cancellable, sync_call_cb, &call);
  result = sync_call_end (&call);

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
  SyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  sync_call_begin (client, &call);
  rndz_client_accept_async (client, cancellable, sync_call_cb, &call);
  result = sync_call_end (&call);

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
}

/* Reaching a peer */

/* Runs in the client's context */
static void
connect_start (GTask    *task,
               gpointer  user_data)
{
  RndzClient *client = g_task_get_source_object (task);
  g_autofree char *peer_id = g_strdup (g_task_get_task_data (task));

  rndz_connect_start (client->peer, GPOINTER_TO_UINT (user_data), peer_id, g_object_ref (task));
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
 * Fails with %RNDZ_ERROR_PEER_NOT_FOUND if no server knows the peer,
 * %RNDZ_ERROR_PEER_NO_ANSWER if the peer did not answer its server,
 * %RNDZ_ERROR_SERVER_UNREACHABLE if no server could be reached,
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
  SyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  sync_call_begin (client, &call);
  rndz_client_connect_udp_async (client, peer_id, cancellable, sync_call_cb, &call);
  result = sync_call_end (&call);

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
  SyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  sync_call_begin (client, &call);
  rndz_client_connect_tcp_async (client, peer_id, cancellable, sync_call_cb, &call);
  result = sync_call_end (&call);

  return rndz_client_connect_tcp_finish (client, result, error);
}

/* Properties */

/**
 * rndz_client_get_id:
 * @client: a #RndzClient
 *
 * Gets the id the client registers under, see [property@Rndz.Client:id].
 *
 * Returns: the client's id, see [property@Rndz.Client:id]
 *
 * Since: 1.0
 */
const char *
rndz_client_get_id (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  return client->peer->id;
}

/**
 * rndz_client_get_servers:
 * @client: a #RndzClient
 *
 * Gets the rendezvous servers the client talks to.
 *
 * Returns: (transfer none) (array zero-terminated=1): the rendezvous
 *   servers, see [property@Rndz.Client:servers]
 *
 * Since: 1.0
 */
const char * const *
rndz_client_get_servers (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  return (const char * const *) client->peer->servers;
}

/**
 * rndz_client_get_local_address:
 * @client: a #RndzClient
 *
 * Gets the local address the client binds, if one was set.
 *
 * Returns: (transfer none) (nullable): the local address to bind, see
 *   [property@Rndz.Client:local-address]
 *
 * Since: 1.0
 */
GInetSocketAddress *
rndz_client_get_local_address (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  return client->peer->local_address;
}

/**
 * rndz_client_set_local_address:
 * @client: a #RndzClient
 * @address: (nullable): the local address to bind, or %NULL for any
 *
 * Sets [property@Rndz.Client:local-address]. It applies to the next listen
 * or connect.
 *
 * Since: 1.0
 */
void
rndz_client_set_local_address (RndzClient         *client,
                               GInetSocketAddress *address)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (address == NULL || G_IS_INET_SOCKET_ADDRESS (address));

  if (g_set_object (&client->peer->local_address, address))
    g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_LOCAL_ADDRESS]);
}

/**
 * rndz_client_get_keepalive_interval:
 * @client: a #RndzClient
 *
 * Gets the time between the pings of a listening client, in milliseconds.
 *
 * Returns: the keepalive interval in milliseconds, see
 *   [property@Rndz.Client:keepalive-interval]
 *
 * Since: 1.0
 */
guint
rndz_client_get_keepalive_interval (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  return client->peer->keepalive_ms;
}

/**
 * rndz_client_set_keepalive_interval:
 * @client: a #RndzClient
 * @milliseconds: the interval in milliseconds, from 1000 to 3600000
 *
 * Sets [property@Rndz.Client:keepalive-interval]. It applies from the
 * next keepalive.
 *
 * Since: 1.0
 */
void
rndz_client_set_keepalive_interval (RndzClient *client,
                                    guint       milliseconds)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (milliseconds >= MIN_TIMEOUT_MS && milliseconds <= MAX_TIMEOUT_MS);

  if (client->peer->keepalive_ms == milliseconds)
    return;

  client->peer->keepalive_ms = milliseconds;
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_KEEPALIVE_INTERVAL]);
}

/**
 * rndz_client_get_timeout:
 * @client: a #RndzClient
 *
 * Gets how long registering or reaching a peer may take, in milliseconds.
 *
 * Returns: the timeout in milliseconds, see [property@Rndz.Client:timeout]
 *
 * Since: 1.0
 */
guint
rndz_client_get_timeout (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  return client->peer->timeout_ms;
}

/**
 * rndz_client_set_timeout:
 * @client: a #RndzClient
 * @milliseconds: the timeout in milliseconds, from 1000 to 3600000
 *
 * Sets [property@Rndz.Client:timeout]. It applies to operations started
 * afterwards.
 *
 * Since: 1.0
 */
void
rndz_client_set_timeout (RndzClient *client,
                         guint       milliseconds)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (milliseconds >= MIN_TIMEOUT_MS && milliseconds <= MAX_TIMEOUT_MS);

  if (client->peer->timeout_ms == milliseconds)
    return;

  client->peer->timeout_ms = milliseconds;
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_TIMEOUT]);
}

/**
 * rndz_client_get_state:
 * @client: a #RndzClient
 *
 * Gets how the registration of a listening client fares.
 *
 * Returns: the state of the client's registration, see
 *   [property@Rndz.Client:state]
 *
 * Since: 1.0
 */
RndzClientState
rndz_client_get_state (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), RNDZ_CLIENT_STATE_IDLE);

  return client->state;
}

/**
 * rndz_client_get_last_pong:
 * @client: a #RndzClient
 *
 * Gets when a server last answered the listening client.
 *
 * Returns: the wall-clock time of the last answer of a server to the
 *   listening client, in microseconds since the epoch (as
 *   g_get_real_time()), or 0 if there was none
 *
 * Since: 1.0
 */
gint64
rndz_client_get_last_pong (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  return client->last_pong;
}

/**
 * rndz_client_get_local_port:
 * @client: a #RndzClient
 *
 * Gets the port the client listens on, see [property@Rndz.Client:local-port].
 *
 * Returns: the port the client listens on, or 0 if it does not listen
 *
 * Since: 1.0
 */
guint16
rndz_client_get_local_port (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  for (guint i = 0; i < G_N_ELEMENTS (client->listeners); i++)
    if (client->listeners[i] != NULL && rndz_listener_get_port (client->listeners[i]) != 0)
      return rndz_listener_get_port (client->listeners[i]);

  return 0;
}

/**
 * rndz_client_get_key:
 * @client: a #RndzClient
 *
 * Gets the key the client authenticates with, if one was set.
 *
 * Returns: (transfer none) (nullable): the key the client authenticates
 *   with, see [property@Rndz.Client:key]
 *
 * Since: 1.0
 */
GBytes *
rndz_client_get_key (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  return client->peer->key;
}

/**
 * rndz_client_set_key:
 * @client: a #RndzClient
 * @key: (nullable): the key of the client's id, or %NULL
 *
 * Sets [property@Rndz.Client:key]. It applies to the next message.
 *
 * Since: 1.0
 */
void
rndz_client_set_key (RndzClient *client,
                     GBytes     *key)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));

  if (key == client->peer->key || (key != NULL && client->peer->key != NULL && g_bytes_equal (key, client->peer->key)))
    return;

  g_clear_pointer (&client->peer->key, g_bytes_unref);
  if (key != NULL)
    client->peer->key = g_bytes_ref (key);
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_KEY]);
}

/**
 * rndz_client_get_require_auth:
 * @client: a #RndzClient
 *
 * Gets whether a listening client lets in only peers that the server authenticated.
 *
 * Returns: the value of [property@Rndz.Client:require-auth]
 *
 * Since: 1.0
 */
gboolean
rndz_client_get_require_auth (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), FALSE);

  return client->peer->require_auth;
}

/**
 * rndz_client_set_require_auth:
 * @client: a #RndzClient
 * @require_auth: whether peers must be authenticated by the server
 *
 * Sets [property@Rndz.Client:require-auth].
 *
 * Since: 1.0
 */
void
rndz_client_set_require_auth (RndzClient *client,
                              gboolean    require_auth)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));

  require_auth = !!require_auth;
  if (client->peer->require_auth == require_auth)
    return;

  client->peer->require_auth = require_auth;
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_REQUIRE_AUTH]);
}

/**
 * rndz_client_get_relay:
 * @client: a #RndzClient
 *
 * Gets whether peers may be reached through the server's relay.
 *
 * Returns: the value of [property@Rndz.Client:relay]
 *
 * Since: 1.0
 */
gboolean
rndz_client_get_relay (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), FALSE);

  return client->peer->relay;
}

/**
 * rndz_client_set_relay:
 * @client: a #RndzClient
 * @relay: whether to use the server's relay when no direct path works
 *
 * Sets [property@Rndz.Client:relay].
 *
 * Since: 1.0
 */
void
rndz_client_set_relay (RndzClient *client,
                       gboolean    relay)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));

  relay = !!relay;
  if (client->peer->relay == relay)
    return;

  client->peer->relay = relay;
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_RELAY]);
}

/**
 * rndz_client_get_direct_timeout:
 * @client: a #RndzClient
 *
 * Gets how long direct paths are tried, in milliseconds.
 *
 * Returns: the value of [property@Rndz.Client:direct-timeout], in milliseconds
 *
 * Since: 1.0
 */
guint
rndz_client_get_direct_timeout (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  return client->peer->direct_timeout_ms;
}

/**
 * rndz_client_set_direct_timeout:
 * @client: a #RndzClient
 * @milliseconds: how long to try direct paths in milliseconds, from 100
 *   to 3600000
 *
 * Sets [property@Rndz.Client:direct-timeout].
 *
 * Since: 1.0
 */
void
rndz_client_set_direct_timeout (RndzClient *client,
                                guint       milliseconds)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (milliseconds >= MIN_DIRECT_TIMEOUT_MS && milliseconds <= MAX_TIMEOUT_MS);

  if (client->peer->direct_timeout_ms == milliseconds)
    return;

  client->peer->direct_timeout_ms = milliseconds;
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_DIRECT_TIMEOUT]);
}

static void
rndz_client_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  RndzClient *client = RNDZ_CLIENT (object);

  switch (prop_id)
    {
    case PROP_ID:
      g_value_set_string (value, client->peer->id);
      break;
    case PROP_SERVERS:
      g_value_set_boxed (value, client->peer->servers);
      break;
    case PROP_LOCAL_ADDRESS:
      g_value_set_object (value, client->peer->local_address);
      break;
    case PROP_KEEPALIVE_INTERVAL:
      g_value_set_uint (value, rndz_client_get_keepalive_interval (client));
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, rndz_client_get_timeout (client));
      break;
    case PROP_STATE:
      g_value_set_enum (value, client->state);
      break;
    case PROP_LAST_PONG:
      g_value_set_int64 (value, client->last_pong);
      break;
    case PROP_LOCAL_PORT:
      g_value_set_uint (value, rndz_client_get_local_port (client));
      break;
    case PROP_KEY:
      g_value_set_boxed (value, client->peer->key);
      break;
    case PROP_REQUIRE_AUTH:
      g_value_set_boolean (value, client->peer->require_auth);
      break;
    case PROP_RELAY:
      g_value_set_boolean (value, client->peer->relay);
      break;
    case PROP_DIRECT_TIMEOUT:
      g_value_set_uint (value, client->peer->direct_timeout_ms);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_client_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  RndzClient *client = RNDZ_CLIENT (object);

  switch (prop_id)
    {
    case PROP_ID:
      client->peer->id = g_value_dup_string (value);
      break;
    case PROP_SERVERS:
      client->peer->servers = g_value_dup_boxed (value);
      break;
    case PROP_LOCAL_ADDRESS:
      rndz_client_set_local_address (client, g_value_get_object (value));
      break;
    case PROP_KEEPALIVE_INTERVAL:
      rndz_client_set_keepalive_interval (client, g_value_get_uint (value));
      break;
    case PROP_TIMEOUT:
      rndz_client_set_timeout (client, g_value_get_uint (value));
      break;
    case PROP_KEY:
      rndz_client_set_key (client, g_value_get_boxed (value));
      break;
    case PROP_REQUIRE_AUTH:
      rndz_client_set_require_auth (client, g_value_get_boolean (value));
      break;
    case PROP_RELAY:
      rndz_client_set_relay (client, g_value_get_boolean (value));
      break;
    case PROP_DIRECT_TIMEOUT:
      rndz_client_set_direct_timeout (client, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_client_constructed (GObject *object)
{
  RndzClient *client = RNDZ_CLIENT (object);

  G_OBJECT_CLASS (rndz_client_parent_class)->constructed (object);

  if (client->peer->id == NULL || !rndz_id_is_valid (client->peer->id, -1))
    g_critical ("RndzClient: “%s” is not a valid id: it must be 1 to %d bytes of "
                "UTF-8 without control characters",
                client->peer->id != NULL ? client->peer->id : "(null)", RNDZ_ID_MAX_LEN);
}

static void
rndz_client_dispose (GObject *object)
{
  RndzClient *client = RNDZ_CLIENT (object);

  rndz_client_stop (client);

  G_OBJECT_CLASS (rndz_client_parent_class)->dispose (object);
}

static void
rndz_client_finalize (GObject *object)
{
  RndzClient *client = RNDZ_CLIENT (object);

  rndz_peer_context_unref (client->peer);

  G_OBJECT_CLASS (rndz_client_parent_class)->finalize (object);
}

static void
rndz_client_class_init (RndzClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->get_property = rndz_client_get_property;
  object_class->set_property = rndz_client_set_property;
  object_class->constructed = rndz_client_constructed;
  object_class->dispose = rndz_client_dispose;
  object_class->finalize = rndz_client_finalize;

  /**
   * RndzClient:id:
   *
   * The id the client registers under and presents to the peers it
   * reaches: 1 to 64 bytes of UTF-8 without control characters.
   *
   * Since: 1.0
   */
  properties[PROP_ID] =
    g_param_spec_string ("id", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzClient:servers:
   *
   * The rendezvous servers, as `HOST:PORT` strings (`[IPV6]:PORT` for
   * IPv6 addresses). Host names are resolved with GIO's resolver.
   *
   * Since: 1.0
   */
  properties[PROP_SERVERS] =
    g_param_spec_boxed ("servers", NULL, NULL, G_TYPE_STRV,
                        G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzClient:local-address:
   *
   * The local address and port to bind, or %NULL to bind the any address
   * on a port the system picks.
   *
   * Since: 1.0
   */
  properties[PROP_LOCAL_ADDRESS] =
    g_param_spec_object ("local-address", NULL, NULL, G_TYPE_INET_SOCKET_ADDRESS, rw);

  /**
   * RndzClient:keepalive-interval:
   *
   * The time between the pings of a listening client, in milliseconds,
   * from 1000 to 3600000. NATs forget an idle UDP mapping after 30
   * seconds or more; the default, 10000 (10 seconds), stays well below.
   *
   * Since: 1.0
   */
  properties[PROP_KEEPALIVE_INTERVAL] =
    g_param_spec_uint ("keepalive-interval", NULL, NULL,
                       MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, DEFAULT_KEEPALIVE_INTERVAL_MS, rw);

  /**
   * RndzClient:timeout:
   *
   * How long registering or reaching a peer may take at most, in
   * milliseconds, from 1000 to 3600000; 10000 (10 seconds) by default.
   *
   * Since: 1.0
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_uint ("timeout", NULL, NULL,
                       MIN_TIMEOUT_MS, MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, rw);

  /**
   * RndzClient:state:
   *
   * How the registration of a listening client fares.
   *
   * Since: 1.0
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, RNDZ_TYPE_CLIENT_STATE,
                       RNDZ_CLIENT_STATE_IDLE, ro);

  /**
   * RndzClient:last-pong:
   *
   * The wall-clock time of the last answer of a server, in microseconds
   * since the epoch, or 0.
   *
   * Since: 1.0
   */
  properties[PROP_LAST_PONG] =
    g_param_spec_int64 ("last-pong", NULL, NULL, 0, G_MAXINT64, 0, ro);

  /**
   * RndzClient:local-port:
   *
   * The port the client listens on, or 0.
   *
   * Since: 1.0
   */
  properties[PROP_LOCAL_PORT] =
    g_param_spec_uint ("local-port", NULL, NULL, 0, G_MAXUINT16, 0, ro);

  /**
   * RndzClient:key:
   *
   * The key of the client's id, for servers that require authentication:
   * every message to a server then carries a timestamp, a nonce and an
   * HMAC-SHA256 under this key. See rndz_derive_key().
   *
   * Since: 1.0
   */
  properties[PROP_KEY] =
    g_param_spec_boxed ("key", NULL, NULL, G_TYPE_BYTES, rw);

  /**
   * RndzClient:require-auth:
   *
   * Whether a listening client only lets in peers that the server
   * authenticated. Then the id that [signal@Rndz.Client::peer-request]
   * and rndz_client_accept() give is the peer's proven id; other requests
   * are ignored, and their senders get %RNDZ_ERROR_PEER_NO_ANSWER.
   *
   * Since: 1.0
   */
  properties[PROP_REQUIRE_AUTH] =
    g_param_spec_boolean ("require-auth", NULL, NULL, FALSE, rw);

  /**
   * RndzClient:relay:
   *
   * Whether a peer may be reached through the server's relay when no
   * direct path works, if the server offers one. The application gets
   * the same kind of socket either way; [func@Rndz.socket_get_path] tells
   * which path it takes. A listening client with this off does not join
   * relay sessions either.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY] =
    g_param_spec_boolean ("relay", NULL, NULL, TRUE, rw);

  /**
   * RndzClient:direct-timeout:
   *
   * How long reaching a peer tries direct paths (its observed address
   * and its local ones) before it turns to the relay, or fails with
   * %RNDZ_ERROR_NO_PATH, in milliseconds, from 100 to 3600000; 3000 by
   * default. Within [property@Rndz.Client:timeout] in any case.
   *
   * Since: 1.0
   */
  properties[PROP_DIRECT_TIMEOUT] =
    g_param_spec_uint ("direct-timeout", NULL, NULL,
                       MIN_DIRECT_TIMEOUT_MS, MAX_TIMEOUT_MS, DEFAULT_DIRECT_TIMEOUT_MS, rw);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * RndzClient::peer-request:
   * @client: the listening client
   * @peer_id: the id of the peer that asked to reach this client
   * @address: the peer's address as the server sees it
   *
   * Emitted when a server forwards a request of another peer to reach this
   * client, and [signal@Rndz.Client::authorize-peer] let it in, before
   * that peer arrives.
   *
   * Since: 1.0
   */
  signals[SIGNAL_PEER_REQUEST] =
    g_signal_new ("peer-request", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING, G_TYPE_SOCKET_ADDRESS);

  /**
   * RndzClient::authorize-peer:
   * @client: the listening client
   * @peer_id: the id of the peer that asked to reach this client
   * @address: the peer's address as the server sees it
   *
   * Emitted when a server forwards a request of another peer to reach this
   * client, to decide whether to let it in. Without a handler, every peer
   * may come in. With one, only the peers it returns %TRUE for: the
   * others get no answer, nothing is opened for them, and they fail with
   * %RNDZ_ERROR_PEER_NO_ANSWER. Retransmissions of a request are not
   * asked about again.
   *
   * The id is the one the peer claims, unless the server authenticates
   * peers and [property@Rndz.Client:require-auth] is set.
   *
   * Returns: %TRUE to let the peer in
   *
   * Since: 1.0
   */
  /**
   * RndzClient::peer-socket:
   * @client: the listening client
   * @peer_id: the id of the peer
   * @socket: a UDP socket, connected, that carries this peer's datagrams
   *   and only those
   *
   * Emitted by a client listening over UDP when a peer reaches it on a
   * socket of its own rather than on the socket of
   * rndz_client_listen_udp(): through the server's relay, or directly
   * when the listener's NAT gives each destination a port of its own
   * (doc/nat-traversal.md). rndz_socket_get_path() on @socket tells
   * which. The peer's datagrams arrive on @socket only: keep a reference
   * to it to talk to the peer. (Over TCP, such peers come through
   * rndz_client_accept() like the others.)
   *
   * Since: 1.0
   */
  signals[SIGNAL_PEER_SOCKET] =
    g_signal_new ("peer-socket", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING, G_TYPE_SOCKET);

  signals[SIGNAL_AUTHORIZE_PEER] =
    g_signal_new ("authorize-peer", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, g_signal_accumulator_first_wins, NULL, NULL, G_TYPE_BOOLEAN, 2,
                  G_TYPE_STRING, G_TYPE_SOCKET_ADDRESS);
}

static void
rndz_client_init (RndzClient *client)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  client->peer = rndz_peer_context_new (context);
  client->peer->keepalive_ms = DEFAULT_KEEPALIVE_INTERVAL_MS;
  client->peer->timeout_ms = DEFAULT_TIMEOUT_MS;
  client->peer->direct_timeout_ms = DEFAULT_DIRECT_TIMEOUT_MS;
}

/**
 * rndz_client_new:
 * @id: the client's id: 1 to 64 bytes of UTF-8 without control characters
 * @servers: (array zero-terminated=1): the rendezvous servers, as
 *   `HOST:PORT` strings
 *
 * Creates a client. Its sockets and timers will be attached to the
 * thread-default main context of the calling thread.
 *
 * Returns: (transfer full): a new #RndzClient
 *
 * Since: 1.0
 */
RndzClient *
rndz_client_new (const char         *id,
                 const char * const *servers)
{
  g_return_val_if_fail (id != NULL, NULL);
  g_return_val_if_fail (servers != NULL && servers[0] != NULL, NULL);

  return g_object_new (RNDZ_TYPE_CLIENT, "id", id, "servers", servers, NULL);
}
