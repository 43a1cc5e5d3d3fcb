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

#include "bench-load.h"
#include "bench-util.h"
#include "rndz-message-private.h"

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
measure (const char       *name,
         guint16           port,
         pid_t             server_pid,
         BenchLoadResult  *result,
         GError          **error)
{
  BenchLoad *load = bench_load_new (opt_peers, port, "load", opt_window, error);
  gboolean ok;

  if (load == NULL)
    return FALSE;

  ok = bench_load_measure (load, &server_pid, 1, opt_seconds, result, error);
  if (!ok)
    g_prefix_error (error, "%s: ", name);
  bench_load_free (load);
  return ok;
}

static void
report (const char            *name,
        const BenchLoadResult *result)
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
  BenchLoadResult baseline = { 0 }, load = { 0 };
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
