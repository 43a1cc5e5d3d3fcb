/* bench-server.c: a RndzServer in a process of its own, for benchmarks
 *
 * SPDX-License-Identifier: MIT
 *
 * What `rndz server` does, with the limits a benchmark needs that the
 * command line does not offer: the request rate (one connector asking for
 * one listener over and over), and large connection and peer limits.
 *
 *   bench-server [--port PORT] [--request-rate N] [--max-connections N]
 *                [--max-peers N] [--reuse-port]
 *                [--cluster redis://127.0.0.1:PORT --cluster-secret SECRET]
 *
 * Prints "Listening on 127.0.0.1:PORT" and serves until SIGTERM or SIGINT.
 * With --cluster it is one node of a cluster, and prints that line only
 * once it reaches Redis (it gives up after 5 s).
 */

#include <glib-unix.h>
#include <rndz-glib/rndz.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gint opt_port = 0;
static gint opt_request_rate = G_MAXUINT16;
static gint opt_max_connections = 20000;
static gint opt_max_peers = 2000000;
static gboolean opt_reuse_port = FALSE;
static char *opt_cluster = NULL;
static char *opt_cluster_secret = NULL;

static const GOptionEntry entries[] = {
  { "port", 0, 0, G_OPTION_ARG_INT, &opt_port, "Port on 127.0.0.1 (default: any)", "PORT" },
  { "request-rate", 0, 0, G_OPTION_ARG_INT, &opt_request_rate, "Forwarded requests per second and address", "N" },
  { "max-connections", 0, 0, G_OPTION_ARG_INT, &opt_max_connections, "TCP connections at most", "N" },
  { "max-peers", 0, 0, G_OPTION_ARG_INT, &opt_max_peers, "Registered peers at most", "N" },
  { "reuse-port", 0, 0, G_OPTION_ARG_NONE, &opt_reuse_port, "Share the port with other processes (SO_REUSEPORT)", NULL },
  { "cluster", 0, 0, G_OPTION_ARG_STRING, &opt_cluster, "Be a node of the cluster of this Redis", "redis://127.0.0.1:PORT" },
  { "cluster-secret", 0, 0, G_OPTION_ARG_STRING, &opt_cluster_secret, "The secret the nodes share", "SECRET" },
  { NULL }
};

static gboolean
quit_cb (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

static gboolean
expired_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* A node that does not reach Redis is of no use to a cluster benchmark.
 * The state changes on the main context: iterate it until then. */
static gboolean
wait_cluster_connected (RndzServer *server)
{
  gboolean expired = FALSE;
  g_autoptr(GSource) timeout = g_timeout_source_new (5000);

  g_source_set_callback (timeout, expired_cb, &expired, NULL);
  g_source_attach (timeout, NULL);
  while (!rndz_server_get_cluster_connected (server) && !expired)
    g_main_context_iteration (NULL, TRUE);
  g_source_destroy (timeout);
  return rndz_server_get_cluster_connected (server);
}

static void
configure_cluster (RndzServer *server)
{
  g_autoptr(GBytes) secret = NULL;

  rndz_server_set_reuse_port (server, opt_reuse_port);
  if (opt_cluster == NULL)
    return;

  rndz_server_set_cluster (server, opt_cluster);
  if (opt_cluster_secret != NULL)
    {
      secret = g_bytes_new (opt_cluster_secret, strlen (opt_cluster_secret));
      rndz_server_set_cluster_secret (server, secret);
    }
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GMainLoop) loop = NULL;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bench-server: %s\n", error->message);
      return EXIT_FAILURE;
    }
  /* A port is a guint16: refuse what a cast would wrap */
  if (opt_port < 0 || opt_port > G_MAXUINT16)
    {
      g_printerr ("bench-server: --port %d is not a port (0 to %u)\n", opt_port, G_MAXUINT16);
      return EXIT_FAILURE;
    }

  server = rndz_server_new ();
  rndz_server_set_request_rate (server, CLAMP (opt_request_rate, 1, G_MAXUINT16));
  rndz_server_set_max_connections (server, MAX (opt_max_connections, 1));
  rndz_server_set_max_peers (server, MAX (opt_max_peers, 1));
  configure_cluster (server);

  address = g_inet_socket_address_new (loopback, (guint16) opt_port);
  if (!rndz_server_listen (server, address, &error))
    {
      g_printerr ("bench-server: %s\n", error->message);
      return EXIT_FAILURE;
    }
  if (opt_cluster != NULL && !wait_cluster_connected (server))
    {
      g_printerr ("bench-server: no connection to %s\n", opt_cluster);
      return EXIT_FAILURE;
    }

  g_print ("Listening on 127.0.0.1:%u\n", rndz_server_get_port (server));
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGTERM, quit_cb, loop);
  g_unix_signal_add (SIGINT, quit_cb, loop);
  g_main_loop_run (loop);

  rndz_server_stop (server);
  return EXIT_SUCCESS;
}
