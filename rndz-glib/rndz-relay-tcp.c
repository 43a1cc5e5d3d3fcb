/* rndz-relay-tcp.c: the relay over TCP
 *
 * SPDX-License-Identifier: MIT
 *
 * The relay reads exactly one hello frame from an accepted connection
 * (never a byte more: what follows belongs to the peers), sends nothing
 * while the other side is missing, then a `ready` frame to each, and
 * splices the two connections. A side over the session's rate is not
 * read until its bucket has refilled. Each side has one buffer of fixed
 * size, allocated when the session becomes ready; all connections share
 * one RndzPoller, created with the first of them.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "rndz-relay-session-private.h"
#include "rndz-acceptor-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"

/* Connections that have not said hello yet, at most; the oldest goes */
#define MIN_HELLO_CONNECTIONS 64
#define LISTEN_BATCH 64
#define SPLICE_BUFFER RNDZ_RELAY_SPLICE_BUFFER

/* A TCP connection to the relay port: first waiting for its hello, then
 * a side of a session. */
struct _RndzRelayConn
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
};

static void
relay_conn_free (RndzRelayConn *conn)
{
  g_object_unref (conn->socket);
  g_free (conn->out);
  g_free (conn);
}

/* Closes @conn; a session it belongs to is closed by the caller */
static void
relay_conn_close (RndzRelayConn *conn)
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
relay_conn_watch (RndzRelayConn *conn,
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

static RndzRelayConn *
conn_other (RndzRelayConn *conn)
{
  return conn->session->sides[1 - conn->idx].conn;
}

/* What the connection waits for, from where it is */
static void
relay_conn_update (RndzRelayConn *conn)
{
  RndzRelayConn *other;
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
      if (!conn->eof && !conn->session->sides[conn->idx].paused &&
          other->out_start + other->out_len < SPLICE_BUFFER)
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
relay_conn_queue_ready (RndzRelayConn *conn)
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

/* The address @conn comes from. A handshake proved it, but a peer joins
 * from the host the server knows all the same, as over UDP: one rule. */
static gboolean
conn_peer (RndzRelayConn *conn,
           RndzAddr      *addr)
{
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof ss;

  return getpeername (conn->fd, (struct sockaddr *) &ss, &sslen) == 0 &&
         rndz_addr_from_sockaddr (addr, (struct sockaddr *) &ss, sslen);
}

/* Binds a connection that said hello to its side */
static void
tcp_join (RndzRelayConn         *conn,
          const RndzMessage *msg)
{
  RndzRelay *relay = conn->relay;
  RndzRelaySession *session;
  RndzRelaySide *side;
  RndzAddr from;
  int idx;

  session = NULL;
  if (conn_peer (conn, &from))
    session = rndz_relay_hello_session (relay, msg, RNDZ_TRANSPORT_TCP, &from, &idx);
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

  rndz_relay_session_start (session);
  for (guint i = 0; i < 2; i++)
    relay_conn_queue_ready (session->sides[i].conn);
  for (guint i = 0; i < 2; i++)
    relay_conn_update (session->sides[i].conn);
}

/* Reads the hello frame, exactly: what follows it is the peers' */
static void
tcp_read_hello (RndzRelayConn *conn)
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

/* Splicing */


/* Writes what is queued for @conn. Returns FALSE if the session failed. */
static gboolean
relay_conn_flush (RndzRelayConn *conn)
{
  while (conn->out_len > 0)
    {
      gssize n = send (conn->fd, conn->out + conn->out_start, conn->out_len,
                       MSG_DONTWAIT | MSG_NOSIGNAL);

      if (n < 0)
        {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return TRUE;
          rndz_relay_session_fail (conn->session, g_strerror (errno));
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
relay_conn_pass_eof (RndzRelayConn *from)
{
  RndzRelayConn *to = conn_other (from);

  if (!from->eof || to->out_len > 0 || to->shut)
    return TRUE;

  shutdown (to->fd, SHUT_WR);
  to->shut = TRUE;
  if (to->eof && from->shut)
    {
      rndz_relay_session_fail (from->session, "both directions are done");
      return FALSE;
    }
  return TRUE;
}

/* Room at the end of @conn's queue; what is queued moves to the front
 * once it reaches the end of the buffer */
static gsize
relay_conn_room (RndzRelayConn *conn)
{
  if (conn->out_len == 0)
    conn->out_start = 0;
  else if (conn->out_start > 0 && conn->out_start + conn->out_len == SPLICE_BUFFER)
    {
      memmove (conn->out, conn->out + conn->out_start, conn->out_len);
      conn->out_start = 0;
    }
  return SPLICE_BUFFER - (conn->out_start + conn->out_len);
}

/* Over the rate: @side is not read until a useful amount is allowed
 * again */
static void
side_pause (RndzRelay     *relay,
            RndzRelaySide *side,
            double         allowed,
            gint64         now)
{
  double chunk = MIN (rndz_relay_burst (relay), 16384.0);

  side->paused = TRUE;
  side->resume_at = now + (gint64) ((chunk - allowed) * G_USEC_PER_SEC / relay->rate) + 1;
  rndz_relay_schedule (relay, side->resume_at);
}

/* Reads at most @space bytes from @conn to the end of @other's queue.
 * Returns the bytes read; 0 if there are none for now, or at the end of
 * the stream (then conn->eof is set); -1 if that failed the session. */
static gssize
relay_conn_recv (RndzRelayConn *conn,
                 RndzRelayConn *other,
                 gsize          space)
{
  gssize n = recv (conn->fd, other->out + other->out_start + other->out_len, space,
                   MSG_DONTWAIT);

  if (n < 0)
    {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
      rndz_relay_session_fail (conn->session, g_strerror (errno));
      return -1;
    }

  if (n == 0)
    conn->eof = TRUE;
  other->out_len += n;
  return n;
}

/* Reads from @conn into the other side's queue, within the rate */
static void
relay_conn_splice_in (RndzRelayConn *conn)
{
  RndzRelaySession *session = conn->session;
  RndzRelay *relay = conn->relay;
  RndzRelaySide *side = &session->sides[conn->idx];
  RndzRelayConn *other = conn_other (conn);
  gint64 now = g_get_monotonic_time ();

  while (!conn->eof && !side->paused)
    {
      gsize space = relay_conn_room (other);
      double allowed;
      gssize n;

      if (space == 0)
        break;

      allowed = rndz_relay_bucket_refill (relay, &side->bucket, now);
      if (allowed < 1)
        {
          side_pause (relay, side, allowed, now);
          break;
        }

      n = relay_conn_recv (conn, other, MIN (space, (gsize) MIN (allowed, (double) SPLICE_BUFFER)));
      if (n < 0)
        return;
      if (n == 0)
        break;

      rndz_relay_bucket_take (relay, &side->bucket, n);
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
relay_conn_splice_out (RndzRelayConn *conn)
{
  RndzRelayConn *other = conn_other (conn);

  if (!relay_conn_flush (conn) || !relay_conn_pass_eof (other))
    return;
  relay_conn_update (conn);
  relay_conn_update (other);
}

static void
relay_conn_event (RndzRelayConn *conn,
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
      RndzRelaySide *side = &conn->session->sides[conn->idx];

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
  RndzRelayConn *conn = user_data;
  RndzRelay *relay = conn->relay;

  relay->dispatching = TRUE;
  relay_conn_event (conn, events);
  relay->dispatching = FALSE;
  g_ptr_array_set_size (relay->dead, 0);
}

/* Watches a new connection, or closes it if it cannot be watched */
static RndzRelayConn *
relay_conn_new (RndzRelay *relay,
                GSocket   *socket)
{
  g_autoptr(GError) error = NULL;
  RndzRelayConn *conn;

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
  conn = g_new0 (RndzRelayConn, 1);
  conn->relay = relay;
  conn->socket = g_object_ref (socket);
  conn->fd = g_socket_get_fd (socket);
  /* Nothing to watch yet: that cannot fail */
  conn->watch = rndz_poller_add (relay->poller, conn->fd, 0, relay_conn_poll_cb, conn, NULL);
  conn->accepted = g_get_monotonic_time ();
  conn->link.data = conn;
  return conn;
}

static void
tcp_accepted_cb (GSocket  *client,
                 gpointer  user_data)
{
  RndzRelay *relay = user_data;
  RndzRelayConn *conn;

  /* Connections that do not say hello cannot hold the port */
  if (relay->hellos.length >= MAX (MIN_HELLO_CONNECTIONS, 2 * relay->max_sessions))
    relay_conn_close (g_queue_peek_head (&relay->hellos));

  conn = relay_conn_new (relay, client);
  if (conn == NULL)
    {
      relay->stats->relay_dropped++;
      return;
    }
  g_queue_push_tail_link (&relay->hellos, &conn->link);
  conn->in_hellos = TRUE;
  relay_conn_update (conn);
  rndz_relay_schedule (relay, conn->accepted + relay->join_timeout_ms * (gint64) 1000);
}


/* The hooks of the session core */

/* @conn's session is being closed */
static void
hook_close_conn (RndzRelayConn *conn)
{
  conn->session = NULL;
  relay_conn_close (conn);
}

/* Closes the connections that did not say hello in time */
static gint64
hook_expire (RndzRelay *relay,
             gint64     now)
{
  RndzRelayConn *conn;

  while ((conn = g_queue_peek_head (&relay->hellos)) != NULL)
    {
      gint64 deadline = conn->accepted + relay->join_timeout_ms * (gint64) 1000;

      if (deadline > now)
        return deadline;
      g_debug ("Relay: closing a TCP connection that did not say hello in time");
      relay_conn_close (conn);
    }

  return G_MAXINT64;
}

static const RndzRelayTcpHooks tcp_hooks = {
  hook_close_conn,
  relay_conn_update,
  hook_expire,
};

void
rndz_relay_tcp_start (RndzRelay *relay)
{
  relay->tcp_hooks = &tcp_hooks;
  relay->dead = g_ptr_array_new_with_free_func ((GDestroyNotify) relay_conn_free);
  relay->acceptor = rndz_acceptor_new (relay->tcp_socket, relay->context, LISTEN_BATCH,
                                       tcp_accepted_cb, relay, "[rndz] relay TCP");
}

/* After the sessions are closed: closes the connections that are left */
void
rndz_relay_tcp_stop (RndzRelay *relay)
{
  RndzRelayConn *conn;

  g_clear_pointer (&relay->acceptor, rndz_acceptor_free);
  while ((conn = g_queue_peek_head (&relay->hellos)) != NULL)
    relay_conn_close (conn);
  g_clear_pointer (&relay->poller, rndz_poller_free);
  g_clear_pointer (&relay->dead, g_ptr_array_unref);
}
