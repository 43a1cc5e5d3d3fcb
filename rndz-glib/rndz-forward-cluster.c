/* rndz-forward-cluster.c: forwarding requests across the nodes of a cluster
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-forward-internal.h"

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
  if (forward->relay)
    {
      rndz_message_init (&message.msg, RNDZ_MESSAGE_RELAY, forward->server_tid);
      g_strlcpy (message.msg.id, forward->requester_id, sizeof message.msg.id);
      g_strlcpy (message.msg.target, forward->target_id, sizeof message.msg.target);
      return rndz_cluster_send (forwarder->cluster, forward->node, &message);
    }
  rndz_message_init (&message.msg, RNDZ_MESSAGE_FSYNC, forward->server_tid);
  g_strlcpy (message.msg.id, forward->requester_id, sizeof message.msg.id);
  message.msg.addr = forward->requester_addr;
  message.msg.n_cands = forward->n_requester_cands;
  memcpy (message.msg.cands, forward->requester_cands, sizeof message.msg.cands);
  g_strlcpy (message.msg.fp, forward->requester_fp, sizeof message.msg.fp);
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
  rndz_forward_count_error (forwarder, code);
  rndz_forward_reply (forwarder, forward, &reply);
  rndz_forward_free (forwarder, forward);
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
  gboolean again;
  RndzForward *forward = rndz_forward_find_retransmission (forwarder, src, msg, &again);

  /* Sent on once the lookup said where */
  if (forward != NULL && forward->node[0] != '\0')
    send_across (forwarder, forward);
  return again;
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
  return rndz_forward_isync_fits (forwarder, src, msg, &stand_in, authenticated, reply_limit);
}

void
rndz_forward_across (RndzForwarder          *forwarder,
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

  forward = rndz_forward_add (forwarder, src, msg, authenticated, reply_limit);
  forward->lookup = rndz_cluster_lookup (forwarder->cluster, src->transport, msg->target,
                                         lookup_done_cb, forward);
  if (forward->lookup == NULL)
    answer_error (forwarder, forward, RNDZ_WIRE_ERROR_UNAVAILABLE);
}

/* The target's node: answers the origin, with the same tid it sent */
void
rndz_forward_answer_origin (RndzForwarder     *forwarder,
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
      if (rndz_forward_take (forwarder, &forward->requester_addr, &target->addr, forward->requester_id))
        rndz_forward_send_fsync (forwarder, target, forward);
      return;
    }
  /* The target's budgets, and its fairness among requesters, are kept
   * where the target is */
  wait = rndz_forward_isync_admit (forwarder, &request->msg.addr, &target->addr);
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
  g_strlcpy (isync.fp, request->msg.fp, sizeof isync.fp);
  src.transport = RNDZ_TRANSPORT_TCP;   /* not in the UDP retransmission table */
  forward = rndz_forward_add (forwarder, &src, &isync, request->msg.auth, G_MAXSIZE);
  forward->transport = request->transport;
  forward->remote = TRUE;
  forward->origin_tid = request->msg.tid;
  g_strlcpy (forward->node, request->origin, sizeof forward->node);
  g_hash_table_insert (forwarder->by_origin, g_steal_pointer (&key), forward);

  g_debug ("Forwarding request of “%s” from node %s to “%s”", isync.id, request->origin,
           isync.target);
  rndz_forward_send_fsync (forwarder, target, forward);
}

/* Relay requests across a cluster
 *
 * The session is on the requester's node (the origin), whose relay both
 * peers join: the target's node says where the target is registered (a
 * redirect), so that the relay knows the host its side joins from, then
 * passes the origin's session on to the target, naming the origin's
 * relay when the origin knows its public address.
 */

void
rndz_forwarder_set_relay_address (RndzForwarder  *forwarder,
                                  const RndzAddr *addr)
{
  if (addr != NULL)
    forwarder->relay_addr = *addr;
  else
    memset (&forwarder->relay_addr, 0, sizeof forwarder->relay_addr);
}

/* The origin: the answer to the requester, and the notice for the target */
static void
relay_across_messages (RndzForwarder *forwarder,
                       const char    *requester_id,
                       const char    *target_id,
                       guint32        requester_tid,
                       guint32        target_tid,
                       const char    *token,
                       gboolean       authenticated,
                       RndzMessage   *reply,
                       RndzMessage   *notice)
{
  rndz_message_init (reply, RNDZ_MESSAGE_SESSION, requester_tid);
  g_strlcpy (reply->id, target_id, sizeof reply->id);
  g_strlcpy (reply->token, token, sizeof reply->token);
  reply->port = rndz_relay_get_port (forwarder->relay);

  rndz_message_init (notice, RNDZ_MESSAGE_SESSION, target_tid);
  g_strlcpy (notice->id, requester_id, sizeof notice->id);
  g_strlcpy (notice->token, token, sizeof notice->token);
  notice->port = reply->port;
  notice->addr = forwarder->relay_addr;
  notice->auth = authenticated;
}

void
rndz_forward_relay_across (RndzForwarder          *forwarder,
              const RndzServerSource *src,
              const RndzMessage      *msg,
              gboolean                authenticated)
{
  char token[RNDZ_TOKEN_LEN + 1];
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzForwardKey key = { src->from, msg->tid };
  RndzMessage reply, notice;
  RndzRelaySession *session;
  RndzForward *forward;
  guint wait;

  /* Both sessions are paid for, the target's naming our relay */
  memset (token, '0', RNDZ_TOKEN_LEN);
  token[RNDZ_TOKEN_LEN] = '\0';
  relay_across_messages (forwarder, msg->id, msg->target, msg->tid, G_MAXUINT32, token,
                         authenticated, &reply, &notice);
  if (src->transport == RNDZ_TRANSPORT_UDP &&
      rndz_message_encode (&reply, buf, sizeof buf) +
      rndz_message_encode (&notice, buf, sizeof buf) > src->len)
    {
      forwarder->stats->amplification++;
      g_debug ("Not relaying for “%s”: %" G_GSIZE_FORMAT " bytes pay for no two sessions",
               msg->id, src->len);
      return;
    }

  /* The same request again: the same session, or still on its way */
  session = rndz_relay_find_request (forwarder->relay, src->transport, &src->from, msg->tid);
  if (session != NULL)
    {
      g_strlcpy (reply.token, rndz_relay_session_get_token (session), sizeof reply.token);
      rndz_server_io_reply (forwarder->io, src, &reply);
      return;
    }
  if (src->transport == RNDZ_TRANSPORT_UDP && g_hash_table_contains (forwarder->by_request, &key))
    return;

  wait = rndz_rate_limit_wait_ms (forwarder->requester_limit, &src->from, g_get_monotonic_time ());
  if (wait > 0 || g_hash_table_size (forwarder->forwards) >= MAX_FORWARDS)
    {
      forwarder->stats->rate_limited++;
      rndz_server_io_refuse (forwarder->io, src, msg->tid,
                             wait > 0 ? RNDZ_WIRE_ERROR_RATE_LIMITED : RNDZ_WIRE_ERROR_SERVER_FULL,
                             wait);
      return;
    }
  rndz_rate_limit_take (forwarder->requester_limit, &src->from, g_get_monotonic_time ());

  forward = rndz_forward_add (forwarder, src, msg, authenticated, G_MAXSIZE);
  forward->relay = TRUE;
  forward->lookup = rndz_cluster_lookup (forwarder->cluster, src->transport, msg->target,
                                         lookup_done_cb, forward);
  if (forward->lookup == NULL)
    answer_error (forwarder, forward, RNDZ_WIRE_ERROR_UNAVAILABLE);
}

/* The target's node: where the target is, for the origin's session */
static void
relay_from (RndzForwarder            *forwarder,
            const RndzClusterMessage *request)
{
  RndzPeer *target = rndz_registry_lookup (forwarder->registry, request->transport,
                                           request->target);
  RndzClusterMessage answer = { { 0 } };
  guint wait;

  if (target == NULL)
    {
      answer_origin_error (forwarder, request, RNDZ_WIRE_ERROR_PEER_NOT_FOUND, 0);
      return;
    }
  /* The target's budget, as for a session of our own */
  wait = rndz_rate_limit_wait_ms (forwarder->target_limit, &target->addr, g_get_monotonic_time ());
  if (wait > 0)
    {
      forwarder->stats->rate_limited++;
      answer_origin_error (forwarder, request, RNDZ_WIRE_ERROR_RATE_LIMITED, wait);
      return;
    }

  g_strlcpy (answer.origin, rndz_cluster_get_node (forwarder->cluster), sizeof answer.origin);
  answer.transport = request->transport;
  rndz_message_init (&answer.msg, RNDZ_MESSAGE_REDIRECT, request->msg.tid);
  g_strlcpy (answer.msg.id, target->id, sizeof answer.msg.id);
  answer.msg.addr = target->addr;
  rndz_cluster_send (forwarder->cluster, request->origin, &answer);
}

/* The origin: the target's node said where the target is */
static void
relay_open_across (RndzForwarder     *forwarder,
                   RndzForward       *forward,
                   const RndzMessage *where)
{
  RndzClusterMessage message = { { 0 } };
  RndzRelaySession *session;
  RndzMessage reply;

  if (where->addr.family != forward->requester_addr.family)
    {
      answer_error (forwarder, forward, RNDZ_WIRE_ERROR_ADDRESS_FAMILY);
      return;
    }
  if (forwarder->relay == NULL)
    {
      answer_error (forwarder, forward, RNDZ_WIRE_ERROR_NO_RELAY);
      return;
    }

  session = rndz_relay_open (forwarder->relay, forward->transport, &forward->requester_addr,
                             forward->requester_tid, forward->requester_id, forward->target_id,
                             &where->addr, rndz_forward_new_tid (forwarder));
  if (session == NULL)
    {
      g_debug ("Cannot relay for “%s”: no session left", forward->requester_id);
      answer_error (forwarder, forward, RNDZ_WIRE_ERROR_SERVER_FULL);
      return;
    }

  relay_across_messages (forwarder, forward->requester_id, forward->target_id,
                         forward->requester_tid, rndz_relay_session_get_target_tid (session),
                         rndz_relay_session_get_token (session), forward->authenticated,
                         &reply, &message.msg);
  rndz_forward_reply (forwarder, forward, &reply);

  g_strlcpy (message.origin, rndz_cluster_get_node (forwarder->cluster), sizeof message.origin);
  message.transport = forward->transport;
  g_strlcpy (message.target, forward->target_id, sizeof message.target);
  rndz_cluster_send (forwarder->cluster, forward->node, &message);
  rndz_forward_free (forwarder, forward);
}

/* The target's node: the origin's session, for the target */
static void
session_from (RndzForwarder            *forwarder,
              const RndzClusterMessage *notice)
{
  RndzPeer *target = rndz_registry_lookup (forwarder->registry, notice->transport,
                                           notice->target);

  if (target == NULL ||
      !rndz_rate_limit_take (forwarder->target_limit, &target->addr, g_get_monotonic_time ()))
    return;

  rndz_registry_send (forwarder->registry, target, &notice->msg);
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

  if (forward->relay && reply.type == RNDZ_MESSAGE_REDIRECT)
    {
      relay_open_across (forwarder, forward, &answer->msg);
      return;
    }

  reply.tid = forward->requester_tid;
  if (reply.type == RNDZ_MESSAGE_ERROR)
    rndz_forward_count_error (forwarder, reply.code);
  else if (reply.type == RNDZ_MESSAGE_REDIRECT)
    {
      g_strlcpy (reply.id, forward->target_id, sizeof reply.id);
      reply.seen = forward->requester_addr;
      /* Candidates and fingerprint only if they fit, as at home */
      rndz_forward_fit_redirect (forward, &reply);
      forwarder->stats->redirected++;
    }
  rndz_forward_reply (forwarder, forward, &reply);
  rndz_forward_free (forwarder, forward);
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
    case RNDZ_MESSAGE_RELAY:
      if (message->target[0] != '\0')
        relay_from (forwarder, message);
      break;
    case RNDZ_MESSAGE_SESSION:
      if (message->target[0] != '\0')
        session_from (forwarder, message);
      break;
    case RNDZ_MESSAGE_REDIRECT:
    case RNDZ_MESSAGE_ERROR:
      handle_answer_from (forwarder, message);
      break;
    default:
      break;
    }
}
