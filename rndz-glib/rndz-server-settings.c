/* rndz-server-settings.c: the properties and keys of RndzServer
 *
 * SPDX-License-Identifier: MIT
 *
 * The typed getters and setters of RndzServer's properties, and its keys.
 * A setter hands the new value to the part that uses it and notifies.
 */

#include "config.h"

#include "rndz-server-object-private.h"
#include "rndz-i18n-private.h"

#define properties rndz_server_properties

/* Properties */

/* Deadlines are computed from the timeouts when the timer fires: after a
 * timeout changed, let it fire at once to find the new earliest one. */
static void
server_deadlines_changed (RndzServer *server)
{
  rndz_server_io_reschedule (server->io);
}

#define DEFINE_UINT_PROPERTY(name, field, PROP, min, max)                \
  guint                                                                 \
  rndz_server_get_##name (RndzServer *server)                           \
  {                                                                     \
    g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);                  \
    return server->config.field;                                        \
  }                                                                     \
                                                                        \
  void                                                                  \
  rndz_server_set_##name (RndzServer *server,                           \
                          guint       value)                            \
  {                                                                     \
    g_return_if_fail (RNDZ_IS_SERVER (server));                         \
    g_return_if_fail (value >= (min) && value <= (max));                \
    if (server->config.field == value)                                  \
      return;                                                           \
    server->config.field = value;                                       \
    server_deadlines_changed (server);                                  \
    g_object_notify_by_pspec (G_OBJECT (server), properties[PROP]);     \
  }

/**
 * rndz_server_get_peer_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:peer-timeout], in milliseconds.
 *
 * Returns: the value of [property@Rndz.Server:peer-timeout], in milliseconds
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_peer_timeout:
 * @server: a #RndzServer
 * @milliseconds: the new timeout in milliseconds, from 1000 to %G_MAXINT
 *
 * Sets [property@Rndz.Server:peer-timeout]. It applies at once, to the
 * peers registered already too.
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (peer_timeout, peer_timeout_ms, PROP_PEER_TIMEOUT,
                      MIN_TIMEOUT_MS, MAX_PEER_TIMEOUT_MS)

/**
 * rndz_server_get_forward_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:forward-timeout], in milliseconds.
 *
 * Returns: the value of [property@Rndz.Server:forward-timeout], in
 *   milliseconds
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_forward_timeout:
 * @server: a #RndzServer
 * @milliseconds: the new timeout in milliseconds, from 1000 to 3600000
 *
 * Sets [property@Rndz.Server:forward-timeout]. It applies to requests
 * forwarded afterwards.
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (forward_timeout, forward_timeout_ms, PROP_FORWARD_TIMEOUT,
                      MIN_TIMEOUT_MS, MAX_FORWARD_TIMEOUT_MS)

/**
 * rndz_server_get_register_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:register-timeout], in milliseconds.
 *
 * Returns: the value of [property@Rndz.Server:register-timeout], in
 *   milliseconds
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_register_timeout:
 * @server: a #RndzServer
 * @milliseconds: the new timeout in milliseconds, from 1000 to 3600000
 *
 * Sets [property@Rndz.Server:register-timeout]. It applies at once, to
 * the connections open already too.
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (register_timeout, register_timeout_ms, PROP_REGISTER_TIMEOUT,
                      MIN_TIMEOUT_MS, MAX_REGISTER_TIMEOUT_MS)

/**
 * rndz_server_get_max_peers:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-peers].
 *
 * Returns: the value of [property@Rndz.Server:max-peers]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_peers:
 * @server: a #RndzServer
 * @max_peers: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:max-peers].
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (max_peers, max_peers, PROP_MAX_PEERS, 1, G_MAXUINT)

/**
 * rndz_server_get_max_peers_per_address:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-peers-per-address].
 *
 * Returns: the value of [property@Rndz.Server:max-peers-per-address]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_peers_per_address:
 * @server: a #RndzServer
 * @max_peers: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:max-peers-per-address]. It applies to
 * registrations from now on: none is dropped.
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (max_peers_per_address, max_peers_per_address,
                      PROP_MAX_PEERS_PER_ADDRESS, 1, G_MAXUINT)

/**
 * rndz_server_get_max_peers_per_network:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-peers-per-network].
 *
 * Returns: the value of [property@Rndz.Server:max-peers-per-network]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_peers_per_network:
 * @server: a #RndzServer
 * @max_peers: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:max-peers-per-network]. It applies to
 * registrations from now on: none is dropped.
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (max_peers_per_network, max_peers_per_network,
                      PROP_MAX_PEERS_PER_NETWORK, 1, G_MAXUINT)

/**
 * rndz_server_get_max_connections:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-connections].
 *
 * Returns: the value of [property@Rndz.Server:max-connections]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_connections:
 * @server: a #RndzServer
 * @max_connections: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:max-connections].
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (max_connections, max_connections, PROP_MAX_CONNECTIONS, 1, G_MAXUINT)

/**
 * rndz_server_get_max_message_size:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-message-size].
 *
 * Returns: the value of [property@Rndz.Server:max-message-size]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_message_size:
 * @server: a #RndzServer
 * @size: the new limit in bytes, from 512 to 1400
 *
 * Sets [property@Rndz.Server:max-message-size]. The new limit applies to
 * datagrams at once and to connections accepted afterwards.
 *
 * Since: 1.0
 */
guint
rndz_server_get_max_message_size (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->config.max_message_size;
}

void
rndz_server_set_max_message_size (RndzServer *server,
                                  guint       size)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (size >= RNDZ_MESSAGE_MIN_MAX_SIZE && size <= RNDZ_MESSAGE_DEFAULT_MAX_SIZE);

  if (server->config.max_message_size == size)
    return;

  server->config.max_message_size = size;
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_MAX_MESSAGE_SIZE]);
}

/**
 * rndz_server_get_request_rate:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:request-rate].
 *
 * Returns: the value of [property@Rndz.Server:request-rate]
 *
 * Since: 1.0
 */
guint
rndz_server_get_request_rate (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->request_rate;
}

/**
 * rndz_server_set_request_rate:
 * @server: a #RndzServer
 * @per_second: requests per second and address, at least 1
 *
 * Sets [property@Rndz.Server:request-rate].
 *
 * Since: 1.0
 */
void
rndz_server_set_request_rate (RndzServer *server,
                              guint       per_second)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (per_second >= 1);

  if (server->request_rate == per_second)
    return;

  server->request_rate = per_second;
  rndz_forwarder_set_rate (server->forwarder, per_second);
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_REQUEST_RATE]);
}

/**
 * rndz_server_get_relay_port:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-port].
 *
 * Returns: the value of [property@Rndz.Server:relay-port]
 *
 * Since: 1.0
 */
guint16
rndz_server_get_relay_port (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_port;
}

/**
 * rndz_server_set_relay_port:
 * @server: a #RndzServer
 * @port: the relay port, or 0 not to relay
 *
 * Sets [property@Rndz.Server:relay-port]. It takes effect the next time
 * the server listens.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_port (RndzServer *server,
                            guint16     port)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));

  if (server->relay_port == port)
    return;

  server->relay_port = port;
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_RELAY_PORT]);
}

static void
server_relay_changed (RndzServer *server,
                      guint       prop_id)
{
  if (server->relay != NULL)
    {
      rndz_relay_configure (server->relay, server->relay_max_sessions, server->relay_rate,
                            server->relay_idle_timeout_ms);
      rndz_relay_set_caps (server->relay, server->relay_max_per_address,
                           server->relay_max_per_network, server->relay_max_lifetime_ms);
    }
  g_object_notify_by_pspec (G_OBJECT (server), properties[prop_id]);
}

/**
 * rndz_server_get_relay_max_sessions:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-max-sessions].
 *
 * Returns: the value of [property@Rndz.Server:relay-max-sessions]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_max_sessions (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_max_sessions;
}

/**
 * rndz_server_set_relay_max_sessions:
 * @server: a #RndzServer
 * @max_sessions: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:relay-max-sessions]. A lower limit closes no
 * session; it only refuses new ones until there are fewer.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_max_sessions (RndzServer *server,
                                    guint       max_sessions)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (max_sessions >= 1);

  if (server->relay_max_sessions == max_sessions)
    return;

  server->relay_max_sessions = max_sessions;
  server_relay_changed (server, PROP_RELAY_MAX_SESSIONS);
}

/**
 * rndz_server_get_relay_rate:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-rate].
 *
 * Returns: the value of [property@Rndz.Server:relay-rate]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_rate (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_rate;
}

/**
 * rndz_server_set_relay_rate:
 * @server: a #RndzServer
 * @bytes_per_second: the new limit, or 0 for none
 *
 * Sets [property@Rndz.Server:relay-rate]. The new rate applies at once,
 * to the open sessions too.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_rate (RndzServer *server,
                            guint       bytes_per_second)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));

  if (server->relay_rate == bytes_per_second)
    return;

  server->relay_rate = bytes_per_second;
  server_relay_changed (server, PROP_RELAY_RATE);
}

/**
 * rndz_server_get_relay_idle_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-idle-timeout], in milliseconds.
 *
 * Returns: the value of [property@Rndz.Server:relay-idle-timeout], in
 *   milliseconds
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_idle_timeout (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_idle_timeout_ms;
}

/**
 * rndz_server_set_relay_idle_timeout:
 * @server: a #RndzServer
 * @milliseconds: the new timeout in milliseconds, from 1000 to 604800000
 *   (a week)
 *
 * Sets [property@Rndz.Server:relay-idle-timeout]. The new timeout applies
 * at once, to the open sessions too.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_idle_timeout (RndzServer *server,
                                    guint       milliseconds)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (milliseconds >= MIN_TIMEOUT_MS && milliseconds <= MAX_RELAY_IDLE_TIMEOUT_MS);

  if (server->relay_idle_timeout_ms == milliseconds)
    return;

  server->relay_idle_timeout_ms = milliseconds;
  server_relay_changed (server, PROP_RELAY_IDLE_TIMEOUT);
}

/**
 * rndz_server_get_relay_max_sessions_per_address:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-max-sessions-per-address].
 *
 * Returns: the value of [property@Rndz.Server:relay-max-sessions-per-address]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_max_sessions_per_address (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_max_per_address;
}

/**
 * rndz_server_set_relay_max_sessions_per_address:
 * @server: a #RndzServer
 * @max_sessions: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:relay-max-sessions-per-address]. A lower
 * limit closes no session; it only refuses new ones.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_max_sessions_per_address (RndzServer *server,
                                                guint       max_sessions)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (max_sessions > 0);

  if (server->relay_max_per_address == max_sessions)
    return;

  server->relay_max_per_address = max_sessions;
  server_relay_changed (server, PROP_RELAY_MAX_PER_ADDRESS);
}

/**
 * rndz_server_get_relay_max_sessions_per_network:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-max-sessions-per-network].
 *
 * Returns: the value of [property@Rndz.Server:relay-max-sessions-per-network]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_max_sessions_per_network (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_max_per_network;
}

/**
 * rndz_server_set_relay_max_sessions_per_network:
 * @server: a #RndzServer
 * @max_sessions: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:relay-max-sessions-per-network]. A lower
 * limit closes no session; it only refuses new ones.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_max_sessions_per_network (RndzServer *server,
                                                guint       max_sessions)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (max_sessions > 0);

  if (server->relay_max_per_network == max_sessions)
    return;

  server->relay_max_per_network = max_sessions;
  server_relay_changed (server, PROP_RELAY_MAX_PER_NETWORK);
}

/**
 * rndz_server_get_relay_max_lifetime:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-max-lifetime], in milliseconds.
 *
 * Returns: the value of [property@Rndz.Server:relay-max-lifetime], in
 *   milliseconds
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_max_lifetime (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_max_lifetime_ms;
}

/**
 * rndz_server_set_relay_max_lifetime:
 * @server: a #RndzServer
 * @milliseconds: the new lifetime in milliseconds, from 1000 to
 *   604800000 (a week)
 *
 * Sets [property@Rndz.Server:relay-max-lifetime]. It applies at once:
 * open sessions older than the new lifetime end.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_max_lifetime (RndzServer *server,
                                    guint       milliseconds)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (milliseconds >= MIN_TIMEOUT_MS && milliseconds <= MAX_RELAY_IDLE_TIMEOUT_MS);

  if (server->relay_max_lifetime_ms == milliseconds)
    return;

  server->relay_max_lifetime_ms = milliseconds;
  server_relay_changed (server, PROP_RELAY_MAX_LIFETIME);
}

static void
server_auth_changed (RndzServer *server,
                     gboolean    was_required)
{
  if (was_required != rndz_server_get_auth_required (server))
    g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_AUTH_REQUIRED]);
}

/**
 * rndz_server_set_secret:
 * @server: a #RndzServer
 * @secret: (nullable): the secret, or %NULL for none
 *
 * Requires every peer to authenticate with the key rndz_derive_key()
 * derives from @secret for its id. Keys added with rndz_server_add_key()
 * take precedence for their ids. Without a secret and without keys,
 * peers need not authenticate.
 *
 * Since: 1.0
 */
void
rndz_server_set_secret (RndzServer *server,
                        GBytes     *secret)
{
  gboolean was_required;

  g_return_if_fail (RNDZ_IS_SERVER (server));

  was_required = rndz_server_get_auth_required (server);
  rndz_server_auth_set_secret (server->auth, secret);
  server_auth_changed (server, was_required);
}

/**
 * rndz_server_add_key:
 * @server: a #RndzServer
 * @id: a peer id
 * @key: the key of the peer @id
 *
 * Requires the peer @id to authenticate with @key, and turns
 * authentication on for every peer: ids without a key (and without a
 * secret to derive one) can no longer register.
 *
 * Since: 1.0
 */
void
rndz_server_add_key (RndzServer *server,
                     const char *id,
                     GBytes     *key)
{
  gboolean was_required;

  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (id != NULL && key != NULL);

  was_required = rndz_server_get_auth_required (server);
  rndz_server_auth_add_key (server->auth, id, key);
  server_auth_changed (server, was_required);
}

/**
 * rndz_server_load_keys:
 * @server: a #RndzServer
 * @path: (type filename): a file of keys
 * @error: return location for a #GError
 *
 * Adds the keys of a file with one `ID HEXKEY` pair a line, as
 * rndz_server_add_key() does. Empty lines and lines that start with `#`
 * are skipped.
 *
 * Returns: %TRUE if every line was read, %FALSE with @error set otherwise
 *   (no key is added then)
 *
 * Since: 1.0
 */
gboolean
rndz_server_load_keys (RndzServer  *server,
                       const char  *path,
                       GError     **error)
{
  g_autoptr(GHashTable) keys = NULL;
  GHashTableIter iter;
  gpointer id, key;

  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  keys = rndz_server_auth_read_keys (path, error);
  if (keys == NULL)
    return FALSE;

  g_hash_table_iter_init (&iter, keys);
  while (g_hash_table_iter_next (&iter, &id, &key))
    rndz_server_add_key (server, id, key);

  return TRUE;
}

/**
 * rndz_server_get_auth_required:
 * @server: a #RndzServer
 *
 * Gets whether peers must authenticate to this server.
 *
 * Returns: the value of [property@Rndz.Server:auth-required]
 *
 * Since: 1.0
 */
gboolean
rndz_server_get_auth_required (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);

  return rndz_server_auth_is_required (server->auth);
}

/**
 * rndz_server_get_public_addresses:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:public-addresses], each in the form
 * rndz-glib writes addresses (IPv6 canonical, in brackets).
 *
 * Returns: (transfer none) (array zero-terminated=1): the public
 *   addresses, an empty array if there are none
 *
 * Since: 1.0
 */
const char * const *
rndz_server_get_public_addresses (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), NULL);

  return (const char * const *) server->public_addresses;
}

/* @addresses parsed, or NULL (with a critical) if one is not an address */
static GArray *
parse_public_addresses (const char * const *addresses)
{
  g_autoptr(GArray) parsed = g_array_new (FALSE, FALSE, sizeof (RndzAddr));

  for (guint i = 0; addresses != NULL && addresses[i] != NULL; i++)
    {
      RndzAddr addr;

      if (!rndz_addr_parse (&addr, addresses[i], NULL))
        {
          g_critical ("rndz_server_set_public_addresses: “%s” is not a numeric address "
                      "with a port", addresses[i]);
          return NULL;
        }
      g_array_append_val (parsed, addr);
    }

  return g_steal_pointer (&parsed);
}

/**
 * rndz_server_set_public_addresses:
 * @server: a #RndzServer
 * @addresses: (nullable) (array zero-terminated=1): numeric addresses
 *   with their ports, such as `198.51.100.7:8888` or `[2001:db8::7]:8888`,
 *   or %NULL for none
 *
 * Sets [property@Rndz.Server:public-addresses]: the addresses, besides
 * its own, at which peers reach the server, for a server behind DNAT or
 * port forwarding. It applies to the next message. An address that is
 * not numeric, or lacks its port, is a programming error: nothing
 * changes then.
 *
 * Since: 1.0
 */
void
rndz_server_set_public_addresses (RndzServer         *server,
                                  const char * const *addresses)
{
  g_autoptr(GArray) parsed = NULL;
  g_auto(GStrv) canonical = NULL;

  g_return_if_fail (RNDZ_IS_SERVER (server));

  parsed = parse_public_addresses (addresses);
  if (parsed == NULL)
    return;

  canonical = g_new0 (char *, parsed->len + 1);
  for (guint i = 0; i < parsed->len; i++)
    {
      canonical[i] = g_malloc (RNDZ_ADDR_STRLEN);
      rndz_addr_format (&g_array_index (parsed, RndzAddr, i), canonical[i]);
    }
  if (g_strv_equal ((const char * const *) canonical,
                    (const char * const *) server->public_addresses))
    return;

  rndz_server_names_set_public (server->names, (const RndzAddr *) parsed->data, parsed->len);
  g_strfreev (server->public_addresses);
  server->public_addresses = g_steal_pointer (&canonical);
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_PUBLIC_ADDRESSES]);
}
