/* rndz-load.c: UDP ping load on a rendezvous server, from another process
 *
 * SPDX-License-Identifier: MIT
 *
 * Many simulated peers, one UDP socket (one source port on 127.0.0.1)
 * each, send padded pings to the server and count the pongs. A window
 * bounds the pings in flight so that the server's socket buffer does not
 * overflow; sendmmsg() and recvmmsg() keep the generator's own cost per
 * ping low, so that the server, not the generator, is the limit. The
 * server's CPU time comes from the kernel's CPU clock of its process
 * (clock_getcpuclockid()).
 *
 *   rndz-load [--peers N] [--seconds S] [--window W]
 *             [--server-addr 127.0.0.1:PORT --server-pid PID]
 *             [--no-baseline] [--check]
 *
 * Without --server-addr it starts `rndz server --listen-addr 127.0.0.1:0`
 * itself. The baseline, in the same run: the same load against a minimal
 * UDP echo server in a child process, one recvfrom() and one sendto() per
 * datagram, as the rendezvous server's hot path has, without GLib and
 * without JSON.
 *
 * Target: the server answers at least 100,000 pings per second of its
 * CPU time (one core).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bench-util.h"
#include "rndz-message-private.h"

#define SEND_BATCH 8
#define RECV_BATCH 64
#define MAX_EVENTS 256

static gint opt_peers = 1000;
static gint opt_seconds = 5;
static gint opt_window = 128;
static char *opt_server_addr = NULL;
static gint opt_server_pid = 0;
static gboolean opt_no_baseline = FALSE;

static const GOptionEntry entries[] = {
  { "peers", 0, 0, G_OPTION_ARG_INT, &opt_peers, "Simulated peers, one socket each (default 1000)", "N" },
  { "seconds", 0, 0, G_OPTION_ARG_INT, &opt_seconds, "Measure for S seconds (default 5)", "S" },
  { "window", 0, 0, G_OPTION_ARG_INT, &opt_window, "Pings in flight at most (default 128)", "W" },
  { "server-addr", 0, 0, G_OPTION_ARG_STRING, &opt_server_addr, "A running server (else one is started)", "127.0.0.1:PORT" },
  { "server-pid", 0, 0, G_OPTION_ARG_INT, &opt_server_pid, "Its process id, for its CPU time", "PID" },
  { "no-baseline", 0, 0, G_OPTION_ARG_NONE, &opt_no_baseline, "Skip the echo-server baseline", NULL },
  { NULL }
};

typedef struct
{
  int fd;
  char ping[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize ping_len;
} Peer;

typedef struct
{
  guint64 sent;
  guint64 received;
  guint64 lost;          /* given up on: no answer within 10 ms */
  gdouble seconds;
  gdouble server_cpu;    /* seconds */
  gdouble own_cpu;       /* seconds */
} LoadResult;

static struct sockaddr_in
loopback_address (guint16 port)
{
  struct sockaddr_in sin = { 0 };

  sin.sin_family = AF_INET;
  sin.sin_port = htons (port);
  sin.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  return sin;
}

static Peer *
peers_new (guint    n,
           guint16  port,
           GError **error)
{
  Peer *peers = g_new0 (Peer, n);
  struct sockaddr_in server = loopback_address (port);
  struct sockaddr_in local = loopback_address (0);

  for (guint i = 0; i < n; i++)
    {
      RndzMessage ping;

      peers[i].fd = socket (AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (peers[i].fd < 0 ||
          bind (peers[i].fd, (struct sockaddr *) &local, sizeof local) < 0 ||
          connect (peers[i].fd, (struct sockaddr *) &server, sizeof server) < 0)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                       "Peer socket %u: %s", i, g_strerror (errno));
          return NULL;
        }

      rndz_message_init (&ping, RNDZ_MESSAGE_PING, i + 1);
      g_snprintf (ping.id, sizeof ping.id, "load-%06u", i);
      /* The server answers no datagram with a larger one */
      ping.pad_to = rndz_message_max_reply_size (&ping);
      peers[i].ping_len = rndz_message_encode (&ping, peers[i].ping, sizeof peers[i].ping);
    }

  return peers;
}

static void
peers_free (Peer  *peers,
            guint  n)
{
  for (guint i = 0; i < n; i++)
    if (peers[i].fd >= 0)
      close (peers[i].fd);
  g_free (peers);
}

/* Runs the load for @seconds; counts only what happens in that time */
static void
run_load (Peer       *peers,
          guint       n_peers,
          pid_t       server_pid,
          gdouble     seconds,
          LoadResult *result)
{
  int epfd = epoll_create1 (EPOLL_CLOEXEC);
  struct epoll_event events[MAX_EVENTS];
  struct mmsghdr send_msgs[SEND_BATCH], recv_msgs[RECV_BATCH];
  struct iovec send_iov[SEND_BATCH], recv_iov[RECV_BATCH];
  static char recv_bufs[RECV_BATCH][RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gint64 start_ns, end_ns;
  gdouble server_cpu0, own_cpu0;
  guint next = 0;
  gint64 in_flight = 0;

  memset (result, 0, sizeof *result);
  for (guint i = 0; i < n_peers; i++)
    {
      struct epoll_event ev = { EPOLLIN, { .u32 = i } };

      epoll_ctl (epfd, EPOLL_CTL_ADD, peers[i].fd, &ev);
    }

  memset (recv_msgs, 0, sizeof recv_msgs);
  for (guint i = 0; i < RECV_BATCH; i++)
    {
      recv_iov[i].iov_base = recv_bufs[i];
      recv_iov[i].iov_len = sizeof recv_bufs[i];
      recv_msgs[i].msg_hdr.msg_iov = &recv_iov[i];
      recv_msgs[i].msg_hdr.msg_iovlen = 1;
    }

  server_cpu0 = bench_cpu_seconds (server_pid);
  own_cpu0 = bench_thread_cpu_seconds ();
  start_ns = bench_now_ns ();
  end_ns = start_ns + (gint64) (seconds * 1e9);

  while (bench_now_ns () < end_ns)
    {
      int n_events;

      while (in_flight < opt_window)
        {
          Peer *peer = &peers[next];
          guint k = MIN (SEND_BATCH, opt_window - in_flight);
          int sent;

          next = (next + 1) % n_peers;
          memset (send_msgs, 0, sizeof send_msgs);
          for (guint i = 0; i < k; i++)
            {
              send_iov[i].iov_base = peer->ping;
              send_iov[i].iov_len = peer->ping_len;
              send_msgs[i].msg_hdr.msg_iov = &send_iov[i];
              send_msgs[i].msg_hdr.msg_iovlen = 1;
            }

          sent = sendmmsg (peer->fd, send_msgs, k, MSG_DONTWAIT);
          if (sent <= 0)
            break;
          in_flight += sent;
          result->sent += sent;
        }

      n_events = epoll_wait (epfd, events, MAX_EVENTS, 10);
      if (n_events == 0)
        {
          /* Nothing for 10 ms: what is in flight was dropped */
          result->lost += in_flight;
          in_flight = 0;
          continue;
        }

      for (int e = 0; e < n_events; e++)
        {
          int got = recvmmsg (peers[events[e].data.u32].fd, recv_msgs, RECV_BATCH, MSG_DONTWAIT, NULL);

          if (got > 0)
            {
              result->received += got;
              in_flight = MAX (0, in_flight - got);
            }
        }
    }

  result->seconds = (bench_now_ns () - start_ns) / 1e9;
  result->server_cpu = bench_cpu_seconds (server_pid) - server_cpu0;
  result->own_cpu = bench_thread_cpu_seconds () - own_cpu0;
  close (epfd);
}

static gboolean
measure (const char  *name,
         guint16      port,
         pid_t        server_pid,
         LoadResult  *result,
         GError     **error)
{
  Peer *peers = peers_new (opt_peers, port, error);
  LoadResult warmup;

  if (peers == NULL)
    return FALSE;

  /* Registers every peer, and lets the server's tables grow */
  run_load (peers, opt_peers, server_pid, 1.0, &warmup);
  if (warmup.received == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: no answer to %" G_GUINT64_FORMAT " pings",
                   name, warmup.sent);
      peers_free (peers, opt_peers);
      return FALSE;
    }

  run_load (peers, opt_peers, server_pid, opt_seconds, result);
  peers_free (peers, opt_peers);
  return TRUE;
}

static void
report (const char       *name,
        const LoadResult *result)
{
  gdouble rate = result->received / result->seconds;
  gdouble per_cpu = result->server_cpu > 0 ? result->received / result->server_cpu : 0;

  g_print ("%-34s %12.0f %9.0f%% %14.0f %9.0f%% %7.2f%%\n", name, rate,
           100 * result->server_cpu / result->seconds, per_cpu,
           100 * result->own_cpu / result->seconds,
           result->sent > 0 ? 100.0 * result->lost / result->sent : 0.0);
}

/* The baseline server: recvfrom() and sendto(), nothing else */
static void
echo_server (int fd)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];

  for (;;)
    {
      struct sockaddr_storage from;
      socklen_t len = sizeof from;
      ssize_t n = recvfrom (fd, buf, sizeof buf, 0, (struct sockaddr *) &from, &len);

      if (n > 0)
        sendto (fd, buf, n, MSG_DONTWAIT, (struct sockaddr *) &from, len);
    }
}

static pid_t
start_echo_server (guint16  *port,
                   GError  **error)
{
  struct sockaddr_in sin = loopback_address (0);
  socklen_t len = sizeof sin;
  int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  pid_t pid;

  if (fd < 0 || bind (fd, (struct sockaddr *) &sin, sizeof sin) < 0 ||
      getsockname (fd, (struct sockaddr *) &sin, &len) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "Echo server: %s", g_strerror (errno));
      return -1;
    }
  *port = ntohs (sin.sin_port);

  pid = fork ();
  if (pid == 0)
    {
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      echo_server (fd);
      _exit (0);
    }
  close (fd);
  return pid;
}

int
main (int    argc,
      char **argv)
{
  const char *server_argv[] = { bench_tool_path (), "server", "--listen-addr", "127.0.0.1:0", NULL };
  BenchChild server = { 0 };
  LoadResult baseline = { 0 }, load = { 0 };
  g_autoptr(GError) error = NULL;
  guint16 port;
  pid_t server_pid, echo_pid = 0;
  int status = EXIT_FAILURE;

  bench_init (&argc, &argv, "UDP ping throughput of a rendezvous server", entries, 120);
  if (bench_raise_nofile (opt_peers + 64) < (guint) opt_peers + 64)
    {
      g_printerr ("rndz-load: cannot open %d sockets\n", opt_peers);
      return EXIT_FAILURE;
    }

  bench_header ("4. Server throughput: UDP pings answered by one server thread");

  if (opt_server_addr != NULL)
    {
      port = bench_parse_port (opt_server_addr);
      server_pid = opt_server_pid;
    }
  else
    {
      g_autofree char *line = NULL;

      if (!bench_spawn (&server, server_argv, &error) ||
          (line = bench_child_read_line (&server, 5000, &error)) == NULL)
        goto out;
      port = bench_parse_port (line);
      server_pid = server.pid;
    }

  if (!opt_no_baseline)
    {
      guint16 echo_port;

      echo_pid = start_echo_server (&echo_port, &error);
      if (echo_pid < 0 || !measure ("echo", echo_port, echo_pid, &baseline, &error))
        goto out;
      kill (echo_pid, SIGKILL);
      waitpid (echo_pid, NULL, 0);
      echo_pid = 0;
    }

  if (!measure ("rndz server", port, server_pid, &load, &error))
    goto out;

  g_print ("%d peers (one socket each), window %d pings, %d s per measurement\n",
           opt_peers, opt_window, opt_seconds);
  g_print ("%-34s %12s %10s %14s %10s %8s\n", "", "answers/s", "server CPU",
           "answers/CPU-s", "load CPU", "lost");
  if (!opt_no_baseline)
    report ("baseline: recvfrom+sendto echo", &baseline);
  report ("rndz server (pings -> pongs)", &load);
  if (!opt_no_baseline)
    bench_figure ("rndz server / baseline (per CPU-second)", "%.2f",
                  (load.received / load.server_cpu) / (baseline.received / baseline.server_cpu));

  bench_target (load.received / load.server_cpu >= 100000,
                "server: %.0f pongs per CPU-second >= 100000", load.received / load.server_cpu);
  status = bench_exit_status ();

out:
  if (error != NULL)
    g_printerr ("rndz-load: %s\n", error->message);
  if (echo_pid > 0)
    {
      kill (echo_pid, SIGKILL);
      waitpid (echo_pid, NULL, 0);
    }
  bench_child_stop (&server);
  return status;
}
