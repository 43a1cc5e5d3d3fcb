/* rndz-peer-context.c: what every operation of a client shares
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-peer-context-private.h"
#include "rndz-i18n-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"

RndzPeerContext *
rndz_peer_context_new (GMainContext *context)
{
  RndzPeerContext *self = g_atomic_rc_box_new0 (RndzPeerContext);

  self->context = context != NULL ? g_main_context_ref (context)
                                  : g_main_context_ref_thread_default ();
  self->relay = TRUE;
  self->port_mapping = TRUE;
  return self;
}

RndzPeerContext *
rndz_peer_context_ref (RndzPeerContext *self)
{
  return g_atomic_rc_box_acquire (self);
}

static void
peer_context_clear (RndzPeerContext *self)
{
  g_free (self->id);
  g_strfreev (self->servers);
  g_clear_object (&self->local_address);
  g_clear_pointer (&self->key, g_bytes_unref);
  g_free (self->fingerprint);
  g_strfreev (self->allowed_fingerprints);
  g_main_context_unref (self->context);
}

void
rndz_peer_context_unref (RndzPeerContext *self)
{
  g_atomic_rc_box_release_full (self, (GDestroyNotify) peer_context_clear);
}

typedef struct
{
  GMainContext *context;
  RndzInvokeFunc func;
  GTask *task;
  gpointer user_data;
} Invoke;

static void
invoke_run (Invoke *invoke)
{
  g_main_context_push_thread_default (invoke->context);
  invoke->func (invoke->task, invoke->user_data);
  g_main_context_pop_thread_default (invoke->context);
}

static gboolean
invoke_cb (gpointer user_data)
{
  invoke_run (user_data);
  return G_SOURCE_REMOVE;
}

static void
invoke_free (Invoke *invoke)
{
  g_main_context_unref (invoke->context);
  g_object_unref (invoke->task);
  g_free (invoke);
}

/*
 * rndz_peer_context_invoke:
 * @func: called with @task and @user_data, in @self's context, with that
 *   context the thread-default one meanwhile
 * @task: the public operation that @func starts (a reference is held
 *   until @func has run)
 *
 * Runs @func in the peer's context: at once if this thread owns the
 * context or can acquire it, else from that context's next iteration, in
 * the thread that runs it. GIO operations that @func starts deliver
 * their callbacks there too.
 */
void
rndz_peer_context_invoke (RndzPeerContext *self,
                          RndzInvokeFunc   func,
                          GTask           *task,
                          gpointer         user_data)
{
  Invoke *invoke = g_new0 (Invoke, 1);
  GSource *source;

  invoke->context = g_main_context_ref (self->context);
  invoke->func = func;
  invoke->task = g_object_ref (task);
  invoke->user_data = user_data;

  if (g_main_context_acquire (self->context))
    {
      invoke_run (invoke);
      g_main_context_release (self->context);
      invoke_free (invoke);
      return;
    }

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, invoke_cb, invoke, (GDestroyNotify) invoke_free);
  g_source_set_static_name (source, "[rndz] start in the client's context");
  g_source_attach (source, self->context);
  g_source_unref (source);
}

/* A task whose callback runs in @context, whatever the thread-default
 * context is: for internal operations, whose callers run there */
GTask *
rndz_task_new_in (GMainContext        *context,
                  GCancellable        *cancellable,
                  GAsyncReadyCallback  callback,
                  gpointer             user_data)
{
  GTask *task;

  g_main_context_push_thread_default (context);
  task = g_task_new (NULL, cancellable, callback, user_data);
  g_main_context_pop_thread_default (context);
  return task;
}

guint32
rndz_new_tid (void)
{
  return g_random_int ();
}

/* Adds the MAC that proves the message is ours, when we have a key,
 * for @server only: the address we send it to */
void
rndz_peer_context_sign (RndzPeerContext *self,
                        const RndzAddr  *server,
                        RndzMessage     *msg)
{
  if (self->key != NULL)
    rndz_message_sign (msg, server, self->key, g_get_real_time () / 1000);
}

/*
 * rndz_peer_context_get_server_silence_ms:
 *
 * How long a server may be silent before a link to it is given up: two
 * keepalive intervals without a pong, and a second more for the last one
 * to come back.
 */
guint
rndz_peer_context_get_server_silence_ms (RndzPeerContext *self)
{
  return (guint) MIN (2 * (guint64) self->keepalive_ms + 1000, G_MAXUINT);
}

/*
 * rndz_peer_context_pick_family:
 *
 * The family of the sockets for a listen or connect: the local address's
 * if one is set, else the first server's. An IPv6 socket also reaches IPv4
 * servers and peers, v4-mapped.
 */
GSocketFamily
rndz_peer_context_pick_family (RndzPeerContext *self,
                               GArray          *servers)
{
  if (self->local_address != NULL)
    return g_socket_address_get_family (G_SOCKET_ADDRESS (self->local_address));

  if (servers->len > 0 && g_array_index (servers, RndzAddr, 0).family == 6)
    return G_SOCKET_FAMILY_IPV6;

  return G_SOCKET_FAMILY_IPV4;
}

/*
 * rndz_peer_context_bind:
 * @port: the port to bind, or 0 for the local address's own port
 *
 * A new non-blocking socket with address and port reuse, bound to the
 * local address we are given (or the any address of @family).
 */
GSocket *
rndz_peer_context_bind (RndzPeerContext  *self,
                        GSocketFamily     family,
                        GSocketType       type,
                        guint16           port,
                        GError          **error)
{
  g_autoptr(GInetAddress) any = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  GInetAddress *inet;

  if (self->local_address != NULL)
    {
      inet = g_inet_socket_address_get_address (self->local_address);
      if (port == 0)
        port = g_inet_socket_address_get_port (self->local_address);
    }
  else
    inet = any = g_inet_address_new_any (family);

  local = g_inet_socket_address_new (inet, port);
  return rndz_socket_new_bound (local, type, error);
}

/* A socket on our local address and on a port of its own,
 * whatever our port: without SO_REUSEADDR, which would let the
 * kernel give two such UDP sockets one port. */
GSocket *
rndz_peer_context_bind_own_port (RndzPeerContext  *self,
                                 GSocketFamily     family,
                                 GSocketType       type,
                                 GError          **error)
{
  g_autoptr(GInetAddress) any = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) socket = NULL;
  GInetAddress *inet;

  if (self->local_address != NULL)
    inet = g_inet_socket_address_get_address (self->local_address);
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

/*
 * rndz_peer_context_get_candidates:
 * @port: the port the peer uses
 * @cands: (out): at most RNDZ_MAX_CANDIDATES addresses
 *
 * The local addresses a peer offers besides the one the server observes:
 * those of its interfaces in @family, but loopback and link-local ones
 * (a link-local address needs a scope its peer cannot know). An IPv6
 * socket on the any address is dual-stack (GLib makes it so) and reaches
 * IPv4 too: its IPv4 addresses are offered as well, the two families in
 * turn, so that the peer's checks race them. A peer bound to one
 * address offers that one only if it is not loopback.
 *
 * Returns: the number of candidates
 */
/* The address of an interface, in @family's half of @found (IPv6 first),
 * unless it is loopback, link-local, or there already */
static void
add_interface_address (const struct ifaddrs *ifa,
                       GSocketFamily         family,
                       guint16               port,
                       RndzAddr              found[2][RNDZ_MAX_CANDIDATES],
                       guint                 n_found[2])
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) with_port = NULL;
  GInetAddress *inet;
  RndzAddr addr;
  guint f;

  if (ifa->ifa_addr == NULL || !(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK))
    return;
  if (ifa->ifa_addr->sa_family == AF_INET6 && family == G_SOCKET_FAMILY_IPV6)
    f = 0;
  else if (ifa->ifa_addr->sa_family == AF_INET)
    f = 1;
  else
    return;
  if (n_found[f] == RNDZ_MAX_CANDIDATES)
    return;

  address = g_socket_address_new_from_native (ifa->ifa_addr,
                                              f == 0 ? sizeof (struct sockaddr_in6) :
                                                       sizeof (struct sockaddr_in));
  if (address == NULL)
    return;
  inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
  if (g_inet_address_get_is_loopback (inet) || g_inet_address_get_is_link_local (inet))
    return;

  with_port = g_inet_socket_address_new (inet, port);
  if (!rndz_addr_from_socket_address (&addr, with_port))
    return;
  for (guint i = 0; i < n_found[f]; i++)
    if (rndz_addr_equal (&found[f][i], &addr))
      return;
  found[f][n_found[f]++] = addr;
}

/* A peer bound to one address offers that one, unless it is loopback or
 * link-local; returns -1 when bound to the any address (of @family) */
static int
bound_candidate (RndzPeerContext *self,
                 GSocketFamily   *family,
                 guint16          port,
                 RndzAddr        *cand)
{
  GInetAddress *inet;
  g_autoptr(GSocketAddress) address = NULL;

  if (self->local_address == NULL)
    return -1;

  inet = g_inet_socket_address_get_address (self->local_address);
  if (g_inet_address_get_is_any (inet))
    {
      *family = g_inet_address_get_family (inet);
      return -1;
    }
  if (g_inet_address_get_is_loopback (inet) || g_inet_address_get_is_link_local (inet))
    return 0;

  address = g_inet_socket_address_new (inet, port);
  return rndz_addr_from_socket_address (cand, address) ? 1 : 0;
}

guint
rndz_peer_context_get_candidates (RndzPeerContext *self,
                                  GSocketFamily    family,
                                  guint16          port,
                                  RndzAddr         cands[RNDZ_MAX_CANDIDATES])
{
  struct ifaddrs *ifaddrs = NULL;
  RndzAddr found[2][RNDZ_MAX_CANDIDATES];   /* IPv6, IPv4 */
  guint n_found[2] = { 0, 0 };
  guint n = 0;
  int bound = bound_candidate (self, &family, port, &cands[0]);

  if (bound >= 0)
    return bound;
  if (getifaddrs (&ifaddrs) < 0)
    return 0;

  for (struct ifaddrs *ifa = ifaddrs; ifa != NULL; ifa = ifa->ifa_next)
    add_interface_address (ifa, family, port, found, n_found);
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

/* Starts the look-up of server @index, or takes it as it is when it is
 * numeric. */
static void
resolve_start_one (GTask      *task,
                   const char *server,
                   guint       index)
{
  ResolveData *data = g_task_get_task_data (task);
  g_autoptr(GSocketConnectable) connectable = NULL;
  ResolveItem *item;
  RndzAddr numeric;

  data->addrs[index] = g_array_new (FALSE, FALSE, sizeof (RndzAddr));

  if (rndz_addr_parse (&numeric, server, NULL))
    {
      g_array_append_val (data->addrs[index], numeric);
      return;
    }

  connectable = g_network_address_parse (server, 0, NULL);
  if (connectable == NULL || g_network_address_get_port (G_NETWORK_ADDRESS (connectable)) == 0)
    {
      if (data->first_error == NULL)
        data->first_error = g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                         _("Invalid server address “%s”: expected HOST:PORT"),
                                         server);
      return;
    }

  item = g_new0 (ResolveItem, 1);
  item->task = g_object_ref (task);
  item->index = index;
  item->enumerator = g_socket_connectable_enumerate (connectable);
  data->outstanding++;
  g_socket_address_enumerator_next_async (item->enumerator, g_task_get_cancellable (task),
                                          resolve_next_cb, item);
}

void
rndz_resolve_servers_async (RndzPeerContext     *self,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  ResolveData *data;
  guint n = self->servers != NULL ? g_strv_length (self->servers) : 0;

  /* The task and the resolver deliver their callbacks in the
   * thread-default context: make it ours, whoever calls */
  g_main_context_push_thread_default (self->context);

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, rndz_resolve_servers_async);
  g_task_set_name (task, "[rndz] resolve servers");

  data = g_new0 (ResolveData, 1);
  data->n_servers = n;
  data->addrs = g_new0 (GArray *, n);
  data->outstanding = 1;    /* released below, once all are started */
  g_task_set_task_data (task, data, (GDestroyNotify) resolve_data_free);

  for (guint i = 0; i < n; i++)
    resolve_start_one (task, self->servers[i], i);

  resolve_finish_one (task);
  g_main_context_pop_thread_default (self->context);
}

GArray *
rndz_resolve_servers_finish (GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rndz_resolve_servers_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
