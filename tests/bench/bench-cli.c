/* bench-cli.c: `rndz client --remote-peer` end to end, as a whole process
 *
 * SPDX-License-Identifier: MIT
 *
 * Starts `rndz server --listen-addr 127.0.0.1:0` and four listeners,
 * `rndz client --id …` over UDP and over TCP, plain (--insecure) and
 * secure (the default: DTLS, TLS), then runs
 * `rndz client --id … --server-addr … --remote-peer … --message …` again
 * and again against each, in turn, and times each run from the spawn to
 * the exit of the process, checking that it printed the echo. The
 * baseline, in the same run: the wall time of `rndz --version` (starting
 * a process that links GLib, GIO and json-glib, and exiting) and of
 * /bin/true, spawned the same way. A secure run makes a new identity (an
 * ECDSA key and a certificate) and runs the handshake: the difference of
 * the medians is what encrypting by default costs a script.
 *
 *   bench-cli [-n ITERATIONS] [--pause-ms MS] [--compare-tool PATH] [--check]
 *
 * With --compare-tool, a second rndz (say, one built before a change)
 * runs the same clients against the same server and listeners, each of
 * its runs right after the same run of the first tool, and its
 * `rndz --version` in turn with the first one's: the two columns share
 * whatever the machine does meanwhile. Its lines are marked "(cmp)". With
 * -n 100 that is 800 runs: give it --time-limit 600.
 *
 * Runs start at least --pause-ms apart (default 520), the four kinds in
 * turn: every run comes from 127.0.0.1, and the server lets one address
 * ask 2 times a second after a burst of 4 (doc/security.md, "Rate
 * limits"); closer runs would measure the wait it imposes, not the
 * rendezvous.
 *
 * Targets (plain runs, as before secure channels): UDP under 10 ms, TCP
 * under 15 ms (median).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"

/* Per listener: 200 runs in all, as when there were two listeners */
#define DEFAULT_ITERATIONS 50
#define BASELINE_ITERATIONS 100
#define RUN_TIMEOUT_S "5"

/* The listeners, and the runs against them */
typedef enum
{
  KIND_UDP,
  KIND_TCP,
  KIND_UDP_SECURE,
  KIND_TCP_SECURE,
  N_KINDS
} Kind;

static const char * const kind_ids[N_KINDS] = {
  "bench-cli-udp", "bench-cli-tcp", "bench-cli-udp-secure", "bench-cli-tcp-secure",
};

static gboolean
kind_is_tcp (Kind kind)
{
  return kind == KIND_TCP || kind == KIND_TCP_SECURE;
}

static gboolean
kind_is_secure (Kind kind)
{
  return kind == KIND_UDP_SECURE || kind == KIND_TCP_SECURE;
}

/* `rndz client --id ID --server-addr ADDRESS`, and the options of @kind,
 * then @extra (NULL-terminated, or NULL) */
static GPtrArray *
client_argv (const char         *tool,
             Kind                kind,
             const char         *id,
             const char         *server_addr,
             const char * const *extra)
{
  GPtrArray *argv = g_ptr_array_new ();
  const char *head[] = { tool, "client", "--id", id, "--server-addr", server_addr };

  for (guint i = 0; i < G_N_ELEMENTS (head); i++)
    g_ptr_array_add (argv, (gpointer) head[i]);
  if (!kind_is_secure (kind))
    g_ptr_array_add (argv, "--insecure");
  if (kind_is_tcp (kind))
    g_ptr_array_add (argv, "--tcp");
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) extra[i]);
  g_ptr_array_add (argv, NULL);
  return argv;
}

extern char **environ;

static gint opt_pause_ms = 520;
static char *opt_compare_tool = NULL;

static const GOptionEntry entries[] = {
  { "pause-ms", 0, 0, G_OPTION_ARG_INT, &opt_pause_ms,
    "Start runs at least MS apart (default 520)", "MS" },
  { "compare-tool", 0, 0, G_OPTION_ARG_FILENAME, &opt_compare_tool,
    "Time the runs of a second rndz too, interleaved with the first one's", "PATH" },
  { NULL }
};

/* The tools timed: the one under test, and the one it is compared with */
enum { TOOL_MAIN, TOOL_COMPARED, MAX_TOOLS };

static const char *tools[MAX_TOOLS];
static guint n_tools = 1;

/* Runs @argv to completion; returns the wall time in µs, or < 0. The
 * first line of its output goes to @output. */
static gdouble
time_process (const char * const  *argv,
              char               **output,
              GError             **error)
{
  posix_spawn_file_actions_t actions;
  int fds[2];
  pid_t pid;
  int status, err;
  gint64 start_ns, end_ns;
  char buf[4096];
  gssize n, len = 0;

  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "pipe: %s", g_strerror (errno));
      return -1.0;
    }

  posix_spawn_file_actions_init (&actions);
  posix_spawn_file_actions_adddup2 (&actions, fds[1], STDOUT_FILENO);
  if (g_getenv ("BENCH_VERBOSE") == NULL)
    posix_spawn_file_actions_addopen (&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);

  start_ns = bench_now_ns ();
  err = posix_spawn (&pid, argv[0], &actions, NULL, (char * const *) argv, environ);
  posix_spawn_file_actions_destroy (&actions);
  close (fds[1]);
  if (err != 0)
    {
      close (fds[0]);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), "spawn %s: %s", argv[0], g_strerror (err));
      return -1.0;
    }

  bench_track_child (pid);
  while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
    ;
  end_ns = bench_now_ns ();
  bench_track_child (0);

  /* The output is a line or two: the pipe holds it whole */
  while ((n = read (fds[0], buf + len, sizeof buf - 1 - len)) > 0)
    len += n;
  close (fds[0]);
  buf[len] = '\0';
  if (output != NULL)
    *output = g_strndup (buf, strcspn (buf, "\n"));

  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s %s exited with status %d",
                   argv[0], argv[1] != NULL ? argv[1] : "", status);
      return -1.0;
    }

  return (end_ns - start_ns) / 1000.0;
}

static void
pause_until (gint64 next_start_ns)
{
  gint64 left = next_start_ns - bench_now_ns ();

  if (left > 0)
    g_usleep (left / 1000);
}

static gboolean
measure_baseline (const char * const *argv,
                  BenchSamples       *samples,
                  GError            **error)
{
  for (guint i = 0; i < BASELINE_ITERATIONS; i++)
    {
      gdouble us = time_process (argv, NULL, error);

      if (us < 0)
        return FALSE;
      bench_samples_add (samples, us);
    }
  return TRUE;
}

/* `rndz --version` of each tool, in turn */
static gboolean
measure_versions (BenchSamples   spawn_version[MAX_TOOLS],
                  GError       **error)
{
  for (guint i = 0; i < BASELINE_ITERATIONS; i++)
    for (guint t = 0; t < n_tools; t++)
      {
        const char *argv[] = { tools[t], "--version", NULL };
        gdouble us = time_process (argv, NULL, error);

        if (us < 0)
          return FALSE;
        bench_samples_add (&spawn_version[t], us);
      }
  return TRUE;
}

/* Run @i of @tool against the listener of @kind */
static gdouble
run_client (guint        tool,
            const char  *server_addr,
            Kind         kind,
            guint        i,
            GError     **error)
{
  g_autofree char *id = g_strdup_printf ("%s-%u-%u", kind_ids[kind], i, tool);
  g_autofree char *message = g_strdup_printf ("hello %u", i);
  g_autofree char *output = NULL;
  const char *extra[] = { "--remote-peer", kind_ids[kind], "--message", message,
                          "--timeout", RUN_TIMEOUT_S, NULL };
  g_autoptr(GPtrArray) argv = client_argv (tools[tool], kind, id, server_addr, extra);
  gdouble us = time_process ((const char * const *) argv->pdata, &output, error);

  if (us >= 0 && g_strcmp0 (output, message) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "Run %u printed “%s”, not the echo “%s”", i, output, message);
      return -1.0;
    }
  return us;
}

/* @n runs against each listener, in turn, so that the kinds share
 * whatever the machine does meanwhile */
static gboolean
measure_clients (const char    *server_addr,
                 guint          n,
                 BenchSamples   samples[MAX_TOOLS][N_KINDS],
                 GError       **error)
{
  gint64 next_start_ns = 0;

  for (guint i = 0; i < n; i++)
    for (Kind kind = 0; kind < N_KINDS; kind++)
      for (guint t = 0; t < n_tools; t++)
        {
          gdouble us;

          pause_until (next_start_ns);
          next_start_ns = bench_now_ns () + (gint64) opt_pause_ms * 1000000;

          us = run_client (t, server_addr, kind, i, error);
          if (us < 0)
            return FALSE;
          bench_samples_add (&samples[t][kind], us);
        }
  return TRUE;
}

static gboolean
start_listener (BenchChild  *child,
                const char  *server_addr,
                Kind         kind,
                GError     **error)
{
  g_autoptr(GPtrArray) argv = client_argv (tools[TOOL_MAIN], kind, kind_ids[kind], server_addr,
                                           NULL);
  g_autofree char *line = NULL;

  if (!bench_spawn (child, (const char * const *) argv->pdata, error))
    return FALSE;
  line = bench_child_read_line (child, 5000, error);
  return line != NULL && bench_parse_registered_port (line) != 0;
}

/* "NAME", or "NAME (cmp)" for the second tool */
static void
report_tool (guint         tool,
             const char   *name,
             BenchSamples *samples)
{
  g_autofree char *label = tool == TOOL_MAIN ? g_strdup (name) : g_strdup_printf ("%s (cmp)", name);

  bench_report (label, samples);
}

static void
report_figures (guint         tool,
                BenchSamples  samples[N_KINDS],
                BenchSamples *spawn_version)
{
  const char *suffix = tool == TOOL_MAIN ? "" : " (cmp)";
  gdouble udp = bench_samples_median (&samples[KIND_UDP]);
  gdouble tcp = bench_samples_median (&samples[KIND_TCP]);
  gdouble udp_secure = bench_samples_median (&samples[KIND_UDP_SECURE]);
  gdouble tcp_secure = bench_samples_median (&samples[KIND_TCP_SECURE]);
  gdouble version = bench_samples_median (spawn_version);

  g_print ("medians%s:\n", suffix);
  bench_figure ("UDP run minus rndz --version", "%.1f us", udp - version);
  bench_figure ("TCP run minus rndz --version", "%.1f us", tcp - version);
  bench_figure ("UDP (DTLS) run minus rndz --version", "%.1f us", udp_secure - version);
  bench_figure ("TCP (TLS) run minus rndz --version", "%.1f us", tcp_secure - version);
  bench_figure ("UDP: secure run minus plain run", "%.1f us", udp_secure - udp);
  bench_figure ("TCP: secure run minus plain run", "%.1f us", tcp_secure - tcp);
}

static void
report (BenchSamples  samples[MAX_TOOLS][N_KINDS],
        BenchSamples  spawn_version[MAX_TOOLS])
{
  const char * const names[N_KINDS] = {
    "client --remote-peer --insecure (UDP)",
    "client --remote-peer --insecure --tcp",
    "client --remote-peer (UDP, DTLS)",
    "client --remote-peer --tcp (TLS)",
  };
  gdouble udp = bench_samples_median (&samples[TOOL_MAIN][KIND_UDP]);
  gdouble tcp = bench_samples_median (&samples[TOOL_MAIN][KIND_TCP]);

  for (guint t = 0; t < n_tools; t++)
    report_tool (t, "baseline: rndz --version", &spawn_version[t]);
  for (Kind kind = 0; kind < N_KINDS; kind++)
    for (guint t = 0; t < n_tools; t++)
      report_tool (t, names[kind], &samples[t][kind]);
  for (guint t = 0; t < n_tools; t++)
    report_figures (t, samples[t], &spawn_version[t]);

  bench_target (udp < 10000.0, "rndz client --insecure, UDP: median %.1f ms < 10 ms", udp / 1000);
  bench_target (tcp < 15000.0, "rndz client --insecure, TCP: median %.1f ms < 15 ms", tcp / 1000);
}

int
main (int    argc,
      char **argv)
{
  const char *true_argv[] = { "/bin/true", NULL };
  const char *server_argv[] = { bench_tool_path (), "server", "--listen-addr", "127.0.0.1:0", NULL };
  BenchChild server = { 0 }, listeners[N_KINDS] = { { 0 } };
  BenchSamples spawn_true, spawn_version[MAX_TOOLS], samples[MAX_TOOLS][N_KINDS];
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *server_addr = NULL;
  guint n;
  int status = EXIT_FAILURE;

  bench_init (&argc, &argv, "rndz client --remote-peer, as a whole process", entries, 300);
  n = bench_iterations (DEFAULT_ITERATIONS);
  tools[TOOL_MAIN] = bench_tool_path ();
  if (opt_compare_tool != NULL)
    tools[n_tools++] = opt_compare_tool;

  bench_header ("3. Command line end to end: rndz client --remote-peer");
  g_print ("tool: %s\n", tools[TOOL_MAIN]);
  if (n_tools > 1)
    g_print ("compared with: %s\n", tools[TOOL_COMPARED]);
  bench_samples_init (&spawn_true);
  for (guint t = 0; t < MAX_TOOLS; t++)
    {
      bench_samples_init (&spawn_version[t]);
      for (Kind kind = 0; kind < N_KINDS; kind++)
        bench_samples_init (&samples[t][kind]);
    }

  if (!bench_spawn (&server, server_argv, &error) ||
      (line = bench_child_read_line (&server, 5000, &error)) == NULL)
    goto out;
  server_addr = g_strdup_printf ("127.0.0.1:%u", bench_parse_port (line));

  for (Kind kind = 0; kind < N_KINDS; kind++)
    if (!start_listener (&listeners[kind], server_addr, kind, &error))
      goto out;

  if (!measure_baseline (true_argv, &spawn_true, &error) ||
      !measure_versions (spawn_version, &error) ||
      !measure_clients (server_addr, n, samples, &error))
    goto out;

  bench_report_header ("wall time per process, microseconds");
  bench_report ("baseline: /bin/true", &spawn_true);
  report (samples, spawn_version);
  status = bench_exit_status ();

out:
  if (error != NULL)
    g_printerr ("bench-cli: %s\n", error->message);
  for (Kind kind = 0; kind < N_KINDS; kind++)
    bench_child_stop (&listeners[kind]);
  for (guint t = 0; t < MAX_TOOLS; t++)
    {
      bench_samples_clear (&spawn_version[t]);
      for (Kind kind = 0; kind < N_KINDS; kind++)
        bench_samples_clear (&samples[t][kind]);
    }
  bench_child_stop (&server);
  bench_samples_clear (&spawn_true);
  return status;
}
