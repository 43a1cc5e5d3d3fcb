/* rndz-registry.c: the registered peers of RndzServer
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-registry-private.h"

struct _RndzRegistry
{
  RndzServerIo *io;
  const RndzServerConfig *config;
  RndzServerStats *stats;
  RndzRegistryFunc func;
  gpointer owner;

  GHashTable *peers[2];        /* per transport: id → RndzPeer */
  GQueue expiry;               /* by last_seen, oldest first */
  gint64 refresh_us;           /* RNDZ_REGISTRY_KEPT at most this often; 0: never */
  /* Registered ids per address prefix, for the caps: [prefix][IPv6?],
   * prefix_key() → count. At most one entry per peer. */
  GHashTable *prefixes[N_PREFIXES][2];
};

/* Prefixes */

/* The prefix of @addr at @level, as a number */
static guint64
prefix_key (const RndzAddr *addr,
            RndzPrefix      level)
{
  static const guint lengths[N_PREFIXES][2] = {
    [RNDZ_PREFIX_ADDRESS] = { 4, 8 },   /* an IPv4 address, an IPv6 /64 */
    [RNDZ_PREFIX_NETWORK] = { 2, 6 },   /* an IPv4 /16, an IPv6 /48 */
  };
  guint n = lengths[level][addr->family == 6];
  guint64 key = 0;

  for (guint i = 0; i < n; i++)
    key = key << 8 | addr->bytes[i];
  return key;
}

static GHashTable *
prefix_table (RndzRegistry   *registry,
              const RndzAddr *addr,
              RndzPrefix      level)
{
  return registry->prefixes[level][addr->family == 6];
}

static guint
prefix_count (RndzRegistry   *registry,
              const RndzAddr *addr,
              RndzPrefix      level)
{
  guint64 key = prefix_key (addr, level);

  return GPOINTER_TO_UINT (g_hash_table_lookup (prefix_table (registry, addr, level), &key));
}

/* Counts a peer in (+1) or out (-1) at @addr; an address never set
 * (family 0) was never counted */
static void
prefix_count_add (RndzRegistry   *registry,
                  const RndzAddr *addr,
                  int             delta)
{
  if (addr->family == 0)
    return;

  for (RndzPrefix level = 0; level < N_PREFIXES; level++)
    {
      GHashTable *table = prefix_table (registry, addr, level);
      guint64 key = prefix_key (addr, level);
      guint count = GPOINTER_TO_UINT (g_hash_table_lookup (table, &key)) + delta;

      if (count == 0)
        g_hash_table_remove (table, &key);
      else
        g_hash_table_insert (table, g_memdup2 (&key, sizeof key), GUINT_TO_POINTER (count));
    }
}

static guint
prefix_cap (RndzRegistry *registry,
            RndzPrefix    level)
{
  return level == RNDZ_PREFIX_ADDRESS ? registry->config->max_peers_per_address
                                      : registry->config->max_peers_per_network;
}

/* Whether @peer (NULL for a new id) may be registered from @from: not if
 * that would take an address or a network over its cap. A peer already
 * counted in a prefix is never refused by that prefix's cap. */
static gboolean
prefix_has_room (RndzRegistry   *registry,
                 const RndzPeer *peer,
                 const RndzAddr *from)
{
  for (RndzPrefix level = 0; level < N_PREFIXES; level++)
    {
      if (peer != NULL && peer->addr.family == from->family &&
          prefix_key (&peer->addr, level) == prefix_key (from, level))
        continue;
      if (prefix_count (registry, from, level) >= prefix_cap (registry, level))
        return FALSE;
    }
  return TRUE;
}

/*
 * rndz_registry_count_prefix:
 *
 * Returns: how many ids are registered from the prefix of @addr at
 *   @level, over both transports
 */
guint
rndz_registry_count_prefix (RndzRegistry   *registry,
                            const RndzAddr *addr,
                            RndzPrefix      level)
{
  return prefix_count (registry, addr, level);
}

static void
peer_free (RndzPeer *peer)
{
  g_free (peer->id);
  g_free (peer->cands);
  g_free (peer);
}

RndzRegistry *
rndz_registry_new (RndzServerIo           *io,
                   const RndzServerConfig *config,
                   RndzServerStats        *stats,
                   RndzRegistryFunc        func,
                   gpointer                owner)
{
  RndzRegistry *registry = g_new0 (RndzRegistry, 1);

  registry->io = io;
  registry->config = config;
  registry->stats = stats;
  registry->func = func;
  registry->owner = owner;
  for (guint t = 0; t < G_N_ELEMENTS (registry->peers); t++)
    registry->peers[t] = g_hash_table_new_full (g_str_hash, g_str_equal,
                                                NULL, (GDestroyNotify) peer_free);
  for (guint l = 0; l < N_PREFIXES; l++)
    for (guint f = 0; f < 2; f++)
      registry->prefixes[l][f] = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  return registry;
}

/* Call rndz_registry_remove_all() first, for the owner to hear of them */
void
rndz_registry_free (RndzRegistry *registry)
{
  for (guint t = 0; t < G_N_ELEMENTS (registry->peers); t++)
    g_hash_table_unref (registry->peers[t]);
  for (guint l = 0; l < N_PREFIXES; l++)
    for (guint f = 0; f < 2; f++)
      g_hash_table_unref (registry->prefixes[l][f]);
  g_free (registry);
}

guint
rndz_registry_get_count (RndzRegistry *registry)
{
  return g_hash_table_size (registry->peers[RNDZ_TRANSPORT_UDP]) +
         g_hash_table_size (registry->peers[RNDZ_TRANSPORT_TCP]);
}

guint
rndz_registry_count_transport (RndzRegistry  *registry,
                               RndzTransport  transport)
{
  return g_hash_table_size (registry->peers[transport]);
}

RndzPeer *
rndz_registry_lookup (RndzRegistry  *registry,
                      RndzTransport  transport,
                      const char    *id)
{
  return g_hash_table_lookup (registry->peers[transport], id);
}

/* Links @peer and @conn (either may be NULL), unlinking what each had */
static void
registry_set_conn (RndzRegistry   *registry,
                   RndzPeer       *peer,
                   RndzServerConn *conn)
{
  if (peer != NULL && peer->conn != NULL && peer->conn != conn)
    rndz_server_io_set_registration (registry->io, peer->conn, NULL);
  if (conn != NULL)
    {
      RndzPeer *old = rndz_server_conn_get_registration (conn);

      if (old != NULL && old != peer)
        old->conn = NULL;
      rndz_server_io_set_registration (registry->io, conn, peer);
    }
  if (peer != NULL)
    peer->conn = conn;
}

/* Forgets @peer. Its TCP connection, if any, stays open but unregistered:
 * callers close it when that is what they mean. */
void
rndz_registry_remove (RndzRegistry *registry,
                      RndzPeer     *peer)
{
  g_debug ("Removing %s peer “%s”", peer->transport == RNDZ_TRANSPORT_TCP ? "TCP" : "UDP", peer->id);

  registry_set_conn (registry, peer, NULL);
  prefix_count_add (registry, &peer->addr, -1);
  g_queue_unlink (&registry->expiry, &peer->link);
  registry->func (registry->owner, RNDZ_REGISTRY_REMOVED, peer);
  g_hash_table_remove (registry->peers[peer->transport], peer->id);
}

void
rndz_registry_remove_all (RndzRegistry *registry)
{
  while (registry->expiry.head != NULL)
    rndz_registry_remove (registry, registry->expiry.head->data);
}

/* Forgets the peer registered on @conn, which is closing */
void
rndz_registry_conn_closed (RndzRegistry   *registry,
                           RndzServerConn *conn)
{
  RndzPeer *peer = rndz_server_conn_get_registration (conn);

  if (peer != NULL)
    rndz_registry_remove (registry, peer);
}

/* Forgets @peer and closes its TCP connection */
static void
registry_drop (RndzRegistry *registry,
               RndzPeer     *peer)
{
  RndzServerConn *conn = peer->conn;

  rndz_registry_remove (registry, peer);
  if (conn != NULL)
    rndz_server_io_close (registry->io, conn);
}

/* A hash of @id spread over all 32 bits: g_str_hash() of ids that differ
 * in their last characters (peer-0001, peer-0002…) differ little, and
 * would renew together. The finalizer of MurmurHash3 mixes them. */
static guint32
spread_hash (const char *id)
{
  guint32 h = g_str_hash (id);

  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

void
rndz_registry_touch (RndzRegistry *registry,
                     RndzPeer     *peer)
{
  gint64 before = peer->last_seen;

  peer->last_seen = g_get_monotonic_time ();
  g_queue_unlink (&registry->expiry, &peer->link);
  g_queue_push_tail_link (&registry->expiry, &peer->link);
  rndz_server_io_schedule (registry->io,
                           peer->last_seen + registry->config->peer_timeout_ms * (gint64) 1000);

  /* Once per period of the refresh, at the first ping in it: the bound
   * needs no memory per peer. Each id's periods start at an offset of
   * its own, else every peer of the machine would renew in the same few
   * seconds after each period boundary. */
  if (registry->refresh_us > 0 && before > 0)
    {
      gint64 offset = spread_hash (peer->id) % registry->refresh_us;

      if ((before + offset) / registry->refresh_us !=
          (peer->last_seen + offset) / registry->refresh_us)
        registry->func (registry->owner, RNDZ_REGISTRY_KEPT, peer);
    }
}

/*
 * rndz_registry_set_refresh:
 * @interval_ms: 0 for no RNDZ_REGISTRY_KEPT
 *
 * Asks for RNDZ_REGISTRY_KEPT when a peer pings again, at most once per
 * @interval_ms for each peer.
 */
void
rndz_registry_set_refresh (RndzRegistry *registry,
                           guint         interval_ms)
{
  registry->refresh_us = interval_ms * (gint64) 1000;
}

/* Calls @func for every registered peer */
void
rndz_registry_foreach (RndzRegistry     *registry,
                       RndzRegistryFunc  func,
                       gpointer          user_data)
{
  for (GList *l = registry->expiry.head; l != NULL; l = l->next)
    func (user_data, RNDZ_REGISTRY_KEPT, l->data);
}

/* Drops the peers that did not ping for the peer timeout */
void
rndz_registry_expire (RndzRegistry *registry,
                      gint64        now)
{
  GList *head;

  while ((head = registry->expiry.head) != NULL)
    {
      RndzPeer *peer = head->data;
      gint64 deadline = peer->last_seen + registry->config->peer_timeout_ms * (gint64) 1000;

      if (deadline > now)
        {
          rndz_server_io_schedule (registry->io, deadline);
          break;
        }
      registry_drop (registry, peer);
    }
}

/* Sends @msg to @peer the way it registered, unsolicited: over UDP with
 * no request to measure it against */
void
rndz_registry_send (RndzRegistry      *registry,
                    RndzPeer          *peer,
                    const RndzMessage *msg)
{
  if (peer->transport == RNDZ_TRANSPORT_UDP)
    rndz_server_io_send_udp (registry->io, &peer->addr, msg, G_MAXSIZE);
  else if (peer->conn != NULL)
    rndz_server_io_send_tcp (registry->io, peer->conn, msg);
}

/* Is @peer the one that sent @src? */
gboolean
rndz_peer_matches_source (const RndzPeer         *peer,
                          const RndzServerSource *src)
{
  if (peer->transport == RNDZ_TRANSPORT_TCP)
    return peer->conn == src->conn;
  return rndz_addr_equal (&peer->addr, &src->from);
}

void
rndz_peer_get_cands (const RndzPeer *peer,
                     RndzMessage    *msg)
{
  msg->n_cands = peer->n_cands;
  if (peer->n_cands > 0)
    memcpy (msg->cands, peer->cands, peer->n_cands * sizeof (RndzAddr));
}

/* ping */

/* The peer a ping registers: found, or added if there is room (else
 * NULL, after telling the sender) */
static RndzPeer *
registry_find_or_add (RndzRegistry           *registry,
                      const RndzServerSource *src,
                      const RndzMessage      *msg,
                      gboolean               *created)
{
  GHashTable *table = registry->peers[src->transport];
  RndzPeer *peer = g_hash_table_lookup (table, msg->id);

  *created = FALSE;
  if (peer != NULL && rndz_addr_equal (&peer->addr, &src->from))
    return peer;

  if (peer == NULL && rndz_registry_get_count (registry) >= registry->config->max_peers)
    {
      g_debug ("Refusing “%s”: %u peers registered", msg->id, registry->config->max_peers);
      rndz_server_io_reply_error (registry->io, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
      return NULL;
    }

  /* One network must not fill the table (a move to a full one is
   * refused too, else ids registered elsewhere could be brought in) */
  if (!prefix_has_room (registry, peer, &src->from))
    {
      g_debug ("Refusing “%s”: its address or network has too many peers registered", msg->id);
      rndz_server_io_reply_error (registry->io, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
      return NULL;
    }
  if (peer != NULL)
    return peer;

  peer = g_new0 (RndzPeer, 1);
  peer->id = g_strdup (msg->id);
  peer->transport = src->transport;
  peer->link.data = peer;
  g_hash_table_insert (table, peer->id, peer);
  *created = TRUE;
  return peer;
}

/* The local addresses it offers, for the requesters to try */
static void
peer_set_cands (RndzPeer          *peer,
                const RndzMessage *msg)
{
  if (peer->n_cands == msg->n_cands &&
      (msg->n_cands == 0 || memcmp (peer->cands, msg->cands, msg->n_cands * sizeof (RndzAddr)) == 0))
    return;

  g_clear_pointer (&peer->cands, g_free);
  peer->n_cands = msg->n_cands;
  if (msg->n_cands > 0)
    peer->cands = g_memdup2 (msg->cands, msg->n_cands * sizeof (RndzAddr));
}

/* Moves @peer to where @src came from; returns whether that changed */
static gboolean
peer_move (RndzRegistry           *registry,
           RndzPeer               *peer,
           const RndzServerSource *src)
{
  gboolean changed = FALSE;

  if (!rndz_addr_equal (&peer->addr, &src->from))
    {
      prefix_count_add (registry, &peer->addr, -1);
      peer->addr = src->from;
      prefix_count_add (registry, &peer->addr, +1);
      changed = TRUE;
    }

  if (src->transport == RNDZ_TRANSPORT_TCP && peer->conn != src->conn)
    {
      /* A newer registration of the same id replaces the old one */
      RndzServerConn *old = peer->conn;

      registry_set_conn (registry, peer, src->conn);
      if (old != NULL)
        rndz_server_io_close (registry->io, old);
      changed = TRUE;
    }

  return changed;
}

void
rndz_registry_handle_ping (RndzRegistry           *registry,
                           const RndzServerSource *src,
                           const RndzMessage      *msg)
{
  RndzPeer *registered = src->conn != NULL ? rndz_server_conn_get_registration (src->conn) : NULL;
  RndzMessage reply;
  char pong[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize pong_len = 0;
  RndzPeer *peer;
  gboolean created, changed;

  /* A ping that could not be answered registers nothing either. Over
   * UDP the pong is encoded once, here, for the check and the send. */
  rndz_message_init (&reply, RNDZ_MESSAGE_PONG, msg->tid);
  reply.addr = src->from;
  if (src->transport == RNDZ_TRANSPORT_UDP)
    {
      pong_len = rndz_message_encode (&reply, pong, sizeof pong);
      if (pong_len == 0 || pong_len > src->len)
        {
          registry->stats->amplification++;
          return;
        }
    }

  /* A connection carries one registration: a ping for another id first
   * drops the old one. */
  if (registered != NULL && !g_str_equal (registered->id, msg->id))
    rndz_registry_remove (registry, registered);

  peer = registry_find_or_add (registry, src, msg, &created);
  if (peer == NULL)
    return;

  peer_set_cands (peer, msg);
  changed = peer_move (registry, peer, src);
  rndz_registry_touch (registry, peer);

  if (created || changed)
    {
      char addr[RNDZ_ADDR_STRLEN];

      g_debug ("Registered %s peer “%s” at %s",
               src->transport == RNDZ_TRANSPORT_TCP ? "TCP" : "UDP",
               peer->id, rndz_addr_format (&peer->addr, addr));
      registry->func (registry->owner, created ? RNDZ_REGISTRY_ADDED : RNDZ_REGISTRY_MOVED, peer);
    }

  if (src->transport == RNDZ_TRANSPORT_UDP)
    rndz_server_io_reply_encoded (registry->io, src, pong, pong_len);
  else
    rndz_server_io_reply (registry->io, src, &reply);
}

/* Whether @msg would register a new id, or move one to another address
 * or connection (what a replayed ping would do) */
gboolean
rndz_registry_ping_moves (RndzRegistry           *registry,
                          const RndzServerSource *src,
                          const RndzMessage      *msg)
{
  RndzPeer *peer = g_hash_table_lookup (registry->peers[src->transport], msg->id);

  return peer == NULL || !rndz_addr_equal (&peer->addr, &src->from) ||
         (src->transport == RNDZ_TRANSPORT_TCP && peer->conn != src->conn);
}

/* bye */

void
rndz_registry_handle_bye (RndzRegistry           *registry,
                          const RndzServerSource *src,
                          const RndzMessage      *msg)
{
  RndzPeer *peer = g_hash_table_lookup (registry->peers[src->transport], msg->id);

  /* Only the registered peer itself may unregister */
  if (peer == NULL || !rndz_peer_matches_source (peer, src))
    return;

  rndz_registry_remove (registry, peer);
}
