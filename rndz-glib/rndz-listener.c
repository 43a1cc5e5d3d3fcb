/* rndz-listener.c: the listening side of RndzClient
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include "rndz-listener-internal.h"
#include "rndz-channel-private.h"
#include "rndz-i18n-private.h"
#include "rndz-server-link-private.h"
#include "rndz-source-private.h"
#include "rndz-udp-filter-private.h"

/* A listener binds one port P and talks to every server from it.
 *
 * UDP: the application's listening socket U is bound to P and not
 * connected; for each server there is one more socket bound to P and
 * connected to that server, so the kernel hands the server's datagrams
 * to it and everything else to U. U's filter drops the protocol's
 * messages (rndz-udp-filter.c): it holds the port, and gets only what
 * no other socket is connected to catch.
 *
 * TCP: a listening socket on P, and for each server a connection from P.
 * When a server forwards a request, the listener connects from P towards
 * the requester, who connects towards the listener at the same time: the
 * two SYNs cross in the NATs (a simultaneous open). Without NATs in the
 * way the requester's SYN may reach the listening socket instead; either
 * way the connection is handed out by accept.
 *
 * Every ping offers the listener's local addresses (candidates), which
 * the server passes on to requesters; a forwarded request brings the
 * requester's. Paths are verified before use (doc/protocol.md, "Paths"):
 *
 * UDP: for each address of the requester, a check socket bound to P and
 * connected to it punches, and catches the requester's checks from that
 * address, which the application must not see; it confirms them. The
 * requester then picks one path with a "use", and that check socket
 * becomes the requester's own socket, handed to the application through
 * the peer-socket signal: connected to the requester, so that only its
 * datagrams reach it, with a filter that drops the protocol's messages,
 * and emptied before the answer to the use leaves from it, so that
 * everything the requester sends after it reaches that socket and only
 * that. An application without a handler for peer-socket reads U
 * instead: then the check socket closes and the answer leaves from U.
 *
 * TCP: connections towards every address of the requester; one that
 * opens (or that the listening socket accepts from a requester) is held
 * until its first frame, a "use" from the requester, is read, and only
 * then is handed out.
 *
 * UDP, when no path has worked after a while and one side's NAT seems to
 * give each destination a port of its own: the hard side opens many
 * mappings towards the other, and the other probes for them
 * (rndz-hard-nat.c). A requester that comes in through one of our
 * mappings gets that socket, through the peer-socket signal.
 *
 * When no direct path works the requester asks the server to relay: the
 * server's session message names a token, and the listener joins the
 * relay too (UDP: the peer-socket signal; TCP: through accept).
 *
 * Phases: resolving the servers → binding → registering (the listen
 * operation returns on the first pong) → registered, with keepalives, and
 * re-registration with backoff whenever a server stops answering.
 */

typedef struct _Link Link;

/* The listener's relation with one server */
struct _Link
{
  RndzListener *listener;
  RndzServerLink *conn;
  gboolean connected;           /* TCP: the connection is up */

  RndzAddr observed;            /* we, as the server sees us (its pong) */
  gint64 last_ping;             /* monotonic */
  gint64 last_pong;             /* monotonic, 0 if never */
  gint64 next_action;           /* monotonic: ping, or reconnect */
  guint backoff_ms;
  GError *refused;              /* the server refused us; cleared by a pong */
  gint64 probe_deadline;        /* TCP, network changed: a pong by then, or connect again */
  GPtrArray *answers;           /* UDP: Answer, our rsyncs being sent again */
  gboolean cands_stale;         /* our candidates changed since the last ping */
};

/* UDP: our rsync to a server, sent again with growing gaps until the
 * requester shows that it has our address (its check comes) or the
 * direct timeout: a lost rsync would leave the requester waiting for
 * the server's forward timeout. The server ignores the copies of an
 * rsync it has taken. */
typedef struct
{
  Link *link;
  RndzMessage fsync;
  GSource *timer;
  guint delay_ms;
  gint64 until;                 /* monotonic */
} Answer;

/* Requests answered again at once, per server; the oldest goes */
#define MAX_ANSWERS 32

static void listener_schedule (RndzListener *listener, gint64 when);
static void listener_free_resources (RndzListener *listener);
static void listener_update_state (RndzListener *listener);
static void link_connect (Link *link);
static void link_failed (Link *link, const GError *error, gint64 now);

enum
{
  SIGNAL_PEER_REQUEST,
  SIGNAL_PEER_SOCKET,
  SIGNAL_PEER_SOCKET_WANTED,
  SIGNAL_STATE_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (RndzListener, rndz_listener, G_TYPE_OBJECT)

static guint
keepalive_ms (RndzListener *listener)
{
  return listener->peer->keepalive_ms;
}

/* Tells the client that our state changed; @pong: a server just
 * answered. */
static void
listener_set_state (RndzListener    *listener,
                    RndzClientState  state,
                    gboolean         pong)
{
  if (state == listener->state && !pong)
    return;

  listener->state = state;
  g_signal_emit (listener, signals[SIGNAL_STATE_CHANGED], 0);
}

/* Sending to a server */

static void
link_send (Link              *link,
           const RndzMessage *msg)
{
  g_autoptr(GError) error = NULL;

  if (!rndz_server_link_send (link->conn, msg, &error))
    g_debug ("Sending to the server failed: %s", error->message);
}

/* Our candidates: the interfaces are read at most once a second, not
 * for every ping to every server */
static guint
listener_get_candidates (RndzListener *listener,
                         RndzAddr      cands[RNDZ_MAX_CANDIDATES])
{
  gint64 now = g_get_monotonic_time ();

  if (listener->cands_time == 0 || now - listener->cands_time >= G_USEC_PER_SEC)
    {
      listener->n_cands = rndz_peer_context_get_candidates (listener->peer, listener->family,
                                                      listener->port, listener->cands);
      /* The router's public address for us, in place of our last local
       * one if there is no room: the one that works from anywhere */
      if (listener->mapped.family != 0)
        {
          guint i = MIN (listener->n_cands, RNDZ_MAX_CANDIDATES - 1);

          listener->cands[i] = listener->mapped;
          listener->n_cands = i + 1;
        }
      listener->cands_time = now;
    }

  memcpy (cands, listener->cands, sizeof listener->cands);
  return listener->n_cands;
}

static void
link_send_ping (Link *link)
{
  RndzMessage ping;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, rndz_new_tid ());
  g_strlcpy (ping.id, link->listener->peer->id, sizeof ping.id);
  ping.n_cands = listener_get_candidates (link->listener, ping.cands);
  link->cands_stale = FALSE;
  rndz_peer_context_sign (link->listener->peer, rndz_server_link_get_server (link->conn),
                          &ping);
  /* The server answers no datagram with a larger one */
  if (link->listener->transport == RNDZ_TRANSPORT_UDP)
    ping.pad_to = rndz_message_max_reply_size (&ping);
  link_send (link, &ping);
}

static gboolean
link_is_alive (Link   *link,
               gint64  now)
{
  gint64 limit = rndz_peer_context_get_server_silence_ms (link->listener->peer) * (gint64) 1000;

  return link->last_pong != 0 && now - link->last_pong <= limit;
}

/* Next retry of an unanswered ping or a failed connection */
static gint64
link_backoff (Link   *link,
              gint64  now)
{
  gint64 when = now + (gint64) link->backoff_ms * 1000;

  link->backoff_ms = MIN (link->backoff_ms * 2, keepalive_ms (link->listener));
  return when;
}

/* Port mapping */

/* The router mapped a port for us, or the mapping went: the servers
 * hear of it at once, with a ping to each we can send to (a ping still
 * unanswered may have left before the mapping came) */
static void
listener_mapping_cb (const RndzAddr *mapped,
                     gpointer        user_data)
{
  RndzListener *listener = user_data;
  gint64 now = g_get_monotonic_time ();

  if (mapped != NULL)
    listener->mapped = *mapped;
  else
    memset (&listener->mapped, 0, sizeof listener->mapped);
  listener->cands_time = 0;

  for (guint i = 0; i < listener->links->len; i++)
    {
      Link *link = g_ptr_array_index (listener->links, i);

      link->cands_stale = TRUE;
      if (listener->transport == RNDZ_TRANSPORT_UDP ?
          link->next_action != G_MAXINT64 : rndz_server_link_is_ready (link->conn))
        link->next_action = now;
    }
  listener_schedule (listener, now);
}

/* In the background: the first registration does not wait for it. An
 * IPv4 mapping serves an IPv4 socket, or a dual-stack one. */
static void
listener_start_mapping (RndzListener *listener)
{
  GInetSocketAddress *local = listener->peer->local_address;
  g_autoptr(GError) error = NULL;
  guint16 port = listener->port;

  if (!listener->peer->port_mapping)
    return;
  if (local != NULL &&
      (g_inet_address_get_is_loopback (g_inet_socket_address_get_address (local)) ||
       (listener->family == G_SOCKET_FAMILY_IPV6 &&
        !g_inet_address_get_is_any (g_inet_socket_address_get_address (local)))))
    return;

  if (listener->transport == RNDZ_TRANSPORT_UDP &&
      !rndz_listener_mapped_open (listener, &port, &error))
    {
      g_debug ("No port mapping: %s", error->message);
      return;
    }

  listener->portmap = rndz_portmap_new (listener->context,
                                        listener->transport == RNDZ_TRANSPORT_TCP, port,
                                        listener_mapping_cb, listener);
  if (listener->portmap == NULL)
    rndz_listener_mapped_close (listener);
}

/* The listen operation */

static void
listener_finish_start (RndzListener *listener,
                       GError       *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&listener->start_task);

  rndz_source_clear (&listener->start_timeout);
  rndz_source_clear (&listener->start_cancel);

  if (task == NULL)
    {
      g_clear_error (&error);
      return;
    }

  if (error != NULL)
    {
      listener_free_resources (listener);
      g_task_return_error (task, error);
      return;
    }

  if (listener->transport == RNDZ_TRANSPORT_UDP)
    g_task_return_pointer (task, g_object_ref (listener->socket), g_object_unref);
  else
    g_task_return_boolean (task, TRUE);
}

static gboolean
start_timeout_cb (gpointer user_data)
{
  RndzListener *listener = user_data;

  g_clear_pointer (&listener->start_timeout, g_source_unref);
  listener_finish_start (listener,
                         g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                      /* Translators: %u is a number of milliseconds */
                                      _("No rendezvous server answered within %u ms"),
                                      listener->peer->timeout_ms));
  return G_SOURCE_REMOVE;
}

static gboolean
start_cancelled_cb (GCancellable *cancellable,
                    gpointer      user_data)
{
  RndzListener *listener = user_data;

  g_clear_pointer (&listener->start_cancel, g_source_unref);
  listener_finish_start (listener,
                         g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                              _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

/* Fails the listen at once if every server refused us */
static void
listener_check_refused (RndzListener *listener)
{
  if (listener->start_task == NULL || listener->links->len == 0)
    return;

  for (guint i = 0; i < listener->links->len; i++)
    {
      Link *link = g_ptr_array_index (listener->links, i);

      if (link->refused == NULL)
        return;
    }

  {
    Link *first = g_ptr_array_index (listener->links, 0);

    if (first->refused->domain == RNDZ_ERROR)
      listener_finish_start (listener, g_error_copy (first->refused));
    else
      listener_finish_start (listener,
                             g_error_new (RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE,
                                          _("No rendezvous server could be reached: %s"),
                                          first->refused->message));
  }
}

static void
link_refused (Link         *link,
              const GError *error)
{
  g_clear_error (&link->refused);
  link->refused = g_error_copy (error);
  listener_check_refused (link->listener);
}

/* Forwarded requests */

static void
link_reply_rsync (Link              *link,
                  const RndzMessage *fsync)
{
  RndzMessage rsync;

  rndz_listener_init_rsync (link->listener, fsync, &rsync);
  rndz_peer_context_sign (link->listener->peer, rndz_server_link_get_server (link->conn),
                          &rsync);
  link_send (link, &rsync);
}

static void
answer_free (Answer *answer)
{
  rndz_source_clear (&answer->timer);
  g_free (answer);
}

static gboolean
answer_again_cb (gpointer user_data)
{
  Answer *answer = user_data;
  Link *link = answer->link;
  RndzListener *listener = link->listener;

  g_clear_pointer (&answer->timer, g_source_unref);
  if (g_get_monotonic_time () >= answer->until ||
      rndz_listener_request_reached (listener, &answer->fsync))
    {
      g_ptr_array_remove_fast (link->answers, answer);
      return G_SOURCE_REMOVE;
    }

  link_reply_rsync (link, &answer->fsync);
  answer->delay_ms = MIN (answer->delay_ms * 2, RSYNC_RETRY_MAX_MS);
  answer->timer = rndz_timeout_add (listener->context, answer->delay_ms, answer_again_cb, answer);
  return G_SOURCE_REMOVE;
}

/* Our rsync to @fsync went once: again later, unless it is already */
static void
link_answer_again (Link              *link,
                   const RndzMessage *fsync)
{
  RndzListener *listener = link->listener;
  Answer *answer;

  for (guint i = 0; i < link->answers->len; i++)
    {
      answer = g_ptr_array_index (link->answers, i);
      if (answer->fsync.tid == fsync->tid && rndz_addr_equal (&answer->fsync.addr, &fsync->addr))
        return;
    }
  if (link->answers->len >= MAX_ANSWERS)
    g_ptr_array_remove_index (link->answers, 0);

  answer = g_new0 (Answer, 1);
  answer->link = link;
  answer->fsync = *fsync;
  answer->delay_ms = RSYNC_RETRY_INITIAL_MS;
  answer->until = g_get_monotonic_time () + (gint64) listener->peer->direct_timeout_ms * 1000;
  answer->timer = rndz_timeout_add (listener->context, answer->delay_ms, answer_again_cb, answer);
  g_ptr_array_add (link->answers, answer);
}

/* UDP check sockets */

/* Hard NATs (rndz-hard-nat.c) */

/* The relay */

static void
link_handle_message (Link              *link,
                     const RndzMessage *msg)
{
  RndzListener *listener = link->listener;
  gint64 now = g_get_monotonic_time ();

  switch (msg->type)
    {
    case RNDZ_MESSAGE_PONG:
      link->observed = msg->addr;
      link->last_pong = now;
      link->backoff_ms = RNDZ_RETRY_INITIAL_MS;
      link->probe_deadline = 0;
      g_clear_error (&link->refused);
      /* A ping that left before our candidates changed is followed by
       * one that has them */
      link->next_action = link->cands_stale ? now :
        link->last_ping + (gint64) keepalive_ms (listener) * 1000;
      listener_schedule (listener, link->next_action);
      listener->last_pong = g_get_real_time ();
      listener_set_state (listener, listener->state, TRUE);
      listener_update_state (listener);
      if (listener->start_task != NULL)
        listener_finish_start (listener, NULL);
      break;

    case RNDZ_MESSAGE_FSYNC:
      if (rndz_listener_take_request (listener, msg, link->observed.port == listener->port))
        {
          link_reply_rsync (link, msg);
          if (listener->transport == RNDZ_TRANSPORT_UDP)
            link_answer_again (link, msg);
        }
      break;

    case RNDZ_MESSAGE_SESSION:
      rndz_listener_join_relay (listener, rndz_server_link_get_server (link->conn), msg);
      break;

    case RNDZ_MESSAGE_ERROR:
      {
        g_autoptr(GError) error = rndz_wire_error_to_gerror (msg->code, "");

        g_debug ("The server refused the registration: %s", error->message);
        link_refused (link, error);
      }
      break;

    default:
      break;
    }
}

/* UDP links */

/* TCP links */

/* The link's events: the server's messages, and over TCP the
 * connection coming up or going */
static void
link_conn_cb (RndzServerLink      *conn,
              RndzServerLinkEvent  event,
              const RndzMessage   *msg,
              const GError        *error,
              gpointer             user_data)
{
  Link *link = user_data;
  g_autoptr(RndzListener) listener = listener_ref (link->listener);
  gint64 now = g_get_monotonic_time ();

  if (listener->stopped)
    return;

  switch (event)
    {
    case RNDZ_SERVER_LINK_MESSAGE:
      link_handle_message (link, msg);
      break;

    case RNDZ_SERVER_LINK_READY:
      link->connected = TRUE;
      link->last_ping = now;
      link_send_ping (link);
      link->next_action = link_backoff (link, now);
      listener_schedule (listener, link->next_action);
      break;

    case RNDZ_SERVER_LINK_FAILED:
      link_failed (link, error, now);
      break;
    }
}

/* UDP: an ICMP error for an earlier ping, nobody serves there. TCP: the
 * connection failed or went: connect again after a while. */
static void
link_failed (Link         *link,
             const GError *error,
             gint64        now)
{
  RndzListener *listener = link->listener;
  gboolean was_connected = link->connected;

  if (listener->transport == RNDZ_TRANSPORT_UDP)
    {
      g_debug ("The server does not answer: %s", error->message);
      link_refused (link, error);
      return;
    }

  link->connected = FALSE;
  rndz_server_link_close (link->conn);
  link->next_action = link_backoff (link, now);
  listener_schedule (listener, link->next_action);
  if (was_connected)
    {
      g_debug ("Lost the connection to the server: %s", error->message);
      listener_update_state (listener);
    }
  else
    {
      g_debug ("Cannot connect to the server: %s", error->message);
      link_refused (link, error);
    }
}

static void
link_connect (Link *link)
{
  RndzListener *listener = link->listener;
  g_autoptr(GError) error = NULL;

  link->connected = FALSE;
  /* A new connection has nothing to prove */
  link->probe_deadline = 0;
  if (!rndz_server_link_open (link->conn, listener->port, &error))
    {
      g_debug ("Cannot bind a socket for the server: %s", error->message);
      link->next_action = link_backoff (link, g_get_monotonic_time ());
      listener_schedule (listener, link->next_action);
    }
}

/* Listening socket */

/* Keepalive timer */

static void
listener_schedule (RndzListener *listener,
                   gint64        when)
{
  rndz_deadline_source_arm (listener->timer, when);
}

static void
listener_update_state (RndzListener *listener)
{
  gint64 now = g_get_monotonic_time ();
  RndzClientState state = listener->state;
  gboolean alive = FALSE;

  for (guint i = 0; i < listener->links->len; i++)
    alive |= link_is_alive (g_ptr_array_index (listener->links, i), now);

  if (alive)
    state = RNDZ_CLIENT_STATE_REGISTERED;
  else if (listener->state == RNDZ_CLIENT_STATE_REGISTERED)
    state = RNDZ_CLIENT_STATE_RECONNECTING;

  listener_set_state (listener, state, FALSE);
}

static void
link_tick (Link   *link,
           gint64  now)
{
  RndzListener *listener = link->listener;

  if (listener->transport == RNDZ_TRANSPORT_TCP && !rndz_server_link_is_ready (link->conn))
    {
      if (!rndz_server_link_is_open (link->conn))
        link_connect (link);
      return;
    }

  if (listener->transport == RNDZ_TRANSPORT_TCP && link->probe_deadline != 0 &&
      now >= link->probe_deadline)
    {
      g_debug ("No answer on the connection since the network changed: connecting again");
      link->probe_deadline = 0;
      rndz_server_link_abort (link->conn);
      link_connect (link);
      return;
    }

  /* Over UDP too the socket goes: it may be bound to an address that
   * went with the network, with no monitor to tell us (its pings then
   * fail with ENETUNREACH for ever) */
  if (link->last_pong != 0 && !link_is_alive (link, now))
    {
      g_debug ("The server stopped answering: connecting again");
      link->last_pong = 0;
      if (listener->transport == RNDZ_TRANSPORT_TCP)
        rndz_server_link_abort (link->conn);
      else
        rndz_server_link_close (link->conn);
    }

  /* Gone, or never opened (no network when we tried) */
  if (!rndz_server_link_is_open (link->conn))
    {
      link_connect (link);
      if (listener->transport == RNDZ_TRANSPORT_TCP || !rndz_server_link_is_open (link->conn))
        return;
    }

  /* An unanswered ping is retried soon; an answered one waits for the
   * keepalive interval. A probe's deadline is kept to the moment, not
   * to the next retry (which the backoff puts ever further). */
  link->next_action = link->last_pong >= link->last_ping && link->last_pong != 0
    ? now + (gint64) keepalive_ms (listener) * 1000
    : link_backoff (link, now);
  if (link->probe_deadline != 0)
    link->next_action = MIN (link->next_action, link->probe_deadline);
  link->last_ping = now;
  link_send_ping (link);
}

static gboolean
timer_cb (gpointer user_data)
{
  RndzListener *listener = user_data;
  g_autoptr(RndzListener) self G_GNUC_UNUSED = listener_ref (listener);
  gint64 now = g_get_monotonic_time ();
  gint64 next = G_MAXINT64;

  for (guint i = 0; i < listener->links->len && !listener->stopped; i++)
    {
      Link *link = g_ptr_array_index (listener->links, i);

      if (link->next_action <= now)
        link_tick (link, now);
      if (link->next_action > now)
        next = MIN (next, link->next_action);
    }

  if (listener->stopped)
    return G_SOURCE_CONTINUE;

  listener_update_state (listener);
  /* Also wake up when the registration would go stale */
  next = MIN (next, now + (gint64) keepalive_ms (listener) * 1000);
  listener_schedule (listener, next);
  return G_SOURCE_CONTINUE;
}

/* Network changes
 *
 * A laptop changes networks (Wi-Fi to Ethernet, suspend and resume): our
 * public address changes, and the servers only learn it from our next
 * ping, up to a keepalive interval later; until then requests for us go
 * to the old address. So on GNetworkMonitor::network-changed every link
 * registers again at once: fresh candidates, a ping now and quick
 * retries while the new network comes up. A UDP link gets a new socket
 * (a connected UDP socket keeps the source address it was given). A TCP
 * connection whose address is gone is reset at once. Any other is kept
 * if it still answers within NETWORK_PROBE_MS (the address is the same,
 * but the path may be another), counted from the first signal; one
 * that does not is reset, not closed (rndz_server_link_abort()): a
 * closed one would hold its address and port, which we connect from
 * again, in FIN_WAIT or TIME_WAIT. The state says RECONNECTING until a
 * server answers. The monitor signals in bursts (every route and
 * address); the links start again once it has been quiet a moment. */

#define NETWORK_SETTLE_MS 50
#define NETWORK_PROBE_MS 1000

static void
listener_restart_links (RndzListener *listener)
{
  gint64 now = g_get_monotonic_time ();

  g_debug ("The network changed: registering again");
  listener->cands_time = 0;
  /* Another network, perhaps another router: the mapping starts again */
  g_clear_pointer (&listener->portmap, rndz_portmap_free);
  rndz_listener_mapped_close (listener);
  memset (&listener->mapped, 0, sizeof listener->mapped);
  listener_start_mapping (listener);
  for (guint i = 0; i < listener->links->len; i++)
    {
      Link *link = g_ptr_array_index (listener->links, i);

      link->last_pong = 0;
      link->backoff_ms = RNDZ_RETRY_INITIAL_MS;
      link->next_action = now;
      if (listener->transport == RNDZ_TRANSPORT_UDP)
        {
          rndz_server_link_close (link->conn);
          link_connect (link);
        }
      else if (rndz_server_link_is_ready (link->conn) &&
               rndz_server_link_address_gone (link->conn))
        {
          g_debug ("Our address towards the server is gone: connecting again");
          rndz_server_link_abort (link->conn);
          link_connect (link);
        }
      /* A probe under way goes on: the monitor signals again for a
       * while after a change (IPv6 link-local routes come a second or
       * so after the cable), and each new start would put off the
       * reconnection of a connection that went with the old network */
      else if (rndz_server_link_is_ready (link->conn) && link->probe_deadline == 0)
        link->probe_deadline = now + NETWORK_PROBE_MS * 1000;
    }
  listener_update_state (listener);
  listener_schedule (listener, now);
}

static gboolean
network_settled_cb (gpointer user_data)
{
  RndzListener *listener = user_data;
  g_autoptr(RndzListener) self G_GNUC_UNUSED = listener_ref (listener);

  g_clear_pointer (&listener->network_settle, g_source_unref);
  if (!listener->stopped && listener->timer != NULL)
    listener_restart_links (listener);
  return G_SOURCE_REMOVE;
}

/* In the listener's context */
static gboolean
network_changed_in_context (gpointer user_data)
{
  RndzListener *listener = user_data;

  if (listener->stopped)
    return G_SOURCE_REMOVE;
  rndz_source_clear (&listener->network_settle);
  listener->network_settle = rndz_timeout_add (listener->context, NETWORK_SETTLE_MS,
                                               network_settled_cb, listener);
  return G_SOURCE_REMOVE;
}

/* The monitor signals in the context it was made in, which may be
 * another thread's */
static void
network_changed_cb (GNetworkMonitor *monitor,
                    gboolean         available,
                    gpointer         user_data)
{
  RndzListener *listener = user_data;

  g_main_context_invoke_full (listener->context, G_PRIORITY_DEFAULT, network_changed_in_context,
                              listener_ref (listener), g_object_unref);
}

static void
listener_watch_network (RndzListener *listener)
{
  listener->monitor = g_object_ref (g_network_monitor_get_default ());
  listener->monitor_id = g_signal_connect (listener->monitor, "network-changed",
                                           G_CALLBACK (network_changed_cb), listener);
}

static void
listener_unwatch_network (RndzListener *listener)
{
  rndz_source_clear (&listener->network_settle);
  if (listener->monitor == NULL)
    return;
  g_clear_signal_handler (&listener->monitor_id, listener->monitor);
  g_clear_object (&listener->monitor);
}

/* Starting */

static void
link_free (Link *link)
{
  g_clear_pointer (&link->answers, g_ptr_array_unref);
  g_clear_pointer (&link->conn, rndz_server_link_free);
  g_clear_error (&link->refused);
  g_free (link);
}

static gboolean
listener_bind (RndzListener  *listener,
               GError       **error)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) filter_error = NULL;
  GSocketType type = listener->transport == RNDZ_TRANSPORT_UDP ?
    G_SOCKET_TYPE_DATAGRAM : G_SOCKET_TYPE_STREAM;

  listener->socket = rndz_peer_context_bind (listener->peer, listener->family, type, 0, error);
  if (listener->socket == NULL)
    return FALSE;

  /* The application's socket: no message of the protocol is ever its
   * (a requester's late check, say, from an address no check socket
   * is connected to) */
  if (listener->transport == RNDZ_TRANSPORT_UDP &&
      !rndz_udp_filter_set (listener->socket, RNDZ_UDP_FILTER_APPLICATION, &filter_error))
    g_debug ("The listening socket is not filtered: %s", filter_error->message);

  if (listener->transport == RNDZ_TRANSPORT_TCP)
    {
      if (!g_socket_listen (listener->socket, error))
        return FALSE;

      listener->acceptor = rndz_acceptor_new (listener->socket, listener->context, MAX_INCOMING,
                                              rndz_listener_accepted, listener,
                                              "[rndz] listener accept");
    }

  local = g_socket_get_local_address (listener->socket, error);
  if (local == NULL)
    return FALSE;

  listener->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  return TRUE;
}

static void
resolved_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(RndzListener) listener = user_data;
  g_autoptr(GArray) servers = NULL;
  g_autoptr(GError) error = NULL;

  servers = rndz_resolve_servers_finish (result, &error);
  if (listener->stopped)
    return;

  if (servers == NULL)
    {
      listener_finish_start (listener, g_steal_pointer (&error));
      return;
    }

  listener->family = rndz_peer_context_pick_family (listener->peer, servers);
  if (!listener_bind (listener, &error))
    {
      listener_finish_start (listener, g_steal_pointer (&error));
      return;
    }

  for (guint i = 0; i < servers->len; i++)
    {
      Link *link = g_new0 (Link, 1);

      link->listener = listener;
      link->conn = rndz_server_link_new (listener->peer, listener->transport, listener->family,
                                         &g_array_index (servers, RndzAddr, i),
                                         link_conn_cb, link);
      link->backoff_ms = RNDZ_RETRY_INITIAL_MS;
      link->answers = g_ptr_array_new_with_free_func ((GDestroyNotify) answer_free);
      g_ptr_array_add (listener->links, link);

      if (listener->transport == RNDZ_TRANSPORT_UDP &&
          !rndz_server_link_open (link->conn, listener->port, &error))
        {
          g_debug ("Cannot use server %u: %s", i, error->message);
          link->refused = g_steal_pointer (&error);
          link->next_action = G_MAXINT64;
        }
    }

  listener->timer = rndz_deadline_source_new (listener->context, "[rndz] listener keepalive",
                                              timer_cb, listener);
  rndz_deadline_source_arm (listener->timer, 0);
  listener_watch_network (listener);
  listener_start_mapping (listener);

  listener_set_state (listener, RNDZ_CLIENT_STATE_REGISTERING, FALSE);
  listener_check_refused (listener);
}

static void
rndz_listener_init (RndzListener *listener)
{
  listener->cancellable = g_cancellable_new ();
  listener->links = g_ptr_array_new_with_free_func ((GDestroyNotify) link_free);
  rndz_listener_requests_init (listener);
  listener->state = RNDZ_CLIENT_STATE_IDLE;
}

RndzListener *
rndz_listener_new (RndzPeerContext *peer,
                   RndzTransport    transport)
{
  RndzListener *listener = g_object_new (RNDZ_TYPE_LISTENER, NULL);

  listener->peer = rndz_peer_context_ref (peer);
  listener->context = g_main_context_ref (peer->context);
  listener->transport = transport;
  return listener;
}

void
rndz_listener_start (RndzListener *listener,
                     GTask        *task)
{
  GCancellable *cancellable = g_task_get_cancellable (task);

  listener->start_task = task;
  listener->start_timeout = rndz_timeout_add (listener->context, listener->peer->timeout_ms,
                                              start_timeout_cb, listener);
  if (cancellable != NULL)
    {
      listener->start_cancel = g_cancellable_source_new (cancellable);
      g_source_set_callback (listener->start_cancel, G_SOURCE_FUNC (start_cancelled_cb),
                             listener, NULL);
      g_source_attach (listener->start_cancel, listener->context);
    }

  rndz_resolve_servers_async (listener->peer, listener->cancellable,
                              resolved_cb, listener_ref (listener));
}

/* Accepting */

GSocket *
rndz_listener_get_socket (RndzListener *listener)
{
  return listener->socket;
}

guint16
rndz_listener_get_port (RndzListener *listener)
{
  return listener->stopped ? 0 : listener->port;
}

RndzTransport
rndz_listener_get_transport (RndzListener *listener)
{
  return listener->transport;
}

gboolean
rndz_listener_is_active (RndzListener *listener)
{
  return !listener->stopped;
}

/* Stopping */

static void
listener_say_bye (RndzListener *listener)
{
  RndzMessage bye;

  rndz_message_init (&bye, RNDZ_MESSAGE_BYE, rndz_new_tid ());
  g_strlcpy (bye.id, listener->peer->id, sizeof bye.id);

  for (guint i = 0; i < listener->links->len; i++)
    {
      Link *link = g_ptr_array_index (listener->links, i);

      /* Each signature is good once, and for one server */
      rndz_peer_context_sign (listener->peer, rndz_server_link_get_server (link->conn), &bye);
      if (link->last_pong != 0)
        link_send (link, &bye);
    }
}

/* Closes every socket and source of the listener; tasks still waiting
 * fail. Safe to call from the listener's own callbacks: the memory goes
 * with the last reference. */
static void
listener_free_resources (RndzListener *listener)
{
  if (listener->stopped)
    return;
  listener->stopped = TRUE;

  g_cancellable_cancel (listener->cancellable);
  listener_unwatch_network (listener);
  rndz_source_clear (&listener->timer);
  g_clear_pointer (&listener->acceptor, rndz_acceptor_free);

  g_ptr_array_set_size (listener->links, 0);
  /* The router forgets the mapping now, not when its lease runs out */
  g_clear_pointer (&listener->portmap, rndz_portmap_free);
  rndz_listener_mapped_close (listener);
  memset (&listener->mapped, 0, sizeof listener->mapped);
  if (listener->transport == RNDZ_TRANSPORT_TCP && listener->socket != NULL)
    g_socket_close (listener->socket, NULL);
  rndz_listener_requests_clear (listener);

  listener_set_state (listener, RNDZ_CLIENT_STATE_IDLE, FALSE);
}

static void
listener_stop (RndzListener *listener)
{
  if (!listener->stopped)
    listener_say_bye (listener);

  listener_finish_start (listener,
                         g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                              _("The client stopped listening")));
  listener_free_resources (listener);
}

static void
rndz_listener_dispose (GObject *object)
{
  listener_stop (RNDZ_LISTENER (object));

  G_OBJECT_CLASS (rndz_listener_parent_class)->dispose (object);
}

static void
rndz_listener_finalize (GObject *object)
{
  RndzListener *listener = RNDZ_LISTENER (object);

  g_ptr_array_unref (listener->links);
  rndz_listener_requests_finalize (listener);
  g_clear_object (&listener->socket);
  g_clear_object (&listener->cancellable);
  g_clear_pointer (&listener->context, g_main_context_unref);
  g_clear_pointer (&listener->peer, rndz_peer_context_unref);

  G_OBJECT_CLASS (rndz_listener_parent_class)->finalize (object);
}

/* Stops listening: says bye to the servers, fails the start if it was
 * still running, and releases every socket and source. Safe to call from
 * the listener's own signal handlers, and more than once. */
void
rndz_listener_stop (RndzListener *listener)
{
  g_autoptr(RndzListener) self G_GNUC_UNUSED = g_object_ref (listener);

  listener_stop (listener);
}

RndzClientState
rndz_listener_get_state (RndzListener *listener)
{
  return listener->state;
}

gint64
rndz_listener_get_last_pong (RndzListener *listener)
{
  return listener->last_pong;
}

static void
rndz_listener_class_init (RndzListenerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = rndz_listener_dispose;
  object_class->finalize = rndz_listener_finalize;

  /* A requester asks for us: returns whether it may come in */
  signals[SIGNAL_PEER_REQUEST] =
    g_signal_new ("peer-request", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_BOOLEAN, 3, G_TYPE_STRING, G_TYPE_SOCKET_ADDRESS, G_TYPE_STRING);

  /* A UDP peer came on a socket of its own: connected to it, so that
   * only its datagrams reach it, and filtered (rndz-udp-filter.c) */
  signals[SIGNAL_PEER_SOCKET] =
    g_signal_new ("peer-socket", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_SOCKET);

  /* Whether the application takes peers on sockets of their own (else
   * a direct peer's datagrams go to the listening socket); no handler:
   * FALSE */
  signals[SIGNAL_PEER_SOCKET_WANTED] =
    g_signal_new ("peer-socket-wanted", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, g_signal_accumulator_first_wins, NULL, NULL, G_TYPE_BOOLEAN, 0);

  /* The state changed, or a server answered (last-pong) */
  signals[SIGNAL_STATE_CHANGED] =
    g_signal_new ("state-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}
