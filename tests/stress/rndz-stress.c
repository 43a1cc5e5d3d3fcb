/* rndz-stress.c: a rendezvous server under load and abuse
 *
 * SPDX-License-Identifier: MIT
 *
 * Usage: rndz-stress [--duration SECONDS] [--peers N] [--server PATH] …
 *
 * Starts the real `rndz server` tool on 127.0.0.1 (port 0) as a separate
 * process, so that its memory, its crashes and its sanitizer reports are
 * its own, and for a bounded time throws at it, from many 127.x.y.z source
 * addresses (each simulated peer binds its own, so the per-address limits
 * meet realistic traffic):
 *
 *  - well-behaved peers, which must all succeed:
 *    - UDP and TCP pingers that register, keep their registration alive,
 *      say bye and come back under a new id;
 *    - UDP and TCP pairs that do the whole rendezvous themselves: the
 *      listener registers and answers fsyncs with an rsync to the server
 *      (and a punch to the requester over UDP), the requester sends an
 *      isync and retries as rndz-glib does (200, 400, 800 ms, then every
 *      second; over TCP it reconnects if it loses the connection) until the
 *      redirect, whose address must be the listener's; then the listener
 *      says bye and the pair starts again under new ids;
 *    - UDP pairs whose listener registers once and then neither answers
 *      nor pings: its requester must get peer-no-answer after the
 *      server's forward timeout, and peer-not-found once the peer timeout
 *      has made the server forget the listener;
 *  - abuse, which must get nothing back and cost the server nothing lasting:
 *    malformed datagrams (random bytes, truncated and oversize messages,
 *    deep nesting, bad UTF-8, \u0000, unpadded pings that a pong would
 *    amplify), malformed frames (oversize and empty headers, garbage, deep
 *    nesting, bad UTF-8), silent TCP connections and slow ones that send a
 *    byte a second.
 *
 * Then it stops the server with SIGTERM and prints TAP: whether the server
 * stayed up, every well-behaved rendezvous and registration succeeded,
 * nothing malformed got an answer or a larger one, bad connections were
 * closed in time, and the server exited with status 0 and without a
 * sanitizer report (build it with -Db_sanitize=address,undefined for the
 * leak check), followed by the figures: requests served, errors, latencies,
 * the server's peak RSS (VmHWM) and CPU time.
 *
 * Every well-behaved operation in flight when the time is up is allowed
 * to finish (at most 12 s more); the whole run is bounded by an alarm.
 */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "rndz-message-private.h"
#include "rndz-types.h"

#define MS (G_USEC_PER_SEC / 1000)
#define OPERATION_TIMEOUT (10 * G_USEC_PER_SEC)   /* as RndzClient's */
#define KEEPALIVE (5 * G_USEC_PER_SEC)
#define PONG_WAIT (2 * G_USEC_PER_SEC)
#define DRAIN_TIME (12 * G_USEC_PER_SEC)
#define TICK (5 * MS)
#define FRAME_MAX (RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE)

/* The first octet after 127 of each kind of source address */
#define NET_PEERS 10
#define NET_JUNK_UDP 200
#define NET_JUNK_TCP 201
#define NET_SILENT 202
#define NET_SLOW 203

typedef enum
{
  ROLE_UDP_PINGER,
  ROLE_UDP_LISTENER,
  ROLE_UDP_REQUESTER,
  ROLE_TCP_PINGER,
  ROLE_TCP_LISTENER,
  ROLE_TCP_REQUESTER,
  ROLE_GHOST,            /* registers once, then silent */
  ROLE_GHOST_REQUESTER,
  ROLE_JUNK_UDP,
  ROLE_JUNK_TCP,
  ROLE_SILENT,
  ROLE_SLOW,
} Role;

typedef enum
{
  STATE_IDLE,          /* waiting for next */
  STATE_CONNECTING,    /* TCP connect in progress */
  STATE_REGISTERING,   /* ping sent, no pong yet */
  STATE_REGISTERED,
  STATE_WAITING,       /* a requester waiting for its listener */
  STATE_REQUESTING,    /* isync sent, no redirect yet */
  STATE_HOLDING,       /* abuse: connected, waiting for the server to close */
} State;

typedef struct _Peer Peer;

struct _Peer
{
  Role role;
  State state;
  int fd;
  guint slot;
  struct sockaddr_in local;
  char id[48];
  guint gen;
  guint32 tid;
  gint64 next;             /* next timer, 0 for none */
  gint64 started;          /* of the current operation */
  gint64 retry;            /* the current retransmission delay */
  gint64 lifetime_end;     /* pingers: when to say bye */
  gint64 opened;           /* abuse: when the connection was made */
  gsize last_len;          /* the last datagram's size */
  gboolean ping_pending;   /* a keepalive ping not answered yet */
  Peer *partner;
  gboolean partner_ready;  /* requesters: the listener is registered */
  gboolean leaving;        /* listeners: the rendezvous is done */
  gint64 registered_at;    /* ghosts */
  gboolean probing;        /* ghost requesters: the second question */
  guint8 in[FRAME_MAX + 64];
  gsize in_len;
  guint8 slow_frame[256];
  gsize slow_len, slow_pos;
};

typedef struct
{
  /* Well-behaved */
  guint64 pings, pongs, ping_retries, registrations, registration_failures;
  guint64 isyncs, isync_retries, redirects, fsyncs, rsyncs, punches, byes;
  guint64 udp_rendezvous, udp_rendezvous_failed, tcp_rendezvous, tcp_rendezvous_failed;
  guint64 wrong_redirects, errors_received, registered_closed, tcp_reconnects;
  guint64 keepalive_lost;
  guint64 ghost_no_answer, ghost_not_found, ghost_failed;
  GArray *no_answer_time;               /* gint64 µs */
  GArray *udp_latency, *tcp_latency;   /* gint64 µs */
  /* Abuse */
  guint64 junk_datagrams, junk_replies, amplified, junk_frames, junk_closed, junk_not_closed;
  guint64 silent_opened, silent_closed, silent_late;
  guint64 slow_opened, slow_closed, slow_late, slow_bytes;
  GArray *silent_close_time;            /* gint64 µs */
  /* Problems worth a line each, up to a few */
  GPtrArray *problems;
} Stats;

typedef struct
{
  /* Options */
  guint duration;
  guint n_peers;
  char *server_path;
  char *wrapper;
  guint register_timeout;
  guint peer_timeout;
  guint forward_timeout;
  guint junk_rate;
  guint seed;
  gboolean verbose;

  /* The server */
  GPid pid;
  char *stderr_path;
  struct sockaddr_in server_addr;
  gboolean server_died;
  int server_status;

  int epfd;
  GPtrArray *peers;
  GPtrArray *junk_udp;   /* the ROLE_JUNK_UDP peers */
  GRand *rand;
  gint64 start, end, drain_end;
  gboolean draining;
  guint junk_next;
  Stats stats;
} Stress;

static Stress stress;

static void
problem (const char *format,
         ...) G_GNUC_PRINTF (1, 2);

static void
problem (const char *format,
         ...)
{
  va_list args;
  char *text;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  if (stress.verbose)
    g_printerr ("rndz-stress: %s\n", text);
  if (stress.stats.problems->len < 20)
    g_ptr_array_add (stress.stats.problems, text);
  else
    g_free (text);
}

static gint64
now (void)
{
  return g_get_monotonic_time ();
}

static gint64
jitter (gint64 max)
{
  return max > 0 ? g_rand_int_range (stress.rand, 0, (gint32) MIN (max, G_MAXINT32)) : 0;
}

/* 127.NET.x.y, a different address for every index */
static struct sockaddr_in
source_address (guint net,
                guint index)
{
  struct sockaddr_in sin = { 0 };
  guint32 a = 127u << 24 | (net + index / (254 * 254)) << 16 |
              ((index / 254) % 254 + 1) << 8 | (index % 254 + 1);

  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl (a);
  return sin;
}

static char *
format_sin (const struct sockaddr_in *sin)
{
  char host[INET_ADDRSTRLEN];

  inet_ntop (AF_INET, &sin->sin_addr, host, sizeof host);
  return g_strdup_printf ("%s:%u", host, ntohs (sin->sin_port));
}

/* Sockets */

static void
watch (Peer     *peer,
       guint32   events)
{
  struct epoll_event event = { .events = events, .data.ptr = peer };

  if (epoll_ctl (stress.epfd, EPOLL_CTL_MOD, peer->fd, &event) < 0 &&
      epoll_ctl (stress.epfd, EPOLL_CTL_ADD, peer->fd, &event) < 0)
    g_error ("epoll_ctl: %s", g_strerror (errno));
}

static void
peer_close (Peer *peer)
{
  if (peer->fd >= 0)
    {
      epoll_ctl (stress.epfd, EPOLL_CTL_DEL, peer->fd, NULL);
      close (peer->fd);
    }
  peer->fd = -1;
  peer->in_len = 0;
}

static gboolean
peer_bind (Peer *peer,
           int   type)
{
  struct sockaddr_in sin = peer->local;
  socklen_t len = sizeof sin;
  int one = 1;

  peer->fd = socket (AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (peer->fd < 0)
    {
      problem ("socket(): %s", g_strerror (errno));
      return FALSE;
    }
  if (type == SOCK_STREAM)
    {
      setsockopt (peer->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      setsockopt (peer->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  sin.sin_port = 0;
  if (bind (peer->fd, (struct sockaddr *) &sin, sizeof sin) < 0)
    {
      problem ("bind(): %s", g_strerror (errno));
      peer_close (peer);
      return FALSE;
    }
  getsockname (peer->fd, (struct sockaddr *) &peer->local, &len);
  return TRUE;
}

static gboolean
udp_open (Peer *peer)
{
  if (peer->fd >= 0)
    return TRUE;
  if (!peer_bind (peer, SOCK_DGRAM))
    return FALSE;
  watch (peer, EPOLLIN);
  return TRUE;
}

/* Starts a non-blocking connect; the peer gets EPOLLOUT when done */
static gboolean
tcp_open (Peer *peer)
{
  socklen_t len = sizeof peer->local;

  peer_close (peer);
  if (!peer_bind (peer, SOCK_STREAM))
    return FALSE;
  if (connect (peer->fd, (struct sockaddr *) &stress.server_addr, sizeof stress.server_addr) < 0 &&
      errno != EINPROGRESS)
    {
      problem ("connect(): %s", g_strerror (errno));
      peer_close (peer);
      return FALSE;
    }
  getsockname (peer->fd, (struct sockaddr *) &peer->local, &len);
  peer->state = STATE_CONNECTING;
  peer->opened = now ();
  watch (peer, EPOLLIN | EPOLLOUT);
  return TRUE;
}

static void
send_datagram (Peer       *peer,
               const void *data,
               gsize       len)
{
  if (sendto (peer->fd, data, len, 0, (struct sockaddr *) &stress.server_addr,
              sizeof stress.server_addr) < 0 &&
      errno != EAGAIN && errno != ECONNREFUSED)
    problem ("sendto(): %s", g_strerror (errno));
}

static void
send_stream (Peer       *peer,
             const void *data,
             gsize       len)
{
  /* Small frames on an idle socket: a short write would be a surprise,
   * and only costs a retry */
  if (peer->fd >= 0 && send (peer->fd, data, len, MSG_NOSIGNAL) != (gssize) len &&
      errno != EPIPE && errno != ECONNRESET)
    problem ("send() on a TCP connection: %s", g_strerror (errno));
}

/* Messages */

static gboolean
is_udp (Peer *peer)
{
  return peer->role == ROLE_UDP_PINGER || peer->role == ROLE_UDP_LISTENER ||
         peer->role == ROLE_UDP_REQUESTER || peer->role == ROLE_GHOST ||
         peer->role == ROLE_GHOST_REQUESTER || peer->role == ROLE_JUNK_UDP;
}

static void
send_message (Peer            *peer,
              RndzMessageType  type,
              guint32          tid,
              const char      *id,
              const char      *target)
{
  RndzMessage msg;
  char buf[FRAME_MAX];
  gboolean tcp = !is_udp (peer);
  gsize len;

  rndz_message_init (&msg, type, tid);
  if (id != NULL)
    g_strlcpy (msg.id, id, sizeof msg.id);
  if (target != NULL)
    g_strlcpy (msg.target, target, sizeof msg.target);

  if (tcp)
    {
      len = rndz_message_encode_frame (&msg, buf, sizeof buf);
      send_stream (peer, buf, len);
    }
  else
    {
      /* UDP requests are padded, so that the answer may be as large */
      msg.pad_to = rndz_message_max_reply_size (&msg);
      len = rndz_message_encode (&msg, buf, sizeof buf);
      if (type == RNDZ_MESSAGE_PING || type == RNDZ_MESSAGE_ISYNC)
        peer->last_len = len;
      send_datagram (peer, buf, len);
    }
}

static void
new_id (Peer *peer)
{
  static const char * const prefixes[] = {
    [ROLE_UDP_PINGER] = "up", [ROLE_UDP_LISTENER] = "ul", [ROLE_UDP_REQUESTER] = "ur",
    [ROLE_TCP_PINGER] = "tp", [ROLE_TCP_LISTENER] = "tl", [ROLE_TCP_REQUESTER] = "tr",
    [ROLE_GHOST] = "gl", [ROLE_GHOST_REQUESTER] = "gr",
  };

  peer->gen++;
  g_snprintf (peer->id, sizeof peer->id, "%s-%u-%u", prefixes[peer->role], peer->slot, peer->gen);
}

static guint32
new_tid (void)
{
  return g_rand_int (stress.rand);
}

/* Well-behaved peers */

static gboolean
is_requester (Peer *peer)
{
  return peer->role == ROLE_UDP_REQUESTER || peer->role == ROLE_TCP_REQUESTER;
}

static void
start_registering (Peer *peer)
{
  peer->state = STATE_REGISTERING;
  peer->started = now ();
  peer->tid = new_tid ();
  peer->retry = 200 * MS;
  peer->ping_pending = FALSE;
  stress.stats.pings++;
  send_message (peer, RNDZ_MESSAGE_PING, peer->tid, peer->id, NULL);
  peer->next = now () + peer->retry;
}

static void
start_requesting (Peer *peer)
{
  peer->state = STATE_REQUESTING;
  peer->started = now ();
  peer->tid = new_tid ();
  peer->retry = 200 * MS;
  stress.stats.isyncs++;
  send_message (peer, RNDZ_MESSAGE_ISYNC, peer->tid, peer->id, peer->partner->id);
  peer->next = now () + peer->retry;
}

/* A pair starts again: the listener under a new id, its requester
 * waiting for it */
static void
pair_restart (Peer *listener)
{
  Peer *requester = listener->partner;

  if (listener->fd >= 0 && listener->state == STATE_REGISTERED)
    {
      stress.stats.byes++;
      send_message (listener, RNDZ_MESSAGE_BYE, new_tid (), listener->id, NULL);
    }
  if (listener->role == ROLE_TCP_LISTENER)
    peer_close (listener);

  new_id (listener);
  new_id (requester);
  listener->leaving = FALSE;
  listener->state = STATE_IDLE;
  requester->state = STATE_WAITING;
  requester->partner_ready = FALSE;
  requester->next = 0;
  listener->next = stress.draining ? 0 : now () + 100 * MS + jitter (900 * MS);
}

static void
registered (Peer *peer)
{
  gboolean first = peer->state == STATE_REGISTERING;

  if (peer->role == ROLE_GHOST)
    {
      /* Registered, and from now on silent */
      if (first)
        {
          stress.stats.registrations++;
          peer->state = STATE_REGISTERED;
          peer->registered_at = now ();
          peer->partner->partner_ready = TRUE;
          peer->partner->probing = FALSE;
          if (!stress.draining)
            peer->partner->next = now () + jitter (50 * MS);
        }
      peer->next = 0;
      return;
    }

  peer->state = STATE_REGISTERED;
  peer->ping_pending = FALSE;
  peer->next = now () + KEEPALIVE + jitter (G_USEC_PER_SEC);
  if (!first)
    return;

  stress.stats.registrations++;
  if (peer->role == ROLE_UDP_LISTENER || peer->role == ROLE_TCP_LISTENER)
    {
      /* The requester may go */
      peer->partner->partner_ready = TRUE;
      if (peer->partner->state == STATE_WAITING && !stress.draining)
        peer->partner->next = now () + jitter (50 * MS);
    }
  else
    peer->lifetime_end = now () + 3 * G_USEC_PER_SEC + jitter (20 * G_USEC_PER_SEC);
}

static void
rendezvous_done (Peer     *requester,
                 gboolean  ok)
{
  gboolean tcp = requester->role == ROLE_TCP_REQUESTER;
  gint64 latency = now () - requester->started;

  if (ok)
    {
      (*(tcp ? &stress.stats.tcp_rendezvous : &stress.stats.udp_rendezvous))++;
      g_array_append_val (tcp ? stress.stats.tcp_latency : stress.stats.udp_latency, latency);
    }
  else
    (*(tcp ? &stress.stats.tcp_rendezvous_failed : &stress.stats.udp_rendezvous_failed))++;

  if (tcp)
    peer_close (requester);
  requester->state = STATE_IDLE;
  requester->next = 0;

  /* The listener leaves a little later, then the pair starts again */
  requester->partner->leaving = TRUE;
  requester->partner->next = now () + jitter (300 * MS);
}

/* Ghost pairs: the requester of a listener that never answers */

static void
ghost_restart (Peer *requester)
{
  Peer *ghost = requester->partner;

  new_id (ghost);
  new_id (requester);
  ghost->state = STATE_IDLE;
  ghost->next = stress.draining ? 0 : now () + jitter (500 * MS);
  requester->state = STATE_WAITING;
  requester->partner_ready = FALSE;
  requester->probing = FALSE;
  requester->next = 0;
}

static void
ghost_failed (Peer       *requester,
              const char *why)
{
  stress.stats.ghost_failed++;
  problem ("%s asking for silent %s: %s", requester->id, requester->partner->id, why);
  ghost_restart (requester);
}

static void
ghost_ask (Peer *requester)
{
  requester->state = STATE_REQUESTING;
  requester->started = now ();
  requester->tid = new_tid ();
  requester->retry = 200 * MS;
  stress.stats.isyncs++;
  send_message (requester, RNDZ_MESSAGE_ISYNC, requester->tid, requester->id, requester->partner->id);
  requester->next = now () + requester->retry;
}

static void
ghost_answer (Peer              *requester,
              const RndzMessage *msg,
              gsize              len)
{
  if (len > requester->last_len)
    {
      stress.stats.amplified++;
      problem ("an answer of %zu bytes for an isync of %zu", (size_t) len, (size_t) requester->last_len);
    }
  if (msg->tid != requester->tid || requester->state != STATE_REQUESTING)
    return;

  if (msg->type == RNDZ_MESSAGE_REDIRECT)
    ghost_failed (requester, "a redirect to a peer that never answered");
  else if (msg->type != RNDZ_MESSAGE_ERROR)
    ghost_failed (requester, "not an error");
  else if (!requester->probing)
    {
      gint64 waited = now () - requester->started;

      if (msg->code != RNDZ_WIRE_ERROR_PEER_NO_ANSWER)
        {
          ghost_failed (requester, "not peer-no-answer");
          return;
        }
      if (waited < (gint64) stress.forward_timeout * G_USEC_PER_SEC - 100 * MS)
        {
          ghost_failed (requester, "peer-no-answer before the forward timeout");
          return;
        }
      stress.stats.ghost_no_answer++;
      g_array_append_val (stress.stats.no_answer_time, waited);
      /* Then once the server must have forgotten it */
      requester->probing = TRUE;
      requester->state = STATE_WAITING;
      requester->next = requester->partner->registered_at +
                        (stress.peer_timeout + 2) * G_USEC_PER_SEC;
    }
  else if (msg->code != RNDZ_WIRE_ERROR_PEER_NOT_FOUND)
    ghost_failed (requester, "still registered after the peer timeout");
  else
    {
      stress.stats.ghost_not_found++;
      ghost_restart (requester);
    }
}

/* What a well-behaved peer does with a message from the server */
static void
handle_message (Peer              *peer,
                const RndzMessage *msg,
                gsize              len)
{
  gboolean udp = is_udp (peer);

  if (peer->role == ROLE_GHOST_REQUESTER)
    {
      ghost_answer (peer, msg, len);
      return;
    }
  if (peer->role == ROLE_GHOST && msg->type == RNDZ_MESSAGE_FSYNC)
    {
      /* Heard, and ignored */
      stress.stats.fsyncs++;
      return;
    }

  switch (msg->type)
    {
    case RNDZ_MESSAGE_PONG:
      if (udp && len > peer->last_len)
        {
          stress.stats.amplified++;
          problem ("a pong of %zu bytes for a ping of %zu", (size_t) len, (size_t) peer->last_len);
        }
      if (msg->tid != peer->tid || is_requester (peer))
        break;
      stress.stats.pongs++;
      if (peer->state == STATE_REGISTERING || peer->state == STATE_REGISTERED)
        registered (peer);
      break;

    case RNDZ_MESSAGE_FSYNC:
      stress.stats.fsyncs++;
      if (peer->state != STATE_REGISTERED)
        break;
      /* Over UDP the punch goes straight to the requester first */
      if (udp)
        {
          RndzMessage rsync;
          char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
          struct sockaddr_storage ss;
          gsize sslen, n;

          rndz_message_init (&rsync, RNDZ_MESSAGE_RSYNC, msg->tid);
          g_strlcpy (rsync.id, peer->id, sizeof rsync.id);
          g_strlcpy (rsync.target, msg->id, sizeof rsync.target);
          n = rndz_message_encode (&rsync, buf, sizeof buf);
          sslen = rndz_addr_to_sockaddr (&msg->addr, G_SOCKET_FAMILY_IPV4, &ss);
          if (sslen > 0)
            sendto (peer->fd, buf, n, 0, (struct sockaddr *) &ss, sslen);
        }
      stress.stats.rsyncs++;
      send_message (peer, RNDZ_MESSAGE_RSYNC, msg->tid, peer->id, msg->id);
      break;

    case RNDZ_MESSAGE_RSYNC:
      /* A listener's punch, on the requester's socket */
      if (peer->role == ROLE_UDP_REQUESTER)
        stress.stats.punches++;
      break;

    case RNDZ_MESSAGE_REDIRECT:
      if (udp && len > peer->last_len)
        {
          stress.stats.amplified++;
          problem ("a redirect of %zu bytes for an isync of %zu", (size_t) len, (size_t) peer->last_len);
        }
      if (!is_requester (peer) || peer->state != STATE_REQUESTING || msg->tid != peer->tid)
        break;
      stress.stats.redirects++;
      {
        RndzAddr expected;

        rndz_addr_from_sockaddr (&expected, (struct sockaddr *) &peer->partner->local,
                                 sizeof peer->partner->local);
        if (!g_str_equal (msg->id, peer->partner->id) || !rndz_addr_equal (&msg->addr, &expected))
          {
            char got[RNDZ_ADDR_STRLEN];
            g_autofree char *want = format_sin (&peer->partner->local);

            stress.stats.wrong_redirects++;
            problem ("a redirect for %s to %s, expected %s at %s", msg->id,
                     rndz_addr_format (&msg->addr, got), peer->partner->id, want);
            rendezvous_done (peer, FALSE);
            break;
          }
      }
      rendezvous_done (peer, TRUE);
      break;

    case RNDZ_MESSAGE_ERROR:
      stress.stats.errors_received++;
      if (msg->tid != peer->tid ||
          (peer->state != STATE_REQUESTING && peer->state != STATE_REGISTERING))
        break;
      problem ("%s %s got error %d (tid %u)", udp ? "UDP" : "TCP", peer->id, msg->code, msg->tid);
      if (is_requester (peer) && peer->state == STATE_REQUESTING)
        rendezvous_done (peer, FALSE);
      else if (peer->state == STATE_REGISTERING)
        {
          stress.stats.registration_failures++;
          peer->state = STATE_IDLE;
          peer->next = now () + G_USEC_PER_SEC;
        }
      break;

    default:
      problem ("%s got a %s from the server", peer->id, rndz_message_type_to_string (msg->type));
      break;
    }
}

static void
read_datagrams (Peer *peer)
{
  for (guint i = 0; i < 64; i++)
    {
      char buf[2048];
      struct sockaddr_in from;
      socklen_t fromlen = sizeof from;
      gssize n = recvfrom (peer->fd, buf, sizeof buf, 0, (struct sockaddr *) &from, &fromlen);
      RndzMessage msg;

      if (n < 0)
        break;

      if (peer->role == ROLE_JUNK_UDP)
        {
          stress.stats.junk_replies++;
          if ((gsize) n > peer->last_len)
            stress.stats.amplified++;
          problem ("a reply of %zd bytes to a malformed datagram of %zu", n, (size_t) peer->last_len);
          continue;
        }

      if (!rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL))
        {
          problem ("%s received a datagram that does not decode", peer->id);
          continue;
        }
      handle_message (peer, &msg, n);
      if (peer->fd < 0)
        break;
    }
}

/* TCP input: frames for well-behaved peers, end of stream for all */
static void
tcp_closed_by_server (Peer *peer)
{
  gint64 t = now ();

  switch (peer->role)
    {
    case ROLE_JUNK_TCP:
      stress.stats.junk_closed++;
      peer_close (peer);
      peer->state = STATE_IDLE;
      peer->next = t + jitter (100 * MS);
      break;
    case ROLE_SILENT:
    case ROLE_SLOW:
      {
        gint64 held = t - peer->opened;

        if (peer->role == ROLE_SILENT)
          {
            stress.stats.silent_closed++;
            g_array_append_val (stress.stats.silent_close_time, held);
          }
        else
          stress.stats.slow_closed++;
        peer_close (peer);
        peer->state = STATE_IDLE;
        peer->next = t + jitter (500 * MS);
      }
      break;
    case ROLE_TCP_REQUESTER:
      peer_close (peer);
      if (peer->state == STATE_REQUESTING)
        {
          /* Lost before the answer: connect again and ask again */
          stress.stats.tcp_reconnects++;
          peer->state = STATE_IDLE;
          peer->next = t + 100 * MS;
        }
      break;
    default:
      if (peer->state == STATE_REGISTERED && !peer->leaving)
        {
          stress.stats.registered_closed++;
          problem ("the server closed the connection of registered %s", peer->id);
        }
      peer_close (peer);
      if (peer->role == ROLE_TCP_LISTENER)
        {
          if (!peer->leaving)
            {
              /* Register again */
              peer->state = STATE_IDLE;
              peer->next = t + 200 * MS;
            }
        }
      else
        {
          peer->state = STATE_IDLE;
          peer->next = t + 200 * MS;
        }
      break;
    }
}

static void
read_stream (Peer *peer)
{
  for (;;)
    {
      gssize n;
      gsize offset = 0;

      if (peer->fd < 0)
        return;
      n = recv (peer->fd, peer->in + peer->in_len, sizeof peer->in - peer->in_len, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
      if (n <= 0)
        {
          tcp_closed_by_server (peer);
          return;
        }
      peer->in_len += n;

      if (peer->role >= ROLE_JUNK_UDP)
        {
          /* Abuse gets no answer */
          problem ("the server answered %zd bytes to a bad or silent connection", n);
          stress.stats.junk_replies++;
          peer->in_len = 0;
          continue;
        }

      for (;;)
        {
          g_autoptr(GError) error = NULL;
          gssize payload = rndz_frame_peek (peer->in + offset, peer->in_len - offset,
                                            RNDZ_MESSAGE_DEFAULT_MAX_SIZE, &error);
          RndzMessage msg;

          if (payload == 0)
            break;
          if (payload < 0)
            {
              problem ("the server sent a bad frame to %s: %s", peer->id, error->message);
              peer->in_len = 0;
              return;
            }
          if (!rndz_message_decode (&msg, (const char *) peer->in + offset + 2, payload,
                                    RNDZ_MESSAGE_DEFAULT_MAX_SIZE, &error))
            problem ("the server sent %s a frame that does not decode: %s", peer->id, error->message);
          else
            handle_message (peer, &msg, payload);
          if (peer->fd < 0)
            return;
          offset += 2 + payload;
        }
      memmove (peer->in, peer->in + offset, peer->in_len - offset);
      peer->in_len -= offset;
    }
}

/* Abuse */

static gsize
junk_datagram (guint8 *buf,
               gsize   size)
{
  GRand *r = stress.rand;
  RndzMessage msg;
  char valid[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, g_rand_int (r));
  g_strlcpy (msg.id, "junk", sizeof msg.id);
  msg.pad_to = rndz_message_max_reply_size (&msg);
  len = rndz_message_encode (&msg, valid, sizeof valid);

  switch (g_rand_int_range (r, 0, 9))
    {
    case 0:   /* random bytes */
      len = g_rand_int_range (r, 1, 300);
      for (gsize i = 0; i < len; i++)
        buf[i] = g_rand_int_range (r, 0, 256);
      return len;
    case 1:   /* a valid ping cut short */
      len = g_rand_int_range (r, 1, len);
      memcpy (buf, valid, len);
      return len;
    case 2:   /* larger than the limit */
      len = g_rand_int_range (r, RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1, size);
      memset (buf, ' ', len);
      memcpy (buf, valid, strlen (valid) - 1);
      buf[len - 1] = '}';
      return len;
    case 3:   /* nested too deeply */
      {
        GString *s = g_string_new ("{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\",\"x\":");
        guint depth = g_rand_int_range (r, 8, 400);

        for (guint i = 0; i < depth; i++)
          g_string_append_c (s, g_rand_boolean (r) ? '[' : '{');
        len = MIN (s->len, size);
        memcpy (buf, s->str, len);
        g_string_free (s, TRUE);
        return len;
      }
    case 4:   /* not UTF-8 */
      len = g_snprintf ((char *) buf, size,
                        "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\xff\xc0\xaf\",\"pad\":\"%s\"}",
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
      return len;
    case 5:   /* a nul */
      len = g_snprintf ((char *) buf, size,
                        "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\\u0000b\",\"pad\":\"%s\"}",
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
      return len;
    case 6:   /* valid, but a pong would be larger: no answer */
      len = g_snprintf ((char *) buf, size, "{\"v\":1,\"type\":\"ping\",\"tid\":%u,\"id\":\"j\"}",
                        g_rand_int_range (r, 0, 1000));
      return len;
    case 7:   /* wrong field types, version 0 */
      {
        static const char * const bad[] = {
          "{\"v\":1,\"type\":\"ping\",\"tid\":\"1\",\"id\":\"a\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
          "{\"v\":0,\"type\":\"ping\",\"tid\":1,\"id\":\"a\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
          "{\"v\":1,\"type\":\"ping\",\"tid\":-1,\"id\":\"a\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
          "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
          "{\"v\":1,\"type\":\"hello\",\"tid\":1,\"id\":\"a\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
          "[1,2,3]", "\"ping\"", "{}", "{\"v\":1}", "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\"} x",
        };
        const char *text = bad[g_rand_int_range (r, 0, G_N_ELEMENTS (bad))];

        len = strlen (text);
        memcpy (buf, text, len);
        return len;
      }
    default:  /* messages only a server sends */
      len = g_snprintf ((char *) buf, size,
                        "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"a\",\"addr\":\"127.0.0.1:9\","
                        "\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
      return len;
    }
}

static gsize
junk_frame (guint8 *buf,
            gsize   size)
{
  GRand *r = stress.rand;
  gsize len;

  switch (g_rand_int_range (r, 0, 6))
    {
    case 0:   /* announces more than the limit */
      buf[0] = 0xff;
      buf[1] = 0xff;
      memset (buf + 2, '{', 64);
      return 66;
    case 1:   /* empty */
      buf[0] = buf[1] = 0;
      return 2;
    case 2:   /* garbage */
      len = g_rand_int_range (r, 1, 200);
      for (gsize i = 0; i < len; i++)
        buf[2 + i] = g_rand_int_range (r, 0, 256);
      /* JSON never starts with an 'x' */
      buf[2] = 'x';
      break;
    case 3:   /* nested too deeply */
      len = g_rand_int_range (r, 9, 600);
      buf[2] = '{';
      buf[3] = '"';
      buf[4] = 'a';
      buf[5] = '"';
      buf[6] = ':';
      for (gsize i = 7; i < len + 2; i++)
        buf[i] = '[';
      len = MAX (len, 7);
      break;
    case 4:   /* not UTF-8 */
      len = g_snprintf ((char *) buf + 2, size - 2,
                        "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"\xfe\xff\"}");
      break;
    default:  /* an unknown type, skipped, then a bad one */
      {
        const char *unknown = "{\"v\":1,\"type\":\"hello\",\"tid\":1}";
        gsize n = strlen (unknown);

        buf[0] = 0;
        buf[1] = n;
        memcpy (buf + 2, unknown, n);
        buf[2 + n] = 0;
        buf[3 + n] = 3;
        memcpy (buf + 4 + n, "}}}", 3);
        return n + 7;
      }
    }

  buf[0] = len >> 8;
  buf[1] = len & 0xff;
  return len + 2;
}

/* Timers */

static void
on_timer (Peer *peer)
{
  gint64 t = now ();

  peer->next = 0;

  switch (peer->role)
    {
    case ROLE_UDP_PINGER:
    case ROLE_UDP_LISTENER:
    case ROLE_TCP_PINGER:
    case ROLE_TCP_LISTENER:
      {
        gboolean tcp = peer->role == ROLE_TCP_PINGER || peer->role == ROLE_TCP_LISTENER;

        if (peer->leaving)
          {
            pair_restart (peer);
            return;
          }
        if (peer->state == STATE_IDLE)
          {
            if (stress.draining)
              return;
            if (tcp)
              tcp_open (peer);
            else if (udp_open (peer))
              start_registering (peer);
            return;
          }
        if (peer->state == STATE_CONNECTING)
          {
            if (t - peer->opened > OPERATION_TIMEOUT)
              {
                stress.stats.registration_failures++;
                problem ("%s could not connect within 10 s", peer->id);
                peer_close (peer);
                peer->state = STATE_IDLE;
                peer->next = t + G_USEC_PER_SEC;
              }
            else
              peer->next = t + G_USEC_PER_SEC;
            return;
          }
        if (peer->state == STATE_REGISTERING)
          {
            if (t - peer->started > OPERATION_TIMEOUT)
              {
                stress.stats.registration_failures++;
                problem ("%s got no pong within 10 s", peer->id);
                peer->state = STATE_IDLE;
                if (tcp)
                  peer_close (peer);
                peer->next = t + G_USEC_PER_SEC;
                return;
              }
            if (!tcp)
              {
                /* Retransmit, same tid, doubling up to the keepalive */
                stress.stats.ping_retries++;
                send_message (peer, RNDZ_MESSAGE_PING, peer->tid, peer->id, NULL);
              }
            peer->retry = MIN (peer->retry * 2, 2 * G_USEC_PER_SEC);
            peer->next = t + peer->retry;
            return;
          }
        if (peer->state == STATE_REGISTERED)
          {
            /* A pinger's life ends; a listener lives as long as its pair */
            if ((peer->role == ROLE_UDP_PINGER || peer->role == ROLE_TCP_PINGER) &&
                peer->lifetime_end != 0 && t >= peer->lifetime_end)
                {
                  stress.stats.byes++;
                  send_message (peer, RNDZ_MESSAGE_BYE, new_tid (), peer->id, NULL);
                  if (tcp)
                    peer_close (peer);
                  new_id (peer);
                  peer->lifetime_end = 0;
                  peer->state = STATE_IDLE;
                  peer->next = stress.draining ? 0 : t + jitter (G_USEC_PER_SEC);
                  return;
                }
            if (peer->ping_pending)
              {
                /* The last keepalive got no answer within PONG_WAIT */
                stress.stats.keepalive_lost++;
              }
            peer->tid = new_tid ();
            peer->ping_pending = TRUE;
            stress.stats.pings++;
            send_message (peer, RNDZ_MESSAGE_PING, peer->tid, peer->id, NULL);
            peer->next = t + KEEPALIVE + jitter (G_USEC_PER_SEC);
            return;
          }
      }
      return;

    case ROLE_UDP_REQUESTER:
    case ROLE_TCP_REQUESTER:
      if (peer->state == STATE_WAITING)
        {
          if (!peer->partner_ready || stress.draining)
            return;
          if (peer->role == ROLE_UDP_REQUESTER)
            {
              if (udp_open (peer))
                start_requesting (peer);
            }
          else
            {
              peer->started = t;
              peer->state = STATE_IDLE;
              peer->tid = new_tid ();
              tcp_open (peer);
              peer->next = t + OPERATION_TIMEOUT;
            }
          return;
        }
      if (peer->state == STATE_IDLE && peer->role == ROLE_TCP_REQUESTER && peer->partner_ready &&
          peer->tid != 0 && peer->fd < 0)
        {
          /* Reconnecting after the server closed the connection */
          if (t - peer->started > OPERATION_TIMEOUT)
            {
              problem ("TCP %s got no redirect within 10 s", peer->id);
              rendezvous_done (peer, FALSE);
              return;
            }
          tcp_open (peer);
          peer->next = peer->started + OPERATION_TIMEOUT;
          return;
        }
      if ((peer->state == STATE_REQUESTING || peer->state == STATE_CONNECTING) &&
          t - peer->started > OPERATION_TIMEOUT)
        {
          problem ("%s %s got no redirect within 10 s", peer->role == ROLE_TCP_REQUESTER ? "TCP" : "UDP",
                   peer->id);
          rendezvous_done (peer, FALSE);
          return;
        }
      if (peer->state == STATE_REQUESTING && peer->role == ROLE_UDP_REQUESTER)
        {
          stress.stats.isync_retries++;
          send_message (peer, RNDZ_MESSAGE_ISYNC, peer->tid, peer->id, peer->partner->id);
          peer->retry = MIN (peer->retry * 2, G_USEC_PER_SEC);
          peer->next = t + peer->retry;
          return;
        }
      if (peer->state == STATE_REQUESTING || peer->state == STATE_CONNECTING)
        peer->next = peer->started + OPERATION_TIMEOUT + MS;
      return;

    case ROLE_GHOST:
      /* A cycle starts only if its second question fits in the run */
      if (peer->state == STATE_IDLE && !stress.draining &&
          t + (gint64) (stress.peer_timeout + 3) * G_USEC_PER_SEC <= stress.end &&
          udp_open (peer))
        start_registering (peer);
      else if (peer->state == STATE_REGISTERING)
        {
          if (t - peer->started > OPERATION_TIMEOUT)
            {
              stress.stats.registration_failures++;
              problem ("%s got no pong within 10 s", peer->id);
              peer->state = STATE_IDLE;
              peer->next = t + G_USEC_PER_SEC;
              return;
            }
          stress.stats.ping_retries++;
          send_message (peer, RNDZ_MESSAGE_PING, peer->tid, peer->id, NULL);
          peer->retry = MIN (peer->retry * 2, 2 * G_USEC_PER_SEC);
          peer->next = t + peer->retry;
        }
      return;

    case ROLE_GHOST_REQUESTER:
      if (peer->state == STATE_WAITING)
        {
          /* The probe is due even while draining: it is in flight */
          if (peer->partner_ready && (peer->probing || !stress.draining) && udp_open (peer))
            ghost_ask (peer);
          return;
        }
      if (peer->state == STATE_REQUESTING)
        {
          if (t - peer->started > (gint64) (stress.forward_timeout + 5) * G_USEC_PER_SEC)
            {
              ghost_failed (peer, peer->probing ? "no answer to the second isync" :
                            "no peer-no-answer after the forward timeout");
              return;
            }
          stress.stats.isync_retries++;
          send_message (peer, RNDZ_MESSAGE_ISYNC, peer->tid, peer->id, peer->partner->id);
          peer->retry = MIN (peer->retry * 2, G_USEC_PER_SEC);
          peer->next = t + peer->retry;
        }
      return;

    case ROLE_JUNK_TCP:
    case ROLE_SILENT:
    case ROLE_SLOW:
      if (peer->state == STATE_IDLE)
        {
          if (!stress.draining)
            tcp_open (peer);
          return;
        }
      if (peer->state == STATE_CONNECTING)
        {
          peer->next = t + G_USEC_PER_SEC;
          return;
        }
      if (peer->role == ROLE_SLOW && peer->slow_pos < peer->slow_len)
        {
          /* One byte a second */
          send_stream (peer, peer->slow_frame + peer->slow_pos++, 1);
          stress.stats.slow_bytes++;
        }
      {
        /* Bad frames are closed at once; silent and slow connections at
         * the register timeout */
        gint64 limit = peer->role == ROLE_JUNK_TCP ? 2 * G_USEC_PER_SEC :
          (stress.register_timeout + 3) * G_USEC_PER_SEC;

        if (t - peer->opened > limit)
          {
            if (peer->role == ROLE_JUNK_TCP)
              {
                stress.stats.junk_not_closed++;
                problem ("a bad frame did not close its connection within 2 s");
              }
            else
              {
                (*(peer->role == ROLE_SILENT ? &stress.stats.silent_late : &stress.stats.slow_late))++;
                problem ("a %s connection was still open after %u s", peer->role == ROLE_SILENT ?
                         "silent" : "slow", stress.register_timeout + 3);
              }
            peer_close (peer);
            peer->state = STATE_IDLE;
            peer->next = t + G_USEC_PER_SEC;
            return;
          }
      }
      peer->next = t + (peer->role == ROLE_SLOW ? G_USEC_PER_SEC : 250 * MS);
      return;

    case ROLE_JUNK_UDP:
    default:
      return;
    }
}

/* A TCP connect finished */
static void
on_connected (Peer *peer)
{
  int error = 0;
  socklen_t len = sizeof error;

  getsockopt (peer->fd, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0)
    {
      problem ("%s: connect: %s", peer->role < ROLE_JUNK_UDP ? peer->id : "abuse", g_strerror (error));
      peer_close (peer);
      peer->state = STATE_IDLE;
      peer->next = now () + 500 * MS;
      if (peer->role < ROLE_JUNK_UDP)
        stress.stats.tcp_reconnects++;
      return;
    }

  watch (peer, EPOLLIN);
  peer->opened = now ();

  switch (peer->role)
    {
    case ROLE_TCP_PINGER:
    case ROLE_TCP_LISTENER:
      start_registering (peer);
      break;
    case ROLE_TCP_REQUESTER:
      peer->state = STATE_REQUESTING;
      stress.stats.isyncs++;
      send_message (peer, RNDZ_MESSAGE_ISYNC, peer->tid, peer->id, peer->partner->id);
      peer->next = peer->started + OPERATION_TIMEOUT + MS;
      break;
    case ROLE_JUNK_TCP:
      {
        guint8 buf[1024];
        gsize n = junk_frame (buf, sizeof buf);

        peer->state = STATE_HOLDING;
        stress.stats.junk_frames++;
        send_stream (peer, buf, n);
        peer->next = now () + 250 * MS;
      }
      break;
    case ROLE_SILENT:
      stress.stats.silent_opened++;
      peer->state = STATE_HOLDING;
      peer->next = now () + 250 * MS;
      break;
    case ROLE_SLOW:
      {
        RndzMessage msg;

        stress.stats.slow_opened++;
        rndz_message_init (&msg, RNDZ_MESSAGE_PING, 1);
        g_snprintf (msg.id, sizeof msg.id, "slow-%u", peer->slot);
        peer->slow_len = rndz_message_encode_frame (&msg, (char *) peer->slow_frame, sizeof peer->slow_frame);
        peer->slow_pos = 0;
        peer->state = STATE_HOLDING;
        peer->next = now ();
      }
      break;
    default:
      break;
    }
}

static void
on_event (Peer     *peer,
          guint32   events)
{
  if (peer->fd < 0)
    return;

  if (peer->state == STATE_CONNECTING)
    {
      if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        on_connected (peer);
      return;
    }

  if (is_udp (peer))
    read_datagrams (peer);
  else
    read_stream (peer);
}

/* The server */

static void
child_setup (gpointer user_data)
{
  /* The server goes with us, whatever happens to us */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static gboolean
server_start (GError **error)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) envp = g_get_environ ();
  g_autofree char *max_conns = NULL;
  g_autofree char *reg_timeout = NULL;
  g_autofree char *peer_timeout = NULL;
  g_autofree char *forward_timeout = NULL;
  g_autofree char *asan_options = NULL;
  const char *asan = g_environ_getenv (envp, "ASAN_OPTIONS");
  GString *line = g_string_new (NULL);
  int out_fd = -1, err_fd;
  char *colon;
  char c;

  err_fd = g_file_open_tmp ("rndz-stress-server-XXXXXX.log", &stress.stderr_path, error);
  if (err_fd < 0)
    return FALSE;

  if (stress.wrapper != NULL)
    {
      g_auto(GStrv) words = g_strsplit (stress.wrapper, " ", -1);

      for (guint i = 0; words[i] != NULL; i++)
        if (words[i][0] != '\0')
          g_ptr_array_add (argv, g_strdup (words[i]));
    }
  max_conns = g_strdup_printf ("%u", stress.n_peers * 2 + 1024);
  reg_timeout = g_strdup_printf ("%u", stress.register_timeout);
  peer_timeout = g_strdup_printf ("%u", stress.peer_timeout);
  forward_timeout = g_strdup_printf ("%u", stress.forward_timeout);
  g_ptr_array_add (argv, g_strdup (stress.server_path));
  g_ptr_array_add (argv, g_strdup ("server"));
  g_ptr_array_add (argv, g_strdup ("--listen-addr"));
  g_ptr_array_add (argv, g_strdup ("127.0.0.1:0"));
  g_ptr_array_add (argv, g_strdup ("--max-connections"));
  g_ptr_array_add (argv, g_strdup (max_conns));
  g_ptr_array_add (argv, g_strdup ("--register-timeout"));
  g_ptr_array_add (argv, g_strdup (reg_timeout));
  g_ptr_array_add (argv, g_strdup ("--peer-timeout"));
  g_ptr_array_add (argv, g_strdup (peer_timeout));
  g_ptr_array_add (argv, g_strdup ("--forward-timeout"));
  g_ptr_array_add (argv, g_strdup (forward_timeout));
  g_ptr_array_add (argv, NULL);

  envp = g_environ_setenv (envp, "LC_ALL", "C", TRUE);
  envp = g_environ_setenv (envp, "LANGUAGE", "C", TRUE);
  envp = g_environ_unsetenv (envp, "G_MESSAGES_DEBUG");
  /* With AddressSanitizer: the leak check at exit, and a report we read */
  asan_options = g_strdup_printf ("%s%sdetect_leaks=1:abort_on_error=0", asan ? asan : "", asan ? ":" : "");
  envp = g_environ_setenv (envp, "ASAN_OPTIONS", asan_options, TRUE);
  envp = g_environ_setenv (envp, "UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1", TRUE);

  /* Reaped here, not by GLib: its exit status is a verdict */
  if (!g_spawn_async_with_pipes_and_fds (NULL, (const char * const *) argv->pdata,
                                         (const char * const *) envp,
                                         G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL | G_SPAWN_SEARCH_PATH,
                                         child_setup, NULL, -1, -1, err_fd, NULL, NULL, 0,
                                         &stress.pid, NULL, &out_fd, NULL, error))
    {
      close (err_fd);
      return FALSE;
    }
  close (err_fd);

  /* "Listening on 127.0.0.1:PORT" */
  alarm (60);
  while (read (out_fd, &c, 1) == 1 && c != '\n')
    g_string_append_c (line, c);
  alarm (0);
  /* The server prints nothing more; a closed pipe does not hurt it */
  close (out_fd);

  colon = strrchr (line->str, ':');
  if (colon == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "the server printed no address: “%s”",
                   line->str);
      g_string_free (line, TRUE);
      return FALSE;
    }

  stress.server_addr.sin_family = AF_INET;
  stress.server_addr.sin_port = htons (atoi (colon + 1));
  inet_pton (AF_INET, "127.0.0.1", &stress.server_addr.sin_addr);
  g_string_free (line, TRUE);
  return TRUE;
}

static gboolean
server_alive (void)
{
  int status;

  if (stress.server_died)
    return FALSE;
  if (waitpid (stress.pid, &status, WNOHANG) == stress.pid)
    {
      stress.server_died = TRUE;
      stress.server_status = status;
      return FALSE;
    }
  return TRUE;
}

/* A line of /proc/PID/status, in kB */
static guint64
proc_status_kb (GPid        pid,
                const char *field)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", pid);
  g_autofree char *contents = NULL;
  const char *line;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return 0;
  line = strstr (contents, field);
  if (line == NULL)
    return 0;
  return g_ascii_strtoull (line + strlen (field) + 1, NULL, 10);
}

/* utime + stime, in seconds */
static double
proc_cpu_seconds (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *contents = NULL;
  g_auto(GStrv) fields = NULL;
  const char *end;

  if (!g_file_get_contents (path, &contents, NULL, NULL) ||
      (end = strrchr (contents, ')')) == NULL)
    return 0;
  /* After "pid (comm)": state is field 3, utime 14, stime 15 */
  fields = g_strsplit (end + 2, " ", -1);
  if (g_strv_length (fields) < 13)
    return 0;
  return (g_ascii_strtoull (fields[11], NULL, 10) + g_ascii_strtoull (fields[12], NULL, 10)) /
         (double) sysconf (_SC_CLK_TCK);
}

/* SIGTERM, then the exit status; SIGKILL after 30 s */
static int
server_stop (void)
{
  gint64 deadline;
  int status = 0;

  if (stress.server_died)
    return stress.server_status;

  kill (stress.pid, SIGTERM);
  deadline = now () + 30 * G_USEC_PER_SEC;
  while (now () < deadline)
    {
      if (waitpid (stress.pid, &status, WNOHANG) == stress.pid)
        return status;
      g_usleep (20 * MS);
    }
  kill (stress.pid, SIGKILL);
  waitpid (stress.pid, &status, 0);
  problem ("the server did not exit within 30 s of SIGTERM");
  return -1;
}

/* Setting up the peers */

static Peer *
peer_new (Role  role,
          guint net,
          guint index)
{
  Peer *peer = g_new0 (Peer, 1);

  peer->role = role;
  peer->fd = -1;
  peer->slot = stress.peers->len;
  peer->local = source_address (net, index);
  g_ptr_array_add (stress.peers, peer);
  return peer;
}

static void
create_peers (void)
{
  guint n = stress.n_peers;
  guint udp_pingers = n * 4 / 10, tcp_pingers = n / 10;
  guint udp_pairs = n * 3 / 20, tcp_pairs = n - udp_pingers - tcp_pingers - 2 * (n * 3 / 20);
  guint index = 0;
  gint64 t = now ();

  tcp_pairs /= 2;

  for (guint i = 0; i < udp_pingers; i++)
    peer_new (ROLE_UDP_PINGER, NET_PEERS, index++);
  for (guint i = 0; i < tcp_pingers; i++)
    peer_new (ROLE_TCP_PINGER, NET_PEERS, index++);
  for (guint i = 0; i < udp_pairs + tcp_pairs; i++)
    {
      gboolean tcp = i >= udp_pairs;
      Peer *listener = peer_new (tcp ? ROLE_TCP_LISTENER : ROLE_UDP_LISTENER, NET_PEERS, index++);
      Peer *requester = peer_new (tcp ? ROLE_TCP_REQUESTER : ROLE_UDP_REQUESTER, NET_PEERS, index++);

      listener->partner = requester;
      requester->partner = listener;
      requester->state = STATE_WAITING;
    }

  /* Silent listeners: one pair per 100 peers, 5 at least */
  for (guint i = 0; i < MAX (5, n / 100); i++)
    {
      Peer *ghost = peer_new (ROLE_GHOST, NET_PEERS, index++);
      Peer *requester = peer_new (ROLE_GHOST_REQUESTER, NET_PEERS, index++);

      ghost->partner = requester;
      requester->partner = ghost;
      requester->state = STATE_WAITING;
    }

  /* Abuse, a little of each whatever the number of peers */
  for (guint i = 0; i < 64; i++)
    g_ptr_array_add (stress.junk_udp, peer_new (ROLE_JUNK_UDP, NET_JUNK_UDP, i));
  for (guint i = 0; i < 16; i++)
    peer_new (ROLE_JUNK_TCP, NET_JUNK_TCP, i);
  /* Four to an address: under the 32 a host may hold unregistered */
  for (guint i = 0; i < 64; i++)
    peer_new (ROLE_SILENT, NET_SILENT, i / 4);
  for (guint i = 0; i < 32; i++)
    peer_new (ROLE_SLOW, NET_SLOW, i);

  /* Everyone starts within the first second */
  for (guint i = 0; i < stress.peers->len; i++)
    {
      Peer *peer = g_ptr_array_index (stress.peers, i);

      if (peer->role <= ROLE_GHOST_REQUESTER)
        new_id (peer);
      if (peer->role == ROLE_JUNK_UDP)
        udp_open (peer);
      else if (!is_requester (peer) && peer->role != ROLE_GHOST_REQUESTER)
        peer->next = t + jitter (G_USEC_PER_SEC);
    }
}

static void
send_junk (gint64 elapsed_us)
{
  /* junk_rate datagrams a second, spread over the junk sockets */
  static gint64 sent_until = 0;
  guint64 due = stress.junk_rate * (elapsed_us / MS) / 1000;

  while ((guint64) sent_until < due)
    {
      Peer *peer = g_ptr_array_index (stress.junk_udp, stress.junk_next++ % stress.junk_udp->len);
      guint8 buf[1600];
      gsize len = junk_datagram (buf, sizeof buf);

      if (peer->role != ROLE_JUNK_UDP || peer->fd < 0)
        break;
      stress.stats.junk_datagrams++;
      peer->last_len = len;
      send_datagram (peer, buf, len);
      sent_until++;
    }
}

/* Reporting */

static int
cmp_gint64 (gconstpointer a,
            gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static double
percentile_ms (GArray *values,
               double  p)
{
  if (values->len == 0)
    return 0;
  g_array_sort (values, cmp_gint64);
  return g_array_index (values, gint64, MIN (values->len - 1, (guint) (values->len * p))) / 1000.0;
}

static guint tap_count;
static gboolean tap_failed;

static void
tap (gboolean    ok,
     const char *format,
     ...) G_GNUC_PRINTF (2, 3);

static void
tap (gboolean    ok,
     const char *format,
     ...)
{
  va_list args;
  g_autofree char *text = NULL;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_print ("%sok %u - %s\n", ok ? "" : "not ", ++tap_count, text);
  if (!ok)
    tap_failed = TRUE;
}

/* The sanitizer reports in the server's standard error */
static gboolean
server_report_clean (void)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  gboolean clean;

  if (!g_file_get_contents (stress.stderr_path, &contents, NULL, NULL))
    return TRUE;
  /* AddressSanitizer, LeakSanitizer, UBSan; valgrind's summary when
   * it counts anything but zero */
  clean = strstr (contents, "ERROR: AddressSanitizer") == NULL &&
          strstr (contents, "ERROR: LeakSanitizer") == NULL &&
          strstr (contents, "runtime error:") == NULL &&
          !g_regex_match_simple ("definitely lost: [1-9]", contents, 0, 0) &&
          !g_regex_match_simple ("ERROR SUMMARY: [1-9]", contents, 0, 0);

  if (!clean)
    {
      lines = g_strsplit (contents, "\n", -1);
      for (guint i = 0; lines[i] != NULL && i < 80; i++)
        g_print ("# server: %s\n", lines[i]);
    }
  return clean;
}

static gboolean
parse_args (int    *argc,
            char ***argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  const char *seconds = g_getenv ("RNDZ_STRESS_SECONDS");
  int duration = seconds != NULL ? atoi (seconds) : 20, peers = 1000, junk_rate = 500, register_timeout = 5, seed = 0;
  int peer_timeout = 15, forward_timeout = 5;
  const GOptionEntry entries[] = {
    { "duration", 'd', 0, G_OPTION_ARG_INT, &duration, "Seconds of load (default $RNDZ_STRESS_SECONDS, or 20)", "SECONDS" },
    { "peers", 'n', 0, G_OPTION_ARG_INT, &peers, "Simulated well-behaved peers (default 1000)", "N" },
    { "server", 's', 0, G_OPTION_ARG_FILENAME, &stress.server_path,
      "The rndz program (default: $RNDZ_TOOL)", "PATH" },
    { "wrapper", 'w', 0, G_OPTION_ARG_STRING, &stress.wrapper,
      "Run the server under this command, e.g. \"valgrind --leak-check=full\"", "COMMAND" },
    { "junk-rate", 0, 0, G_OPTION_ARG_INT, &junk_rate, "Malformed datagrams a second (default 500)", "N" },
    { "register-timeout", 0, 0, G_OPTION_ARG_INT, &register_timeout,
      "The server's register timeout, in seconds (default 5)", "SECONDS" },
    { "peer-timeout", 0, 0, G_OPTION_ARG_INT, &peer_timeout,
      "The server's peer timeout, in seconds (default 15; pingers ping every 5 s)", "SECONDS" },
    { "forward-timeout", 0, 0, G_OPTION_ARG_INT, &forward_timeout,
      "The server's forward timeout, in seconds (default 5)", "SECONDS" },
    { "seed", 0, 0, G_OPTION_ARG_INT, &seed, "Random seed (default: the time)", "N" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &stress.verbose, "Print every problem as it happens", NULL },
    { NULL }
  };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, "Load and abuse a rendezvous server, then report (TAP).");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return FALSE;
    }
  if (duration < 1 || duration > 24 * 3600 || peers < 10 || peers > 200000 ||
      junk_rate < 0 || register_timeout < 1 || peer_timeout < 8 || forward_timeout < 1 ||
      forward_timeout > 5)
    {
      g_printerr ("%s: an option is out of range\n", g_get_prgname ());
      return FALSE;
    }
  if (stress.server_path == NULL)
    stress.server_path = g_strdup (g_getenv ("RNDZ_TOOL"));
  if (stress.server_path == NULL)
    {
      g_printerr ("%s: give the rndz program with --server or RNDZ_TOOL\n", g_get_prgname ());
      return FALSE;
    }

  stress.duration = duration;
  stress.n_peers = peers;
  stress.junk_rate = junk_rate;
  stress.register_timeout = register_timeout;
  stress.peer_timeout = peer_timeout;
  stress.forward_timeout = forward_timeout;
  stress.seed = seed != 0 ? (guint) seed : (guint) time (NULL);
  return TRUE;
}

static void
raise_fd_limit (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max)
    {
      limit.rlim_cur = limit.rlim_max;
      setrlimit (RLIMIT_NOFILE, &limit);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  struct epoll_event events[256];
  gint64 last_check = 0, last_tick = 0;
  guint64 hwm_kb = 0, rss_peak_kb = 0;
  double cpu = 0, load_seconds;
  int status;
  Stats *s = &stress.stats;
  guint64 served;

  if (!parse_args (&argc, &argv))
    return 2;

  signal (SIGPIPE, SIG_IGN);
  raise_fd_limit ();
  /* Whatever happens, this program ends */
  alarm (stress.duration + 120);

  stress.rand = g_rand_new_with_seed (stress.seed);
  stress.peers = g_ptr_array_new_with_free_func (g_free);
  stress.junk_udp = g_ptr_array_new ();
  s->udp_latency = g_array_new (FALSE, FALSE, sizeof (gint64));
  s->tcp_latency = g_array_new (FALSE, FALSE, sizeof (gint64));
  s->silent_close_time = g_array_new (FALSE, FALSE, sizeof (gint64));
  s->no_answer_time = g_array_new (FALSE, FALSE, sizeof (gint64));
  s->problems = g_ptr_array_new_with_free_func (g_free);

  g_print ("# rndz-stress: %u s, %u peers, %u malformed datagrams/s, seed %u, server %s%s%s\n",
           stress.duration, stress.n_peers, stress.junk_rate, stress.seed, stress.server_path,
           stress.wrapper ? " under " : "", stress.wrapper ? stress.wrapper : "");

  if (!server_start (&error))
    {
      g_print ("1..1\nnot ok 1 - the server started: %s\n", error->message);
      return 1;
    }

  stress.epfd = epoll_create1 (EPOLL_CLOEXEC);
  create_peers ();
  stress.start = now ();
  stress.end = stress.start + stress.duration * G_USEC_PER_SEC;

  for (;;)
    {
      gint64 t = now ();
      int n;

      if (!stress.draining && t >= stress.end)
        {
          stress.draining = TRUE;
          /* A ghost's requester may still have its probe to make */
          stress.drain_end = t + MAX (DRAIN_TIME, (gint64) (stress.peer_timeout + 2 +
                                                           stress.forward_timeout + 5) * G_USEC_PER_SEC);
        }
      if (stress.draining)
        {
          /* Done when no well-behaved operation is in flight */
          gboolean busy = FALSE;

          for (guint i = 0; i < stress.peers->len && !busy; i++)
            {
              Peer *peer = g_ptr_array_index (stress.peers, i);

              busy = (is_requester (peer) && (peer->state == STATE_REQUESTING ||
                                              (peer->state == STATE_IDLE && peer->next != 0))) ||
                     (peer->role == ROLE_GHOST_REQUESTER &&
                      (peer->state == STATE_REQUESTING || peer->probing)) ||
                     (peer->role <= ROLE_GHOST && peer->state == STATE_REGISTERING);
            }
          if (!busy || t >= stress.drain_end)
            break;
        }

      n = epoll_wait (stress.epfd, events, G_N_ELEMENTS (events), 2);
      for (int i = 0; i < n; i++)
        on_event (events[i].data.ptr, events[i].events);

      t = now ();
      if (t - last_tick >= TICK)
        {
          last_tick = t;
          for (guint i = 0; i < stress.peers->len; i++)
            {
              Peer *peer = g_ptr_array_index (stress.peers, i);

              if (peer->next != 0 && peer->next <= t)
                on_timer (peer);
            }
          if (!stress.draining)
            send_junk (t - stress.start);
        }

      if (t - last_check >= G_USEC_PER_SEC)
        {
          last_check = t;
          if (!server_alive ())
            break;
          rss_peak_kb = MAX (rss_peak_kb, proc_status_kb (stress.pid, "VmRSS:"));
        }
    }

  load_seconds = (now () - stress.start) / (double) G_USEC_PER_SEC;

  /* Everyone leaves; then the figures, then SIGTERM */
  for (guint i = 0; i < stress.peers->len; i++)
    {
      Peer *peer = g_ptr_array_index (stress.peers, i);

      if (peer->state == STATE_REGISTERED && peer->fd >= 0)
        {
          stress.stats.byes++;
          send_message (peer, RNDZ_MESSAGE_BYE, new_tid (), peer->id, NULL);
        }
    }
  g_usleep (200 * MS);
  for (guint i = 0; i < stress.peers->len; i++)
    peer_close (g_ptr_array_index (stress.peers, i));

  if (server_alive ())
    {
      hwm_kb = proc_status_kb (stress.pid, "VmHWM:");
      cpu = proc_cpu_seconds (stress.pid);
    }
  status = server_stop ();

  /* The verdicts */
  g_print ("1..10\n");
  tap (TRUE, "the server started on port %u (pid %d)", ntohs (stress.server_addr.sin_port), stress.pid);
  tap (!stress.server_died, "the server stayed up for the whole run");
  tap (s->udp_rendezvous > 0 && s->udp_rendezvous_failed == 0 && s->wrong_redirects == 0,
       "UDP rendezvous: %" G_GUINT64_FORMAT " succeeded, %" G_GUINT64_FORMAT " failed",
       s->udp_rendezvous, s->udp_rendezvous_failed);
  tap (s->tcp_rendezvous > 0 && s->tcp_rendezvous_failed == 0,
       "TCP rendezvous: %" G_GUINT64_FORMAT " succeeded, %" G_GUINT64_FORMAT " failed",
       s->tcp_rendezvous, s->tcp_rendezvous_failed);
  tap (s->registrations > 0 && s->registration_failures == 0 && s->registered_closed == 0,
       "registrations: %" G_GUINT64_FORMAT " succeeded, %" G_GUINT64_FORMAT " failed, %"
       G_GUINT64_FORMAT " registered connections closed by the server",
       s->registrations, s->registration_failures, s->registered_closed);
  tap (s->junk_replies == 0 && s->amplified == 0 && s->junk_not_closed == 0,
       "malformed input: %" G_GUINT64_FORMAT " datagrams and %" G_GUINT64_FORMAT " frames, %"
       G_GUINT64_FORMAT " answered, %" G_GUINT64_FORMAT " amplified, %" G_GUINT64_FORMAT
       " bad connections left open",
       s->junk_datagrams, s->junk_frames, s->junk_replies, s->amplified, s->junk_not_closed);
  tap (s->silent_late == 0 && s->slow_late == 0 &&
       (stress.duration <= stress.register_timeout + 1 || s->silent_closed > 0),
       "silent and slow connections: %" G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT " opened, %"
       G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT " closed by the server in time, %"
       G_GUINT64_FORMAT " + %" G_GUINT64_FORMAT " late",
       s->silent_opened, s->slow_opened, s->silent_closed, s->slow_closed, s->silent_late, s->slow_late);
  if (stress.duration < stress.peer_timeout + 4)
    g_print ("ok %u - timeouts # SKIP a run shorter than the peer timeout + 4 s\n", ++tap_count);
  else
    tap (s->ghost_failed == 0 && s->ghost_no_answer > 0 && s->ghost_not_found > 0,
         "timeouts: %" G_GUINT64_FORMAT " requests for silent peers got peer-no-answer, %"
         G_GUINT64_FORMAT " for expired ones peer-not-found, %" G_GUINT64_FORMAT " failed",
         s->ghost_no_answer, s->ghost_not_found, s->ghost_failed);
  tap (status == 0, "the server exited with status 0 after SIGTERM (%s %d)",
       WIFSIGNALED (status) ? "signal" : "status",
       WIFSIGNALED (status) ? WTERMSIG (status) : WEXITSTATUS (status));
  tap (server_report_clean (), "no sanitizer or leak report from the server");

  served = s->pongs + s->redirects + s->fsyncs;
  g_print ("# figures, %.1f s of load and %.1f s to finish:\n", MIN (load_seconds, stress.duration),
           MAX (0, load_seconds - stress.duration));
  g_print ("#   served: %" G_GUINT64_FORMAT " messages (%" G_GUINT64_FORMAT " pongs, %"
           G_GUINT64_FORMAT " fsyncs, %" G_GUINT64_FORMAT " redirects), %.0f a second\n",
           served, s->pongs, s->fsyncs, s->redirects, served / (double) stress.duration);
  g_print ("#   sent: %" G_GUINT64_FORMAT " pings (%" G_GUINT64_FORMAT " retransmitted), %"
           G_GUINT64_FORMAT " isyncs (%" G_GUINT64_FORMAT " retransmitted), %" G_GUINT64_FORMAT
           " rsyncs, %" G_GUINT64_FORMAT " byes; %" G_GUINT64_FORMAT " punches received\n",
           s->pings, s->ping_retries, s->isyncs, s->isync_retries, s->rsyncs, s->byes, s->punches);
  g_print ("#   errors received: %" G_GUINT64_FORMAT "; keepalives unanswered: %" G_GUINT64_FORMAT
           "; TCP reconnects: %" G_GUINT64_FORMAT "\n",
           s->errors_received, s->keepalive_lost, s->tcp_reconnects);
  g_print ("#   rendezvous latency: UDP p50 %.1f ms, p99 %.1f ms, max %.1f ms; TCP p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
           percentile_ms (s->udp_latency, 0.5), percentile_ms (s->udp_latency, 0.99),
           percentile_ms (s->udp_latency, 1.0), percentile_ms (s->tcp_latency, 0.5),
           percentile_ms (s->tcp_latency, 0.99), percentile_ms (s->tcp_latency, 1.0));
  g_print ("#   peer-no-answer after: p50 %.0f ms, max %.0f ms (forward timeout %u s)\n",
           percentile_ms (s->no_answer_time, 0.5), percentile_ms (s->no_answer_time, 1.0),
           stress.forward_timeout);
  g_print ("#   silent connections closed after: p50 %.0f ms, max %.0f ms (register timeout %u s)\n",
           percentile_ms (s->silent_close_time, 0.5), percentile_ms (s->silent_close_time, 1.0),
           stress.register_timeout);
  g_print ("#   server: peak RSS (VmHWM) %" G_GUINT64_FORMAT " kB, VmRSS peak sampled %" G_GUINT64_FORMAT
           " kB, CPU %.1f s\n", hwm_kb, rss_peak_kb, cpu);
  for (guint i = 0; i < s->problems->len; i++)
    g_print ("#   problem: %s\n", (const char *) g_ptr_array_index (s->problems, i));

  g_unlink (stress.stderr_path);
  return tap_failed ? 1 : 0;
}
