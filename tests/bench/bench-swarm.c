/* bench-swarm.c: many UDP peers that keep themselves registered
 *
 * SPDX-License-Identifier: MIT
 */

#define _GNU_SOURCE
#include "bench-swarm.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bench-util.h"
#include "rndz-message-private.h"

#define N_SOCKETS 16
#define PEERS_PER_NETWORK 8000
#define FIRST_NETWORK 16
/* 127.16.0.0/16 to 127.254.0.0/16 */
#define MAX_PEERS ((254 - FIRST_NETWORK + 1) * PEERS_PER_NETWORK)
#define RECV_BATCH 64
/* Pings sent in one step at most, so that answers are read in between */
#define MAX_SENDS_PER_STEP 4096

struct _BenchSwarm
{
  int fds[N_SOCKETS];
  guint n_peers;
  struct sockaddr_in server;
  gint64 keepalive_ns;
  gint64 start_ns;      /* 0 until the first step */
  guint64 sent;         /* pings sent, all peers together: the next one is
                         * peer sent % n_peers */
  guint64 received;
};

/* 127.NET.Y.Z, Z never 0 */
static struct in_addr
peer_address (guint i)
{
  guint net = FIRST_NETWORK + i / PEERS_PER_NETWORK, host = i % PEERS_PER_NETWORK;
  struct in_addr addr;

  addr.s_addr = htonl (127u << 24 | net << 16 | (host / 250) << 8 | (host % 250 + 1));
  return addr;
}

BenchSwarm *
bench_swarm_new (guint     n_peers,
                 guint16   server_port,
                 guint     keepalive_ms,
                 GError  **error)
{
  BenchSwarm *swarm = g_new0 (BenchSwarm, 1);
  struct sockaddr_in any = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_ANY) };

  swarm->n_peers = CLAMP (n_peers, 1, MAX_PEERS);
  swarm->keepalive_ns = MAX (keepalive_ms, 1) * G_GINT64_CONSTANT (1000000);
  swarm->server.sin_family = AF_INET;
  swarm->server.sin_port = htons (server_port);
  swarm->server.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  for (guint i = 0; i < N_SOCKETS; i++)
    swarm->fds[i] = -1;

  /* The wildcard address: the answers go to 127.X.Y.Z */
  for (guint i = 0; i < N_SOCKETS; i++)
    {
      int buf = 4 << 20;

      swarm->fds[i] = socket (AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (swarm->fds[i] < 0 || bind (swarm->fds[i], (struct sockaddr *) &any, sizeof any) < 0)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "Swarm socket: %s",
                       g_strerror (errno));
          bench_swarm_free (swarm);
          return NULL;
        }
      setsockopt (swarm->fds[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }

  return swarm;
}

void
bench_swarm_free (BenchSwarm *swarm)
{
  if (swarm == NULL)
    return;

  for (guint i = 0; i < N_SOCKETS; i++)
    if (swarm->fds[i] >= 0)
      close (swarm->fds[i]);
  g_free (swarm);
}

/* The next ping, from its peer's address; FALSE if the socket is full */
static gboolean
send_ping (BenchSwarm *swarm)
{
  guint i = swarm->sent % swarm->n_peers;
  char data[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  char control[CMSG_SPACE (sizeof (struct in_pktinfo))] = { 0 };
  struct in_pktinfo info = { .ipi_spec_dst = peer_address (i) };
  struct iovec iov = { data, 0 };
  struct msghdr msg = {
    .msg_name = &swarm->server, .msg_namelen = sizeof swarm->server,
    .msg_iov = &iov, .msg_iovlen = 1,
    .msg_control = control, .msg_controllen = sizeof control,
  };
  struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg);
  RndzMessage ping;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, (guint32) (swarm->sent / swarm->n_peers + 1));
  g_snprintf (ping.id, sizeof ping.id, "peer-%07u", i);
  /* As a client pads it: the server answers no datagram with a larger one */
  ping.pad_to = rndz_message_max_reply_size (&ping);
  iov.iov_len = rndz_message_encode (&ping, data, sizeof data);

  cmsg->cmsg_level = IPPROTO_IP;
  cmsg->cmsg_type = IP_PKTINFO;
  cmsg->cmsg_len = CMSG_LEN (sizeof info);
  memcpy (CMSG_DATA (cmsg), &info, sizeof info);

  if (sendmsg (swarm->fds[i % N_SOCKETS], &msg, MSG_DONTWAIT) < 0)
    return FALSE;
  swarm->sent++;
  return TRUE;
}

static void
receive_answers (BenchSwarm *swarm,
                 guint       wait_ms)
{
  static char bufs[RECV_BATCH][RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  struct mmsghdr msgs[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct pollfd pfds[N_SOCKETS];

  for (guint i = 0; i < N_SOCKETS; i++)
    pfds[i] = (struct pollfd) { swarm->fds[i], POLLIN, 0 };
  if (poll (pfds, N_SOCKETS, (int) wait_ms) <= 0)
    return;

  memset (msgs, 0, sizeof msgs);
  for (guint i = 0; i < RECV_BATCH; i++)
    {
      iov[i] = (struct iovec) { bufs[i], sizeof bufs[i] };
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }

  for (guint i = 0; i < N_SOCKETS; i++)
    {
      int got;

      if (!(pfds[i].revents & POLLIN))
        continue;
      while ((got = recvmmsg (swarm->fds[i], msgs, RECV_BATCH, MSG_DONTWAIT, NULL)) > 0)
        swarm->received += got;
    }
}

void
bench_swarm_step (BenchSwarm *swarm,
                  guint       wait_ms)
{
  gint64 now = bench_now_ns ();
  guint64 due;

  if (swarm->start_ns == 0)
    swarm->start_ns = now;

  /* Peer i pings at i / n of the interval into each interval */
  due = (guint64) ((gdouble) (now - swarm->start_ns) / swarm->keepalive_ns * swarm->n_peers) + 1;
  for (guint k = 0; swarm->sent < due && k < MAX_SENDS_PER_STEP; k++)
    if (!send_ping (swarm))
      break;

  receive_answers (swarm, wait_ms);
}

guint64
bench_swarm_sent (BenchSwarm *swarm)
{
  return swarm->sent;
}

guint64
bench_swarm_received (BenchSwarm *swarm)
{
  return swarm->received;
}
