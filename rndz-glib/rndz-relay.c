/* rndz-relay.c: the server's relay port
 *
 * SPDX-License-Identifier: MIT
 *
 * A session has two sides: the requester (0) and the target (1), known
 * by their ids. A peer joins its side with a `hello` carrying the
 * session's token and its own id:
 *
 *  - over UDP, the first address that says hello for a side is that
 *    side's endpoint for good (no rebinding); the relay answers `wait`
 *    until the other side is there, then `ready`, and from then on
 *    forwards every datagram of one endpoint, unchanged, to the other;
 *  - over TCP, the relay reads exactly one hello frame from an accepted
 *    connection (never a byte more: what follows belongs to the peers),
 *    sends nothing while the other side is missing, then a `ready` frame
 *    to each, and splices the two connections.
 *
 * Forwarding is rate limited per session and direction by a token
 * bucket: a datagram over the rate is dropped, a TCP side over the rate
 * is not read until the bucket has refilled. Sessions that both peers
 * did not join within the join timeout, and joined ones without traffic
 * for the idle timeout, are closed.
 *
 * The forwarding path allocates nothing: datagrams are read into one
 * buffer of the relay and sent on from there; each TCP side has one
 * buffer of fixed size, allocated when the session becomes ready.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "rndz-relay-private.h"
#include "rndz-poller-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"
#include "rndz-i18n-private.h"

/* Datagrams read per wake-up, so that TCP gets its turn */
#define UDP_BATCH 64
/* Bytes buffered per TCP direction */
#define SPLICE_BUFFER (64 * 1024)
/* Connections that have not said hello yet, at most; the oldest goes */
#define MIN_HELLO_CONNECTIONS 64
#define LISTEN_BATCH 64

typedef struct _RelayConn RelayConn;

/* Bytes a side may send: refilled at the relay's rate, up to a burst */
typedef struct
{
  double tokens;
  gint64 last;
} Bucket;

typedef struct
{
  gboolean bound;
  RndzAddr addr;         /* UDP: the endpoint */
  RelayConn *conn;       /* TCP: the connection, once it said hello */
  guint32 hello_tid;     /* the last hello's, echoed by ready */
  Bucket bucket;         /* what this side sends */
} Side;

struct _RndzRelaySession
{
  RndzRelay *relay;
  RndzTransport transport;
  char token[RNDZ_TOKEN_LEN + 1];
  char ids[2][RNDZ_ID_MAX_LEN + 1];   /* requester, target */
  guint32 target_tid;
  RndzAddr requester_addr;
  guint32 requester_tid;
  Side sides[2];
  gboolean ready;
  gint64 created;
  gint64 last_activity;
  GList link;            /* in RndzRelay.sessions */
};

/* A TCP connection to the relay port: first waiting for its hello, then
 * a side of a session. */
struct _RelayConn
{
  RndzRelay *relay;
  GSocket *socket;
  int fd;
  gboolean closed;
  RndzPollerWatch *watch;

  /* Until the hello frame is complete */
  RndzRelaySession *session;
  guint idx;             /* which side of the session */
  gint64 accepted;
  gboolean in_hellos;
  GList link;            /* in RndzRelay.hellos while in_hellos */
  gsize hello_len;
  guint8 hello[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];

  /* Once ready: what is to be written to this connection */
  guint8 *out;
  gsize out_start;
  gsize out_len;
  gboolean eof;          /* this side sent EOF */
  gboolean shut;         /* writing to this side was shut down */
  gboolean paused;       /* over the rate: not read until resume_at */
  gint64 resume_at;
};

struct _RndzRelay
{
  GMainContext *context;
  RndzServerStats *stats;
  GSocket *udp_socket;
  GSocket *tcp_socket;
  GSocketFamily family;
  GSource *udp_source;
  GSource *tcp_source;
  GSource *timer;
  RndzPoller *poller;    /* from the first TCP connection on */
  gboolean dispatching;
  GPtrArray *dead;       /* connections closed during a poller callback */

  GQueue sessions;       /* oldest first */
  GHashTable *by_token;  /* token → session */
  GHashTable *by_request; /* RndzRelayRequestKey → session */
  GHashTable *by_endpoint; /* UDP: RndzAddr → session */
  GQueue hellos;         /* RelayConn waiting for their hello, oldest first */

  guint max_sessions;
  guint rate;
  guint idle_timeout_ms;
  guint join_timeout_ms;

  /* Every datagram passes through here */
  char datagram[G_MAXUINT16 + 1];
};

/* A relay request: who asked, in which transaction, over what */
typedef struct
{
  RndzAddr addr;
  guint32 tid;
  guint8 transport;
} RndzRelayRequestKey;

static void relay_conn_close (RelayConn *conn);
static void relay_conn_update (RelayConn *conn);

/* Helpers */

static guint
request_key_hash (gconstpointer key)
{
  const RndzRelayRequestKey *k = key;

  return rndz_addr_hash (&k->addr) ^ k->tid ^ k->transport;
}

static gboolean
request_key_equal (gconstpointer a,
                   gconstpointer b)
{
  const RndzRelayRequestKey *ka = a, *kb = b;

  return ka->tid == kb->tid && ka->transport == kb->transport &&
         rndz_addr_equal (&ka->addr, &kb->addr);
}

static void
relay_schedule (RndzRelay *relay,
                gint64     deadline)
{
  rndz_deadline_source_arm (relay->timer, deadline);
}

/* 128 bits from the kernel's generator: the token is all that lets a
 * peer into a session, so there is no weaker fallback. getrandom() fails
 * under a seccomp policy that forbids it, or on a kernel without it. */
static gboolean
make_token (char     token[RNDZ_TOKEN_LEN + 1],
            GError **error)
{
  guint8 bytes[RNDZ_TOKEN_LEN / 2];
  gsize got = 0;

  while (got < sizeof bytes)
    {
      gssize n = getrandom (bytes + got, sizeof bytes - got, 0);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int errsv = n < 0 ? errno : EIO;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       _("Cannot generate a session token: %s"), g_strerror (errsv));
          return FALSE;
        }
      got += n;
    }

  for (gsize i = 0; i < sizeof bytes; i++)
    g_snprintf (token + 2 * i, 3, "%02x", bytes[i]);
  return TRUE;
}

static double
relay_burst (RndzRelay *relay)
{
  /* A quarter of a second, but at least a full datagram or buffer */
  return MAX (relay->rate / 4.0, (double) SPLICE_BUFFER);
}

static void
bucket_fill (RndzRelay *relay,
             Bucket    *bucket,
             gint64     now)
{
  bucket->tokens = relay_burst (relay);
  bucket->last = now;
}

/* Returns the bytes available now */
static double
bucket_refill (RndzRelay *relay,
               Bucket    *bucket,
               gint64     now)
{
  if (relay->rate == 0)
    return G_MAXDOUBLE;

  bucket->tokens = MIN (relay_burst (relay),
                        bucket->tokens + (double) (now - bucket->last) * relay->rate / G_USEC_PER_SEC);
  bucket->last = now;
  return bucket->tokens;
}

static void
bucket_take (RndzRelay *relay,
             Bucket    *bucket,
             gsize      n)
{
  if (relay->rate != 0)
    bucket->tokens -= n;
}

/* Sends a wait or ready, never larger than the hello it answers */
static void
relay_send_udp_reply (RndzRelay       *relay,
                      const RndzAddr  *to,
                      RndzMessageType  type,
                      guint32          tid,
                      gsize            limit)
{
  char buf[64];
  struct sockaddr_storage ss;
  gsize len, sslen;
  RndzMessage reply;

  rndz_message_init (&reply, type, tid);
  len = rndz_message_encode (&reply, buf, sizeof buf);
  sslen = rndz_addr_to_sockaddr (to, relay->family, &ss);
  if (len == 0 || len > limit || sslen == 0)
    return;

  if (sendto (g_socket_get_fd (relay->udp_socket), buf, len, MSG_DONTWAIT,
              (struct sockaddr *) &ss, sslen) < 0)
    g_debug ("Relay: UDP send failed: %s", g_strerror (errno));
}

/* Sessions */

static void
session_free (RndzRelaySession *session)
{
  RndzRelay *relay = session->relay;
  RndzRelayRequestKey key = {
    session->requester_addr, session->requester_tid, session->transport
  };

  g_debug ("Relay: closing the session of “%s” and “%s”", session->ids[0], session->ids[1]);

  for (guint i = 0; i < 2; i++)
    {
      Side *side = &session->sides[i];

      if (session->transport == RNDZ_TRANSPORT_UDP && side->bound)
        g_hash_table_remove (relay->by_endpoint, &side->addr);
      if (side->conn != NULL)
        {
          RelayConn *conn = g_steal_pointer (&side->conn);

          conn->session = NULL;
          relay_conn_close (conn);
        }
    }

  g_hash_table_remove (relay->by_token, session->token);
  g_hash_table_remove (relay->by_request, &key);
  g_queue_unlink (&relay->sessions, &session->link);
  g_free (session);
}

RndzRelaySession *
rndz_relay_find_request (RndzRelay      *relay,
                         RndzTransport   transport,
                         const RndzAddr *requester,
                         guint32         tid)
{
  RndzRelayRequestKey key = { *requester, tid, transport };

  return g_hash_table_lookup (relay->by_request, &key);
}

/*
 * rndz_relay_open:
 * @target_tid: the transaction id of the session message to the target
 *
 * Opens a session for a relay request, or returns %NULL when there is
 * no room for one more or no token can be made for it (logged).
 */
RndzRelaySession *
rndz_relay_open (RndzRelay      *relay,
                 RndzTransport   transport,
                 const RndzAddr *requester,
                 guint32         tid,
                 const char     *requester_id,
                 const char     *target_id,
                 guint32         target_tid)
{
  g_autoptr(GError) error = NULL;
  g_autofree RndzRelaySession *session = NULL;
  RndzRelayRequestKey *key;

  if (relay->sessions.length >= relay->max_sessions)
    return NULL;

  session = g_new0 (RndzRelaySession, 1);
  do
    {
      if (!make_token (session->token, &error))
        {
          g_debug ("Relay: no session for “%s”: %s", requester_id, error->message);
          return NULL;
        }
    }
  while (g_hash_table_contains (relay->by_token, session->token));

  session->relay = relay;
  session->transport = transport;
  g_strlcpy (session->ids[0], requester_id, sizeof session->ids[0]);
  g_strlcpy (session->ids[1], target_id, sizeof session->ids[1]);
  session->target_tid = target_tid;
  session->requester_addr = *requester;
  session->requester_tid = tid;
  session->created = g_get_monotonic_time ();
  session->link.data = session;

  key = g_new (RndzRelayRequestKey, 1);
  *key = (RndzRelayRequestKey) { *requester, tid, transport };
  g_hash_table_insert (relay->by_token, session->token, session);
  g_hash_table_insert (relay->by_request, key, session);
  g_queue_push_tail_link (&relay->sessions, &session->link);
  relay_schedule (relay, session->created + relay->join_timeout_ms * (gint64) 1000);

  relay->stats->relay_sessions++;
  g_debug ("Relay: opened a %s session for “%s” and “%s”",
           transport == RNDZ_TRANSPORT_TCP ? "TCP" : "UDP", requester_id, target_id);
  return g_steal_pointer (&session);
}

const char *
rndz_relay_session_get_token (RndzRelaySession *session)
{
  return session->token;
}

const char *
rndz_relay_session_get_target (RndzRelaySession *session)
{
  return session->ids[1];
}

guint32
rndz_relay_session_get_target_tid (RndzRelaySession *session)
{
  return session->target_tid;
}

/* Which side of @session @id is, or -1 */
static int
session_side (RndzRelaySession *session,
              const char       *id)
{
  for (int i = 0; i < 2; i++)
    if (g_str_equal (session->ids[i], id))
      return i;
  return -1;
}

/* The hello that joins @session, if @msg is one */
static RndzRelaySession *
hello_session (RndzRelay         *relay,
               const RndzMessage *msg,
               RndzTransport      transport,
               int               *idx)
{
  RndzRelaySession *session;

  if (msg->type != RNDZ_MESSAGE_HELLO)
    return NULL;
  session = g_hash_table_lookup (relay->by_token, msg->token);
  if (session == NULL || session->transport != transport)
    return NULL;
  *idx = session_side (session, msg->id);
  return *idx < 0 ? NULL : session;
}

static void
session_start (RndzRelaySession *session)
{
  RndzRelay *relay = session->relay;
  gint64 now = g_get_monotonic_time ();

  session->ready = TRUE;
  session->last_activity = now;
  for (guint i = 0; i < 2; i++)
    bucket_fill (relay, &session->sides[i].bucket, now);
  relay_schedule (relay, now + relay->idle_timeout_ms * (gint64) 1000);
  g_debug ("Relay: “%s” and “%s” are both there", session->ids[0], session->ids[1]);
}

/* UDP */

/* Whether a datagram may be a hello, without parsing it: forwarded
 * traffic is not run through the JSON parser. */
static gboolean
maybe_hello (const char *data,
             gsize       len)
{
  return len > 0 && len <= RNDZ_MESSAGE_DEFAULT_MAX_SIZE && data[0] == '{' &&
         /* JSON holds no NUL, so stopping at one loses nothing */
         g_strstr_len (data, len, "\"hello\"") != NULL;
}

static gboolean
decode_hello (const char  *data,
              gsize        len,
              RndzMessage *msg)
{
  return maybe_hello (data, len) &&
         rndz_message_decode (msg, data, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) &&
         msg->type == RNDZ_MESSAGE_HELLO;
}

/* A hello from an address that is no session's endpoint yet */
static void
udp_join (RndzRelay      *relay,
          const RndzAddr *from,
          const char     *data,
          gsize           len)
{
  RndzRelaySession *session;
  RndzMessage msg;
  Side *side, *other;
  int idx;

  if (!decode_hello (data, len, &msg) ||
      (session = hello_session (relay, &msg, RNDZ_TRANSPORT_UDP, &idx)) == NULL)
    {
      relay->stats->relay_dropped++;
      return;
    }

  side = &session->sides[idx];
  other = &session->sides[1 - idx];
  if (side->bound)
    {
      /* First come, for good */
      relay->stats->relay_dropped++;
      return;
    }

  side->bound = TRUE;
  side->addr = *from;
  side->hello_tid = msg.tid;
  g_hash_table_insert (relay->by_endpoint, &side->addr, session);

  if (!other->bound)
    {
      relay_send_udp_reply (relay, from, RNDZ_MESSAGE_WAIT, msg.tid, len);
      return;
    }

  session_start (session);
  relay_send_udp_reply (relay, from, RNDZ_MESSAGE_READY, msg.tid, len);
  /* The other side need not wait for its next hello; its last one was
   * no smaller than this reply */
  relay_send_udp_reply (relay, &other->addr, RNDZ_MESSAGE_READY, other->hello_tid, G_MAXSIZE);
}

static void
udp_forward (RndzRelay        *relay,
             RndzRelaySession *session,
             int               idx,
             const char       *data,
             gsize             len)
{
  Side *side = &session->sides[idx];
  Side *other = &session->sides[1 - idx];
  struct sockaddr_storage ss;
  gsize sslen;
  gint64 now;

  /* Still alone: nobody to forward to */
  if (!session->ready)
    {
      relay->stats->relay_dropped++;
      return;
    }

  now = g_get_monotonic_time ();
  if (bucket_refill (relay, &side->bucket, now) < len)
    {
      relay->stats->relay_dropped++;
      return;
    }
  bucket_take (relay, &side->bucket, len);
  session->last_activity = now;

  sslen = rndz_addr_to_sockaddr (&other->addr, relay->family, &ss);
  if (sendto (g_socket_get_fd (relay->udp_socket), data, len, MSG_DONTWAIT,
              (struct sockaddr *) &ss, sslen) < 0)
    {
      relay->stats->relay_dropped++;
      return;
    }
  relay->stats->relay_bytes += len;
}

static void
udp_receive (RndzRelay      *relay,
             const RndzAddr *from,
             const char     *data,
             gsize           len)
{
  RndzRelaySession *session = g_hash_table_lookup (relay->by_endpoint, from);
  RndzMessage msg;
  int idx;

  if (session == NULL)
    {
      udp_join (relay, from, data, len);
      return;
    }

  idx = rndz_addr_equal (&session->sides[0].addr, from) ? 0 : 1;

  /* A hello again: the reply to the last one was lost */
  if (decode_hello (data, len, &msg) &&
      g_str_equal (msg.token, session->token) &&
      g_str_equal (msg.id, session->ids[idx]))
    {
      session->sides[idx].hello_tid = msg.tid;
      relay_send_udp_reply (relay, from, session->ready ? RNDZ_MESSAGE_READY : RNDZ_MESSAGE_WAIT,
                            msg.tid, len);
      return;
    }

  udp_forward (relay, session, idx, data, len);
}

static gboolean
relay_udp_read_cb (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  RndzRelay *relay = user_data;
  int fd = g_socket_get_fd (socket);

  for (guint i = 0; i < UDP_BATCH; i++)
    {
      struct sockaddr_storage ss;
      socklen_t sslen = sizeof ss;
      RndzAddr from;
      gssize n;

      n = recvfrom (fd, relay->datagram, sizeof relay->datagram, MSG_DONTWAIT,
                    (struct sockaddr *) &ss, &sslen);
      if (n < 0)
        {
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
          /* ICMP errors for earlier sends surface here; keep reading */
          continue;
        }

      if (rndz_addr_from_sockaddr (&from, (struct sockaddr *) &ss, sslen) && from.port != 0)
        udp_receive (relay, &from, relay->datagram, n);
    }

  return G_SOURCE_CONTINUE;
}

/* TCP: connections */

static void
relay_conn_free (RelayConn *conn)
{
  g_object_unref (conn->socket);
  g_free (conn->out);
  g_free (conn);
}

/* Closes @conn; a session it belongs to is closed by the caller */
static void
relay_conn_close (RelayConn *conn)
{
  RndzRelay *relay = conn->relay;

  if (conn->closed)
    return;

  conn->closed = TRUE;
  if (conn->in_hellos)
    g_queue_unlink (&relay->hellos, &conn->link);
  rndz_poller_remove (relay->poller, g_steal_pointer (&conn->watch));
  g_socket_close (conn->socket, NULL);

  /* The poller's callback may still be using it */
  if (relay->dispatching)
    g_ptr_array_add (relay->dead, conn);
  else
    relay_conn_free (conn);
}

static void
relay_conn_watch (RelayConn *conn,
                  guint32    events)
{
  g_autoptr(GError) error = NULL;

  if (conn->closed ||
      rndz_poller_set_events (conn->relay->poller, conn->watch, events, &error))
    return;

  /* Out of kernel memory. Closing here would pull the connection from
   * under the callers; unwatched and shut down, it ends through the
   * session's timeouts or the other side's next write. */
  g_debug ("Relay: %s; dropping a TCP connection", error->message);
  shutdown (conn->fd, SHUT_RDWR);
}

static RelayConn *
conn_other (RelayConn *conn)
{
  return conn->session->sides[1 - conn->idx].conn;
}

/* What the connection waits for, from where it is */
static void
relay_conn_update (RelayConn *conn)
{
  RelayConn *other;
  guint32 events = 0;

  if (conn->closed)
    return;

  if (conn->session == NULL)
    events = EPOLLIN;
  else if (!conn->session->ready)
    /* Nothing is read before ready; only notice a peer that leaves */
    events = EPOLLRDHUP;
  else
    {
      other = conn_other (conn);
      if (!conn->eof && !conn->paused && other->out_start + other->out_len < SPLICE_BUFFER)
        events |= EPOLLIN;
      if (conn->out_len > 0)
        events |= EPOLLOUT;
      /* Nothing to do (paused, or the other side's queue is full, or
       * this direction is done): not watched at all, since epoll would
       * report a hang-up over and over */
    }

  relay_conn_watch (conn, events);
}

static void
relay_conn_queue_ready (RelayConn *conn)
{
  RndzMessage ready;
  gsize len;

  conn->out = g_malloc (SPLICE_BUFFER);
  rndz_message_init (&ready, RNDZ_MESSAGE_READY, conn->session->sides[conn->idx].hello_tid);
  len = rndz_message_encode_frame (&ready, (char *) conn->out, SPLICE_BUFFER);
  /* Not a runtime condition: a ready frame is some forty bytes */
  g_return_if_fail (len > 0);
  conn->out_start = 0;
  conn->out_len = len;
}

/* Binds a connection that said hello to its side */
static void
tcp_join (RelayConn         *conn,
          const RndzMessage *msg)
{
  RndzRelay *relay = conn->relay;
  RndzRelaySession *session;
  Side *side;
  int idx;

  session = hello_session (relay, msg, RNDZ_TRANSPORT_TCP, &idx);
  if (session == NULL || session->sides[idx].bound)
    {
      g_debug ("Relay: closing a TCP connection with a wrong hello");
      relay->stats->relay_dropped++;
      relay_conn_close (conn);
      return;
    }

  g_queue_unlink (&relay->hellos, &conn->link);
  conn->in_hellos = FALSE;
  conn->session = session;
  conn->idx = idx;
  side = &session->sides[idx];
  side->bound = TRUE;
  side->conn = conn;
  side->hello_tid = msg->tid;

  if (!session->sides[1 - idx].bound)
    {
      relay_conn_update (conn);
      return;
    }

  session_start (session);
  for (guint i = 0; i < 2; i++)
    relay_conn_queue_ready (session->sides[i].conn);
  for (guint i = 0; i < 2; i++)
    relay_conn_update (session->sides[i].conn);
}

/* Reads the hello frame, exactly: what follows it is the peers' */
static void
tcp_read_hello (RelayConn *conn)
{
  RndzMessage msg;
  gsize want;
  gssize n;

  for (;;)
    {
      if (conn->hello_len < RNDZ_FRAME_HEADER_SIZE)
        want = RNDZ_FRAME_HEADER_SIZE;
      else
        {
          gssize payload = rndz_frame_peek (conn->hello, conn->hello_len,
                                            RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL);

          if (payload < 0)
            break;
          if (payload > 0)
            {
              if (rndz_message_decode (&msg, (const char *) conn->hello + RNDZ_FRAME_HEADER_SIZE,
                                       payload, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL))
                tcp_join (conn, &msg);
              else
                break;
              return;
            }
          want = RNDZ_FRAME_HEADER_SIZE + ((conn->hello[0] << 8) | conn->hello[1]);
        }

      n = recv (conn->fd, conn->hello + conn->hello_len, want - conn->hello_len, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
      if (n <= 0)
        break;
      conn->hello_len += n;
    }

  conn->relay->stats->relay_dropped++;
  relay_conn_close (conn);
}

/* TCP: splicing */

static void
session_fail (RndzRelaySession *session,
              const char       *why)
{
  g_debug ("Relay: %s", why);
  session_free (session);
}

/* Writes what is queued for @conn. Returns FALSE if the session failed. */
static gboolean
relay_conn_flush (RelayConn *conn)
{
  while (conn->out_len > 0)
    {
      gssize n = send (conn->fd, conn->out + conn->out_start, conn->out_len,
                       MSG_DONTWAIT | MSG_NOSIGNAL);

      if (n < 0)
        {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return TRUE;
          session_fail (conn->session, g_strerror (errno));
          return FALSE;
        }
      conn->out_start += n;
      conn->out_len -= n;
    }

  conn->out_start = 0;
  return TRUE;
}

/* After the last byte of one direction: pass the EOF on. Returns FALSE
 * if that ended the session. */
static gboolean
relay_conn_pass_eof (RelayConn *from)
{
  RelayConn *to = conn_other (from);

  if (!from->eof || to->out_len > 0 || to->shut)
    return TRUE;

  shutdown (to->fd, SHUT_WR);
  to->shut = TRUE;
  if (to->eof && from->shut)
    {
      session_fail (from->session, "both directions are done");
      return FALSE;
    }
  return TRUE;
}

/* Reads from @conn into the other side's queue, within the rate */
static void
relay_conn_splice_in (RelayConn *conn)
{
  RndzRelaySession *session = conn->session;
  RndzRelay *relay = conn->relay;
  Side *side = &session->sides[conn->idx];
  RelayConn *other = conn_other (conn);
  gint64 now = g_get_monotonic_time ();

  while (!conn->eof && !conn->paused)
    {
      gsize space, end;
      double allowed;
      gssize n;

      if (other->out_len == 0)
        other->out_start = 0;
      else if (other->out_start > 0 && other->out_start + other->out_len == SPLICE_BUFFER)
        {
          memmove (other->out, other->out + other->out_start, other->out_len);
          other->out_start = 0;
        }
      end = other->out_start + other->out_len;
      space = SPLICE_BUFFER - end;
      if (space == 0)
        break;

      allowed = bucket_refill (relay, &side->bucket, now);
      if (allowed < 1)
        {
          /* Not read until a useful amount is allowed again */
          double chunk = MIN (relay_burst (relay), 16384.0);

          conn->paused = TRUE;
          conn->resume_at = now + (gint64) ((chunk - allowed) * G_USEC_PER_SEC / relay->rate) + 1;
          relay_schedule (relay, conn->resume_at);
          break;
        }
      space = MIN (space, (gsize) MIN (allowed, (double) SPLICE_BUFFER));

      n = recv (conn->fd, other->out + end, space, MSG_DONTWAIT);
      if (n < 0)
        {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            break;
          session_fail (session, g_strerror (errno));
          return;
        }
      if (n == 0)
        {
          conn->eof = TRUE;
          break;
        }

      bucket_take (relay, &side->bucket, n);
      other->out_len += n;
      session->last_activity = now;
      relay->stats->relay_bytes += n;
      if (!relay_conn_flush (other))
        return;
    }

  if (!relay_conn_pass_eof (conn))
    return;
  relay_conn_update (conn);
  relay_conn_update (other);
}

static void
relay_conn_splice_out (RelayConn *conn)
{
  RelayConn *other = conn_other (conn);

  if (!relay_conn_flush (conn) || !relay_conn_pass_eof (other))
    return;
  relay_conn_update (conn);
  relay_conn_update (other);
}

static void
relay_conn_event (RelayConn *conn,
                  guint32    events)
{
  if (conn->session == NULL)
    {
      tcp_read_hello (conn);
      return;
    }

  if (!conn->session->ready)
    {
      /* It left before the other side came: its side is free again */
      Side *side = &conn->session->sides[conn->idx];

      side->bound = FALSE;
      side->conn = NULL;
      conn->session = NULL;
      relay_conn_close (conn);
      return;
    }

  if (events & EPOLLOUT)
    {
      relay_conn_splice_out (conn);
      if (conn->closed)
        return;
    }
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
    relay_conn_splice_in (conn);
}

/* The poller's callback. Handling one connection may close others,
 * itself included: they are freed once it is done. */
static void
relay_conn_poll_cb (guint32  events,
                    gpointer user_data)
{
  RelayConn *conn = user_data;
  RndzRelay *relay = conn->relay;

  relay->dispatching = TRUE;
  relay_conn_event (conn, events);
  relay->dispatching = FALSE;
  g_ptr_array_set_size (relay->dead, 0);
}

/* Watches a new connection, or closes it if it cannot be watched */
static RelayConn *
relay_conn_new (RndzRelay *relay,
                GSocket   *socket)
{
  g_autoptr(GError) error = NULL;
  RelayConn *conn;

  /* Created with the first connection: a relay that never sees one
   * needs no epoll descriptor, and one refused for want of descriptors
   * is tried again with the next connection */
  if (relay->poller == NULL)
    relay->poller = rndz_poller_new (relay->context, &error);
  if (relay->poller == NULL)
    {
      g_debug ("Relay: refusing a TCP connection: %s", error->message);
      g_socket_close (socket, NULL);
      return NULL;
    }

  g_socket_set_blocking (socket, FALSE);
  rndz_socket_set_nodelay (socket);
  conn = g_new0 (RelayConn, 1);
  conn->relay = relay;
  conn->socket = g_object_ref (socket);
  conn->fd = g_socket_get_fd (socket);
  /* Nothing to watch yet: that cannot fail */
  conn->watch = rndz_poller_add (relay->poller, conn->fd, 0, relay_conn_poll_cb, conn, NULL);
  conn->accepted = g_get_monotonic_time ();
  conn->link.data = conn;
  return conn;
}

static gboolean
tcp_accept_cb (GSocket      *socket,
               GIOCondition  condition,
               gpointer      user_data)
{
  RndzRelay *relay = user_data;

  for (guint i = 0; i < LISTEN_BATCH; i++)
    {
      g_autoptr(GSocket) client = NULL;
      RelayConn *conn;

      client = g_socket_accept (socket, NULL, NULL);
      if (client == NULL)
        break;

      /* Connections that do not say hello cannot hold the port */
      if (relay->hellos.length >= MAX (MIN_HELLO_CONNECTIONS, 2 * relay->max_sessions))
        relay_conn_close (g_queue_peek_head (&relay->hellos));

      conn = relay_conn_new (relay, client);
      if (conn == NULL)
        {
          relay->stats->relay_dropped++;
          continue;
        }
      g_queue_push_tail_link (&relay->hellos, &conn->link);
      conn->in_hellos = TRUE;
      relay_conn_update (conn);
      relay_schedule (relay, conn->accepted + relay->join_timeout_ms * (gint64) 1000);
    }

  return G_SOURCE_CONTINUE;
}

/* Timer: expiry and the end of pauses. Sessions are few (bounded by
 * max-sessions): a scan of them all is cheaper than keeping them in
 * order by deadline. */

static gint64
session_tick (RndzRelaySession *session,
              gint64            now)
{
  RndzRelay *relay = session->relay;
  gint64 deadline, next;

  if (session->ready)
    deadline = session->last_activity + relay->idle_timeout_ms * (gint64) 1000;
  else
    deadline = session->created + relay->join_timeout_ms * (gint64) 1000;

  if (deadline <= now)
    {
      session_fail (session, session->ready ? "session idle" : "session not joined in time");
      return G_MAXINT64;
    }

  next = deadline;
  if (session->transport == RNDZ_TRANSPORT_TCP && session->ready)
    for (guint i = 0; i < 2; i++)
      {
        RelayConn *conn = session->sides[i].conn;

        if (conn == NULL || !conn->paused)
          continue;
        if (conn->resume_at <= now)
          {
            conn->paused = FALSE;
            relay_conn_update (conn);
          }
        else
          next = MIN (next, conn->resume_at);
      }

  return next;
}

static gboolean
relay_expire (gpointer user_data)
{
  RndzRelay *relay = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 next = G_MAXINT64;
  GList *l, *l_next;
  RelayConn *conn;

  for (l = relay->sessions.head; l != NULL; l = l_next)
    {
      gint64 deadline;

      l_next = l->next;
      /* Not inside MIN (), which evaluates it twice */
      deadline = session_tick (l->data, now);
      next = MIN (next, deadline);
    }

  while ((conn = g_queue_peek_head (&relay->hellos)) != NULL)
    {
      gint64 deadline = conn->accepted + relay->join_timeout_ms * (gint64) 1000;

      if (deadline > now)
        {
          next = MIN (next, deadline);
          break;
        }
      g_debug ("Relay: closing a TCP connection that did not say hello in time");
      relay_conn_close (conn);
    }

  if (next != G_MAXINT64)
    relay_schedule (relay, next);
  return G_SOURCE_CONTINUE;
}

/* The relay */


/*
 * rndz_relay_new:
 * @udp_socket: a bound UDP socket
 * @tcp_socket: a listening TCP socket on the same port
 * @stats: where to count, the server's statistics
 *
 * Starts relaying on the two sockets, which the relay closes when it is
 * freed.
 */
RndzRelay *
rndz_relay_new (GMainContext    *context,
                GSocket         *udp_socket,
                GSocket         *tcp_socket,
                RndzServerStats *stats)
{
  RndzRelay *relay = g_new0 (RndzRelay, 1);

  relay->context = g_main_context_ref (context);
  relay->stats = stats;
  relay->udp_socket = g_object_ref (udp_socket);
  relay->tcp_socket = g_object_ref (tcp_socket);
  relay->family = g_socket_get_family (udp_socket);
  relay->by_token = g_hash_table_new (g_str_hash, g_str_equal);
  relay->by_request = g_hash_table_new_full (request_key_hash, request_key_equal, g_free, NULL);
  relay->by_endpoint = g_hash_table_new ((GHashFunc) rndz_addr_hash, (GEqualFunc) rndz_addr_equal);
  relay->dead = g_ptr_array_new_with_free_func ((GDestroyNotify) relay_conn_free);
  relay->max_sessions = 1;
  relay->join_timeout_ms = RNDZ_RELAY_JOIN_TIMEOUT_MS;

  relay->udp_source = rndz_socket_source_add (udp_socket, relay->context, relay_udp_read_cb, relay,
                                              "[rndz] relay UDP");
  relay->tcp_source = rndz_socket_source_add (tcp_socket, relay->context, tcp_accept_cb, relay,
                                              "[rndz] relay TCP");
  relay->timer = rndz_deadline_source_new (context, "[rndz] relay timer", relay_expire, relay);

  return relay;
}

void
rndz_relay_free (RndzRelay *relay)
{
  RelayConn *conn;

  rndz_source_clear (&relay->udp_source);
  rndz_source_clear (&relay->tcp_source);
  rndz_source_clear (&relay->timer);

  while (relay->sessions.head != NULL)
    session_free (relay->sessions.head->data);
  while ((conn = g_queue_peek_head (&relay->hellos)) != NULL)
    relay_conn_close (conn);

  g_clear_pointer (&relay->poller, rndz_poller_free);
  g_ptr_array_unref (relay->dead);

  g_socket_close (relay->udp_socket, NULL);
  g_socket_close (relay->tcp_socket, NULL);
  g_object_unref (relay->udp_socket);
  g_object_unref (relay->tcp_socket);
  g_hash_table_unref (relay->by_token);
  g_hash_table_unref (relay->by_request);
  g_hash_table_unref (relay->by_endpoint);
  g_main_context_unref (relay->context);
  g_free (relay);
}

/*
 * rndz_relay_configure:
 * @rate: bytes per second per session and direction, 0 for no limit
 * @idle_timeout_ms: how long a joined session may go without traffic
 *
 * Applies the limits at once, to the sessions already open as well; a
 * lower @max_sessions closes none, it only refuses new ones.
 */
void
rndz_relay_configure (RndzRelay *relay,
                      guint      max_sessions,
                      guint      rate,
                      guint      idle_timeout_ms)
{
  relay->max_sessions = max_sessions;
  relay->rate = rate;
  relay->idle_timeout_ms = idle_timeout_ms;

  /* Deadlines and pauses depend on these: find the next one anew */
  relay_schedule (relay, 0);
}

/* For tests: the join timeout, RNDZ_RELAY_JOIN_TIMEOUT_MS otherwise */
void
rndz_relay_set_join_timeout (RndzRelay *relay,
                             guint      ms)
{
  relay->join_timeout_ms = ms;
  relay_schedule (relay, 0);
}

guint16
rndz_relay_get_port (RndzRelay *relay)
{
  g_autoptr(GSocketAddress) address = g_socket_get_local_address (relay->udp_socket, NULL);

  if (address == NULL)
    return 0;
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}

guint
rndz_relay_get_session_count (RndzRelay *relay)
{
  return relay->sessions.length;
}
