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
 * - Over UDP, each peer that comes in is handed out by the
 *   [signal@Rndz.Client::peer-socket] signal on a [class@Gio.Socket] of its
 *   own, connected to it: only that peer's datagrams reach it, and never
 *   a message of the rendezvous protocol. rndz_client_listen_udp()
 *   returns the socket that holds the listening port; without a handler
 *   for peer-socket, peers that reach the client directly talk to that
 *   socket instead, as strangers do.
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
 * A client listens over UDP and TCP at once if asked to: each transport
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

#include "rndz-client.h"
#include "rndz-client-internal.h"
#include "rndz-enum-types.h"

/* Every timeout and interval of the API is in milliseconds, as in GLib */
#define DEFAULT_KEEPALIVE_INTERVAL_MS 10000
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_DIRECT_TIMEOUT_MS 3000
#define MIN_TIMEOUT_MS 1000
#define MAX_TIMEOUT_MS (3600 * 1000)
#define MIN_DIRECT_TIMEOUT_MS 100

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
  PROP_IDENTITY,
  PROP_ALLOWED_FINGERPRINTS,
  PROP_PORT_MAPPING,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_AUTHORIZE_PEER,
  SIGNAL_PEER_REQUEST,
  SIGNAL_PEER_SOCKET,
  SIGNAL_AUTHORIZE_FINGERPRINT,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (RndzClient, rndz_client, G_TYPE_OBJECT)

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
    case PROP_IDENTITY:
      g_value_set_object (value, client->identity);
      break;
    case PROP_ALLOWED_FINGERPRINTS:
      g_value_set_boxed (value, client->peer->allowed_fingerprints);
      break;
    case PROP_PORT_MAPPING:
      g_value_set_boolean (value, client->peer->port_mapping);
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
    case PROP_IDENTITY:
      rndz_client_set_identity (client, g_value_get_object (value));
      break;
    case PROP_ALLOWED_FINGERPRINTS:
      rndz_client_set_allowed_fingerprints (client, g_value_get_boxed (value));
      break;
    case PROP_PORT_MAPPING:
      if (client->peer->port_mapping != g_value_get_boolean (value))
        {
          client->peer->port_mapping = g_value_get_boolean (value);
          g_object_notify_by_pspec (object, pspec);
        }
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

  g_clear_object (&client->identity);
  g_clear_pointer (&client->secure, rndz_client_secure_free);
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
   * every message to a server then carries a timestamp, a nonce, the
   * address it is sent to and an HMAC-SHA256 under this key, so that no
   * other server accepts it. A server reached through DNAT or port
   * forwarding must know the address the client sends to (see
   * [property@Rndz.Server:public-addresses]). See rndz_derive_key().
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
   * relay sessions either. Over TCP, with this off (or when the server
   * does not relay), there is nothing to turn to at the
   * [property@Rndz.Client:direct-timeout]: the direct paths go on until
   * [property@Rndz.Client:timeout] (the direct timeout's documentation
   * says when).
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
   * Over TCP, when there is no relay to turn to (the
   * [property@Rndz.Client:relay] property is off, or the server answers
   * that it does not relay), the direct paths go on after this, until
   * [property@Rndz.Client:timeout], and only then does the connection
   * fail with %RNDZ_ERROR_NO_PATH: a lost SYN goes again only when the
   * kernel sends it, a second later at best, so through packet loss a
   * few seconds leave few chances. Not when the rendezvous shows a NAT
   * that rewrites ports (a TCP path is then unlikely): that connection
   * still fails after this timeout. A listening client punches towards
   * a requester for its own [property@Rndz.Client:timeout].
   *
   * Since: 1.0
   */
  properties[PROP_DIRECT_TIMEOUT] =
    g_param_spec_uint ("direct-timeout", NULL, NULL,
                       MIN_DIRECT_TIMEOUT_MS, MAX_TIMEOUT_MS, DEFAULT_DIRECT_TIMEOUT_MS, rw);

  /**
   * RndzClient:identity:
   *
   * Who the client is, for secure connections: its key and certificate.
   * %NULL by default: the first secure call (rndz_client_connect_tls(),
   * rndz_client_accept_dtls() and the others) on a client without one
   * makes a fresh one in memory, with rndz_identity_new(), and sets it
   * here. Use rndz_identity_new_from_file() to keep the same one from
   * run to run, so that peers may pin it.
   *
   * A listening client with an identity lets in only requesters that
   * ask for a secure connection, and tells them its fingerprint through
   * the rendezvous; plain requesters get no answer.
   *
   * Since: 1.0
   */
  properties[PROP_IDENTITY] =
    g_param_spec_object ("identity", NULL, NULL, RNDZ_TYPE_IDENTITY, rw);

  /**
   * RndzClient:allowed-fingerprints:
   *
   * The fingerprints of the peers a listening client with an
   * [property@Rndz.Client:identity] lets in, in the text form of
   * [method@Rndz.Identity.get_fingerprint] (or any form
   * rndz_fingerprint_normalize() accepts). %NULL or empty, the default:
   * any secure requester (still subject to
   * [signal@Rndz.Client::authorize-peer] and
   * [signal@Rndz.Client::authorize-fingerprint]). Others get no answer,
   * and fail with %RNDZ_ERROR_PEER_NO_ANSWER.
   *
   * Since: 1.0
   */
  properties[PROP_ALLOWED_FINGERPRINTS] =
    g_param_spec_boxed ("allowed-fingerprints", NULL, NULL, G_TYPE_STRV, rw);

  /**
   * RndzClient:port-mapping:
   *
   * Whether a listening client asks its router (the IPv4 default
   * gateway) to map a public port to it, with PCP, NAT-PMP or UPnP-IGD,
   * and offers the mapped address to the peers that ask for it: a peer
   * behind a NAT that gives each destination a port of its own can then
   * come in directly. The mapping is asked for in the background (the
   * listen does not wait for it), renewed while the client listens and
   * removed when it stops (a UPnP-IGD mapping by an HTTP request, which
   * leaves while the client's context runs after rndz_client_stop(); a
   * program that exits at once leaves it to its two-hour lease). Off, or
   * without a gateway, nothing is sent. A change applies to the next
   * listen.
   *
   * Since: 1.0
   */
  properties[PROP_PORT_MAPPING] =
    g_param_spec_boolean ("port-mapping", NULL, NULL, TRUE, rw);

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
   * Emitted by a client listening over UDP when a peer has come in, on
   * a socket of its own: directly (a socket bound to the listening port
   * and connected to the peer's address), through the server's relay, or
   * directly when the listener's NAT gives each destination a port of
   * its own (doc/nat-traversal.md). rndz_socket_get_path() on @socket
   * tells which. Keep a reference to @socket to talk to the peer: it is
   * closed when the last one goes.
   *
   * The peer's datagrams arrive on @socket only, and nobody else's: the
   * kernel delivers to it only what comes from the peer's address (the
   * relay's, for a relayed peer). Nor does any message of the rendezvous
   * protocol reach it, not even the peer's late retransmissions: the
   * socket drops every datagram that starts with the 15 bytes
   * `{"v":1,"type":"` (doc/protocol.md, "What reaches the application's
   * sockets"), so the application's own datagrams must not start that way.
   *
   * Whether the client hands direct peers out this way depends on whether
   * this signal has a handler when the peer comes: without one, their
   * datagrams go to the socket of rndz_client_listen_udp(), as before
   * this signal existed. Connect to it before listening.
   *
   * (Over TCP, every peer comes through rndz_client_accept().)
   *
   * Since: 1.0
   */
  signals[SIGNAL_PEER_SOCKET] =
    g_signal_new ("peer-socket", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING, G_TYPE_SOCKET);

  /**
   * RndzClient::authorize-fingerprint:
   * @client: the listening client
   * @peer_id: the id of the peer that asked to reach this client
   * @fingerprint: the fingerprint of the certificate the peer will
   *   present, as the rendezvous carried it
   *
   * Emitted for a requester that asks for a secure connection, after
   * [signal@Rndz.Client::authorize-peer] let it in, to decide on its
   * identity. Without a handler, every such peer may come in (but see
   * [property@Rndz.Client:allowed-fingerprints]). The handshake that
   * follows makes sure that the peer holds the key of @fingerprint.
   *
   * Returns: %TRUE to let the peer in
   *
   * Since: 1.0
   */
  signals[SIGNAL_AUTHORIZE_FINGERPRINT] =
    g_signal_new ("authorize-fingerprint", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, g_signal_accumulator_first_wins, NULL, NULL, G_TYPE_BOOLEAN, 2,
                  G_TYPE_STRING, G_TYPE_STRING);

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
