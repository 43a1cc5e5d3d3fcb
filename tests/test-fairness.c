/* test-fairness.c: one requester's flood cannot deny a listener to others
 *
 * SPDX-License-Identifier: MIT
 *
 * The forwarding limits (doc/security.md, "Rate limits"): a target's
 * budget is shared, each (target, requester) pair has a small bucket of
 * its own, and a pair that has not asked lately may use the target's
 * budget for newcomers. Most tests feed a server without sockets and
 * read what it would send; one floods a real one over the loopback.
 */

#include <rndz-glib/rndz.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-message-private.h"
#include "rndz-server-private.h"
#include "rndz-test-util.h"

/* The pair bucket of rndz-forward.c */
#define PAIR_RATE 2
#define PAIR_BURST 4

/* The flood of doc/security.md: 10,000 isyncs a second */
#define FLOOD_RATE 10000
#define N_LEGIT 20

typedef RndzTestSent Sent;

typedef struct
{
  RndzServer *server;
  GArray *sent;
} Fixture;

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  user_data)
{
  fixture->server = rndz_server_new ();
  fixture->sent = rndz_test_capture_sent (fixture->server);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_clear_object (&fixture->server);
  g_array_unref (fixture->sent);
}

static void
ping (Fixture    *fixture,
      const char *from,
      const char *id)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (msg.id, id, sizeof msg.id);
  rndz_test_feed (fixture->server, from, &msg, TRUE);
}

static void
isync (Fixture    *fixture,
       const char *from,
       const char *id,
       guint32     tid,
       const char *target)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  rndz_test_feed (fixture->server, from, &msg, TRUE);
}

/* The fsyncs sent for @n new isyncs from @from to alice, forgetting
 * what was sent */
static guint
isyncs_forwarded (Fixture    *fixture,
                  const char *from,
                  guint32     first_tid,
                  guint       n)
{
  guint fsyncs;

  g_array_set_size (fixture->sent, 0);
  for (guint i = 0; i < n; i++)
    isync (fixture, from, "bob", first_tid + i, "alice");
  fsyncs = rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_FSYNC);
  g_array_set_size (fixture->sent, 0);
  return fsyncs;
}

static void
test_pair_exact (Fixture       *fixture,
                 gconstpointer  user_data)
{
  g_test_summary ("One requester gets exactly its pair's burst of 4 requests for one "
                  "target, then 2 a second, never more than 4 at once");

  /* The requester's and the target's own budgets (20 a second, bursts
   * of 40) stay out of the way: 14 requests in all */
  ping (fixture, "192.0.2.10:1000", "alice");

  g_assert_cmpuint (isyncs_forwarded (fixture, "203.0.113.5:7000", 1, PAIR_BURST + 2), ==, PAIR_BURST);

  /* 1.1 s: 2.2 tokens, two requests */
  g_usleep (1100 * 1000);
  g_assert_cmpuint (isyncs_forwarded (fixture, "203.0.113.5:7001", 100, 4), ==, 2);

  /* 2.6 s more: 0.2 + 5.2 tokens, capped at the burst */
  g_usleep (2600 * 1000);
  g_assert_cmpuint (isyncs_forwarded (fixture, "203.0.113.5:7002", 200, PAIR_BURST + 2), ==, PAIR_BURST);

  /* The port is not the requester: another source address is */
  g_assert_cmpuint (isyncs_forwarded (fixture, "203.0.113.6:7000", 300, 1), ==, 1);
}

static gboolean
refused (Fixture    *fixture,
         const char *to)
{
  RndzAddr addr = rndz_test_addr (to);

  for (guint i = 0; i < fixture->sent->len; i++)
    {
      const Sent *sent = &g_array_index (fixture->sent, Sent, i);

      if (sent->msg.type == RNDZ_MESSAGE_ERROR && rndz_addr_equal (&sent->to, &addr))
        return sent->msg.code == RNDZ_WIRE_ERROR_RATE_LIMITED && sent->msg.retry_ms > 0;
    }
  return FALSE;
}

static void
test_newcomer (Fixture       *fixture,
               gconstpointer  user_data)
{
  RndzServerStats stats;
  guint64 rate_limited;
  guint passed = 0;
  gint64 start;

  g_test_summary ("With the target's shared budget drained, a requester that has not "
                  "asked lately gets through once, one that has is refused; the "
                  "newcomers' budget is bounded too");

  /* Target: 1 a second, a burst of 2; newcomers: 10, a burst of 20 */
  rndz_server_set_request_rate (fixture->server, 1);
  ping (fixture, "192.0.2.10:1000", "alice");

  /* Three requesters, four requests each: the first takes the shared
   * budget, the others get their first request through as newcomers */
  g_assert_cmpuint (isyncs_forwarded (fixture, "203.0.113.1:1", 1, 4), ==, 2);
  g_assert_cmpuint (isyncs_forwarded (fixture, "203.0.113.2:1", 1, 4), ==, 1);
  g_assert_cmpuint (isyncs_forwarded (fixture, "203.0.113.3:1", 1, 4), ==, 1);

  /* A newcomer: through; at once again: refused, told to wait until
   * its bucket is full (half a second at 2 a second) */
  g_assert_cmpuint (isyncs_forwarded (fixture, "198.51.100.1:1", 1, 1), ==, 1);
  isync (fixture, "198.51.100.1:1", "bob", 2, "alice");
  g_assert_cmpuint (rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_FSYNC), ==, 0);
  g_assert_true (refused (fixture, "198.51.100.1:1"));
  g_assert_cmpuint (g_array_index (fixture->sent, Sent, 0).msg.retry_ms, >, 400);
  g_array_set_size (fixture->sent, 0);

  /* Another newcomer, through; its bucket full again, it is still not
   * new: a request of its own went through less than 10 s ago (the
   * shared budget has 0.6 tokens) */
  g_assert_cmpuint (isyncs_forwarded (fixture, "198.51.100.3:1", 1, 1), ==, 1);
  g_usleep (600 * 1000);
  rndz_server_get_stats (fixture->server, &stats);
  g_assert_cmpuint (isyncs_forwarded (fixture, "198.51.100.3:2", 2, 1), ==, 0);
  rate_limited = stats.rate_limited;
  rndz_server_get_stats (fixture->server, &stats);
  g_assert_cmpuint (stats.rate_limited, ==, rate_limited + 1);
  g_assert_cmpuint (isyncs_forwarded (fixture, "198.51.100.2:1", 1, 1), ==, 1);

  /* The newcomers' budget: full again (19 left), then 10 a second (and
   * the shared budget, 1 a second) */
  start = g_get_monotonic_time ();
  for (guint i = 0; i < 40; i++)
    {
      g_autofree char *from = g_strdup_printf ("10.1.0.%u:1", i + 1);

      passed += isyncs_forwarded (fixture, from, 1, 1);
    }
  g_assert_cmpuint (passed, >=, 19);
  g_assert_cmpuint (passed, <=, 19 + 1 + 11 * (g_get_monotonic_time () - start) / G_USEC_PER_SEC);
}

/* A flood, simulated: FLOOD_RATE isyncs a second naming alice from
 * @n_flooders addresses, by the clock, for @flood_ms; from
 * @legit_start_ms on, N_LEGIT requesters ask for alice once each, 50 ms
 * apart, and ask again when refused, after the retry they are told, as
 * RndzClient does, until their second is up. Returns how many got an
 * fsync forwarded. */
typedef struct
{
  char from[32];
  RndzAddr addr;
  char id[16];
  gint64 next;         /* µs from the start; 0: done */
  gint64 give_up;
  gboolean forwarded;
} Legit;

/* What the server said: fsyncs to alice, refusals to the legit */
static void
legit_read (Fixture *fixture,
            Legit   *legit,
            gint64   now)
{
  for (guint i = 0; i < fixture->sent->len; i++)
    {
      const Sent *sent = &g_array_index (fixture->sent, Sent, i);

      for (guint l = 0; l < N_LEGIT; l++)
        {
          if (sent->msg.type == RNDZ_MESSAGE_FSYNC && g_str_equal (sent->msg.id, legit[l].id))
            legit[l].forwarded = TRUE;
          else if (sent->msg.type == RNDZ_MESSAGE_ERROR &&
                   rndz_addr_equal (&sent->to, &legit[l].addr) &&
                   now + sent->msg.retry_ms * (gint64) 1000 < legit[l].give_up)
            legit[l].next = now + sent->msg.retry_ms * (gint64) 1000;
        }
    }
  g_array_set_size (fixture->sent, 0);
}

static guint
simulate_flood (Fixture *fixture,
                guint    n_flooders,
                guint    flood_ms,
                guint    legit_start_ms)
{
  Legit legit[N_LEGIT];
  gint64 start = g_get_monotonic_time ();
  guint64 flooded = 0;
  guint successes = 0;
  gint64 now;

  for (guint l = 0; l < N_LEGIT; l++)
    {
      g_snprintf (legit[l].from, sizeof legit[l].from, "198.18.%u.1:5000", l);
      g_snprintf (legit[l].id, sizeof legit[l].id, "legit-%u", l);
      legit[l].next = (legit_start_ms + 50 * l) * (gint64) 1000;
      legit[l].give_up = legit[l].next + G_USEC_PER_SEC;
      legit[l].forwarded = FALSE;
      legit[l].addr = rndz_test_addr (legit[l].from);
    }

  while ((now = g_get_monotonic_time () - start) < flood_ms * (gint64) 1000)
    {
      /* The flood catches up with the clock */
      for (; flooded < (guint64) now * FLOOD_RATE / G_USEC_PER_SEC; flooded++)
        {
          char from[32];
          guint f = flooded % n_flooders;

          g_snprintf (from, sizeof from, "10.%u.%u.%u:%u", f / 62500, f / 250 % 250, f % 250 + 1,
                      1024 + (guint) (flooded % 50000));
          isync (fixture, from, "mallory", (guint32) flooded + 1, "alice");
        }

      for (guint l = 0; l < N_LEGIT; l++)
        if (legit[l].next != 0 && legit[l].next <= now)
          {
            isync (fixture, legit[l].from, legit[l].id, 1000 + l, "alice");
            legit[l].next = 0;
          }

      legit_read (fixture, legit, now);
      g_usleep (500);
    }

  for (guint l = 0; l < N_LEGIT; l++)
    successes += legit[l].forwarded;
  g_test_message ("%u flooders, %" G_GUINT64_FORMAT " isyncs in %u ms: %u of %u requesters forwarded",
                  n_flooders, flooded, flood_ms, successes, N_LEGIT);
  return successes;
}

static void
test_flood_many (Fixture       *fixture,
                 gconstpointer  user_data)
{
  g_test_summary ("Under 10,000 isyncs a second naming alice from 1,000 addresses, at "
                  "least 19 of 20 other requesters still reach her");

  ping (fixture, "192.0.2.10:1000", "alice");
  g_assert_cmpuint (simulate_flood (fixture, 1000, 1600, 300), >=, N_LEGIT - 1);
}

static void
test_flood_one (Fixture       *fixture,
                gconstpointer  user_data)
{
  g_test_summary ("Under 10,000 isyncs a second naming alice from one address, at "
                  "least 19 of 20 other requesters still reach her");

  ping (fixture, "192.0.2.10:1000", "alice");
  g_assert_cmpuint (simulate_flood (fixture, 1, 1600, 300), >=, N_LEGIT - 1);
}

/* No amplification, counting third parties */

#define LONGEST_V6 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

static void
set_longest_cands (RndzMessage *msg,
                   guint        n)
{
  msg->n_cands = n;
  for (guint i = 0; i < n; i++)
    msg->cands[i] = rndz_test_addr ("[" LONGEST_V6 "]:65535");
}

/* An isync of @size bytes (if it can be that small) from a requester
 * whose address is as long as any; returns the bytes the server sent
 * for it, to anyone, after alice answered, or 0 if it was not
 * forwarded */
static gsize
isync_output (Fixture *fixture,
              guint    n,
              gsize    size,
              gsize   *len_out)
{
  g_autofree char *from = g_strdup_printf ("[2001:%04x:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                                           0x1000 + n);
  RndzMessage msg;
  const Sent *fsync;
  guint32 server_tid;
  gsize out = 0;

  g_array_set_size (fixture->sent, 0);
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, G_MAXUINT32 - n);
  g_strlcpy (msg.id, "bob", sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  set_longest_cands (&msg, 1);
  msg.pad_to = size;
  *len_out = rndz_test_feed (fixture->server, from, &msg, FALSE);
  if (fixture->sent->len == 0)
    return 0;

  g_assert_cmpuint (fixture->sent->len, ==, 1);
  fsync = &g_array_index (fixture->sent, Sent, 0);
  g_assert_cmpint (fsync->msg.type, ==, RNDZ_MESSAGE_FSYNC);
  out += fsync->len;
  /* (the array moves as it grows) */
  server_tid = fsync->msg.tid;

  /* The same isync again: its fsync again */
  rndz_test_feed (fixture->server, from, &msg, FALSE);
  g_assert_cmpuint (fixture->sent->len, ==, 2);
  g_assert_cmpuint (g_array_index (fixture->sent, Sent, 1).len, <=, *len_out);

  rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, server_tid);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  g_strlcpy (msg.target, "bob", sizeof msg.target);
  rndz_test_feed (fixture->server, "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535", &msg, FALSE);
  g_assert_cmpuint (fixture->sent->len, ==, 3);
  g_assert_cmpint (g_array_index (fixture->sent, Sent, 2).msg.type, ==, RNDZ_MESSAGE_REDIRECT);
  out += g_array_index (fixture->sent, Sent, 2).len;
  return out;
}

static void
test_isync_pays (Fixture       *fixture,
                 gconstpointer  user_data)
{
  RndzMessage msg;
  gsize size, len, out, smallest = 0;

  g_test_summary ("An isync pays for all it causes: the fsync to the target and the "
                  "redirect back together are no larger than it; an isync too small "
                  "for both, as the old padding made them, is not forwarded");

  rndz_server_set_request_rate (fixture->server, 1000);

  /* alice has the longest address and four of the longest candidates */
  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  set_longest_cands (&msg, RNDZ_MAX_CANDIDATES);
  rndz_test_feed (fixture->server, "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535", &msg, TRUE);

  /* Padded as clients pad: forwarded, with the candidates */
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 1);
  g_strlcpy (msg.id, "bob", sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  set_longest_cands (&msg, 1);
  size = rndz_message_max_reply_size (&msg);
  out = isync_output (fixture, 0, size, &len);
  g_assert_cmpuint (len, ==, size);
  g_assert_cmpuint (out, >, 0);
  g_assert_cmpuint (out, <=, len);
  g_assert_cmpuint (g_array_index (fixture->sent, Sent, 2).msg.n_cands, ==, RNDZ_MAX_CANDIDATES);

  /* Smaller, down to where the server stops forwarding: never more out
   * than in */
  for (guint n = 1; size > 0; n++, size--)
    {
      out = isync_output (fixture, n, size, &len);
      if (out == 0)
        break;
      g_assert_cmpuint (out, <=, len);
      smallest = len;
    }
  g_test_message ("smallest isync forwarded: %" G_GSIZE_FORMAT " bytes; %" G_GSIZE_FORMAT
                  " is not", smallest, len);
  g_assert_cmpuint (len, <, smallest);

  /* The old padding, for the redirect alone (107 + the target id) */
  g_assert_cmpuint (isync_output (fixture, 1000, 112, &len), ==, 0);
  g_assert_cmpuint (isync_output (fixture, 1001, 230, &len), ==, 0);
}

/* The same over the loopback: a real server, a flooding thread sending
 * from 1,000 addresses of 127.1/16 with IP_PKTINFO, 20 requesters bound
 * to addresses of 127.2.0/24, alice answering every fsync */

#define SOCKET_FLOOD_MS 2500

typedef struct
{
  guint16 port;
  guint n_sources;
  guint64 sent;
  gint64 elapsed_us;
} Flood;

static void
flood_send (int          fd,
            guint16      port,
            guint32      source,
            const char  *data,
            gsize        len)
{
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons (port) };
  char control[CMSG_SPACE (sizeof (struct in_pktinfo))] = { 0 };
  struct iovec iov = { (void *) data, len };
  struct msghdr mh = {
    .msg_name = &to, .msg_namelen = sizeof to,
    .msg_iov = &iov, .msg_iovlen = 1,
    .msg_control = control, .msg_controllen = sizeof control,
  };
  struct cmsghdr *cmsg = CMSG_FIRSTHDR (&mh);
  struct in_pktinfo *info;

  to.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  cmsg->cmsg_level = IPPROTO_IP;
  cmsg->cmsg_type = IP_PKTINFO;
  cmsg->cmsg_len = CMSG_LEN (sizeof *info);
  info = (struct in_pktinfo *) CMSG_DATA (cmsg);
  info->ipi_spec_dst.s_addr = source;
  sendmsg (fd, &mh, MSG_DONTWAIT);
}

/* FLOOD_RATE isyncs a second by the clock, for SOCKET_FLOOD_MS */
static gpointer
flood_thread (gpointer data)
{
  Flood *flood = data;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg;
  gsize len;
  gint64 start = g_get_monotonic_time (), now;
  int fd = socket (AF_INET, SOCK_DGRAM, 0), one = 1;

  g_assert_cmpint (fd, >=, 0);
  setsockopt (fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 7);
  g_strlcpy (msg.id, "mallory", sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  msg.pad_to = rndz_message_max_reply_size (&msg);
  len = rndz_message_encode (&msg, buf, sizeof buf);

  while ((now = g_get_monotonic_time () - start) < SOCKET_FLOOD_MS * (gint64) 1000)
    {
      for (; flood->sent < (guint64) now * FLOOD_RATE / G_USEC_PER_SEC; flood->sent++)
        {
          guint f = flood->sent % flood->n_sources;

          flood_send (fd, flood->port, htonl (0x7f010000 | (f / 250) << 8 | (f % 250 + 1)), buf, len);
        }
      g_usleep (500);
    }
  flood->elapsed_us = now;
  close (fd);
  return NULL;
}

typedef struct
{
  GSocket *socket;
  char id[16];
  gint64 next, give_up;
  guint retries;
  gboolean done;
} SocketLegit;

static void
socket_send (GSocket        *socket,
             guint16         port,
             RndzMessage    *msg)
{
  g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  msg->pad_to = rndz_message_max_reply_size (msg);
  len = rndz_message_encode (msg, buf, sizeof buf);
  g_socket_send_to (socket, to, buf, len, NULL, NULL);
}

static gboolean
socket_recv (GSocket     *socket,
             RndzMessage *msg)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
  gssize len = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);

  return len > 0 && rndz_message_decode (msg, buf, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL);
}

/* As rndz-request.c: again after 200, 400, 800 ms, then every second,
 * or when a rate-limited error says */
static void
socket_legit_poll (SocketLegit *legit,
                   guint16      port,
                   gint64       now)
{
  RndzMessage msg;

  while (socket_recv (legit->socket, &msg))
    {
      if (msg.type == RNDZ_MESSAGE_REDIRECT)
        legit->done = TRUE;
      else if (msg.type == RNDZ_MESSAGE_ERROR && msg.code == RNDZ_WIRE_ERROR_RATE_LIMITED)
        legit->next = now + MAX (msg.retry_ms, 1) * (gint64) 1000;
    }
  if (legit->done || legit->next > now || now >= legit->give_up)
    return;

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 4242);
  g_strlcpy (msg.id, legit->id, sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  socket_send (legit->socket, port, &msg);
  legit->next = now + MIN (200 << MIN (legit->retries, 2), 1000) * (gint64) 1000;
  legit->retries++;
}

static void
alice_answer (GSocket *alice,
              guint16  port)
{
  RndzMessage msg, rsync;

  while (socket_recv (alice, &msg))
    if (msg.type == RNDZ_MESSAGE_FSYNC)
      {
        rndz_message_init (&rsync, RNDZ_MESSAGE_RSYNC, msg.tid);
        g_strlcpy (rsync.id, "alice", sizeof rsync.id);
        g_strlcpy (rsync.target, msg.id, sizeof rsync.target);
        socket_send (alice, port, &rsync);
      }
}

static GSocket *
socket_bound (const char *host)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&socket);
}

static void
test_flood_sockets (void)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GSocket) alice = socket_bound ("127.0.0.1");
  SocketLegit legit[N_LEGIT];
  Flood flood = { 0, 1000, 0, 0 };
  GThread *thread;
  RndzMessage msg;
  gint64 start, now;
  guint successes = 0;

  g_test_summary ("Over the loopback, under 10,000 isyncs a second naming alice from "
                  "1,000 addresses, at least 19 of 20 other requesters reach her");

  flood.port = rndz_test_server_listen (server, G_SOCKET_FAMILY_IPV4, 0);
  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  socket_send (alice, flood.port, &msg);
  rndz_test_wait_readable (NULL, alice, RNDZ_TEST_TIMEOUT_MS, "alice's pong");
  g_assert_true (socket_recv (alice, &msg));
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_PONG);

  start = g_get_monotonic_time ();
  for (guint l = 0; l < N_LEGIT; l++)
    {
      g_autofree char *host = g_strdup_printf ("127.2.0.%u", l + 1);

      legit[l].socket = socket_bound (host);
      g_snprintf (legit[l].id, sizeof legit[l].id, "legit-%u", l);
      legit[l].next = start + (500 + 50 * l) * (gint64) 1000;
      legit[l].give_up = legit[l].next + G_USEC_PER_SEC;
      legit[l].retries = 0;
      legit[l].done = FALSE;
    }
  thread = g_thread_new ("flood", flood_thread, &flood);

  /* Until the flood is over: the server, alice and the requesters */
  while ((now = g_get_monotonic_time ()) - start < (SOCKET_FLOOD_MS + 100) * (gint64) 1000)
    {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      alice_answer (alice, flood.port);
      for (guint l = 0; l < N_LEGIT; l++)
        socket_legit_poll (&legit[l], flood.port, now);
      g_usleep (100);
    }
  g_thread_join (thread);

  for (guint l = 0; l < N_LEGIT; l++)
    {
      successes += legit[l].done;
      g_object_unref (legit[l].socket);
    }
  g_test_message ("%" G_GUINT64_FORMAT " isyncs in %" G_GINT64_FORMAT " ms (%.0f a second) "
                  "from %u addresses: %u of %u requesters reached alice", flood.sent,
                  flood.elapsed_us / 1000, flood.sent * 1e6 / MAX (flood.elapsed_us, 1),
                  flood.n_sources, successes, N_LEGIT);
  g_assert_cmpuint (successes, >=, N_LEGIT - 1);
}

/* Registrations per address and network */

/* Whether a ping from @from registering @id got its pong: else it must
 * have got server-full */
static gboolean
registered (Fixture    *fixture,
            const char *from,
            const char *id)
{
  const Sent *reply;

  g_array_set_size (fixture->sent, 0);
  ping (fixture, from, id);
  g_assert_cmpuint (fixture->sent->len, ==, 1);
  reply = &g_array_index (fixture->sent, Sent, 0);
  if (reply->msg.type == RNDZ_MESSAGE_PONG)
    return TRUE;
  g_assert_cmpint (reply->msg.type, ==, RNDZ_MESSAGE_ERROR);
  g_assert_cmpint (reply->msg.code, ==, RNDZ_WIRE_ERROR_SERVER_FULL);
  return FALSE;
}

/* Registers @n new ids "@prefix-N", all from @host or, if it is NULL,
 * each from one address of 10.1/16, from the @first-th (200 a /24) on;
 * returns how many got their pong */
static guint
register_ids (Fixture    *fixture,
              const char *host,
              guint       first,
              const char *prefix,
              guint       n)
{
  guint accepted = 0;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("%s-%u", prefix, i);
      g_autofree char *from = host != NULL ? g_strdup (host) :
        g_strdup_printf ("10.1.%u.%u:1000", (first + i) / 200, (first + i) % 200 + 1);

      accepted += registered (fixture, from, id);
    }
  return accepted;
}

static gboolean
no_peers (gpointer data)
{
  return rndz_server_get_peer_count (data) == 0;
}

static void
test_registry_caps (Fixture       *fixture,
                    gconstpointer  user_data)
{
  g_test_summary ("Ids registered from one address and from one /16 stop at their caps "
                  "(server-full); another network still registers, an id registered "
                  "already is never refused, expiry and moves free the counts");

  g_assert_cmpuint (rndz_server_get_max_peers_per_address (fixture->server), ==, 1000);
  g_assert_cmpuint (rndz_server_get_max_peers_per_network (fixture->server), ==, 10000);
  rndz_server_set_max_peers_per_address (fixture->server, 5);
  rndz_server_set_max_peers_per_network (fixture->server, 20);
  rndz_server_set_peer_timeout (fixture->server, 1000);
  /* Only a listening server keeps time */
  rndz_test_server_listen (fixture->server, G_SOCKET_FAMILY_IPV4, 0);

  /* One address: 5 */
  g_assert_cmpuint (register_ids (fixture, "10.1.0.1:1000", 0, "a", 8), ==, 5);
  /* The port does not make another address */
  g_assert_false (registered (fixture, "10.1.0.1:1001", "a-port"));

  /* One /16, from 100 more addresses: 15 more, 20 in all */
  g_assert_cmpuint (register_ids (fixture, NULL, 200, "b", 100), ==, 15);

  /* What is registered pings again; another network registers */
  g_assert_true (registered (fixture, "10.1.0.1:1000", "a-0"));
  g_assert_true (registered (fixture, "10.2.0.1:1000", "c0"));
  g_assert_true (registered (fixture, "[2001:db8:1:2::1]:1000", "d0"));

  /* A move into the full /16 is refused; within it, to an address with
   * room, it is not */
  g_assert_false (registered (fixture, "10.1.200.1:1000", "c0"));
  g_assert_true (registered (fixture, "10.1.200.1:1000", "a-0"));
  /* 10.1.0.1 has room again, its network has not */
  g_assert_false (registered (fixture, "10.1.0.1:1000", "a-new"));
  /* A move out frees a place */
  g_assert_true (registered (fixture, "10.3.0.1:1000", "a-1"));
  g_assert_true (registered (fixture, "10.1.0.2:1000", "b-after-move"));
  g_assert_false (registered (fixture, "10.1.0.3:1000", "b-over"));

  /* Expiry frees them all: 20 again */
  g_assert_true (rndz_test_run_until (NULL, no_peers, fixture->server, RNDZ_TEST_TIMEOUT_MS));
  g_assert_cmpuint (register_ids (fixture, NULL, 100 * 200, "e", 30), ==, 20);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/fairness/pair/exact", Fixture, NULL, fixture_setup, test_pair_exact, fixture_teardown);
  g_test_add ("/fairness/pair/newcomer", Fixture, NULL, fixture_setup, test_newcomer, fixture_teardown);
  g_test_add ("/fairness/flood/many-sources", Fixture, NULL, fixture_setup, test_flood_many, fixture_teardown);
  g_test_add ("/fairness/flood/one-source", Fixture, NULL, fixture_setup, test_flood_one, fixture_teardown);
  g_test_add_func ("/fairness/flood/sockets", test_flood_sockets);
  g_test_add ("/fairness/registry/caps", Fixture, NULL, fixture_setup, test_registry_caps, fixture_teardown);
  g_test_add ("/fairness/isync/pays-for-all", Fixture, NULL, fixture_setup, test_isync_pays, fixture_teardown);

  return g_test_run ();
}
