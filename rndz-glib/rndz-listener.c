/* rndz-listener.c: the listening side of RndzClient
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include "rndz-listener-private.h"
#include "rndz-channel-private.h"
#include "rndz-connect-private.h"
#include "rndz-connect-attempt-private.h"
#include "rndz-frame-reader-private.h"
#include "rndz-hard-nat-private.h"
#include "rndz-i18n-private.h"
#include "rndz-relay-join-private.h"
#include "rndz-server-link-private.h"
#include "rndz-socket-private.h"
#include "rndz-udp-private.h"
#include "rndz-source-private.h"

/* A listener binds one port P and talks to every server from it.
 *
 * UDP: the application's socket is bound to P and not connected; for each
 * server there is one more socket bound to P and connected to that server,
 * so the kernel hands the server's datagrams to it and everything else to
 * the application's socket.
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
 * address, which the application's socket must not see; it confirms
 * them. The requester then picks one path with a "use": its check socket
 * closes, then the answer leaves from the application's socket, so what
 * the peer sends after it reaches the application's socket.
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

/* Requests answered recently, so that a retransmitted fsync punches once */
#define RECENT_REQUESTS 32
/* Connections that came in and wait for accept; more are closed */
#define MAX_INCOMING 64
#define PUNCH_RETRY_INITIAL_MS 50
/* How long a connection may take to say it is the one */
#define USE_TIMEOUT_MS 5000
/* Relay sessions joined recently, so that a repeated session joins once */
#define RECENT_SESSIONS 8
/* Hard NATs: a probe's check socket waits this long for an answer (an
 * answer that comes later reaches the application's socket) */
#define PROBE_LIFETIME_MS 500
/* At most so many check sockets at once, and requesters sprayed for */
#define MAX_CHECKS 512
#define MAX_SPRAYS 2

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
};

/* A TCP connect towards a peer that asked for us */
typedef struct
{
  RndzListener *listener;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  RndzAddr addr;
  RndzPath path;
  gint64 deadline;
  GSocket *socket;
  RndzConnectAttempt *attempt;
  GSource *retry;
  GSource *expire;
  guint delay_ms;
} Punch;

/* UDP: a check socket, on P and connected to one address of a requester */
typedef struct
{
  RndzListener *listener;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  RndzAddr addr;
  GSocket *socket;
  GSource *source;
  GSource *expire;
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

/* TCP: a connection waiting for its "use" frame, or a relay being joined */
typedef struct
{
  RndzListener *listener;       /* a reference */
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  GSocket *socket;
  RndzPath path;
} Pending;

/* An accept waiting for a connection */
typedef struct
{
  RndzListener *listener;
  GTask *task;
  GSource *cancel_source;
} Waiter;

struct _RndzListener
{
  GObject parent_instance;

  RndzPeerContext *peer;        /* who we are */
  GMainContext *context;        /* peer->context */
  RndzTransport transport;
  gboolean stopped;

  GCancellable *cancellable;
  GTask *start_task;
  GSource *start_timeout;
  GSource *start_cancel;

  GSocketFamily family;
  GSocket *socket;              /* UDP: the application's; TCP: listening */
  guint16 port;
  GSource *accept_source;

  GPtrArray *links;
  GSource *timer;
  RndzClientState state;
  gint64 last_pong;             /* real time, 0 if never */

  struct
  {
    RndzAddr addr;
    guint32 tid;
    gboolean refused;
    char peer_id[RNDZ_ID_MAX_LEN + 1];
  } recent[RECENT_REQUESTS];
  guint recent_next;

  char sessions[RECENT_SESSIONS][RNDZ_TOKEN_LEN + 1];
  guint sessions_next;

  GHashTable *punches;          /* RndzAddr → Punch */
  GHashTable *checks;           /* RndzAddr → Check */
  GHashTable *hards;            /* RndzAddr (the requester's) → Hard */
  RndzAddr cands[RNDZ_MAX_CANDIDATES];  /* ours, as of cands_time */
  guint n_cands;
  gint64 cands_time;            /* monotonic, 0 if never */
  RndzProbeBudget probes;       /* for all requesters */
  GQueue incoming;              /* RndzIncoming */
  GQueue waiters;               /* Waiter */
};

static void listener_schedule (RndzListener *listener, gint64 when);
static void listener_free_resources (RndzListener *listener);
static void listener_update_state (RndzListener *listener);
static void link_connect (Link *link);
static void link_failed (Link *link, const GError *error, gint64 now);

enum
{
  SIGNAL_PEER_REQUEST,
  SIGNAL_PEER_SOCKET,
  SIGNAL_STATE_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (RndzListener, rndz_listener, G_TYPE_OBJECT)

#define listener_ref g_object_ref

void
rndz_incoming_free (RndzIncoming *incoming)
{
  if (incoming->connection != NULL)
    {
      g_io_stream_close (G_IO_STREAM (incoming->connection), NULL, NULL);
      g_object_unref (incoming->connection);
    }
  g_free (incoming->peer_id);
  g_free (incoming);
}

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

/* Asks the application whether a requester may come in. Its handler
 * may even stop us: callers hold a reference and check listener->stopped */
static gboolean
listener_ask (RndzListener   *listener,
              const char     *peer_id,
              const RndzAddr *addr)
{
  g_autoptr(GSocketAddress) address = NULL;
  gboolean allowed = TRUE;

  if (!g_signal_has_handler_pending (listener, signals[SIGNAL_PEER_REQUEST], 0, FALSE))
    return TRUE;

  address = rndz_addr_to_socket_address (addr, G_SOCKET_FAMILY_INVALID);
  g_signal_emit (listener, signals[SIGNAL_PEER_REQUEST], 0, peer_id, address, &allowed);
  return allowed;
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
  rndz_peer_context_sign (link->listener->peer, &ping);
  /* The server answers no datagram with a larger one */
  if (link->listener->transport == RNDZ_TRANSPORT_UDP)
    ping.pad_to = rndz_message_max_reply_size (&ping);
  link_send (link, &ping);
}

static gboolean
link_is_alive (Link   *link,
               gint64  now)
{
  gint64 limit = 2 * (gint64) keepalive_ms (link->listener) * 1000 + G_USEC_PER_SEC;

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

/* Looks up a forwarded request among the recent ones; with @add, makes
 * room for it if it is new. Returns its index, or -1. */
static int
listener_find_request (RndzListener   *listener,
                       const RndzAddr *addr,
                       guint32         tid,
                       gboolean        add)
{
  int i;

  for (i = 0; i < RECENT_REQUESTS; i++)
    if (listener->recent[i].tid == tid && rndz_addr_equal (&listener->recent[i].addr, addr))
      return i;

  if (!add)
    return -1;

  i = listener->recent_next;
  listener->recent[i].addr = *addr;
  listener->recent[i].tid = tid;
  listener->recent[i].refused = FALSE;
  listener->recent[i].peer_id[0] = '\0';
  listener->recent_next = (listener->recent_next + 1) % RECENT_REQUESTS;
  return i;
}

static void
listener_deliver (RndzListener *listener,
                  const char   *peer_id,
                  GSocket      *socket,
                  RndzPath      path)
{
  RndzIncoming *incoming = g_new0 (RndzIncoming, 1);
  Waiter *waiter;

  rndz_socket_set_path (socket, path);
  incoming->connection = g_socket_connection_factory_create_connection (socket);
  incoming->peer_id = g_strdup (peer_id);
  g_socket_set_blocking (socket, TRUE);

  waiter = g_queue_pop_head (&listener->waiters);
  if (waiter != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

      rndz_source_clear (&waiter->cancel_source);
      g_free (waiter);
      g_task_return_pointer (task, incoming, (GDestroyNotify) rndz_incoming_free);
      return;
    }

  if (listener->incoming.length >= MAX_INCOMING)
    {
      g_debug ("Closing the connection of “%s”: nobody accepts", peer_id);
      rndz_incoming_free (incoming);
      return;
    }

  g_queue_push_tail (&listener->incoming, incoming);
}

/* TCP: the requester names the connection it keeps with a "use" frame.
 * Exactly that frame is read: the bytes after it are the application's. */
static void
pending_free (Pending *pending)
{
  if (pending->socket != NULL)
    g_socket_close (pending->socket, NULL);
  g_clear_object (&pending->socket);
  g_object_unref (pending->listener);
  g_free (pending);
}

static gboolean
remove_punch_of (gpointer key,
                 gpointer value,
                 gpointer user_data)
{
  Punch *punch = value;

  return g_str_equal (punch->peer_id, user_data);
}

static void
use_read_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Pending *pending = user_data;
  RndzListener *listener = pending->listener;
  g_autoptr(GError) error = NULL;
  RndzMessage msg;

  if (!rndz_frame_read_finish (result, &msg, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("Closing a connection of “%s”: %s", pending->peer_id, error->message);
    }
  else if (listener->stopped)
    ;
  else if (msg.type != RNDZ_MESSAGE_USE || !g_str_equal (msg.id, pending->peer_id) ||
           !g_str_equal (msg.target, listener->peer->id))
    g_debug ("Closing a connection of “%s”: it did not choose it", pending->peer_id);
  else
    {
      g_autoptr(GSocket) socket = g_steal_pointer (&pending->socket);

      /* The requester keeps this one: the others towards it are moot */
      g_hash_table_foreach_remove (listener->punches, remove_punch_of, pending->peer_id);
      listener_deliver (listener, pending->peer_id, socket, pending->path);
    }

  pending_free (pending);
}

static void
listener_wait_for_use (RndzListener *listener,
                       const char   *peer_id,
                       GSocket      *socket,
                       RndzPath      path)
{
  Pending *pending = g_new0 (Pending, 1);

  pending->listener = listener_ref (listener);
  g_strlcpy (pending->peer_id, peer_id, sizeof pending->peer_id);
  pending->socket = g_object_ref (socket);
  pending->path = path;
  rndz_frame_read_async (socket, listener->context, RNDZ_MESSAGE_DEFAULT_MAX_SIZE,
                         USE_TIMEOUT_MS, listener->cancellable, use_read_cb, pending);
}

static void
punch_free (Punch *punch)
{
  g_clear_pointer (&punch->attempt, rndz_connect_attempt_free);
  rndz_source_clear (&punch->retry);
  rndz_source_clear (&punch->expire);
  if (punch->socket != NULL)
    g_socket_close (punch->socket, NULL);
  g_clear_object (&punch->socket);
  g_free (punch);
}

static void punch_try (Punch *punch);

static gboolean
punch_retry_cb (gpointer user_data)
{
  Punch *punch = user_data;

  g_clear_pointer (&punch->retry, g_source_unref);
  punch_try (punch);
  return G_SOURCE_REMOVE;
}

static void
punch_connected_cb (GSocket      *socket,
                    const GError *error,
                    gpointer      user_data)
{
  Punch *punch = user_data;
  RndzListener *listener = punch->listener;

  g_clear_pointer (&punch->attempt, rndz_connect_attempt_free);

  if (error == NULL)
    {
      g_autoptr(GSocket) connected = g_steal_pointer (&punch->socket);
      char peer_id[RNDZ_ID_MAX_LEN + 1];
      RndzPath path = punch->path;

      g_strlcpy (peer_id, punch->peer_id, sizeof peer_id);
      g_hash_table_remove (listener->punches, &punch->addr);
      listener_wait_for_use (listener, peer_id, connected, path);
      return;
    }

  /* The requester's SYN has not left its NAT yet, or it already reached
   * our listening socket: try again until the deadline. */
  g_socket_close (punch->socket, NULL);
  g_clear_object (&punch->socket);
  if (g_get_monotonic_time () + punch->delay_ms * 1000 > punch->deadline)
    {
      g_debug ("Giving up connecting to “%s”: %s", punch->peer_id, error->message);
      g_hash_table_remove (listener->punches, &punch->addr);
      return;
    }

  punch->retry = rndz_timeout_add (listener->context, punch->delay_ms, punch_retry_cb, punch);
  punch->delay_ms = MIN (punch->delay_ms * 2, RNDZ_RETRY_MAX_MS);
}

static void
punch_try (Punch *punch)
{
  RndzListener *listener = punch->listener;
  g_autoptr(GError) error = NULL;

  punch->socket = rndz_peer_context_bind (listener->peer, listener->family,
                                    G_SOCKET_TYPE_STREAM, listener->port, &error);
  if (punch->socket == NULL)
    {
      g_debug ("Cannot bind a socket towards “%s”: %s", punch->peer_id, error->message);
      g_hash_table_remove (listener->punches, &punch->addr);
      return;
    }

  punch->attempt = rndz_connect_attempt_new (punch->socket, &punch->addr, listener->context,
                                             punch_connected_cb, punch);
}

/* A message of ours to the requester @peer_id */
static void
init_to_requester (RndzListener    *listener,
                   RndzMessageType  type,
                   guint32          tid,
                   const char      *peer_id,
                   RndzMessage     *msg)
{
  rndz_message_init (msg, type, tid);
  g_strlcpy (msg->id, listener->peer->id, sizeof msg->id);
  g_strlcpy (msg->target, peer_id, sizeof msg->target);
}

/* Our answer to a forwarded request: to the server, and as the punch */
static void
init_rsync (RndzListener      *listener,
            const RndzMessage *fsync,
            RndzMessage       *rsync)
{
  init_to_requester (listener, RNDZ_MESSAGE_RSYNC, fsync->tid, fsync->id, rsync);
}

static void
link_reply_rsync (Link              *link,
                  const RndzMessage *fsync)
{
  RndzMessage rsync;

  init_rsync (link->listener, fsync, &rsync);
  rndz_peer_context_sign (link->listener->peer, &rsync);
  link_send (link, &rsync);
}

/* UDP check sockets */

static void
check_free (Check *check)
{
  rndz_source_clear (&check->source);
  rndz_source_clear (&check->expire);
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

  init_to_requester (listener, type, msg->tid, peer_id, &answer);
  return rndz_message_encode (&answer, buf, RNDZ_MESSAGE_DEFAULT_MAX_SIZE);
}

static void hard_forget (RndzListener *listener, const char *peer_id);

/* The requester takes this path. The check socket goes first, then the
 * answer leaves from the application's socket (the same port, so the
 * same NAT mapping): the requester sends nothing before it has the
 * answer, and by then nothing but the application's socket can catch
 * what it sends. Frees @check. */
static void
check_hand_over (Check             *check,
                 const RndzMessage *use)
{
  RndzListener *listener = check->listener;
  g_autoptr(GSocketAddress) to = rndz_addr_to_socket_address (&check->addr, listener->family);
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  char text[RNDZ_ADDR_STRLEN];
  gsize len = encode_answer (listener, check->peer_id, RNDZ_MESSAGE_USE, use, buf);

  g_debug ("“%s” reaches us from %s", check->peer_id, rndz_addr_format (&check->addr, text));
  hard_forget (listener, check->peer_id);
  g_hash_table_remove (listener->checks, &check->addr);
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

/* A check or a use from the requester, on its check socket */
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
    return TRUE;

  if (msg->type == RNDZ_MESSAGE_USE)
    {
      check_hand_over (check, msg);
      return FALSE;
    }
  if (msg->type != RNDZ_MESSAGE_CHECK)
    return TRUE;

  /* Confirmed from the check socket, which stays for the use (a probe's
   * too, which had a short life until now). The requester reaches us,
   * and the confirm goes back the way the check came: no need for the
   * hard-NAT phase. */
  len = encode_answer (listener, check->peer_id, RNDZ_MESSAGE_CONFIRM, msg, buf);
  rndz_udp_send (check->socket, NULL, buf, len, "confirm");
  hard_forget (listener, check->peer_id);
  rndz_source_clear (&check->expire);
  check->expire = rndz_timeout_add (listener->context, listener->peer->timeout_ms,
                                    check_expire_cb, check);
  return TRUE;
}

static gboolean
check_read_cb (GSocket      *socket,
               GIOCondition  condition,
               gpointer      user_data)
{
  Check *check = user_data;
  g_autoptr(RndzListener) listener = listener_ref (check->listener);
  g_autoptr(GError) error = NULL;

  if (rndz_udp_read_messages (socket, FALSE, check_handle, check, &error))
    return G_SOURCE_CONTINUE;
  if (error == NULL)
    return G_SOURCE_REMOVE;       /* handed over: the check is gone */

  /* Our punch met a closed port or a rejecting router, which may open
   * later: not a reason to give up the path */
  if (rndz_udp_error_is_icmp (error))
    return G_SOURCE_CONTINUE;

  g_debug ("The check socket towards “%s” failed: %s", check->peer_id, error->message);
  g_hash_table_remove (listener->checks, &check->addr);
  return G_SOURCE_REMOVE;
}

/* A check socket towards @addr for @fsync's requester, for @ms: new, or
 * the one there is. NULL if none can be opened. */
static Check *
check_open (RndzListener      *listener,
            const RndzMessage *fsync,
            const RndzAddr    *addr,
            guint              ms)
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
                                                    G_SOCKET_TYPE_DATAGRAM, listener->port, &error);

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

  /* The latest request from there owns it, for as long as it may take */
  g_strlcpy (check->peer_id, fsync->id, sizeof check->peer_id);
  rndz_source_clear (&check->expire);
  check->expire = rndz_timeout_add (listener->context, ms, check_expire_cb, check);
  return check;
}

/* A datagram from our port to the requester opens our NAT for it. It is
 * an rsync, so a requester that does receive it can tell it apart; it
 * leaves from a check socket that then catches the requester's checks. */
static void
punch_udp (RndzListener      *listener,
           const RndzMessage *fsync,
           const RndzAddr    *addr)
{
  RndzMessage rsync;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;
  Check *check;

  init_rsync (listener, fsync, &rsync);
  len = rndz_message_encode (&rsync, buf, sizeof buf);

  check = check_open (listener, fsync, addr, listener->peer->timeout_ms);
  if (check != NULL)
    rndz_udp_send (check->socket, NULL, buf, len, "punch");
  else
    {
      /* Without a check socket the punch still opens the NAT */
      g_autoptr(GSocketAddress) to = rndz_addr_to_socket_address (addr, listener->family);

      if (to != NULL)
        rndz_udp_send (listener->socket, to, buf, len, "punch");
    }
}

/* Hard NATs (rndz-hard-nat.c) */

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
static void
hard_forget (RndzListener *listener,
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

/* The friendly side: check sockets towards random ports of the
 * requester's public address, each with a punch, while the budget lasts */
/* One probe, from a check socket of its own bound to our port: it
 * catches the requester's check if the probe found its mapping. The
 * listener's budget bounds what a forged request can aim at anyone. */
static RndzProbeResult
hard_probe (const RndzAddr *to,
            gpointer        user_data)
{
  Hard *hard = user_data;
  RndzListener *listener = hard->listener;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage rsync;
  Check *check;

  if (g_hash_table_size (listener->checks) >= MAX_CHECKS)
    return RNDZ_PROBE_WAIT;
  /* Not over a check socket of a path already being checked */
  if (g_hash_table_contains (listener->checks, to))
    return RNDZ_PROBE_SKIPPED;
  if (!rndz_probe_budget_take (&listener->probes, g_get_monotonic_time ()))
    return RNDZ_PROBE_STOP;

  check = check_open (listener, &hard->fsync, to, PROBE_LIFETIME_MS);
  if (check == NULL)
    return RNDZ_PROBE_WAIT;
  init_rsync (listener, &hard->fsync, &rsync);
  if (!rndz_udp_send (check->socket, NULL, buf, rndz_message_encode (&rsync, buf, sizeof buf),
                      "probe"))
    return RNDZ_PROBE_WAIT;
  return RNDZ_PROBE_SENT;
}

static gboolean
is_peer_control (const RndzMessage *msg,
                 gpointer           user_data)
{
  return msg->type == RNDZ_MESSAGE_CHECK || msg->type == RNDZ_MESSAGE_USE;
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
      len = encode_answer (listener, hard->fsync.id, RNDZ_MESSAGE_CONFIRM, msg, buf);
      rndz_udp_send (socket, to, buf, len, "confirm");
      return;
    }
  if (msg->type != RNDZ_MESSAGE_USE)
    return;

  /* The requester takes this path: the socket is the application's */
  len = encode_answer (listener, hard->fsync.id, RNDZ_MESSAGE_USE, msg, buf);
  rndz_udp_send (socket, to, buf, len, "answer to a use");
  taken = rndz_spray_take (spray, socket);
  g_strlcpy (peer_id, hard->fsync.id, sizeof peer_id);
  hard_forget (listener, peer_id);

  if (!g_socket_connect (taken, to, NULL, NULL))
    return;
  rndz_udp_drain (taken, is_peer_control, NULL);
  rndz_socket_set_path (taken, RNDZ_PATH_DIRECT);
  g_debug ("“%s” reaches us from %s, on a port of its own", peer_id,
           rndz_addr_format (from, text));
  g_signal_emit (listener, signals[SIGNAL_PEER_SOCKET], 0, peer_id, taken);
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

/* No path has worked yet. If the requester's NAT changed its port, it is
 * the hard side: probe for its mappings. If it kept it, we may be the
 * hard side: open mappings for it to find; and if ours kept our port
 * too, probe as well: the requester's NAT may have given our address a
 * port of its own after all (a mapping of its port was taken, say). */
static gboolean
hard_start_cb (gpointer user_data)
{
  Hard *hard = user_data;
  RndzListener *listener = hard->listener;
  const RndzMessage *fsync = &hard->fsync;
  gboolean rewrites = rndz_nat_rewrites_port (&fsync->addr, fsync->cands, fsync->n_cands);

  g_clear_pointer (&hard->timer, g_source_unref);
  if (fsync->n_cands == 0)
    return G_SOURCE_REMOVE;

  if (rewrites || hard->port_kept)
    {
      g_debug ("No path from “%s” yet: probing its address", fsync->id);
      hard->prober = rndz_prober_new (listener->context, &fsync->addr, fsync->id, hard_probe, hard);
    }
  if (!rewrites && count_sprays (listener) < MAX_SPRAYS)
    {
      RndzMessage rsync;

      init_rsync (listener, fsync, &rsync);
      hard->spray = rndz_spray_new (listener->peer, listener->family, &fsync->addr, &rsync,
                                    listener->context, hard_spray_cb, hard);
      g_debug ("No path from “%s” yet: %u mappings towards it", fsync->id,
               rndz_spray_get_size (hard->spray));
    }

  return G_SOURCE_REMOVE;
}

/* A new request: if no path works soon, the hard-NAT phase starts. It
 * ends with the requester's direct timeout, if ours is the same. */
static void
hard_watch (RndzListener      *listener,
            Link              *link,
            const RndzMessage *fsync)
{
  guint direct_ms = listener->peer->direct_timeout_ms;
  Hard *hard;

  if (g_hash_table_contains (listener->hards, &fsync->addr) || direct_ms <= RNDZ_HARD_NAT_DELAY_MS)
    return;

  hard = g_new0 (Hard, 1);
  hard->listener = listener;
  hard->fsync = *fsync;
  hard->port_kept = link->observed.port == listener->port;
  hard->timer = rndz_timeout_add (listener->context, RNDZ_HARD_NAT_DELAY_MS, hard_start_cb, hard);
  hard->expire = rndz_timeout_add (listener->context, direct_ms, hard_expire_cb, hard);
  g_hash_table_insert (listener->hards, &hard->fsync.addr, hard);
}

/* A SYN that the other side's firewall drops is retried by the kernel for
 * minutes: give up on our own deadline instead. */
static gboolean
punch_expire_cb (gpointer user_data)
{
  Punch *punch = user_data;

  g_debug ("Giving up connecting to “%s”: timed out", punch->peer_id);
  g_clear_pointer (&punch->expire, g_source_unref);
  g_hash_table_remove (punch->listener->punches, &punch->addr);
  return G_SOURCE_REMOVE;
}

static void
punch_tcp (RndzListener      *listener,
           const RndzMessage *fsync,
           const RndzAddr    *addr,
           RndzPath           path)
{
  gint64 timeout = (gint64) listener->peer->timeout_ms * 1000;
  Punch *punch;

  /* Already connecting towards that address */
  if (g_hash_table_contains (listener->punches, addr))
    return;

  punch = g_new0 (Punch, 1);

  punch->listener = listener;
  g_strlcpy (punch->peer_id, fsync->id, sizeof punch->peer_id);
  punch->addr = *addr;
  punch->path = path;
  punch->deadline = g_get_monotonic_time () + timeout;
  punch->delay_ms = PUNCH_RETRY_INITIAL_MS;
  punch->expire = rndz_timeout_add (listener->context, timeout / 1000, punch_expire_cb, punch);
  g_hash_table_insert (listener->punches, &punch->addr, punch);
  punch_try (punch);
}

static void
link_handle_fsync (Link              *link,
                   const RndzMessage *fsync)
{
  RndzListener *listener = link->listener;
  int request;

  if (listener->peer->require_auth && !fsync->auth)
    {
      g_debug ("Ignoring “%s”: the server did not authenticate it", fsync->id);
      return;
    }

  request = listener_find_request (listener, &fsync->addr, fsync->tid, FALSE);
  if (request < 0)
    {
      char addr[RNDZ_ADDR_STRLEN];
      gboolean allowed;

      g_debug ("“%s” at %s asks for us", fsync->id, rndz_addr_format (&fsync->addr, addr));
      request = listener_find_request (listener, &fsync->addr, fsync->tid, TRUE);

      /* The application decides first; its handler may even stop us */
      allowed = listener_ask (listener, fsync->id, &fsync->addr);
      if (listener->stopped)
        return;
      listener->recent[request].refused = !allowed;
      g_strlcpy (listener->recent[request].peer_id, fsync->id,
                 sizeof listener->recent[request].peer_id);

      /* Towards every address of the requester */
      for (guint i = 0; allowed && i <= fsync->n_cands; i++)
        {
          const RndzAddr *to = i == 0 ? &fsync->addr : &fsync->cands[i - 1];
          RndzPath path = i == 0 ? RNDZ_PATH_DIRECT : RNDZ_PATH_LOCAL;

          if (to->family == 6 && listener->family != G_SOCKET_FAMILY_IPV6)
            continue;
          if (listener->transport == RNDZ_TRANSPORT_UDP)
            punch_udp (listener, fsync, to);
          else
            punch_tcp (listener, fsync, to, path);
        }
      if (allowed && listener->transport == RNDZ_TRANSPORT_UDP && rndz_connect_try_direct)
        hard_watch (listener, link, fsync);
    }

  /* A refused request gets no answer: the requester learns nothing more
   * than from a peer that went away */
  if (listener->recent[request].refused)
    {
      g_debug ("The application refused “%s”", fsync->id);
      return;
    }

  /* Every copy is answered: the server resends when ours was lost */
  link_reply_rsync (link, fsync);
}

/* The relay */

static void
relay_joined_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Pending *pending = user_data;
  RndzListener *listener = pending->listener;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = rndz_relay_join_finish (result, &error);
  if (socket == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("Could not join the relay for “%s”: %s", pending->peer_id, error->message);
    }
  else if (listener->stopped)
    g_socket_close (socket, NULL);
  else if (listener->transport == RNDZ_TRANSPORT_TCP)
    listener_deliver (listener, pending->peer_id, socket, RNDZ_PATH_RELAYED);
  else
    {
      g_debug ("“%s” comes through the relay", pending->peer_id);
      g_signal_emit (listener, signals[SIGNAL_PEER_SOCKET], 0, pending->peer_id, socket);
    }

  pending_free (pending);
}

/* The requester found no direct path, and the server relays the two of
 * us: join the relay, if the requester is one we let in. */
static void
link_handle_session (Link              *link,
                     const RndzMessage *session)
{
  RndzListener *listener = link->listener;
  gboolean allowed = FALSE;
  RndzAddr relay = *rndz_server_link_get_server (link->conn);
  Pending *pending;

  if (!listener->peer->relay)
    return;

  if (listener->peer->require_auth && !session->auth)
    {
      g_debug ("Ignoring a relay for “%s”: the server did not authenticate it", session->id);
      return;
    }

  for (guint i = 0; i < RECENT_REQUESTS; i++)
    allowed |= g_str_equal (listener->recent[i].peer_id, session->id) &&
               !listener->recent[i].refused;
  if (!allowed)
    {
      g_debug ("Ignoring a relay for “%s”: no request of it", session->id);
      return;
    }

  for (guint i = 0; i < RECENT_SESSIONS; i++)
    if (g_str_equal (listener->sessions[i], session->token))
      return;
  g_strlcpy (listener->sessions[listener->sessions_next], session->token,
             sizeof listener->sessions[0]);
  listener->sessions_next = (listener->sessions_next + 1) % RECENT_SESSIONS;

  g_debug ("Joining the relay for “%s”", session->id);
  hard_forget (listener, session->id);
  pending = g_new0 (Pending, 1);
  pending->listener = listener_ref (listener);
  g_strlcpy (pending->peer_id, session->id, sizeof pending->peer_id);
  relay.port = session->port;
  rndz_relay_join_async (listener->transport, listener->family, &relay,
                         listener->peer->id, session->token,
                         listener->peer->timeout_ms,
                         listener->context, listener->cancellable, relay_joined_cb, pending);
}

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
      g_clear_error (&link->refused);
      link->next_action = link->last_ping + (gint64) keepalive_ms (listener) * 1000;
      listener_schedule (listener, link->next_action);
      listener->last_pong = g_get_real_time ();
      listener_set_state (listener, listener->state, TRUE);
      listener_update_state (listener);
      if (listener->start_task != NULL)
        listener_finish_start (listener, NULL);
      break;

    case RNDZ_MESSAGE_FSYNC:
      link_handle_fsync (link, msg);
      break;

    case RNDZ_MESSAGE_SESSION:
      link_handle_session (link, msg);
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
  if (!rndz_server_link_open (link->conn, listener->port, &error))
    {
      g_debug ("Cannot bind a socket for the server: %s", error->message);
      link->next_action = link_backoff (link, g_get_monotonic_time ());
      listener_schedule (listener, link->next_action);
    }
}

/* Listening socket */

static gboolean
accept_cb (GSocket      *socket,
           GIOCondition  condition,
           gpointer      user_data)
{
  RndzListener *listener = user_data;

  for (guint i = 0; i < MAX_INCOMING && !listener->stopped; i++)
    {
      g_autoptr(GSocket) peer = NULL;
      g_autoptr(GSocketAddress) remote = NULL;
      RndzAddr addr;
      RndzPath path;
      Punch *punch;
      char peer_id[RNDZ_ID_MAX_LEN + 1];

      peer = g_socket_accept (socket, NULL, NULL);
      if (peer == NULL)
        break;

      remote = g_socket_get_remote_address (peer, NULL);
      punch = NULL;
      if (remote != NULL && rndz_addr_from_socket_address (&addr, remote))
        punch = g_hash_table_lookup (listener->punches, &addr);

      /* Only peers that asked a server for us get in */
      if (punch == NULL)
        {
          g_debug ("Closing a connection nobody asked the server for");
          g_socket_close (peer, NULL);
          continue;
        }

      g_strlcpy (peer_id, punch->peer_id, sizeof peer_id);
      path = punch->path;
      g_hash_table_remove (listener->punches, &addr);
      listener_wait_for_use (listener, peer_id, peer, path);
    }

  return G_SOURCE_CONTINUE;
}

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

  if (listener->transport == RNDZ_TRANSPORT_TCP && link->last_pong != 0 &&
      !link_is_alive (link, now))
    {
      g_debug ("The server stopped answering: connecting again");
      link->last_pong = 0;
      link_connect (link);
      return;
    }

  /* An unanswered ping is retried soon; an answered one waits for the
   * keepalive interval. */
  link->next_action = link->last_pong >= link->last_ping && link->last_pong != 0
    ? now + (gint64) keepalive_ms (listener) * 1000
    : link_backoff (link, now);
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

/* Starting */

static void
link_free (Link *link)
{
  g_clear_pointer (&link->conn, rndz_server_link_free);
  g_clear_error (&link->refused);
  g_free (link);
}

static gboolean
listener_bind (RndzListener  *listener,
               GError       **error)
{
  g_autoptr(GSocketAddress) local = NULL;
  GSocketType type = listener->transport == RNDZ_TRANSPORT_UDP ?
    G_SOCKET_TYPE_DATAGRAM : G_SOCKET_TYPE_STREAM;

  listener->socket = rndz_peer_context_bind (listener->peer, listener->family, type, 0, error);
  if (listener->socket == NULL)
    return FALSE;

  if (listener->transport == RNDZ_TRANSPORT_TCP)
    {
      if (!g_socket_listen (listener->socket, error))
        return FALSE;

      listener->accept_source = rndz_socket_source_add (listener->socket, listener->context,
                                                       accept_cb, listener,
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

  listener_set_state (listener, RNDZ_CLIENT_STATE_REGISTERING, FALSE);
  listener_check_refused (listener);
}

static void
rndz_listener_init (RndzListener *listener)
{
  listener->cancellable = g_cancellable_new ();
  listener->links = g_ptr_array_new_with_free_func ((GDestroyNotify) link_free);
  listener->punches = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                             (GEqualFunc) rndz_addr_equal,
                                             NULL, (GDestroyNotify) punch_free);
  listener->checks = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                            (GEqualFunc) rndz_addr_equal,
                                            NULL, (GDestroyNotify) check_free);
  listener->hards = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                           (GEqualFunc) rndz_addr_equal,
                                           NULL, (GDestroyNotify) hard_free);
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

static gboolean
waiter_cancelled_cb (GCancellable *cancellable,
                     gpointer      user_data)
{
  Waiter *waiter = user_data;
  g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

  g_queue_remove (&waiter->listener->waiters, waiter);
  g_clear_pointer (&waiter->cancel_source, g_source_unref);
  g_free (waiter);
  g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                           _("Operation was cancelled"));
  return G_SOURCE_REMOVE;
}

void
rndz_listener_accept (RndzListener *listener,
                      GTask        *task)
{
  GCancellable *cancellable = g_task_get_cancellable (task);
  RndzIncoming *incoming;
  Waiter *waiter;

  incoming = g_queue_pop_head (&listener->incoming);
  if (incoming != NULL)
    {
      g_task_return_pointer (task, incoming, (GDestroyNotify) rndz_incoming_free);
      g_object_unref (task);
      return;
    }

  waiter = g_new0 (Waiter, 1);
  waiter->listener = listener;
  waiter->task = task;
  if (cancellable != NULL)
    {
      waiter->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (waiter->cancel_source, G_SOURCE_FUNC (waiter_cancelled_cb),
                             waiter, NULL);
      g_source_attach (waiter->cancel_source, listener->context);
    }
  g_queue_push_tail (&listener->waiters, waiter);
}

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

      /* Each signature is good once */
      rndz_peer_context_sign (listener->peer, &bye);
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
  Waiter *waiter;

  if (listener->stopped)
    return;
  listener->stopped = TRUE;

  g_cancellable_cancel (listener->cancellable);
  rndz_source_clear (&listener->timer);
  rndz_source_clear (&listener->accept_source);

  g_ptr_array_set_size (listener->links, 0);
  g_hash_table_remove_all (listener->punches);
  g_hash_table_remove_all (listener->checks);
  g_hash_table_remove_all (listener->hards);
  g_queue_clear_full (&listener->incoming, (GDestroyNotify) rndz_incoming_free);

  if (listener->transport == RNDZ_TRANSPORT_TCP && listener->socket != NULL)
    g_socket_close (listener->socket, NULL);

  while ((waiter = g_queue_pop_head (&listener->waiters)) != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

      rndz_source_clear (&waiter->cancel_source);
      g_free (waiter);
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CLOSED,
                               _("The client stopped listening"));
    }

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
  g_hash_table_unref (listener->punches);
  g_hash_table_unref (listener->checks);
  g_hash_table_unref (listener->hards);
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
  g_autoptr(RndzListener) self = g_object_ref (listener);

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
                  G_TYPE_BOOLEAN, 2, G_TYPE_STRING, G_TYPE_SOCKET_ADDRESS);

  /* A UDP peer came on a socket of its own (relayed, or hard NAT) */
  signals[SIGNAL_PEER_SOCKET] =
    g_signal_new ("peer-socket", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_SOCKET);

  /* The state changed, or a server answered (last-pong) */
  signals[SIGNAL_STATE_CHANGED] =
    g_signal_new ("state-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}
