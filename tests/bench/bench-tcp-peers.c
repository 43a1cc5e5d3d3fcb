/* bench-tcp-peers.c: a server with 10,000 registered TCP listeners
 *
 * SPDX-License-Identifier: MIT
 *
 * Starts a server in its own process (bench-server: a RndzServer as
 * `rndz server` runs it, with the request-rate limit raised; or
 * `rndz server` itself with --rndz-server), opens N TCP connections
 * (default 10,000) from 127.1.x.y source addresses, registers a peer on
 * each at once (a framed ping, then its pong), and keeps every one
 * pinging at the default keepalive interval of 10 s, spread evenly: N/10
 * pings per second, from a thread of this process that uses raw sockets
 * and epoll. Measured:
 *
 *  - the server's CPU time at rest with the N TCP peers, over --rest
 *    seconds (default 20), from the kernel's CPU clock of its process;
 *  - the latency of a TCP rendezvous (a real RndzClient listener and
 *    connector, as in bench-rendezvous tcp) while the N are registered.
 *
 * Baselines, in the same run: the figure of bench-rendezvous tcp (a
 * server in this process, nothing else registered); the same rendezvous
 * against the idle server process; and the server's CPU time with N UDP
 * peers pinging at the same rate, the same work without N connections.
 *
 *   bench-tcp-peers [--peers N] [-n RENDEZVOUS] [--rest SECONDS]
 *                   [--udp-rest SECONDS] [--rndz-server] [--check]
 *
 * With --rndz-server, rendezvous start 60 ms apart: its request-rate
 * limit is 20 per second and address, and the command line cannot raise
 * it. Then every rendezvous also starts from an idle machine, which makes
 * it slower; compare it with the idle baseline of the same run.
 *
 * Targets: server CPU at rest under 10% of one core; rendezvous median
 * with the N registered at most twice the figure of bench-rendezvous tcp.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>

#include "bench-rig.h"
#include "rndz-message-private.h"

#define DEFAULT_PEERS 10000
#define KEEPALIVE_MS 10000
#define RENDEZVOUS_ITERATIONS 200
#define RNDZ_SERVER_PAUSE_MS 60
#define IN_PROCESS_ITERATIONS 200
#define BUDGET_MS 30000
#define PER_SOURCE_ADDRESS 32

static gint opt_peers = DEFAULT_PEERS;
static gint opt_rest = 20;
static gint opt_udp_rest = 10;
static gboolean opt_rndz_server = FALSE;

static const GOptionEntry entries[] = {
  { "peers", 0, 0, G_OPTION_ARG_INT, &opt_peers,
    "TCP peers (default 10000)", "N" },
  { "rest", 0, 0, G_OPTION_ARG_INT, &opt_rest,
    "Measure the server at rest for SECONDS (default 20)", "SECONDS" },
  { "udp-rest", 0, 0, G_OPTION_ARG_INT, &opt_udp_rest,
    "Measure the UDP baseline for SECONDS (default 10)", "SECONDS" },
  { "rndz-server", 0, 0, G_OPTION_ARG_NONE, &opt_rndz_server,
    "Run `rndz server` rather than bench-server (rendezvous 60 ms apart)", NULL },
  { NULL }
};

/* The simulated peers */

typedef struct
{
  gboolean tcp;
  guint n;
  guint16 port;
  int *fds;

  GThread *thread;
  gint registered;       /* peers 0 to registered - 1 are, and are pinged */
  gint stop;
  guint64 pings;
  guint64 pongs;
  guint closed;
} Load;

static struct sockaddr_in
inet4 (guint32  host,
       guint16  port)
{
  struct sockaddr_in sin = { 0 };

  sin.sin_family = AF_INET;
  sin.sin_port = htons (port);
  sin.sin_addr.s_addr = htonl (host);
  return sin;
}

static gsize
encode_ping (Load  *load,
             guint  i,
             guint  tid,
             char  *buf,
             gsize  size)
{
  RndzMessage ping;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, tid);
  g_snprintf (ping.id, sizeof ping.id, "%s-%05u", load->tcp ? "tcp" : "udp", i);
  if (load->tcp)
    return rndz_message_encode_frame (&ping, buf, size);

  /* The server answers no datagram with a larger one */
  ping.pad_to = rndz_message_max_reply_size (&ping);
  return rndz_message_encode (&ping, buf, size);
}

static gboolean
read_exactly (int     fd,
              char   *buf,
              gsize   len)
{
  gsize got = 0;

  while (got < len)
    {
      ssize_t n = recv (fd, buf + got, len - got, 0);

      if (n <= 0)
        return FALSE;
      got += n;
    }
  return TRUE;
}

/* Connects (TCP) or binds (UDP) peer @i and registers it: a ping, then
 * the pong, before the next peer, so that no source address ever holds
 * more than one unregistered connection. */
static gboolean
peer_register (Load     *load,
               guint     i,
               GError  **error)
{
  /* 32 peers per source address, 127.1.0.1 onwards */
  guint32 host = (127u << 24) | (1u << 16) | (i / PER_SOURCE_ADDRESS + 1);
  struct sockaddr_in local = inet4 (host, 0), server = inet4 (INADDR_LOOPBACK, load->port);
  struct timeval timeout = { 5, 0 };
  char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage pong;
  gsize len;
  int fd, one = 1;

  fd = socket (AF_INET, (load->tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  load->fds[i] = fd;
  if (fd < 0 ||
      setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) < 0 ||
      bind (fd, (struct sockaddr *) &local, sizeof local) < 0 ||
      connect (fd, (struct sockaddr *) &server, sizeof server) < 0)
    goto failed;

  if (load->tcp)
    setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  len = encode_ping (load, i, i + 1, buf, sizeof buf);
  if (send (fd, buf, len, 0) != (ssize_t) len)
    goto failed;

  if (load->tcp)
    {
      if (!read_exactly (fd, buf, RNDZ_FRAME_HEADER_SIZE))
        goto failed;
      len = ((guint8) buf[0] << 8) | (guint8) buf[1];
      if (len > RNDZ_MESSAGE_DEFAULT_MAX_SIZE || !read_exactly (fd, buf, len))
        goto failed;
    }
  else
    {
      ssize_t n = recv (fd, buf, sizeof buf, 0);

      if (n <= 0)
        goto failed;
      len = n;
    }

  if (!rndz_message_decode (&pong, buf, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, error))
    return FALSE;
  if (pong.type != RNDZ_MESSAGE_PONG)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Peer %u: a %s, not a pong",
                   i, rndz_message_type_to_string (pong.type));
      return FALSE;
    }

  g_unix_set_fd_nonblocking (fd, TRUE, NULL);
  return TRUE;

failed:
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "Peer %u: %s", i,
               errno != 0 ? g_strerror (errno) : "no pong");
  return FALSE;
}

/* Every peer pings once per KEEPALIVE_MS, peer i at offset i·KEEPALIVE_MS/n.
 * Registration goes on meanwhile (on a server that takes long to register
 * 10,000 peers, the first would otherwise expire): a peer is pinged, and
 * its socket watched, once the main thread has registered it. */
static gpointer
load_thread (gpointer user_data)
{
  Load *load = user_data;
  int epfd = epoll_create1 (EPOLL_CLOEXEC);
  gint64 start = bench_now_ns ();
  gint64 slot_ns = (gint64) KEEPALIVE_MS * 1000000 / load->n;
  guint64 next = 0;
  guint watched = 0;

  while (!g_atomic_int_get (&load->stop))
    {
      struct epoll_event events[256];
      guint registered = g_atomic_int_get (&load->registered);
      gint64 now = bench_now_ns ();
      gint64 wait_ms;
      int n;

      for (; watched < registered; watched++)
        {
          struct epoll_event ev = { EPOLLIN, { .u32 = watched } };

          epoll_ctl (epfd, EPOLL_CTL_ADD, load->fds[watched], &ev);
        }

      while (start + (gint64) next * slot_ns <= now)
        {
          guint i = next % load->n;
          char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
          gsize len;

          next++;
          if (i >= registered)
            continue;

          len = encode_ping (load, i, (guint) next, buf, sizeof buf);
          if (send (load->fds[i], buf, len, MSG_DONTWAIT) == (ssize_t) len)
            load->pings++;
        }

      wait_ms = (start + (gint64) next * slot_ns - now) / 1000000;
      n = epoll_wait (epfd, events, G_N_ELEMENTS (events), (int) CLAMP (wait_ms, 0, 10));
      for (int e = 0; e < n; e++)
        {
          guint i = events[e].data.u32;
          char buf[4096];
          ssize_t got = recv (load->fds[i], buf, sizeof buf, MSG_DONTWAIT);

          if (got == 0 || (got < 0 && errno != EAGAIN))
            {
              /* The server closed it: count it, stop watching it */
              load->closed++;
              epoll_ctl (epfd, EPOLL_CTL_DEL, load->fds[i], NULL);
              continue;
            }
          if (got < 0)
            continue;

          if (!load->tcp)
            load->pongs++;
          else
            {
              /* Pongs are small and come whole: count the frames */
              for (ssize_t off = 0; off + RNDZ_FRAME_HEADER_SIZE <= got;)
                {
                  load->pongs++;
                  off += RNDZ_FRAME_HEADER_SIZE + (((guint8) buf[off] << 8) | (guint8) buf[off + 1]);
                }
            }
        }
    }

  close (epfd);
  return NULL;
}

static gboolean
load_start (Load      *load,
            gboolean   tcp,
            guint      n,
            guint16    port,
            GError   **error)
{
  memset (load, 0, sizeof *load);
  load->tcp = tcp;
  load->n = n;
  load->port = port;
  load->fds = g_new (int, n);
  for (guint i = 0; i < n; i++)
    load->fds[i] = -1;

  load->thread = g_thread_new ("bench-load", load_thread, load);
  for (guint i = 0; i < n; i++)
    {
      if (!peer_register (load, i, error))
        return FALSE;
      g_atomic_int_inc (&load->registered);
    }

  return TRUE;
}

static void
load_stop (Load *load)
{
  if (load->thread != NULL)
    {
      g_atomic_int_set (&load->stop, 1);
      g_thread_join (load->thread);
      load->thread = NULL;
    }
  if (load->fds != NULL)
    for (guint i = 0; i < load->n; i++)
      if (load->fds[i] >= 0)
        close (load->fds[i]);
  g_clear_pointer (&load->fds, g_free);
}

/* The server's CPU time over @seconds, as a fraction of one core */
static gdouble
server_cpu_over (pid_t    pid,
                 guint    seconds,
                 Load    *load,
                 guint64 *pings)
{
  gdouble cpu0 = bench_cpu_seconds (pid);
  guint64 pings0 = load != NULL ? load->pings : 0;
  gint64 start = bench_now_ns ();
  gdouble cpu;

  g_usleep ((gulong) seconds * G_USEC_PER_SEC);
  cpu = bench_cpu_seconds (pid) - cpu0;
  if (pings != NULL)
    *pings = load != NULL ? load->pings - pings0 : 0;
  return cpu / ((bench_now_ns () - start) / 1e9);
}

static gsize
process_rss (pid_t pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *contents = NULL;
  const char *line;

  if (!g_file_get_contents (path, &contents, NULL, NULL) ||
      (line = strstr (contents, "\nVmRSS:")) == NULL)
    return 0;
  return g_ascii_strtoull (line + strlen ("\nVmRSS:"), NULL, 10) * 1024;
}

/* The figure of bench-rendezvous tcp: a server in this process */
static gboolean
measure_in_process (BenchSamples  *samples,
                    GError       **error)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any_port = g_inet_socket_address_new (loopback, 0);
  g_autofree char *addr = NULL;
  BenchSamples warmup;
  BenchRig *rig;
  gboolean ok;

  rndz_server_set_request_rate (server, G_MAXUINT16);
  if (!rndz_server_listen (server, any_port, error))
    return FALSE;
  addr = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (server));

  rig = bench_rig_new (addr, RNDZ_TRANSPORT_TCP, "bench-in-process", error);
  if (rig == NULL)
    return FALSE;
  bench_samples_init (&warmup);
  ok = bench_rig_measure (rig, 20, 0, BUDGET_MS, &warmup, error) &&
       bench_rig_measure (rig, IN_PROCESS_ITERATIONS, 0, BUDGET_MS, samples, error);
  bench_samples_clear (&warmup);
  bench_rig_free (rig);
  rndz_server_stop (server);
  return ok;
}

static gboolean
measure_rendezvous (const char    *server_addr,
                    const char    *id,
                    BenchSamples  *samples,
                    GError       **error)
{
  BenchRig *rig = bench_rig_new (server_addr, RNDZ_TRANSPORT_TCP, id, error);
  guint pause_ms = opt_rndz_server ? RNDZ_SERVER_PAUSE_MS : 0;
  BenchSamples warmup;
  gboolean ok;

  if (rig == NULL)
    return FALSE;
  bench_samples_init (&warmup);
  ok = bench_rig_measure (rig, 20, pause_ms, BUDGET_MS, &warmup, error) &&
       bench_rig_measure (rig, bench_iterations (RENDEZVOUS_ITERATIONS), pause_ms,
                          BUDGET_MS, samples, error);
  bench_samples_clear (&warmup);
  bench_rig_free (rig);
  return ok;
}

int
main (int    argc,
      char **argv)
{
  BenchChild server = { 0 };
  Load udp = { 0 }, tcp = { 0 };
  BenchSamples in_process, idle, loaded;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *server_addr = NULL;
  g_autofree char *max_conns = NULL;
  g_autofree char *max_peers = NULL;
  guint n;
  guint16 port;
  gdouble idle_cpu, udp_cpu, tcp_cpu, in_process_median, loaded_median;
  guint64 udp_pings, tcp_pings;
  gsize rss_before, rss_after;
  gint64 start;
  int status = EXIT_FAILURE;

  bench_init (&argc, &argv, "A server with 10,000 registered TCP peers", entries, 600);
  n = MAX (opt_peers, 1);

  bench_header ("6. Many TCP peers: server CPU at rest, rendezvous latency among them");
  bench_samples_init (&in_process);
  bench_samples_init (&idle);
  bench_samples_init (&loaded);

  /* This process holds N sockets at a time (the UDP ones are closed
   * before the TCP ones open), the server N and a few; children inherit
   * the limit */
  if (bench_raise_nofile (n + 1024) < n + 1024)
    {
      g_printerr ("bench-tcp-peers: cannot raise RLIMIT_NOFILE to %u\n", n + 1024);
      return EXIT_FAILURE;
    }

  /* The figure of (2), in this run */
  if (!measure_in_process (&in_process, &error))
    goto out;

  max_conns = g_strdup_printf ("%u", n + 256);
  max_peers = g_strdup_printf ("%u", 2 * n + 256);
  {
    const char *tool_argv[] = {
      bench_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
      "--max-connections", max_conns, "--max-peers", max_peers, NULL
    };
    const char *bench_server_argv[] = {
      BENCH_SERVER_PATH, "--max-connections", max_conns, "--max-peers", max_peers, NULL
    };

    if (!bench_spawn (&server, opt_rndz_server ? tool_argv : bench_server_argv, &error) ||
        (line = bench_child_read_line (&server, 5000, &error)) == NULL)
      goto out;
    g_print ("server: %s, process %d\n", opt_rndz_server ? "rndz server" : "bench-server",
             (int) server.pid);
  }
  port = bench_parse_port (line);
  server_addr = g_strdup_printf ("127.0.0.1:%u", port);

  /* The idle server */
  if (!measure_rendezvous (server_addr, "bench-idle", &idle, &error))
    goto out;
  idle_cpu = server_cpu_over (server.pid, 2, NULL, NULL);

  /* Baseline: N UDP peers at the same rate */
  if (!load_start (&udp, FALSE, n, port, &error))
    goto out;
  udp_cpu = server_cpu_over (server.pid, opt_udp_rest, &udp, &udp_pings);
  load_stop (&udp);

  /* N TCP peers */
  rss_before = process_rss (server.pid);
  start = bench_now_ns ();
  if (!load_start (&tcp, TRUE, n, port, &error))
    goto out;
  bench_figure ("TCP peers connected and registered", "%u in %.1f s", n,
                (bench_now_ns () - start) / 1e9);
  rss_after = process_rss (server.pid);
  tcp_cpu = server_cpu_over (server.pid, opt_rest, &tcp, &tcp_pings);

  if (!measure_rendezvous (server_addr, "bench-loaded", &loaded, &error))
    goto out;
  load_stop (&tcp);

  bench_figure ("server VmRSS per TCP peer", "%.0f bytes", (gdouble) (rss_after - rss_before) / n);
  bench_figure ("pings per second (keepalive 10 s)", "UDP %.0f, TCP %.0f",
                udp_pings / (gdouble) opt_udp_rest, tcp_pings / (gdouble) opt_rest);
  bench_figure ("TCP pongs / pings; connections closed", "%" G_GUINT64_FORMAT " / %" G_GUINT64_FORMAT
                "; %u", tcp.pongs, tcp.pings, tcp.closed);
  bench_figure ("server CPU, idle (no peers)", "%.2f%% of a core", 100 * idle_cpu);
  bench_figure ("baseline: server CPU, N UDP peers", "%.2f%% of a core, %.1f us per ping",
                100 * udp_cpu, udp_pings > 0 ? udp_cpu * opt_udp_rest * 1e6 / udp_pings : 0.0);
  bench_figure ("server CPU, N TCP peers at rest", "%.2f%% of a core, %.1f us per ping",
                100 * tcp_cpu, tcp_pings > 0 ? tcp_cpu * opt_rest * 1e6 / tcp_pings : 0.0);

  bench_report_header ("TCP rendezvous, microseconds");
  bench_report ("baseline: (2), server in this process", &in_process);
  bench_report ("baseline: server process, idle", &idle);
  bench_report ("server process with N TCP peers", &loaded);
  bench_figure ("with N TCP peers / idle (medians)", "%.2f",
                bench_samples_median (&loaded) / bench_samples_median (&idle));

  in_process_median = bench_samples_median (&in_process);
  loaded_median = bench_samples_median (&loaded);
  bench_target (tcp_cpu < 0.10, "server CPU at rest with %u TCP peers: %.1f%% < 10%%", n, 100 * tcp_cpu);
  bench_target (loaded_median <= 2 * in_process_median,
                "rendezvous median with %u TCP peers %.0f us <= 2 x (2) = %.0f us",
                n, loaded_median, 2 * in_process_median);
  status = bench_exit_status ();

out:
  if (error != NULL)
    g_printerr ("bench-tcp-peers: %s\n", error->message);
  load_stop (&udp);
  load_stop (&tcp);
  bench_child_stop (&server);
  bench_samples_clear (&in_process);
  bench_samples_clear (&idle);
  bench_samples_clear (&loaded);
  return status;
}
