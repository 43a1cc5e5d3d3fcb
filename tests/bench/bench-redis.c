/* bench-redis.c: a redis-server of the benchmark's own, and what it says
 *
 * SPDX-License-Identifier: MIT
 */

#define _GNU_SOURCE
#include "bench-redis.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <hiredis/hiredis.h>

#define START_TIMEOUT_MS 5000

struct _BenchRedis
{
  pid_t pid;
  guint16 port;
  char *dir;
  char *log;
  char *url;
  redisContext *ctx;
};

/* A port nobody listens on now; redis-server binds it a moment later */
static guint16
free_port (GError **error)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof sin;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  guint16 port = 0;

  if (fd >= 0 && bind (fd, (struct sockaddr *) &sin, sizeof sin) == 0 &&
      getsockname (fd, (struct sockaddr *) &sin, &len) == 0)
    port = ntohs (sin.sin_port);
  else
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "No free port: %s", g_strerror (errno));
  if (fd >= 0)
    close (fd);
  return port;
}

static pid_t
spawn_redis (const char  *program,
             BenchRedis  *redis,
             GError     **error)
{
  g_autofree char *port = g_strdup_printf ("%u", redis->port);
  const char *argv[] = { program, "--port", port, "--bind", "127.0.0.1",
                         "--save", "", "--appendonly", "no", "--dir", redis->dir,
                         "--logfile", redis->log, "--loglevel", "warning", NULL };
  pid_t pid = fork ();

  if (pid < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "fork: %s", g_strerror (errno));
      return -1;
    }
  if (pid == 0)
    {
      /* Only async-signal-safe calls from here on. Redis goes when the
       * benchmark does, whatever ends it. */
      int null = open ("/dev/null", O_RDWR);

      prctl (PR_SET_PDEATHSIG, SIGKILL);
      if (null >= 0)
        {
          dup2 (null, STDIN_FILENO);
          dup2 (null, STDOUT_FILENO);
          dup2 (null, STDERR_FILENO);
        }
      execv (argv[0], (char * const *) argv);
      _exit (127);
    }
  return pid;
}

/* Connects, retrying until Redis answers a PING or the time is up */
static gboolean
connect_redis (BenchRedis  *redis,
               GError     **error)
{
  gint64 deadline = g_get_monotonic_time () + START_TIMEOUT_MS * 1000;
  struct timeval timeout = { 1, 0 };

  while (g_get_monotonic_time () < deadline)
    {
      redisReply *reply;

      if (waitpid (redis->pid, NULL, WNOHANG) == redis->pid)
        {
          redis->pid = 0;
          break;
        }
      redis->ctx = redisConnectWithTimeout ("127.0.0.1", redis->port, timeout);
      if (redis->ctx != NULL && !redis->ctx->err &&
          (reply = redisCommand (redis->ctx, "PING")) != NULL)
        {
          gboolean pong = reply->type == REDIS_REPLY_STATUS;

          freeReplyObject (reply);
          if (pong)
            return redisSetTimeout (redis->ctx, timeout) == REDIS_OK;
        }
      g_clear_pointer (&redis->ctx, redisFree);
      g_usleep (20 * 1000);
    }

  g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
               "redis-server on port %u did not answer within %d ms (see %s)",
               redis->port, START_TIMEOUT_MS, redis->log);
  return FALSE;
}

static void
remove_dir (BenchRedis *redis)
{
  if (redis->log != NULL)
    g_unlink (redis->log);
  if (redis->dir != NULL)
    g_rmdir (redis->dir);
  g_clear_pointer (&redis->log, g_free);
  g_clear_pointer (&redis->dir, g_free);
}

BenchRedis *
bench_redis_start (GError **error)
{
  g_autofree char *program = g_find_program_in_path ("redis-server");
  BenchRedis *redis;

  if (program == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                           "redis-server is not installed (scripts/install-deps.sh installs it)");
      return NULL;
    }

  redis = g_new0 (BenchRedis, 1);
  redis->dir = g_dir_make_tmp ("rndz-bench-redis-XXXXXX", error);
  if (redis->dir == NULL || (redis->port = free_port (error)) == 0)
    goto fail;
  redis->log = g_build_filename (redis->dir, "redis.log", NULL);
  redis->url = g_strdup_printf ("redis://127.0.0.1:%u", redis->port);
  redis->pid = spawn_redis (program, redis, error);
  if (redis->pid < 0)
    goto fail;
  if (!connect_redis (redis, error))
    {
      /* Keep the log that the error names */
      g_clear_pointer (&redis->log, g_free);
      g_clear_pointer (&redis->dir, g_free);
      goto fail;
    }

  /* Redis is up in its directory with its log open: neither needs a name
   * any more, and a benchmark killed from now on leaves nothing behind */
  remove_dir (redis);
  return redis;

fail:
  bench_redis_stop (redis);
  return NULL;
}

void
bench_redis_stop (BenchRedis *redis)
{
  if (redis == NULL)
    return;

  g_clear_pointer (&redis->ctx, redisFree);
  if (redis->pid > 0)
    {
      kill (redis->pid, SIGKILL);
      waitpid (redis->pid, NULL, 0);
    }
  remove_dir (redis);
  g_free (redis->url);
  g_free (redis);
}

pid_t
bench_redis_pid (BenchRedis *redis)
{
  return redis->pid;
}

const char *
bench_redis_url (BenchRedis *redis)
{
  return redis->url;
}

/* Runs @command; the reply, or NULL with @error set */
static redisReply *
run_command (BenchRedis  *redis,
             const char  *command,
             GError     **error)
{
  redisReply *reply = redisCommand (redis->ctx, command);

  if (reply == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Redis %s: %s", command, redis->ctx->errstr);
      return NULL;
    }
  if (reply->type == REDIS_REPLY_ERROR)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Redis %s: %s", command, reply->str);
      freeReplyObject (reply);
      return NULL;
    }
  return reply;
}

char *
bench_redis_info (BenchRedis  *redis,
                  const char  *section,
                  GError     **error)
{
  g_autofree char *command = g_strdup_printf ("INFO %s", section);
  redisReply *reply = run_command (redis, command, error);
  char *text = NULL;

  if (reply == NULL)
    return NULL;
  if (reply->type == REDIS_REPLY_STRING)
    text = g_strndup (reply->str, reply->len);
  else
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Redis %s: not a string", command);
  freeReplyObject (reply);
  return text;
}

gdouble
bench_redis_info_field (const char *info,
                        const char *name)
{
  g_autofree char *needle = g_strdup_printf ("\n%s:", name);
  const char *p;

  if (info == NULL)
    return -1;
  if (g_str_has_prefix (info, needle + 1))
    p = info + strlen (needle + 1);
  else if ((p = strstr (info, needle)) != NULL)
    p += strlen (needle);
  else
    return -1;
  return g_ascii_strtod (p, NULL);
}

guint64
bench_redis_info_calls (const char *info,
                        const char *command)
{
  g_autofree char *needle = g_strdup_printf ("cmdstat_%s:calls=", command);
  const char *p = info != NULL ? strstr (info, needle) : NULL;

  return p != NULL ? g_ascii_strtoull (p + strlen (needle), NULL, 10) : 0;
}

gint64
bench_redis_integer (BenchRedis  *redis,
                     const char  *command,
                     GError     **error)
{
  redisReply *reply = run_command (redis, command, error);
  gint64 value = -1;

  if (reply == NULL)
    return -1;
  if (reply->type == REDIS_REPLY_INTEGER)
    value = reply->integer;
  else
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Redis %s: not an integer", command);
  freeReplyObject (reply);
  return value;
}

gboolean
bench_redis_command (BenchRedis  *redis,
                     const char  *command,
                     GError     **error)
{
  redisReply *reply = run_command (redis, command, error);

  if (reply == NULL)
    return FALSE;
  freeReplyObject (reply);
  return TRUE;
}

gboolean
bench_redis_pipeline_sets (BenchRedis  *redis,
                           guint        n,
                           guint        depth,
                           GError     **error)
{
  depth = MAX (depth, 1);
  for (guint done = 0; done < n; done += depth)
    {
      guint k = MIN (depth, n - done);

      for (guint i = 0; i < k; i++)
        redisAppendCommand (redis->ctx, "SET rndz:bench:udp:peer-%07u 0123456789abcdef PX 90000", done + i);
      for (guint i = 0; i < k; i++)
        {
          redisReply *reply = NULL;

          if (redisGetReply (redis->ctx, (void **) &reply) != REDIS_OK || reply == NULL)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "Redis SET: %s", redis->ctx->errstr);
              return FALSE;
            }
          freeReplyObject (reply);
        }
    }
  return TRUE;
}
