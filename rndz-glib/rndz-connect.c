/* rndz-connect.c: reaching a peer by id
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include "rndz-connect-op-private.h"
#include "rndz-channel-private.h"
#include "rndz-connect-attempt-private.h"
#include "rndz-hard-nat-private.h"
#include "rndz-i18n-private.h"
#include "rndz-relay-join-private.h"
#include "rndz-request-private.h"
#include "rndz-socket-private.h"
#include "rndz-udp-private.h"
#include "rndz-udp-filter-private.h"
#include "rndz-source-private.h"

/* Reaching a peer by id takes these phases:
 *
 * 1. Resolve the servers.
 * 2. Bind a local port P; every socket of the operation is bound to it.
 * 3. Ask every server for the peer (isync) from P: over UDP from one
 *    socket per server, connected to it, so that an ICMP error tells at
 *    once that nobody serves there; over TCP on one connection per
 *    server. UDP requests are sent again with growing delays until they
 *    are answered.
 * 4. The first redirect names the peer's address as the server sees it,
 *    and the local addresses the peer offers (its candidates). Over UDP,
 *    the peer's own punch (an rsync datagram from its port) may arrive
 *    first, or from yet another address, and adds that one.
 * 5. Every path is verified before it is used, and the first that works
 *    wins. UDP: checks go to every address of the peer, paced, and the
 *    first confirm names the path (or the peer's punch does, when it
 *    gets to us: it came that way); a new socket on P, connected to it,
 *    sends the use and is the result once the peer has answered: nothing
 *    the unconnected socket received, from anyone, reaches the
 *    application, and the socket's filter drops the protocol's messages
 *    (rndz-udp-filter.c). TCP: connect from P to every address
 *    while the peer connects from its port to ours (simultaneous opens),
 *    again and again; the first connection that opens gets a "use" frame
 *    that tells the peer which one to keep.
 *    UDP, when no path has answered after a while and one side's NAT
 *    seems to give each destination a port of its own: the hard side
 *    opens many mappings and the other probes for them
 *    (rndz-hard-nat.c).
 * 6. If no path works within the direct timeout, the server that sent
 *    the redirect is asked to relay (if the client allows it): its
 *    session names a token and the relay port, which both peers join
 *    (rndz-relay-join.c). Over TCP, with no relay to turn to, the direct
 *    paths go on until the timeout instead ("Without a relay" below).
 *
 * Asking the servers (3, 4, and 6's relay request) is RndzRequest's
 * (rndz-request.c): it collects the servers' errors, so the operation
 * fails early only when every server has answered, and then with the
 * most telling error. This file finds the path (5, 6's join): over TCP
 * itself, over UDP with rndz-connect-udp.c.
 *
 * The operation lives in the GTask's task data; every callback holds the
 * task (op_hold()) while it runs, and op_stop() releases every source
 * and socket but the result as soon as the task has it.
 */

/* TCP: connecting towards one of the peer's addresses */
typedef struct
{
  ConnectOp *op;
  RndzAddr addr;
  RndzPath path;
  GSocket *socket;
  RndzConnectAttempt *attempt;
  GSource *retry;
  guint delay_ms;
} PeerAttempt;


static void
peer_attempt_free (PeerAttempt *attempt)
{
  g_clear_pointer (&attempt->attempt, rndz_connect_attempt_free);
  rndz_source_clear (&attempt->retry);
  if (attempt->socket != NULL)
    g_socket_close (attempt->socket, NULL);
  g_clear_object (&attempt->socket);
  g_free (attempt);
}

/* Releases the paths: everything but the request, the timeout and the
 * result */
static void
op_stop_paths (ConnectOp *op)
{
  rndz_source_clear (&op->source);
  rndz_source_clear (&op->chosen_source);
  if (op->chosen_socket != NULL)
    g_socket_close (op->chosen_socket, NULL);
  g_clear_object (&op->chosen_socket);
  rndz_source_clear (&op->direct_timeout);
  rndz_source_clear (&op->check_timer);
  rndz_source_clear (&op->other_checks);
  rndz_source_clear (&op->hard_timer);
  rndz_source_clear (&op->early_timer);
  g_clear_pointer (&op->prober, rndz_prober_free);
  g_clear_pointer (&op->spray, rndz_spray_free);
  if (op->join_cancellable != NULL)
    g_cancellable_cancel (op->join_cancellable);
  if (op->attempts != NULL)
    g_ptr_array_set_size (op->attempts, 0);
}

/* Releases everything but the result */
static void
op_stop (ConnectOp *op)
{
  rndz_source_clear (&op->timeout);
  rndz_source_clear (&op->cancel);
  op_stop_paths (op);
  g_clear_pointer (&op->request, rndz_request_free);
}

static void
op_free (ConnectOp *op)
{
  op_stop (op);
  if (op->held != NULL)
    g_socket_close (op->held, NULL);
  g_clear_object (&op->held);
  g_clear_pointer (&op->attempts, g_ptr_array_unref);
  g_clear_object (&op->join_cancellable);
  g_clear_error (&op->relay_error);
  if (op->socket != NULL)
    g_socket_close (op->socket, NULL);
  g_clear_object (&op->socket);
  g_main_context_unref (op->context);
  rndz_peer_context_unref (op->peer);
  g_free (op);
}

/* g_task_return_*() may run the caller's callback at once, and the
 * caller may drop the last reference to the task (and so to the
 * operation): every callback holds one while it runs. */
void
rndz_connect_op_return_error (ConnectOp *op,
                              GError    *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&op->task);

  if (task == NULL)
    {
      g_error_free (error);
      return;
    }

  op->phase = PHASE_DONE;
  op_stop (op);
  g_task_return_error (task, error);
}

/* A secure connection returns only with the target's fingerprint: a
 * path that worked before the redirect came (the peer's punch showed
 * the way) waits for it, while the request goes on. Returns TRUE if
 * @socket waits. */
static gboolean
op_hold_result (ConnectOp *op,
                GSocket   *socket,
                RndzPath   path)
{
  if (op->security == NULL || op->security->peer_fp[0] != '\0')
    return FALSE;

  g_debug ("A path to “%s” works; waiting for its fingerprint", op->peer_id);
  op->phase = PHASE_HELD;
  op->held = g_object_ref (socket);
  op->held_path = path;
  op_stop_paths (op);
  return TRUE;
}

void
rndz_connect_op_return_udp (ConnectOp *op,
                            GSocket   *socket,
                            RndzPath   path)
{
  g_autoptr(GTask) task = NULL;

  if (op_hold_result (op, socket, path))
    return;

  task = g_steal_pointer (&op->task);

  op->phase = PHASE_DONE;
  op_stop (op);
  rndz_socket_set_path (socket, path);
  g_task_return_pointer (task, g_object_ref (socket), g_object_unref);
}

static void
op_return_tcp (ConnectOp *op,
               GSocket   *socket,
               RndzPath   path)
{
  g_autoptr(GTask) task = NULL;
  GSocketConnection *connection;

  if (op_hold_result (op, socket, path))
    return;

  task = g_steal_pointer (&op->task);
  op->phase = PHASE_DONE;
  op_stop (op);
  g_socket_set_blocking (socket, TRUE);
  rndz_socket_set_path (socket, path);
  connection = g_socket_connection_factory_create_connection (socket);
  g_task_return_pointer (task, connection, g_object_unref);
}

/* Paths to the peer */

int
rndz_connect_op_find_path (ConnectOp      *op,
                           const RndzAddr *addr)
{
  for (guint i = 0; i < op->n_paths; i++)
    if (rndz_addr_equal (&op->paths[i], addr))
      return i;
  return -1;
}

gboolean rndz_connect_try_direct = TRUE;

/* Returns TRUE if @addr is new */
gboolean
rndz_connect_op_add_path (ConnectOp      *op,
                          const RndzAddr *addr,
                          RndzPath        kind)
{
  int known = rndz_connect_op_find_path (op, addr);

  /* A private address is on a network we share (a punch may show one
   * before the redirect says it is a candidate) */
  if (rndz_addr_is_private (addr))
    kind = RNDZ_PATH_LOCAL;

  /* A punch may have shown a local address first: it is local */
  if (known >= 0 && kind == RNDZ_PATH_LOCAL)
    op->path_kinds[known] = RNDZ_PATH_LOCAL;

  if (!rndz_connect_try_direct || op->n_paths == MAX_PATHS || known >= 0)
    return FALSE;

  /* Only addresses the socket can reach */
  if (addr->family == 6 && op->family != G_SOCKET_FAMILY_IPV6)
    return FALSE;

  op->paths[op->n_paths] = *addr;
  op->path_kinds[op->n_paths] = kind;
  op->n_paths++;
  return TRUE;
}

/* The redirect's addresses: the one the server saw is direct, even when
 * the peer offers it as a local one too (a public address without NAT,
 * as IPv6 often has). Returns TRUE if any is new. */
gboolean
rndz_connect_op_add_redirect_paths (ConnectOp         *op,
                                    const RndzMessage *redirect)
{
  gboolean added = rndz_connect_op_add_path (op, &redirect->addr, RNDZ_PATH_DIRECT);

  op->peer_addr = redirect->addr;
  op->peer_rewrites = rndz_nat_rewrites_port (&redirect->addr, redirect->cands, redirect->n_cands);
  op->we_rewrite = redirect->seen.family != 0 &&
                   rndz_nat_rewrites_port (&redirect->seen, op->cands, op->n_cands);
  for (guint i = 0; i < redirect->n_cands; i++)
    if (!rndz_addr_equal (&redirect->cands[i], &redirect->addr))
      added |= rndz_connect_op_add_path (op, &redirect->cands[i], RNDZ_PATH_LOCAL);

  return added;
}

static void op_start_relay (ConnectOp *op);

/* Without a relay
 *
 * Over TCP a lost SYN goes again only when the kernel sends it, a second
 * later at best (rndz-connect-attempt.c): through loss, a direct timeout
 * of 3 s leaves each SYN of the crossing three chances, and now and then
 * all are lost (through two NATs that each lose 20 %, about one
 * connection in 50). With a relay to turn to, that costs a detour; with
 * none, the connection. So when there is none (the client's relay is
 * off, or the server answers that it does not relay), the direct paths
 * go on until the timeout, and the connection fails only then, with the
 * error it would have had at the direct timeout. Not when a NAT on the
 * way rewrites ports: then a TCP path is unlikely (the rewritten side's
 * observed address leads nowhere), and the failure still comes at the
 * direct timeout. The listener punches towards a requester for its own
 * timeout (rndz-listener-requests.c), the same by default: it cannot
 * know the requester's, nor whether it has a relay. UDP is left as it
 * is: its checks are paced by us, many within the direct timeout, and
 * the listener's half of a UDP path ends at its own direct timeout. */
static gboolean
op_direct_may_go_on (ConnectOp *op)
{
  return op->transport == RNDZ_TRANSPORT_TCP && !op->peer_rewrites && !op->we_rewrite &&
         op->attempts != NULL && op->attempts->len > 0;
}

/* Nothing to fall back on: @error is what the operation fails with at
 * its timeout, unless a direct path works by then */
static void
op_direct_only (ConnectOp *op,
                GError    *error)
{
  g_debug ("No relay for “%s”: the direct paths go on until the timeout (%s)",
           op->peer_id, error->message);
  op->direct_only = TRUE;
  g_clear_error (&op->relay_error);
  op->relay_error = error;
}

/* TCP at the direct timeout, when the direct paths may go on: the relay
 * is asked for while they do, and they stop when its session comes */
static void
op_direct_timeout_tcp (ConnectOp *op)
{
  if (op->relay_error != NULL)
    op_direct_only (op, g_steal_pointer (&op->relay_error));
  else if (!op->peer->relay || rndz_request_get_server (op->request) == NULL)
    op_direct_only (op, g_error_new (RNDZ_ERROR, RNDZ_ERROR_NO_PATH,
                                     _("No direct path to peer “%s” works"), op->peer_id));
  else
    op_start_relay (op);
}

static gboolean
op_direct_timeout_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->direct_timeout, g_source_unref);
  if (op_direct_may_go_on (op))
    {
      op_direct_timeout_tcp (op);
      return G_SOURCE_REMOVE;
    }

  rndz_source_clear (&op->check_timer);
  rndz_source_clear (&op->hard_timer);
  g_clear_pointer (&op->prober, rndz_prober_free);
  g_clear_pointer (&op->spray, rndz_spray_free);
  if (op->attempts != NULL)
    g_ptr_array_set_size (op->attempts, 0);

  if (op->relay_error != NULL)
    {
      rndz_connect_op_return_error (op, g_steal_pointer (&op->relay_error));
      return G_SOURCE_REMOVE;
    }
  if (!op->peer->relay || rndz_request_get_server (op->request) == NULL)
    {
      rndz_connect_op_return_error (op, g_error_new (RNDZ_ERROR, RNDZ_ERROR_NO_PATH,
                                    _("No direct path to peer “%s” works"), op->peer_id));
      return G_SOURCE_REMOVE;
    }

  /* Asked for early: the relay is the only way left */
  if (op->relay_early)
    {
      op->phase = op->join_cancellable != NULL ? PHASE_RELAY_JOINING : PHASE_RELAY;
      return G_SOURCE_REMOVE;
    }
  op_start_relay (op);
  return G_SOURCE_REMOVE;
}

/* The peer is known: direct paths have a while to work */
void
rndz_connect_op_found_peer (ConnectOp *op)
{
  if (op->phase >= PHASE_CHECKING)
    return;

  op->phase = PHASE_CHECKING;
  /* The redirect (or the punch) answered the isync. A secure connection
   * needs the redirect, for the target's fingerprint: the request goes
   * on until it comes. */
  if (op->security == NULL)
    rndz_request_found (op->request);
  op->direct_timeout = rndz_timeout_add (op->context, op->peer->direct_timeout_ms,
                                         op_direct_timeout_cb, op);
  if (op->transport == RNDZ_TRANSPORT_UDP && rndz_connect_try_direct)
    op->hard_timer = rndz_timeout_add (op->context, RNDZ_HARD_NAT_DELAY_MS,
                                       rndz_connect_op_hard_start_cb, op);
}

/* The relay */

static void
op_join_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ConnectOp *op = g_task_get_task_data (task);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = rndz_relay_join_finish (result, &error);
  if (op_is_done (op))
    {
      if (socket != NULL)
        g_socket_close (socket, NULL);
      return;
    }

  if (socket == NULL && op->phase < PHASE_RELAY)
    {
      /* Early: the direct paths go on */
      g_debug ("The early relay to “%s” failed: %s", op->peer_id, error->message);
      g_clear_error (&op->relay_error);
      op->relay_error = g_steal_pointer (&error);
      return;
    }
  if (socket == NULL)
    {
      rndz_connect_op_return_error (op, g_steal_pointer (&error));
      return;
    }

  g_debug ("Reached “%s” through the relay", op->peer_id);
  if (op->transport == RNDZ_TRANSPORT_UDP)
    rndz_connect_op_return_udp (op, socket, RNDZ_PATH_RELAYED);
  else
    op_return_tcp (op, socket, RNDZ_PATH_RELAYED);
}

static void
op_handle_session (ConnectOp         *op,
                   const RndzMessage *msg)
{
  RndzAddr relay = *rndz_request_get_server (op->request);
  gint64 left;

  if (!g_str_equal (msg->id, op->peer_id) || op->join_cancellable != NULL ||
      (op->phase != PHASE_RELAY && !op->relay_early))
    return;

  /* Early, the direct paths go on beside the join; late, TCP's went on
   * until now (op_direct_timeout_tcp()) */
  if (op->phase == PHASE_RELAY)
    {
      op->phase = PHASE_RELAY_JOINING;
      g_ptr_array_set_size (op->attempts, 0);
    }
  rndz_request_found (op->request);
  relay.port = msg->port;
  /* A server of a cluster may name another node's relay */
  if (msg->addr.family == relay.family)
    relay = msg->addr;
  left = op->peer->timeout_ms;
  op->join_cancellable = g_cancellable_new ();
  rndz_relay_join_async (op->transport, op->family, &relay, op->peer->id,
                         msg->token, left, op->context, op->join_cancellable,
                         op_join_cb, op_hold (op));
}

/* The server's answer to the relay request, or its error */
static void
op_handle_relay_reply (ConnectOp         *op,
                       const RndzMessage *msg)
{
  if (op->direct_only)
    return;
  if (msg->type == RNDZ_MESSAGE_SESSION)
    op_handle_session (op, msg);
  else if (msg->type == RNDZ_MESSAGE_ERROR && op->phase == PHASE_RELAY &&
           msg->code == RNDZ_WIRE_ERROR_NO_RELAY && op_direct_may_go_on (op))
    op_direct_only (op, rndz_message_error_to_gerror (msg, op->peer_id));
  else if (msg->type == RNDZ_MESSAGE_ERROR && op->phase == PHASE_RELAY)
    rndz_connect_op_return_error (op, rndz_message_error_to_gerror (msg, op->peer_id));
  else if (msg->type == RNDZ_MESSAGE_ERROR && op->relay_early && op->join_cancellable == NULL &&
           op->relay_error == NULL)
    {
      /* Early: the direct paths go on */
      op->relay_error = rndz_message_error_to_gerror (msg, op->peer_id);
      g_debug ("No early relay to “%s”: %s", op->peer_id, op->relay_error->message);
    }
}

/* The early relay
 *
 * When a NAT on the way rewrites ports, the peer's (its observed port is
 * none of its candidates') or ours (the redirect's "seen": the server
 * saw us at a port none of ours has), a direct path is unlikely: over
 * TCP the rewritten side's observed address leads nowhere, over UDP only
 * the hard-NAT phase may find one, and never when both rewrite (a
 * registration made before its NAT turned may hide the peer's). Waiting
 * for the direct timeout then only delays the first byte by seconds. So
 * the relay is asked for beside the direct paths, after a head start
 * that lets those that work win (a candidate on the same network
 * connects within milliseconds; the hard-NAT phase often within a
 * second): the first path that works is the result, and the other
 * attempts stop. */

#define EARLY_RELAY_TCP_MS 200
#define EARLY_RELAY_UDP_MS 800

static gboolean
op_early_relay_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->early_timer, g_source_unref);
  if (op->phase != PHASE_CHECKING || op->relay_early)
    return G_SOURCE_REMOVE;

  g_debug ("%s rewrites ports: asking for the relay beside direct paths to “%s”",
           op->peer_rewrites ? "The peer's NAT" : "Our NAT", op->peer_id);
  op->relay_early = TRUE;
  /* Its own tid: the checks go on with the operation's */
  rndz_request_relay (op->request, rndz_new_tid ());
  return G_SOURCE_REMOVE;
}

void
rndz_connect_op_maybe_relay_early (ConnectOp *op)
{
  if (!(op->peer_rewrites || op->we_rewrite) || !op->peer->relay || op->early_timer != NULL ||
      op->relay_early ||
      op->phase != PHASE_CHECKING || rndz_request_get_server (op->request) == NULL)
    return;

  op->early_timer = rndz_timeout_add (op->context,
                                      op->transport == RNDZ_TRANSPORT_TCP ? EARLY_RELAY_TCP_MS
                                                                          : EARLY_RELAY_UDP_MS,
                                      op_early_relay_cb, op);
}

static void
op_start_relay (ConnectOp *op)
{
  g_debug ("No direct path to “%s” works: asking for the relay", op->peer_id);
  op->phase = PHASE_RELAY;
  op->tid = rndz_new_tid ();
  rndz_request_relay (op->request, op->tid);
}

/* TCP */

static void peer_attempt_try (PeerAttempt *attempt);

static gboolean
peer_attempt_retry_cb (gpointer user_data)
{
  PeerAttempt *attempt = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (attempt->op);

  g_clear_pointer (&attempt->retry, g_source_unref);
  peer_attempt_try (attempt);
  return G_SOURCE_REMOVE;
}

/* Tells the peer that this connection is the one: it reads exactly this
 * frame before it hands the connection to its application. */
static gboolean
op_tcp_send_use (ConnectOp  *op,
                 GSocket    *socket,
                 GError    **error)
{
  char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage use;
  gsize len;
  gssize sent;

  op_init_peer_message (op, RNDZ_MESSAGE_USE, &use);
  len = rndz_message_encode_frame (&use, buf, sizeof buf);

  /* A fresh connection has room for a small frame in its send buffer */
  sent = g_socket_send (socket, buf, len, NULL, error);
  if (sent < 0)
    return FALSE;
  if ((gsize) sent != len)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           _("Could not send the whole frame"));
      return FALSE;
    }
  return TRUE;
}

static void
peer_attempt_connected_cb (GSocket      *socket,
                           const GError *error,
                           gpointer      user_data)
{
  PeerAttempt *attempt = user_data;
  ConnectOp *op = attempt->op;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  g_autoptr(GSocket) connected = g_steal_pointer (&attempt->socket);
  g_autoptr(GError) send_error = NULL;
  char text[RNDZ_ADDR_STRLEN];

  g_clear_pointer (&attempt->attempt, rndz_connect_attempt_free);

  if (error == NULL && op_tcp_send_use (op, connected, &send_error))
    {
      g_debug ("Connected to “%s” at %s", op->peer_id, rndz_addr_format (&attempt->addr, text));
      rndz_connect_attempt_hand_over (connected, op->context, RNDZ_CONNECT_RTO_CAP_KEPT_MS);
      op_return_tcp (op, connected, attempt->path);
      return;
    }

  /* The peer's SYN has not opened its NAT for us yet: again, soon */
  g_debug ("Connecting to “%s” at %s failed, trying again: %s", op->peer_id,
           rndz_addr_format (&attempt->addr, text),
           error != NULL ? error->message : send_error->message);
  g_socket_close (connected, NULL);
  attempt->retry = rndz_timeout_add (op->context, attempt->delay_ms, peer_attempt_retry_cb, attempt);
  attempt->delay_ms = MIN (attempt->delay_ms * 2, RNDZ_RETRY_MAX_MS);
}

static void
peer_attempt_try (PeerAttempt *attempt)
{
  ConnectOp *op = attempt->op;
  g_autoptr(GError) error = NULL;

  attempt->socket = rndz_peer_context_bind (op->peer, op->family, G_SOCKET_TYPE_STREAM,
                                      op->port, &error);
  if (attempt->socket == NULL)
    {
      rndz_connect_op_return_error (op, g_steal_pointer (&error));
      return;
    }

  attempt->attempt = rndz_connect_attempt_new (attempt->socket, &attempt->addr, op->context,
                                               peer_attempt_connected_cb, attempt);
}

/* Spare SYNs
 *
 * Our NAT lets the peer's SYNs in once a SYN of ours went out towards
 * it; through loss our SYN is lost as often as any packet, and the kernel
 * sends it again only after 1 s. So spare SYNs go first, from sockets on
 * our port closed at once, as the listener's do: any of them opens our
 * NAT, and the listener's next SYN gets in (it connects again half a
 * second after the request, rndz-listener-requests.c). Ours must not go
 * all the way, though: the peer's NAT is open for us by now (the
 * listener sent its own spares when the server asked for it), and a
 * spare reaching the peer would be answered, with an acknowledgement
 * that our socket would reset. Two hops take a spare out of our NAT (or
 * to the first router, which sends it on with one hop left), and the
 * next router drops it: at the nearest, the peer's NAT, which would have
 * to forward it. So only towards a peer behind a NAT (its observed
 * address is none of its own), and not behind ours (which would hand the
 * spares straight in). */
#define SPARE_SYNS 2
#define SPARE_SYN_TTL 2

static gboolean
redirect_needs_spares (const RndzMessage *redirect)
{
  if (redirect->n_cands == 0)
    return FALSE;
  for (guint i = 0; i < redirect->n_cands; i++)
    if (rndz_addr_same_host (&redirect->cands[i], &redirect->addr))
      return FALSE;
  if (redirect->seen.family != 0 && rndz_addr_same_host (&redirect->seen, &redirect->addr))
    return FALSE;
  return TRUE;
}

static void
op_tcp_send_spares (ConnectOp         *op,
                    const RndzMessage *redirect)
{
  if (!op_is_done (op) && redirect_needs_spares (redirect))
    rndz_connect_attempt_spare_syns (op->peer, op->family, op->port, &redirect->addr,
                                     SPARE_SYNS, SPARE_SYN_TTL);
}

/* Connects towards every address of the peer at once */
static void
op_tcp_redirected (ConnectOp         *op,
                   const RndzMessage *redirect)
{
  char text[RNDZ_ADDR_STRLEN];

  g_debug ("“%s” is at %s", op->peer_id, rndz_addr_format (&redirect->addr, text));
  rndz_connect_op_add_redirect_paths (op, redirect);
  rndz_connect_op_found_peer (op);
  rndz_connect_op_maybe_relay_early (op);
  op_tcp_send_spares (op, redirect);

  for (guint i = 0; i < op->n_paths && !op_is_done (op); i++)
    {
      PeerAttempt *attempt = g_new0 (PeerAttempt, 1);

      attempt->op = op;
      attempt->addr = op->paths[i];
      attempt->path = op->path_kinds[i];
      attempt->delay_ms = RNDZ_RETRY_INITIAL_MS / 4;
      g_ptr_array_add (op->attempts, attempt);
      peer_attempt_try (attempt);
    }
}

static void
op_tcp_start (ConnectOp *op)
{
  /* The first connection picks the port, the others share it */
  op->port = rndz_request_open (op->request, 0);
  if (op_is_done (op))
    return;

  op->n_cands = rndz_peer_context_get_candidates (op->peer, op->family, op->port, op->cands);
  rndz_request_send (op->request, op->cands, op->n_cands);
}
/* What the servers say */

/* A secure connection: the target's fingerprint, from its redirect.
 * Returns FALSE if the operation failed on it. */
static gboolean
op_take_fingerprint (ConnectOp         *op,
                     const RndzMessage *redirect)
{
  RndzConnectSecurity *security = op->security;
  g_autoptr(GSocket) held = NULL;

  if (security == NULL)
    return TRUE;

  if (redirect->fp[0] == '\0')
    {
      rndz_connect_op_return_error (op, g_error_new (RNDZ_ERROR, RNDZ_ERROR_NOT_SECURE,
                                    _("Peer “%s” offers no secure connection: it has "
                                    "no identity"), op->peer_id));
      return FALSE;
    }
  if (security->pin != NULL && !g_str_equal (security->pin, redirect->fp))
    {
      rndz_connect_op_return_error (op, g_error_new (RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH,
                                    _("Peer “%s” is not the one expected: its "
                                    "fingerprint is %s, not %s"),
                                    op->peer_id, redirect->fp, security->pin));
      return FALSE;
    }
  memcpy (security->peer_fp, redirect->fp, sizeof security->peer_fp);

  if (op->phase != PHASE_HELD)
    return TRUE;
  held = g_steal_pointer (&op->held);
  if (op->transport == RNDZ_TRANSPORT_UDP)
    rndz_connect_op_return_udp (op, held, op->held_path);
  else
    op_return_tcp (op, held, op->held_path);
  return FALSE;
}

static void
request_redirect_cb (RndzRequest       *request,
                     const RndzMessage *redirect,
                     gpointer           user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  if (!op_take_fingerprint (op, redirect))
    return;

  /* Over UDP the peer's punch may have come first */
  if (op->transport == RNDZ_TRANSPORT_UDP)
    rndz_connect_op_udp_redirected (op, redirect);
  else if (op->phase < PHASE_CHECKING)
    op_tcp_redirected (op, redirect);
}

static void
request_relay_reply_cb (RndzRequest       *request,
                        const RndzMessage *msg,
                        gpointer           user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  if (op->phase >= PHASE_RELAY || op->relay_early)
    op_handle_relay_reply (op, msg);
}

static void
request_failed_cb (RndzRequest *request,
                   GError      *error,
                   gpointer     user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  /* Once the relay's session came, its server has done its part; once it
   * said that it does not relay, too */
  if (op->phase == PHASE_RELAY_JOINING || op->join_cancellable != NULL || op->direct_only)
    {
      g_error_free (error);
      return;
    }
  /* The relay cannot be asked for: nothing to fall back on */
  if (op->phase == PHASE_RELAY && op_direct_may_go_on (op))
    {
      op_direct_only (op, error);
      return;
    }
  rndz_connect_op_return_error (op, error);
}

static const RndzRequestCallbacks request_callbacks = {
  request_redirect_cb,
  request_relay_reply_cb,
  request_failed_cb,
};

/* Starting */

static gboolean
op_timeout_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->timeout, g_source_unref);
  /* No direct path, and no relay: as at the direct timeout */
  if (op->direct_only)
    rndz_connect_op_return_error (op, g_steal_pointer (&op->relay_error));
  /* A server that requires a key drops what is not signed (and says so
   * at most once a second to an address) */
  else if ((op->request == NULL || rndz_request_get_server (op->request) == NULL) &&
           op->peer->key == NULL)
    rndz_connect_op_return_error (op, g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                  _("Timed out reaching peer “%s”: no server answered "
                                  "(the server may require a key)"), op->peer_id));
  else
    rndz_connect_op_return_error (op, g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                  _("Timed out reaching peer “%s”"), op->peer_id));
  return G_SOURCE_REMOVE;
}

static gboolean
op_cancelled_cb (GCancellable *cancellable,
                 gpointer      user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->cancel, g_source_unref);
  rndz_connect_op_return_error (op, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

static void
op_resolved_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ConnectOp *op = g_task_get_task_data (task);
  g_autoptr(GArray) addrs = NULL;
  g_autoptr(GError) error = NULL;

  addrs = rndz_resolve_servers_finish (result, &error);
  if (op_is_done (op))
    return;
  if (addrs == NULL)
    {
      rndz_connect_op_return_error (op, g_steal_pointer (&error));
      return;
    }

  op->phase = PHASE_REQUESTING;
  op->family = rndz_peer_context_pick_family (op->peer, addrs);
  op->request = rndz_request_new (op->peer, op->transport, op->family, addrs, op->peer_id,
                                  op->tid, op->deadline, &request_callbacks, op);
  if (op->security != NULL)
    rndz_request_set_fingerprint (op->request, op->peer->fingerprint);

  if (op->transport == RNDZ_TRANSPORT_UDP)
    rndz_connect_op_udp_start (op);
  else
    op_tcp_start (op);
}

void
rndz_connect_start (RndzPeerContext     *peer,
                    RndzTransport        transport,
                    const char          *peer_id,
                    RndzConnectSecurity *security,
                    GTask               *task)
{
  ConnectOp *op = g_new0 (ConnectOp, 1);
  GCancellable *cancellable = g_task_get_cancellable (task);

  op->task = task;
  op->peer = rndz_peer_context_ref (peer);
  op->context = g_main_context_ref (peer->context);
  op->transport = transport;
  op->security = security;
  op->tid = rndz_new_tid ();
  op->attempts = g_ptr_array_new_with_free_func ((GDestroyNotify) peer_attempt_free);
  g_strlcpy (op->peer_id, peer_id, sizeof op->peer_id);
  g_task_set_task_data (task, op, (GDestroyNotify) op_free);

  op->deadline = g_get_monotonic_time () + (gint64) peer->timeout_ms * 1000;
  op->timeout = rndz_timeout_add (op->context, peer->timeout_ms,
                                  op_timeout_cb, op);
  if (cancellable != NULL)
    {
      op->cancel = g_cancellable_source_new (cancellable);
      g_source_set_callback (op->cancel, G_SOURCE_FUNC (op_cancelled_cb), op, NULL);
      g_source_attach (op->cancel, op->context);
    }

  rndz_resolve_servers_async (peer, cancellable, op_resolved_cb, g_object_ref (task));
}
