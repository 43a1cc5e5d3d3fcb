/* bench-server.c: a RndzServer in a process of its own, for benchmarks
 *
 * SPDX-License-Identifier: MIT
 *
 * What `rndz server` does, with the limits a benchmark needs that the
 * command line does not offer: the request rate (one connector asking for
 * one listener over and over), and large connection and peer limits.
 *
 *   bench-server [--port PORT] [--request-rate N] [--max-connections N]
 *                [--max-peers N]
 *
 * Prints "Listening on 127.0.0.1:PORT" and serves until SIGTERM or SIGINT.
 */

#include <glib-unix.h>
#include <rndz-glib/rndz.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static gint opt_port = 0;
static gint opt_request_rate = G_MAXUINT16;
static gint opt_max_connections = 20000;
static gint opt_max_peers = 2000000;

static const GOptionEntry entries[] = {
  { "port", 0, 0, G_OPTION_ARG_INT, &opt_port, "Port on 127.0.0.1 (default: any)", "PORT" },
  { "request-rate", 0, 0, G_OPTION_ARG_INT, &opt_request_rate, "Forwarded requests per second and address", "N" },
  { "max-connections", 0, 0, G_OPTION_ARG_INT, &opt_max_connections, "TCP connections at most", "N" },
  { "max-peers", 0, 0, G_OPTION_ARG_INT, &opt_max_peers, "Registered peers at most", "N" },
  { NULL }
};

static gboolean
quit_cb (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
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

  address = g_inet_socket_address_new (loopback, (guint16) opt_port);
  if (!rndz_server_listen (server, address, &error))
    {
      g_printerr ("bench-server: %s\n", error->message);
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
