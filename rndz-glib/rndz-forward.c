/* rndz-forward.c: how RndzServer forwards requests between peers
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-forward-internal.h"

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

void
rndz_forward_free (RndzForwarder *forwarder,
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
  g_free (forward->redirect);
  g_free (forward);
}

/* Forgets every request, unanswered */
void
rndz_forwarder_clear (RndzForwarder *forwarder)
{
  while (forwarder->queue.head != NULL)
    rndz_forward_free (forwarder, forwarder->queue.head->data);
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

/* Counts an error answer to a requester by its outcome (the statistics
 * of rndz_server_get_statistics()) */
void
rndz_forward_count_error (RndzForwarder *forwarder,
                          RndzWireError  code)
{
  if (code == RNDZ_WIRE_ERROR_PEER_NOT_FOUND)
    forwarder->stats->not_found++;
  else if (code == RNDZ_WIRE_ERROR_PEER_NO_ANSWER)
    forwarder->stats->no_answer++;
  else if (code == RNDZ_WIRE_ERROR_UNAVAILABLE)
    forwarder->stats->unavailable++;
}

void
rndz_forward_reply (RndzForwarder     *forwarder,
               RndzForward       *forward,
               const RndzMessage *msg)
{
  if (forward->remote)
    rndz_forward_answer_origin (forwarder, forward, msg);
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

      /* Answered: kept only for copies of its isync */
      if (forward->redirect != NULL)
        {
          rndz_forward_free (forwarder, forward);
          continue;
        }

      g_debug ("“%s” did not answer the request of “%s”", forward->target_id, forward->requester_id);
      /* A request from another node: that node answers its requester */
      if (!forward->remote)
        {
          rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, forward->requester_tid);
          reply.code = forward->lookup != NULL ? RNDZ_WIRE_ERROR_UNAVAILABLE
                                               : RNDZ_WIRE_ERROR_PEER_NO_ANSWER;
          rndz_forward_count_error (forwarder, reply.code);
          rndz_forward_reply (forwarder, forward, &reply);
        }
      rndz_forward_free (forwarder, forward);
    }
}

/* Rate limits */

/* An fsync is the one message the server sends to someone who did not
 * ask for it, so it is rate limited twice: by who asks, and by whom it
 * goes to. */
gboolean
rndz_forward_take (RndzForwarder  *forwarder,
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
guint
rndz_forward_isync_admit (RndzForwarder  *forwarder,
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
  guint wait = rndz_forward_isync_admit (forwarder, &src->from, &target->addr);

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

guint32
rndz_forward_new_tid (RndzForwarder *forwarder)
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
      rndz_forward_count_error (forwarder, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
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
            const char     *fp,
            gboolean        authenticated)
{
  rndz_message_init (fsync, RNDZ_MESSAGE_FSYNC, server_tid);
  g_strlcpy (fsync->id, requester_id, sizeof fsync->id);
  fsync->addr = *requester_addr;
  fsync->n_cands = n_cands;
  memcpy (fsync->cands, cands, n_cands * sizeof (RndzAddr));
  g_strlcpy (fsync->fp, fp, sizeof fsync->fp);
  fsync->auth = authenticated;
}

/* Sends the request on to its target */
void
rndz_forward_send_fsync (RndzForwarder *forwarder,
            RndzPeer      *target,
            RndzForward   *forward)
{
  RndzMessage fsync;

  fsync_init (&fsync, forward->server_tid, forward->requester_id, &forward->requester_addr,
              forward->n_requester_cands, forward->requester_cands, forward->requester_fp,
              forward->authenticated);
  forwarder->stats->forwarded++;

  rndz_registry_send (forwarder->registry, target, &fsync);
}

/* Over UDP an isync pays for all it causes, so that no request makes
 * the server send more bytes than it got, to anyone: the fsync to the
 * target, and the answer (a redirect without candidates, or
 * peer-no-answer; candidates go only if they fit too, see
 * handle_rsync). Sets @reply_limit to what is left for the answer. */
gboolean
rndz_forward_isync_fits (RndzForwarder          *forwarder,
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
  fsync_init (&fsync, G_MAXUINT32, msg->id, &src->from, msg->n_cands, msg->cands, msg->fp,
              authenticated);
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

/*
 * rndz_forward_find_retransmission:
 * @again: (out): whether @msg is a request sent again
 *
 * The same request again over UDP (same source and tid): its fsync, or
 * the answer to it, was lost. A tid used again for another target gets
 * bad-request.
 *
 * Returns: the pending request to send on again, or %NULL
 */
RndzForward *
rndz_forward_find_retransmission (RndzForwarder          *forwarder,
                                  const RndzServerSource *src,
                                  const RndzMessage      *msg,
                                  gboolean               *again)
{
  RndzForwardKey key = { src->from, msg->tid };
  RndzForward *forward = NULL;

  if (src->transport == RNDZ_TRANSPORT_UDP)
    forward = g_hash_table_lookup (forwarder->by_request, &key);
  *again = forward != NULL;
  if (forward != NULL && !g_str_equal (forward->target_id, msg->target))
    {
      rndz_server_io_reply_error (forwarder->io, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
      return NULL;
    }
  return forward;
}

/* Returns TRUE if @msg was a retransmission, and is handled.
 *
 * Answered already: the redirect was lost, and goes again, paid for by
 * this copy (no fsync goes with it). Still pending: the fsync or the
 * rsync was lost, and the fsync goes again, paid for by this copy too.
 * A copy is not a new request: the target's budgets, which the first
 * paid, are not asked again; the requester's own budget is, and a
 * request gets at most MAX_FSYNC_COPIES copies, so that no source turns
 * one admitted request into a stream towards the target. Over the
 * limits it goes unanswered, not refused. */
static gboolean
isync_retransmitted (RndzForwarder          *forwarder,
                     const RndzServerSource *src,
                     const RndzMessage      *msg,
                     RndzPeer               *target)
{
  gboolean again;
  RndzForward *forward = rndz_forward_find_retransmission (forwarder, src, msg, &again);

  if (forward == NULL)
    return again;

  if (forward->redirect != NULL)
    {
      g_debug ("Sending the redirect for “%s” again", msg->id);
      rndz_server_io_send_udp (forwarder->io, &src->from, forward->redirect,
                               MIN (forward->reply_limit, src->len));
      return TRUE;
    }

  if (forward->fsync_copies >= MAX_FSYNC_COPIES ||
      !rndz_rate_limit_take (forwarder->requester_limit, &src->from, g_get_monotonic_time ()))
    {
      forwarder->stats->rate_limited++;
      g_debug ("Not forwarding the request of “%s” again: rate limited", msg->id);
      return TRUE;
    }

  forward->fsync_copies++;
  rndz_forward_send_fsync (forwarder, target, forward);
  return TRUE;
}

RndzForward *
rndz_forward_add (RndzForwarder          *forwarder,
             const RndzServerSource *src,
             const RndzMessage      *msg,
             gboolean                authenticated,
             gsize                   reply_limit)
{
  RndzForward *forward = g_new0 (RndzForward, 1);

  forward->server_tid = rndz_forward_new_tid (forwarder);
  forward->requester_tid = msg->tid;
  forward->reply_limit = reply_limit;
  forward->authenticated = authenticated;
  forward->transport = src->transport;
  forward->requester_addr = src->from;
  forward->n_requester_cands = msg->n_cands;
  memcpy (forward->requester_cands, msg->cands, sizeof forward->requester_cands);
  g_strlcpy (forward->requester_fp, msg->fp, sizeof forward->requester_fp);
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
      rndz_forward_across (forwarder, src, msg, authenticated);
      return;
    }

  target = lookup_target (forwarder, src, msg);
  if (target == NULL || !rndz_forward_isync_fits (forwarder, src, msg, target, authenticated, &reply_limit) ||
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

  forward = rndz_forward_add (forwarder, src, msg, authenticated, reply_limit);
  g_debug ("Forwarding request of “%s” to “%s”", msg->id, msg->target);
  rndz_forward_send_fsync (forwarder, target, forward);
}

/* rsync → redirect */

/* Over UDP, a redirect must fit in what its request paid for. The
 * requester's own address goes first if it does not (a request is not
 * padded for it: it fits in the room paid for candidates, which few
 * targets use up). A request padded too little for the target's
 * candidates (a peer of an older version) still gets the observed
 * address; one too small for the target's fingerprint asked for no
 * secure connection, and gets none. A secure request always pays for
 * candidates and fingerprint (rndz_message_max_reply_size). */
void
rndz_forward_fit_redirect (const RndzForward *forward,
                           RndzMessage       *redirect)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  if (forward->transport != RNDZ_TRANSPORT_UDP)
    return;
  len = rndz_message_encode (redirect, buf, sizeof buf);
  if (len > 0 && len <= forward->reply_limit)
    return;
  memset (&redirect->seen, 0, sizeof redirect->seen);
  len = rndz_message_encode (redirect, buf, sizeof buf);
  if (len > 0 && len <= forward->reply_limit)
    return;
  redirect->n_cands = 0;
  len = rndz_message_encode (redirect, buf, sizeof buf);
  if (len == 0 || len > forward->reply_limit)
    redirect->fp[0] = '\0';
}

void
rndz_forwarder_handle_rsync (RndzForwarder          *forwarder,
                             const RndzServerSource *src,
                             const RndzMessage      *msg)
{
  RndzForward *forward = g_hash_table_lookup (forwarder->forwards, GUINT_TO_POINTER (msg->tid));
  RndzMessage redirect;
  RndzPeer *target;

  /* A copy of an rsync already taken (the target sends it again until
   * the requester's check shows the redirect came) changes nothing */
  if (forward == NULL || forward->redirect != NULL ||
      forward->transport != src->transport || forward_sent_across (forward) ||
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
  memcpy (redirect.fp, msg->fp, sizeof redirect.fp);
  /* The requester learns whether its NAT kept its port */
  if (!forward->remote)
    redirect.seen = forward->requester_addr;
  rndz_forward_fit_redirect (forward, &redirect);
  /* Across a cluster, the origin counts it when the redirect gets there */
  if (!forward->remote)
    forwarder->stats->redirected++;
  rndz_forward_reply (forwarder, forward, &redirect);

  /* Over UDP the redirect may be lost: the requester's copies of its
   * isync get it again until the request's deadline */
  if (forward->transport == RNDZ_TRANSPORT_UDP && !forward->remote)
    forward->redirect = g_memdup2 (&redirect, sizeof redirect);
  else
    rndz_forward_free (forwarder, forward);
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

  if (!rndz_forward_take (forwarder, &src->from, &target->addr, request->id))
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
                             rndz_forward_new_tid (forwarder));
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

  /* The target at another node: our relay, its node tells it */
  if (forwarder->cluster != NULL &&
      rndz_registry_lookup (forwarder->registry, src->transport, msg->target) == NULL)
    {
      rndz_forward_relay_across (forwarder, src, msg, authenticated);
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

