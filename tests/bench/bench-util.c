/* bench-util.c: what the benchmarks share
 *
 * SPDX-License-Identifier: MIT
 */

#define _GNU_SOURCE
#include "bench-util.h"

#include <gio/gio.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static gboolean opt_check = FALSE;
static gint opt_iterations = 0;
static gint opt_time_limit = 0;
static gboolean any_missed = FALSE;
static volatile pid_t tracked_child = 0;

gint64
bench_now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

/* Samples */

void
bench_samples_init (BenchSamples *samples)
{
  samples->values = g_array_new (FALSE, FALSE, sizeof (gdouble));
}

void
bench_samples_clear (BenchSamples *samples)
{
  g_clear_pointer (&samples->values, g_array_unref);
}

void
bench_samples_add (BenchSamples *samples,
                   gdouble       value)
{
  g_array_append_val (samples->values, value);
}

guint
bench_samples_count (const BenchSamples *samples)
{
  return samples->values->len;
}

static gint
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return x < y ? -1 : x > y ? 1 : 0;
}

gdouble
bench_samples_quantile (BenchSamples *samples,
                        gdouble       q)
{
  guint n = samples->values->len;
  guint rank;

  if (n == 0)
    return 0.0;

  g_array_sort (samples->values, compare_doubles);
  /* Nearest rank: the smallest value with at least q·n values at or below it */
  rank = (guint) MAX (1.0, MIN ((gdouble) n, (q * n) + 0.999999));
  return g_array_index (samples->values, gdouble, rank - 1);
}

gdouble
bench_samples_min (BenchSamples *samples)
{
  return bench_samples_quantile (samples, 0.0);
}

gdouble
bench_samples_max (BenchSamples *samples)
{
  return bench_samples_quantile (samples, 1.0);
}

gdouble
bench_samples_median (BenchSamples *samples)
{
  return bench_samples_quantile (samples, 0.5);
}

gdouble
bench_samples_p99 (BenchSamples *samples)
{
  return bench_samples_quantile (samples, 0.99);
}

guint
bench_samples_count_at_least (const BenchSamples *samples,
                              gdouble             threshold)
{
  guint count = 0;

  for (guint i = 0; i < samples->values->len; i++)
    if (g_array_index (samples->values, gdouble, i) >= threshold)
      count++;

  return count;
}

/* Output */

void
bench_header (const char *title)
{
  g_print ("\n== %s ==\n", title);
}

void
bench_report_header (const char *unit)
{
  g_print ("%-44s %10s %10s %10s %10s %7s\n", unit, "median", "p99", "min", "max", "n");
}

void
bench_report (const char   *name,
              BenchSamples *samples)
{
  g_print ("%-44s %10.1f %10.1f %10.1f %10.1f %7u\n", name,
           bench_samples_median (samples), bench_samples_p99 (samples),
           bench_samples_min (samples), bench_samples_max (samples),
           bench_samples_count (samples));
}

void
bench_figure (const char *name,
              const char *format,
              ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  g_print ("%-44s %s\n", name, text);
}

gboolean
bench_target (gboolean    met,
              const char *format,
              ...)
{
  g_autofree char *text = NULL;
  va_list args;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  g_print ("TARGET %-66s %s\n", text, met ? "MET" : "MISSED");
  if (!met)
    any_missed = TRUE;
  return met;
}

int
bench_exit_status (void)
{
  return opt_check && any_missed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The machine: how much of a core a busy thread gets now. On a shared or
 * virtual machine the figures of a run mean little without this. */
void
bench_print_machine (void)
{
  g_autofree char *loadavg = NULL;
  gint64 start = bench_now_ns (), last = start, now;
  gint64 stolen = 0;
  guint gaps = 0;

  while ((now = bench_now_ns ()) - start < 200 * G_GINT64_CONSTANT (1000000))
    {
      if (now - last > 50000)
        {
          stolen += now - last;
          gaps++;
        }
      last = now;
    }

  if (g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL))
    g_strstrip (loadavg);

  g_print ("machine: %ld CPUs, load average %s; a busy thread got %.0f%% of a core "
           "over 200 ms (%u gaps over 50 us)\n",
           sysconf (_SC_NPROCESSORS_ONLN), loadavg != NULL ? loadavg : "?",
           100.0 * (1.0 - (gdouble) stolen / (now - start)), gaps);
}

/* Options and the time limit */

static void
time_limit_handler (int signum)
{
  static const char message[] = "\nbenchmark: time limit reached, giving up\n";

  (void) !write (STDERR_FILENO, message, sizeof message - 1);
  /* Children of bench_spawn() die with us (PR_SET_PDEATHSIG); a
   * posix_spawn()ed one is tracked */
  if (tracked_child > 0)
    kill (tracked_child, SIGKILL);
  _exit (2);
}

void
bench_init (int                 *argc,
            char              ***argv,
            const char          *summary,
            const GOptionEntry  *entries,
            guint                default_time_limit)
{
  const GOptionEntry common_entries[] = {
    { "check", 0, 0, G_OPTION_ARG_NONE, &opt_check,
      "Exit with status 1 when a target is missed", NULL },
    { "iterations", 'n', 0, G_OPTION_ARG_INT, &opt_iterations,
      "Iterations (default: the benchmark's own)", "N" },
    { "time-limit", 0, 0, G_OPTION_ARG_INT, &opt_time_limit,
      "Give up after SECONDS", "SECONDS" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;

  /* The children's output is parsed: untranslated */
  g_setenv ("LC_ALL", "C.UTF-8", TRUE);

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, summary);
  g_option_context_add_main_entries (context, common_entries, NULL);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      g_printerr ("%s\n", error->message);
      exit (EXIT_FAILURE);
    }

  bench_print_machine ();

  signal (SIGALRM, time_limit_handler);
  alarm (opt_time_limit > 0 ? (guint) opt_time_limit : default_time_limit);

  /* A peer that went away must not kill us with SIGPIPE */
  signal (SIGPIPE, SIG_IGN);
  setvbuf (stdout, NULL, _IOLBF, 0);
}

void
bench_track_child (pid_t pid)
{
  tracked_child = pid;
}

guint
bench_iterations (guint fallback)
{
  return opt_iterations > 0 ? (guint) opt_iterations : fallback;
}

/* /proc */

gdouble
bench_cpu_seconds (pid_t pid)
{
  g_autofree char *path = NULL;
  g_autofree char *contents = NULL;
  unsigned long utime = 0, stime = 0;
  const char *p;
  clockid_t clock;
  struct timespec ts;

  if (pid == 0)
    {
      struct rusage usage;

      getrusage (RUSAGE_SELF, &usage);
      return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
             usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
    }

  /* The kernel's own count, in nanoseconds, where /proc/PID/stat counts
   * ticks of 10 ms */
  if (clock_getcpuclockid (pid, &clock) == 0 && clock_gettime (clock, &ts) == 0)
    return ts.tv_sec + ts.tv_nsec / 1e9;

  path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return -1.0;

  /* The command name may hold spaces and parentheses: skip past the last ')' */
  p = strrchr (contents, ')');
  if (p == NULL ||
      sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
    return -1.0;

  return (gdouble) (utime + stime) / sysconf (_SC_CLK_TCK);
}

gdouble
bench_machine_busy_seconds (void)
{
  g_autofree char *contents = NULL;
  guint64 v[8] = { 0 };

  /* cpu  user nice system idle iowait irq softirq steal ... */
  if (!g_file_get_contents ("/proc/stat", &contents, NULL, NULL) ||
      sscanf (contents, "cpu %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
              " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
              " %" G_GUINT64_FORMAT, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8)
    return -1.0;

  return (gdouble) (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / sysconf (_SC_CLK_TCK);
}

gdouble
bench_thread_cpu_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

gsize
bench_rss_bytes (void)
{
  g_autofree char *contents = NULL;
  const char *line;
  gsize kib = 0;

  if (!g_file_get_contents ("/proc/self/status", &contents, NULL, NULL))
    return 0;

  line = strstr (contents, "\nVmRSS:");
  if (line != NULL)
    kib = g_ascii_strtoull (line + strlen ("\nVmRSS:"), NULL, 10);

  return kib * 1024;
}

guint
bench_raise_nofile (guint wanted)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) < 0)
    return 0;

  if (limit.rlim_cur < wanted)
    {
      struct rlimit raised = limit;

      raised.rlim_cur = wanted;
      if (raised.rlim_max < wanted)
        raised.rlim_max = wanted;
      if (setrlimit (RLIMIT_NOFILE, &raised) < 0)
        {
          /* Not root: as far as the hard limit goes */
          raised.rlim_max = limit.rlim_max;
          raised.rlim_cur = limit.rlim_max;
          setrlimit (RLIMIT_NOFILE, &raised);
        }
      getrlimit (RLIMIT_NOFILE, &limit);
    }

  return (guint) limit.rlim_cur;
}

/* Children */

gboolean
bench_spawn (BenchChild         *child,
             const char * const *argv,
             GError            **error)
{
  int fds[2];
  pid_t pid;
  gboolean verbose = g_getenv ("BENCH_VERBOSE") != NULL;

  if (pipe2 (fds, O_CLOEXEC) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "pipe: %s", g_strerror (errno));
      return FALSE;
    }

  pid = fork ();
  if (pid < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "fork: %s", g_strerror (errno));
      close (fds[0]);
      close (fds[1]);
      return FALSE;
    }

  if (pid == 0)
    {
      /* Only async-signal-safe calls from here on */
      prctl (PR_SET_PDEATHSIG, SIGKILL);
      dup2 (fds[1], STDOUT_FILENO);
      if (!verbose)
        {
          int null = open ("/dev/null", O_WRONLY);

          if (null >= 0)
            dup2 (null, STDERR_FILENO);
        }
      signal (SIGPIPE, SIG_DFL);
      execv (argv[0], (char * const *) argv);
      _exit (127);
    }

  close (fds[1]);
  child->pid = pid;
  child->stdout_fd = fds[0];
  return TRUE;
}

char *
bench_child_read_line (BenchChild  *child,
                       guint        timeout_ms,
                       GError     **error)
{
  GString *line = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      struct pollfd pfd = { child->stdout_fd, POLLIN, 0 };
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      char c;
      ssize_t n;

      if (left <= 0 || poll (&pfd, 1, (int) left) <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "No line from child %d within %u ms (got “%s”)",
                       (int) child->pid, timeout_ms, line->str);
          g_string_free (line, TRUE);
          return NULL;
        }

      /* One byte at a time: what follows the line stays in the pipe */
      n = read (child->stdout_fd, &c, 1);
      if (n <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                       "Child %d closed its output (got “%s”)", (int) child->pid, line->str);
          g_string_free (line, TRUE);
          return NULL;
        }
      if (c == '\n')
        return g_string_free (line, FALSE);
      g_string_append_c (line, c);
    }
}

void
bench_child_stop (BenchChild *child)
{
  int status;

  if (child->pid <= 0)
    return;

  kill (child->pid, SIGTERM);
  for (guint i = 0; i < 200; i++)
    {
      if (waitpid (child->pid, &status, WNOHANG) == child->pid)
        goto reaped;
      g_usleep (10000);
    }
  kill (child->pid, SIGKILL);
  waitpid (child->pid, &status, 0);

reaped:
  if (child->stdout_fd >= 0)
    close (child->stdout_fd);
  child->pid = 0;
  child->stdout_fd = -1;
}

guint16
bench_parse_port (const char *line)
{
  const char *colon = strrchr (line, ':');

  return colon != NULL ? (guint16) g_ascii_strtoull (colon + 1, NULL, 10) : 0;
}

guint16
bench_parse_registered_port (const char *line)
{
  const char *port = strstr (line, "port ");

  return port != NULL ? (guint16) g_ascii_strtoull (port + 5, NULL, 10) : 0;
}

const char *
bench_tool_path (void)
{
  const char *path = g_getenv ("RNDZ_TOOL");

  return path != NULL && *path != '\0' ? path : RNDZ_TOOL_PATH;
}
