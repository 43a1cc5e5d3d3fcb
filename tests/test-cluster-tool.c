/* test-cluster-tool.c: `rndz server --cluster` and `--reuse-port`, as processes
 *
 * SPDX-License-Identifier: MIT
 *
 * Each test starts its own redis-server on a free loopback port, in a
 * temporary directory, without persistence, then `rndz server` nodes
 * and `rndz client` peers, each its own process, as an operator would.
 * Every child dies with the test (PR_SET_PDEATHSIG), however it ends.
 */

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#include "rndz-test-program.h"
#include "rndz-test-redis.h"
#include "rndz-test-util.h"

#define WAIT_MS 5000
#define N_NODES 3

typedef struct
{
  RndzTestRedis *redis;
  char *dir;
  guint16 redis_port;
  char *url;
  char *secret_file;
  RndzTestProgram *nodes[N_NODES];
  char *addresses[N_NODES];
  char *ids[N_NODES];
} Fixture;

/* Programs */

/* A critical warning is a bug: the program dies of it, and the test
 * sees that */
static const char * const strict_env[] = { "G_DEBUG", "gc-friendly,fatal-criticals", NULL };

static gboolean
program_said (gpointer data)
{
  const char * const *what = data;
  g_autofree char *err = NULL;

  return g_file_get_contents (what[0], &err, NULL, NULL) && strstr (err, what[1]) != NULL;
}

/* Waits, WAIT_MS at most, for @text on the program's standard error */
static gboolean
program_wait_err (RndzTestProgram *program,
                  const char      *text)
{
  const char *what[] = { program->err_path, text };

  return rndz_test_poll_until (program_said, what, WAIT_MS);
}

/* Redis */

static void
redis_start (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  f->redis = rndz_test_redis_start (f->dir, f->redis_port, WAIT_MS, &error);
  g_assert_no_error (error);
}

/* Nodes */

/* The file of the standard error of program @name @i */
static char *
fixture_path (Fixture    *f,
              const char *name,
              guint       i)
{
  g_autofree char *file = g_strdup_printf ("%s%u.err", name, i);

  return g_build_filename (f->dir, file, NULL);
}

/* Node @i, a `rndz server` on @listen in the fixture's cluster, once it
 * reads its channel in Redis: it gets the other nodes' messages */
static void
node_start (Fixture    *f,
            guint       i,
            const char *listen,
            gboolean    reuse_port)
{
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", listen,
                         "--forward-timeout", "1", "--cluster", f->url,
                         "--cluster-secret-file", f->secret_file,
                         reuse_port ? "--reuse-port" : NULL, NULL };
  g_autofree char *err_path = fixture_path (f, "node", i);
  g_autofree char *line = NULL;
  g_autofree char *expected = g_strdup_printf (" through %s", f->url);
  char *node;
  g_autofree char *numsub = NULL;
  g_autofree char *subscribed = NULL;

  f->nodes[i] = rndz_test_program_start (argv, strict_env, err_path, NULL);
  line = rndz_test_program_read_line (f->nodes[i]);
  g_assert_true (g_str_has_prefix (line, "Listening on "));
  f->addresses[i] = g_strdup (line + strlen ("Listening on "));

  g_clear_pointer (&line, g_free);
  line = rndz_test_program_read_line (f->nodes[i]);
  g_assert_true (g_str_has_prefix (line, "Cluster node "));
  g_assert_true (g_str_has_suffix (line, expected));
  node = g_strndup (line + strlen ("Cluster node "),
                    strlen (line) - strlen ("Cluster node ") - strlen (expected));
  g_assert_cmpuint (strlen (node), ==, 16);
  f->ids[i] = node;

  numsub = g_strdup_printf ("PUBSUB NUMSUB rndz:node:%s", node);
  subscribed = g_strdup_printf ("*2\r\n$26\r\nrndz:node:%s\r\n:1\r\n", node);
  g_assert_true (rndz_test_redis_wait (f->redis_port, numsub, subscribed, WAIT_MS));
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  if (!rndz_test_redis_installed ())
    return;

  f->dir = g_dir_make_tmp ("rndz-cluster-tool-XXXXXX", NULL);
  g_assert_nonnull (f->dir);
  f->redis_port = rndz_test_free_port ();
  f->url = g_strdup_printf ("redis://127.0.0.1:%u", f->redis_port);
  f->secret_file = g_build_filename (f->dir, "cluster-secret", NULL);
  g_assert_true (g_file_set_contents (f->secret_file, "the nodes' own secret\n", -1, NULL));
  redis_start (f);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  for (guint i = 0; i < N_NODES; i++)
    {
      g_clear_pointer (&f->nodes[i], rndz_test_program_free);
      g_clear_pointer (&f->addresses[i], g_free);
      g_clear_pointer (&f->ids[i], g_free);
    }
  g_clear_pointer (&f->redis, rndz_test_redis_stop);
  if (f->dir != NULL)
    {
      g_autofree char *dump = g_build_filename (f->dir, "dump.rdb", NULL);

      g_unlink (dump);
      g_unlink (f->secret_file);
      g_rmdir (f->dir);
    }
  g_clear_pointer (&f->dir, g_free);
  g_clear_pointer (&f->url, g_free);
  g_clear_pointer (&f->secret_file, g_free);
}

/* Peers */

/* `rndz client` alice, listening through @address, once her node has
 * published her in Redis */
static RndzTestProgram *
listener_start (Fixture    *f,
                const char *address,
                gboolean    tcp)
{
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "alice",
                         "--server-addr", address, tcp ? "--tcp" : NULL, NULL };
  g_autofree char *err_path = fixture_path (f, "listener", tcp);
  g_autofree char *line = NULL;
  g_autofree char *exists = g_strdup_printf ("EXISTS rndz:peer:%s:alice", tcp ? "tcp" : "udp");
  RndzTestProgram *listener = rndz_test_program_start (argv, strict_env, err_path, NULL);

  line = rndz_test_program_read_line (listener);
  g_assert_true (g_str_has_prefix (line, "Registered as alice on port "));
  g_assert_true (rndz_test_redis_wait (f->redis_port, exists, ":1\r\n", WAIT_MS));
  return listener;
}

/* `rndz client` bob, reaching alice through @address: her echo of his
 * message comes back */
static void
assert_echo (const char *address,
             gboolean    tcp)
{
  const char *argv[] = { rndz_test_tool_path (), "client", "--id", "bob", "--server-addr", address,
                         "--remote-peer", "alice", "--message", "across the fleet",
                         "--timeout", "10", tcp ? "--tcp" : NULL, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = rndz_test_run_program (argv, NULL, &out, &err);

  if (status != 0)
    g_test_message ("rndz client: %s", err);
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpstr (out, ==, "across the fleet\n");
}

/* Tests */

static void
test_across (Fixture       *f,
             const char    *listen,
             gboolean       tcp)
{
  g_autoptr(RndzTestProgram) listener = NULL;

  for (guint i = 0; i < N_NODES; i++)
    node_start (f, i, listen, FALSE);

  listener = listener_start (f, f->addresses[0], tcp);
  assert_echo (f->addresses[2], tcp);
  assert_echo (f->addresses[1], tcp);
}

static void
test_across_ipv4 (Fixture       *f,
                  gconstpointer  data)
{
  g_test_summary ("Three `rndz server --cluster` processes share one Redis: a connector "
                  "on node 3, then node 2, reaches the listener of node 1");
  if (f->redis == NULL)
    return;

  test_across (f, "127.0.0.1:0", GPOINTER_TO_INT (data));
}

static void
test_across_ipv6 (Fixture       *f,
                  gconstpointer  data)
{
  g_test_summary ("The nodes and their peers on ::1, Redis at redis://[::1]:PORT");
  if (f->redis == NULL)
    return;
  if (!rndz_test_have_ipv6 ())
    {
      g_test_skip ("No IPv6 on this machine");
      return;
    }

  g_free (f->url);
  f->url = g_strdup_printf ("redis://[::1]:%u", f->redis_port);
  test_across (f, "[::1]:0", GPOINTER_TO_INT (data));
}

static void
test_reuse_port (Fixture       *f,
                 gconstpointer  data)
{
  g_autofree char *listen = g_strdup_printf ("127.0.0.1:%u", rndz_test_free_port ());
  g_autoptr(RndzTestProgram) udp_listener = NULL;
  g_autoptr(RndzTestProgram) tcp_listener = NULL;

  g_test_summary ("Two `rndz server --reuse-port` nodes of one cluster on one port both "
                  "start, and peers of that one address reach each other through them");
  if (f->redis == NULL)
    return;

  node_start (f, 0, listen, TRUE);
  node_start (f, 1, listen, TRUE);
  g_assert_cmpstr (f->addresses[0], ==, listen);
  g_assert_cmpstr (f->addresses[1], ==, listen);

  udp_listener = listener_start (f, listen, FALSE);
  tcp_listener = listener_start (f, listen, TRUE);
  /* Which node a peer lands on is the kernel's choice: a few connectors
   * from different ports land on both, with alice on one of them */
  for (guint i = 0; i < 4; i++)
    {
      assert_echo (listen, FALSE);
      assert_echo (listen, TRUE);
    }
}

static void
test_port_in_use (void)
{
  guint16 port = rndz_test_free_port ();
  g_autofree char *listen = g_strdup_printf ("127.0.0.1:%u", port);
  g_autofree char *dir = g_dir_make_tmp ("rndz-cluster-tool-XXXXXX", NULL);
  g_autofree char *err_path = g_build_filename (dir, "first.err", NULL);
  const char *first_argv[] = { rndz_test_tool_path (), "server", "--listen-addr", listen,
                               "--reuse-port", NULL };
  const char *second_argv[] = { rndz_test_tool_path (), "server", "--listen-addr", listen, NULL };
  g_autoptr(RndzTestProgram) first = NULL;
  g_autofree char *line = NULL;
  g_autofree char *out = NULL, *err = NULL;

  g_test_summary ("Without --reuse-port, a second server on a taken port fails clearly");

  first = rndz_test_program_start (first_argv, strict_env, err_path, NULL);
  line = rndz_test_program_read_line (first);
  g_assert_true (g_str_has_prefix (line, "Listening on "));

  g_assert_cmpint (rndz_test_run_program (second_argv, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  g_assert_nonnull (strstr (err, "Cannot listen on"));
  g_assert_nonnull (strstr (err, "in use"));

  g_clear_pointer (&first, rndz_test_program_free);
  g_rmdir (dir);
}

static void
test_redis_lost (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(RndzTestProgram) listener = NULL;
  g_autofree char *back = NULL;

  g_test_summary ("A node says on stderr, without --verbose, when Redis goes and comes back, "
                  "and survives the failed attempts meanwhile");
  if (f->redis == NULL)
    return;

  back = g_strdup_printf ("The cluster’s Redis at %s is back", f->url);
  node_start (f, 0, "127.0.0.1:0", FALSE);
  /* Redis shows the node's subscription before the node has read that
   * it holds: a peer the node published says the node took Redis as up,
   * and only then is there something to lose */
  listener = listener_start (f, f->addresses[0], FALSE);
  g_clear_pointer (&f->redis, rndz_test_redis_stop);
  g_assert_true (program_wait_err (f->nodes[0], "Lost the cluster’s Redis at "));
  /* Long enough for the node to try again, and fail, twice (after 200
   * and 400 ms): each failure frees a connection of its own */
  g_usleep (900 * 1000);
  redis_start (f);
  g_assert_true (program_wait_err (f->nodes[0], back));
}

/* The node that Redis says holds alice over UDP, or NULL */
static char *
redis_holder (Fixture *f)
{
  g_autofree char *reply = rndz_test_redis_command (f->redis_port, "GET rndz:peer:udp:alice");

  if (reply == NULL || !g_str_has_prefix (reply, "$16\r\n") || strlen (reply) != 5 + 16 + 2)
    return NULL;
  return g_strndup (reply + 5, 16);
}

typedef struct
{
  Fixture *f;
  const char *old;
} Takeover;

static gboolean
taken_over (gpointer data)
{
  Takeover *takeover = data;
  g_autofree char *holder = redis_holder (takeover->f);

  return holder != NULL && g_strcmp0 (holder, takeover->old) != 0;
}

static gboolean
published (gpointer data)
{
  g_autofree char *holder = redis_holder (data);

  return holder != NULL;
}

/* A peer of the library, here, with a keepalive of 1 s */
static RndzClient *
peer_new (const char *id,
          const char *server)
{
  const char *servers[] = { server, NULL };
  RndzClient *client = rndz_client_new (id, servers);

  rndz_client_set_timeout (client, 3000);
  rndz_client_set_keepalive_interval (client, 1000);
  return client;
}

static void
test_node_killed (Fixture       *f,
                  gconstpointer  data)
{
  g_autofree char *listen = g_strdup_printf ("127.0.0.1:%u", rndz_test_free_port ());
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GObject) object = NULL;
  g_autofree char *holder = NULL;
  Takeover takeover;
  guint killed = N_NODES;
  gint64 start;

  g_test_summary ("Three --reuse-port nodes on one port: when the node that holds a UDP "
                  "listener is killed (SIGKILL, its Redis key left behind), the listener's "
                  "next pings land on another node, which publishes it, within two "
                  "keepalive intervals, and a connector reaches it again");
  if (f->redis == NULL)
    return;

  for (guint i = 0; i < N_NODES; i++)
    node_start (f, i, listen, TRUE);

  alice = peer_new ("alice", listen);
  rndz_client_listen_udp_async (alice, NULL, rndz_test_async_cb, &result);
  rndz_test_wait_async (NULL, &result, WAIT_MS);
  socket = rndz_client_listen_udp_finish (alice, result, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_test_poll_until (published, f, WAIT_MS));

  holder = redis_holder (f);
  for (guint i = 0; i < N_NODES; i++)
    if (g_strcmp0 (f->ids[i], holder) == 0)
      killed = i;
  g_assert_cmpuint (killed, <, N_NODES);

  start = g_get_monotonic_time ();
  g_clear_pointer (&f->nodes[killed], rndz_test_program_free);
  takeover.f = f;
  takeover.old = holder;
  g_assert_true (rndz_test_poll_until (taken_over, &takeover, 2 * 1000 + 500));
  g_test_message ("taken over after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - start) / 1000);

  bob = peer_new ("bob", listen);
  g_clear_object (&result);
  rndz_client_connect_udp_async (bob, "alice", NULL, rndz_test_async_cb, &result);
  rndz_test_wait_async (NULL, &result, WAIT_MS);
  object = (GObject *) rndz_client_connect_udp_finish (bob, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (object);
}

/* Errors: exit status 1 and one clear line, before any "Listening on" */
static void
assert_fails (const char * const *argv,
              const char         *message)
{
  g_autofree char *out = NULL, *err = NULL;

  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_cmpstr (out, ==, "");
  if (strstr (err, message) == NULL)
    g_error ("expected “%s” in: %s", message, err);
}

static void
test_errors (void)
{
  const char *no_secret[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                              "--cluster", "redis://127.0.0.1:1", NULL };
  const char *empty_secret[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                            "--cluster", "redis://redis.example:6379",
                            "--cluster-secret-file", "/dev/null", NULL };
  const char *no_file[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                            "--cluster", "redis://127.0.0.1:1",
                            "--cluster-secret-file", "/nonexistent/secret", NULL };
  const char *no_cluster[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                               "--cluster-secret-file", "/dev/null", NULL };
  g_autofree char *dir = g_dir_make_tmp ("rndz-cluster-tool-XXXXXX", NULL);
  g_autofree char *secret = g_build_filename (dir, "secret", NULL);
  const char *bad_url_secret[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                                   "--cluster", "redis://redis.example:6379",
                                   "--cluster-secret-file", secret, NULL };

  g_test_summary ("--cluster without a secret, with a bad URL or an unreadable secret "
                  "file, and --cluster-secret-file alone, each exit 1 with a clear line");

  g_assert_true (g_file_set_contents (secret, "s\n", -1, NULL));
  assert_fails (no_secret, "--cluster needs a secret");
  assert_fails (empty_secret, "is empty");
  assert_fails (bad_url_secret, "Invalid cluster address “redis://redis.example:6379”");
  assert_fails (no_file, "--cluster-secret-file: ");
  assert_fails (no_cluster, "--cluster-secret-file needs --cluster");
  g_unlink (secret);
  g_rmdir (dir);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/cluster-tool/udp/across", Fixture, GINT_TO_POINTER (FALSE),
              fixture_set_up, test_across_ipv4, fixture_tear_down);
  g_test_add ("/cluster-tool/tcp/across", Fixture, GINT_TO_POINTER (TRUE),
              fixture_set_up, test_across_ipv4, fixture_tear_down);
  g_test_add ("/cluster-tool/udp/across-ipv6", Fixture, GINT_TO_POINTER (FALSE),
              fixture_set_up, test_across_ipv6, fixture_tear_down);
  g_test_add ("/cluster-tool/tcp/across-ipv6", Fixture, GINT_TO_POINTER (TRUE),
              fixture_set_up, test_across_ipv6, fixture_tear_down);
  g_test_add ("/cluster-tool/reuse-port", Fixture, NULL,
              fixture_set_up, test_reuse_port, fixture_tear_down);
  g_test_add ("/cluster-tool/udp/node-killed", Fixture, NULL,
              fixture_set_up, test_node_killed, fixture_tear_down);
  g_test_add ("/cluster-tool/redis-lost", Fixture, NULL,
              fixture_set_up, test_redis_lost, fixture_tear_down);
  g_test_add_func ("/cluster-tool/port-in-use", test_port_in_use);
  g_test_add_func ("/cluster-tool/errors", test_errors);

  return g_test_run ();
}
