/* rndz-connect-udp.c: the UDP paths to a peer we reach
 *
 * SPDX-License-Identifier: MIT
 *
 * Steps 4 and 5 of rndz-connect.c over UDP: checks to every address of
 * the peer, the path its punch shows, the use on a socket of its own,
 * and the hard-NAT phase (rndz-hard-nat.c) when no path answers
 * (doc/protocol.md, "UDP connectivity checks").
 */

#include "config.h"

#include <string.h>

#include "rndz-connect-op-private.h"
#include "rndz-i18n-private.h"
#include "rndz-peer-context-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"
#include "rndz-udp-private.h"
#include "rndz-udp-filter-private.h"

/* The path works both ways: the chosen socket is the application's. The
 * peer's first datagrams may be queued behind its answer already. */
static void
op_udp_found (ConnectOp      *op,
              const RndzAddr *addr,
              RndzPath        path)
{
  g_autoptr(GSocket) result = g_steal_pointer (&op->chosen_socket);
  char text[RNDZ_ADDR_STRLEN];

  op->chosen_on_punch = 0;

  g_debug ("Reached “%s” at %s", op->peer_id, rndz_addr_format (addr, text));
  rndz_udp_hand_over (result, TRUE);
  rndz_connect_op_return_udp (op, result, path);
}

/* A check to every address of the peer but @skip (if not NULL), from P */
static void
op_udp_send_checks (ConnectOp      *op,
                    const RndzAddr *skip)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage check;
  gsize len;

  op_init_peer_message (op, RNDZ_MESSAGE_CHECK, &check);
  len = rndz_message_encode (&check, buf, sizeof buf);

  for (guint i = 0; i < op->n_paths; i++)
    {
      g_autoptr(GSocketAddress) to = NULL;

      if (skip != NULL && rndz_addr_equal (&op->paths[i], skip))
        continue;
      to = rndz_addr_to_socket_address (&op->paths[i], op->family);
      if (to != NULL)
        rndz_udp_send (op->socket, to, buf, len, "check");
    }
}

static gboolean
op_udp_check_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->check_timer, g_source_unref);
  op_udp_send_checks (op, NULL);
  op->check_ms = MIN (op->check_ms * 2, CHECK_MAX_MS);
  op->check_timer = rndz_timeout_add (op->context, op->check_ms, op_udp_check_cb, op);
  return G_SOURCE_REMOVE;
}

/* While our use goes where the peer's punch came from, the peer's other
 * addresses are checked too, a little later: the punch shows only that
 * the peer reaches us that way, and a firewall may let its datagrams
 * out and ours not in. A confirm from another address before the use's
 * answer takes that path instead. */
static gboolean
op_udp_other_checks_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->other_checks, g_source_unref);
  op_udp_send_checks (op, &op->chosen_addr);
  op->other_checks_ms = MIN (op->other_checks_ms * 2, CHECK_MAX_MS);
  op->other_checks = rndz_timeout_add (op->context, op->other_checks_ms,
                                       op_udp_other_checks_cb, op);
  return G_SOURCE_REMOVE;
}

/* New addresses are checked at once, and then with the others */
static void
op_udp_check_now (ConnectOp *op)
{
  if (op->phase >= PHASE_NOMINATED)
    return;

  rndz_source_clear (&op->check_timer);
  op->check_ms = CHECK_INITIAL_MS;
  op_udp_check_cb (op);
}

/* A check or a use to one address of the peer, from @socket */
static void
op_udp_send_to (ConnectOp       *op,
                GSocket         *socket,
                RndzMessageType  type,
                const RndzAddr  *addr)
{
  g_autoptr(GSocketAddress) to = rndz_addr_to_socket_address (addr, op->family);
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg;
  gsize len;

  op_init_peer_message (op, type, &msg);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  if (to != NULL)
    rndz_udp_send (socket, to, buf, len, rndz_message_type_to_string (type));
}

static void op_udp_unchoose (ConnectOp *op);

static gboolean
op_udp_use_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->check_timer, g_source_unref);
  if (op->chosen_on_punch != 0 &&
      g_get_monotonic_time () - op->chosen_on_punch >= PUNCH_USE_GIVE_UP_MS * G_TIME_SPAN_MILLISECOND)
    {
      op_udp_unchoose (op);
      return G_SOURCE_REMOVE;
    }
  op_udp_send_to (op, op->chosen_socket, RNDZ_MESSAGE_USE, &op->chosen_addr);
  op->check_timer = rndz_timeout_add (op->context, op->check_ms, op_udp_use_cb, op);
  op->check_ms = MIN (op->check_ms * 2, USE_RETRY_MAX_MS);
  return G_SOURCE_REMOVE;
}

static gboolean op_udp_chosen_read_cb (GSocket      *socket,
                                       GIOCondition  condition,
                                       gpointer      user_data);

/* The socket for the path to @addr, which @socket reached: a new one on
 * P, or that spray socket; connected to the peer, so that nothing else
 * reaches it, and empty: the peer sends nothing of its own before it has
 * answered our use. Until it is the application's, the protocol's
 * messages but `use` are filtered out. */
static GSocket *
op_udp_open_chosen (ConnectOp       *op,
                    GSocket         *socket,
                    const RndzAddr  *addr,
                    GError         **error)
{
  g_autoptr(GSocketAddress) peer = rndz_addr_to_socket_address (addr, op->family);
  g_autoptr(GSocket) chosen = NULL;
  g_autoptr(GError) filter_error = NULL;

  if (peer == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("The peer’s address family cannot be reached"));
      return NULL;
    }

  if (socket == op->socket)
    chosen = rndz_peer_context_bind (op->peer, op->family, G_SOCKET_TYPE_DATAGRAM, op->port,
                                     error);
  else
    chosen = rndz_spray_take (op->spray, socket);
  if (chosen == NULL || !g_socket_connect (chosen, peer, NULL, error))
    return NULL;

  if (!rndz_udp_filter_set (chosen, RNDZ_UDP_FILTER_USE_AND_DATA, &filter_error))
    g_debug ("The socket towards “%s” is not filtered: %s", op->peer_id, filter_error->message);
  rndz_udp_discard (chosen);
  return g_steal_pointer (&chosen);
}

/* The first path confirmed is the one: the peer is told to stop
 * catching our datagrams there, and says when it has */
static void
op_udp_choose (ConnectOp      *op,
               GSocket        *socket,
               const RndzAddr *addr,
               RndzPath        kind)
{
  g_autoptr(GError) error = NULL;

  op->phase = PHASE_NOMINATED;
  op->chosen_addr = *addr;
  op->chosen_kind = kind;
  rndz_source_clear (&op->check_timer);
  rndz_source_clear (&op->other_checks);
  rndz_source_clear (&op->hard_timer);
  g_clear_pointer (&op->prober, rndz_prober_free);

  op->chosen_socket = op_udp_open_chosen (op, socket, addr, &error);
  if (op->chosen_socket == NULL)
    {
      rndz_connect_op_return_error (op, g_steal_pointer (&error));
      return;
    }
  op->chosen_source = rndz_socket_source_add (op->chosen_socket, op->context,
                                              op_udp_chosen_read_cb, op,
                                              "[rndz] connect UDP chosen");
  op->check_ms = USE_RETRY_INITIAL_MS;
  op_udp_use_cb (op);
}

/* The path a punch nominated is given up: checks decide from now on */
static void
op_udp_drop_punched (ConnectOp *op)
{
  op->chosen_on_punch = 0;
  op->punch_unanswered = TRUE;
  rndz_source_clear (&op->other_checks);
  rndz_source_clear (&op->check_timer);
  rndz_source_clear (&op->chosen_source);
  g_socket_close (op->chosen_socket, NULL);
  g_clear_object (&op->chosen_socket);
  op->phase = PHASE_CHECKING;
}

/* Our uses to the address the peer's punch came from got no answer:
 * check every address of the peer, as if no punch had come */
static void
op_udp_unchoose (ConnectOp *op)
{
  char text[RNDZ_ADDR_STRLEN];

  g_debug ("No answer from “%s” at %s, where its punch came from: checking its addresses",
           op->peer_id, rndz_addr_format (&op->chosen_addr, text));
  op_udp_drop_punched (op);
  op_udp_check_now (op);
}

/* An answer to the use from the chosen path: it is ours */
static gboolean
op_udp_is_chosen (ConnectOp         *op,
                  GSocket           *socket,
                  const RndzAddr    *from,
                  const RndzMessage *msg)
{
  return msg->type == RNDZ_MESSAGE_USE && msg->tid == op->tid && op->phase == PHASE_NOMINATED &&
         socket == op->chosen_socket && rndz_addr_equal (from, &op->chosen_addr);
}

void
rndz_connect_op_udp_redirected (ConnectOp         *op,
                                const RndzMessage *redirect)
{
  gboolean added;

  added = rndz_connect_op_add_redirect_paths (op, redirect);

  rndz_connect_op_found_peer (op);
  rndz_connect_op_maybe_relay_early (op);
  if (added)
    op_udp_check_now (op);
}

/* Hard NATs (rndz-hard-nat.c) */

/* The friendly side: checks to random ports of the peer's public address */
/* One probe, from the operation's socket: its NAT maps it to the port
 * the peer knows */
static RndzProbeResult
op_probe (const RndzAddr *to,
          const char     *data,
          gsize           len,
          gpointer        user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GSocketAddress) address = rndz_addr_to_socket_address (to, op->family);

  if (address == NULL)
    return RNDZ_PROBE_STOP;

  /* A probe that did not leave is not counted: the next tick tries again */
  return rndz_udp_send (op->socket, address, data, len, "probe") ? RNDZ_PROBE_SENT
                                                                   : RNDZ_PROBE_WAIT;
}

/* The hard side: what comes in through one of our many mappings */
static void
op_spray_cb (RndzSpray         *spray,
             GSocket           *socket,
             const RndzAddr    *from,
             const RndzMessage *msg,
             gpointer           user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  /* An rsync carries the server's tid; answers to us carry ours */
  if (op->phase >= PHASE_RELAY || (msg->type != RNDZ_MESSAGE_RSYNC && msg->tid != op->tid) ||
      !g_str_equal (msg->id, op->peer_id) ||
      !g_str_equal (msg->target, op->peer->id) ||
      !rndz_addr_same_host (from, &op->peer_addr))
    return;

  /* The peer's probe found this mapping: check back through it */
  if (msg->type == RNDZ_MESSAGE_RSYNC && op->phase < PHASE_NOMINATED)
    op_udp_send_to (op, socket, RNDZ_MESSAGE_CHECK, from);
  else if (msg->type == RNDZ_MESSAGE_CONFIRM && op->phase < PHASE_NOMINATED)
    op_udp_choose (op, socket, from, RNDZ_PATH_DIRECT);
}

/* No path has answered yet. If the peer's NAT changed its port, it is
 * the hard side: probe for its mappings. Otherwise we may be: open
 * mappings for it to find, unless the peer's punch came in at the port
 * the server saw us at (then our NAT is no hard one, and packets were
 * lost: checks and punches are sent again for that). */
gboolean
rndz_connect_op_hard_start_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  RndzMessage check;
  int i;

  g_clear_pointer (&op->hard_timer, g_source_unref);
  if (op->phase >= PHASE_NOMINATED || op->peer_addr.family == 0)
    return G_SOURCE_REMOVE;

  op_init_peer_message (op, RNDZ_MESSAGE_CHECK, &check);
  i = rndz_connect_op_find_path (op, &op->peer_addr);
  if (!op->peer_rewrites && i >= 0 && op->path_punched[i])
    {
      g_debug ("No path to “%s” yet, but its punch came through: waiting", op->peer_id);
      return G_SOURCE_REMOVE;
    }
  if (op->peer_rewrites)
    {
      g_debug ("No path to “%s” yet, and its NAT changed its port: probing", op->peer_id);
      op->prober = rndz_prober_new (op->context, &op->peer_addr, &check, op_probe, op);
    }
  else
    {
      op->spray = rndz_spray_new (op->peer, op->family, &op->peer_addr, &check, op->context,
                                  op_spray_cb, op);
      g_debug ("No path to “%s” yet: %u mappings towards it", op->peer_id,
               rndz_spray_get_size (op->spray));
    }

  return G_SOURCE_REMOVE;
}

/* A punch, a confirm or the answer to our use, from the peer */
static gboolean
op_udp_read_one (GSocket           *socket,
                 const RndzAddr    *from,
                 const RndzMessage *msg,
                 gpointer           user_data)
{
  ConnectOp *op = user_data;
  int i;

  if (op->phase >= PHASE_RELAY ||
      !g_str_equal (msg->id, op->peer_id) ||
      !g_str_equal (msg->target, op->peer->id))
    return TRUE;

  /* A punch shows an address of the peer, perhaps one its NAT picked for
   * us alone: it reached us from there, and our use there tells whether
   * we reach it, a round trip sooner than a check and its confirm would
   * (doc/protocol.md, "UDP connectivity checks", step 3). If that use
   * goes unanswered, punches are only worth a check. */
  if (msg->type == RNDZ_MESSAGE_RSYNC)
    {
      gboolean added = rndz_connect_op_add_path (op, from, RNDZ_PATH_DIRECT);

      if ((i = rndz_connect_op_find_path (op, from)) < 0)
        return TRUE;

      /* From where the server saw the peer, it shows that our NAT lets
       * the peer in at the port the server saw us at: ours is no hard
       * one */
      op->path_punched[i] = TRUE;
      rndz_connect_op_found_peer (op);
      if (op->phase == PHASE_CHECKING && !op->punch_unanswered)
        {
          op_udp_choose (op, op->socket, from, op->path_kinds[i]);
          if (op->phase == PHASE_NOMINATED)
            {
              op->chosen_on_punch = g_get_monotonic_time ();
              op->other_checks_ms = CHECK_INITIAL_MS;
              op->other_checks = rndz_timeout_add (op->context, op->other_checks_ms,
                                                   op_udp_other_checks_cb, op);
            }
        }
      else if (added)
        op_udp_check_now (op);
      return !op_is_done (op);
    }

  /* The answer to a check: only from an address we checked, or from the
   * peer's public address at a port we probed. While a punch's path is
   * tried, a confirm from elsewhere takes over. */
  if (msg->type == RNDZ_MESSAGE_CONFIRM && msg->tid == op->tid &&
      op->phase == PHASE_NOMINATED && op->chosen_on_punch != 0 &&
      !rndz_addr_equal (from, &op->chosen_addr) && rndz_connect_op_find_path (op, from) >= 0)
    op_udp_drop_punched (op);
  if (msg->type == RNDZ_MESSAGE_CONFIRM && msg->tid == op->tid && op->phase < PHASE_NOMINATED)
    {
      i = rndz_connect_op_find_path (op, from);
      if (i >= 0)
        op_udp_choose (op, op->socket, from, op->path_kinds[i]);
      else if (op->prober != NULL && rndz_addr_same_host (from, &op->peer_addr) &&
               rndz_prober_has_probed (op->prober, from->port))
        op_udp_choose (op, op->socket, from, RNDZ_PATH_DIRECT);
    }

  return !op_is_done (op);
}

/* The answer to our use, on the chosen socket: the path is ours. A
 * redirect that came after the confirm may have shown that the address
 * is local. */
static gboolean
op_udp_chosen_read_one (GSocket           *socket,
                        const RndzAddr    *from,
                        const RndzMessage *msg,
                        gpointer           user_data)
{
  ConnectOp *op = user_data;
  int i;

  if (!g_str_equal (msg->id, op->peer_id) || !g_str_equal (msg->target, op->peer->id) ||
      !op_udp_is_chosen (op, socket, from, msg))
    return TRUE;

  i = rndz_connect_op_find_path (op, from);
  op_udp_found (op, from, i >= 0 ? op->path_kinds[i] : op->chosen_kind);
  return FALSE;
}

static gboolean
op_udp_chosen_read_cb (GSocket      *socket,
                       GIOCondition  condition,
                       gpointer      user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  g_autoptr(GError) error = NULL;

  /* The peer's own datagram: it took our use, and its answers were lost
   * (it answers no more once it handed the path to its application).
   * The datagram stays for ours. */
  if (op->phase == PHASE_NOMINATED && socket == op->chosen_socket &&
      rndz_udp_head_is_data (socket))
    {
      int i = rndz_connect_op_find_path (op, &op->chosen_addr);

      op_udp_found (op, &op->chosen_addr, i >= 0 ? op->path_kinds[i] : op->chosen_kind);
      return G_SOURCE_CONTINUE;
    }

  if (!rndz_udp_read_messages (socket, TRUE, op_udp_chosen_read_one, op, &error) &&
      error != NULL)
    g_debug ("Reading from the peer: %s", error->message);

  return G_SOURCE_CONTINUE;
}

static gboolean
op_udp_read_cb (GSocket      *socket,
                GIOCondition  condition,
                gpointer      user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  g_autoptr(GError) error = NULL;

  /* An ICMP error answers a check that met nobody: others may not */
  if (!rndz_udp_read_messages (socket, TRUE, op_udp_read_one, op, &error) && error != NULL)
    g_debug ("Reading from the peer: %s", error->message);

  return G_SOURCE_CONTINUE;
}

void
rndz_connect_op_udp_start (ConnectOp *op)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) error = NULL;

  op->socket = rndz_peer_context_bind (op->peer, op->family, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  if (op->socket == NULL || (local = g_socket_get_local_address (op->socket, &error)) == NULL)
    {
      rndz_connect_op_return_error (op, g_steal_pointer (&error));
      return;
    }
  op->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  op->n_cands = rndz_peer_context_get_candidates (op->peer, op->family, op->port, op->cands);

  op->source = rndz_socket_source_add (op->socket, op->context, op_udp_read_cb, op,
                                      "[rndz] connect UDP");

  rndz_request_open (op->request, op->port);
  if (!op_is_done (op))
    rndz_request_send (op->request, op->cands, op->n_cands);
}
