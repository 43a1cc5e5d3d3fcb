/* fuzz-server.c: libFuzzer harness for RndzServer, without real sockets
 *
 * SPDX-License-Identifier: MIT
 *
 * The input is a little program run against a fresh server. Eight fake
 * peers (sources) talk to it: over UDP through
 * rndz_server_receive_datagram(), with rndz_server_set_udp_sender()
 * capturing the datagrams it sends back, and over TCP through socket pairs
 * handed to rndz_server_add_connection() with the source's address as the
 * fake remote address; the main context is iterated without blocking to let
 * the server read, and the harness reads the other ends.
 *
 * Format (every byte past the end reads as 0):
 *
 *   byte 0   configuration flags: 1 small max-peers, 2 small request-rate,
 *            4 max-message-size 512, 8 authentication (a secret; with
 *            byte 1 & 0x80 also a key of its own for "alice"), 16 small
 *            max-connections, 32 all timeouts 1 s
 *   byte 1   their parameters (see configure())
 *   then steps, each an operation byte OP and its arguments:
 *     OP & 7       the source (fake peer address) that acts
 *     OP & 8       over TCP (its current connection, opened if need be)
 *     OP >> 4      what it does, see the Op enum
 *
 * RNDZ_FUZZ_TRACE=1 in the environment prints every step and every
 * message the server sends, to see what an input does.
 *
 * After every step the harness checks the server's invariants:
 *
 *  - every UDP datagram the server sends decodes, is at most 512 bytes,
 *    and goes to an address that sent it UDP; a pong or an error answers
 *    the datagram being handled, to its source, with its tid, and is no
 *    larger than it; a redirect is no larger than an isync the requester
 *    sent with that tid; nothing is sent outside the handling of a
 *    datagram but fsyncs;
 *  - every TCP frame the server sends is a valid message of a server's type;
 *  - no host causes more fsyncs than the request rate allows; none
 *    receives more than its request rate, plus one a requester host and
 *    NEWCOMER_INTERVAL_S (the newcomers' budget), nor from one requester
 *    host more than their pair's share (a target: not counting the copies
 *    of a request's fsync, at most MAX_FSYNC_COPIES, which its requester's
 *    budget pays for);
 *  - the peer count never grows past max-peers, nor the number of open
 *    connections past max-connections;
 *  - and, through the sanitizers, no crash, leak or undefined behaviour.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* POLLRDHUP */
#endif

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rndz-auth.h"
#include "rndz-forward-internal.h"
#include "rndz-message-private.h"
#include "rndz-server-private.h"
#include "rndz-types.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define N_SOURCES 8
#define MAX_STEPS 256
#define MAX_CONNS 96                 /* per program: two descriptors each */
#define MAX_CONNS_PER_SOURCE 40      /* more than the server's 32 per host */
#define N_FSYNCS 8

typedef enum
{
  OP_PING,        /* a: id | pad << 3; b: tid | sign << 4 | stale << 5 | for another server << 6 */
  OP_ISYNC,       /* a: id | target << 3 | pad << 6; b: as for ping */
  OP_RSYNC,       /* a: fsync | own source << 3 | wrong id << 4 | sign << 5 */
  OP_BYE,         /* a: id | sign << 3; b: tid */
  OP_OTHER,       /* a: which: a server's message, an unknown type, v2 */
  OP_RAW,         /* a: length, then that many bytes: one message */
  OP_STREAM,      /* TCP: a: length, then that many bytes, unframed;
                   * UDP: an oversize datagram */
  OP_CONNECT,     /* a: how many (a & 7) + 1, or 33 if a >= 0xf0 */
  OP_CLOSE,       /* a & 1: shutdown(SHUT_WR) rather than close */
  OP_SELECT,      /* a: the source's connection to use from now on */
  OP_BURST,       /* a: the source's last message again, 1 + 4 * (a & 63) times */
  OP_PAUSE,       /* stop (or resume) reading the current connection */
  OP_SETPROP,     /* a: which, b: value */
  OP_REPLAY,      /* a: the last message of source a & 7, sent by this one */
  OP_SPLIT,       /* a: the last message in two parts, cut at a */
  OP_IDLE,        /* iterate the main context, drain every connection */
} Op;

static const char * const source_addrs[N_SOURCES] = {
  "192.0.2.1:1000",
  "192.0.2.1:2000",              /* the same host */
  "198.51.100.7:4000",
  "203.0.113.9:51000",
  "[2001:db8::1]:4000",
  "[2001:db8::2]:4001",          /* the same /64 */
  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",  /* the longest pong */
  "10.255.255.254:65535",
};

static const char * const ids[8] = {
  "alice",
  "bob",
  "carol",
  "d",
  /* 64 bytes that all need escaping */
  ("\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\"
   "\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\\"\\"),
  "日本語",
  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
  "a b/c{}[]",
};

static const guint32 tids[16] = {
  0, 1, 2, 3, 7, 42, 255, 256, 65535, 65536, 1000000, 0x7fffffff,
  0x80000000, 0xfffffffe, G_MAXUINT32, 12345,
};

#define SECRET "fuzzing secret"
/* The server's public address, which signed messages name, and another */
#define SERVER_NAME "198.51.100.7:8888"
#define OTHER_SERVER_NAME "198.51.100.7:8889"

typedef struct
{
  int fd;                 /* our end of the socket pair */
  int source;
  gboolean eof;           /* the server closed its end */
  gboolean closed;        /* we closed ours */
  gboolean paused;        /* not reading, so that output piles up */
  GByteArray *in;
} Conn;

typedef struct
{
  RndzAddr addr;
  GPtrArray *conns;       /* Conn, owned by Harness.conns */
  guint current;
  GByteArray *last;       /* the last message this source sent, unframed */
  gboolean sent_udp;
} Source;

/* An fsync the server sent, for the rsync that answers it */
typedef struct
{
  guint32 tid;
  char requester[RNDZ_ID_MAX_LEN + 1];
  char target[RNDZ_ID_MAX_LEN + 1];
  int to;                 /* the source it went to */
  RndzTransport transport;
} Fsync;

typedef struct
{
  RndzServer *server;
  GBytes *secret;
  Source sources[N_SOURCES];
  GPtrArray *conns;       /* every Conn, owning */
  guint n_conns;

  /* The datagram being handled */
  gboolean in_datagram;
  RndzAddr cur_from;
  gsize cur_len;
  gboolean cur_valid;
  RndzMessage cur_msg;

  /* The target of the last isync sent: fsyncs captured go to it */
  char last_target[RNDZ_ID_MAX_LEN + 1];

  /* (address, tid) → the largest isync of that tid from that address */
  GHashTable *isyncs;

  Fsync fsyncs[N_FSYNCS];
  guint n_fsyncs;

  /* fsyncs per host, caused by and sent to (to: the first of each
   * request only), and (target address, tid) → fsyncs of one request */
  GHashTable *fsyncs_by_requester;
  GHashTable *fsyncs_by_target;
  GHashTable *fsyncs_by_request;
  /* "target host|requester host" → requests forwarded for that pair, and
   * target host → how many requester hosts it got requests from */
  GHashTable *fsyncs_by_pair;
  GHashTable *requesters_by_target;
  guint max_rate;
  gint64 started;
  guint budget;           /* messages left to send: bounds a run's time */
  gboolean touched;       /* a connection was written to, opened or closed */
} Harness;

typedef struct
{
  const guint8 *p;
  const guint8 *end;
} Input;

static guint8
next_byte (Input *in)
{
  return in->p < in->end ? *in->p++ : 0;
}

G_GNUC_NORETURN static void
fail (const char *what)
{
  fprintf (stderr, "fuzz-server: %s\n", what);
  abort ();
}

static gboolean tracing;

static void
trace_message (const char *what,
               int         source,
               const char *data,
               gsize       len)
{
  g_autofree char *copy = NULL;
  g_autofree char *escaped = NULL;

  if (!tracing)
    return;
  copy = g_strndup (data, len);
  escaped = g_strescape (copy, NULL);
  fprintf (stderr, "  %s %d (%zu bytes): %s\n", what, source, (size_t) len, escaped);
}

#define CHECK(cond, what) G_STMT_START { if (!(cond)) fail (what); } G_STMT_END

static int
source_of (Harness        *h,
           const RndzAddr *addr)
{
  for (int i = 0; i < N_SOURCES; i++)
    if (rndz_addr_equal (&h->sources[i].addr, addr))
      return i;
  return -1;
}

/* The key of the rate limits: an IPv4 address, or an IPv6 /64 */
static char *
host_key (const RndzAddr *addr)
{
  RndzAddr host = *addr;

  host.port = 0;
  if (host.family == 6)
    memset (host.bytes + 8, 0, 8);
  return g_strdup_printf ("%u:%02x%02x%02x%02x%02x%02x%02x%02x", host.family,
                          host.bytes[0], host.bytes[1], host.bytes[2], host.bytes[3],
                          host.bytes[4], host.bytes[5], host.bytes[6], host.bytes[7]);
}

static void
count_fsync (Harness        *h,
             GHashTable     *table,
             const RndzAddr *addr)
{
  char *key = host_key (addr);
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (table, key)) + 1;
  double elapsed = (g_get_monotonic_time () - h->started) / (double) G_USEC_PER_SEC;

  g_hash_table_replace (table, key, GUINT_TO_POINTER (n));
  /* A burst of twice the rate, and the rate since */
  if (n > 2 * h->max_rate + h->max_rate * elapsed + 1)
    fail ("a host caused more fsyncs than the request rate allows");
}

static guint
count_in (GHashTable *table,
          char       *key)
{
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (table, key)) + 1;

  g_hash_table_replace (table, key, GUINT_TO_POINTER (n));
  return n;
}

/* A request forwarded from @requester to @target (its first fsync). The
 * target's budget is its shared one, and its newcomers': a requester host
 * that had none of its requests to that target forwarded in the last
 * NEWCOMER_INTERVAL_S gets one through there (rndz-forward.c,
 * rndz_forward_isync_admit()); and a pair no more than its own share. */
static void
count_target_fsync (Harness        *h,
                    const RndzAddr *target,
                    const RndzAddr *requester)
{
  g_autofree char *target_key = host_key (target);
  g_autofree char *requester_key = host_key (requester);
  double elapsed = (g_get_monotonic_time () - h->started) / (double) G_USEC_PER_SEC;
  guint n, pair, newcomers;

  pair = count_in (h->fsyncs_by_pair, g_strconcat (target_key, "|", requester_key, NULL));
  if (pair == 1)
    count_in (h->requesters_by_target, g_strdup (target_key));
  newcomers = GPOINTER_TO_UINT (g_hash_table_lookup (h->requesters_by_target, target_key));
  n = count_in (h->fsyncs_by_target, g_strdup (target_key));

  if (pair > PAIR_BURST + PAIR_RATE * elapsed + 1)
    fail ("a requester got more requests to one target through than its share");
  if (n > 2 * h->max_rate + h->max_rate * elapsed + 1 +
          newcomers * (1 + elapsed / NEWCOMER_INTERVAL_S))
    fail ("a host received more fsyncs than its request rate and newcomers allow");
}

static char *
isync_key (const RndzAddr *addr,
           guint32         tid)
{
  char text[RNDZ_ADDR_STRLEN];

  return g_strdup_printf ("%s/%u", rndz_addr_format (addr, text), tid);
}

/* How many fsyncs of the request @tid went to @to, this one included */
static guint
count_request_fsync (Harness        *h,
                     const RndzAddr *to,
                     guint32         tid)
{
  char *key = isync_key (to, tid);
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (h->fsyncs_by_request, key)) + 1;

  g_hash_table_replace (h->fsyncs_by_request, key, GUINT_TO_POINTER (n));
  if (n > 1 + MAX_FSYNC_COPIES)
    fail ("a request was forwarded more often than its copies allow");
  return n;
}

static void
record_fsync (Harness           *h,
              const RndzMessage *msg,
              int                to,
              const RndzAddr    *to_addr,
              RndzTransport      transport)
{
  Fsync *f = &h->fsyncs[h->n_fsyncs++ % N_FSYNCS];

  f->tid = msg->tid;
  g_strlcpy (f->requester, msg->id, sizeof f->requester);
  g_strlcpy (f->target, h->last_target, sizeof f->target);
  f->to = to;
  f->transport = transport;

  /* Every fsync takes from its requester's budget. A copy of a pending
   * request's fsync (for a copy of its isync) does not take from the
   * target's: the request paid for it, at most MAX_FSYNC_COPIES times
   * (rndz-forward.c, isync_retransmitted()) */
  count_fsync (h, h->fsyncs_by_requester, &msg->addr);
  if (count_request_fsync (h, to_addr, msg->tid) == 1)
    count_target_fsync (h, to_addr, &msg->addr);
}

/* UDP: what the server sends */
static void
send_cb (const RndzAddr *to,
         const char     *data,
         gsize           len,
         gpointer        user_data)
{
  Harness *h = user_data;
  RndzMessage msg;
  int source = source_of (h, to);
  gboolean to_sender = h->in_datagram && rndz_addr_equal (to, &h->cur_from);

  trace_message ("UDP to", source, data, len);
  CHECK (source >= 0, "a datagram to an address that never talked to the server");
  CHECK (h->sources[source].sent_udp, "a datagram to an address that never sent UDP");
  CHECK (len <= 512, "a datagram larger than 512 bytes");
  CHECK (rndz_message_decode (&msg, data, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL),
         "the server sent a datagram that does not decode");
  CHECK (h->in_datagram && h->cur_valid, "a datagram sent outside the handling of a valid one");

  switch (msg.type)
    {
    case RNDZ_MESSAGE_PONG:
      CHECK (h->cur_msg.type == RNDZ_MESSAGE_PING, "a pong for something else than a ping");
      CHECK (to_sender, "a pong to someone else than the sender of the ping");
      CHECK (msg.tid == h->cur_msg.tid, "a pong with another tid than the ping's");
      CHECK (rndz_addr_equal (&msg.addr, to), "a pong with another address than the sender's");
      CHECK (len <= h->cur_len, "amplification: a pong larger than its ping");
      break;
    case RNDZ_MESSAGE_ERROR:
      CHECK (h->cur_msg.type == RNDZ_MESSAGE_PING || h->cur_msg.type == RNDZ_MESSAGE_ISYNC,
             "an error for something else than a request");
      CHECK (to_sender, "an error to someone else than the sender of the request");
      CHECK (msg.tid == h->cur_msg.tid, "an error with another tid than the request's");
      CHECK (len <= h->cur_len, "amplification: an error larger than its request");
      break;
    case RNDZ_MESSAGE_REDIRECT:
      {
        g_autofree char *key = isync_key (to, msg.tid);
        gsize isync_len = GPOINTER_TO_SIZE (g_hash_table_lookup (h->isyncs, key));

        /* The answer to an rsync, or sent again to a copy of its isync */
        CHECK (h->cur_msg.type == RNDZ_MESSAGE_RSYNC ||
               (h->cur_msg.type == RNDZ_MESSAGE_ISYNC && to_sender),
               "a redirect for something else than an rsync or a copy of its isync");
        CHECK (isync_len > 0, "a redirect to an address that sent no isync with that tid");
        CHECK (len <= isync_len, "amplification: a redirect larger than its isync");
        CHECK (h->cur_msg.type != RNDZ_MESSAGE_ISYNC || len <= h->cur_len,
               "amplification: a redirect larger than the copy of the isync it answers");
      }
      break;
    case RNDZ_MESSAGE_FSYNC:
      CHECK (h->cur_msg.type == RNDZ_MESSAGE_ISYNC, "an fsync for something else than an isync");
      record_fsync (h, &msg, source, to, RNDZ_TRANSPORT_UDP);
      break;
    default:
      fail ("the server sent a message of a peer's type");
    }
}

static void
feed_datagram (Harness     *h,
               int          source,
               const char  *data,
               gsize        len)
{
  Source *src = &h->sources[source];
  g_autofree char *copy = g_memdup2 (data, len);

  trace_message ("UDP from", source, data, len);
  src->sent_udp = TRUE;
  h->in_datagram = TRUE;
  h->cur_from = src->addr;
  h->cur_len = len;
  h->cur_valid = rndz_message_decode (&h->cur_msg, data, len,
                                      rndz_server_get_max_message_size (h->server), NULL);
  if (h->cur_valid && h->cur_msg.type == RNDZ_MESSAGE_ISYNC)
    {
      char *key = isync_key (&src->addr, h->cur_msg.tid);
      gsize known = GPOINTER_TO_SIZE (g_hash_table_lookup (h->isyncs, key));

      g_hash_table_replace (h->isyncs, key, GSIZE_TO_POINTER (MAX (known, len)));
    }

  /* An exact-size copy, so that ASan sees reads past the end */
  rndz_server_receive_datagram (h->server, &src->addr, copy, len);
  h->in_datagram = FALSE;
}

/* TCP */

static void
conn_free (Conn *conn)
{
  if (!conn->closed)
    close (conn->fd);
  g_byte_array_unref (conn->in);
  g_free (conn);
}

static Conn *
conn_open (Harness *h,
           int      source)
{
  Source *src = &h->sources[source];
  g_autoptr(GSocket) theirs = NULL;
  Conn *conn;
  int fds[2];
  int small = 4096;

  if (h->n_conns >= MAX_CONNS || src->conns->len >= MAX_CONNS_PER_SOURCE)
    return NULL;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
    fail ("socketpair() failed");

  /* Small buffers, so that a peer that does not read is noticed soon */
  setsockopt (fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  theirs = g_socket_new_from_fd (fds[0], NULL);
  CHECK (theirs != NULL, "g_socket_new_from_fd() failed");

  conn = g_new0 (Conn, 1);
  conn->fd = fds[1];
  conn->source = source;
  conn->in = g_byte_array_new ();
  g_ptr_array_add (h->conns, conn);
  g_ptr_array_add (src->conns, conn);
  src->current = src->conns->len - 1;
  h->n_conns++;

  rndz_server_add_connection (h->server, theirs, &src->addr);
  h->touched = TRUE;
  return conn;
}

static Conn *
current_conn (Harness  *h,
              int       source,
              gboolean  open)
{
  Source *src = &h->sources[source];
  Conn *conn = NULL;

  if (src->conns->len > 0)
    conn = g_ptr_array_index (src->conns, src->current % src->conns->len);
  if ((conn == NULL || conn->closed) && open)
    conn = conn_open (h, source);
  return conn != NULL && !conn->closed ? conn : NULL;
}

static void
write_all (Harness    *h,
           Conn       *conn,
           const void *data,
           gsize       len)
{
  const guint8 *p = data;
  guint stalls = 0;

  h->touched = TRUE;
  while (len > 0 && !conn->closed)
    {
      gssize n = send (conn->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && stalls++ < 64)
        {
          /* Let the server read */
          g_main_context_iteration (NULL, FALSE);
          continue;
        }
      if (n <= 0)
        return;             /* the server closed it: fine */
      p += n;
      len -= n;
    }
}

static void
send_frame (Harness    *h,
            Conn       *conn,
            const char *payload,
            gsize       len)
{
  guint8 header[2] = { (len >> 8) & 0xff, len & 0xff };
  g_autoptr(GByteArray) frame = g_byte_array_sized_new (len + 2);

  g_byte_array_append (frame, header, 2);
  g_byte_array_append (frame, (const guint8 *) payload, len);
  write_all (h, conn, frame->data, frame->len);
}

/* Checks one frame the server sent on @conn */
static void
check_frame (Harness      *h,
             Conn         *conn,
             const guint8 *payload,
             gsize         len)
{
  RndzMessage msg;
  Source *src = &h->sources[conn->source];

  trace_message ("TCP to", conn->source, (const char *) payload, len);
  CHECK (len <= 512, "a frame larger than 512 bytes");
  CHECK (rndz_message_decode (&msg, (const char *) payload, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL),
         "the server sent a frame that does not decode");

  switch (msg.type)
    {
    case RNDZ_MESSAGE_PONG:
      CHECK (rndz_addr_equal (&msg.addr, &src->addr),
             "a pong with another address than the connection's");
      break;
    case RNDZ_MESSAGE_FSYNC:
      record_fsync (h, &msg, conn->source, &src->addr, RNDZ_TRANSPORT_TCP);
      break;
    case RNDZ_MESSAGE_ERROR:
    case RNDZ_MESSAGE_REDIRECT:
      break;
    default:
      fail ("the server sent a frame of a peer's type");
    }
}

/* Reads what the server sent on @conn. Returns whether anything came. */
static gboolean
conn_drain (Harness *h,
            Conn    *conn)
{
  gboolean got = FALSE;
  guint8 buf[4096];
  gsize offset = 0;

  if (conn->closed || conn->eof)
    return FALSE;

  if (conn->paused)
    {
      /* Not reading; only notice that the server hung up */
      struct pollfd pfd = { conn->fd, POLLRDHUP, 0 };

      if (poll (&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP)))
        conn->eof = TRUE;
      return FALSE;
    }

  for (;;)
    {
      gssize n = recv (conn->fd, buf, sizeof buf, MSG_DONTWAIT);

      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        {
          conn->eof = TRUE;
          break;
        }
      g_byte_array_append (conn->in, buf, n);
      got = TRUE;
    }

  while (conn->in->len - offset >= 2)
    {
      gsize len = (gsize) conn->in->data[offset] << 8 | conn->in->data[offset + 1];

      CHECK (len > 0, "the server sent an empty frame");
      if (conn->in->len - offset < 2 + len)
        break;
      check_frame (h, conn, conn->in->data + offset + 2, len);
      offset += 2 + len;
    }
  g_byte_array_remove_range (conn->in, 0, offset);

  return got;
}

static guint
live_conns (Harness *h)
{
  guint n = 0;

  for (guint i = 0; i < h->conns->len; i++)
    {
      Conn *conn = g_ptr_array_index (h->conns, i);

      if (!conn->closed && !conn->eof)
        n++;
    }
  return n;
}

/* Lets the server read and write until nothing moves */
static void
pump (Harness *h)
{
  g_autofree struct pollfd *fds = NULL;
  g_autofree Conn **polled = NULL;

  if (!h->touched)
    return;
  h->touched = FALSE;

  fds = g_new (struct pollfd, h->conns->len + 1);
  polled = g_new (Conn *, h->conns->len + 1);

  for (guint round = 0; round < 16; round++)
    {
      gboolean got = FALSE;
      nfds_t n = 0;

      for (guint i = 0; i < 32 && g_main_context_iteration (NULL, FALSE); i++)
        ;

      /* Only the connections that have something to say */
      for (guint i = 0; i < h->conns->len; i++)
        {
          Conn *conn = g_ptr_array_index (h->conns, i);

          if (conn->closed || conn->eof)
            continue;
          fds[n].fd = conn->fd;
          fds[n].events = conn->paused ? POLLRDHUP : POLLIN;
          fds[n].revents = 0;
          polled[n++] = conn;
        }
      if (n == 0 || poll (fds, n, 0) <= 0)
        break;
      for (nfds_t i = 0; i < n; i++)
        if (fds[i].revents != 0)
          got |= conn_drain (h, polled[i]);
      if (!got)
        break;
    }
}

/* Sends one message from @source, by UDP or on its current connection */
static void
send_message (Harness    *h,
              int         source,
              gboolean    tcp,
              const char *data,
              gsize       len)
{
  Source *src = &h->sources[source];

  g_byte_array_set_size (src->last, 0);
  g_byte_array_append (src->last, (const guint8 *) data, len);

  if (!tcp)
    feed_datagram (h, source, data, len);
  else
    {
      Conn *conn = current_conn (h, source, TRUE);

      trace_message ("TCP from", source, data, len);
      if (conn != NULL)
        send_frame (h, conn, data, len);
    }
}

/* Signed for the server's public address (it has no socket), or for
 * another server's */
static void
sign (Harness     *h,
      RndzMessage *msg,
      gboolean     stale,
      gboolean     elsewhere)
{
  g_autoptr(GBytes) key = NULL;
  gint64 now_ms = g_get_real_time () / 1000;
  RndzAddr srv;

  if (h->secret == NULL)
    key = g_bytes_new_static ("no secret, a key", 16);
  else
    key = rndz_derive_key (h->secret, msg->id);
  rndz_addr_parse (&srv, elsewhere ? OTHER_SERVER_NAME : SERVER_NAME, NULL);
  rndz_message_sign (msg, &srv, key, stale ? now_ms - 120 * 1000 : now_ms);
}

static void
send_encoded (Harness     *h,
              int          source,
              gboolean     tcp,
              RndzMessage *msg,
              guint        pad)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
  gsize len, max_reply = rndz_message_max_reply_size (msg);

  switch (pad)
    {
    case 1: msg->pad_to = max_reply; break;
    case 2: msg->pad_to = max_reply - 1; break;
    case 3: msg->pad_to = max_reply + 300; break;
    default: msg->pad_to = 0; break;
    }

  len = rndz_message_encode (msg, buf, sizeof buf);
  if (len > 0)
    send_message (h, source, tcp, buf, len);
}

static void
op_ping (Harness  *h,
         int       source,
         gboolean  tcp,
         Input    *in)
{
  guint8 a = next_byte (in), b = next_byte (in);
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, tids[b & 15]);
  g_strlcpy (msg.id, ids[a & 7], sizeof msg.id);
  if (b & 0x10)
    sign (h, &msg, b & 0x20, b & 0x40);
  send_encoded (h, source, tcp, &msg, (a >> 3) & 3);
}

static void
op_isync (Harness  *h,
          int       source,
          gboolean  tcp,
          Input    *in)
{
  guint8 a = next_byte (in), b = next_byte (in);
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, tids[b & 15]);
  g_strlcpy (msg.id, ids[a & 7], sizeof msg.id);
  g_strlcpy (msg.target, ids[(a >> 3) & 7], sizeof msg.target);
  g_strlcpy (h->last_target, msg.target, sizeof h->last_target);
  if (b & 0x10)
    sign (h, &msg, b & 0x20, b & 0x40);
  send_encoded (h, source, tcp, &msg, (a >> 6) & 3);
}

static void
op_rsync (Harness  *h,
          int       source,
          gboolean  tcp,
          Input    *in)
{
  guint8 a = next_byte (in);
  RndzMessage msg;

  if (h->n_fsyncs == 0)
    {
      /* Nothing to answer: a guess */
      rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, a);
      g_strlcpy (msg.id, ids[a & 7], sizeof msg.id);
      g_strlcpy (msg.target, ids[(a >> 3) & 7], sizeof msg.target);
    }
  else
    {
      guint n = MIN (h->n_fsyncs, N_FSYNCS);
      const Fsync *f = &h->fsyncs[(h->n_fsyncs - 1 - (a & 7) % n) % N_FSYNCS];

      rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, f->tid);
      g_strlcpy (msg.id, (a & 0x10) ? ids[a & 7] : f->target, sizeof msg.id);
      g_strlcpy (msg.target, f->requester, sizeof msg.target);
      /* As the target answers: from where the fsync went */
      if (!(a & 0x08))
        {
          source = f->to;
          tcp = f->transport == RNDZ_TRANSPORT_TCP;
        }
      if (msg.id[0] == '\0')
        g_strlcpy (msg.id, "?", sizeof msg.id);
    }
  if (a & 0x20)
    sign (h, &msg, FALSE, FALSE);
  send_encoded (h, source, tcp, &msg, 0);
}

static void
op_bye (Harness  *h,
        int       source,
        gboolean  tcp,
        Input    *in)
{
  guint8 a = next_byte (in), b = next_byte (in);
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_BYE, tids[b & 15]);
  g_strlcpy (msg.id, ids[a & 7], sizeof msg.id);
  if (a & 0x08)
    sign (h, &msg, FALSE, FALSE);
  send_encoded (h, source, tcp, &msg, 0);
}

static void
op_other (Harness  *h,
          int       source,
          gboolean  tcp,
          Input    *in)
{
  static const char * const others[] = {
    "{\"v\":1,\"type\":\"pong\",\"tid\":1,\"addr\":\"192.0.2.1:1000\"}",
    "{\"v\":1,\"type\":\"fsync\",\"tid\":1,\"id\":\"bob\",\"addr\":\"[::1]:9\",\"auth\":true}",
    "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"alice\",\"addr\":\"10.0.0.1:1\"}",
    "{\"v\":1,\"type\":\"error\",\"tid\":1,\"code\":\"peer-not-found\"}",
    /* An unknown type: skipped over TCP, the connection goes on */
    "{\"v\":1,\"type\":\"hello\",\"tid\":1,\"id\":\"alice\"}",
    /* A later version, with fields this one does not know */
    "{\"v\":2,\"type\":\"ping\",\"tid\":9,\"id\":\"alice\",\"new\":[{\"a\":[1,2.5,null]}],"
    "\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
    /* Escapes, for json-glib rather than the fast path */
    "{\"v\":1,\"type\":\"ping\",\"tid\":5,\"id\":\"\\u0061lice\",\"pad\":"
    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
    /* Nested too deeply, trailing garbage, a nul */
    "{\"v\":1,\"type\":\"ping\",\"tid\":5,\"id\":\"a\",\"x\":[[[[[[[[[1]]]]]]]]]}",
    "{\"v\":1,\"type\":\"ping\",\"tid\":5,\"id\":\"a\"} {}",
    "{\"v\":1,\"type\":\"ping\",\"tid\":5,\"id\":\"a\\u0000b\"}",
  };
  guint8 a = next_byte (in);
  const char *text = others[a % G_N_ELEMENTS (others)];

  send_message (h, source, tcp, text, strlen (text));
}

static void
op_raw (Harness  *h,
        int       source,
        gboolean  tcp,
        Input    *in)
{
  gsize len = next_byte (in) * 6;

  len = MIN (len, (gsize) (in->end - in->p));
  send_message (h, source, tcp, (const char *) in->p, len);
  in->p += len;
}

static void
op_stream (Harness  *h,
           int       source,
           gboolean  tcp,
           Input    *in)
{
  gsize len = next_byte (in);

  if (tcp)
    {
      Conn *conn = current_conn (h, source, TRUE);

      len = MIN (len, (gsize) (in->end - in->p));
      if (conn != NULL)
        write_all (h, conn, in->p, len);
      in->p += len;
    }
  else
    {
      /* One byte over the limit, as the server's socket reads it */
      gsize size = rndz_server_get_max_message_size (h->server) + 1;
      g_autofree char *big = g_malloc (size);

      memset (big, 'x', size);
      if (len & 1)
        memcpy (big, "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\",\"pad\":\"", 45);
      feed_datagram (h, source, big, size);
    }
}

static void
op_connect (Harness *h,
            int      source,
            Input   *in)
{
  guint8 a = next_byte (in);
  /* 33: one more than a host may hold unregistered */
  guint n = a >= 0xf0 ? 33 : (a & 7) + 1;
  guint before = live_conns (h);
  guint limit = rndz_server_get_max_connections (h->server);

  for (guint i = 0; i < n; i++)
    conn_open (h, source);
  pump (h);

  CHECK (live_conns (h) <= MAX (limit, before), "more connections open than max-connections");
}

static void
op_close (Harness *h,
          int      source,
          Input   *in)
{
  guint8 a = next_byte (in);
  Conn *conn = current_conn (h, source, FALSE);

  if (conn == NULL)
    return;
  h->touched = TRUE;
  if (a & 1)
    shutdown (conn->fd, SHUT_WR);
  else
    {
      close (conn->fd);
      conn->closed = TRUE;
    }
}

static void
op_setprop (Harness *h,
            Input   *in)
{
  guint8 a = next_byte (in), b = next_byte (in);

  switch (a % 9)
    {
    case 0:
      rndz_server_set_max_peers (h->server, 1 + b % 8);
      break;
    case 1:
      rndz_server_set_max_connections (h->server, 1 + b % 16);
      break;
    case 2:
      rndz_server_set_request_rate (h->server, 1 + b % 40);
      h->max_rate = MAX (h->max_rate, 1 + b % 40u);
      break;
    case 3:
      rndz_server_set_max_message_size (h->server, MIN (512 + b * 4, 1400));
      break;
    case 4:
      rndz_server_set_peer_timeout (h->server, (1 + b) * 1000);
      break;
    case 5:
      rndz_server_set_forward_timeout (h->server, (1 + b) * 1000);
      break;
    case 6:
      rndz_server_set_register_timeout (h->server, (1 + b) * 1000);
      break;
    case 7:
      /* Authentication on or off */
      g_clear_pointer (&h->secret, g_bytes_unref);
      if (b & 1)
        h->secret = g_bytes_new_static (SECRET, strlen (SECRET));
      rndz_server_set_secret (h->server, h->secret);
      break;
    default:
      {
        /* A key of its own for an id: with no secret, only that id is
         * heard; with one, the key differs from the derived one */
        g_autoptr(GBytes) key = g_bytes_new_static ("0123456789abcdef0123", 16 + b % 5);

        rndz_server_add_key (h->server, ids[b & 7], key);
      }
      break;
    }
}

/* Sends @data from @source, by UDP, or on its connection as @framed */
static void
resend (Harness    *h,
        int         source,
        gboolean    tcp,
        const guint8 *data,
        gsize       len,
        guint       times)
{
  g_autofree guint8 *copy = g_memdup2 (data, len);

  times = MIN (times, h->budget);
  h->budget -= times;
  if (!tcp)
    {
      for (guint i = 0; i < times; i++)
        feed_datagram (h, source, (const char *) copy, len);
    }
  else
    {
      Conn *conn = current_conn (h, source, TRUE);
      g_autoptr(GByteArray) frames = g_byte_array_new ();
      guint8 header[2] = { (len >> 8) & 0xff, len & 0xff };

      if (conn == NULL)
        return;
      for (guint i = 0; i < times; i++)
        {
          g_byte_array_append (frames, header, 2);
          g_byte_array_append (frames, copy, len);
        }
      /* In one write: the server finds many frames in one read */
      write_all (h, conn, frames->data, frames->len);
    }
}

static void
op_split (Harness  *h,
          int       source,
          gboolean  tcp,
          Input    *in)
{
  GByteArray *last = h->sources[source].last;
  guint8 a = next_byte (in);
  g_autoptr(GByteArray) frame = g_byte_array_new ();
  guint8 header[2] = { (last->len >> 8) & 0xff, last->len & 0xff };
  gsize cut;
  Conn *conn;

  if (!tcp)
    {
      /* A datagram cut short */
      if (last->len > 0)
        feed_datagram (h, source, (const char *) last->data, a % last->len);
      return;
    }

  conn = current_conn (h, source, TRUE);
  if (conn == NULL)
    return;
  g_byte_array_append (frame, header, 2);
  g_byte_array_append (frame, last->data, last->len);
  cut = a % (frame->len + 1);
  write_all (h, conn, frame->data, cut);
  pump (h);
  write_all (h, conn, frame->data + cut, frame->len - cut);
}

static void
configure (Harness *h,
           Input   *in)
{
  guint8 flags = next_byte (in), params = next_byte (in);

  if (flags & 1)
    rndz_server_set_max_peers (h->server, 1 + (params & 3));
  if (flags & 2)
    {
      rndz_server_set_request_rate (h->server, 1 + ((params >> 2) & 3));
      h->max_rate = 1 + ((params >> 2) & 3);
    }
  if (flags & 4)
    rndz_server_set_max_message_size (h->server, RNDZ_MESSAGE_MIN_MAX_SIZE);
  if (flags & 8)
    {
      h->secret = g_bytes_new_static (SECRET, strlen (SECRET));
      rndz_server_set_secret (h->server, h->secret);
      if (params & 0x80)
        {
          g_autoptr(GBytes) key = g_bytes_new_static ("alice's own key!", 16);

          rndz_server_add_key (h->server, "alice", key);
        }
    }
  if (flags & 16)
    rndz_server_set_max_connections (h->server, 1 + ((params >> 4) & 7));
  if (flags & 32)
    {
      rndz_server_set_peer_timeout (h->server, 1000);
      rndz_server_set_forward_timeout (h->server, 1000);
      rndz_server_set_register_timeout (h->server, 1000);
    }
}

static void
step (Harness *h,
      Input   *in)
{
  guint8 op = next_byte (in);
  int source = op & 7;
  gboolean tcp = (op & 8) != 0;
  guint peers_before = rndz_server_get_peer_count (h->server);
  Source *src = &h->sources[source];

  if (tracing)
    fprintf (stderr, "step: op %u, source %d%s\n", op >> 4, source, tcp ? ", TCP" : "");

  switch ((Op) (op >> 4))
    {
    case OP_PING: op_ping (h, source, tcp, in); break;
    case OP_ISYNC: op_isync (h, source, tcp, in); break;
    case OP_RSYNC: op_rsync (h, source, tcp, in); break;
    case OP_BYE: op_bye (h, source, tcp, in); break;
    case OP_OTHER: op_other (h, source, tcp, in); break;
    case OP_RAW: op_raw (h, source, tcp, in); break;
    case OP_STREAM: op_stream (h, source, tcp, in); break;
    case OP_CONNECT: op_connect (h, source, in); break;
    case OP_CLOSE: op_close (h, source, in); break;
    case OP_SELECT:
      src->current = next_byte (in);
      break;
    case OP_BURST:
      resend (h, source, tcp, src->last->data, src->last->len, 1 + 4 * (next_byte (in) & 63));
      break;
    case OP_PAUSE:
      {
        Conn *conn = current_conn (h, source, FALSE);

        if (conn != NULL)
          conn->paused = !conn->paused;
        h->touched = TRUE;
      }
      break;
    case OP_SETPROP: op_setprop (h, in); break;
    case OP_REPLAY:
      {
        GByteArray *other = h->sources[next_byte (in) & 7].last;

        resend (h, source, tcp, other->data, other->len, 1);
      }
      break;
    case OP_SPLIT: op_split (h, source, tcp, in); break;
    case OP_IDLE:
    default:
      h->touched = TRUE;
      break;
    }

  pump (h);

  /* Existing peers stay when max-peers is lowered; new ones wait */
  CHECK (rndz_server_get_peer_count (h->server) <=
         MAX (peers_before, rndz_server_get_max_peers (h->server)),
         "more peers registered than max-peers allows");
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  Harness h = { 0 };
  Input in = { data, data + size };

  tracing = g_getenv ("RNDZ_FUZZ_TRACE") != NULL;

  /* The same input runs the same way: nonces, the server's tids */
  g_random_set_seed (0x726e647a);

  h.server = rndz_server_new ();
  {
    const char *names[] = { SERVER_NAME, NULL };

    rndz_server_set_public_addresses (h.server, names);
  }
  h.conns = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_free);
  h.isyncs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  h.fsyncs_by_requester = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  h.fsyncs_by_target = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  h.fsyncs_by_request = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  h.fsyncs_by_pair = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  h.requesters_by_target = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  h.max_rate = rndz_server_get_request_rate (h.server);
  h.started = g_get_monotonic_time ();
  h.budget = 4096;
  for (int i = 0; i < N_SOURCES; i++)
    {
      if (!rndz_addr_parse (&h.sources[i].addr, source_addrs[i], NULL))
        fail ("bad source address");
      h.sources[i].conns = g_ptr_array_new ();
      h.sources[i].last = g_byte_array_new ();
    }
  rndz_server_set_udp_sender (h.server, send_cb, &h);

  configure (&h, &in);
  for (guint i = 0; i < MAX_STEPS && in.p < in.end; i++)
    step (&h, &in);

  if (tracing)
    {
      RndzServerStats stats;

      rndz_server_get_stats (h.server, &stats);
      fprintf (stderr, "stats: %" G_GUINT64_FORMAT " messages, %" G_GUINT64_FORMAT " malformed, %"
               G_GUINT64_FORMAT " rate limited, %" G_GUINT64_FORMAT " amplification, %"
               G_GUINT64_FORMAT " forwarded, %" G_GUINT64_FORMAT " redirected, %"
               G_GUINT64_FORMAT " evicted, %" G_GUINT64_FORMAT " refused, %"
               G_GUINT64_FORMAT " auth failed\n",
               stats.messages, stats.malformed, stats.rate_limited, stats.amplification,
               stats.forwarded, stats.redirected, stats.evicted, stats.refused_connections,
               stats.auth_failed);
    }

  /* Stopping closes every connection: the other ends see it */
  rndz_server_stop (h.server);
  h.touched = TRUE;
  pump (&h);
  g_object_unref (h.server);
  CHECK (!g_main_context_pending (NULL), "a source is left on the main context");

  for (int i = 0; i < N_SOURCES; i++)
    {
      g_ptr_array_unref (h.sources[i].conns);
      g_byte_array_unref (h.sources[i].last);
    }
  g_ptr_array_unref (h.conns);
  g_hash_table_unref (h.isyncs);
  g_hash_table_unref (h.fsyncs_by_requester);
  g_hash_table_unref (h.fsyncs_by_target);
  g_hash_table_unref (h.fsyncs_by_request);
  g_hash_table_unref (h.fsyncs_by_pair);
  g_hash_table_unref (h.requesters_by_target);
  g_clear_pointer (&h.secret, g_bytes_unref);
  return 0;
}
