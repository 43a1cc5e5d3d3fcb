/* main.c: a program that uses rndz-glib from subprojects/
 *
 * SPDX-License-Identifier: MIT
 *
 * A server on 127.0.0.1, port 0, and a client that registers with it
 * over UDP; prints the library's version and the port, within 10 s.
 */

#include <stdlib.h>

#include <rndz-glib/rndz.h>

/* The library's headers are in reach as <rndz-glib/...>, not by their
 * bare names: its private headers stay out of a user's include path */
#if __has_include ("rndz-message-private.h") || __has_include ("rndz-server.h")
#error "rndz-glib's dependency puts its source directory in the include path"
#endif

typedef struct
{
  GMainLoop *loop;
  GSocket *socket;
  gboolean failed;
} Run;

/* Registered: the listening socket is there, and the server answered */
static void
check_registered (Run        *run,
                  RndzClient *client)
{
  if (run->socket != NULL && rndz_client_get_state (client) == RNDZ_CLIENT_STATE_REGISTERED)
    g_main_loop_quit (run->loop);
}

static void
state_cb (GObject    *object,
          GParamSpec *pspec,
          gpointer    user_data)
{
  check_registered (user_data, RNDZ_CLIENT (object));
}

static void
listen_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Run *run = user_data;
  g_autoptr(GError) error = NULL;

  run->socket = rndz_client_listen_udp_finish (RNDZ_CLIENT (object), result, &error);
  if (run->socket == NULL)
    {
      g_printerr ("Cannot register: %s\n", error->message);
      run->failed = TRUE;
      g_main_loop_quit (run->loop);
      return;
    }
  check_registered (run, RNDZ_CLIENT (object));
}

static gboolean
timeout_cb (gpointer user_data)
{
  Run *run = user_data;

  g_printerr ("Not registered within 10 s\n");
  run->failed = TRUE;
  g_main_loop_quit (run->loop);
  return G_SOURCE_REMOVE;
}

int
main (void)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(RndzClient) client = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GError) error = NULL;
  g_autofree char *server_text = NULL;
  const char *servers[2] = { NULL, NULL };
  Run run = { NULL, };
  GEnumClass *states;
  guint timeout_id;

  if (!rndz_server_listen (server, address, &error))
    {
      g_printerr ("Cannot listen: %s\n", error->message);
      return EXIT_FAILURE;
    }
  server_text = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (server));
  servers[0] = server_text;

  run.loop = g_main_loop_new (NULL, FALSE);
  client = rndz_client_new ("subproject", servers);
  g_signal_connect (client, "notify::state", G_CALLBACK (state_cb), &run);
  rndz_client_listen_udp_async (client, NULL, listen_cb, &run);
  timeout_id = g_timeout_add_seconds (10, timeout_cb, &run);
  g_main_loop_run (run.loop);

  if (run.failed)
    return EXIT_FAILURE;
  g_source_remove (timeout_id);

  /* The generated headers: rndz-version.h and rndz-enum-types.h */
  states = g_type_class_ref (RNDZ_TYPE_CLIENT_STATE);
  g_print ("rndz-glib %s: registered with %s, state %s, port %u\n", RNDZ_VERSION_S,
           server_text, g_enum_get_value (states, rndz_client_get_state (client))->value_nick,
           rndz_client_get_local_port (client));
  g_type_class_unref (states);

  rndz_client_stop (client);
  rndz_server_stop (server);
  g_clear_object (&run.socket);
  g_main_loop_unref (run.loop);
  return EXIT_SUCCESS;
}
