/* bench-load.c: UDP ping load on rendezvous servers, from this process
 *
 * SPDX-License-Identifier: MIT
 */

#define _GNU_SOURCE
#include "bench-load.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bench-util.h"
#include "rndz-message-private.h"

#define SEND_BATCH 8
#define RECV_BATCH 64
#define MAX_EVENTS 256

typedef struct
{
  int fd;
  char ping[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize ping_len;
} Peer;

struct _BenchLoad
{
  Peer *peers;
  guint n_peers;
  guint window;
  int epfd;
};

static struct sockaddr_in
loopback_address (guint16 port)
{
  struct sockaddr_in sin = { 0 };

  sin.sin_family = AF_INET;
  sin.sin_port = htons (port);
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  return sin;
}

static gboolean
peer_init (Peer        *peer,
           guint        i,
           guint16      port,
           const char  *id_prefix,
           GError     **error)
{
  struct sockaddr_in server = loopback_address (port);
  struct sockaddr_in local = loopback_address (0);
  RndzMessage ping;

  peer->fd = socket (AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (peer->fd < 0 ||
      bind (peer->fd, (struct sockaddr *) &local, sizeof local) < 0 ||
      connect (peer->fd, (struct sockaddr *) &server, sizeof server) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "Peer socket %u: %s", i, g_strerror (errno));
      return FALSE;
    }

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, i + 1);
  g_snprintf (ping.id, sizeof ping.id, "%s-%06u", id_prefix, i);
  /* The server answers no datagram with a larger one */
  ping.pad_to = rndz_message_max_reply_size (&ping);
  peer->ping_len = rndz_message_encode (&ping, peer->ping, sizeof peer->ping);
  return TRUE;
}

BenchLoad *
bench_load_new (guint        n_peers,
                guint16      port,
                const char  *id_prefix,
                guint        window,
                GError     **error)
{
  BenchLoad *load = g_new0 (BenchLoad, 1);

  load->peers = g_new0 (Peer, n_peers);
  load->window = MAX (window, 1);
  load->epfd = epoll_create1 (EPOLL_CLOEXEC);
  for (guint i = 0; i < n_peers; i++)
    load->peers[i].fd = -1;

  for (guint i = 0; i < n_peers; i++)
    {
      struct epoll_event ev = { EPOLLIN, { .u32 = i } };

      load->n_peers = i + 1;
      if (!peer_init (&load->peers[i], i, port, id_prefix, error))
        {
          bench_load_free (load);
          return NULL;
        }
      epoll_ctl (load->epfd, EPOLL_CTL_ADD, load->peers[i].fd, &ev);
    }

  return load;
}

void
bench_load_free (BenchLoad *load)
{
  if (load == NULL)
    return;

  for (guint i = 0; i < load->n_peers; i++)
    if (load->peers[i].fd >= 0)
      close (load->peers[i].fd);
  if (load->epfd >= 0)
    close (load->epfd);
  g_free (load->peers);
  g_free (load);
}

/* Sends pings, peer after peer, until the window is full */
static void
fill_window (BenchLoad       *load,
             guint           *next,
             gint64          *in_flight,
             BenchLoadResult *result)
{
  struct mmsghdr msgs[SEND_BATCH];
  struct iovec iov[SEND_BATCH];

  while (*in_flight < load->window)
    {
      Peer *peer = &load->peers[*next];
      guint k = MIN (SEND_BATCH, load->window - *in_flight);
      int sent;

      *next = (*next + 1) % load->n_peers;
      memset (msgs, 0, sizeof msgs);
      for (guint i = 0; i < k; i++)
        {
          iov[i].iov_base = peer->ping;
          iov[i].iov_len = peer->ping_len;
          msgs[i].msg_hdr.msg_iov = &iov[i];
          msgs[i].msg_hdr.msg_iovlen = 1;
        }

      sent = sendmmsg (peer->fd, msgs, k, MSG_DONTWAIT);
      if (sent <= 0)
        break;
      *in_flight += sent;
      result->sent += sent;
    }
}

/* Receives what the ready sockets hold; FALSE when nothing came for
 * 10 ms */
static gboolean
drain_answers (BenchLoad       *load,
               gint64          *in_flight,
               BenchLoadResult *result)
{
  static char bufs[RECV_BATCH][RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  struct mmsghdr msgs[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct epoll_event events[MAX_EVENTS];
  int n_events = epoll_wait (load->epfd, events, MAX_EVENTS, 10);

  if (n_events <= 0)
    return FALSE;

  memset (msgs, 0, sizeof msgs);
  for (guint i = 0; i < RECV_BATCH; i++)
    {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }

  for (int e = 0; e < n_events; e++)
    {
      int got = recvmmsg (load->peers[events[e].data.u32].fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);

      if (got > 0)
        {
          result->received += got;
          *in_flight = MAX (0, *in_flight - got);
        }
    }
  return TRUE;
}

static void
read_cpu (const pid_t *pids,
          guint        n_pids,
          gdouble     *cpu)
{
  for (guint i = 0; i < n_pids; i++)
    cpu[i] = bench_cpu_seconds (pids[i]);
}

void
bench_load_run (BenchLoad       *load,
                const pid_t     *pids,
                guint            n_pids,
                gdouble          seconds,
                BenchLoadResult *result)
{
  gdouble cpu0[BENCH_LOAD_MAX_PIDS], own_cpu0, machine_cpu0;
  gint64 start_ns, end_ns, in_flight = 0;
  guint next = 0;

  n_pids = MIN (n_pids, BENCH_LOAD_MAX_PIDS);
  memset (result, 0, sizeof *result);
  read_cpu (pids, n_pids, cpu0);
  own_cpu0 = bench_thread_cpu_seconds ();
  machine_cpu0 = bench_machine_busy_seconds ();
  start_ns = bench_now_ns ();
  end_ns = start_ns + (gint64) (seconds * 1e9);

  while (bench_now_ns () < end_ns)
    {
      fill_window (load, &next, &in_flight, result);
      if (!drain_answers (load, &in_flight, result))
        {
          /* Nothing for 10 ms: what is in flight was dropped */
          result->lost += in_flight;
          in_flight = 0;
        }
    }

  result->seconds = (bench_now_ns () - start_ns) / 1e9;
  read_cpu (pids, n_pids, result->cpu);
  for (guint i = 0; i < n_pids; i++)
    {
      result->cpu[i] -= cpu0[i];
      result->server_cpu += result->cpu[i];
    }
  result->own_cpu = bench_thread_cpu_seconds () - own_cpu0;
  result->machine_cpu = bench_machine_busy_seconds () - machine_cpu0;
}

gboolean
bench_load_measure (BenchLoad        *load,
                    const pid_t      *pids,
                    guint             n_pids,
                    gdouble           seconds,
                    BenchLoadResult  *result,
                    GError          **error)
{
  BenchLoadResult warmup;

  /* Registers every peer, and lets the servers' tables grow */
  bench_load_run (load, pids, n_pids, 1.0, &warmup);
  if (warmup.received == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "No answer to %" G_GUINT64_FORMAT " pings",
                   warmup.sent);
      return FALSE;
    }

  bench_load_run (load, pids, n_pids, seconds, result);
  return TRUE;
}
