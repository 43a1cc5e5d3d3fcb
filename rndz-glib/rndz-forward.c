/* rndz-forward.c: how RndzServer forwards requests between peers
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-forward-private.h"
#include "rndz-ratelimit-private.h"

#include "rndz-cluster-private.h"

/* Outstanding forwarded requests; more is a flood, not a workload */
#define MAX_FORWARDS 4096

/* The share of one requester (address, or IPv6 /64) in one target's
 * requests: new requests a second, and the burst. Its table is large
 * enough that a flood from thousands of pairs rarely drains both slots
 * of another pair (doc/security.md, "Rate limits"). */
#define PAIR_BUCKETS 65536
#define PAIR_RATE 2
#define PAIR_BURST 4

/* A target's budget for requesters it has not heard from lately, as a
 * multiple of its shared budget (request-rate), and how long a requester
 * stays off it once a request of its own was forwarded to that target */
#define NEWCOMER_FACTOR 10
#define NEWCOMER_INTERVAL_S 10

/* An isync forwarded to its target, waiting for the target's rsync */
typedef struct
{
  guint32 server_tid;
  guint32 requester_tid;
  gsize reply_limit;              /* UDP: the isync's size, less its fsync's */
  gboolean authenticated;
  RndzTransport transport;
  RndzAddr requester_addr;
  RndzAddr requester_cands[RNDZ_MAX_CANDIDATES];
  guint n_requester_cands;
  RndzServerConn *requester_conn; /* TCP; NULL once that connection closed */
  char requester_id[RNDZ_ID_MAX_LEN + 1];
  char target_id[RNDZ_ID_MAX_LEN + 1];
  gint64 deadline;
  GList link;                     /* in RndzForwarder.queue, by deadline */

  /* Across a cluster (doc/cluster.md). The origin node (the requester's)
   * asks Redis where the target is (lookup), then sends the request to
   * that node; the node that holds the target keeps a forward with
   * remote set, and answers the origin instead of a requester. */
  RndzForwarder *forwarder;       /* for the lookup's callback */
  RndzClusterLookup *lookup;      /* while asking Redis */
  char node[RNDZ_CLUSTER_NODE_LEN + 1]; /* the other node: the target's, or the origin */
  gboolean remote;                /* the requester is at the origin node */
  guint32 origin_tid;             /* the origin's id of the request */
  gint64 sent_across;             /* the origin: when it first sent the request across */
} RndzForward;

/* Key of the UDP retransmission table: the same isync sent again */
typedef struct
{
  RndzAddr addr;
  guint32 tid;
} RndzForwardKey;

struct _RndzForwarder
{
  RndzServerIo *io;
  RndzRegistry *registry;
  const RndzServerConfig *config;
  RndzServerStats *stats;
  RndzRelay *relay;             /* while listening with a relay port */

  GHashTable *forwards;         /* server tid → RndzForward */
  GHashTable *by_request;       /* RndzForwardKey → RndzForward, UDP only */
  GQueue queue;                 /* by deadline */
  guint32 next_tid;

  RndzRateLimit *requester_limit;
  RndzRateLimit *target_limit;

  RndzCluster *cluster;         /* when the server is in one */
  GHashTable *by_origin;        /* "NODE/TID" → RndzForward, with remote set */
  RndzRateLimit *pair_limit;     /* (target, requester) */
  RndzRateLimit *newcomer_limit; /* per target, for pairs with a full bucket */
};

static guint
forward_key_hash (gconstpointer key)
{
  const RndzForwardKey *k = key;

  return rndz_addr_hash (&k->addr) ^ k->tid;
}

static gboolean
forward_key_equal (gconstpointer a,
                   gconstpointer b)
{
  const RndzForwardKey *ka = a, *kb = b;

  return ka->tid == kb->tid && rndz_addr_equal (&ka->addr, &kb->addr);
}

RndzForwarder *
rndz_forwarder_new (RndzServerIo           *io,
                    RndzRegistry           *registry,
                    const RndzServerConfig *config,
                    RndzServerStats        *stats,
                    guint                   request_rate)
{
  RndzForwarder *forwarder = g_new0 (RndzForwarder, 1);

  forwarder->io = io;
  forwarder->registry = registry;
  forwarder->config = config;
  forwarder->stats = stats;
  forwarder->forwards = g_hash_table_new (NULL, NULL);
  forwarder->by_request = g_hash_table_new_full (forward_key_hash, forward_key_equal, g_free, NULL);
  forwarder->by_origin = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  forwarder->next_tid = g_random_int ();
  forwarder->requester_limit = rndz_rate_limit_new (RNDZ_SERVER_RATE_LIMIT_BUCKETS, request_rate,
                                                    2 * request_rate);
  forwarder->target_limit = rndz_rate_limit_new (RNDZ_SERVER_RATE_LIMIT_BUCKETS, request_rate,
                                                 2 * request_rate);
  forwarder->pair_limit = rndz_rate_limit_new (PAIR_BUCKETS, PAIR_RATE, PAIR_BURST);
  forwarder->newcomer_limit = rndz_rate_limit_new (RNDZ_SERVER_RATE_LIMIT_BUCKETS,
                                                   NEWCOMER_FACTOR * request_rate,
                                                   2 * NEWCOMER_FACTOR * request_rate);
  return forwarder;
}

void
rndz_forwarder_free (RndzForwarder *forwarder)
{
  rndz_forwarder_clear (forwarder);
  g_hash_table_unref (forwarder->forwards);
  g_hash_table_unref (forwarder->by_request);
  g_hash_table_unref (forwarder->by_origin);
  rndz_rate_limit_free (forwarder->requester_limit);
  rndz_rate_limit_free (forwarder->target_limit);
  rndz_rate_limit_free (forwarder->pair_limit);
  rndz_rate_limit_free (forwarder->newcomer_limit);
  g_free (forwarder);
}

/* Requests per second and address (requester or target); bursts of
 * twice as many */
void
rndz_forwarder_set_rate (RndzForwarder *forwarder,
                         guint          per_second)
{
  rndz_rate_limit_set (forwarder->requester_limit, per_second, 2 * per_second);
  rndz_rate_limit_set (forwarder->target_limit, per_second, 2 * per_second);
  rndz_rate_limit_set (forwarder->newcomer_limit, NEWCOMER_FACTOR * per_second,
                       2 * NEWCOMER_FACTOR * per_second);
}

/* @relay: (nullable): the relay port, borrowed while the server listens */
void
rndz_forwarder_set_relay (RndzForwarder *forwarder,
                          RndzRelay     *relay)
{
  forwarder->relay = relay;
}

static void
forward_free (RndzForwarder *forwarder,
              RndzForward   *forward)
{
  if (forward->remote)
    {
      g_autofree char *key = g_strdup_printf ("%s/%u", forward->node, forward->origin_tid);

      g_hash_table_remove (forwarder->by_origin, key);
    }
  else if (forward->transport == RNDZ_TRANSPORT_UDP)
    {
      RndzForwardKey key = { forward->requester_addr, forward->requester_tid };
      g_hash_table_remove (forwarder->by_request, &key);
    }
  rndz_cluster_lookup_cancel (forward->lookup);
  g_queue_unlink (&forwarder->queue, &forward->link);
  g_hash_table_remove (forwarder->forwards, GUINT_TO_POINTER (forward->server_tid));
  g_free (forward);
}

/* Forgets every request, unanswered */
void
rndz_forwarder_clear (RndzForwarder *forwarder)
{
  while (forwarder->queue.head != NULL)
    forward_free (forwarder, forwarder->queue.head->data);
}

/* A requester's connection closed: its answer, when it comes, is dropped.
 * Bounded by MAX_FORWARDS. */
void
rndz_forwarder_conn_closed (RndzForwarder  *forwarder,
                            RndzServerConn *conn)
{
  for (GList *l = forwarder->queue.head; l != NULL; l = l->next)
    {
      RndzForward *forward = l->data;

      if (forward->requester_conn == conn)
        forward->requester_conn = NULL;
    }
}

/* Answers a forwarded request's requester, by the way it asked */
/* At the origin: the request went to (or is going to) another node,
 * whose answer is awaited, not an rsync */
static gboolean
forward_sent_across (const RndzForward *forward)
{
  return !forward->remote && (forward->lookup != NULL || forward->node[0] != '\0');
}

static void forward_answer_origin (RndzForwarder     *forwarder,
                                   RndzForward       *forward,
                                   const RndzMessage *msg);

/* Counts an error answer to a requester by its outcome (the statistics
 * of rndz_server_get_statistics()) */
static void
count_error (RndzForwarder *forwarder,
             RndzWireError  code)
{
  if (code == RNDZ_WIRE_ERROR_PEER_NOT_FOUND)
    forwarder->stats->not_found++;
  else if (code == RNDZ_WIRE_ERROR_PEER_NO_ANSWER)
    forwarder->stats->no_answer++;
  else if (code == RNDZ_WIRE_ERROR_UNAVAILABLE)
    forwarder->stats->unavailable++;
}

static void
forward_reply (RndzForwarder     *forwarder,
               RndzForward       *forward,
               const RndzMessage *msg)
{
  if (forward->remote)
    forward_answer_origin (forwarder, forward, msg);
  else if (forward->transport == RNDZ_TRANSPORT_UDP)
    rndz_server_io_send_udp (forwarder->io, &forward->requester_addr, msg, forward->reply_limit);
  else if (forward->requester_conn != NULL)
    rndz_server_io_send_tcp (forwarder->io, forward->requester_conn, msg);
}

/* Answers peer-no-answer to the requests whose target did not answer in
 * time */
void
rndz_forwarder_expire (RndzForwarder *forwarder,
                       gint64         now)
{
  GList *head;

  while ((head = forwarder->queue.head) != NULL)
    {
      RndzForward *forward = head->data;
      RndzMessage reply;

      if (forward->deadline > now)
        {
          rndz_server_io_schedule (forwarder->io, forward->deadline);
          break;
        }

      g_debug ("“%s” did not answer the request of “%s”", forward->target_id, forward->requester_id);
      /* A request from another node: that node answers its requester */
      if (!forward->remote)
        {
          rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, forward->requester_tid);
          reply.code = forward->lookup != NULL ? RNDZ_WIRE_ERROR_UNAVAILABLE
                                               : RNDZ_WIRE_ERROR_PEER_NO_ANSWER;
          count_error (forwarder, reply.code);
          forward_reply (forwarder, forward, &reply);
        }
      forward_free (forwarder, forward);
    }
}

/* Rate limits */

/* An fsync is the one message the server sends to someone who did not
 * ask for it, so it is rate limited twice: by who asks, and by whom it
 * goes to. */
static gboolean
forward_take (RndzForwarder  *forwarder,
              const RndzAddr *requester,
              const RndzAddr *target,
              const char     *requester_id)
{
  gint64 now = g_get_monotonic_time ();

  if (rndz_rate_limit_take (forwarder->requester_limit, requester, now) &&
      rndz_rate_limit_take (forwarder->target_limit, target, now))
    return TRUE;

  forwarder->stats->rate_limited++;
  g_debug ("Not forwarding the request of “%s”: rate limited", requester_id);
  return FALSE;
}

/* Whether a new request from @requester to @target may take a place in
 * a table: checked before, so that a flood cannot fill it. Returns 0 if
 * it may, else the milliseconds until both buckets have a token again. */
static guint
request_wait_ms (RndzForwarder  *forwarder,
                 const RndzAddr *requester,
                 const RndzAddr *target,
                 const char     *requester_id)
{
  gint64 now = g_get_monotonic_time ();
  guint wait;

  wait = MAX (rndz_rate_limit_wait_ms (forwarder->requester_limit, requester, now),
              rndz_rate_limit_wait_ms (forwarder->target_limit, target, now));
  if (wait == 0)
    return 0;

  forwarder->stats->rate_limited++;
  g_debug ("Not forwarding the request of “%s”: rate limited for %u ms", requester_id, wait);
  return wait;
}

/* Whether a new isync from @requester to @target may go on, taking its
 * tokens if so. Returns 0 if it may, else the milliseconds to wait.
 *
 * The target's budget is shared by everyone who asks for it, so a
 * flooder would drain it for all. Every request therefore also counts
 * against its (target, requester) pair: a pair with tokens takes the
 * target's shared ones while they last, and a pair that is new (its
 * bucket is full: it has not asked for this target lately; and none of
 * its requests to the target went through in the last
 * NEWCOMER_INTERVAL_S) may use the target's larger budget for newcomers
 * instead. A flooder keeps its own pairs drained: it competes only with
 * itself for the shared budget, and never gets the newcomers'. One that
 * spreads its requests thin to look new gets one a pair and interval. */
static guint
isync_admit (RndzForwarder  *forwarder,
             const RndzAddr *requester,
             const RndzAddr *target)
{
  gint64 now = g_get_monotonic_time ();
  RndzRateLimitLevel pair;
  gboolean new;
  guint wait;

  /* Refused or not, a request uses up its pair's token */
  pair = rndz_rate_limit_take_pair (forwarder->pair_limit, target, requester, now);
  if (pair == RNDZ_RATE_LIMIT_EMPTY)
    return rndz_rate_limit_wait_pair_ms (forwarder->pair_limit, target, requester, FALSE, now);

  wait = rndz_rate_limit_wait_ms (forwarder->requester_limit, requester, now);
  if (wait > 0)
    return wait;

  new = pair == RNDZ_RATE_LIMIT_FULL &&
        !rndz_rate_limit_pair_marked (forwarder->pair_limit, target, requester, NEWCOMER_INTERVAL_S, now);
  if (rndz_rate_limit_take (forwarder->target_limit, target, now) ||
      (new && rndz_rate_limit_take (forwarder->newcomer_limit, target, now)))
    {
      rndz_rate_limit_take (forwarder->requester_limit, requester, now);
      rndz_rate_limit_mark_pair (forwarder->pair_limit, target, requester, now);
      return 0;
    }

  if (new)
    return rndz_rate_limit_wait_ms (forwarder->newcomer_limit, target, now);
  /* Asking again before the pair is full would only find the shared
   * budget, which flooders may be draining: better to wait to be new */
  if (pair != RNDZ_RATE_LIMIT_FULL)
    return MAX (1, rndz_rate_limit_wait_pair_ms (forwarder->pair_limit, target, requester, TRUE, now));
  return rndz_rate_limit_wait_ms (forwarder->target_limit, target, now);
}

/* Whether a new isync may go on, its tokens taken; if not, the
 * requester hears why */
static gboolean
isync_allowed (RndzForwarder          *forwarder,
               const RndzServerSource *src,
               const RndzMessage      *msg,
               const RndzPeer         *target)
{
  guint wait = isync_admit (forwarder, &src->from, &target->addr);

  if (wait == 0)
    return TRUE;

  forwarder->stats->rate_limited++;
  g_debug ("Not forwarding the request of “%s”: rate limited for %u ms", msg->id, wait);
  rndz_server_io_refuse (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_RATE_LIMITED, wait);
  return FALSE;
}

/* Whether a new request may go on; if not, the requester hears why */
static gboolean
request_allowed (RndzForwarder          *forwarder,
                 const RndzServerSource *src,
                 const RndzMessage      *msg,
                 const RndzPeer         *target)
{
  guint wait = request_wait_ms (forwarder, &src->from, &target->addr, msg->id);

  if (wait == 0)
    return TRUE;

  rndz_server_io_refuse (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_RATE_LIMITED, wait);
  return FALSE;
}

/* isync → fsync */

static guint32
forwarder_new_tid (RndzForwarder *forwarder)
{
  do
    forwarder->next_tid++;
  while (forwarder->next_tid == 0 ||
         g_hash_table_contains (forwarder->forwards, GUINT_TO_POINTER (forwarder->next_tid)));

  return forwarder->next_tid;
}

/* The peer a request (isync or relay) names, or NULL after telling the
 * requester why not */
static RndzPeer *
lookup_target (RndzForwarder          *forwarder,
               const RndzServerSource *src,
               const RndzMessage      *msg)
{
  RndzPeer *target = rndz_registry_lookup (forwarder->registry, src->transport, msg->target);

  if (target == NULL)
    {
      g_debug ("“%s” asked for unknown peer “%s”", msg->id, msg->target);
      count_error (forwarder, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
      return NULL;
    }

  /* A peer knows the other only by the address the server saw: across
   * IPv4 and IPv6 they cannot meet (through a NAT, the requester's
   * mapping for the other version was never opened) */
  if (target->addr.family != src->from.family)
    {
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_ADDRESS_FAMILY);
      return NULL;
    }

  return target;
}

static void
fsync_init (RndzMessage    *fsync,
            guint32         server_tid,
            const char     *requester_id,
            const RndzAddr *requester_addr,
            guint           n_cands,
            const RndzAddr *cands,
            gboolean        authenticated)
{
  rndz_message_init (fsync, RNDZ_MESSAGE_FSYNC, server_tid);
  g_strlcpy (fsync->id, requester_id, sizeof fsync->id);
  fsync->addr = *requester_addr;
  fsync->n_cands = n_cands;
  memcpy (fsync->cands, cands, n_cands * sizeof (RndzAddr));
  fsync->auth = authenticated;
}

/* Sends the request on to its target */
static void
send_fsync (RndzForwarder *forwarder,
            RndzPeer      *target,
            RndzForward   *forward)
{
  RndzMessage fsync;

  fsync_init (&fsync, forward->server_tid, forward->requester_id, &forward->requester_addr,
              forward->n_requester_cands, forward->requester_cands, forward->authenticated);
  forwarder->stats->forwarded++;

  rndz_registry_send (forwarder->registry, target, &fsync);
}

/* Over UDP an isync pays for all it causes, so that no request makes
 * the server send more bytes than it got, to anyone: the fsync to the
 * target, and the answer (a redirect without candidates, or
 * peer-no-answer; candidates go only if they fit too, see
 * handle_rsync). Sets @reply_limit to what is left for the answer. */
static gboolean
isync_fits (RndzForwarder          *forwarder,
            const RndzServerSource *src,
            const RndzMessage      *msg,
            const RndzPeer         *target,
            gboolean                authenticated,
            gsize                  *reply_limit)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage fsync, reply;
  gsize fsync_len, reply_len;

  *reply_limit = G_MAXSIZE;
  if (src->transport != RNDZ_TRANSPORT_UDP)
    return TRUE;

  /* The server's tid is not chosen yet: the longest one */
  fsync_init (&fsync, G_MAXUINT32, msg->id, &src->from, msg->n_cands, msg->cands, authenticated);
  fsync_len = rndz_message_encode (&fsync, buf, sizeof buf);

  rndz_message_init (&reply, RNDZ_MESSAGE_REDIRECT, msg->tid);
  g_strlcpy (reply.id, target->id, sizeof reply.id);
  reply.addr = target->addr;
  reply_len = rndz_message_encode (&reply, buf, sizeof buf);
  rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, msg->tid);
  reply.code = RNDZ_WIRE_ERROR_PEER_NO_ANSWER;
  reply_len = MAX (reply_len, rndz_message_encode (&reply, buf, sizeof buf));

  if (fsync_len == 0 || reply_len == 0 || fsync_len + reply_len > src->len)
    {
      forwarder->stats->amplification++;
      g_debug ("Not forwarding the request of “%s”: %" G_GSIZE_FORMAT " bytes pay for "
               "no fsync and answer of %" G_GSIZE_FORMAT, msg->id, src->len, fsync_len + reply_len);
      return FALSE;
    }
  *reply_limit = src->len - fsync_len;
  return TRUE;
}

/* The same isync again over UDP: the fsync or the reply to it was lost.
 * Returns TRUE if @msg was that, and is handled. */
static gboolean
isync_retransmitted (RndzForwarder          *forwarder,
                     const RndzServerSource *src,
                     const RndzMessage      *msg,
                     RndzPeer               *target)
{
  RndzForwardKey key = { src->from, msg->tid };
  RndzForward *forward;

  if (src->transport != RNDZ_TRANSPORT_UDP)
    return FALSE;

  forward = g_hash_table_lookup (forwarder->by_request, &key);
  if (forward == NULL)
    return FALSE;

  if (!g_str_equal (forward->target_id, msg->target))
    /* A transaction id used again for another target */
    rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
  else if (forward_take (forwarder, &src->from, &target->addr, msg->id))
    /* Still pending: over the limits it goes unanswered, not refused */
    send_fsync (forwarder, target, forward);
  return TRUE;
}

static RndzForward *
forward_add (RndzForwarder          *forwarder,
             const RndzServerSource *src,
             const RndzMessage      *msg,
             gboolean                authenticated,
             gsize                   reply_limit)
{
  RndzForward *forward = g_new0 (RndzForward, 1);

  forward->server_tid = forwarder_new_tid (forwarder);
  forward->requester_tid = msg->tid;
  forward->reply_limit = reply_limit;
  forward->authenticated = authenticated;
  forward->transport = src->transport;
  forward->requester_addr = src->from;
  forward->n_requester_cands = msg->n_cands;
  memcpy (forward->requester_cands, msg->cands, sizeof forward->requester_cands);
  forward->requester_conn = src->conn;
  forward->forwarder = forwarder;
  g_strlcpy (forward->requester_id, msg->id, sizeof forward->requester_id);
  g_strlcpy (forward->target_id, msg->target, sizeof forward->target_id);
  forward->deadline = g_get_monotonic_time () + forwarder->config->forward_timeout_ms * (gint64) 1000;
  forward->link.data = forward;

  g_hash_table_insert (forwarder->forwards, GUINT_TO_POINTER (forward->server_tid), forward);
  if (src->transport == RNDZ_TRANSPORT_UDP)
    {
      RndzForwardKey *key = g_new (RndzForwardKey, 1);

      key->addr = src->from;
      key->tid = msg->tid;
      g_hash_table_insert (forwarder->by_request, key, forward);
    }
  g_queue_push_tail_link (&forwarder->queue, &forward->link);
  rndz_server_io_schedule (forwarder->io, forward->deadline);
  return forward;
}

static void forward_across (RndzForwarder          *forwarder,
                            const RndzServerSource *src,
                            const RndzMessage      *msg,
                            gboolean                authenticated);

void
rndz_forwarder_handle_isync (RndzForwarder          *forwarder,
                             const RndzServerSource *src,
                             const RndzMessage      *msg,
                             gboolean                authenticated)
{
  RndzPeer *target;
  RndzForward *forward;
  gsize reply_limit;

  /* Not ours: perhaps another node's */
  if (forwarder->cluster != NULL &&
      rndz_registry_lookup (forwarder->registry, src->transport, msg->target) == NULL)
    {
      forward_across (forwarder, src, msg, authenticated);
      return;
    }

  target = lookup_target (forwarder, src, msg);
  if (target == NULL || !isync_fits (forwarder, src, msg, target, authenticated, &reply_limit) ||
      isync_retransmitted (forwarder, src, msg, target))
    return;

  /* Refused before it takes a place among the forwarded requests: a
   * flood must not fill them */
  if (!isync_allowed (forwarder, src, msg, target))
    return;

  if (g_hash_table_size (forwarder->forwards) >= MAX_FORWARDS)
    {
      forwarder->stats->rate_limited++;
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
      return;
    }

  forward = forward_add (forwarder, src, msg, authenticated, reply_limit);
  g_debug ("Forwarding request of “%s” to “%s”", msg->id, msg->target);
  send_fsync (forwarder, target, forward);
}

/* rsync → redirect */

void
rndz_forwarder_handle_rsync (RndzForwarder          *forwarder,
                             const RndzServerSource *src,
                             const RndzMessage      *msg)
{
  RndzForward *forward = g_hash_table_lookup (forwarder->forwards, GUINT_TO_POINTER (msg->tid));
  RndzMessage redirect;
  RndzPeer *target;

  if (forward == NULL || forward->transport != src->transport || forward_sent_across (forward) ||
      !g_str_equal (forward->target_id, msg->id) ||
      !g_str_equal (forward->requester_id, msg->target))
    return;

  /* Only the target itself may answer for the target */
  target = rndz_registry_lookup (forwarder->registry, src->transport, msg->id);
  if (target == NULL || !rndz_peer_matches_source (target, src))
    return;

  rndz_registry_touch (forwarder->registry, target);

  rndz_message_init (&redirect, RNDZ_MESSAGE_REDIRECT, forward->requester_tid);
  g_strlcpy (redirect.id, target->id, sizeof redirect.id);
  redirect.addr = target->addr;
  rndz_peer_get_cands (target, &redirect);
  /* A request padded too little for the target's candidates (a peer of
   * an older version) still gets the observed address */
  if (forward->transport == RNDZ_TRANSPORT_UDP && redirect.n_cands > 0)
    {
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
      gsize len = rndz_message_encode (&redirect, buf, sizeof buf);

      if (len == 0 || len > forward->reply_limit)
        redirect.n_cands = 0;
    }
  /* Across a cluster, the origin counts it when the redirect gets there */
  if (!forward->remote)
    forwarder->stats->redirected++;
  forward_reply (forwarder, forward, &redirect);
  forward_free (forwarder, forward);
}

/* relay */

/* The session message to the target: the requester's id and the token */
static void
notice_init (RndzForwarder     *forwarder,
             RndzMessage       *notice,
             guint32            tid,
             const RndzMessage *request,
             const char        *token,
             gboolean           authenticated)
{
  rndz_message_init (notice, RNDZ_MESSAGE_SESSION, tid);
  g_strlcpy (notice->id, request->id, sizeof notice->id);
  g_strlcpy (notice->token, token, sizeof notice->token);
  notice->port = rndz_relay_get_port (forwarder->relay);
  notice->auth = authenticated;
}

/* Over UDP a relay must be as large as both sessions it makes the server
 * send, to the requester and to the target (see "No amplification" in
 * doc/protocol.md): a forged one must not make the server send more
 * than it received, to anyone. @reply has the token's length already. */
static gboolean
relay_fits (RndzForwarder          *forwarder,
            const RndzServerSource *src,
            const RndzMessage      *msg,
            const RndzMessage      *reply,
            gboolean                authenticated)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage notice;
  gsize total;

  if (src->transport != RNDZ_TRANSPORT_UDP)
    return TRUE;

  /* Its tid is not chosen yet: the longest stands in */
  notice_init (forwarder, &notice, G_MAXUINT32, msg, reply->token, authenticated);
  total = rndz_message_encode (reply, buf, sizeof buf) + rndz_message_encode (&notice, buf, sizeof buf);
  if (total <= src->len)
    return TRUE;

  forwarder->stats->amplification++;
  return FALSE;
}

/* Tells the target where to meet the requester: through its
 * registration, as an fsync goes, and rate limited like one */
static void
send_session_to_target (RndzForwarder          *forwarder,
                        RndzPeer               *target,
                        RndzRelaySession       *session,
                        const RndzServerSource *src,
                        const RndzMessage      *request,
                        gboolean                authenticated)
{
  RndzMessage notice;

  if (!forward_take (forwarder, &src->from, &target->addr, request->id))
    return;

  notice_init (forwarder, &notice, rndz_relay_session_get_target_tid (session), request,
               rndz_relay_session_get_token (session), authenticated);
  rndz_registry_send (forwarder->registry, target, &notice);
}

/* The session a relay request gets: the same one for the same request
 * again, else a new one if the limits allow (else NULL, after telling
 * the requester why not) */
static RndzRelaySession *
relay_session_for (RndzForwarder          *forwarder,
                   const RndzServerSource *src,
                   const RndzMessage      *msg,
                   const RndzPeer         *target)
{
  RndzRelaySession *session;

  session = rndz_relay_find_request (forwarder->relay, src->transport, &src->from, msg->tid);
  if (session != NULL && !g_str_equal (rndz_relay_session_get_target (session), msg->target))
    {
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
      return NULL;
    }
  if (session != NULL || !request_allowed (forwarder, src, msg, target))
    return session;

  session = rndz_relay_open (forwarder->relay, src->transport, &src->from, msg->tid,
                             msg->id, msg->target, &target->addr,
                             forwarder_new_tid (forwarder));
  if (session == NULL)
    {
      g_debug ("Cannot relay for “%s”: no session left", msg->id);
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
    }
  return session;
}

void
rndz_forwarder_handle_relay (RndzForwarder          *forwarder,
                             const RndzServerSource *src,
                             const RndzMessage      *msg,
                             gboolean                authenticated)
{
  RndzRelaySession *session;
  RndzMessage reply;
  RndzPeer *target;

  if (forwarder->relay == NULL)
    {
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_NO_RELAY);
      return;
    }

  /* The relay tells the two sides apart by their ids */
  if (g_str_equal (msg->id, msg->target))
    {
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
      return;
    }

  target = lookup_target (forwarder, src, msg);
  if (target == NULL)
    return;

  /* The request must be large enough for both sessions: a token has a
   * fixed length, so a stand-in measures the real one. A retransmission
   * is checked the same way, and so sends both again within its size. */
  rndz_message_init (&reply, RNDZ_MESSAGE_SESSION, msg->tid);
  g_strlcpy (reply.id, target->id, sizeof reply.id);
  memset (reply.token, '0', RNDZ_TOKEN_LEN);
  reply.port = rndz_relay_get_port (forwarder->relay);
  if (!relay_fits (forwarder, src, msg, &reply, authenticated))
    return;

  session = relay_session_for (forwarder, src, msg, target);
  if (session == NULL)
    return;

  g_strlcpy (reply.token, rndz_relay_session_get_token (session), sizeof reply.token);
  rndz_server_io_reply (forwarder->io, src, &reply);
  send_session_to_target (forwarder, target, session, src, msg, authenticated);
}

/* Across a cluster
 *
 * The origin node keeps the request (for its requester, its deadline,
 * its retransmissions) and asks Redis which node holds the target; that
 * node passes an fsync on and answers with the redirect, or an error,
 * through the origin's channel. See doc/cluster.md.
 */

void
rndz_forwarder_set_cluster (RndzForwarder *forwarder,
                            RndzCluster   *cluster)
{
  forwarder->cluster = cluster;
}

/* The origin: sends the request to the node that holds the target */
static gboolean
send_across (RndzForwarder *forwarder,
             RndzForward   *forward)
{
  RndzClusterMessage message = { { 0 } };

  g_strlcpy (message.origin, rndz_cluster_get_node (forwarder->cluster), sizeof message.origin);
  message.transport = forward->transport;
  g_strlcpy (message.target, forward->target_id, sizeof message.target);
  rndz_message_init (&message.msg, RNDZ_MESSAGE_FSYNC, forward->server_tid);
  g_strlcpy (message.msg.id, forward->requester_id, sizeof message.msg.id);
  message.msg.addr = forward->requester_addr;
  message.msg.n_cands = forward->n_requester_cands;
  memcpy (message.msg.cands, forward->requester_cands, sizeof message.msg.cands);
  message.msg.auth = forward->authenticated;

  /* Latency from the first send: a retransmission's answer may be the
   * answer to the first one */
  if (forward->sent_across == 0)
    forward->sent_across = g_get_monotonic_time ();
  forwarder->stats->forwarded_across++;
  return rndz_cluster_send (forwarder->cluster, forward->node, &message);
}

static void
answer_error (RndzForwarder *forwarder,
              RndzForward   *forward,
              RndzWireError  code)
{
  RndzMessage reply;

  rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, forward->requester_tid);
  reply.code = code;
  count_error (forwarder, code);
  forward_reply (forwarder, forward, &reply);
  forward_free (forwarder, forward);
}

/* The origin: Redis says where the target is */
static void
lookup_done_cb (gpointer    user_data,
                const char *node,
                gboolean    failed)
{
  RndzForward *forward = user_data;
  RndzForwarder *forwarder = forward->forwarder;

  forward->lookup = NULL;
  if (failed)
    {
      g_debug ("Cannot look “%s” up: the cluster is unavailable", forward->target_id);
      answer_error (forwarder, forward, RNDZ_WIRE_ERROR_UNAVAILABLE);
      return;
    }
  /* Our own node id there is a registration we no longer hold */
  if (node == NULL || g_str_equal (node, rndz_cluster_get_node (forwarder->cluster)))
    {
      g_debug ("“%s” asked for unknown peer “%s”", forward->requester_id, forward->target_id);
      answer_error (forwarder, forward, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
      return;
    }

  g_strlcpy (forward->node, node, sizeof forward->node);
  g_debug ("Forwarding request of “%s” to “%s” at node %s", forward->requester_id,
           forward->target_id, node);
  if (!send_across (forwarder, forward))
    answer_error (forwarder, forward, RNDZ_WIRE_ERROR_UNAVAILABLE);
}

/* The origin: the requester's retransmission goes to the node again */
static gboolean
across_retransmitted (RndzForwarder          *forwarder,
                      const RndzServerSource *src,
                      const RndzMessage      *msg)
{
  RndzForwardKey key = { src->from, msg->tid };
  RndzForward *forward;

  if (src->transport != RNDZ_TRANSPORT_UDP)
    return FALSE;

  forward = g_hash_table_lookup (forwarder->by_request, &key);
  if (forward == NULL)
    return FALSE;

  if (!g_str_equal (forward->target_id, msg->target))
    rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
  else if (forward->node[0] != '\0')
    send_across (forwarder, forward);
  return TRUE;
}

/* The request must pay for the fsync and the answer it causes, as at
 * home; the target's address is not known here: a stand-in of the
 * requester's family (the target's node checks that they match) */
static gboolean
across_fits (RndzForwarder          *forwarder,
             const RndzServerSource *src,
             const RndzMessage      *msg,
             gboolean                authenticated,
             gsize                  *reply_limit)
{
  RndzPeer stand_in = { 0 };

  stand_in.id = (char *) msg->target;
  stand_in.addr = src->from;
  return isync_fits (forwarder, src, msg, &stand_in, authenticated, reply_limit);
}

static void
forward_across (RndzForwarder          *forwarder,
                const RndzServerSource *src,
                const RndzMessage      *msg,
                gboolean                authenticated)
{
  RndzForward *forward;
  gsize reply_limit;
  guint wait;

  if (!across_fits (forwarder, src, msg, authenticated, &reply_limit) ||
      across_retransmitted (forwarder, src, msg))
    return;

  /* The requester's share is counted here, the target's at its node */
  wait = rndz_rate_limit_wait_ms (forwarder->requester_limit, &src->from, g_get_monotonic_time ());
  if (wait > 0)
    {
      forwarder->stats->rate_limited++;
      rndz_server_io_refuse (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_RATE_LIMITED, wait);
      return;
    }
  rndz_rate_limit_take (forwarder->requester_limit, &src->from, g_get_monotonic_time ());

  if (g_hash_table_size (forwarder->forwards) >= MAX_FORWARDS)
    {
      forwarder->stats->rate_limited++;
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
      return;
    }

  forward = forward_add (forwarder, src, msg, authenticated, reply_limit);
  forward->lookup = rndz_cluster_lookup (forwarder->cluster, src->transport, msg->target,
                                         lookup_done_cb, forward);
  if (forward->lookup == NULL)
    answer_error (forwarder, forward, RNDZ_WIRE_ERROR_UNAVAILABLE);
}

/* The target's node: answers the origin, with the same tid it sent */
static void
forward_answer_origin (RndzForwarder     *forwarder,
                       RndzForward       *forward,
                       const RndzMessage *msg)
{
  RndzClusterMessage message = { { 0 } };

  g_strlcpy (message.origin, rndz_cluster_get_node (forwarder->cluster), sizeof message.origin);
  message.transport = forward->transport;
  message.msg = *msg;
  message.msg.tid = forward->origin_tid;
  rndz_cluster_send (forwarder->cluster, forward->node, &message);
}

static void
answer_origin_error (RndzForwarder            *forwarder,
                     const RndzClusterMessage *request,
                     RndzWireError             code,
                     guint                     retry_ms)
{
  RndzClusterMessage message = { { 0 } };

  g_strlcpy (message.origin, rndz_cluster_get_node (forwarder->cluster), sizeof message.origin);
  message.transport = request->transport;
  rndz_message_init (&message.msg, RNDZ_MESSAGE_ERROR, request->msg.tid);
  message.msg.code = code;
  if (retry_ms > 0)
    message.msg.retry_ms = CLAMP (retry_ms, RNDZ_WIRE_RETRY_MIN_MS, RNDZ_WIRE_RETRY_MAX_MS);
  rndz_cluster_send (forwarder->cluster, request->origin, &message);
}

/* The target's node: a request from another node's requester */
static void
handle_forward_from (RndzForwarder            *forwarder,
                     const RndzClusterMessage *request)
{
  g_autofree char *key = g_strdup_printf ("%s/%u", request->origin, request->msg.tid);
  RndzServerSource src = { request->transport, request->msg.addr, NULL, G_MAXSIZE };
  RndzPeer *target = rndz_registry_lookup (forwarder->registry, request->transport,
                                           request->target);
  RndzForward *forward = g_hash_table_lookup (forwarder->by_origin, key);
  RndzMessage isync;
  guint wait;

  if (target == NULL)
    {
      answer_origin_error (forwarder, request, RNDZ_WIRE_ERROR_PEER_NOT_FOUND, 0);
      return;
    }
  if (target->addr.family != request->msg.addr.family)
    {
      answer_origin_error (forwarder, request, RNDZ_WIRE_ERROR_ADDRESS_FAMILY, 0);
      return;
    }
  /* The requester asked again: the fsync or its answer was lost */
  if (forward != NULL)
    {
      if (forward_take (forwarder, &forward->requester_addr, &target->addr, forward->requester_id))
        send_fsync (forwarder, target, forward);
      return;
    }
  /* The target's budgets, and its fairness among requesters, are kept
   * where the target is */
  wait = isync_admit (forwarder, &request->msg.addr, &target->addr);
  if (wait > 0)
    {
      forwarder->stats->rate_limited++;
      answer_origin_error (forwarder, request, RNDZ_WIRE_ERROR_RATE_LIMITED, wait);
      return;
    }
  if (g_hash_table_size (forwarder->forwards) >= MAX_FORWARDS)
    {
      answer_origin_error (forwarder, request, RNDZ_WIRE_ERROR_SERVER_FULL, 0);
      return;
    }

  /* Kept like a request of our own, answered to the origin */
  rndz_message_init (&isync, RNDZ_MESSAGE_ISYNC, request->msg.tid);
  g_strlcpy (isync.id, request->msg.id, sizeof isync.id);
  g_strlcpy (isync.target, request->target, sizeof isync.target);
  isync.n_cands = request->msg.n_cands;
  memcpy (isync.cands, request->msg.cands, sizeof isync.cands);
  src.transport = RNDZ_TRANSPORT_TCP;   /* not in the UDP retransmission table */
  forward = forward_add (forwarder, &src, &isync, request->msg.auth, G_MAXSIZE);
  forward->transport = request->transport;
  forward->remote = TRUE;
  forward->origin_tid = request->msg.tid;
  g_strlcpy (forward->node, request->origin, sizeof forward->node);
  g_hash_table_insert (forwarder->by_origin, g_steal_pointer (&key), forward);

  g_debug ("Forwarding request of “%s” from node %s to “%s”", isync.id, request->origin,
           isync.target);
  send_fsync (forwarder, target, forward);
}

/* The origin: the answer of the target's node */
static void
handle_answer_from (RndzForwarder            *forwarder,
                    const RndzClusterMessage *answer)
{
  RndzForward *forward = g_hash_table_lookup (forwarder->forwards,
                                              GUINT_TO_POINTER (answer->msg.tid));
  RndzMessage reply = answer->msg;

  /* Only the node we asked answers, for the request we sent it */
  if (forward == NULL || forward->remote || !g_str_equal (forward->node, answer->origin))
    return;

  forwarder->stats->answers_across++;
  forwarder->stats->answers_across_us += MAX (0, g_get_monotonic_time () - forward->sent_across);

  reply.tid = forward->requester_tid;
  if (reply.type == RNDZ_MESSAGE_ERROR)
    count_error (forwarder, reply.code);
  else if (reply.type == RNDZ_MESSAGE_REDIRECT)
    {
      g_strlcpy (reply.id, forward->target_id, sizeof reply.id);
      /* Candidates only if they fit in the request's size, as at home */
      if (forward->transport == RNDZ_TRANSPORT_UDP && reply.n_cands > 0)
        {
          char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
          gsize len = rndz_message_encode (&reply, buf, sizeof buf);

          if (len == 0 || len > forward->reply_limit)
            reply.n_cands = 0;
        }
      forwarder->stats->redirected++;
    }
  forward_reply (forwarder, forward, &reply);
  forward_free (forwarder, forward);
}

/*
 * rndz_forwarder_handle_cluster:
 *
 * A message from another node of the cluster (signed, checked by the
 * cluster): a request for one of our peers, or the answer to one of ours.
 */
void
rndz_forwarder_handle_cluster (RndzForwarder            *forwarder,
                               const RndzClusterMessage *message)
{
  switch (message->msg.type)
    {
    case RNDZ_MESSAGE_FSYNC:
      if (message->target[0] != '\0')
        handle_forward_from (forwarder, message);
      break;
    case RNDZ_MESSAGE_REDIRECT:
    case RNDZ_MESSAGE_ERROR:
      handle_answer_from (forwarder, message);
      break;
    default:
      break;
    }
}
