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
 * All sockets and timers of a client are attached to the
 * [struct@GLib.MainContext] that was the thread-default one when the client
 * was created; results of asynchronous calls are delivered, as usual in
 * GIO, in the thread-default context of the caller. The synchronous calls
 * run that context until they are done: call them from its thread, or from
 * another thread while the context's own thread keeps running it. Any
 * number of clients can share one context.
 *
 * Since: 1.0
 */

#include "config.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-client-private.h"
#include "rndz-enum-types.h"
#include "rndz-i18n-private.h"
#include "rndz-socket-private.h"

#define DEFAULT_KEEPALIVE_INTERVAL 10
#define DEFAULT_TIMEOUT 10
#define DEFAULT_DIRECT_TIMEOUT_MS 3000

struct _RndzClient
{
  GObject parent_instance;

  GMainContext *context;

  char *id;
  GStrv servers;
  GInetSocketAddress *local_address;
  guint keepalive_interval;
  guint timeout;
  GBytes *key;
  gboolean require_auth;
  gboolean relay;
  guint direct_timeout;

  RndzClientState state;
  gint64 last_pong;

  RndzListener *listener;
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

/* Internal API */

GMainContext *
rndz_client_get_context (RndzClient *client)
{
  return client->context;
}

guint32
rndz_client_new_tid (void)
{
  return g_random_int ();
}

/* Adds the MAC that proves the message is ours, when we have a key */
void
rndz_client_sign (RndzClient  *client,
                  RndzMessage *msg)
{
  if (client->key != NULL)
    rndz_message_sign (msg, client->key, g_get_real_time () / 1000);
}

/*
 * rndz_client_pick_family:
 *
 * The family of the sockets for a listen or connect: the local address's
 * if one is set, else the first server's. An IPv6 socket also reaches IPv4
 * servers and peers, v4-mapped.
 */
GSocketFamily
rndz_client_pick_family (RndzClient *client,
                         GArray     *servers)
{
  if (client->local_address != NULL)
    return g_socket_address_get_family (G_SOCKET_ADDRESS (client->local_address));

  if (servers->len > 0 && g_array_index (servers, RndzAddr, 0).family == 6)
    return G_SOCKET_FAMILY_IPV6;

  return G_SOCKET_FAMILY_IPV4;
}

/*
 * rndz_client_bind:
 * @port: the port to bind, or 0 for the local address's own port
 *
 * A new non-blocking socket with address and port reuse, bound to the
 * client's local address (or the any address of @family).
 */
GSocket *
rndz_client_bind (RndzClient     *client,
                  GSocketFamily   family,
                  GSocketType     type,
                  guint16         port,
                  GError        **error)
{
  g_autoptr(GInetAddress) any = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  GInetAddress *inet;

  if (client->local_address != NULL)
    {
      inet = g_inet_socket_address_get_address (client->local_address);
      if (port == 0)
        port = g_inet_socket_address_get_port (client->local_address);
    }
  else
    inet = any = g_inet_address_new_any (family);

  local = g_inet_socket_address_new (inet, port);
  return rndz_socket_new_bound (local, type, error);
}

/* A socket on the client's local address and on a port of its own,
 * whatever the client's port: without SO_REUSEADDR, which would let the
 * kernel give two such UDP sockets one port. */
GSocket *
rndz_client_bind_own_port (RndzClient     *client,
                           GSocketFamily   family,
                           GSocketType     type,
                           GError        **error)
{
  g_autoptr(GInetAddress) any = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) socket = NULL;
  GInetAddress *inet;

  if (client->local_address != NULL)
    inet = g_inet_socket_address_get_address (client->local_address);
  else
    inet = any = g_inet_address_new_any (family);

  socket = g_socket_new (g_inet_address_get_family (inet), type,
                         type == G_SOCKET_TYPE_STREAM ? G_SOCKET_PROTOCOL_TCP : G_SOCKET_PROTOCOL_UDP,
                         error);
  if (socket == NULL)
    return NULL;

  g_socket_set_blocking (socket, FALSE);
  local = g_inet_socket_address_new (inet, 0);
  if (!g_socket_bind (socket, local, FALSE, error))
    return NULL;

  return g_steal_pointer (&socket);
}

void
rndz_client_update_state (RndzClient      *client,
                          RndzClientState  state,
                          gint64           last_pong)
{
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

/* Asks the application about a forwarded request, then tells it.
 * Returns TRUE if the peer may come in. */
gboolean
rndz_client_emit_peer_request (RndzClient     *client,
                               const char     *peer_id,
                               const RndzAddr *addr)
{
  g_autoptr(GSocketAddress) address = NULL;
  gboolean allowed = TRUE;
  gboolean authorize, notify;

  authorize = g_signal_has_handler_pending (client, signals[SIGNAL_AUTHORIZE_PEER], 0, TRUE);
  notify = g_signal_has_handler_pending (client, signals[SIGNAL_PEER_REQUEST], 0, TRUE);
  if (!authorize && !notify)
    return TRUE;

  address = rndz_addr_to_socket_address (addr, G_SOCKET_FAMILY_INVALID);

  /* Without a handler everyone is let in */
  if (authorize)
    g_signal_emit (client, signals[SIGNAL_AUTHORIZE_PEER], 0, peer_id, address, &allowed);

  if (allowed && notify)
    g_signal_emit (client, signals[SIGNAL_PEER_REQUEST], 0, peer_id, address);
  return allowed;
}

/* Hands a UDP peer that came on a socket of its own to the application */
void
rndz_client_emit_peer_socket (RndzClient *client,
                               const char *peer_id,
                               GSocket    *socket)
{
  g_signal_emit (client, signals[SIGNAL_PEER_SOCKET], 0, peer_id, socket);
}

/*
 * rndz_client_get_candidates:
 * @port: the port the peer uses
 * @cands: (out): at most RNDZ_MAX_CANDIDATES addresses
 *
 * The local addresses a peer offers besides the one the server observes:
 * those of its interfaces in @family, but loopback and link-local ones
 * (a link-local address needs a scope its peer cannot know). An IPv6
 * socket on the any address is dual-stack (GLib makes it so) and reaches
 * IPv4 too: its IPv4 addresses are offered as well, the two families in
 * turn, so that the peer's checks race them. A client bound to one
 * address offers that one only if it is not loopback.
 *
 * Returns: the number of candidates
 */
guint
rndz_client_get_candidates (RndzClient    *client,
                            GSocketFamily  family,
                            guint16        port,
                            RndzAddr       cands[RNDZ_MAX_CANDIDATES])
{
  struct ifaddrs *ifaddrs = NULL, *ifa;
  RndzAddr found[2][RNDZ_MAX_CANDIDATES];   /* IPv6, IPv4 */
  guint n_found[2] = { 0, 0 };
  guint n = 0;

  if (client->local_address != NULL)
    {
      GInetAddress *inet = g_inet_socket_address_get_address (client->local_address);

      if (g_inet_address_get_is_any (inet))
        family = g_inet_address_get_family (inet);
      else
        {
          g_autoptr(GSocketAddress) address = NULL;

          if (g_inet_address_get_is_loopback (inet) || g_inet_address_get_is_link_local (inet))
            return 0;
          address = g_inet_socket_address_new (inet, port);
          return rndz_addr_from_socket_address (&cands[0], address) ? 1 : 0;
        }
    }

  if (getifaddrs (&ifaddrs) < 0)
    return 0;

  for (ifa = ifaddrs; ifa != NULL; ifa = ifa->ifa_next)
    {
      g_autoptr(GSocketAddress) address = NULL;
      g_autoptr(GSocketAddress) with_port = NULL;
      GInetAddress *inet;
      RndzAddr addr;
      guint f;
      gboolean seen = FALSE;

      if (ifa->ifa_addr == NULL || !(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK))
        continue;
      if (ifa->ifa_addr->sa_family == AF_INET6 && family == G_SOCKET_FAMILY_IPV6)
        f = 0;
      else if (ifa->ifa_addr->sa_family == AF_INET)
        f = 1;
      else
        continue;
      if (n_found[f] == RNDZ_MAX_CANDIDATES)
        continue;

      address = g_socket_address_new_from_native (ifa->ifa_addr,
                                                  f == 0 ? sizeof (struct sockaddr_in6) :
                                                           sizeof (struct sockaddr_in));
      if (address == NULL)
        continue;
      inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
      if (g_inet_address_get_is_loopback (inet) || g_inet_address_get_is_link_local (inet))
        continue;

      with_port = g_inet_socket_address_new (inet, port);
      if (!rndz_addr_from_socket_address (&addr, with_port))
        continue;

      for (guint i = 0; i < n_found[f]; i++)
        seen |= rndz_addr_equal (&found[f][i], &addr);
      if (!seen)
        found[f][n_found[f]++] = addr;
    }
  freeifaddrs (ifaddrs);

  /* The families in turn, IPv6 first */
  for (guint i = 0; n < RNDZ_MAX_CANDIDATES && i < RNDZ_MAX_CANDIDATES; i++)
    for (guint f = 0; f < 2 && n < RNDZ_MAX_CANDIDATES; f++)
      if (i < n_found[f])
        cands[n++] = found[f][i];

  return n;
}

/* Resolving the servers
 *
 * Every name is looked up at once, and every address of a name is used:
 * "localhost" may come first as ::1 while the server listens on
 * 127.0.0.1 only. The result keeps the order the servers were given in,
 * so that "the first server" means the same thing for every operation.
 */

typedef struct
{
  GArray **addrs;         /* per server: RndzAddr */
  guint n_servers;
  guint outstanding;
  GError *first_error;
} ResolveData;

static void
resolve_data_free (ResolveData *data)
{
  for (guint i = 0; i < data->n_servers; i++)
    g_clear_pointer (&data->addrs[i], g_array_unref);
  g_free (data->addrs);
  g_clear_error (&data->first_error);
  g_free (data);
}

typedef struct
{
  GTask *task;
  guint index;
  GSocketAddressEnumerator *enumerator;
} ResolveItem;

static void
resolve_finish_one (GTask *task)
{
  ResolveData *data = g_task_get_task_data (task);
  g_autoptr(GArray) result = NULL;

  if (--data->outstanding > 0)
    return;

  result = g_array_new (FALSE, FALSE, sizeof (RndzAddr));
  for (guint i = 0; i < data->n_servers; i++)
    for (guint j = 0; j < data->addrs[i]->len; j++)
      {
        RndzAddr *addr = &g_array_index (data->addrs[i], RndzAddr, j);
        gboolean seen = FALSE;

        for (guint k = 0; k < result->len && !seen; k++)
          seen = rndz_addr_equal (addr, &g_array_index (result, RndzAddr, k));
        if (!seen)
          g_array_append_val (result, *addr);
      }

  if (result->len == 0)
    {
      g_task_return_new_error (task, RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE,
                               _("No rendezvous server could be resolved: %s"),
                               data->first_error != NULL ? data->first_error->message
                                                         : _("no server given"));
      return;
    }

  g_task_return_pointer (task, g_steal_pointer (&result), (GDestroyNotify) g_array_unref);
}

static void
resolve_next_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  ResolveItem *item = user_data;
  ResolveData *data = g_task_get_task_data (item->task);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr addr;

  address = g_socket_address_enumerator_next_finish (G_SOCKET_ADDRESS_ENUMERATOR (source),
                                                     result, &error);
  if (address != NULL)
    {
      if (rndz_addr_from_socket_address (&addr, address))
        g_array_append_val (data->addrs[item->index], addr);

      /* A name may have a few addresses; never more than a handful used */
      if (data->addrs[item->index]->len < 8)
        {
          g_socket_address_enumerator_next_async (item->enumerator,
                                                  g_task_get_cancellable (item->task),
                                                  resolve_next_cb, item);
          return;
        }
    }
  else if (error != NULL && data->first_error == NULL)
    data->first_error = g_steal_pointer (&error);
  else if (data->addrs[item->index]->len == 0 && data->first_error == NULL)
    data->first_error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                                             _("No address found"));

  resolve_finish_one (item->task);
  g_object_unref (item->enumerator);
  g_object_unref (item->task);
  g_free (item);
}

void
rndz_resolve_servers_async (RndzClient          *client,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  ResolveData *data;
  guint n = client->servers != NULL ? g_strv_length (client->servers) : 0;

  task = g_task_new (client, cancellable, callback, user_data);
  g_task_set_source_tag (task, rndz_resolve_servers_async);

  data = g_new0 (ResolveData, 1);
  data->n_servers = n;
  data->addrs = g_new0 (GArray *, n);
  data->outstanding = 1;    /* released below, once all are started */
  g_task_set_task_data (task, data, (GDestroyNotify) resolve_data_free);

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GSocketConnectable) connectable = NULL;
      g_autoptr(GError) error = NULL;
      ResolveItem *item;

      data->addrs[i] = g_array_new (FALSE, FALSE, sizeof (RndzAddr));

      /* A numeric address needs no resolver */
      {
        RndzAddr numeric;

        if (rndz_addr_parse (&numeric, client->servers[i], NULL))
          {
            g_array_append_val (data->addrs[i], numeric);
            continue;
          }
      }

      connectable = g_network_address_parse (client->servers[i], 0, &error);
      if (connectable == NULL || g_network_address_get_port (G_NETWORK_ADDRESS (connectable)) == 0)
        {
          if (data->first_error == NULL)
            data->first_error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                             _("Invalid server address “%s”: expected HOST:PORT"),
                                             client->servers[i]);
          continue;
        }

      item = g_new0 (ResolveItem, 1);
      item->task = g_object_ref (task);
      item->index = i;
      item->enumerator = g_socket_connectable_enumerate (connectable);
      data->outstanding++;
      g_socket_address_enumerator_next_async (item->enumerator, cancellable, resolve_next_cb, item);
    }

  resolve_finish_one (task);
}

GArray *
rndz_resolve_servers_finish (RndzClient    *client,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, client), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rndz_resolve_servers_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
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

  if (g_main_context_acquire (client->context))
    {
      call->acquired = TRUE;
      call->context = g_main_context_ref (client->context);
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
check_can_listen (RndzClient  *client,
                  GTask       *task)
{
  /* A listen that failed leaves a stopped listener behind */
  if (client->listener != NULL && !rndz_listener_is_active (client->listener))
    g_clear_pointer (&client->listener, rndz_listener_free);

  if (client->listener != NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_BUSY,
                               _("The client is already listening"));
      return FALSE;
    }

  /* No server would answer: say why at once rather than time out */
  if (client->id == NULL || !rndz_id_is_valid (client->id, -1))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("Invalid id “%s”: an id is 1 to 64 bytes of UTF-8 without control characters"),
                               client->id != NULL ? client->id : "");
      return FALSE;
    }

  return TRUE;
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

  if (!check_can_listen (client, task))
    return;

  client->listener = rndz_listener_new (client, transport);
  rndz_listener_start (client->listener, g_steal_pointer (&task));
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

  if (client->listener == NULL || !rndz_listener_is_active (client->listener) ||
      rndz_listener_get_transport (client->listener) != RNDZ_TRANSPORT_TCP)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                               _("The client is not listening on TCP"));
      return;
    }

  rndz_listener_accept (client->listener, g_steal_pointer (&task));
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
  RndzListener *listener;

  g_return_if_fail (RNDZ_IS_CLIENT (client));

  if (client->listener == NULL)
    return;

  /* Stopping notifies the state, and handlers may call stop again */
  listener = g_steal_pointer (&client->listener);
  rndz_listener_free (listener);
}

/* Reaching a peer */

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

  rndz_connect_start (client, transport, peer_id, g_steal_pointer (&task));
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

  return client->id;
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

  return (const char * const *) client->servers;
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

  return client->local_address;
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

  if (g_set_object (&client->local_address, address))
    g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_LOCAL_ADDRESS]);
}

/**
 * rndz_client_get_keepalive_interval:
 * @client: a #RndzClient
 *
 * Gets the seconds between the pings of a listening client.
 *
 * Returns: the keepalive interval in seconds, see
 *   [property@Rndz.Client:keepalive-interval]
 *
 * Since: 1.0
 */
guint
rndz_client_get_keepalive_interval (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  return client->keepalive_interval;
}

/**
 * rndz_client_set_keepalive_interval:
 * @client: a #RndzClient
 * @seconds: the interval, at least 1
 *
 * Sets [property@Rndz.Client:keepalive-interval]. It applies from the
 * next keepalive.
 *
 * Since: 1.0
 */
void
rndz_client_set_keepalive_interval (RndzClient *client,
                                    guint       seconds)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (seconds >= 1);

  if (client->keepalive_interval == seconds)
    return;

  client->keepalive_interval = seconds;
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_KEEPALIVE_INTERVAL]);
}

/**
 * rndz_client_get_timeout:
 * @client: a #RndzClient
 *
 * Gets the seconds that registering or reaching a peer may take.
 *
 * Returns: the timeout in seconds, see [property@Rndz.Client:timeout]
 *
 * Since: 1.0
 */
guint
rndz_client_get_timeout (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  return client->timeout;
}

/**
 * rndz_client_set_timeout:
 * @client: a #RndzClient
 * @seconds: the timeout, at least 1
 *
 * Sets [property@Rndz.Client:timeout]. It applies to operations started
 * afterwards.
 *
 * Since: 1.0
 */
void
rndz_client_set_timeout (RndzClient *client,
                         guint       seconds)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (seconds >= 1);

  if (client->timeout == seconds)
    return;

  client->timeout = seconds;
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

  if (client->listener == NULL)
    return 0;

  return rndz_listener_get_port (client->listener);
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

  return client->key;
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

  if (key == client->key || (key != NULL && client->key != NULL && g_bytes_equal (key, client->key)))
    return;

  g_clear_pointer (&client->key, g_bytes_unref);
  if (key != NULL)
    client->key = g_bytes_ref (key);
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

  return client->require_auth;
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
  if (client->require_auth == require_auth)
    return;

  client->require_auth = require_auth;
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

  return client->relay;
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
  if (client->relay == relay)
    return;

  client->relay = relay;
  g_object_notify_by_pspec (G_OBJECT (client), properties[PROP_RELAY]);
}

/**
 * rndz_client_get_direct_timeout:
 * @client: a #RndzClient
 *
 * Gets how long direct paths are tried.
 *
 * Returns: the value of [property@Rndz.Client:direct-timeout], in milliseconds
 *
 * Since: 1.0
 */
guint
rndz_client_get_direct_timeout (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), 0);

  return client->direct_timeout;
}

/**
 * rndz_client_set_direct_timeout:
 * @client: a #RndzClient
 * @milliseconds: how long to try direct paths, 100 to 3600000
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
  g_return_if_fail (milliseconds >= 100 && milliseconds <= 3600 * 1000);

  if (client->direct_timeout == milliseconds)
    return;

  client->direct_timeout = milliseconds;
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
      g_value_set_string (value, client->id);
      break;
    case PROP_SERVERS:
      g_value_set_boxed (value, client->servers);
      break;
    case PROP_LOCAL_ADDRESS:
      g_value_set_object (value, client->local_address);
      break;
    case PROP_KEEPALIVE_INTERVAL:
      g_value_set_uint (value, client->keepalive_interval);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, client->timeout);
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
      g_value_set_boxed (value, client->key);
      break;
    case PROP_REQUIRE_AUTH:
      g_value_set_boolean (value, client->require_auth);
      break;
    case PROP_RELAY:
      g_value_set_boolean (value, client->relay);
      break;
    case PROP_DIRECT_TIMEOUT:
      g_value_set_uint (value, client->direct_timeout);
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
      client->id = g_value_dup_string (value);
      break;
    case PROP_SERVERS:
      client->servers = g_value_dup_boxed (value);
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

  if (client->id == NULL || !rndz_id_is_valid (client->id, -1))
    g_critical ("RndzClient: “%s” is not a valid id: it must be 1 to %d bytes of "
                "UTF-8 without control characters",
                client->id != NULL ? client->id : "(null)", RNDZ_ID_MAX_LEN);
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

  g_free (client->id);
  g_strfreev (client->servers);
  g_clear_object (&client->local_address);
  g_clear_pointer (&client->key, g_bytes_unref);
  g_main_context_unref (client->context);

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
   * Seconds between the pings of a listening client. NATs forget an idle
   * UDP mapping after 30 seconds or more; the default, 10, stays well
   * below.
   *
   * Since: 1.0
   */
  properties[PROP_KEEPALIVE_INTERVAL] =
    g_param_spec_uint ("keepalive-interval", NULL, NULL,
                       1, 3600, DEFAULT_KEEPALIVE_INTERVAL, rw);

  /**
   * RndzClient:timeout:
   *
   * Seconds that registering or reaching a peer may take at most.
   *
   * Since: 1.0
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_uint ("timeout", NULL, NULL, 1, 3600, DEFAULT_TIMEOUT, rw);

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
   * Milliseconds that reaching a peer tries direct paths (its observed
   * address and its local ones) before it turns to the relay, or fails
   * with %RNDZ_ERROR_NO_PATH. Within [property@Rndz.Client:timeout] in any
   * case.
   *
   * Since: 1.0
   */
  properties[PROP_DIRECT_TIMEOUT] =
    g_param_spec_uint ("direct-timeout", NULL, NULL, 100, 3600 * 1000,
                       DEFAULT_DIRECT_TIMEOUT_MS, rw);

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
  client->context = g_main_context_ref_thread_default ();
  client->keepalive_interval = DEFAULT_KEEPALIVE_INTERVAL;
  client->timeout = DEFAULT_TIMEOUT;
  client->relay = TRUE;
  client->direct_timeout = DEFAULT_DIRECT_TIMEOUT_MS;
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
