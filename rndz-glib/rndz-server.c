/* rndz-server.c: the rendezvous server
 *
 * SPDX-License-Identifier: MIT
 */

/**
 * RndzServer:
 *
 * A rendezvous server: it observes the public address of every peer that
 * registers with it and forwards connection requests between peers.
 *
 * The server serves TCP and UDP on one port. A peer registers by sending
 * `ping` messages with its id, at least once per
 * [property@Rndz.Server:peer-timeout]; a peer that wants to reach another
 * one sends `isync`, which the server forwards to the target as `fsync`
 * together with the requester's observed address. The target punches a hole
 * towards that address and answers `rsync`; the server then tells the
 * requester the target's observed address with `redirect`. The protocol is
 * described in `doc/protocol.md`.
 *
 * All sockets and timers of a server are attached to the
 * [struct@GLib.MainContext] that was the thread-default one when the server
 * was created; use the server from that context's thread only.
 *
 * Signals are emitted once the server is done with the message, timer or
 * call that caused them (the ping that registered a peer is answered
 * first); a handler may then do anything with the server, even stop it or
 * drop the last reference to it.
 *
 * The server never trusts what it reads: every message is bounded and
 * validated before it is parsed, malformed TCP input closes only the
 * connection it came on, malformed datagrams are dropped, and every table
 * the server keeps has a limit.
 *
 * Since: 1.0
 */

#include "config.h"

#include "rndz-server-object-private.h"
#include "rndz-enum-types.h"
#include "rndz-i18n-private.h"

/* The parts of the server, each in a file of its own; arrows point down
 * only, and what goes up goes through callbacks:
 *
 *   rndz-server.c       this GObject: signals, listen, stop, and the
 *                       dispatch of each message to the part for it
 *   rndz-server-settings.c  the getters and setters of its properties
 *                       (the two share rndz-server-object-private.h)
 *   rndz-forward.c      isync → fsync → rsync → redirect, relay requests
 *   rndz-forward-cluster.c  the same, for peers at another node of a cluster
 *   rndz-server-cluster.c   the server as a node of a cluster (rndz-cluster.c:
 *                       Redis; rndz-cluster-message.c: signed envelopes)
 *   rndz-registry.c     the registered peers: ping, bye, expiry
 *   rndz-server-io.c    sockets, connections, sending, the timer; its
 *                       datagrams go in and out in batches (rndz-udp-batch.c)
 *   rndz-server-auth.c  keys, MACs, replays
 *   rndz-server-names.c the addresses signed messages may name (a leaf)
 */

/* Timeouts in milliseconds, as everywhere in the API */
#define DEFAULT_PEER_TIMEOUT_MS 60000
#define DEFAULT_FORWARD_TIMEOUT_MS 5000
#define DEFAULT_REGISTER_TIMEOUT_MS 10000
#define DEFAULT_MAX_PEERS 100000
/* Generous for one address: a carrier-grade NAT puts many users behind
 * it. A network (IPv4 /16, IPv6 /48) may fill a tenth of the default
 * table. */
#define DEFAULT_MAX_PEERS_PER_ADDRESS 1000
#define DEFAULT_MAX_PEERS_PER_NETWORK 10000
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_REQUEST_RATE 20
#define DEFAULT_RELAY_MAX_SESSIONS 64
#define DEFAULT_RELAY_RATE (1024 * 1024)
#define DEFAULT_RELAY_IDLE_TIMEOUT_MS 60000
#define DEFAULT_RELAY_MAX_PER_ADDRESS 4
#define DEFAULT_RELAY_MAX_PER_NETWORK 16
#define DEFAULT_RELAY_MAX_LIFETIME_MS (3600 * 1000)

/* A signal owed to the handlers. Signals are emitted only when the work
 * that caused them is done (see server_enter()), because a handler may
 * stop the server, freeing the connections and peers that work uses. */
typedef struct
{
  guint signal_id;
  RndzTransport transport;
  RndzAddr addr;
  char id[RNDZ_ID_MAX_LEN + 1];
} ServerEvent;

GParamSpec *rndz_server_properties[N_PROPS];
#define properties rndz_server_properties

enum
{
  SIGNAL_PEER_REGISTERED,
  SIGNAL_PEER_REMOVED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (RndzServer, rndz_server, G_TYPE_OBJECT)

/* Re-entrancy
 *
 * Every way into the server from the main loop (a datagram, a frame, the
 * timer, an accepted or closed connection: rndz-server-io.c calls enter
 * and leave around each) and every public call that changes the registry
 * runs between server_enter() and server_leave(). Inside, no signal is
 * emitted: peer-registered and peer-removed are queued, and so is
 * notify::peer-count (once, however many peers came and went). The
 * outermost server_leave() emits them, holding a reference on the server
 * from the outermost server_enter(), once nothing on the stack uses a
 * peer or a connection any more. A handler may then stop the server,
 * dispose it or drop the caller's reference.
 */

static void
server_enter (gpointer owner)
{
  RndzServer *server = owner;

  if (server->depth++ == 0)
    g_object_ref (server);
}

/* For the parts that call into the server from sources of their own */
void
rndz_server_enter (RndzServer *server)
{
  server_enter (server);
}

static void
server_emit_event (RndzServer        *server,
                   const ServerEvent *event)
{
  if (event->signal_id == signals[SIGNAL_PEER_REGISTERED])
    {
      g_autoptr(GSocketAddress) address = NULL;

      address = rndz_addr_to_socket_address (&event->addr, G_SOCKET_FAMILY_INVALID);
      g_signal_emit (server, event->signal_id, 0, event->id, event->transport, address);
    }
  else
    g_signal_emit (server, event->signal_id, 0, event->id, event->transport);
}

static void
server_leave (gpointer owner)
{
  RndzServer *server = owner;
  ServerEvent *event;

  g_return_if_fail (server->depth > 0);
  if (--server->depth > 0)
    return;

  /* A handler may enter and leave again: the queue is shared, so the
   * events still come out in order, each once */
  while (server->depth == 0 && (event = g_queue_pop_head (&server->events)) != NULL)
    {
      server_emit_event (server, event);
      g_free (event);
    }
  if (server->depth == 0 && server->peer_count_changed)
    {
      server->peer_count_changed = FALSE;
      g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_PEER_COUNT]);
    }

  g_object_unref (server);
}

void
rndz_server_leave (RndzServer *server)
{
  server_leave (server);
}

static void
server_queue_event (RndzServer     *server,
                    guint           signal_id,
                    const char     *id,
                    RndzTransport   transport,
                    const RndzAddr *addr)
{
  ServerEvent *event;

  if (!g_signal_has_handler_pending (server, signal_id, 0, FALSE))
    return;

  event = g_new0 (ServerEvent, 1);
  event->signal_id = signal_id;
  event->transport = transport;
  if (addr != NULL)
    event->addr = *addr;
  g_strlcpy (event->id, id, sizeof event->id);
  g_queue_push_tail (&server->events, event);
}

/* What the parts tell the server */

static void
registry_changed_cb (gpointer            owner,
                     RndzRegistryChange  change,
                     const RndzPeer     *peer)
{
  RndzServer *server = owner;
  RndzTransport transport = peer->transport;

  rndz_server_cluster_peer_changed (server, change, peer);
  if (change == RNDZ_REGISTRY_KEPT)
    return;
  if (change == RNDZ_REGISTRY_REMOVED)
    server_queue_event (server, signals[SIGNAL_PEER_REMOVED], peer->id, transport, NULL);
  else
    server_queue_event (server, signals[SIGNAL_PEER_REGISTERED], peer->id, transport, &peer->addr);

  if (change != RNDZ_REGISTRY_MOVED)
    server->peer_count_changed = TRUE;
}

static void
server_message_cb (gpointer                owner,
                   const RndzServerSource *src,
                   const RndzMessage      *msg)
{
  RndzServer *server = owner;
  gboolean authenticated = rndz_server_auth_is_required (server->auth);

  switch (rndz_server_auth_check (server->auth, &src->from, msg))
    {
    case RNDZ_AUTH_PASSED:
      break;
    case RNDZ_AUTH_UNSIGNED:
      rndz_server_io_refuse (server->io, src, msg->tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED, 0);
      return;
    case RNDZ_AUTH_FAILED:
    default:
      return;
    }

  server->stats.messages++;

  switch (msg->type)
    {
    case RNDZ_MESSAGE_PING:
      if (!rndz_server_cluster_hold_ping (server, src, msg))
        rndz_registry_handle_ping (server->registry, src, msg);
      break;
    case RNDZ_MESSAGE_BYE:
      rndz_registry_handle_bye (server->registry, src, msg);
      break;
    case RNDZ_MESSAGE_ISYNC:
      rndz_forwarder_handle_isync (server->forwarder, src, msg, authenticated);
      break;
    case RNDZ_MESSAGE_RSYNC:
      rndz_forwarder_handle_rsync (server->forwarder, src, msg);
      break;
    case RNDZ_MESSAGE_RELAY:
      rndz_forwarder_handle_relay (server->forwarder, src, msg, authenticated);
      break;
    default:
      /* Messages a server sends, not receives */
      break;
    }
}

static void
server_conn_closed_cb (gpointer        owner,
                       RndzServerConn *conn)
{
  RndzServer *server = owner;

  rndz_registry_conn_closed (server->registry, conn);
  rndz_forwarder_conn_closed (server->forwarder, conn);
}

/* The one timer: requests, then peers, then silent connections */
static void
server_expire_cb (gpointer owner)
{
  RndzServer *server = owner;
  gint64 now = g_get_monotonic_time ();

  rndz_forwarder_expire (server->forwarder, now);
  rndz_registry_expire (server->registry, now);
  rndz_server_io_expire_unregistered (server->io, now);
}

static const RndzServerIoCallbacks io_callbacks = {
  .enter = server_enter,
  .leave = server_leave,
  .message = server_message_cb,
  .conn_closed = server_conn_closed_cb,
  .expire = server_expire_cb,
};

/* Internal API (rndz-server-private.h) */

/*
 * rndz_server_receive_datagram:
 *
 * Handles one datagram as if it had arrived from @from. Fuzzers come
 * here, without sockets.
 */
void
rndz_server_receive_datagram (RndzServer     *server,
                              const RndzAddr *from,
                              const char     *data,
                              gsize           len)
{
  rndz_server_io_receive_datagram (server->io, from, data, len);
}

/*
 * rndz_server_add_connection:
 * @remote: the peer's address, or %NULL to read it from @socket
 *
 * Serves a connected TCP socket; fuzzers and tests may hand in one end
 * of a socket pair.
 */
void
rndz_server_add_connection (RndzServer     *server,
                            GSocket        *socket,
                            const RndzAddr *remote)
{
  rndz_server_io_add_connection (server->io, socket, remote);
}

void
rndz_server_get_stats (RndzServer      *server,
                       RndzServerStats *stats)
{
  *stats = server->stats;
}

guint
rndz_server_get_relay_session_count (RndzServer *server)
{
  return server->relay != NULL ? rndz_relay_get_session_count (server->relay) : 0;
}

void
rndz_server_set_relay_join_timeout (RndzServer *server,
                                    guint       ms)
{
  server->relay_join_timeout_ms = ms;
  if (server->relay != NULL)
    rndz_relay_set_join_timeout (server->relay, ms != 0 ? ms : RNDZ_RELAY_JOIN_TIMEOUT_MS);
}

void
rndz_server_set_udp_sender (RndzServer         *server,
                            RndzServerSendFunc  func,
                            gpointer            user_data)
{
  rndz_server_io_set_sender (server->io, func, user_data);
}

/* Listening */

/* Signed messages must name the address the server is bound to, or,
 * bound to a wildcard, one of the host's */
static void
server_names_listening (RndzServer *server,
                        GSocket    *udp)
{
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (udp, NULL);
  RndzAddr bound;

  if (local != NULL && rndz_addr_from_socket_address (&bound, local))
    rndz_server_names_set_bound (server->names, &bound);
}

/* How the peers of other nodes of a cluster reach our relay: at the
 * address the server advertises, with the relay's port. Unknown
 * otherwise: a peer then joins at its own server's host, which is right
 * for nodes that share one machine. */
static void
server_relay_address (RndzServer *server)
{
  RndzAddr addr;

  if (!rndz_server_names_get_advertised (server->names, &addr))
    {
      rndz_forwarder_set_relay_address (server->forwarder, NULL);
      return;
    }
  addr.port = server->relay_port;
  rndz_forwarder_set_relay_address (server->forwarder, &addr);
}

/**
 * rndz_server_listen:
 * @server: a #RndzServer
 * @address: the address to serve on: an IPv4 or IPv6 address and a port,
 *   or port 0 to let the system pick one
 * @error: return location for a #GError
 *
 * Starts serving TCP and UDP on @address, both on the same port. To serve
 * IPv4 and IPv6 on one socket, listen on the IPv6 any address `::`.
 *
 * With port 0, read the chosen port back with rndz_server_get_port().
 *
 * If [property@Rndz.Server:relay-port] is set, the server also serves TCP
 * and UDP on that port of the same address, and relays between peers
 * that cannot reach each other directly. If any of the sockets cannot be
 * bound, none is: the server does not listen at all.
 *
 * Returns: %TRUE if the server is now serving
 *
 * Since: 1.0
 */
gboolean
rndz_server_listen (RndzServer      *server,
                    GSocketAddress  *address,
                    GError         **error)
{
  g_autoptr(GSocket) tcp = NULL;
  g_autoptr(GSocket) udp = NULL;
  g_autoptr(GSocket) relay_tcp = NULL;
  g_autoptr(GSocket) relay_udp = NULL;

  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (rndz_server_io_is_listening (server->io))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           _("The server is already listening"));
      return FALSE;
    }

  if (server->relay_port != 0 &&
      server->relay_port == g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("The relay port %u is the server’s port"), server->relay_port);
      return FALSE;
    }

  if (!rndz_server_bind_sockets (address, server->reuse_port, &tcp, &udp, error))
    return FALSE;

  if (server->relay_port != 0)
    {
      GInetAddress *inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
      g_autoptr(GSocketAddress) relay_address = g_inet_socket_address_new (inet, server->relay_port);

      /* The sockets of the main port close as this returns */
      /* A relay session lives in one process: its port is never shared */
      if (!rndz_server_bind_sockets (relay_address, FALSE, &relay_tcp, &relay_udp, error))
        {
          g_prefix_error (error, _("Relay port: "));
          return FALSE;
        }
    }

  if (!rndz_server_cluster_start (server, error))
    return FALSE;
  rndz_server_io_start (server->io, tcp, udp);
  server_names_listening (server, udp);

  if (relay_udp != NULL)
    {
      server->relay = rndz_relay_new (server->context, relay_udp, relay_tcp, &server->stats);
      rndz_relay_configure (server->relay, server->relay_max_sessions, server->relay_rate,
                            server->relay_idle_timeout_ms);
      rndz_relay_set_caps (server->relay, server->relay_max_per_address,
                           server->relay_max_per_network, server->relay_max_lifetime_ms);
      if (server->relay_join_timeout_ms != 0)
        rndz_relay_set_join_timeout (server->relay, server->relay_join_timeout_ms);
      rndz_forwarder_set_relay (server->forwarder, server->relay);
      server_relay_address (server);
      g_debug ("Relaying on port %u", server->relay_port);
    }

  /* A relay session holds two connections, and up to two more wait for
   * their hello */
  rndz_server_io_fit_descriptors (server->io,
                                  server->relay != NULL ? 4 * server->relay_max_sessions : 0);

  g_debug ("Listening on port %u", rndz_server_get_port (server));
  return TRUE;
}

/**
 * rndz_server_stop:
 * @server: a #RndzServer
 *
 * Stops serving: closes the listening sockets and every connection, and
 * forgets every registered peer (emitting [signal@Rndz.Server::peer-removed]
 * for each). Relay sessions are closed, with their connections. The
 * server can listen again afterwards.
 *
 * Since: 1.0
 */
void
rndz_server_stop (RndzServer *server)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));

  server_enter (server);
  rndz_forwarder_set_relay (server->forwarder, NULL);
  g_clear_pointer (&server->relay, rndz_relay_free);
  rndz_forwarder_clear (server->forwarder);
  /* The cluster hears that our peers are gone, then we leave it */
  rndz_registry_remove_all (server->registry);
  rndz_server_cluster_stop (server);
  rndz_server_io_stop (server->io);
  rndz_server_names_set_bound (server->names, NULL);
  server_leave (server);
}

/**
 * rndz_server_get_local_address:
 * @server: a #RndzServer
 *
 * Gets the address the server listens on, with the port it got.
 *
 * Returns: (transfer full) (nullable): the address the server listens on,
 *   or %NULL if it does not listen
 *
 * Since: 1.0
 */
GSocketAddress *
rndz_server_get_local_address (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), NULL);

  return rndz_server_io_get_local_address (server->io);
}

/**
 * rndz_server_get_port:
 * @server: a #RndzServer
 *
 * Gets the port the server listens on, TCP and UDP alike.
 *
 * Returns: the port the server listens on, or 0 if it does not listen
 *
 * Since: 1.0
 */
guint16
rndz_server_get_port (RndzServer *server)
{
  g_autoptr(GSocketAddress) address = NULL;

  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  address = rndz_server_get_local_address (server);
  if (address == NULL)
    return 0;

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}

/**
 * rndz_server_get_peer_count:
 * @server: a #RndzServer
 *
 * Gets the number of registered peers, see [property@Rndz.Server:peer-count].
 *
 * Returns: the number of registered peers, over both transports
 *
 * Since: 1.0
 */
guint
rndz_server_get_peer_count (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return rndz_registry_get_count (server->registry);
}

/* GObject */

static void
rndz_server_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  RndzServer *server = RNDZ_SERVER (object);

  switch (prop_id)
    {
    case PROP_PEER_TIMEOUT:
      g_value_set_uint (value, server->config.peer_timeout_ms);
      break;
    case PROP_FORWARD_TIMEOUT:
      g_value_set_uint (value, server->config.forward_timeout_ms);
      break;
    case PROP_REGISTER_TIMEOUT:
      g_value_set_uint (value, server->config.register_timeout_ms);
      break;
    case PROP_MAX_PEERS:
      g_value_set_uint (value, server->config.max_peers);
      break;
    case PROP_MAX_PEERS_PER_ADDRESS:
      g_value_set_uint (value, server->config.max_peers_per_address);
      break;
    case PROP_MAX_PEERS_PER_NETWORK:
      g_value_set_uint (value, server->config.max_peers_per_network);
      break;
    case PROP_MAX_CONNECTIONS:
      g_value_set_uint (value, server->config.max_connections);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint (value, server->config.max_message_size);
      break;
    case PROP_REQUEST_RATE:
      g_value_set_uint (value, server->request_rate);
      break;
    case PROP_RELAY_PORT:
      g_value_set_uint (value, server->relay_port);
      break;
    case PROP_RELAY_MAX_SESSIONS:
      g_value_set_uint (value, server->relay_max_sessions);
      break;
    case PROP_RELAY_RATE:
      g_value_set_uint (value, server->relay_rate);
      break;
    case PROP_RELAY_IDLE_TIMEOUT:
      g_value_set_uint (value, server->relay_idle_timeout_ms);
      break;
    case PROP_RELAY_MAX_PER_ADDRESS:
      g_value_set_uint (value, server->relay_max_per_address);
      break;
    case PROP_RELAY_MAX_PER_NETWORK:
      g_value_set_uint (value, server->relay_max_per_network);
      break;
    case PROP_RELAY_MAX_LIFETIME:
      g_value_set_uint (value, server->relay_max_lifetime_ms);
      break;
    case PROP_AUTH_REQUIRED:
      g_value_set_boolean (value, rndz_server_get_auth_required (server));
      break;
    case PROP_PUBLIC_ADDRESSES:
      g_value_set_boxed (value, rndz_server_get_public_addresses (server));
      break;
    case PROP_PEER_COUNT:
      g_value_set_uint (value, rndz_server_get_peer_count (server));
      break;
    case PROP_CLUSTER:
      g_value_set_string (value, server->cluster_url);
      break;
    case PROP_CLUSTER_CONNECTED:
      g_value_set_boolean (value, rndz_server_get_cluster_connected (server));
      break;
    case PROP_REUSE_PORT:
      g_value_set_boolean (value, server->reuse_port);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_server_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  RndzServer *server = RNDZ_SERVER (object);

  switch (prop_id)
    {
    case PROP_PEER_TIMEOUT:
      rndz_server_set_peer_timeout (server, g_value_get_uint (value));
      break;
    case PROP_FORWARD_TIMEOUT:
      rndz_server_set_forward_timeout (server, g_value_get_uint (value));
      break;
    case PROP_REGISTER_TIMEOUT:
      rndz_server_set_register_timeout (server, g_value_get_uint (value));
      break;
    case PROP_MAX_PEERS:
      rndz_server_set_max_peers (server, g_value_get_uint (value));
      break;
    case PROP_MAX_PEERS_PER_ADDRESS:
      rndz_server_set_max_peers_per_address (server, g_value_get_uint (value));
      break;
    case PROP_MAX_PEERS_PER_NETWORK:
      rndz_server_set_max_peers_per_network (server, g_value_get_uint (value));
      break;
    case PROP_MAX_CONNECTIONS:
      rndz_server_set_max_connections (server, g_value_get_uint (value));
      break;
    case PROP_MAX_MESSAGE_SIZE:
      rndz_server_set_max_message_size (server, g_value_get_uint (value));
      break;
    case PROP_REQUEST_RATE:
      rndz_server_set_request_rate (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_PORT:
      rndz_server_set_relay_port (server, (guint16) g_value_get_uint (value));
      break;
    case PROP_RELAY_MAX_SESSIONS:
      rndz_server_set_relay_max_sessions (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_RATE:
      rndz_server_set_relay_rate (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_IDLE_TIMEOUT:
      rndz_server_set_relay_idle_timeout (server, g_value_get_uint (value));
      break;
    case PROP_CLUSTER:
      rndz_server_set_cluster (server, g_value_get_string (value));
      break;
    case PROP_REUSE_PORT:
      rndz_server_set_reuse_port (server, g_value_get_boolean (value));
      break;
    case PROP_RELAY_MAX_PER_ADDRESS:
      rndz_server_set_relay_max_sessions_per_address (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_MAX_PER_NETWORK:
      rndz_server_set_relay_max_sessions_per_network (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_MAX_LIFETIME:
      rndz_server_set_relay_max_lifetime (server, g_value_get_uint (value));
      break;
    case PROP_PUBLIC_ADDRESSES:
      rndz_server_set_public_addresses (server, g_value_get_boxed (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_server_dispose (GObject *object)
{
  RndzServer *server = RNDZ_SERVER (object);

  rndz_server_stop (server);

  G_OBJECT_CLASS (rndz_server_parent_class)->dispose (object);
}

static void
rndz_server_finalize (GObject *object)
{
  RndzServer *server = RNDZ_SERVER (object);

  rndz_forwarder_free (server->forwarder);
  rndz_registry_free (server->registry);
  rndz_server_io_free (server->io);
  rndz_server_auth_free (server->auth);
  g_free (server->cluster_url);
  g_clear_pointer (&server->cluster_secret, g_bytes_unref);
  rndz_server_names_free (server->names);
  g_strfreev (server->public_addresses);
  g_queue_clear_full (&server->events, g_free);
  g_main_context_unref (server->context);

  G_OBJECT_CLASS (rndz_server_parent_class)->finalize (object);
}

static void
rndz_server_class_init (RndzServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->get_property = rndz_server_get_property;
  object_class->set_property = rndz_server_set_property;
  object_class->dispose = rndz_server_dispose;
  object_class->finalize = rndz_server_finalize;

  /**
   * RndzServer:peer-timeout:
   *
   * How long after its last ping a peer is forgotten, in milliseconds,
   * from 1000 to %G_MAXINT (about 24 days); 60000 (a minute) by default.
   *
   * Since: 1.0
   */
  properties[PROP_PEER_TIMEOUT] =
    g_param_spec_uint ("peer-timeout", NULL, NULL,
                       MIN_TIMEOUT_MS, MAX_PEER_TIMEOUT_MS, DEFAULT_PEER_TIMEOUT_MS, flags);

  /**
   * RndzServer:forward-timeout:
   *
   * How long a forwarded connection request may wait for the target's
   * answer before the requester is told that the peer did not answer, in
   * milliseconds, from 1000 to 3600000; 5000 by default.
   *
   * Since: 1.0
   */
  properties[PROP_FORWARD_TIMEOUT] =
    g_param_spec_uint ("forward-timeout", NULL, NULL,
                       MIN_TIMEOUT_MS, MAX_FORWARD_TIMEOUT_MS, DEFAULT_FORWARD_TIMEOUT_MS, flags);

  /**
   * RndzServer:register-timeout:
   *
   * How long a TCP connection may stay open without registering a peer,
   * in milliseconds, from 1000 to 3600000; 10000 by default.
   *
   * Since: 1.0
   */
  properties[PROP_REGISTER_TIMEOUT] =
    g_param_spec_uint ("register-timeout", NULL, NULL,
                       MIN_TIMEOUT_MS, MAX_REGISTER_TIMEOUT_MS, DEFAULT_REGISTER_TIMEOUT_MS, flags);

  /**
   * RndzServer:max-peers:
   *
   * The largest number of registered peers, over both transports. Further
   * registrations are answered with a `server-full` error.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_PEERS] =
    g_param_spec_uint ("max-peers", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_MAX_PEERS, flags);

  /**
   * RndzServer:max-peers-per-address:
   *
   * The largest number of ids registered from one IPv4 address or one
   * IPv6 /64, over both transports. A new id from there, or one moving
   * there, is answered with a `server-full` error; an id registered
   * there already is never refused. Many users may share an address
   * behind a carrier-grade NAT: the default is generous.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_PEERS_PER_ADDRESS] =
    g_param_spec_uint ("max-peers-per-address", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_MAX_PEERS_PER_ADDRESS, flags);

  /**
   * RndzServer:max-peers-per-network:
   *
   * The largest number of ids registered from one IPv4 /16 or one IPv6
   * /48, over both transports, so that one network cannot fill the
   * table. As [property@Rndz.Server:max-peers-per-address] otherwise.
   * A server for one private network should raise it to
   * [property@Rndz.Server:max-peers].
   *
   * Since: 1.0
   */
  properties[PROP_MAX_PEERS_PER_NETWORK] =
    g_param_spec_uint ("max-peers-per-network", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_MAX_PEERS_PER_NETWORK, flags);

  /**
   * RndzServer:max-connections:
   *
   * The largest number of simultaneous TCP connections. At the limit, a
   * new connection takes the place of the oldest one that has not
   * registered; if every connection carries a registration, the new one
   * is closed.
   *
   * The server also sizes this against the descriptors the process may
   * still open (`ulimit -n`) when it starts listening, keeping room for
   * the relay: if fewer are left, it serves that many and says so in a
   * message. Raise the limit on open files (the `rndz` tool raises its
   * soft limit to the hard one) rather than let accept() run out.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_CONNECTIONS] =
    g_param_spec_uint ("max-connections", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_MAX_CONNECTIONS, flags);

  /**
   * RndzServer:max-message-size:
   *
   * The largest message accepted, in bytes. Larger datagrams are dropped
   * and larger frames close their connection.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MESSAGE_SIZE] =
    g_param_spec_uint ("max-message-size", NULL, NULL,
                       RNDZ_MESSAGE_MIN_MAX_SIZE, RNDZ_MESSAGE_DEFAULT_MAX_SIZE,
                       RNDZ_MESSAGE_DEFAULT_MAX_SIZE, flags);

  /**
   * RndzServer:request-rate:
   *
   * Connection requests per second that the server forwards from one
   * source address, and to one target address, with bursts of twice as
   * many. A forwarded request makes the server send to a third party: the
   * limit keeps the server from being used to flood anyone. An IPv6
   * source counts by its /64 prefix.
   *
   * Since: 1.0
   */
  properties[PROP_REQUEST_RATE] =
    g_param_spec_uint ("request-rate", NULL, NULL,
                       1, G_MAXUINT16, DEFAULT_REQUEST_RATE, flags);

  /**
   * RndzServer:relay-port:
   *
   * The port to relay on, TCP and UDP, at the address the server listens
   * on; 0, the default, for no relay. Peers that cannot reach each other
   * directly may ask the server to relay their traffic through this port
   * (see `doc/protocol.md`): it costs the server bandwidth, so it is off
   * unless set. A change takes effect the next time the server listens.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_PORT] =
    g_param_spec_uint ("relay-port", NULL, NULL,
                       0, G_MAXUINT16, 0, flags);

  /**
   * RndzServer:relay-max-sessions:
   *
   * The largest number of relay sessions open at once. Further relay
   * requests are answered with a `server-full` error.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_MAX_SESSIONS] =
    g_param_spec_uint ("relay-max-sessions", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_RELAY_MAX_SESSIONS, flags);

  /**
   * RndzServer:relay-rate:
   *
   * The bytes per second that the relay forwards per session and
   * direction, with bursts of a quarter of a second (at least 64 KiB); 0
   * for no limit. Datagrams over the rate are dropped; a TCP connection
   * over the rate is not read until it is within it again.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_RATE] =
    g_param_spec_uint ("relay-rate", NULL, NULL,
                       0, G_MAXUINT, DEFAULT_RELAY_RATE, flags);

  /**
   * RndzServer:relay-idle-timeout:
   *
   * How long a relay session may go without traffic before it is closed,
   * in milliseconds, from 1000 to 604800000 (a week); 60000 (a minute) by
   * default. A session that both peers did not join within ten seconds is
   * closed too.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_IDLE_TIMEOUT] =
    g_param_spec_uint ("relay-idle-timeout", NULL, NULL,
                       MIN_TIMEOUT_MS, MAX_RELAY_IDLE_TIMEOUT_MS, DEFAULT_RELAY_IDLE_TIMEOUT_MS,
                       flags);

  /**
   * RndzServer:relay-max-sessions-per-address:
   *
   * The largest number of relay sessions that requests from one address
   * may hold at once (an IPv6 address counts by its /64, the port is
   * ignored); 4 by default. Further requests from there are answered with
   * a `server-full` error, so that one source cannot take every session.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_MAX_PER_ADDRESS] =
    g_param_spec_uint ("relay-max-sessions-per-address", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_RELAY_MAX_PER_ADDRESS, flags);

  /**
   * RndzServer:relay-max-sessions-per-network:
   *
   * The largest number of relay sessions that requests from one network,
   * an IPv4 /16 or an IPv6 /48, may hold at once; 16 by default. Further
   * requests from there are answered with a `server-full` error.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_MAX_PER_NETWORK] =
    g_param_spec_uint ("relay-max-sessions-per-network", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_RELAY_MAX_PER_NETWORK, flags);

  /**
   * RndzServer:relay-max-lifetime:
   *
   * How long a relay session may last, traffic or not, in milliseconds,
   * from 1000 to 604800000 (a week); 3600000 (an hour) by default. Peers
   * that need longer ask for a new session.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_MAX_LIFETIME] =
    g_param_spec_uint ("relay-max-lifetime", NULL, NULL,
                       MIN_TIMEOUT_MS, MAX_RELAY_IDLE_TIMEOUT_MS, DEFAULT_RELAY_MAX_LIFETIME_MS,
                       flags);

  /**
   * RndzServer:auth-required:
   *
   * Whether peers must authenticate: true once a secret or a key is set
   * (see rndz_server_set_secret()).
   *
   * Since: 1.0
   */
  properties[PROP_AUTH_REQUIRED] =
    g_param_spec_boolean ("auth-required", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzServer:public-addresses:
   *
   * Addresses, besides its own, under which peers reach the server: a
   * server behind DNAT or port forwarding is reached at an address of the
   * router. Each is numeric with its port, `198.51.100.7:8888` or
   * `[2001:db8::7]:8888`. With authentication on, every signed message
   * names the server it is sent to, and the server accepts only its own
   * names: the address its sockets are bound to (bound to `0.0.0.0` or
   * `::`, any address of the host with its port) and these. A message
   * signed for another name is dropped, and logged once a second at most.
   * Empty by default.
   *
   * Since: 1.0
   */
  properties[PROP_PUBLIC_ADDRESSES] =
    g_param_spec_boxed ("public-addresses", NULL, NULL, G_TYPE_STRV, flags);

  /**
   * RndzServer:peer-count:
   *
   * The number of registered peers, over both transports.
   *
   * Since: 1.0
   */
  properties[PROP_PEER_COUNT] =
    g_param_spec_uint ("peer-count", NULL, NULL,
                       0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzServer:cluster:
   *
   * The Redis of the cluster this server is a node of, as
   * `redis://[:PASSWORD@]ADDRESS[:PORT][/DB]` (an IP address, or
   * `localhost`), or %NULL to serve alone. The nodes of a cluster share
   * one registry: a request that reaches any node finds a peer registered
   * at any other. See rndz_server_set_cluster_secret() and
   * doc/cluster.md. Read at rndz_server_listen().
   *
   * Since: 1.0
   */
  properties[PROP_CLUSTER] =
    g_param_spec_string ("cluster", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzServer:cluster-connected:
   *
   * Whether the server is a node of a cluster and reaches its Redis.
   * While it does not, it serves the peers it holds, and requests for
   * others fail with the `unavailable` error.
   *
   * Since: 1.0
   */
  properties[PROP_CLUSTER_CONNECTED] =
    g_param_spec_boolean ("cluster-connected", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzServer:reuse-port:
   *
   * Whether the main port may be shared with other processes
   * (SO_REUSEPORT), for several nodes of a cluster on one machine: the
   * kernel spreads peers among them by their addresses. The relay port is
   * never shared. Read at rndz_server_listen().
   *
   * Since: 1.0
   */
  properties[PROP_REUSE_PORT] =
    g_param_spec_boolean ("reuse-port", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * RndzServer::peer-registered:
   * @server: the server
   * @id: the peer's id
   * @transport: the transport it registered on
   * @address: the peer's address as the server sees it
   *
   * Emitted when a peer registers, or when a registered peer shows up at a
   * new address or on a new connection, after the server answered the
   * ping. A handler may stop the server.
   *
   * Since: 1.0
   */
  signals[SIGNAL_PEER_REGISTERED] =
    g_signal_new ("peer-registered", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_STRING, RNDZ_TYPE_TRANSPORT, G_TYPE_SOCKET_ADDRESS);

  /**
   * RndzServer::peer-removed:
   * @server: the server
   * @id: the peer's id
   * @transport: the transport it was registered on
   *
   * Emitted when a peer said bye, timed out, lost its TCP connection, or
   * the server stopped; after the server is done with what removed it. A
   * handler may stop the server.
   *
   * Since: 1.0
   */
  signals[SIGNAL_PEER_REMOVED] =
    g_signal_new ("peer-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING, RNDZ_TYPE_TRANSPORT);
}

static void
rndz_server_init (RndzServer *server)
{
  server->context = g_main_context_ref_thread_default ();

  server->config.peer_timeout_ms = DEFAULT_PEER_TIMEOUT_MS;
  server->config.forward_timeout_ms = DEFAULT_FORWARD_TIMEOUT_MS;
  server->config.register_timeout_ms = DEFAULT_REGISTER_TIMEOUT_MS;
  server->config.max_peers = DEFAULT_MAX_PEERS;
  server->config.max_peers_per_address = DEFAULT_MAX_PEERS_PER_ADDRESS;
  server->config.max_peers_per_network = DEFAULT_MAX_PEERS_PER_NETWORK;
  server->config.max_connections = DEFAULT_MAX_CONNECTIONS;
  server->config.max_message_size = RNDZ_MESSAGE_DEFAULT_MAX_SIZE;
  server->request_rate = DEFAULT_REQUEST_RATE;
  server->relay_max_sessions = DEFAULT_RELAY_MAX_SESSIONS;
  server->relay_rate = DEFAULT_RELAY_RATE;
  server->relay_idle_timeout_ms = DEFAULT_RELAY_IDLE_TIMEOUT_MS;
  server->relay_max_per_address = DEFAULT_RELAY_MAX_PER_ADDRESS;
  server->relay_max_per_network = DEFAULT_RELAY_MAX_PER_NETWORK;
  server->relay_max_lifetime_ms = DEFAULT_RELAY_MAX_LIFETIME_MS;

  server->io = rndz_server_io_new (server->context, &server->config, &server->stats,
                                   &io_callbacks, server);
  server->registry = rndz_registry_new (server->io, &server->config, &server->stats,
                                        registry_changed_cb, server);
  server->forwarder = rndz_forwarder_new (server->io, server->registry, &server->config,
                                          &server->stats, server->request_rate);
  server->names = rndz_server_names_new ();
  server->public_addresses = g_new0 (char *, 1);
  server->auth = rndz_server_auth_new (&server->stats, server->names);
}

/**
 * rndz_server_new:
 *
 * Creates a rendezvous server. Its sockets and timers will be attached to
 * the thread-default main context of the calling thread. Call
 * rndz_server_listen() to start serving.
 *
 * Returns: (transfer full): a new #RndzServer
 *
 * Since: 1.0
 */
RndzServer *
rndz_server_new (void)
{
  return g_object_new (RNDZ_TYPE_SERVER, NULL);
}
