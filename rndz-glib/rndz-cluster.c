/* rndz-cluster.c: server nodes that share one registry through Redis
 *
 * SPDX-License-Identifier: MIT
 *
 * Each node keeps its peers in memory, as a server alone does, and
 * publishes in Redis which node holds each one:
 *
 *   rndz:peer:udp:ID → NODE   (SET … PX ttl; refreshed at a bounded rate)
 *
 * A request for an id the node does not hold is looked up there, and sent
 * on to the node that holds it through that node's channel
 * (PUBLISH rndz:node:NODE), which answers through the origin's channel.
 * Two connections per node, with hiredis driven by the node's
 * GMainContext (hiredis/adapters/glib.h): one for commands, one
 * subscribed (a subscribed connection takes no other command). When
 * Redis goes away, the node keeps serving its own peers, lookups fail at
 * once, and it connects again with growing pauses (to 5 s); once back, it
 * publishes its peers anew.
 */

#include "config.h"

#include <poll.h>
#include <string.h>

#include <hiredis/adapters/glib.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "rndz-cluster-private.h"
#include "rndz-i18n-private.h"

#define KEY_PREFIX "rndz:peer:"
#define CHANNEL_PREFIX "rndz:node:"
#define RECONNECT_MIN_MS 200
#define RECONNECT_MAX_MS 5000
/* A connection not up by then is given up and tried again */
#define CONNECT_TIMEOUT_MS 2000
/* Nonces of recent messages, to drop replays. A message is taken within
 * 30 s of its time (rndz-cluster-message.c), so within a minute of when
 * it was first seen: three generations of 30 s cover that. A generation
 * holds at most a million nonces (33,000 messages a second), kept as
 * 64-bit numbers; a full one refuses new messages rather than forget. */
#define NONCE_GENERATIONS 3
#define NONCE_GENERATION_US (30 * G_USEC_PER_SEC)
#define MAX_NONCES_PER_GENERATION (1 << 20)

/* The atomic "delete if it is still ours": a peer that moved to another
 * node must not lose its entry to the node it left */
#define WITHDRAW_SCRIPT \
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

typedef struct
{
  RndzCluster *cluster;
  redisAsyncContext *ac;
  GSource *source;
  gboolean connected;
} Conn;

struct _RndzCluster
{
  GMainContext *context;
  RndzClusterCallbacks callbacks;
  gpointer owner;
  GBytes *key;

  char *host;
  guint16 port;
  char *password;
  guint db;

  char node[RNDZ_CLUSTER_NODE_LEN + 1];
  char *channel;
  RndzClusterState state;
  gboolean subscribed;
  Conn cmd;
  Conn sub;
  GSource *timer;               /* reconnect, or connect timeout */
  guint pause_ms;

  GHashTable *nonces[NONCE_GENERATIONS]; /* the newest first; sets of guint64 */
  gint64 nonces_rotated;
};

struct _RndzClusterLookup
{
  RndzClusterLookupFunc func;   /* NULL once cancelled */
  gpointer user_data;
};

static void cluster_connect (RndzCluster *cluster);
static void cluster_down (RndzCluster *cluster);

/* URLs */

/* redis://[:PASSWORD@]HOST[:PORT][/DB], HOST an IP address (IPv6 in
 * brackets) or localhost: hiredis resolves names with a blocking call,
 * which a server's main loop must not make */
static gboolean
parse_url (const char  *url,
           char       **host,
           guint16     *port,
           char       **password,
           guint       *db,
           GError     **error)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_HAS_PASSWORD, error);
  g_autoptr(GInetAddress) inet = NULL;
  const char *path, *h;

  if (uri == NULL)
    return FALSE;
  if (g_strcmp0 (g_uri_get_scheme (uri), "redis") != 0)
    goto bad;

  h = g_uri_get_host (uri);
  if (h == NULL || *h == '\0')
    goto bad;
  if (g_str_equal (h, "localhost"))
    h = "127.0.0.1";
  inet = g_inet_address_new_from_string (h);
  if (inet == NULL)
    goto bad;

  *host = g_strdup (h);
  *port = g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 6379;
  *password = g_strdup (g_uri_get_password (uri));
  path = g_uri_get_path (uri);
  *db = 0;
  if (path != NULL && path[0] == '/' && path[1] != '\0')
    {
      guint64 n;

      if (!g_ascii_string_to_unsigned (path + 1, 10, 0, 15, &n, NULL))
        goto bad;
      *db = n;
    }
  return TRUE;

bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               _("Invalid cluster address “%s”: expected redis://[:PASSWORD@]ADDRESS[:PORT][/DB], "
                 "with an IP address"), url);
  return FALSE;
}

gboolean
rndz_cluster_parse_url (const char  *url,
                        GError     **error)
{
  g_autofree char *host = NULL;
  g_autofree char *password = NULL;
  guint16 port;
  guint db;

  return parse_url (url, &host, &port, &password, &db, error);
}

/* Connections */

static void
conn_close (Conn *conn)
{
  redisAsyncContext *ac = g_steal_pointer (&conn->ac);

  conn->connected = FALSE;
  /* Calls the pending callbacks with no reply: lookups fail. The context
   * uses its source until it is freed: the source goes after it. (A
   * context that hiredis frees itself goes through conn_abandon().) */
  if (ac != NULL)
    {
      ac->data = NULL;
      redisAsyncFree (ac);
    }
  if (conn->source != NULL)
    {
      g_source_destroy (conn->source);
      g_clear_pointer (&conn->source, g_source_unref);
    }
}

static gboolean
destroy_source_cb (gpointer data)
{
  g_source_destroy (data);
  return G_SOURCE_REMOVE;
}

/* For a context that hiredis frees itself once the callback running now
 * returns (its connection failed or closed). Freeing it takes the
 * source's poll away, which GLib refuses on a destroyed source: the
 * source goes at the context's next iteration, after that. */
static void
conn_abandon (Conn *conn)
{
  GSource *source = g_steal_pointer (&conn->source);
  GSource *idle;

  conn->ac = NULL;
  conn->connected = FALSE;
  if (source == NULL)
    return;

  idle = g_idle_source_new ();
  g_source_set_callback (idle, destroy_source_cb, source, (GDestroyNotify) g_source_unref);
  g_source_set_static_name (idle, "[rndz] cluster Redis cleanup");
  g_source_attach (idle, g_source_get_context (source));
  g_source_unref (idle);
}

static void
cluster_set_state (RndzCluster      *cluster,
                   RndzClusterState  state)
{
  if (cluster->state == state)
    return;

  cluster->state = state;
  g_debug ("Cluster node %s: %s", cluster->node,
           state == RNDZ_CLUSTER_UP ? "connected to Redis" :
           state == RNDZ_CLUSTER_DOWN ? "Redis unreachable" : "connecting to Redis");
  if (cluster->callbacks.state_changed != NULL)
    cluster->callbacks.state_changed (cluster->owner, state);
}

static void
clear_timer (RndzCluster *cluster)
{
  if (cluster->timer != NULL)
    {
      g_source_destroy (cluster->timer);
      g_clear_pointer (&cluster->timer, g_source_unref);
    }
}

static void
set_timer (RndzCluster *cluster,
           guint        ms,
           GSourceFunc  func)
{
  clear_timer (cluster);
  cluster->timer = g_timeout_source_new (ms);
  g_source_set_callback (cluster->timer, func, cluster, NULL);
  g_source_set_static_name (cluster->timer, "[rndz] cluster timer");
  g_source_attach (cluster->timer, cluster->context);
}

static gboolean
reconnect_cb (gpointer user_data)
{
  RndzCluster *cluster = user_data;

  g_clear_pointer (&cluster->timer, g_source_unref);
  cluster_connect (cluster);
  return G_SOURCE_REMOVE;
}

static gboolean
connect_timeout_cb (gpointer user_data)
{
  RndzCluster *cluster = user_data;

  g_clear_pointer (&cluster->timer, g_source_unref);
  g_debug ("Cluster: Redis did not answer within %u ms", CONNECT_TIMEOUT_MS);
  cluster_down (cluster);
  return G_SOURCE_REMOVE;
}

/* Both connections go, and come back after a pause */
static void
cluster_down (RndzCluster *cluster)
{
  conn_close (&cluster->cmd);
  conn_close (&cluster->sub);
  cluster->subscribed = FALSE;
  cluster_set_state (cluster, RNDZ_CLUSTER_DOWN);

  set_timer (cluster, cluster->pause_ms, reconnect_cb);
  cluster->pause_ms = MIN (cluster->pause_ms * 2, RECONNECT_MAX_MS);
}

static void
disconnect_cb (const redisAsyncContext *ac,
               int                      status)
{
  Conn *conn = ac->data;

  if (conn == NULL)
    return;

  conn_abandon (conn);
  g_debug ("Cluster: Redis connection lost: %s", ac->errstr[0] != '\0' ? ac->errstr : "closed");
  cluster_down (conn->cluster);
}

static void
maybe_up (RndzCluster *cluster)
{
  if (!cluster->cmd.connected || !cluster->subscribed)
    return;

  clear_timer (cluster);
  cluster->pause_ms = RECONNECT_MIN_MS;
  cluster_set_state (cluster, RNDZ_CLUSTER_UP);
}

static void
connect_cb (const redisAsyncContext *ac,
            int                      status)
{
  Conn *conn = ac->data;

  if (conn == NULL)
    return;

  if (status != REDIS_OK)
    {
      conn_abandon (conn);
      g_debug ("Cluster: cannot connect to Redis: %s", ac->errstr);
      cluster_down (conn->cluster);
      return;
    }

  conn->connected = TRUE;
  maybe_up (conn->cluster);
}

static void subscribe_cb (redisAsyncContext *ac,
                          void              *reply,
                          void              *privdata);

static gboolean
conn_open (RndzCluster *cluster,
           Conn        *conn)
{
  conn->cluster = cluster;
  conn->ac = redisAsyncConnect (cluster->host, cluster->port);
  if (conn->ac == NULL || conn->ac->err)
    {
      g_debug ("Cluster: cannot connect to Redis: %s",
               conn->ac != NULL ? conn->ac->errstr : "out of memory");
      if (conn->ac != NULL)
        redisAsyncFree (g_steal_pointer (&conn->ac));
      return FALSE;
    }

  conn->ac->data = conn;
  conn->source = redis_source_new (conn->ac);
  g_source_set_static_name (conn->source, "[rndz] cluster Redis");
  g_source_attach (conn->source, cluster->context);
  redisAsyncSetConnectCallback (conn->ac, connect_cb);
  redisAsyncSetDisconnectCallback (conn->ac, disconnect_cb);

  /* Sent as soon as the connection is up, in this order */
  if (cluster->password != NULL)
    redisAsyncCommand (conn->ac, NULL, NULL, "AUTH %s", cluster->password);
  if (cluster->db != 0)
    redisAsyncCommand (conn->ac, NULL, NULL, "SELECT %u", cluster->db);
  return TRUE;
}

static void
cluster_connect (RndzCluster *cluster)
{
  cluster_set_state (cluster, RNDZ_CLUSTER_CONNECTING);
  if (!conn_open (cluster, &cluster->cmd) || !conn_open (cluster, &cluster->sub))
    {
      cluster_down (cluster);
      return;
    }

  redisAsyncCommand (cluster->sub.ac, subscribe_cb, cluster, "SUBSCRIBE %s", cluster->channel);
  set_timer (cluster, CONNECT_TIMEOUT_MS, connect_timeout_cb);
}

/* Messages from other nodes */

/* Whether @nonce (16 hexadecimal digits) is new; remembers it */
static gboolean
nonce_is_fresh (RndzCluster *cluster,
                const char  *nonce)
{
  gint64 now = g_get_monotonic_time ();
  guint64 value = g_ascii_strtoull (nonce, NULL, 16);
  gpointer key = GSIZE_TO_POINTER ((gsize) value);

  if (now - cluster->nonces_rotated > NONCE_GENERATION_US)
    {
      GHashTable *oldest = cluster->nonces[NONCE_GENERATIONS - 1];

      memmove (&cluster->nonces[1], &cluster->nonces[0],
               (NONCE_GENERATIONS - 1) * sizeof cluster->nonces[0]);
      g_hash_table_remove_all (oldest);
      cluster->nonces[0] = oldest;
      cluster->nonces_rotated = now;
    }

  for (guint i = 0; i < NONCE_GENERATIONS; i++)
    if (g_hash_table_contains (cluster->nonces[i], key))
      return FALSE;
  if (g_hash_table_size (cluster->nonces[0]) >= MAX_NONCES_PER_GENERATION)
    return FALSE;

  g_hash_table_add (cluster->nonces[0], key);
  return TRUE;
}

static void
handle_published (RndzCluster *cluster,
                  const char  *data,
                  gsize        len)
{
  g_autoptr(GError) error = NULL;
  RndzClusterMessage message;
  const char *newline = memchr (data, '\n', len);
  g_autofree char *nonce = NULL;

  if (!rndz_cluster_message_open (&message, data, len, cluster->key,
                                  g_get_real_time () / 1000, &error))
    {
      g_debug ("Cluster: dropping a message: %s", error->message);
      return;
    }

  /* The nonce ends the head, before " MAC" */
  nonce = g_strndup (newline - 64 - 1 - 16, 16);
  if (!nonce_is_fresh (cluster, nonce))
    {
      g_debug ("Cluster: dropping a message seen before");
      return;
    }

  cluster->callbacks.message (cluster->owner, &message);
}

static void
subscribe_cb (redisAsyncContext *ac,
              void              *reply,
              void              *privdata)
{
  RndzCluster *cluster = privdata;
  redisReply *r = reply;

  if (r == NULL || ac->data == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
      r->element[0]->type != REDIS_REPLY_STRING)
    return;

  if (g_str_equal (r->element[0]->str, "subscribe"))
    {
      cluster->subscribed = TRUE;
      maybe_up (cluster);
    }
  else if (g_str_equal (r->element[0]->str, "message") &&
           r->element[2]->type == REDIS_REPLY_STRING)
    handle_published (cluster, r->element[2]->str, r->element[2]->len);
}

/* The node */

RndzCluster *
rndz_cluster_new (GMainContext               *context,
                  const char                 *url,
                  GBytes                     *key,
                  const RndzClusterCallbacks *callbacks,
                  gpointer                    owner)
{
  RndzCluster *cluster = g_new0 (RndzCluster, 1);

  if (!parse_url (url, &cluster->host, &cluster->port, &cluster->password, &cluster->db, NULL))
    g_return_val_if_reached ((g_free (cluster), NULL));

  cluster->context = g_main_context_ref (context);
  cluster->callbacks = *callbacks;
  cluster->owner = owner;
  cluster->key = g_bytes_ref (key);
  g_snprintf (cluster->node, sizeof cluster->node, "%08x%08x", g_random_int (), g_random_int ());
  cluster->channel = g_strconcat (CHANNEL_PREFIX, cluster->node, NULL);
  for (guint i = 0; i < NONCE_GENERATIONS; i++)
    cluster->nonces[i] = g_hash_table_new (NULL, NULL);
  cluster->nonces_rotated = g_get_monotonic_time ();
  cluster->pause_ms = RECONNECT_MIN_MS;
  cluster->state = RNDZ_CLUSTER_DOWN;

  cluster_connect (cluster);
  return cluster;
}

/* Sends what is queued on @conn (the withdrawals of a stopping server),
 * waiting for the socket a little at most */
static void
conn_flush (Conn *conn)
{
  gint64 end = g_get_monotonic_time () + 200 * 1000;
  int done = 0;

  if (conn->ac == NULL || !conn->connected)
    return;

  while (!done && g_get_monotonic_time () < end)
    {
      struct pollfd pfd = { conn->ac->c.fd, POLLOUT, 0 };

      if (redisBufferWrite (&conn->ac->c, &done) == REDIS_ERR)
        break;
      if (!done)
        poll (&pfd, 1, 10);
    }
}

void
rndz_cluster_free (RndzCluster *cluster)
{
  if (cluster == NULL)
    return;

  /* No callback from here on */
  cluster->callbacks.state_changed = NULL;
  clear_timer (cluster);
  conn_flush (&cluster->cmd);
  conn_close (&cluster->cmd);
  conn_close (&cluster->sub);
  for (guint i = 0; i < NONCE_GENERATIONS; i++)
    g_hash_table_unref (cluster->nonces[i]);
  g_bytes_unref (cluster->key);
  g_main_context_unref (cluster->context);
  g_free (cluster->channel);
  g_free (cluster->host);
  g_free (cluster->password);
  g_free (cluster);
}

const char *
rndz_cluster_get_node (RndzCluster *cluster)
{
  return cluster->node;
}

RndzClusterState
rndz_cluster_get_state (RndzCluster *cluster)
{
  return cluster->state;
}

static char *
peer_key (RndzTransport  transport,
          const char    *id)
{
  return g_strconcat (KEY_PREFIX, transport == RNDZ_TRANSPORT_TCP ? "tcp:" : "udp:", id, NULL);
}

/* Publishes that this node holds @id, for @ttl_ms. While Redis is away
 * nothing is queued: the node publishes all its peers once it is back. */
void
rndz_cluster_announce (RndzCluster   *cluster,
                       RndzTransport  transport,
                       const char    *id,
                       guint          ttl_ms)
{
  g_autofree char *key = NULL;

  if (cluster->state != RNDZ_CLUSTER_UP)
    return;

  key = peer_key (transport, id);
  redisAsyncCommand (cluster->cmd.ac, NULL, NULL, "SET %s %s PX %u", key, cluster->node, ttl_ms);
}

void
rndz_cluster_withdraw (RndzCluster   *cluster,
                       RndzTransport  transport,
                       const char    *id)
{
  g_autofree char *key = NULL;

  if (cluster->state != RNDZ_CLUSTER_UP)
    return;

  key = peer_key (transport, id);
  redisAsyncCommand (cluster->cmd.ac, NULL, NULL, "EVAL %s 1 %s %s", WITHDRAW_SCRIPT, key,
                     cluster->node);
}

static void
lookup_cb (redisAsyncContext *ac,
           void              *reply,
           void              *privdata)
{
  g_autofree RndzClusterLookup *lookup = privdata;
  redisReply *r = reply;

  if (lookup->func == NULL)
    return;

  if (r == NULL || r->type == REDIS_REPLY_ERROR)
    lookup->func (lookup->user_data, NULL, TRUE);
  else if (r->type == REDIS_REPLY_STRING && r->len == RNDZ_CLUSTER_NODE_LEN)
    lookup->func (lookup->user_data, r->str, FALSE);
  else
    lookup->func (lookup->user_data, NULL, FALSE);
}

/*
 * rndz_cluster_lookup:
 *
 * Asks which node holds @id. @func is called later, in the cluster's
 * context, unless the lookup is cancelled first.
 *
 * Returns: the lookup, or %NULL (and @func is not called) if Redis is
 *   away
 */
RndzClusterLookup *
rndz_cluster_lookup (RndzCluster           *cluster,
                     RndzTransport          transport,
                     const char            *id,
                     RndzClusterLookupFunc  func,
                     gpointer               user_data)
{
  RndzClusterLookup *lookup;
  g_autofree char *key = NULL;

  if (cluster->state != RNDZ_CLUSTER_UP)
    return NULL;

  lookup = g_new0 (RndzClusterLookup, 1);
  lookup->func = func;
  lookup->user_data = user_data;
  key = peer_key (transport, id);
  if (redisAsyncCommand (cluster->cmd.ac, lookup_cb, lookup, "GET %s", key) != REDIS_OK)
    {
      g_free (lookup);
      return NULL;
    }
  return lookup;
}

/* The lookup's function will not be called; its memory goes with the
 * reply */
void
rndz_cluster_lookup_cancel (RndzClusterLookup *lookup)
{
  if (lookup != NULL)
    lookup->func = NULL;
}

typedef struct
{
  RndzClusterClaimFunc func;
  gpointer user_data;
} Claim;

static void
claim_cb (redisAsyncContext *ac,
          void              *reply,
          void              *privdata)
{
  g_autofree Claim *claim = privdata;
  redisReply *r = reply;

  if (r == NULL)
    claim->func (claim->user_data, FALSE, TRUE);
  else
    /* SET NX answers OK, or nil when the key was there */
    claim->func (claim->user_data, r->type != REDIS_REPLY_NIL, FALSE);
}

/*
 * rndz_cluster_claim_mac:
 *
 * Records @mac in the cluster's shared replay cache (for the window the
 * nodes keep MACs, 120 s), and says whether another node had it: nodes
 * that share an address share the `srv` signed messages name, and a
 * message one of them accepted must not be replayed to another. @func
 * is called later, in the cluster's context.
 *
 * Returns: %FALSE (and @func is not called) if Redis is away
 */
gboolean
rndz_cluster_claim_mac (RndzCluster          *cluster,
                        const char           *mac,
                        RndzClusterClaimFunc  func,
                        gpointer              user_data)
{
  Claim *claim;

  if (cluster->state != RNDZ_CLUSTER_UP)
    return FALSE;

  claim = g_new0 (Claim, 1);
  claim->func = func;
  claim->user_data = user_data;
  if (redisAsyncCommand (cluster->cmd.ac, claim_cb, claim, "SET rndz:mac:%s 1 NX PX 120000",
                         mac) != REDIS_OK)
    {
      g_free (claim);
      return FALSE;
    }
  return TRUE;
}

/* Sends @message to @node, signed; FALSE if Redis is away */
gboolean
rndz_cluster_send (RndzCluster              *cluster,
                   const char               *node,
                   const RndzClusterMessage *message)
{
  g_autofree char *data = NULL;
  g_autofree char *channel = NULL;
  gsize len;

  if (cluster->state != RNDZ_CLUSTER_UP)
    return FALSE;

  data = rndz_cluster_message_seal (message, cluster->key, g_get_real_time () / 1000, &len);
  if (data == NULL)
    return FALSE;

  channel = g_strconcat (CHANNEL_PREFIX, node, NULL);
  return redisAsyncCommand (cluster->cmd.ac, NULL, NULL, "PUBLISH %s %b", channel,
                            data, len) == REDIS_OK;
}
