/* rndz-server.c: the rendezvous server
 *
 * SPDX-License-Identifier: MIT
 */

/**
 * RndzServer:
 *
 * A rendezvous server: it observes the public address of every peer that
 * registers with it and forwards connection requests between peers.
 *
 * The server serves TCP and UDP on one port. A peer registers by sending
 * `ping` messages with its id, at least once per
 * [property@Rndz.Server:peer-timeout]; a peer that wants to reach another
 * one sends `isync`, which the server forwards to the target as `fsync`
 * together with the requester's observed address. The target punches a hole
 * towards that address and answers `rsync`; the server then tells the
 * requester the target's observed address with `redirect`. The protocol is
 * described in `doc/protocol.md`.
 *
 * All sockets and timers of a server are attached to the
 * [struct@GLib.MainContext] that was the thread-default one when the server
 * was created; use the server from that context's thread only.
 *
 * The server never trusts what it reads: every message is bounded and
 * validated before it is parsed, malformed TCP input closes only the
 * connection it came on, malformed datagrams are dropped, and every table
 * the server keeps has a limit.
 *
 * Since: 1.0
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-server-private.h"
#include "rndz-enum-types.h"
#include "rndz-ratelimit-private.h"
#include "rndz-auth.h"
#include "rndz-channel-private.h"
#include "rndz-message-private.h"
#include "rndz-relay-private.h"
#include "rndz-i18n-private.h"

#define DEFAULT_PEER_TIMEOUT 60
#define DEFAULT_FORWARD_TIMEOUT 5
#define DEFAULT_REGISTER_TIMEOUT 10
#define DEFAULT_MAX_PEERS 100000
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_REQUEST_RATE 20
#define DEFAULT_RELAY_MAX_SESSIONS 64
#define DEFAULT_RELAY_RATE (1024 * 1024)
#define DEFAULT_RELAY_IDLE_TIMEOUT 60
#define MAX_RELAY_IDLE_TIMEOUT (7 * 24 * 3600)
/* Unregistered connections one address may hold: a single source cannot
 * push everyone else out */
#define MAX_UNREGISTERED_PER_ADDRESS 32
#define RATE_LIMIT_BUCKETS 4096
/* Authentication: how far a timestamp may be from the server's clock,
 * how many failures per second an address may cause before its messages
 * are dropped unread, and how many recent MACs are remembered against
 * replays (a full cache refuses rather than forgets). */
#define AUTH_WINDOW_MS (60 * 1000)
#define AUTH_FAILURE_RATE 10
/* Refusals (rate-limited, auth-required) per second and address: a flood
 * of refused requests gets one answer per second */
#define REFUSAL_RATE 1
#define REPLAY_CACHE_MAX 262144
/* One id's share: some 30 messages a second for two minutes */
#define REPLAY_PER_ID_MAX 4096
#define LISTEN_BACKLOG 128
/* Datagrams read per wake-up, so TCP connections get their turn */
#define UDP_BATCH 64
/* Outstanding forwarded requests; more is a flood, not a workload */
#define MAX_PENDING 4096

typedef struct _ServerConn ServerConn;

/* A registered peer. Kept small: a server may hold a million of them. */
typedef struct
{
  char *id;
  RndzAddr addr;
  guint8 transport;
  guint8 n_cands;
  gint64 last_seen;
  GList link;            /* in RndzServer.expiry, oldest first */
  ServerConn *conn;      /* TCP only */
  RndzAddr *cands;       /* its local addresses, if it gave any */
} Peer;

/* Where a message came from: what a reply needs */
typedef struct
{
  RndzTransport transport;
  RndzAddr from;
  ServerConn *conn;      /* TCP */
  gsize len;             /* the request's size: a UDP reply may not exceed it */
} Source;

/* A TCP connection accepted by the server */
struct _ServerConn
{
  RndzServer *server;
  RndzChannel *channel;
  Peer *peer;            /* the peer registered on it, if any */
  gint64 opened;
  GList link;            /* in RndzServer.unregistered while peer == NULL */
};

/* An isync forwarded to its target, waiting for the target's rsync */
typedef struct
{
  guint32 server_tid;
  guint32 requester_tid;
  gsize request_len;
  gboolean authenticated;
  RndzTransport transport;
  RndzAddr requester_addr;
  RndzAddr requester_cands[RNDZ_MAX_CANDIDATES];
  guint n_requester_cands;
  ServerConn *requester_conn;   /* TCP; NULL once that connection closed */
  char requester_id[RNDZ_ID_MAX_LEN + 1];
  char target_id[RNDZ_ID_MAX_LEN + 1];
  gint64 deadline;
  GList link;                   /* in RndzServer.pending, by deadline */
} Pending;

/* A signal owed to the handlers. Signals are emitted only when the work
 * that caused them is done (see server_enter()), because a handler may
 * stop the server, freeing the connections and peers that work uses. */
typedef struct
{
  guint signal_id;
  RndzTransport transport;
  RndzAddr addr;
  char id[RNDZ_ID_MAX_LEN + 1];
} ServerEvent;

/* Key of the UDP retransmission table: the same isync sent again */
typedef struct
{
  RndzAddr addr;
  guint32 tid;
} RequestKey;

struct _RndzServer
{
  GObject parent_instance;

  GMainContext *context;

  GSocket *udp_socket;
  GSocket *tcp_socket;
  GSocketFamily family;
  GSource *udp_source;
  GSource *tcp_source;
  GSource *timer;
  RndzPoller *poller;          /* all TCP connections */
  RndzRelay *relay;            /* while listening with a relay port */

  /* Registry, one table per transport: id → Peer */
  GHashTable *peers[2];
  GQueue expiry;

  GHashTable *conns;           /* ServerConn set */
  GQueue unregistered;
  GHashTable *unregistered_by_addr; /* RndzAddr without port → count */

  GHashTable *pending;         /* server tid → Pending */
  GHashTable *pending_by_request; /* RequestKey → Pending, UDP only */
  GQueue pending_queue;
  guint32 next_tid;

  GQueue events;               /* ServerEvent, in the order they happened */
  guint depth;                 /* server_enter() without server_leave() */

  RndzRateLimit *requester_limit;
  RndzRateLimit *target_limit;
  RndzRateLimit *refusal_limit;

  /* Authentication: off unless a secret or a key is set */
  GBytes *secret;
  GHashTable *keys;            /* id → GBytes */
  RndzRateLimit *auth_failures;
  GHashTable *replay;          /* set of the MACs of replay_queue */
  GQueue replay_queue;         /* ReplayEntry, oldest first */
  GHashTable *replay_per_id;   /* id → entries in the queue */
  RndzServerStats stats;
  RndzServerSendFunc send_func;
  gpointer send_data;

  guint peer_timeout;
  guint forward_timeout;
  guint register_timeout;
  guint max_peers;
  guint max_connections;
  guint max_message_size;
  guint request_rate;
  guint relay_port;
  guint relay_max_sessions;
  guint relay_rate;
  guint relay_idle_timeout;
  guint relay_join_timeout_ms;
};

enum
{
  PROP_0,
  PROP_PEER_TIMEOUT,
  PROP_FORWARD_TIMEOUT,
  PROP_REGISTER_TIMEOUT,
  PROP_MAX_PEERS,
  PROP_MAX_CONNECTIONS,
  PROP_MAX_MESSAGE_SIZE,
  PROP_REQUEST_RATE,
  PROP_RELAY_PORT,
  PROP_RELAY_MAX_SESSIONS,
  PROP_RELAY_RATE,
  PROP_RELAY_IDLE_TIMEOUT,
  PROP_AUTH_REQUIRED,
  PROP_PEER_COUNT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum
{
  SIGNAL_PEER_REGISTERED,
  SIGNAL_PEER_REMOVED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (RndzServer, rndz_server, G_TYPE_OBJECT)

static void server_conn_close (ServerConn *conn);
static void server_schedule (RndzServer *server, gint64 deadline);

/* Re-entrancy
 *
 * Every way into the server from the main loop (a datagram, a frame, the
 * timer, an accepted connection) and every public call that changes the
 * registry runs between server_enter() and server_leave(). Inside, no
 * signal is emitted: peer-registered and peer-removed are queued, and
 * GObject's notify is frozen. server_leave() of the outermost level emits
 * them, holding a reference on the server, once nothing on the stack
 * uses a peer or a connection any more. A handler may then stop the
 * server, dispose it or drop the caller's reference.
 */

static void
server_enter (RndzServer *server)
{
  g_object_ref (server);
  g_object_freeze_notify (G_OBJECT (server));
  server->depth++;
}

static void
server_emit_event (RndzServer        *server,
                   const ServerEvent *event)
{
  if (event->signal_id == signals[SIGNAL_PEER_REGISTERED])
    {
      g_autoptr(GSocketAddress) address = NULL;

      address = rndz_addr_to_socket_address (&event->addr, G_SOCKET_FAMILY_INVALID);
      g_signal_emit (server, event->signal_id, 0, event->id, event->transport, address);
    }
  else
    g_signal_emit (server, event->signal_id, 0, event->id, event->transport);
}

static void
server_leave (RndzServer *server)
{
  ServerEvent *event;

  g_return_if_fail (server->depth > 0);
  server->depth--;

  /* A handler may enter and leave again: the queue is shared, so the
   * events still come out in order, each once */
  while (server->depth == 0 && (event = g_queue_pop_head (&server->events)) != NULL)
    {
      server_emit_event (server, event);
      g_free (event);
    }

  g_object_thaw_notify (G_OBJECT (server));
  g_object_unref (server);
}

static void
server_queue_event (RndzServer     *server,
                    guint           signal_id,
                    const char     *id,
                    RndzTransport   transport,
                    const RndzAddr *addr)
{
  ServerEvent *event;

  if (!g_signal_has_handler_pending (server, signal_id, 0, FALSE))
    return;

  event = g_new0 (ServerEvent, 1);
  event->signal_id = signal_id;
  event->transport = transport;
  if (addr != NULL)
    event->addr = *addr;
  g_strlcpy (event->id, id, sizeof event->id);
  g_queue_push_tail (&server->events, event);
}

/* Sending */

static void
server_send_datagram (RndzServer     *server,
                      const RndzAddr *to,
                      const char     *buf,
                      gsize           len)
{
  struct sockaddr_storage ss;
  gsize sslen;

  if (server->send_func != NULL)
    {
      server->send_func (to, buf, len, server->send_data);
      return;
    }

  sslen = rndz_addr_to_sockaddr (to, server->family, &ss);
  if (sslen == 0 || server->udp_socket == NULL)
    return;

  /* Best effort, like UDP itself: a full socket buffer drops the reply
   * and the peer asks again. */
  if (sendto (g_socket_get_fd (server->udp_socket), buf, len, MSG_DONTWAIT,
              (struct sockaddr *) &ss, sslen) < 0)
    g_debug ("UDP send failed: %s", g_strerror (errno));
}

/* @limit: the size of the request this answers; a larger reply is not
 * sent, so that spoofed requests cannot turn the server into an
 * amplifier. Clients pad their requests (see doc/protocol.md). */
static void
server_send_udp (RndzServer        *server,
                 const RndzAddr    *to,
                 const RndzMessage *msg,
                 gsize              limit)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  len = rndz_message_encode (msg, buf, sizeof buf);
  if (len == 0)
    return;
  if (len > limit)
    {
      server->stats.amplification++;
      g_debug ("Not sending a %s of %" G_GSIZE_FORMAT " bytes for a request of %" G_GSIZE_FORMAT,
               rndz_message_type_to_string (msg->type), len, limit);
      return;
    }

  server_send_datagram (server, to, buf, len);
}

static void
server_send_tcp (ServerConn        *conn,
                 const RndzMessage *msg)
{
  g_autoptr(GError) error = NULL;

  if (!rndz_channel_send (conn->channel, msg, &error))
    {
      g_debug ("Closing connection: %s", error->message);
      server_conn_close (conn);
    }
}

/* Whether @reply may answer @src: over UDP, not if it is larger */
static gboolean
server_reply_fits (RndzServer        *server,
                   const Source      *src,
                   const RndzMessage *reply)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];

  if (src->transport != RNDZ_TRANSPORT_UDP ||
      rndz_message_encode (reply, buf, sizeof buf) <= src->len)
    return TRUE;

  server->stats.amplification++;
  return FALSE;
}

/* Sends @msg back to where @src came from */
static void
server_reply (RndzServer        *server,
              const Source      *src,
              const RndzMessage *msg)
{
  if (src->transport == RNDZ_TRANSPORT_UDP)
    server_send_udp (server, &src->from, msg, src->len);
  else if (src->conn != NULL)
    server_send_tcp (src->conn, msg);
}

static void
server_reply_error (RndzServer    *server,
                    const Source  *src,
                    guint32        tid,
                    RndzWireError  code)
{
  RndzMessage reply;

  rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, tid);
  reply.code = code;
  server_reply (server, src, &reply);
}

/* Tells a requester why its request goes nowhere, so that it need not
 * wait out its timeout: at most once per second and address, and never
 * in a datagram larger than the request (over UDP the source may be
 * spoofed). Otherwise the request is dropped unanswered, as before. */
static void
server_refuse (RndzServer    *server,
               const Source  *src,
               guint32        tid,
               RndzWireError  code,
               guint          retry_ms)
{
  RndzMessage reply;

  rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, tid);
  reply.code = code;
  if (retry_ms > 0)
    reply.retry_ms = CLAMP (retry_ms, RNDZ_WIRE_RETRY_MIN_MS, RNDZ_WIRE_RETRY_MAX_MS);

  if (!server_reply_fits (server, src, &reply) ||
      !rndz_rate_limit_take (server->refusal_limit, &src->from, g_get_monotonic_time ()))
    return;

  server_reply (server, src, &reply);
}

/* Registry */

static void
peer_free (Peer *peer)
{
  g_free (peer->id);
  g_free (peer->cands);
  g_free (peer);
}

/* A connection is in the unregistered queue exactly when it carries no
 * registration; this is the one place that moves it in or out. */
/* The host an address belongs to, as the per-host limits count it: an
 * IPv4 address whole, an IPv6 one by its /64, which one host usually
 * owns whole (as the rate limits count) */
static RndzAddr
host_of (const RndzAddr *addr)
{
  RndzAddr host = *addr;

  host.port = 0;
  if (host.family == 6)
    memset (host.bytes + 8, 0, 8);
  return host;
}

static guint
unregistered_count (RndzServer     *server,
                    const RndzAddr *addr)
{
  RndzAddr host = host_of (addr);

  return GPOINTER_TO_UINT (g_hash_table_lookup (server->unregistered_by_addr, &host));
}

static void
unregistered_push (RndzServer *server,
                   ServerConn *conn)
{
  RndzAddr host = host_of (rndz_channel_get_remote (conn->channel));
  guint count = unregistered_count (server, &host);

  conn->opened = g_get_monotonic_time ();
  g_queue_push_tail_link (&server->unregistered, &conn->link);
  g_hash_table_insert (server->unregistered_by_addr, g_memdup2 (&host, sizeof host),
                       GUINT_TO_POINTER (count + 1));
  server_schedule (server, conn->opened + server->register_timeout * G_USEC_PER_SEC);
}

static void
unregistered_remove (RndzServer *server,
                     ServerConn *conn)
{
  RndzAddr host = host_of (rndz_channel_get_remote (conn->channel));
  guint count = unregistered_count (server, &host);

  g_queue_unlink (&server->unregistered, &conn->link);
  if (count <= 1)
    g_hash_table_remove (server->unregistered_by_addr, &host);
  else
    g_hash_table_insert (server->unregistered_by_addr, g_memdup2 (&host, sizeof host),
                         GUINT_TO_POINTER (count - 1));
}

static void
conn_set_peer (RndzServer *server,
               ServerConn *conn,
               Peer       *peer)
{
  if (conn->peer == peer)
    return;

  if (conn->peer != NULL)
    conn->peer->conn = NULL;
  else
    unregistered_remove (server, conn);

  conn->peer = peer;
  if (peer != NULL)
    peer->conn = conn;
  else
    unregistered_push (server, conn);
}

/* Forgets @peer. Its TCP connection, if any, stays open but unregistered:
 * callers close it when that is what they mean. */
static void
server_remove_peer (RndzServer *server,
                    Peer       *peer)
{
  g_debug ("Removing %s peer “%s”", peer->transport == RNDZ_TRANSPORT_TCP ? "TCP" : "UDP", peer->id);
  if (peer->conn != NULL)
    conn_set_peer (server, peer->conn, NULL);

  g_queue_unlink (&server->expiry, &peer->link);
  server_queue_event (server, signals[SIGNAL_PEER_REMOVED], peer->id, peer->transport, NULL);
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_PEER_COUNT]);
  g_hash_table_remove (server->peers[peer->transport], peer->id);
}

/* Forgets @peer and closes its TCP connection */
static void
server_drop_peer (RndzServer *server,
                  Peer       *peer)
{
  ServerConn *conn = peer->conn;

  server_remove_peer (server, peer);
  if (conn != NULL)
    server_conn_close (conn);
}

static void
emit_registered (RndzServer *server,
                 Peer       *peer)
{
  server_queue_event (server, signals[SIGNAL_PEER_REGISTERED], peer->id,
                      (RndzTransport) peer->transport, &peer->addr);
}

static void
server_touch_peer (RndzServer *server,
                   Peer       *peer)
{
  peer->last_seen = g_get_monotonic_time ();
  g_queue_unlink (&server->expiry, &peer->link);
  g_queue_push_tail_link (&server->expiry, &peer->link);
  server_schedule (server, peer->last_seen + server->peer_timeout * G_USEC_PER_SEC);
}

static void
handle_ping (RndzServer        *server,
             const Source      *src,
             const RndzMessage *msg)
{
  GHashTable *table = server->peers[src->transport];
  ServerConn *conn = src->conn;
  RndzMessage reply;
  char pong[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize pong_len = 0;
  Peer *peer;
  gboolean created = FALSE, changed = FALSE;

  /* A ping that could not be answered registers nothing either. Over
   * UDP the pong is encoded once, here, for the check and the send. */
  rndz_message_init (&reply, RNDZ_MESSAGE_PONG, msg->tid);
  reply.addr = src->from;
  if (src->transport == RNDZ_TRANSPORT_UDP)
    {
      pong_len = rndz_message_encode (&reply, pong, sizeof pong);
      if (pong_len == 0 || pong_len > src->len)
        {
          server->stats.amplification++;
          return;
        }
    }

  /* A connection carries one registration: a ping for another id first
   * drops the old one. */
  if (conn != NULL && conn->peer != NULL && !g_str_equal (conn->peer->id, msg->id))
    server_remove_peer (server, conn->peer);

  peer = g_hash_table_lookup (table, msg->id);
  if (peer == NULL)
    {
      if (rndz_server_get_peer_count (server) >= server->max_peers)
        {
          g_debug ("Refusing “%s”: %u peers registered", msg->id, server->max_peers);
          server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
          return;
        }

      peer = g_new0 (Peer, 1);
      peer->id = g_strdup (msg->id);
      peer->transport = src->transport;
      peer->link.data = peer;
      g_hash_table_insert (table, peer->id, peer);
      created = changed = TRUE;
    }

  if (!rndz_addr_equal (&peer->addr, &src->from))
    {
      peer->addr = src->from;
      changed = TRUE;
    }

  /* The local addresses it offers, for the requesters to try */
  if (peer->n_cands != msg->n_cands ||
      (msg->n_cands > 0 && memcmp (peer->cands, msg->cands, msg->n_cands * sizeof (RndzAddr)) != 0))
    {
      g_clear_pointer (&peer->cands, g_free);
      peer->n_cands = msg->n_cands;
      if (msg->n_cands > 0)
        peer->cands = g_memdup2 (msg->cands, msg->n_cands * sizeof (RndzAddr));
    }

  if (src->transport == RNDZ_TRANSPORT_TCP && peer->conn != conn)
    {
      /* A newer registration of the same id replaces the old one */
      ServerConn *old = peer->conn;

      if (old != NULL)
        {
          conn_set_peer (server, old, NULL);
          server_conn_close (old);
        }
      conn_set_peer (server, conn, peer);
      changed = TRUE;
    }

  server_touch_peer (server, peer);

  if (changed)
    {
      char addr[RNDZ_ADDR_STRLEN];

      g_debug ("Registered %s peer “%s” at %s",
               src->transport == RNDZ_TRANSPORT_TCP ? "TCP" : "UDP",
               peer->id, rndz_addr_format (&peer->addr, addr));
      emit_registered (server, peer);
      if (created)
        g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_PEER_COUNT]);
    }

  if (src->transport == RNDZ_TRANSPORT_UDP)
    server_send_datagram (server, &src->from, pong, pong_len);
  else
    server_reply (server, src, &reply);
}

/* Is @peer the one that sent @src? */
static gboolean
peer_matches_source (Peer         *peer,
                     const Source *src)
{
  if (peer->transport == RNDZ_TRANSPORT_TCP)
    return peer->conn == src->conn;
  return rndz_addr_equal (&peer->addr, &src->from);
}

static void
handle_bye (RndzServer        *server,
            const Source      *src,
            const RndzMessage *msg)
{
  Peer *peer = g_hash_table_lookup (server->peers[src->transport], msg->id);

  /* Only the registered peer itself may unregister */
  if (peer == NULL || !peer_matches_source (peer, src))
    return;

  server_remove_peer (server, peer);
}

/* Forwarding */

static guint
request_key_hash (gconstpointer key)
{
  const RequestKey *k = key;

  return rndz_addr_hash (&k->addr) ^ k->tid;
}

static gboolean
request_key_equal (gconstpointer a,
                   gconstpointer b)
{
  const RequestKey *ka = a, *kb = b;

  return ka->tid == kb->tid && rndz_addr_equal (&ka->addr, &kb->addr);
}

static void
pending_free (RndzServer *server,
              Pending    *pending)
{
  if (pending->transport == RNDZ_TRANSPORT_UDP)
    {
      RequestKey key = { pending->requester_addr, pending->requester_tid };
      g_hash_table_remove (server->pending_by_request, &key);
    }
  g_queue_unlink (&server->pending_queue, &pending->link);
  g_hash_table_remove (server->pending, GUINT_TO_POINTER (pending->server_tid));
  g_free (pending);
}

/* An fsync is the one message the server sends to someone who did not
 * ask for it, so it is rate limited twice: by who asks, and by whom it
 * goes to. */
static gboolean
forward_take (RndzServer     *server,
              const RndzAddr *requester,
              const RndzAddr *target,
              const char     *requester_id)
{
  gint64 now = g_get_monotonic_time ();

  if (rndz_rate_limit_take (server->requester_limit, requester, now) &&
      rndz_rate_limit_take (server->target_limit, target, now))
    return TRUE;

  server->stats.rate_limited++;
  g_debug ("Not forwarding the request of “%s”: rate limited", requester_id);
  return FALSE;
}

static gboolean
forward_allowed (RndzServer *server,
                 Pending    *pending,
                 Peer       *target)
{
  return forward_take (server, &pending->requester_addr, &target->addr, pending->requester_id);
}

/* Whether a new request from @requester to @target may take a place in
 * a table: checked before, so that a flood cannot fill it. Returns 0 if
 * it may, else the milliseconds until both buckets have a token again. */
static guint
request_wait_ms (RndzServer     *server,
                 const RndzAddr *requester,
                 const RndzAddr *target,
                 const char     *requester_id)
{
  gint64 now = g_get_monotonic_time ();
  guint wait;

  wait = MAX (rndz_rate_limit_wait_ms (server->requester_limit, requester, now),
              rndz_rate_limit_wait_ms (server->target_limit, target, now));
  if (wait == 0)
    return 0;

  server->stats.rate_limited++;
  g_debug ("Not forwarding the request of “%s”: rate limited for %u ms", requester_id, wait);
  return wait;
}

/* Sends the request on to its target */
static void
send_fsync (RndzServer *server,
            Peer       *target,
            Pending    *pending)
{
  RndzMessage fsync;

  rndz_message_init (&fsync, RNDZ_MESSAGE_FSYNC, pending->server_tid);
  g_strlcpy (fsync.id, pending->requester_id, sizeof fsync.id);
  fsync.addr = pending->requester_addr;
  fsync.n_cands = pending->n_requester_cands;
  memcpy (fsync.cands, pending->requester_cands, sizeof fsync.cands);
  fsync.auth = pending->authenticated;
  server->stats.forwarded++;

  if (target->transport == RNDZ_TRANSPORT_UDP)
    server_send_udp (server, &target->addr, &fsync, G_MAXSIZE);
  else
    server_send_tcp (target->conn, &fsync);
}

static guint32
server_new_tid (RndzServer *server)
{
  do
    server->next_tid++;
  while (server->next_tid == 0 ||
         g_hash_table_contains (server->pending, GUINT_TO_POINTER (server->next_tid)));

  return server->next_tid;
}

static void
peer_get_cands (const Peer  *peer,
                RndzMessage *msg)
{
  msg->n_cands = peer->n_cands;
  if (peer->n_cands > 0)
    memcpy (msg->cands, peer->cands, peer->n_cands * sizeof (RndzAddr));
}

/* The peer a request (isync or relay) names, or NULL after telling the
 * requester why not */
static Peer *
lookup_target (RndzServer        *server,
               const Source      *src,
               const RndzMessage *msg)
{
  Peer *target = g_hash_table_lookup (server->peers[src->transport], msg->target);

  if (target == NULL)
    {
      g_debug ("“%s” asked for unknown peer “%s”", msg->id, msg->target);
      server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_PEER_NOT_FOUND);
      return NULL;
    }

  /* A peer knows the other only by the address the server saw: across
   * IPv4 and IPv6 they cannot meet (through a NAT, the requester's
   * mapping for the other version was never opened) */
  if (target->addr.family != src->from.family)
    {
      server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_ADDRESS_FAMILY);
      return NULL;
    }

  return target;
}

static void
handle_isync (RndzServer        *server,
              const Source      *src,
              const RndzMessage *msg)
{
  Peer *target = lookup_target (server, src, msg);
  Pending *pending;
  guint wait;

  if (target == NULL)
    return;

  /* The request must be large enough for the redirect that ends it */
  {
    RndzMessage redirect;

    rndz_message_init (&redirect, RNDZ_MESSAGE_REDIRECT, msg->tid);
    g_strlcpy (redirect.id, target->id, sizeof redirect.id);
    redirect.addr = target->addr;
    /* (without candidates: they go only if they fit, see handle_rsync) */
    if (!server_reply_fits (server, src, &redirect))
      return;
  }

  /* The same isync again: the fsync or the reply to it was lost */
  if (src->transport == RNDZ_TRANSPORT_UDP)
    {
      RequestKey key = { src->from, msg->tid };

      pending = g_hash_table_lookup (server->pending_by_request, &key);
      if (pending != NULL && !g_str_equal (pending->target_id, msg->target))
        {
          /* A transaction id used again for another target */
          server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
          return;
        }
      if (pending != NULL)
        {
          if (forward_allowed (server, pending, target))
            send_fsync (server, target, pending);
          return;
        }
    }

  /* Refused before it takes a place among the pending requests: a
   * flood must not fill them */
  wait = request_wait_ms (server, &src->from, &target->addr, msg->id);
  if (wait > 0)
    {
      server_refuse (server, src, msg->tid, RNDZ_WIRE_ERROR_RATE_LIMITED, wait);
      return;
    }

  if (g_hash_table_size (server->pending) >= MAX_PENDING)
    {
      server->stats.rate_limited++;
      server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
      return;
    }

  pending = g_new0 (Pending, 1);
  pending->server_tid = server_new_tid (server);
  pending->requester_tid = msg->tid;
  pending->request_len = src->len;
  pending->authenticated = rndz_server_get_auth_required (server);
  pending->transport = src->transport;
  pending->requester_addr = src->from;
  pending->n_requester_cands = msg->n_cands;
  memcpy (pending->requester_cands, msg->cands, sizeof pending->requester_cands);
  pending->requester_conn = src->conn;
  g_strlcpy (pending->requester_id, msg->id, sizeof pending->requester_id);
  g_strlcpy (pending->target_id, msg->target, sizeof pending->target_id);
  pending->deadline = g_get_monotonic_time () + server->forward_timeout * G_USEC_PER_SEC;
  pending->link.data = pending;

  g_hash_table_insert (server->pending, GUINT_TO_POINTER (pending->server_tid), pending);
  if (src->transport == RNDZ_TRANSPORT_UDP)
    {
      RequestKey *key = g_new (RequestKey, 1);

      key->addr = src->from;
      key->tid = msg->tid;
      g_hash_table_insert (server->pending_by_request, key, pending);
    }
  g_queue_push_tail_link (&server->pending_queue, &pending->link);
  server_schedule (server, pending->deadline);

  g_debug ("Forwarding request of “%s” to “%s”", msg->id, msg->target);
  if (forward_allowed (server, pending, target))
    send_fsync (server, target, pending);
}

/* Answers a pending request's requester, by the way it asked */
static void
pending_reply (RndzServer        *server,
               Pending           *pending,
               const RndzMessage *msg)
{
  if (pending->transport == RNDZ_TRANSPORT_UDP)
    server_send_udp (server, &pending->requester_addr, msg, pending->request_len);
  else if (pending->requester_conn != NULL)
    server_send_tcp (pending->requester_conn, msg);
}

static void
handle_rsync (RndzServer        *server,
              const Source      *src,
              const RndzMessage *msg)
{
  Pending *pending = g_hash_table_lookup (server->pending, GUINT_TO_POINTER (msg->tid));
  RndzMessage redirect;
  Peer *target;

  if (pending == NULL || pending->transport != src->transport ||
      !g_str_equal (pending->target_id, msg->id) ||
      !g_str_equal (pending->requester_id, msg->target))
    return;

  /* Only the target itself may answer for the target */
  target = g_hash_table_lookup (server->peers[src->transport], msg->id);
  if (target == NULL || !peer_matches_source (target, src))
    return;

  server_touch_peer (server, target);

  rndz_message_init (&redirect, RNDZ_MESSAGE_REDIRECT, pending->requester_tid);
  g_strlcpy (redirect.id, target->id, sizeof redirect.id);
  redirect.addr = target->addr;
  peer_get_cands (target, &redirect);
  /* A request padded too little for the target's candidates (a peer of
   * an older version) still gets the observed address */
  if (pending->transport == RNDZ_TRANSPORT_UDP && redirect.n_cands > 0)
    {
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
      gsize len = rndz_message_encode (&redirect, buf, sizeof buf);

      if (len == 0 || len > pending->request_len)
        redirect.n_cands = 0;
    }
  server->stats.redirected++;
  pending_reply (server, pending, &redirect);
  pending_free (server, pending);
}

/* Relay */

/* Tells the target where to meet the requester: through its
 * registration, as an fsync goes, and rate limited like one */
static void
send_session_to_target (RndzServer        *server,
                        Peer              *target,
                        RndzRelaySession  *session,
                        const Source      *src,
                        const RndzMessage *request)
{
  RndzMessage notice;

  if (!forward_take (server, &src->from, &target->addr, request->id))
    return;

  rndz_message_init (&notice, RNDZ_MESSAGE_SESSION, rndz_relay_session_get_target_tid (session));
  g_strlcpy (notice.id, request->id, sizeof notice.id);
  g_strlcpy (notice.token, rndz_relay_session_get_token (session), sizeof notice.token);
  notice.port = rndz_relay_get_port (server->relay);
  notice.auth = rndz_server_get_auth_required (server);

  if (target->transport == RNDZ_TRANSPORT_UDP)
    server_send_udp (server, &target->addr, &notice, G_MAXSIZE);
  else
    server_send_tcp (target->conn, &notice);
}

static void
handle_relay (RndzServer        *server,
              const Source      *src,
              const RndzMessage *msg)
{
  RndzRelaySession *session;
  RndzMessage reply;
  Peer *target;
  guint wait;

  if (server->relay == NULL)
    {
      server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_NO_RELAY);
      return;
    }

  /* The relay tells the two sides apart by their ids */
  if (g_str_equal (msg->id, msg->target))
    {
      server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
      return;
    }

  target = lookup_target (server, src, msg);
  if (target == NULL)
    return;

  /* The request must be large enough for the answer: a token has a
   * fixed length, so a stand-in measures the real one */
  rndz_message_init (&reply, RNDZ_MESSAGE_SESSION, msg->tid);
  g_strlcpy (reply.id, target->id, sizeof reply.id);
  memset (reply.token, '0', RNDZ_TOKEN_LEN);
  reply.port = rndz_relay_get_port (server->relay);
  if (!server_reply_fits (server, src, &reply))
    return;

  /* The same request again: the same session */
  session = rndz_relay_find_request (server->relay, src->transport, &src->from, msg->tid);
  if (session != NULL && !g_str_equal (rndz_relay_session_get_target (session), msg->target))
    {
      server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_BAD_REQUEST);
      return;
    }
  if (session == NULL)
    {
      wait = request_wait_ms (server, &src->from, &target->addr, msg->id);
      if (wait > 0)
        {
          server_refuse (server, src, msg->tid, RNDZ_WIRE_ERROR_RATE_LIMITED, wait);
          return;
        }

      session = rndz_relay_open (server->relay, src->transport, &src->from, msg->tid,
                                 msg->id, msg->target, server_new_tid (server));
      if (session == NULL)
        {
          g_debug ("Cannot relay for “%s”: no session left", msg->id);
          server_reply_error (server, src, msg->tid, RNDZ_WIRE_ERROR_SERVER_FULL);
          return;
        }
    }

  g_strlcpy (reply.token, rndz_relay_session_get_token (session), sizeof reply.token);
  server_reply (server, src, &reply);
  send_session_to_target (server, target, session, src, msg);
}

/* Authentication */

static GBytes *
server_key_for (RndzServer *server,
                const char *id)
{
  GBytes *key = g_hash_table_lookup (server->keys, id);

  if (key != NULL)
    return g_bytes_ref (key);
  if (server->secret != NULL)
    return rndz_derive_key (server->secret, id);
  return NULL;
}

/* A MAC seen recently, kept until it could no longer pass the timestamp
 * check */
typedef struct
{
  gint64 expiry;
  char mac[RNDZ_MAC_HEX_LEN + 1];
  char id[RNDZ_ID_MAX_LEN + 1];
} ReplayEntry;

static void
replay_count (RndzServer *server,
              const char *id,
              int         delta)
{
  guint count = GPOINTER_TO_UINT (g_hash_table_lookup (server->replay_per_id, id)) + delta;

  if (count == 0)
    g_hash_table_remove (server->replay_per_id, id);
  else
    g_hash_table_insert (server->replay_per_id, g_strdup (id), GUINT_TO_POINTER (count));
}

/* Returns FALSE if @msg's MAC was seen already, or if there is no room
 * to remember it. Each id has a share of the cache, so that a peer with
 * a valid key can exhaust only its own. */
static gboolean
replay_remember (RndzServer        *server,
                 const RndzMessage *msg,
                 gint64             now)
{
  ReplayEntry *entry;

  while ((entry = g_queue_peek_head (&server->replay_queue)) != NULL && entry->expiry <= now)
    {
      g_queue_pop_head (&server->replay_queue);
      g_hash_table_remove (server->replay, entry->mac);
      replay_count (server, entry->id, -1);
      g_free (entry);
    }

  if (g_hash_table_contains (server->replay, msg->mac) ||
      g_hash_table_size (server->replay) >= REPLAY_CACHE_MAX ||
      GPOINTER_TO_UINT (g_hash_table_lookup (server->replay_per_id, msg->id)) >= REPLAY_PER_ID_MAX)
    return FALSE;

  entry = g_new (ReplayEntry, 1);
  entry->expiry = now + 2 * (gint64) AUTH_WINDOW_MS * 1000;
  g_strlcpy (entry->mac, msg->mac, sizeof entry->mac);
  g_strlcpy (entry->id, msg->id, sizeof entry->id);
  g_hash_table_add (server->replay, entry->mac);
  g_queue_push_tail (&server->replay_queue, entry);
  replay_count (server, msg->id, +1);
  return TRUE;
}

/* With authentication on, a peer proves with a MAC under its id's key
 * that it sent the message, recently, once. Failures get no answer: an
 * answer would tell an attacker which of its guesses came close. */
static gboolean
server_authenticate (RndzServer        *server,
                     const Source      *src,
                     const RndzMessage *msg)
{
  g_autoptr(GBytes) key = NULL;
  gint64 now = g_get_monotonic_time ();
  gint64 now_ms = g_get_real_time () / 1000;
  const char *why = NULL;

  if (!rndz_server_get_auth_required (server))
    return TRUE;

  switch (msg->type)
    {
    case RNDZ_MESSAGE_PING:
    case RNDZ_MESSAGE_ISYNC:
    case RNDZ_MESSAGE_RSYNC:
    case RNDZ_MESSAGE_BYE:
    case RNDZ_MESSAGE_RELAY:
      break;
    default:
      return TRUE;
    }

  /* A source that keeps failing is not even heard */
  if (!rndz_rate_limit_allows (server->auth_failures, &src->from, now))
    {
      server->stats.auth_failed++;
      return FALSE;
    }

  /* An unsigned request is no guess at a key: saying that the server
   * wants one spares a peer without a key its timeout. Only requests get
   * that answer; bye and rsync never had one. */
  if (msg->mac[0] == '\0' && msg->type != RNDZ_MESSAGE_BYE && msg->type != RNDZ_MESSAGE_RSYNC)
    server_refuse (server, src, msg->tid, RNDZ_WIRE_ERROR_AUTH_REQUIRED, 0);

  key = server_key_for (server, msg->id);
  if (key == NULL)
    why = "no key for this id";
  else if (!rndz_message_verify (msg, key))
    why = "wrong MAC";
  else if (ABS (now_ms - msg->ts) > AUTH_WINDOW_MS)
    why = "stale timestamp";
  else if (!replay_remember (server, msg, now))
    why = "replayed";

  if (why == NULL)
    return TRUE;

  server->stats.auth_failed++;
  rndz_rate_limit_take (server->auth_failures, &src->from, now);
  g_debug ("Dropping a %s for “%s”: %s", rndz_message_type_to_string (msg->type), msg->id, why);
  return FALSE;
}

static void
server_handle_message (RndzServer        *server,
                       const Source      *src,
                       const RndzMessage *msg)
{
  if (!server_authenticate (server, src, msg))
    return;

  server->stats.messages++;

  switch (msg->type)
    {
    case RNDZ_MESSAGE_PING:
      handle_ping (server, src, msg);
      break;
    case RNDZ_MESSAGE_ISYNC:
      handle_isync (server, src, msg);
      break;
    case RNDZ_MESSAGE_RSYNC:
      handle_rsync (server, src, msg);
      break;
    case RNDZ_MESSAGE_BYE:
      handle_bye (server, src, msg);
      break;
    case RNDZ_MESSAGE_RELAY:
      handle_relay (server, src, msg);
      break;
    case RNDZ_MESSAGE_PONG:
    case RNDZ_MESSAGE_FSYNC:
    case RNDZ_MESSAGE_REDIRECT:
    case RNDZ_MESSAGE_ERROR:
    case RNDZ_MESSAGE_INVALID:
    default:
      /* Messages a server sends, not receives */
      break;
    }
}

/* UDP */

/*
 * rndz_server_receive_datagram:
 *
 * Handles one datagram as if it had arrived from @from. The server's
 * socket reads come here; so do fuzzers, without sockets.
 */
void
rndz_server_receive_datagram (RndzServer     *server,
                              const RndzAddr *from,
                              const char     *data,
                              gsize           len)
{
  g_autoptr(GError) error = NULL;
  Source src = { RNDZ_TRANSPORT_UDP, *from, NULL, len };
  RndzMessage msg;

  if (from->port == 0 ||
      !rndz_message_decode (&msg, data, len, server->max_message_size, &error))
    {
      char addr[RNDZ_ADDR_STRLEN];

      server->stats.malformed++;
      g_debug ("Dropping datagram from %s: %s", rndz_addr_format (from, addr),
               error != NULL ? error->message : "no source port");
      return;
    }

  server_enter (server);
  server_handle_message (server, &src, &msg);
  server_leave (server);
}

static gboolean
udp_read_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  g_autoptr(RndzServer) server = g_object_ref (user_data);
  int fd = g_socket_get_fd (socket);
  /* One byte more than allowed, to tell an oversize datagram */
  char buf[RNDZ_MESSAGE_MAX_MAX_SIZE + 1];

  /* A signal handler may have stopped the server, or even made it
   * listen anew on another socket */
  for (guint i = 0; i < UDP_BATCH && server->udp_socket == socket; i++)
    {
      struct sockaddr_storage ss;
      socklen_t sslen = sizeof ss;
      RndzAddr from;
      gssize n;

      n = recvfrom (fd, buf, MIN (sizeof buf, server->max_message_size + 1),
                    MSG_DONTWAIT, (struct sockaddr *) &ss, &sslen);
      if (n < 0)
        {
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
          /* ICMP errors for earlier sends surface here; keep reading */
          g_debug ("UDP receive failed: %s", g_strerror (errno));
          continue;
        }

      if (rndz_addr_from_sockaddr (&from, (struct sockaddr *) &ss, sslen))
        rndz_server_receive_datagram (server, &from, buf, n);
    }

  return G_SOURCE_CONTINUE;
}

/* TCP */

static void
server_conn_close (ServerConn *conn)
{
  RndzServer *server = conn->server;
  GList *l;

  if (!g_hash_table_steal (server->conns, conn))
    return;

  if (conn->peer != NULL)
    server_remove_peer (server, conn->peer);
  unregistered_remove (server, conn);

  /* Bounded by MAX_PENDING */
  for (l = server->pending_queue.head; l != NULL; l = l->next)
    {
      Pending *pending = l->data;

      if (pending->requester_conn == conn)
        pending->requester_conn = NULL;
    }

  rndz_channel_close (conn->channel);
  g_clear_pointer (&conn->channel, rndz_channel_unref);
  g_free (conn);
}

static void
conn_message_cb (RndzChannel       *channel,
                 const RndzMessage *msg,
                 const GError      *error,
                 gpointer           user_data)
{
  ServerConn *conn = user_data;
  RndzServer *server = conn->server;
  Source src = { RNDZ_TRANSPORT_TCP, *rndz_channel_get_remote (channel), conn, G_MAXSIZE };
  /* The connection may close under us (conn is freed then); the channel
   * outlives it until we return */
  rndz_channel_ref (channel);
  server_enter (server);
  if (msg == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
        server->stats.malformed++;
      g_debug ("Closing TCP connection: %s", error->message);
      server_conn_close (conn);
    }
  else
    server_handle_message (server, &src, msg);
  server_leave (server);  rndz_channel_unref (channel);
}

/* Makes room for a new connection: a source may hold only so many
 * connections that have not registered, and at the global limit the
 * oldest of those goes. Registered peers are never pushed out. */
static gboolean
server_make_room (RndzServer     *server,
                  const RndzAddr *remote)
{
  ServerConn *oldest;

  if (unregistered_count (server, remote) >= MAX_UNREGISTERED_PER_ADDRESS)
    return FALSE;

  if (g_hash_table_size (server->conns) < server->max_connections)
    return TRUE;

  oldest = g_queue_peek_head (&server->unregistered);
  if (oldest == NULL)
    return FALSE;

  g_debug ("Closing the oldest silent connection to make room");
  server->stats.evicted++;
  server_conn_close (oldest);
  return TRUE;
}

/*
 * rndz_server_add_connection:
 * @remote: the peer's address, or %NULL to read it from @socket
 *
 * Serves a connected TCP socket. Accepted sockets come here; fuzzers
 * and tests may hand in one end of a socket pair.
 */
void
rndz_server_add_connection (RndzServer     *server,
                            GSocket        *socket,
                            const RndzAddr *remote)
{
  ServerConn *conn;
  RndzChannel *channel;

  server_enter (server);
  if (server->poller == NULL)
    server->poller = rndz_poller_new (server->context);
  channel = rndz_channel_new_polled (socket, server->poller, server->max_message_size, NULL, NULL);
  if (remote != NULL)
    rndz_channel_set_remote (channel, remote);

  if (!server_make_room (server, rndz_channel_get_remote (channel)))
    {
      g_debug ("Refusing TCP connection: too many open");
      server->stats.refused_connections++;
      rndz_channel_close (channel);
      rndz_channel_unref (channel);
      server_leave (server);
      return;
    }

  conn = g_new0 (ServerConn, 1);
  conn->server = server;
  conn->link.data = conn;
  conn->channel = channel;
  rndz_channel_set_callback (channel, conn_message_cb, conn);
  g_hash_table_add (server->conns, conn);
  unregistered_push (server, conn);
  server_leave (server);
}

static gboolean
tcp_accept_cb (GSocket      *socket,
               GIOCondition  condition,
               gpointer      user_data)
{
  g_autoptr(RndzServer) server = g_object_ref (user_data);

  for (guint i = 0; i < UDP_BATCH && server->tcp_socket == socket; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GSocket) client = NULL;

      client = g_socket_accept (socket, NULL, &error);
      if (client == NULL)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            g_debug ("Accept failed: %s", error->message);
          break;
        }

      rndz_server_add_connection (server, client, NULL);
    }

  return G_SOURCE_CONTINUE;
}

/* Timers
 *
 * The server has one timer, whatever the number of peers: expiry,
 * forwarded requests and unregistered connections are each kept in a
 * queue ordered by deadline (they all share one timeout), and the timer
 * is armed for the earliest head. A peer that pings moves to the tail of
 * its queue without touching the timer; when the timer finds nothing due
 * it simply re-arms.
 */

static void
server_schedule (RndzServer *server,
                 gint64      deadline)
{
  rndz_deadline_source_arm (server->timer, deadline);
}

static gboolean
server_expire (gpointer user_data)
{
  RndzServer *server = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 next = -1;
  RndzMessage reply;
  GList *head;

  server_enter (server);
  while ((head = server->pending_queue.head) != NULL)
    {
      Pending *pending = head->data;

      if (pending->deadline > now)
        {
          next = pending->deadline;
          break;
        }

      g_debug ("“%s” did not answer the request of “%s”", pending->target_id, pending->requester_id);
      rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, pending->requester_tid);
      reply.code = RNDZ_WIRE_ERROR_PEER_NO_ANSWER;
      pending_reply (server, pending, &reply);
      pending_free (server, pending);
    }
  if (next >= 0)
    server_schedule (server, next);

  while ((head = server->expiry.head) != NULL)
    {
      Peer *peer = head->data;
      gint64 deadline = peer->last_seen + server->peer_timeout * G_USEC_PER_SEC;

      if (deadline > now)
        {
          server_schedule (server, deadline);
          break;
        }
      server_drop_peer (server, peer);
    }

  while ((head = server->unregistered.head) != NULL)
    {
      ServerConn *conn = head->data;
      gint64 deadline = conn->opened + server->register_timeout * G_USEC_PER_SEC;

      if (deadline > now)
        {
          server_schedule (server, deadline);
          break;
        }
      g_debug ("Closing TCP connection that did not register in time");
      server_conn_close (conn);
    }
  server_leave (server);

  return G_SOURCE_CONTINUE;
}

/* Listening */


/* Binds a TCP and a UDP socket to the same port. With port 0 the kernel
 * picks the TCP port; the UDP one may be taken already, so try again a
 * few times. */
static gboolean
bind_sockets (RndzServer      *server,
              GSocketAddress  *address,
              GSocket        **tcp_out,
              GSocket        **udp_out,
              GError         **error)
{
  GInetSocketAddress *inet = G_INET_SOCKET_ADDRESS (address);
  GSocketFamily family = g_socket_address_get_family (address);
  gboolean any_port = g_inet_socket_address_get_port (inet) == 0;

  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GSocket) tcp = NULL;
      g_autoptr(GSocket) udp = NULL;
      g_autoptr(GSocketAddress) bound = NULL;
      g_autoptr(GError) local_error = NULL;

      tcp = g_socket_new (family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
      if (tcp == NULL)
        return FALSE;
      g_socket_set_blocking (tcp, FALSE);
      g_socket_set_listen_backlog (tcp, LISTEN_BACKLOG);
      /* SO_REUSEADDR only for TCP (TIME_WAIT); never SO_REUSEPORT, which
       * would let a second server share the port silently. */
      if (!g_socket_bind (tcp, address, TRUE, error) || !g_socket_listen (tcp, error))
        return FALSE;

      bound = g_socket_get_local_address (tcp, error);
      if (bound == NULL)
        return FALSE;

      udp = g_socket_new (family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, error);
      if (udp == NULL)
        return FALSE;
      g_socket_set_blocking (udp, FALSE);
      if (g_socket_bind (udp, bound, FALSE, &local_error))
        {
          *tcp_out = g_steal_pointer (&tcp);
          *udp_out = g_steal_pointer (&udp);
          return TRUE;
        }

      if (!any_port || attempt >= 16 ||
          !g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
    }
}

/**
 * rndz_server_listen:
 * @server: a #RndzServer
 * @address: the address to serve on: an IPv4 or IPv6 address and a port,
 *   or port 0 to let the system pick one
 * @error: return location for a #GError
 *
 * Starts serving TCP and UDP on @address, both on the same port. To serve
 * IPv4 and IPv6 on one socket, listen on the IPv6 any address `::`.
 *
 * With port 0, read the chosen port back with rndz_server_get_port().
 *
 * If [property@Rndz.Server:relay-port] is set, the server also serves TCP
 * and UDP on that port of the same address, and relays between peers
 * that cannot reach each other directly. If any of the sockets cannot be
 * bound, none is: the server does not listen at all.
 *
 * Returns: %TRUE if the server is now serving
 *
 * Since: 1.0
 */
gboolean
rndz_server_listen (RndzServer      *server,
                    GSocketAddress  *address,
                    GError         **error)
{
  g_autoptr(GSocket) tcp = NULL;
  g_autoptr(GSocket) udp = NULL;
  g_autoptr(GSocket) relay_tcp = NULL;
  g_autoptr(GSocket) relay_udp = NULL;

  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);
  g_return_val_if_fail (G_IS_INET_SOCKET_ADDRESS (address), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (server->udp_socket != NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                           _("The server is already listening"));
      return FALSE;
    }

  if (server->relay_port != 0 &&
      server->relay_port == g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("The relay port %u is the server’s port"), server->relay_port);
      return FALSE;
    }

  if (!bind_sockets (server, address, &tcp, &udp, error))
    return FALSE;

  if (server->relay_port != 0)
    {
      GInetAddress *inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
      g_autoptr(GSocketAddress) relay_address = g_inet_socket_address_new (inet, server->relay_port);

      /* The sockets of the main port close as this returns */
      if (!bind_sockets (server, relay_address, &relay_tcp, &relay_udp, error))
        {
          g_prefix_error (error, _("Relay port: "));
          return FALSE;
        }
    }

  server->family = g_socket_get_family (udp);
  server->tcp_socket = g_steal_pointer (&tcp);
  server->udp_socket = g_steal_pointer (&udp);
  server->udp_source = rndz_socket_source_add (server->udp_socket, server->context, udp_read_cb, server,
                                               "[rndz] server UDP");
  server->tcp_source = rndz_socket_source_add (server->tcp_socket, server->context,
                                               tcp_accept_cb, server, "[rndz] server TCP");

  server->timer = rndz_deadline_source_new (server->context, "[rndz] server timer",
                                            server_expire, server);

  if (relay_udp != NULL)
    {
      server->relay = rndz_relay_new (server->context, relay_udp, relay_tcp, &server->stats);
      rndz_relay_configure (server->relay, server->relay_max_sessions, server->relay_rate,
                            server->relay_idle_timeout);
      if (server->relay_join_timeout_ms != 0)
        rndz_relay_set_join_timeout (server->relay, server->relay_join_timeout_ms);
      g_debug ("Relaying on port %u", server->relay_port);
    }

  g_debug ("Listening on port %u", rndz_server_get_port (server));
  return TRUE;
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

/**
 * rndz_server_stop:
 * @server: a #RndzServer
 *
 * Stops serving: closes the listening sockets and every connection, and
 * forgets every registered peer (emitting [signal@Rndz.Server::peer-removed]
 * for each). Relay sessions are closed, with their connections. The
 * server can listen again afterwards.
 *
 * Since: 1.0
 */
void
rndz_server_stop (RndzServer *server)
{
  g_autoptr(GList) conns = NULL;

  g_return_if_fail (RNDZ_IS_SERVER (server));

  server_enter (server);
  clear_source (&server->udp_source);
  clear_source (&server->tcp_source);
  clear_source (&server->timer);
  g_clear_pointer (&server->relay, rndz_relay_free);

  while (server->pending_queue.head != NULL)
    pending_free (server, server->pending_queue.head->data);

  while (server->expiry.head != NULL)
    server_remove_peer (server, server->expiry.head->data);

  conns = g_hash_table_get_keys (server->conns);
  for (GList *l = conns; l != NULL; l = l->next)
    server_conn_close (l->data);
  g_clear_pointer (&server->poller, rndz_poller_free);

  if (server->udp_socket != NULL)
    g_socket_close (server->udp_socket, NULL);
  if (server->tcp_socket != NULL)
    g_socket_close (server->tcp_socket, NULL);
  g_clear_object (&server->udp_socket);
  g_clear_object (&server->tcp_socket);
  server_leave (server);
}

/**
 * rndz_server_get_local_address:
 * @server: a #RndzServer
 *
 * Gets the address the server listens on, with the port it got.
 *
 * Returns: (transfer full) (nullable): the address the server listens on,
 *   or %NULL if it does not listen
 *
 * Since: 1.0
 */
GSocketAddress *
rndz_server_get_local_address (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), NULL);

  if (server->udp_socket == NULL)
    return NULL;

  return g_socket_get_local_address (server->udp_socket, NULL);
}

/**
 * rndz_server_get_port:
 * @server: a #RndzServer
 *
 * Gets the port the server listens on, TCP and UDP alike.
 *
 * Returns: the port the server listens on, or 0 if it does not listen
 *
 * Since: 1.0
 */
guint16
rndz_server_get_port (RndzServer *server)
{
  g_autoptr(GSocketAddress) address = NULL;

  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  address = rndz_server_get_local_address (server);
  if (address == NULL)
    return 0;

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}

/**
 * rndz_server_get_peer_count:
 * @server: a #RndzServer
 *
 * Gets the number of registered peers, see [property@Rndz.Server:peer-count].
 *
 * Returns: the number of registered peers, over both transports
 *
 * Since: 1.0
 */
guint
rndz_server_get_peer_count (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return g_hash_table_size (server->peers[RNDZ_TRANSPORT_UDP]) +
         g_hash_table_size (server->peers[RNDZ_TRANSPORT_TCP]);
}

/* Properties */

/* Deadlines are computed from the timeouts when the timer fires: after a
 * timeout changed, let it fire at once to find the new earliest one. */
static void
server_deadlines_changed (RndzServer *server)
{
  rndz_deadline_source_arm (server->timer, 0);
}

#define DEFINE_UINT_PROPERTY(name, field, PROP, min)                     \
  guint                                                                 \
  rndz_server_get_##name (RndzServer *server)                           \
  {                                                                     \
    g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);                  \
    return server->field;                                               \
  }                                                                     \
                                                                        \
  void                                                                  \
  rndz_server_set_##name (RndzServer *server,                           \
                          guint       value)                            \
  {                                                                     \
    g_return_if_fail (RNDZ_IS_SERVER (server));                         \
    g_return_if_fail (value >= (min));                                  \
    if (server->field == value)                                         \
      return;                                                           \
    server->field = value;                                              \
    server_deadlines_changed (server);                                  \
    g_object_notify_by_pspec (G_OBJECT (server), properties[PROP]);     \
  }

/**
 * rndz_server_get_peer_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:peer-timeout].
 *
 * Returns: the value of [property@Rndz.Server:peer-timeout]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_peer_timeout:
 * @server: a #RndzServer
 * @seconds: the new timeout, at least 1
 *
 * Sets [property@Rndz.Server:peer-timeout].
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (peer_timeout, peer_timeout, PROP_PEER_TIMEOUT, 1)

/**
 * rndz_server_get_forward_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:forward-timeout].
 *
 * Returns: the value of [property@Rndz.Server:forward-timeout]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_forward_timeout:
 * @server: a #RndzServer
 * @seconds: the new timeout, at least 1
 *
 * Sets [property@Rndz.Server:forward-timeout].
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (forward_timeout, forward_timeout, PROP_FORWARD_TIMEOUT, 1)

/**
 * rndz_server_get_register_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:register-timeout].
 *
 * Returns: the value of [property@Rndz.Server:register-timeout]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_register_timeout:
 * @server: a #RndzServer
 * @seconds: the new timeout, at least 1
 *
 * Sets [property@Rndz.Server:register-timeout].
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (register_timeout, register_timeout, PROP_REGISTER_TIMEOUT, 1)

/**
 * rndz_server_get_max_peers:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-peers].
 *
 * Returns: the value of [property@Rndz.Server:max-peers]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_peers:
 * @server: a #RndzServer
 * @max_peers: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:max-peers].
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (max_peers, max_peers, PROP_MAX_PEERS, 1)

/**
 * rndz_server_get_max_connections:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-connections].
 *
 * Returns: the value of [property@Rndz.Server:max-connections]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_connections:
 * @server: a #RndzServer
 * @max_connections: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:max-connections].
 *
 * Since: 1.0
 */
DEFINE_UINT_PROPERTY (max_connections, max_connections, PROP_MAX_CONNECTIONS, 1)

/**
 * rndz_server_get_max_message_size:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:max-message-size].
 *
 * Returns: the value of [property@Rndz.Server:max-message-size]
 *
 * Since: 1.0
 */
/**
 * rndz_server_set_max_message_size:
 * @server: a #RndzServer
 * @size: the new limit in bytes, from 512 to 1400
 *
 * Sets [property@Rndz.Server:max-message-size]. The new limit applies to
 * datagrams at once and to connections accepted afterwards.
 *
 * Since: 1.0
 */
guint
rndz_server_get_max_message_size (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->max_message_size;
}

void
rndz_server_set_max_message_size (RndzServer *server,
                                  guint       size)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (size >= RNDZ_MESSAGE_MIN_MAX_SIZE && size <= RNDZ_MESSAGE_DEFAULT_MAX_SIZE);

  if (server->max_message_size == size)
    return;

  server->max_message_size = size;
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_MAX_MESSAGE_SIZE]);
}

/**
 * rndz_server_get_request_rate:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:request-rate].
 *
 * Returns: the value of [property@Rndz.Server:request-rate]
 *
 * Since: 1.0
 */
guint
rndz_server_get_request_rate (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->request_rate;
}

/**
 * rndz_server_set_request_rate:
 * @server: a #RndzServer
 * @per_second: requests per second and address, at least 1
 *
 * Sets [property@Rndz.Server:request-rate].
 *
 * Since: 1.0
 */
void
rndz_server_set_request_rate (RndzServer *server,
                              guint       per_second)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (per_second >= 1);

  if (server->request_rate == per_second)
    return;

  server->request_rate = per_second;
  rndz_rate_limit_set (server->requester_limit, per_second, 2 * per_second);
  rndz_rate_limit_set (server->target_limit, per_second, 2 * per_second);
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_REQUEST_RATE]);
}

/**
 * rndz_server_get_relay_port:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-port].
 *
 * Returns: the value of [property@Rndz.Server:relay-port]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_port (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_port;
}

/**
 * rndz_server_set_relay_port:
 * @server: a #RndzServer
 * @port: the relay port, or 0 not to relay
 *
 * Sets [property@Rndz.Server:relay-port]. It takes effect the next time
 * the server listens.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_port (RndzServer *server,
                            guint       port)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (port <= G_MAXUINT16);

  if (server->relay_port == port)
    return;

  server->relay_port = port;
  g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_RELAY_PORT]);
}

static void
server_relay_changed (RndzServer *server,
                      guint       prop_id)
{
  if (server->relay != NULL)
    rndz_relay_configure (server->relay, server->relay_max_sessions, server->relay_rate,
                          server->relay_idle_timeout);
  g_object_notify_by_pspec (G_OBJECT (server), properties[prop_id]);
}

/**
 * rndz_server_get_relay_max_sessions:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-max-sessions].
 *
 * Returns: the value of [property@Rndz.Server:relay-max-sessions]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_max_sessions (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_max_sessions;
}

/**
 * rndz_server_set_relay_max_sessions:
 * @server: a #RndzServer
 * @max_sessions: the new limit, at least 1
 *
 * Sets [property@Rndz.Server:relay-max-sessions]. A lower limit closes no
 * session; it only refuses new ones until there are fewer.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_max_sessions (RndzServer *server,
                                    guint       max_sessions)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (max_sessions >= 1);

  if (server->relay_max_sessions == max_sessions)
    return;

  server->relay_max_sessions = max_sessions;
  server_relay_changed (server, PROP_RELAY_MAX_SESSIONS);
}

/**
 * rndz_server_get_relay_rate:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-rate].
 *
 * Returns: the value of [property@Rndz.Server:relay-rate]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_rate (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_rate;
}

/**
 * rndz_server_set_relay_rate:
 * @server: a #RndzServer
 * @bytes_per_second: the new limit, or 0 for none
 *
 * Sets [property@Rndz.Server:relay-rate]. The new rate applies at once,
 * to the open sessions too.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_rate (RndzServer *server,
                            guint       bytes_per_second)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));

  if (server->relay_rate == bytes_per_second)
    return;

  server->relay_rate = bytes_per_second;
  server_relay_changed (server, PROP_RELAY_RATE);
}

/**
 * rndz_server_get_relay_idle_timeout:
 * @server: a #RndzServer
 *
 * Gets [property@Rndz.Server:relay-idle-timeout].
 *
 * Returns: the value of [property@Rndz.Server:relay-idle-timeout]
 *
 * Since: 1.0
 */
guint
rndz_server_get_relay_idle_timeout (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), 0);

  return server->relay_idle_timeout;
}

/**
 * rndz_server_set_relay_idle_timeout:
 * @server: a #RndzServer
 * @seconds: the new timeout, at least 1
 *
 * Sets [property@Rndz.Server:relay-idle-timeout]. The new timeout applies
 * at once, to the open sessions too.
 *
 * Since: 1.0
 */
void
rndz_server_set_relay_idle_timeout (RndzServer *server,
                                    guint       seconds)
{
  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (seconds >= 1 && seconds <= MAX_RELAY_IDLE_TIMEOUT);

  if (server->relay_idle_timeout == seconds)
    return;

  server->relay_idle_timeout = seconds;
  server_relay_changed (server, PROP_RELAY_IDLE_TIMEOUT);
}

static void
server_auth_changed (RndzServer *server,
                     gboolean    was_required)
{
  if (was_required != rndz_server_get_auth_required (server))
    g_object_notify_by_pspec (G_OBJECT (server), properties[PROP_AUTH_REQUIRED]);
}

/**
 * rndz_server_set_secret:
 * @server: a #RndzServer
 * @secret: (nullable): the secret, or %NULL for none
 *
 * Requires every peer to authenticate with the key rndz_derive_key()
 * derives from @secret for its id. Keys added with rndz_server_add_key()
 * take precedence for their ids. Without a secret and without keys,
 * peers need not authenticate.
 *
 * Since: 1.0
 */
void
rndz_server_set_secret (RndzServer *server,
                        GBytes     *secret)
{
  gboolean was_required;

  g_return_if_fail (RNDZ_IS_SERVER (server));

  was_required = rndz_server_get_auth_required (server);
  g_clear_pointer (&server->secret, g_bytes_unref);
  if (secret != NULL && g_bytes_get_size (secret) > 0)
    server->secret = g_bytes_ref (secret);
  server_auth_changed (server, was_required);
}

/**
 * rndz_server_add_key:
 * @server: a #RndzServer
 * @id: a peer id
 * @key: the key of the peer @id
 *
 * Requires the peer @id to authenticate with @key, and turns
 * authentication on for every peer: ids without a key (and without a
 * secret to derive one) can no longer register.
 *
 * Since: 1.0
 */
void
rndz_server_add_key (RndzServer *server,
                     const char *id,
                     GBytes     *key)
{
  gboolean was_required;

  g_return_if_fail (RNDZ_IS_SERVER (server));
  g_return_if_fail (id != NULL && key != NULL);

  was_required = rndz_server_get_auth_required (server);
  g_hash_table_insert (server->keys, g_strdup (id), g_bytes_ref (key));
  server_auth_changed (server, was_required);
}

/**
 * rndz_server_load_keys:
 * @server: a #RndzServer
 * @path: (type filename): a file of keys
 * @error: return location for a #GError
 *
 * Adds the keys of a file with one `ID HEXKEY` pair a line, as
 * rndz_server_add_key() does. Empty lines and lines that start with `#`
 * are skipped.
 *
 * Returns: %TRUE if every line was read, %FALSE with @error set otherwise
 *   (no key is added then)
 *
 * Since: 1.0
 */
gboolean
rndz_server_load_keys (RndzServer  *server,
                       const char  *path,
                       GError     **error)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GHashTable) keys = NULL;
  GHashTableIter iter;
  gpointer id, key;

  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  if (!g_file_get_contents (path, &contents, NULL, error))
    return FALSE;

  keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autoptr(GError) local_error = NULL;
      g_auto(GStrv) fields = NULL;
      GBytes *parsed;
      char *line = g_strstrip (lines[i]);

      if (line[0] == '\0' || line[0] == '#')
        continue;

      fields = g_strsplit_set (line, " \t", 2);
      if (g_strv_length (fields) != 2 || !rndz_id_is_valid (fields[0], -1) ||
          (parsed = rndz_key_from_hex (fields[1], &local_error)) == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("%s:%u: expected an id and a hexadecimal key"), path, i + 1);
          return FALSE;
        }
      g_hash_table_insert (keys, g_strdup (fields[0]), parsed);
    }

  g_hash_table_iter_init (&iter, keys);
  while (g_hash_table_iter_next (&iter, &id, &key))
    rndz_server_add_key (server, id, key);

  return TRUE;
}

/**
 * rndz_server_get_auth_required:
 * @server: a #RndzServer
 *
 * Gets whether peers must authenticate to this server.
 *
 * Returns: the value of [property@Rndz.Server:auth-required]
 *
 * Since: 1.0
 */
gboolean
rndz_server_get_auth_required (RndzServer *server)
{
  g_return_val_if_fail (RNDZ_IS_SERVER (server), FALSE);

  return server->secret != NULL || g_hash_table_size (server->keys) > 0;
}

/* Internal API */

void
rndz_server_get_stats (RndzServer      *server,
                       RndzServerStats *stats)
{
  *stats = server->stats;
}

guint
rndz_server_get_relay_session_count (RndzServer *server)
{
  return server->relay != NULL ? rndz_relay_get_session_count (server->relay) : 0;
}

void
rndz_server_set_relay_join_timeout (RndzServer *server,
                                    guint       ms)
{
  server->relay_join_timeout_ms = ms;
  if (server->relay != NULL)
    rndz_relay_set_join_timeout (server->relay, ms != 0 ? ms : RNDZ_RELAY_JOIN_TIMEOUT_MS);
}

void
rndz_server_set_udp_sender (RndzServer         *server,
                            RndzServerSendFunc  func,
                            gpointer            user_data)
{
  server->send_func = func;
  server->send_data = user_data;
}

static void
rndz_server_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  RndzServer *server = RNDZ_SERVER (object);

  switch (prop_id)
    {
    case PROP_PEER_TIMEOUT:
      g_value_set_uint (value, server->peer_timeout);
      break;
    case PROP_FORWARD_TIMEOUT:
      g_value_set_uint (value, server->forward_timeout);
      break;
    case PROP_REGISTER_TIMEOUT:
      g_value_set_uint (value, server->register_timeout);
      break;
    case PROP_MAX_PEERS:
      g_value_set_uint (value, server->max_peers);
      break;
    case PROP_MAX_CONNECTIONS:
      g_value_set_uint (value, server->max_connections);
      break;
    case PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint (value, server->max_message_size);
      break;
    case PROP_REQUEST_RATE:
      g_value_set_uint (value, server->request_rate);
      break;
    case PROP_RELAY_PORT:
      g_value_set_uint (value, server->relay_port);
      break;
    case PROP_RELAY_MAX_SESSIONS:
      g_value_set_uint (value, server->relay_max_sessions);
      break;
    case PROP_RELAY_RATE:
      g_value_set_uint (value, server->relay_rate);
      break;
    case PROP_RELAY_IDLE_TIMEOUT:
      g_value_set_uint (value, server->relay_idle_timeout);
      break;
    case PROP_AUTH_REQUIRED:
      g_value_set_boolean (value, rndz_server_get_auth_required (server));
      break;
    case PROP_PEER_COUNT:
      g_value_set_uint (value, rndz_server_get_peer_count (server));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_server_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  RndzServer *server = RNDZ_SERVER (object);

  switch (prop_id)
    {
    case PROP_PEER_TIMEOUT:
      rndz_server_set_peer_timeout (server, g_value_get_uint (value));
      break;
    case PROP_FORWARD_TIMEOUT:
      rndz_server_set_forward_timeout (server, g_value_get_uint (value));
      break;
    case PROP_REGISTER_TIMEOUT:
      rndz_server_set_register_timeout (server, g_value_get_uint (value));
      break;
    case PROP_MAX_PEERS:
      rndz_server_set_max_peers (server, g_value_get_uint (value));
      break;
    case PROP_MAX_CONNECTIONS:
      rndz_server_set_max_connections (server, g_value_get_uint (value));
      break;
    case PROP_MAX_MESSAGE_SIZE:
      rndz_server_set_max_message_size (server, g_value_get_uint (value));
      break;
    case PROP_REQUEST_RATE:
      rndz_server_set_request_rate (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_PORT:
      rndz_server_set_relay_port (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_MAX_SESSIONS:
      rndz_server_set_relay_max_sessions (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_RATE:
      rndz_server_set_relay_rate (server, g_value_get_uint (value));
      break;
    case PROP_RELAY_IDLE_TIMEOUT:
      rndz_server_set_relay_idle_timeout (server, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_server_dispose (GObject *object)
{
  RndzServer *server = RNDZ_SERVER (object);

  rndz_server_stop (server);

  G_OBJECT_CLASS (rndz_server_parent_class)->dispose (object);
}

static void
rndz_server_finalize (GObject *object)
{
  RndzServer *server = RNDZ_SERVER (object);

  g_hash_table_unref (server->peers[RNDZ_TRANSPORT_UDP]);
  g_hash_table_unref (server->peers[RNDZ_TRANSPORT_TCP]);
  g_hash_table_unref (server->conns);
  g_hash_table_unref (server->pending);
  g_hash_table_unref (server->pending_by_request);
  g_hash_table_unref (server->unregistered_by_addr);
  rndz_rate_limit_free (server->requester_limit);
  rndz_rate_limit_free (server->auth_failures);
  g_queue_clear_full (&server->replay_queue, g_free);
  g_hash_table_unref (server->replay);
  g_hash_table_unref (server->replay_per_id);
  g_hash_table_unref (server->keys);
  g_clear_pointer (&server->secret, g_bytes_unref);
  rndz_rate_limit_free (server->target_limit);
  rndz_rate_limit_free (server->refusal_limit);
  g_queue_clear_full (&server->events, g_free);
  g_main_context_unref (server->context);

  G_OBJECT_CLASS (rndz_server_parent_class)->finalize (object);
}

static void
rndz_server_class_init (RndzServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->get_property = rndz_server_get_property;
  object_class->set_property = rndz_server_set_property;
  object_class->dispose = rndz_server_dispose;
  object_class->finalize = rndz_server_finalize;

  /**
   * RndzServer:peer-timeout:
   *
   * Seconds after its last ping that a peer is forgotten.
   *
   * Since: 1.0
   */
  properties[PROP_PEER_TIMEOUT] =
    g_param_spec_uint ("peer-timeout", NULL, NULL,
                       1, G_MAXUINT32 / 2, DEFAULT_PEER_TIMEOUT, flags);

  /**
   * RndzServer:forward-timeout:
   *
   * Seconds a forwarded connection request may wait for the target's
   * answer before the requester is told that the peer did not answer.
   *
   * Since: 1.0
   */
  properties[PROP_FORWARD_TIMEOUT] =
    g_param_spec_uint ("forward-timeout", NULL, NULL,
                       1, 3600, DEFAULT_FORWARD_TIMEOUT, flags);

  /**
   * RndzServer:register-timeout:
   *
   * Seconds a TCP connection may stay open without registering a peer.
   *
   * Since: 1.0
   */
  properties[PROP_REGISTER_TIMEOUT] =
    g_param_spec_uint ("register-timeout", NULL, NULL,
                       1, 3600, DEFAULT_REGISTER_TIMEOUT, flags);

  /**
   * RndzServer:max-peers:
   *
   * The largest number of registered peers, over both transports. Further
   * registrations are answered with a `server-full` error.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_PEERS] =
    g_param_spec_uint ("max-peers", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_MAX_PEERS, flags);

  /**
   * RndzServer:max-connections:
   *
   * The largest number of simultaneous TCP connections. Further
   * connections are closed as soon as they are accepted.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_CONNECTIONS] =
    g_param_spec_uint ("max-connections", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_MAX_CONNECTIONS, flags);

  /**
   * RndzServer:max-message-size:
   *
   * The largest message accepted, in bytes. Larger datagrams are dropped
   * and larger frames close their connection.
   *
   * Since: 1.0
   */
  properties[PROP_MAX_MESSAGE_SIZE] =
    g_param_spec_uint ("max-message-size", NULL, NULL,
                       RNDZ_MESSAGE_MIN_MAX_SIZE, RNDZ_MESSAGE_DEFAULT_MAX_SIZE,
                       RNDZ_MESSAGE_DEFAULT_MAX_SIZE, flags);

  /**
   * RndzServer:request-rate:
   *
   * Connection requests per second that the server forwards from one
   * source address, and to one target address, with bursts of twice as
   * many. A forwarded request makes the server send to a third party: the
   * limit keeps the server from being used to flood anyone. An IPv6
   * source counts by its /64 prefix.
   *
   * Since: 1.0
   */
  properties[PROP_REQUEST_RATE] =
    g_param_spec_uint ("request-rate", NULL, NULL,
                       1, G_MAXUINT16, DEFAULT_REQUEST_RATE, flags);

  /**
   * RndzServer:relay-port:
   *
   * The port to relay on, TCP and UDP, at the address the server listens
   * on; 0, the default, for no relay. Peers that cannot reach each other
   * directly may ask the server to relay their traffic through this port
   * (see `doc/protocol.md`): it costs the server bandwidth, so it is off
   * unless set. A change takes effect the next time the server listens.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_PORT] =
    g_param_spec_uint ("relay-port", NULL, NULL,
                       0, G_MAXUINT16, 0, flags);

  /**
   * RndzServer:relay-max-sessions:
   *
   * The largest number of relay sessions open at once. Further relay
   * requests are answered with a `server-full` error.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_MAX_SESSIONS] =
    g_param_spec_uint ("relay-max-sessions", NULL, NULL,
                       1, G_MAXUINT, DEFAULT_RELAY_MAX_SESSIONS, flags);

  /**
   * RndzServer:relay-rate:
   *
   * The bytes per second that the relay forwards per session and
   * direction, with bursts of a quarter of a second (at least 64 KiB); 0
   * for no limit. Datagrams over the rate are dropped; a TCP connection
   * over the rate is not read until it is within it again.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_RATE] =
    g_param_spec_uint ("relay-rate", NULL, NULL,
                       0, G_MAXUINT, DEFAULT_RELAY_RATE, flags);

  /**
   * RndzServer:relay-idle-timeout:
   *
   * Seconds without traffic after which a relay session is closed. A
   * session that both peers did not join within ten seconds is closed
   * too.
   *
   * Since: 1.0
   */
  properties[PROP_RELAY_IDLE_TIMEOUT] =
    g_param_spec_uint ("relay-idle-timeout", NULL, NULL,
                       1, MAX_RELAY_IDLE_TIMEOUT, DEFAULT_RELAY_IDLE_TIMEOUT, flags);

  /**
   * RndzServer:auth-required:
   *
   * Whether peers must authenticate: true once a secret or a key is set
   * (see rndz_server_set_secret()).
   *
   * Since: 1.0
   */
  properties[PROP_AUTH_REQUIRED] =
    g_param_spec_boolean ("auth-required", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzServer:peer-count:
   *
   * The number of registered peers, over both transports.
   *
   * Since: 1.0
   */
  properties[PROP_PEER_COUNT] =
    g_param_spec_uint ("peer-count", NULL, NULL,
                       0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * RndzServer::peer-registered:
   * @server: the server
   * @id: the peer's id
   * @transport: the transport it registered on
   * @address: the peer's address as the server sees it
   *
   * Emitted when a peer registers, or when a registered peer shows up at a
   * new address or on a new connection.
   *
   * Since: 1.0
   */
  signals[SIGNAL_PEER_REGISTERED] =
    g_signal_new ("peer-registered", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 3,
                  G_TYPE_STRING, RNDZ_TYPE_TRANSPORT, G_TYPE_SOCKET_ADDRESS);

  /**
   * RndzServer::peer-removed:
   * @server: the server
   * @id: the peer's id
   * @transport: the transport it was registered on
   *
   * Emitted when a peer said bye, timed out, lost its TCP connection, or
   * the server stopped.
   *
   * Since: 1.0
   */
  signals[SIGNAL_PEER_REMOVED] =
    g_signal_new ("peer-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2,
                  G_TYPE_STRING, RNDZ_TYPE_TRANSPORT);
}

static void
rndz_server_init (RndzServer *server)
{
  server->context = g_main_context_ref_thread_default ();
  server->peers[RNDZ_TRANSPORT_UDP] = g_hash_table_new_full (g_str_hash, g_str_equal,
                                                             NULL, (GDestroyNotify) peer_free);
  server->peers[RNDZ_TRANSPORT_TCP] = g_hash_table_new_full (g_str_hash, g_str_equal,
                                                             NULL, (GDestroyNotify) peer_free);
  server->conns = g_hash_table_new (NULL, NULL);
  server->pending = g_hash_table_new (NULL, NULL);
  server->pending_by_request = g_hash_table_new_full (request_key_hash, request_key_equal,
                                                      g_free, NULL);
  server->next_tid = g_random_int ();

  server->peer_timeout = DEFAULT_PEER_TIMEOUT;
  server->forward_timeout = DEFAULT_FORWARD_TIMEOUT;
  server->register_timeout = DEFAULT_REGISTER_TIMEOUT;
  server->max_peers = DEFAULT_MAX_PEERS;
  server->max_connections = DEFAULT_MAX_CONNECTIONS;
  server->max_message_size = RNDZ_MESSAGE_DEFAULT_MAX_SIZE;
  server->request_rate = DEFAULT_REQUEST_RATE;
  server->relay_max_sessions = DEFAULT_RELAY_MAX_SESSIONS;
  server->relay_rate = DEFAULT_RELAY_RATE;
  server->relay_idle_timeout = DEFAULT_RELAY_IDLE_TIMEOUT;
  server->requester_limit = rndz_rate_limit_new (RATE_LIMIT_BUCKETS, DEFAULT_REQUEST_RATE,
                                                 2 * DEFAULT_REQUEST_RATE);
  server->target_limit = rndz_rate_limit_new (RATE_LIMIT_BUCKETS, DEFAULT_REQUEST_RATE,
                                              2 * DEFAULT_REQUEST_RATE);
  server->refusal_limit = rndz_rate_limit_new (RATE_LIMIT_BUCKETS, REFUSAL_RATE, REFUSAL_RATE);
  server->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) g_bytes_unref);
  server->auth_failures = rndz_rate_limit_new (RATE_LIMIT_BUCKETS, AUTH_FAILURE_RATE,
                                               2 * AUTH_FAILURE_RATE);
  server->replay = g_hash_table_new (g_str_hash, g_str_equal);
  server->replay_per_id = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  server->unregistered_by_addr = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                                        (GEqualFunc) rndz_addr_equal,
                                                        g_free, NULL);
}

/**
 * rndz_server_new:
 *
 * Creates a rendezvous server. Its sockets and timers will be attached to
 * the thread-default main context of the calling thread. Call
 * rndz_server_listen() to start serving.
 *
 * Returns: (transfer full): a new #RndzServer
 *
 * Since: 1.0
 */
RndzServer *
rndz_server_new (void)
{
  return g_object_new (RNDZ_TYPE_SERVER, NULL);
}
