/* rndz-server-io.c: the sockets and connections of RndzServer
 *
 * SPDX-License-Identifier: MIT
 *
 * Reads datagrams and frames, accepts and closes connections, sends and
 * keeps the one timer. Everything read goes up to the owner (rndz-server.c)
 * through RndzServerIoCallbacks, between an enter and a leave: the owner
 * may stop or free the server in leave, so nothing here touches its own
 * state after calling leave.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-server-io-private.h"
#include "rndz-acceptor-private.h"
#include "rndz-channel-private.h"
#include "rndz-ratelimit-private.h"
#include "rndz-socket-private.h"
#include "rndz-udp-batch-private.h"
#include "rndz-i18n-private.h"

/* Unregistered connections one address may hold: a single source cannot
 * push everyone else out */
#define MAX_UNREGISTERED_PER_ADDRESS 32
/* Refusals (rate-limited, auth-required) per second and address: a flood
 * of refused requests gets one answer per second */
#define REFUSAL_RATE 1
#define LISTEN_BACKLOG 128
/* Datagrams (and accepts) per wake-up, so TCP connections get their turn */
#define UDP_BATCH 64

struct _RndzServerConn
{
  RndzServerIo *io;
  RndzChannel *channel;
  gpointer registration;  /* the peer registered on it, if any */
  gint64 opened;
  GList link;             /* in RndzServerIo.unregistered while registration == NULL */
};

struct _RndzServerIo
{
  GMainContext *context;
  const RndzServerConfig *config;
  RndzServerStats *stats;
  RndzServerIoCallbacks callbacks;
  gpointer owner;

  GSocket *udp_socket;
  GSocket *tcp_socket;
  GSocketFamily family;
  GSource *udp_source;
  RndzRecvBatch *rx;           /* datagrams read in one call */
  RndzSendBatch *tx;           /* replies sent in one call */
  gboolean batching;           /* replies wait in tx until the batch is done */
  RndzAcceptor *acceptor;     /* the TCP socket's */
  GSource *timer;
  RndzPoller *poller;          /* all TCP connections */

  GHashTable *conns;           /* RndzServerConn set */
  guint descriptor_cap;        /* connections the descriptor limit leaves room for */
  GQueue unregistered;         /* oldest first */
  GHashTable *unregistered_by_addr; /* RndzAddr without port → count */

  RndzRateLimit *refusal_limit;
  RndzServerSendFunc send_func;
  gpointer send_data;
};

RndzServerIo *
rndz_server_io_new (GMainContext                *context,
                    const RndzServerConfig      *config,
                    RndzServerStats             *stats,
                    const RndzServerIoCallbacks *callbacks,
                    gpointer                     owner)
{
  RndzServerIo *io = g_new0 (RndzServerIo, 1);

  io->context = g_main_context_ref (context);
  io->config = config;
  io->stats = stats;
  io->callbacks = *callbacks;
  io->owner = owner;
  io->conns = g_hash_table_new (NULL, NULL);
  io->descriptor_cap = G_MAXUINT;
  io->tx = rndz_send_batch_new (UDP_BATCH);
  io->unregistered_by_addr = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                                    (GEqualFunc) rndz_addr_equal,
                                                    g_free, NULL);
  io->refusal_limit = rndz_rate_limit_new (RNDZ_SERVER_RATE_LIMIT_BUCKETS,
                                           REFUSAL_RATE, REFUSAL_RATE);
  return io;
}

/* Call rndz_server_io_stop() first */
void
rndz_server_io_free (RndzServerIo *io)
{
  g_hash_table_unref (io->conns);
  g_hash_table_unref (io->unregistered_by_addr);
  rndz_rate_limit_free (io->refusal_limit);
  g_clear_pointer (&io->rx, rndz_recv_batch_free);
  rndz_send_batch_free (io->tx);
  g_main_context_unref (io->context);
  g_free (io);
}

/* Sending */

void
rndz_server_io_set_sender (RndzServerIo       *io,
                           RndzServerSendFunc  func,
                           gpointer            user_data)
{
  io->send_func = func;
  io->send_data = user_data;
}

static void
io_send_datagram (RndzServerIo   *io,
                  const RndzAddr *to,
                  const char     *buf,
                  gsize           len)
{
  struct sockaddr_storage ss;
  gsize sslen;
  int fd;

  if (io->send_func != NULL)
    {
      io->send_func (to, buf, len, io->send_data);
      return;
    }

  sslen = rndz_addr_to_sockaddr (to, io->family, &ss);
  if (sslen == 0 || io->udp_socket == NULL)
    return;
  fd = g_socket_get_fd (io->udp_socket);

  /* Replies to a batch of datagrams leave together when it is done */
  if (io->batching)
    {
      if (rndz_send_batch_queue (io->tx, fd, (struct sockaddr *) &ss, sslen, buf, len))
        return;
      rndz_send_batch_flush (io->tx, fd);
    }

  /* Best effort, like UDP itself: a full socket buffer drops the reply
   * and the peer asks again. */
  if (sendto (fd, buf, len, MSG_DONTWAIT, (struct sockaddr *) &ss, sslen) < 0)
    g_debug ("UDP send failed: %s", g_strerror (errno));
}

/* @limit: the size of the request this answers; a larger reply is not
 * sent, so that spoofed requests cannot turn the server into an
 * amplifier. Clients pad their requests (see doc/protocol.md). */
void
rndz_server_io_send_udp (RndzServerIo      *io,
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
      io->stats->amplification++;
      g_debug ("Not sending a %s of %" G_GSIZE_FORMAT " bytes for a request of %" G_GSIZE_FORMAT,
               rndz_message_type_to_string (msg->type), len, limit);
      return;
    }

  io_send_datagram (io, to, buf, len);
}

/* A connection that cannot take a message closes (its peer's
 * registration goes with it, through conn_closed) */
void
rndz_server_io_send_tcp (RndzServerIo      *io,
                         RndzServerConn    *conn,
                         const RndzMessage *msg)
{
  g_autoptr(GError) error = NULL;

  if (!rndz_channel_send (conn->channel, msg, &error))
    {
      g_debug ("Closing connection: %s", error->message);
      rndz_server_io_close (io, conn);
    }
}

/* Whether @reply may answer @src: over UDP, not if it is larger */
gboolean
rndz_server_io_reply_fits (RndzServerIo           *io,
                           const RndzServerSource *src,
                           const RndzMessage      *reply)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];

  if (src->transport != RNDZ_TRANSPORT_UDP ||
      rndz_message_encode (reply, buf, sizeof buf) <= src->len)
    return TRUE;

  io->stats->amplification++;
  return FALSE;
}

/* Sends @msg back to where @src came from */
void
rndz_server_io_reply (RndzServerIo           *io,
                      const RndzServerSource *src,
                      const RndzMessage      *msg)
{
  if (src->transport == RNDZ_TRANSPORT_UDP)
    rndz_server_io_send_udp (io, &src->from, msg, src->len);
  else if (src->conn != NULL)
    rndz_server_io_send_tcp (io, src->conn, msg);
}

/* Sends a datagram encoded already (and checked against src->len) */
void
rndz_server_io_reply_encoded (RndzServerIo           *io,
                              const RndzServerSource *src,
                              const char             *buf,
                              gsize                   len)
{
  io_send_datagram (io, &src->from, buf, len);
}

void
rndz_server_io_reply_error (RndzServerIo           *io,
                            const RndzServerSource *src,
                            guint32                 tid,
                            RndzWireError           code)
{
  RndzMessage reply;

  rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, tid);
  reply.code = code;
  rndz_server_io_reply (io, src, &reply);
}

/* Tells a requester why its request goes nowhere, so that it need not
 * wait out its timeout: at most once per second and address, and never
 * in a datagram larger than the request (over UDP the source may be
 * spoofed). Otherwise the request is dropped unanswered, as before. */
void
rndz_server_io_refuse (RndzServerIo           *io,
                       const RndzServerSource *src,
                       guint32                 tid,
                       RndzWireError           code,
                       guint                   retry_ms)
{
  RndzMessage reply;

  rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, tid);
  reply.code = code;
  if (retry_ms > 0)
    reply.retry_ms = CLAMP (retry_ms, RNDZ_WIRE_RETRY_MIN_MS, RNDZ_WIRE_RETRY_MAX_MS);

  if (!rndz_server_io_reply_fits (io, src, &reply))
    return;
  /* A datagram's source may be forged: an address hears at most one
   * refusal a window, whoever sends in its name. A TCP peer showed its
   * address in the handshake, and its connection gets an answer to each
   * request, no larger than the request: a refusal a connector does not
   * hear would leave it waiting for its whole timeout. */
  if (src->transport == RNDZ_TRANSPORT_UDP &&
      !rndz_rate_limit_take (io->refusal_limit, &src->from, g_get_monotonic_time ()))
    return;

  rndz_server_io_reply (io, src, &reply);
}

/* UDP */

/*
 * rndz_server_io_receive_datagram:
 *
 * Handles one datagram as if it had arrived from @from. The socket reads
 * come here; so do fuzzers, without sockets.
 */
void
rndz_server_io_receive_datagram (RndzServerIo   *io,
                                 const RndzAddr *from,
                                 const char     *data,
                                 gsize           len)
{
  g_autoptr(GError) error = NULL;
  RndzServerSource src = { RNDZ_TRANSPORT_UDP, *from, NULL, len };
  RndzMessage msg;

  if (from->port == 0 ||
      !rndz_message_decode (&msg, data, len, io->config->max_message_size, &error))
    {
      char addr[RNDZ_ADDR_STRLEN];

      io->stats->malformed++;
      g_debug ("Dropping datagram from %s: %s", rndz_addr_format (from, addr),
               error != NULL ? error->message : "no source port");
      return;
    }

  io->callbacks.enter (io->owner);
  io->callbacks.message (io->owner, &src, &msg);
  io->callbacks.leave (io->owner);
}

/* Reads a batch of datagrams and handles them; their replies leave
 * together at the end */
static void
udp_read_batch (RndzServerIo *io,
                GSocket      *socket)
{
  /* One byte more than allowed, to tell an oversize datagram */
  gsize max_len = io->config->max_message_size + 1;
  int fd = g_socket_get_fd (socket);
  int n = -1;

  if (io->rx == NULL || rndz_recv_batch_max_len (io->rx) != max_len)
    {
      g_clear_pointer (&io->rx, rndz_recv_batch_free);
      io->rx = rndz_recv_batch_new (UDP_BATCH, max_len);
    }

  /* ICMP errors for earlier sends surface here, one per call; the
   * datagrams behind them wait for the next call */
  for (guint tries = 0; n < 0 && tries < 8; tries++)
    {
      n = rndz_recv_batch_read (io->rx, fd);
      if (n < 0)
        g_debug ("UDP receive failed: %s", g_strerror (errno));
    }

  io->batching = TRUE;
  for (int i = 0; i < n && io->udp_socket == socket; i++)
    {
      const struct sockaddr *sa;
      socklen_t salen;
      const char *data;
      gsize len;
      RndzAddr from;

      data = rndz_recv_batch_get (io->rx, i, &len, &sa, &salen);
      if (rndz_addr_from_sockaddr (&from, sa, salen))
        rndz_server_io_receive_datagram (io, &from, data, len);
    }
  io->batching = FALSE;

  /* A handler may have stopped the server (which forgets the queue) */
  if (io->udp_socket == socket)
    rndz_send_batch_flush (io->tx, fd);
}

static gboolean
udp_read_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  RndzServerIo *io = user_data;
  gpointer owner = io->owner;

  /* Held for the batch: a handler may stop the server, or even make it
   * listen anew on another socket, or drop the last reference */
  io->callbacks.enter (owner);
  udp_read_batch (io, socket);
  io->callbacks.leave (owner);

  return G_SOURCE_CONTINUE;
}

/* Unregistered connections
 *
 * A connection is in the unregistered queue exactly when it carries no
 * registration; rndz_server_io_set_registration() is the one place that
 * moves it in or out.
 */

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
unregistered_count (RndzServerIo   *io,
                    const RndzAddr *addr)
{
  RndzAddr host = host_of (addr);

  return GPOINTER_TO_UINT (g_hash_table_lookup (io->unregistered_by_addr, &host));
}

static void
unregistered_push (RndzServerIo   *io,
                   RndzServerConn *conn)
{
  RndzAddr host = host_of (rndz_channel_get_remote (conn->channel));
  guint count = unregistered_count (io, &host);

  conn->opened = g_get_monotonic_time ();
  g_queue_push_tail_link (&io->unregistered, &conn->link);
  g_hash_table_insert (io->unregistered_by_addr, g_memdup2 (&host, sizeof host),
                       GUINT_TO_POINTER (count + 1));
  rndz_server_io_schedule (io, conn->opened + io->config->register_timeout_ms * (gint64) 1000);
}

static void
unregistered_remove (RndzServerIo   *io,
                     RndzServerConn *conn)
{
  RndzAddr host = host_of (rndz_channel_get_remote (conn->channel));
  guint count = unregistered_count (io, &host);

  g_queue_unlink (&io->unregistered, &conn->link);
  if (count <= 1)
    g_hash_table_remove (io->unregistered_by_addr, &host);
  else
    g_hash_table_insert (io->unregistered_by_addr, g_memdup2 (&host, sizeof host),
                         GUINT_TO_POINTER (count - 1));
}

gpointer
rndz_server_conn_get_registration (RndzServerConn *conn)
{
  return conn->registration;
}

void
rndz_server_io_set_registration (RndzServerIo   *io,
                                 RndzServerConn *conn,
                                 gpointer        registration)
{
  if (conn->registration == registration)
    return;

  if (conn->registration == NULL)
    unregistered_remove (io, conn);
  conn->registration = registration;
  if (registration == NULL)
    unregistered_push (io, conn);
}

/* Closes the connections that did not register in time */
void
rndz_server_io_expire_unregistered (RndzServerIo *io,
                                    gint64        now)
{
  GList *head;

  while ((head = io->unregistered.head) != NULL)
    {
      RndzServerConn *conn = head->data;
      gint64 deadline = conn->opened + io->config->register_timeout_ms * (gint64) 1000;

      if (deadline > now)
        {
          rndz_server_io_schedule (io, deadline);
          break;
        }
      g_debug ("Closing TCP connection that did not register in time");
      rndz_server_io_close (io, conn);
    }
}

/* TCP */

/* Whether @conn is still open, and still the connection from @remote (a
 * new connection may have got the memory of a closed one) */
gboolean
rndz_server_io_has_conn (RndzServerIo   *io,
                         RndzServerConn *conn,
                         const RndzAddr *remote)
{
  return g_hash_table_contains (io->conns, conn) &&
         rndz_addr_equal (rndz_channel_get_remote (conn->channel), remote);
}

void
rndz_server_io_close (RndzServerIo   *io,
                      RndzServerConn *conn)
{
  if (!g_hash_table_steal (io->conns, conn))
    return;

  /* The owner drops the registration (which makes the connection
   * unregistered) and forgets the connection */
  io->callbacks.conn_closed (io->owner, conn);
  unregistered_remove (io, conn);

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
  RndzServerConn *conn = user_data;
  RndzServerIo *io = conn->io;
  gpointer owner = io->owner;
  RndzServerSource src = { RNDZ_TRANSPORT_TCP, *rndz_channel_get_remote (channel), conn, G_MAXSIZE };

  /* The connection may close under us (conn is freed then); the channel
   * outlives it until we return */
  rndz_channel_ref (channel);
  io->callbacks.enter (owner);
  if (msg == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
        io->stats->malformed++;
      g_debug ("Closing TCP connection: %s", error->message);
      rndz_server_io_close (io, conn);
    }
  else
    io->callbacks.message (owner, &src, msg);
  io->callbacks.leave (owner);
  rndz_channel_unref (channel);
}

/* Makes room for a new connection: a source may hold only so many
 * connections that have not registered, and at the global limit the
 * oldest of those goes. Registered peers are never pushed out. */
static gboolean
io_make_room (RndzServerIo   *io,
              const RndzAddr *remote)
{
  RndzServerConn *oldest;

  if (unregistered_count (io, remote) >= MAX_UNREGISTERED_PER_ADDRESS)
    return FALSE;

  if (g_hash_table_size (io->conns) < MIN (io->config->max_connections, io->descriptor_cap))
    return TRUE;

  oldest = g_queue_peek_head (&io->unregistered);
  if (oldest == NULL)
    return FALSE;

  g_debug ("Closing the oldest silent connection to make room");
  io->stats->evicted++;
  rndz_server_io_close (io, oldest);
  return TRUE;
}

/* The poller all connections share, made with the first one; NULL if
 * it cannot be made (out of descriptors: the next connection tries
 * again) */
static RndzPoller *
io_get_poller (RndzServerIo  *io,
               GError       **error)
{
  if (io->poller == NULL)
    io->poller = rndz_poller_new (io->context, error);
  return io->poller;
}

static RndzChannel *
io_open_channel (RndzServerIo    *io,
                 GSocket         *socket,
                 const RndzAddr  *remote,
                 GError         **error)
{
  RndzPoller *poller = io_get_poller (io, error);
  RndzChannel *channel;

  if (poller == NULL)
    return NULL;

  channel = rndz_channel_new_polled (socket, poller, io->config->max_message_size, NULL, NULL,
                                     error);
  if (channel == NULL)
    return NULL;
  if (remote != NULL)
    rndz_channel_set_remote (channel, remote);

  if (!io_make_room (io, rndz_channel_get_remote (channel)))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES,
                           "too many open");
      rndz_channel_close (channel);
      rndz_channel_unref (channel);
      return NULL;
    }

  return channel;
}

/*
 * rndz_server_io_add_connection:
 * @remote: the peer's address, or %NULL to read it from @socket
 *
 * Serves a connected TCP socket. Accepted sockets come here; fuzzers
 * and tests may hand in one end of a socket pair.
 */
void
rndz_server_io_add_connection (RndzServerIo   *io,
                               GSocket        *socket,
                               const RndzAddr *remote)
{
  g_autoptr(GError) error = NULL;
  RndzServerConn *conn;
  RndzChannel *channel;

  io->callbacks.enter (io->owner);
  /* A peer that stays silent this long is forgotten anyway */
  rndz_socket_limit_tcp_backoff (socket, io->config->peer_timeout_ms);
  channel = io_open_channel (io, socket, remote, &error);
  if (channel == NULL)
    {
      g_debug ("Refusing TCP connection: %s", error->message);
      io->stats->refused_connections++;
      g_socket_close (socket, NULL);
    }
  else
    {
      conn = g_new0 (RndzServerConn, 1);
      conn->io = io;
      conn->link.data = conn;
      conn->channel = channel;
      rndz_channel_set_callback (channel, conn_message_cb, conn);
      g_hash_table_add (io->conns, conn);
      unregistered_push (io, conn);
    }
  io->callbacks.leave (io->owner);
}

static void
tcp_accepted_cb (GSocket  *client,
                 gpointer  user_data)
{
  RndzServerIo *io = user_data;
  gpointer owner = io->owner;

  io->callbacks.enter (owner);
  rndz_server_io_add_connection (io, client, NULL);
  io->callbacks.leave (owner);
}

/* Timer
 *
 * The server has one timer, whatever the number of peers: expiry,
 * forwarded requests and unregistered connections are each kept in a
 * queue ordered by deadline (they all share one timeout), and the timer
 * is armed for the earliest head. A peer that pings moves to the tail of
 * its queue without touching the timer; when the timer finds nothing due
 * it simply re-arms.
 */

void
rndz_server_io_schedule (RndzServerIo *io,
                         gint64        deadline)
{
  rndz_deadline_source_arm (io->timer, deadline);
}

/* Deadlines are computed from the timeouts when the timer fires: after a
 * timeout changed, let it fire at once to find the new earliest one. */
void
rndz_server_io_reschedule (RndzServerIo *io)
{
  rndz_deadline_source_arm (io->timer, 0);
}

static gboolean
timer_cb (gpointer user_data)
{
  RndzServerIo *io = user_data;
  gpointer owner = io->owner;

  io->callbacks.enter (owner);
  io->callbacks.expire (owner);
  io->callbacks.leave (owner);
  return G_SOURCE_CONTINUE;
}

/* Listening */

/* Binds @socket. With @reuse_port, SO_REUSEPORT: several processes of a
 * cluster on one port, the kernel spreading datagrams and connections
 * among them by their addresses. g_socket_bind() sets SO_REUSEPORT
 * itself (off for TCP), so that case binds the descriptor directly. */
static gboolean
bind_socket (GSocket         *socket,
             GSocketAddress  *address,
             gboolean         reuse_address,
             gboolean         reuse_port,
             GError         **error)
{
  struct sockaddr_storage ss;
  int saved;

  if (!reuse_port)
    return g_socket_bind (socket, address, reuse_address, error);

  if (!g_socket_address_to_native (address, &ss, sizeof ss, error) ||
      !g_socket_set_option (socket, SOL_SOCKET, SO_REUSEADDR, reuse_address, error) ||
      !g_socket_set_option (socket, SOL_SOCKET, SO_REUSEPORT, 1, error))
    return FALSE;

  if (bind (g_socket_get_fd (socket), (struct sockaddr *) &ss,
            g_socket_address_get_native_size (address)) == 0)
    return TRUE;

  saved = errno;
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
               _("Error binding to address: %s"), g_strerror (saved));
  return FALSE;
}

/* Binds a TCP and a UDP socket to the same port. With port 0 the kernel
 * picks the TCP port; the UDP one may be taken already, so try again a
 * few times. */
gboolean
rndz_server_bind_sockets (GSocketAddress  *address,
                          gboolean         reuse_port,
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
      /* SO_REUSEADDR only for TCP (TIME_WAIT); SO_REUSEPORT only when
       * asked for, else a second server would share the port silently. */
      if (!bind_socket (tcp, address, TRUE, reuse_port, error) || !g_socket_listen (tcp, error))
        return FALSE;

      bound = g_socket_get_local_address (tcp, error);
      if (bound == NULL)
        return FALSE;

      udp = g_socket_new (family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, error);
      if (udp == NULL)
        return FALSE;
      g_socket_set_blocking (udp, FALSE);
      if (bind_socket (udp, bound, FALSE, reuse_port, &local_error))
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

/* Descriptors the server keeps for itself beyond its connections and
 * @reserved: the poller, the acceptor's spare, the host application's */
#define DESCRIPTOR_MARGIN 16

/*
 * rndz_server_io_fit_descriptors:
 * @reserved: descriptors that others need (the relay's)
 *
 * Sizes the number of connections against the descriptors the process
 * may still open, so that the limit that bites is max-connections, where
 * the oldest silent connection makes room for a new one, and not
 * accept() failing with EMFILE, which refuses registered peers and silent
 * floods alike. Called once the sockets are open.
 */
void
rndz_server_io_fit_descriptors (RndzServerIo *io,
                                guint         reserved)
{
  guint available = rndz_descriptors_free ();

  if (available == G_MAXUINT)
    return;

  if (available > reserved + DESCRIPTOR_MARGIN)
    available -= reserved + DESCRIPTOR_MARGIN;
  else
    available = 0;
  io->descriptor_cap = MAX (available, 1);
  if (io->descriptor_cap < io->config->max_connections)
    g_message ("The limit on open files (ulimit -n) leaves room for %u TCP connections: "
               "serving at most %u instead of max-connections %u",
               io->descriptor_cap, io->descriptor_cap, io->config->max_connections);
}

/* Serves @tcp and @udp (from rndz_server_bind_sockets()), and starts the
 * timer */
void
rndz_server_io_start (RndzServerIo *io,
                      GSocket      *tcp,
                      GSocket      *udp)
{
  io->family = g_socket_get_family (udp);
  io->tcp_socket = g_object_ref (tcp);
  io->udp_socket = g_object_ref (udp);
  io->udp_source = rndz_socket_source_add (io->udp_socket, io->context, udp_read_cb, io,
                                           "[rndz] server UDP");
  io->acceptor = rndz_acceptor_new (io->tcp_socket, io->context, UDP_BATCH, tcp_accepted_cb, io,
                                    "[rndz] server TCP");
  io->timer = rndz_deadline_source_new (io->context, "[rndz] server timer", timer_cb, io);
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

/* Closes the sockets and every connection; the owner hears of each
 * connection through conn_closed */
void
rndz_server_io_stop (RndzServerIo *io)
{
  g_autoptr(GList) conns = NULL;

  clear_source (&io->udp_source);
  rndz_send_batch_clear (io->tx);
  g_clear_pointer (&io->acceptor, rndz_acceptor_free);
  clear_source (&io->timer);

  conns = g_hash_table_get_keys (io->conns);
  for (GList *l = conns; l != NULL; l = l->next)
    rndz_server_io_close (io, l->data);
  g_clear_pointer (&io->poller, rndz_poller_free);

  if (io->udp_socket != NULL)
    g_socket_close (io->udp_socket, NULL);
  if (io->tcp_socket != NULL)
    g_socket_close (io->tcp_socket, NULL);
  g_clear_object (&io->udp_socket);
  g_clear_object (&io->tcp_socket);
  io->descriptor_cap = G_MAXUINT;
}

gboolean
rndz_server_io_is_listening (RndzServerIo *io)
{
  return io->udp_socket != NULL;
}

GSocketAddress *
rndz_server_io_get_local_address (RndzServerIo *io)
{
  if (io->udp_socket == NULL)
    return NULL;

  return g_socket_get_local_address (io->udp_socket, NULL);
}
