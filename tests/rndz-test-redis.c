/* rndz-test-redis.c: a redis-server of the test's own, and raw commands
 *
 * SPDX-License-Identifier: MIT
 */

#include "rndz-test-redis.h"
#include "rndz-test-util.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

/* One inline command to Redis on 127.0.0.1:@port, its whole reply (up
 * to 511 bytes), or NULL if Redis did not answer */
char *
rndz_test_redis_command (guint16     port,
                         const char *command)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", port);
  g_autofree char *line = g_strconcat (command, "\r\n", NULL);
  char reply[512];
  gssize len;

  g_socket_client_set_timeout (client, 2);
  /* No proxy resolver (libproxy throws C++ exceptions, which the
   * sanitizer build cannot intercept): a plain connect on loopback */
  g_socket_client_set_enable_proxy (client, FALSE);
  connection = g_socket_client_connect_to_host (client, host, 0, NULL, NULL);
  if (connection == NULL)
    return NULL;
  if (!g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                  line, strlen (line), NULL, NULL, NULL))
    return NULL;
  len = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                             reply, sizeof reply - 1, NULL, NULL);
  if (len <= 0)
    return NULL;
  return g_strndup (reply, len);
}

typedef struct
{
  guint16 port;
  const char *command;
  const char *reply;
} RedisWait;

static gboolean
redis_replied (gpointer data)
{
  RedisWait *wait = data;
  g_autofree char *reply = rndz_test_redis_command (wait->port, wait->command);

  return g_strcmp0 (reply, wait->reply) == 0;
}

/* Waits, @timeout_ms at most, for Redis to give @reply to @command,
 * while the default main context runs */
gboolean
rndz_test_redis_wait (guint16     port,
                      const char *command,
                      const char *reply,
                      guint       timeout_ms)
{
  RedisWait wait = { port, command, reply };

  return rndz_test_poll_until (redis_replied, &wait, timeout_ms);
}

static gboolean
redis_answers (guint16 port)
{
  g_autofree char *reply = rndz_test_redis_command (port, "PING");

  return g_strcmp0 (reply, "+PONG\r\n") == 0;
}

/* Whether there is a redis-server to start; if not, the test is
 * marked skipped */
gboolean
rndz_test_redis_installed (void)
{
  g_autofree char *program = g_find_program_in_path ("redis-server");

  if (program == NULL)
    g_test_skip ("redis-server is not installed (scripts/install-deps.sh installs it)");
  return program != NULL;
}

/* Redis goes when the test does, whatever ends it */
static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* A redis-server on 127.0.0.1:@port (and ::1 where there is IPv6),
 * working in @dir (it saves nothing there), once it answers PING;
 * an error if it did not within @timeout_ms. A port it had before
 * rndz_test_redis_stop() can start it again. */
RndzTestRedis *
rndz_test_redis_start (const char  *dir,
                       guint16      port,
                       guint        timeout_ms,
                       GError     **error)
{
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  const char *bind = rndz_test_have_ipv6 () ? "127.0.0.1 ::1" : "127.0.0.1";
  const char *argv[] = { "redis-server", "--port", port_text, "--bind", bind,
                         "--save", "", "--appendonly", "no", "--dir", dir,
                         "--loglevel", "warning", NULL };
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(RndzTestRedis) redis = g_new0 (RndzTestRedis, 1);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  /* The sanitizer build preloads its runtime; Redis is not built with it */
  g_subprocess_launcher_unsetenv (launcher, "LD_PRELOAD");
  redis->port = port;
  redis->process = g_subprocess_launcher_spawnv (launcher, argv, error);
  if (redis->process == NULL)
    return NULL;
  /* Without running the main context: nodes of the test's keep their
   * own pace of reconnecting, as if Redis had been there at once */
  while (!redis_answers (port))
    {
      if (g_get_monotonic_time () >= deadline)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "redis-server on port %u did not answer within %u ms", port, timeout_ms);
          return NULL;
        }
      g_usleep (20 * 1000);
    }
  return g_steal_pointer (&redis);
}

/* Kills Redis, and frees @redis */
void
rndz_test_redis_stop (RndzTestRedis *redis)
{
  if (redis->process != NULL)
    {
      g_subprocess_send_signal (redis->process, SIGKILL);
      g_subprocess_wait (redis->process, NULL, NULL);
      g_object_unref (redis->process);
    }
  g_free (redis);
}

/* A raw connection to Redis on 127.0.0.1:@port, with a timeout of 5 s
 * on each read and write */
GSocket *
rndz_test_redis_connect (guint16 port)
{
  g_autoptr(GSocketAddress) address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  g_autoptr(GError) error = NULL;
  GSocket *socket;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (socket, address, NULL, &error));
  g_socket_set_timeout (socket, 5);
  return socket;
}

/* Sends the command of the @n arguments @args, of lengths @lens, in RESP */
void
rndz_test_redis_send (GSocket    *socket,
                      const char *args[],
                      const gsize lens[],
                      guint       n)
{
  g_autoptr(GString) command = g_string_new (NULL);

  g_string_append_printf (command, "*%u\r\n", n);
  for (guint i = 0; i < n; i++)
    {
      g_string_append_printf (command, "$%" G_GSIZE_FORMAT "\r\n", lens[i]);
      g_string_append_len (command, args[i], lens[i]);
      g_string_append (command, "\r\n");
    }
  g_assert_cmpint (g_socket_send (socket, command->str, command->len, NULL, NULL), ==,
                   command->len);
}

/* Reads, @timeout_ms at most, until a message on @channel came; returns
 * its payload, of length *@len */
char *
rndz_test_redis_read_message (GSocket    *socket,
                              const char *channel,
                              gsize      *len,
                              guint       timeout_ms)
{
  g_autoptr(GString) in = g_string_new (NULL);
  g_autofree char *marker = g_strdup_printf ("\r\n%s\r\n$", channel);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (g_get_monotonic_time () < deadline)
    {
      char chunk[4096];
      gssize n = g_socket_receive (socket, chunk, sizeof chunk, NULL, NULL);
      const char *at, *data;
      guint64 size;

      g_assert_cmpint (n, >, 0);
      g_string_append_len (in, chunk, n);
      at = strstr (in->str, marker);
      if (at == NULL)
        continue;
      size = g_ascii_strtoull (at + strlen (marker), (char **) &data, 10);
      data += 2;
      if ((gsize) (data - in->str) + size > in->len)
        continue;
      *len = size;
      return g_memdup2 (data, size);
    }
  g_error ("No message on %s within %u ms", channel, timeout_ms);
}
