/* rndz-listener-udp.c: a UDP listener's paths to each requester
 *
 * SPDX-License-Identifier: MIT
 *
 * For each requester the server forwards, a check socket per address of
 * the requester (bound to our port and connected to that address): the
 * punch leaves from it, again until the requester's check comes, and the
 * requester's check, use and first datagrams arrive on it, which becomes
 * the application's socket for that requester (doc/protocol.md, "UDP
 * connectivity checks"). When no path works, the hard-NAT phase
 * (rndz-hard-nat.c). What is common to UDP and TCP requests is in
 * rndz-listener-requests.c.
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include "rndz-listener-internal.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"
#include "rndz-udp-private.h"
#include "rndz-udp-filter-private.h"

/* UDP: a check socket, on P and connected to one address of a requester */
typedef struct
{
  RndzListener *listener;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  RndzAddr addr;
  RndzPath path;                /* of the requester's address */
  guint32 tid;                  /* the request's (the fsync's) */
  GSocket *socket;
  GSource *source;
  GSource *expire;
  /* The punch, sent again until a check comes (heard) */
  GSource *punch_timer;
  guint punch_ms;
  gint64 punch_until;           /* monotonic */
  gboolean heard;
  gboolean refused;             /* an ICMP error answered a punch */
  /* The use answered: the socket is handed over when this fires, or
   * on the requester's first datagram of its own */
  GSource *handover;
  gint64 handover_until;        /* monotonic: the latest hand-over */
  /* No peer-socket handler: the use to answer from U, the check to go */
  gboolean to_listening;
  guint32 use_tid;
} Check;

/* UDP: a requester no path has reached yet, for the hard-NAT phase */
typedef struct
{
  RndzListener *listener;
  RndzMessage fsync;            /* its request */
  gboolean port_kept;           /* our NAT kept our port towards the server */
  GSource *timer;               /* starts the phase */
  GSource *expire;
  RndzProber *prober;           /* it looks hard, or our port was kept */
  RndzSpray *spray;             /* it looks friendly */
} Hard;

static void
check_free (Check *check)
{
  rndz_source_clear (&check->source);
  rndz_source_clear (&check->expire);
  rndz_source_clear (&check->punch_timer);
  rndz_source_clear (&check->handover);
  if (check->socket != NULL)
    g_socket_close (check->socket, NULL);
  g_clear_object (&check->socket);
  g_free (check);
}

static gboolean
check_expire_cb (gpointer user_data)
{
  Check *check = user_data;

  g_clear_pointer (&check->expire, g_source_unref);
  g_hash_table_remove (check->listener->checks, &check->addr);
  return G_SOURCE_REMOVE;
}

/* Our answer to a check (a confirm) or to a use (a use) of the requester */
static gsize
encode_answer (RndzListener      *listener,
               const char        *peer_id,
               RndzMessageType    type,
               const RndzMessage *msg,
               char               buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE])
{
  RndzMessage answer;

  rndz_listener_init_message (listener, type, msg->tid, peer_id, &answer);
  return rndz_message_encode (&answer, buf, RNDZ_MESSAGE_DEFAULT_MAX_SIZE);
}

/* Without a handler for the peer-socket signal, the application reads
 * its listening socket U: the check socket goes first, then the answer
 * leaves from U (the same port, so the same NAT mapping): the requester
 * sends nothing before it has the answer, and by then nothing but U can
 * catch what it sends. */
static void
answer_from_listening (RndzListener   *listener,
                       const RndzAddr *addr,
                       const char     *buf,
                       gsize           len)
{
  g_autoptr(GSocketAddress) to = rndz_addr_to_socket_address (addr, listener->family);

  if (to == NULL)
    return;

  if (!g_socket_is_closed (listener->socket))
    rndz_udp_send (listener->socket, to, buf, len, "answer to a use");
  else
    {
      /* The application closed its socket and reads nothing: the answer
       * still tells the requester that the path works */
      g_autoptr(GSocket) once = rndz_peer_context_bind (listener->peer, listener->family,
                                                  G_SOCKET_TYPE_DATAGRAM, listener->port, NULL);

      if (once != NULL)
        {
          rndz_udp_send (once, to, buf, len, "answer to a use");
          g_socket_close (once, NULL);
        }
    }
}

/* Whether the application takes peers on sockets of their own */
static gboolean
listener_wants_peer_sockets (RndzListener *listener)
{
  gboolean wanted = FALSE;

  g_signal_emit_by_name (listener, "peer-socket-wanted", &wanted);
  return wanted;
}

/* The requester's checks show that it has our address and reaches us:
 * our answer to the server got through (or its copies need not), and
 * our punches to its other addresses (local ones, often on a network
 * we do not share) have done what they could */
static void
listener_mark_reached (RndzListener *listener,
                       const char   *peer_id,
                       guint32       tid)
{
  GHashTableIter iter;
  gpointer value;

  for (guint i = 0; i < RECENT_REQUESTS; i++)
    if (listener->recent[i].tid == tid && g_str_equal (listener->recent[i].peer_id, peer_id))
      listener->recent[i].reached = TRUE;

  g_hash_table_iter_init (&iter, listener->checks);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Check *check = value;

      if (check->tid == tid && g_str_equal (check->peer_id, peer_id))
        rndz_source_clear (&check->punch_timer);
    }
}

/* Whether a check of @fsync's requester has come, so that our rsync
 * need not go to the server again */
gboolean
rndz_listener_request_reached (RndzListener      *listener,
                               const RndzMessage *fsync)
{
  int i = rndz_listener_find_request (listener, &fsync->addr, fsync->tid, FALSE);

  return i < 0 || listener->recent[i].reached || listener->recent[i].refused;
}

/* The requester takes this path. The check socket, bound to P and
 * connected to the requester, becomes the requester's socket: only its
 * datagrams reach it. We answered its use from it while it was still
 * ours (check_answer_use()); it turns the application's now that the
 * requester has sent a datagram of its own, which stays queued (so it
 * has our answer), or has sent no use for a while (it had the answer,
 * or has given up). Frees @check. */
static void
check_hand_over (Check *check)
{
  RndzListener *listener = check->listener;
  g_autoptr(GSocket) socket = NULL;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  RndzAddr addr = check->addr;
  RndzPath path = check->path;

  g_strlcpy (peer_id, check->peer_id, sizeof peer_id);
  rndz_source_clear (&check->source);
  socket = g_steal_pointer (&check->socket);
  g_hash_table_remove (listener->checks, &addr);

  /* Only the protocol's messages at the head of the queue go */
  rndz_udp_hand_over (socket, TRUE);
  rndz_socket_set_path (socket, path);
  g_signal_emit_by_name (listener, "peer-socket", peer_id, socket);
}

/* Our answer to the requester's use (use_tid), as check_answer_use()
 * sends it */
static gsize
check_encode_use_answer (Check *check,
                         char   buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE])
{
  RndzMessage use;

  rndz_message_init (&use, RNDZ_MESSAGE_USE, check->use_tid);
  return encode_answer (check->listener, check->peer_id, RNDZ_MESSAGE_USE, &use, buf);
}

/* The requester went quiet (or kept on until handover_until) without
 * a datagram of its own: it has our answer and waits for our
 * application, or all our answers were lost and it still sends uses,
 * which the application's socket will drop. A few more answers go
 * before the hand-over, for the latter: through 20 % loss each way, a
 * requester whose answers were lost and whose uses were too, three in a
 * row, was left with a path that answers nothing (about one connection
 * in 300). For the former they are dropped by its filter. */
static void
check_send_last_answers (Check *check)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len = check_encode_use_answer (check, buf);

  for (guint i = 0; i < HANDOVER_LAST_ANSWERS; i++)
    rndz_udp_send (check->socket, NULL, buf, len, "answer to a use");
}

static gboolean
check_handover_cb (gpointer user_data)
{
  Check *check = user_data;
  /* The application's handler may drop the last reference */
  g_autoptr(RndzListener) hold G_GNUC_UNUSED = listener_ref (check->listener);
  char text[RNDZ_ADDR_STRLEN];

  g_clear_pointer (&check->handover, g_source_unref);
  g_debug ("Handing the path from “%s” at %s over without its data: %s", check->peer_id,
           rndz_addr_format (&check->addr, text),
           g_get_monotonic_time () >= check->handover_until ? "too long" : "quiet");
  check_send_last_answers (check);
  check_hand_over (check);
  return G_SOURCE_REMOVE;
}

/* Without a handler for the peer-socket signal, the application reads
 * its listening socket U: the check socket goes first, then the answer
 * leaves from U (the same port, so the same NAT mapping); copies of the
 * use then meet U's filter. Frees @check. */
static void
check_hand_over_listening (Check *check)
{
  RndzListener *listener = check->listener;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzAddr addr = check->addr;
  gsize len = check_encode_use_answer (check, buf);

  g_hash_table_remove (listener->checks, &addr);
  answer_from_listening (listener, &addr, buf, len);
}

/* The requester still speaks the protocol on a check whose use we
 * answered (more uses, or checks once it gave up its uses): it has not
 * had our answer. The socket stays ours to answer again, until the
 * requester goes quiet, and at most until handover_until (two thirds of
 * the direct timeout after the first use). Every answer may be lost, as
 * every use may: through 20 % loss each way, one requester in 200
 * missed all the answers of its first second. */
static void
check_delay_handover (Check *check)
{
  gint64 left_ms = (check->handover_until - g_get_monotonic_time ()) / 1000;

  if (check->handover != NULL && left_ms <= 0)
    return;
  rndz_source_clear (&check->handover);
  check->handover = rndz_timeout_add (check->listener->context,
                                      (guint) CLAMP (left_ms, 1, HANDOVER_QUIET_MS),
                                      check_handover_cb, check);
}

/* The requester's use came to @check: any other check socket of the
 * same request that answered a use before is one the requester gave up
 * (it moved on when our answers did not reach it, or when another of its
 * checks was confirmed first). That socket goes, before its hand-over
 * could give the application a second, dead socket for the requester. */
static void
check_forget_other_uses (Check *check)
{
  RndzListener *listener = check->listener;
  g_autoptr(GPtrArray) given_up = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, listener->checks);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Check *other = value;

      if (other != check && other->handover != NULL && other->tid == check->tid &&
          g_str_equal (other->peer_id, check->peer_id))
        g_ptr_array_add (given_up, &other->addr);
    }
  for (guint i = 0; i < given_up->len; i++)
    g_hash_table_remove (listener->checks, g_ptr_array_index (given_up, i));
}

/* Answers a use of the requester from its check socket, the first and
 * every copy: an answer may be lost, and the requester sends its use
 * again until one comes. Returns FALSE if the check is to go, its use
 * answered from U (check_hand_over_listening()). */
static gboolean
check_answer_use (Check             *check,
                  const RndzMessage *use)
{
  RndzListener *listener = check->listener;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  char text[RNDZ_ADDR_STRLEN];
  RndzAddr addr = check->addr;
  gsize len = encode_answer (listener, check->peer_id, RNDZ_MESSAGE_USE, use, buf);

  if (check->handover == NULL)
    {
      g_debug ("“%s” reaches us from %s", check->peer_id, rndz_addr_format (&addr, text));
      check_forget_other_uses (check);
      /* The request's tid (the server's), not the use's (the requester's) */
      listener_mark_reached (listener, check->peer_id, check->tid);
      rndz_listener_hard_forget (listener, check->peer_id);
      rndz_source_clear (&check->punch_timer);
      rndz_source_clear (&check->expire);
      check->use_tid = use->tid;
      if (!listener_wants_peer_sockets (listener))
        {
          check->to_listening = TRUE;
          return FALSE;
        }
      /* Two thirds of the direct timeout: the requester's is likely the
       * same, and when our application speaks first, its datagram must
       * reach the requester before it gives up */
      check->handover_until = g_get_monotonic_time () +
                              (gint64) listener->peer->direct_timeout_ms * 1000 * 2 / 3;
    }

  check_delay_handover (check);
  rndz_udp_send (check->socket, NULL, buf, len, "answer to a use");
  return TRUE;
}

/* A check or a use from the requester, on its check socket. Once its use
 * is answered, one message at a time, so that the caller sees the
 * requester's first datagram of its own before it is read. */
static gboolean
check_handle (GSocket           *socket,
              const RndzAddr    *from,
              const RndzMessage *msg,
              gpointer           user_data)
{
  Check *check = user_data;
  RndzListener *listener = check->listener;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  if (!g_str_equal (msg->id, check->peer_id) || !g_str_equal (msg->target, listener->peer->id))
    return check->handover == NULL;

  if (msg->type == RNDZ_MESSAGE_USE)
    {
      check_answer_use (check, msg);
      return FALSE;
    }
  if (msg->type != RNDZ_MESSAGE_CHECK)
    return check->handover == NULL;

  /* Confirmed from the check socket, which stays for the use (a probe's
   * too, which had a short life until now). The requester reaches us,
   * and the confirm goes back the way the check came: no need for the
   * hard-NAT phase, nor for more punches. Every check is answered: a
   * confirm may be lost. */
  len = encode_answer (listener, check->peer_id, RNDZ_MESSAGE_CONFIRM, msg, buf);
  rndz_udp_send (check->socket, NULL, buf, len, "confirm");
  listener_mark_reached (listener, check->peer_id, check->tid);
  check->heard = TRUE;
  rndz_source_clear (&check->punch_timer);
  rndz_listener_hard_forget (listener, check->peer_id);
  if (check->handover == NULL)
    {
      rndz_source_clear (&check->expire);
      check->expire = rndz_timeout_add (listener->context, listener->peer->timeout_ms,
                                        check_expire_cb, check);
    }
  else
    check_delay_handover (check);
  return check->handover == NULL;
}

static gboolean
check_read_cb (GSocket      *socket,
               GIOCondition  condition,
               gpointer      user_data)
{
  Check *check = user_data;
  g_autoptr(RndzListener) listener = listener_ref (check->listener);

  for (guint i = 0; i < RNDZ_UDP_READ_BUDGET; i++)
    {
      g_autoptr(GError) error = NULL;

      /* The requester's own datagram: it has our answer */
      if (check->handover != NULL && rndz_udp_head_is_data (socket))
        {
          check_hand_over (check);
          return G_SOURCE_REMOVE;
        }
      if (rndz_udp_read_messages (socket, FALSE, check_handle, check, &error))
        return G_SOURCE_CONTINUE;
      if (check->to_listening)
        {
          check_hand_over_listening (check);
          return G_SOURCE_REMOVE;
        }
      if (error == NULL)
        continue;

      /* Our punch met a closed port, or a router that answers for one
       * (its NAT gave our address a port of its own, or has no mapping
       * for us yet): not a reason to give up the path */
      if (rndz_udp_error_is_icmp (error))
        {
          check->refused = TRUE;
          continue;
        }

      g_debug ("The check socket towards “%s” failed: %s", check->peer_id, error->message);
      g_hash_table_remove (listener->checks, &check->addr);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* A check socket towards @addr for the requester @peer_id, for @ms, on
 * our @port (P, or the one the router maps: rndz-listener-mapped.c):
 * new, or the one there is. NULL if none can be opened. */
static Check *
check_open (RndzListener      *listener,
            const char        *peer_id,
            const RndzAddr    *addr,
            RndzPath           path,
            guint              ms,
            guint16            port)
{
  g_autoptr(GSocketAddress) to = rndz_addr_to_socket_address (addr, listener->family);
  g_autoptr(GError) error = NULL;
  Check *check;

  if (to == NULL)
    return NULL;

  check = g_hash_table_lookup (listener->checks, addr);
  if (check == NULL)
    {
      g_autoptr(GSocket) socket = rndz_peer_context_bind (listener->peer, listener->family,
                                                    G_SOCKET_TYPE_DATAGRAM, port, &error);

      if (socket == NULL || !g_socket_connect (socket, to, NULL, &error))
        {
          g_debug ("Cannot open a check socket: %s", error->message);
          return NULL;
        }

      check = g_new0 (Check, 1);
      check->listener = listener;
      check->addr = *addr;
      check->socket = g_steal_pointer (&socket);
      check->source = rndz_socket_source_add (check->socket, listener->context, check_read_cb,
                                             check, "[rndz] listener check");
      g_hash_table_insert (listener->checks, &check->addr, check);
    }
  /* Handing over: it is the requester's already */
  if (check->handover != NULL)
    return NULL;

  /* The latest request from there owns it, for as long as it may take.
   * A private address is on a network we share, whatever it was offered
   * as (as the requester sees ours). */
  g_strlcpy (check->peer_id, peer_id, sizeof check->peer_id);
  check->path = rndz_addr_is_private (addr) ? RNDZ_PATH_LOCAL : path;
  rndz_source_clear (&check->expire);
  check->expire = rndz_timeout_add (listener->context, ms, check_expire_cb, check);
  return check;
}

static void
punch_send (Check *check)
{
  RndzMessage rsync;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  rndz_listener_init_message (check->listener, RNDZ_MESSAGE_RSYNC, check->tid, check->peer_id,
                              &rsync);
  len = rndz_message_encode (&rsync, buf, sizeof buf);
  rndz_udp_send (check->socket, NULL, buf, len, "punch");
}

/* The punch again, with growing gaps, until the requester's check comes
 * through it or the direct timeout: a punch lost on the way leaves our
 * NAT closed to the requester, whose checks then never get in */
static gboolean
punch_again_cb (gpointer user_data)
{
  Check *check = user_data;

  g_clear_pointer (&check->punch_timer, g_source_unref);
  if (check->heard || g_get_monotonic_time () >= check->punch_until)
    return G_SOURCE_REMOVE;

  punch_send (check);
  check->punch_ms = MIN (check->punch_ms * 2, PUNCH_UDP_MAX_MS);
  check->punch_timer = rndz_timeout_add (check->listener->context, check->punch_ms,
                                         punch_again_cb, check);
  return G_SOURCE_REMOVE;
}

/* A datagram from our port to the requester opens our NAT for it. It is
 * an rsync, so a requester that does receive it can tell it apart; it
 * leaves from a check socket that then catches the requester's checks. */
void
rndz_listener_punch_udp (RndzListener      *listener,
                         const RndzMessage *fsync,
                         const RndzAddr    *addr,
                         RndzPath           path)
{
  g_autoptr(GSocketAddress) to = NULL;
  RndzMessage rsync;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;
  Check *check;

  check = check_open (listener, fsync->id, addr, path, listener->peer->timeout_ms,
                      listener->port);
  if (check != NULL)
    {
      check->tid = fsync->tid;
      check->heard = FALSE;
      check->punch_ms = PUNCH_UDP_INITIAL_MS;
      check->punch_until = g_get_monotonic_time () +
                           (gint64) listener->peer->direct_timeout_ms * 1000;
      rndz_source_clear (&check->punch_timer);
      check->punch_timer = rndz_timeout_add (listener->context, check->punch_ms,
                                             punch_again_cb, check);
      punch_send (check);
      return;
    }

  /* Without a check socket the punch still opens the NAT */
  rndz_listener_init_rsync (listener, fsync, &rsync);
  len = rndz_message_encode (&rsync, buf, sizeof buf);
  to = rndz_addr_to_socket_address (addr, listener->family);
  if (to != NULL)
    rndz_udp_send (listener->socket, to, buf, len, "punch");
}

/*
 * rndz_listener_check_mapped:
 * @port: the port the router maps for us (rndz-listener-mapped.c)
 * @peer_id: the requester that sent @check
 * @from: where it came from: its NAT's port towards our router's public
 *   one, which no check socket on P is connected to
 *
 * A check that came through the router's mapping: a check socket on
 * @port, connected to @from, confirms it and takes the path from there
 * as one on P does (the use, the hand-over). Only for an application
 * that takes peers on sockets of their own: an answer from U would
 * leave through another mapping of the router, which the requester's
 * NAT does not let in.
 */
void
rndz_listener_check_mapped (RndzListener      *listener,
                            guint16            port,
                            const char        *peer_id,
                            const RndzAddr    *from,
                            const RndzMessage *check)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  Check *opened;
  gsize len;

  if (!listener_wants_peer_sockets (listener) || listener->stopped)
    return;

  opened = check_open (listener, peer_id, from, RNDZ_PATH_DIRECT, listener->peer->timeout_ms,
                       port);
  if (opened == NULL)
    return;

  len = encode_answer (listener, peer_id, RNDZ_MESSAGE_CONFIRM, check, buf);
  rndz_udp_send (opened->socket, NULL, buf, len, "confirm");
  rndz_listener_hard_forget (listener, peer_id);
}

static void
hard_free (Hard *hard)
{
  rndz_source_clear (&hard->timer);
  rndz_source_clear (&hard->expire);
  g_clear_pointer (&hard->prober, rndz_prober_free);
  g_clear_pointer (&hard->spray, rndz_spray_free);
  g_free (hard);
}

static gboolean
is_hard_of (gpointer key,
            gpointer value,
            gpointer user_data)
{
  Hard *hard = value;

  return g_str_equal (hard->fsync.id, user_data);
}

/* @peer_id came in, or through the relay: no more probing for it */
void
rndz_listener_hard_forget (RndzListener *listener,
                           const char   *peer_id)
{
  g_hash_table_foreach_remove (listener->hards, is_hard_of, (gpointer) peer_id);
}

static gboolean
hard_expire_cb (gpointer user_data)
{
  Hard *hard = user_data;

  g_clear_pointer (&hard->expire, g_source_unref);
  g_hash_table_remove (hard->listener->hards, &hard->fsync.addr);
  return G_SOURCE_REMOVE;
}

/* One probe, from a check socket of its own bound to our port: it
 * catches the requester's check if the probe found its mapping. The
 * listener's budget bounds what a forged request can aim at anyone. */
static RndzProbeResult
hard_probe (const RndzAddr *to,
            const char     *data,
            gsize           len,
            gpointer        user_data)
{
  Hard *hard = user_data;
  RndzListener *listener = hard->listener;
  Check *check;

  if (g_hash_table_size (listener->checks) >= MAX_CHECKS)
    return RNDZ_PROBE_WAIT;
  /* Not over a check socket of a path already being checked */
  if (g_hash_table_contains (listener->checks, to))
    return RNDZ_PROBE_SKIPPED;
  if (!rndz_probe_budget_take (&listener->probes, g_get_monotonic_time ()))
    return RNDZ_PROBE_STOP;

  check = check_open (listener, hard->fsync.id, to, RNDZ_PATH_DIRECT, PROBE_LIFETIME_MS,
                      listener->port);
  if (check == NULL)
    return RNDZ_PROBE_WAIT;
  check->tid = hard->fsync.tid;
  if (!rndz_udp_send (check->socket, NULL, data, len, "probe"))
    return RNDZ_PROBE_WAIT;
  return RNDZ_PROBE_SENT;
}

/* The hard side: what comes in through one of our many mappings */
static void
hard_spray_cb (RndzSpray         *spray,
               GSocket           *socket,
               const RndzAddr    *from,
               const RndzMessage *msg,
               gpointer           user_data)
{
  Hard *hard = user_data;
  g_autoptr(RndzListener) listener = listener_ref (hard->listener);
  g_autoptr(GSocketAddress) to = rndz_addr_to_socket_address (from, listener->family);
  g_autoptr(GSocket) taken = NULL;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  char text[RNDZ_ADDR_STRLEN];
  gsize len;

  /* The requester's checks and use carry its own tid */
  if (to == NULL ||
      !g_str_equal (msg->id, hard->fsync.id) ||
      !g_str_equal (msg->target, listener->peer->id) ||
      !rndz_addr_same_host (from, &hard->fsync.addr))
    return;

  if (msg->type == RNDZ_MESSAGE_CHECK)
    {
      listener_mark_reached (listener, hard->fsync.id, hard->fsync.tid);
      len = encode_answer (listener, hard->fsync.id, RNDZ_MESSAGE_CONFIRM, msg, buf);
      rndz_udp_send (socket, to, buf, len, "confirm");
      return;
    }
  if (msg->type != RNDZ_MESSAGE_USE)
    return;

  /* The requester takes this path: the socket is the application's,
   * connected to the requester and filtered before the answer leaves */
  len = encode_answer (listener, hard->fsync.id, RNDZ_MESSAGE_USE, msg, buf);
  taken = rndz_spray_take (spray, socket);
  g_strlcpy (peer_id, hard->fsync.id, sizeof peer_id);
  rndz_listener_hard_forget (listener, peer_id);

  if (!g_socket_connect (taken, to, NULL, NULL))
    return;
  rndz_udp_hand_over (taken, FALSE);
  rndz_udp_send (taken, NULL, buf, len, "answer to a use");
  rndz_socket_set_path (taken, RNDZ_PATH_DIRECT);
  g_debug ("“%s” reaches us from %s, on a port of its own", peer_id,
           rndz_addr_format (from, text));
  g_signal_emit_by_name (listener, "peer-socket", peer_id, taken);
}

static guint
count_sprays (RndzListener *listener)
{
  GHashTableIter iter;
  gpointer value;
  guint n = 0;

  g_hash_table_iter_init (&iter, listener->hards);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    n += ((Hard *) value)->spray != NULL;
  return n;
}

/* Whether a punch of ours to @addr drew an ICMP error: the requester's
 * router has no mapping there for us, though the server saw the
 * requester there. A router that rejects what it did not ask for does
 * that until the requester's checks open it; one that gave our address
 * a port of its own does it for good. */
static gboolean
punch_refused (RndzListener   *listener,
               const RndzAddr *addr)
{
  Check *check = g_hash_table_lookup (listener->checks, addr);

  return check != NULL && check->refused;
}

/* No path yet, long after the request, though our punches and the
 * requester's checks have been sent again several times: lost packets
 * no longer explain it. ICMP errors, the evidence hard_start_cb() looks
 * for, do not always come: routers send them at a limited rate (Linux:
 * one a second to a host, after a burst of six), and an earlier
 * requester's probes may have used them up. Probe anyway. */
#define HARD_NAT_LATE_MS 1000

static gboolean
hard_late_cb (gpointer user_data)
{
  Hard *hard = user_data;
  RndzMessage rsync;

  g_clear_pointer (&hard->timer, g_source_unref);
  if (hard->prober != NULL)
    return G_SOURCE_REMOVE;

  g_debug ("Still no path from “%s”: probing its address", hard->fsync.id);
  rndz_listener_init_rsync (hard->listener, &hard->fsync, &rsync);
  hard->prober = rndz_prober_new (hard->listener->context, &hard->fsync.addr, &rsync,
                                  hard_probe, hard);
  return G_SOURCE_REMOVE;
}

/* No path has worked yet. The phase starts only on evidence that a NAT
 * gives each destination a port of its own, not because packets were
 * lost (punches, checks and their answers are sent again for that). If
 * the requester's NAT changed its port, it is the hard side: probe for
 * its mappings. If ours changed ours (towards the server), we may be:
 * open mappings for it to find. If ours kept our port and our punches
 * to the requester draw ICMP errors, its NAT may have given our address
 * a port of its own (a mapping of its port was taken, say): probe. */
static gboolean
hard_start_cb (gpointer user_data)
{
  Hard *hard = user_data;
  RndzListener *listener = hard->listener;
  const RndzMessage *fsync = &hard->fsync;
  gboolean rewrites = rndz_nat_rewrites_port (&fsync->addr, fsync->cands, fsync->n_cands);
  RndzMessage rsync;

  g_clear_pointer (&hard->timer, g_source_unref);
  if (fsync->n_cands == 0)
    return G_SOURCE_REMOVE;

  rndz_listener_init_rsync (listener, fsync, &rsync);
  if (rewrites || (hard->port_kept && punch_refused (listener, &fsync->addr)))
    {
      g_debug ("No path from “%s” yet: probing its address", fsync->id);
      hard->prober = rndz_prober_new (listener->context, &fsync->addr, &rsync, hard_probe, hard);
    }
  if (!rewrites && !hard->port_kept && count_sprays (listener) < MAX_SPRAYS)
    {
      hard->spray = rndz_spray_new (listener->peer, listener->family, &fsync->addr, &rsync,
                                    listener->context, hard_spray_cb, hard);
      g_debug ("No path from “%s” yet: %u mappings towards it", fsync->id,
               rndz_spray_get_size (hard->spray));
    }
  if (hard->prober == NULL && hard->spray == NULL)
    {
      g_debug ("No path from “%s” yet, and no sign of a hard NAT: waiting", fsync->id);
      hard->timer = rndz_timeout_add (listener->context, HARD_NAT_LATE_MS, hard_late_cb, hard);
    }

  return G_SOURCE_REMOVE;
}

/* A new request: if no path works soon, the hard-NAT phase starts. It
 * ends with the requester's direct timeout, if ours is the same. */
void
rndz_listener_hard_watch (RndzListener      *listener,
                          const RndzMessage *fsync,
                          gboolean           port_kept)
{
  guint direct_ms = listener->peer->direct_timeout_ms;
  Hard *hard;

  if (g_hash_table_contains (listener->hards, &fsync->addr) || direct_ms <= RNDZ_HARD_NAT_DELAY_MS)
    return;

  hard = g_new0 (Hard, 1);
  hard->listener = listener;
  hard->fsync = *fsync;
  hard->port_kept = port_kept;
  hard->timer = rndz_timeout_add (listener->context, RNDZ_HARD_NAT_DELAY_MS, hard_start_cb, hard);
  hard->expire = rndz_timeout_add (listener->context, direct_ms, hard_expire_cb, hard);
  g_hash_table_insert (listener->hards, &hard->fsync.addr, hard);
}


/* Setting up and tearing down */

void
rndz_listener_udp_init (RndzListener *listener)
{
  listener->checks = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                            (GEqualFunc) rndz_addr_equal,
                                            NULL, (GDestroyNotify) check_free);
  listener->hards = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                           (GEqualFunc) rndz_addr_equal,
                                           NULL, (GDestroyNotify) hard_free);
}

void
rndz_listener_udp_clear (RndzListener *listener)
{
  g_hash_table_remove_all (listener->checks);
  g_hash_table_remove_all (listener->hards);
}

void
rndz_listener_udp_finalize (RndzListener *listener)
{
  g_hash_table_unref (listener->checks);
  g_hash_table_unref (listener->hards);
}
