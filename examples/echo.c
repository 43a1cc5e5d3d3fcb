/* echo.c: an echo service that peers reach through a rendezvous server
 *
 * SPDX-License-Identifier: MIT
 *
 * Three programs in one, to try rndz-glib on one machine or across NATs:
 *
 *   echo server [ADDRESS:PORT]
 *       run a rendezvous server (default 0.0.0.0:8888)
 *   echo listen SERVER:PORT ID [OPTIONS]
 *       register as ID and send back whatever peers send
 *   echo connect SERVER:PORT ID PEER [MESSAGE] [OPTIONS]
 *       reach the peer PEER; send MESSAGE and print the echo, or, without
 *       MESSAGE, send each line you type and print what comes back
 *
 * Options:
 *   --tcp                   TCP instead of UDP
 *   --insecure              a plain connection: no TLS or DTLS
 *   --identity FILE         who we are: the key and certificate in FILE
 *                           (created when missing); a fresh one otherwise
 *   --peer-fingerprint FP   connect only to a peer with this fingerprint;
 *                           listening, let in only the peer with it
 *
 * Connections are secure by default: TLS over TCP (the connection is a
 * GTlsConnection), DTLS over UDP (a RndzDtlsChannel). Each peer has an
 * identity, a key and a certificate; its fingerprint travels with the
 * rendezvous, and each side checks that the other has the key for it.
 *
 * Everything happens in one GMainLoop: rndz-glib's calls are asynchronous,
 * and each step goes on in the callback of the previous one.
 *
 * The listener is compatible with `rndz client --id ID --server-addr ...`
 * and the connector with `rndz client ... --remote-peer PEER`.
 */

#include <glib-unix.h>
#include <locale.h>
#include <gio/gio.h>
#include <gio/gunixinputstream.h>
#include <stdlib.h>
#include <string.h>

#include <rndz-glib/rndz.h>

/* Everything the callbacks need */
typedef struct
{
  GMainLoop *loop;
  int status;
  gboolean tcp;
  gboolean secure;              /* TLS or DTLS; FALSE with --insecure */
  const char *identity_path;    /* --identity */
  const char *pin;              /* --peer-fingerprint */
  const char *message;          /* connect: send this and quit on the echo */
  const char *peer_id;          /* connect: the peer */

  RndzClient *client;
  GSocket *socket;              /* UDP: the socket the rendezvous gave us */
  RndzDtlsChannel *channel;     /* UDP, secure, connecting: the channel to the peer */
  GIOStream *stream;            /* TCP, connecting: the connection to the peer
                                 * (a GTlsConnection when secure) */
} App;

static void
quit (App *app,
      int  status)
{
  app->status = status;
  g_main_loop_quit (app->loop);
}

static gboolean
on_signal (gpointer user_data)
{
  quit (user_data, EXIT_SUCCESS);
  return G_SOURCE_CONTINUE;
}

/* "1.2.3.4:8888" or "[::1]:8888" to an address a server can listen on */
static GSocketAddress *
parse_address (const char  *text,
               GError     **error)
{
  g_autoptr(GSocketConnectable) parsed = NULL;
  GSocketAddress *address;

  parsed = g_network_address_parse (text, 8888, error);
  if (parsed == NULL)
    return NULL;

  address = g_inet_socket_address_new_from_string (g_network_address_get_hostname (G_NETWORK_ADDRESS (parsed)),
                                                   g_network_address_get_port (G_NETWORK_ADDRESS (parsed)));
  if (address == NULL)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "\"%s\" is not an IP address and a port", text);
  return address;
}

/* The fingerprint of the certificate the peer of a TLS connection showed */
static char *
tls_peer_fingerprint (GIOStream *stream)
{
  GTlsConnection *connection = G_TLS_CONNECTION (stream);

  return rndz_fingerprint_from_certificate (g_tls_connection_get_peer_certificate (connection));
}

/* The server */

static void
on_peer_registered (RndzServer     *server,
                    const char     *id,
                    RndzTransport   transport,
                    GSocketAddress *address,
                    gpointer        user_data)
{
  g_autofree char *where = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));

  g_print ("Peer \"%s\" registered over %s from %s\n", id,
           transport == RNDZ_TRANSPORT_TCP ? "TCP" : "UDP", where);
}

static int
run_server (App        *app,
            const char *address_text)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  address = parse_address (address_text, &error);
  if (address == NULL || !rndz_server_listen (server, address, &error))
    {
      g_printerr ("Cannot serve on %s: %s\n", address_text, error->message);
      return EXIT_FAILURE;
    }

  g_signal_connect (server, "peer-registered", G_CALLBACK (on_peer_registered), NULL);
  g_print ("Serving on port %u\n", rndz_server_get_port (server));

  g_main_loop_run (app->loop);
  return app->status;
}

/* The listener */

static void
on_peer_request (RndzClient     *client,
                 const char     *peer_id,
                 GSocketAddress *address,
                 gpointer        user_data)
{
  g_autofree char *where = g_socket_connectable_to_string (G_SOCKET_CONNECTABLE (address));

  /* The peer is on its way: the library now opens our NAT for it.
   * (To turn peers away, connect to "authorize-peer" instead.) */
  g_print ("Peer \"%s\" at %s is coming\n", peer_id, where);
}

/* UDP: every datagram goes back where it came from */
static gboolean
on_datagram (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  g_autoptr(GSocketAddress) sender = NULL;
  char buffer[2048];
  gssize size;

  size = g_socket_receive_from (socket, &sender, buffer, sizeof buffer, NULL, NULL);
  if (size > 0)
    {
      g_print ("Echoing %" G_GSSIZE_FORMAT " bytes\n", size);
      g_socket_send_to (socket, sender, buffer, size, NULL, NULL);
    }
  return G_SOURCE_CONTINUE;
}

/* UDP: a peer that came through the rendezvous, on a socket of its own
 * (directly, through the server's relay, or through our NAT's port for
 * it alone). Only its datagrams come on @socket, and never a message of
 * the rendezvous protocol: they are echoed. */
static void
on_peer_socket (RndzClient *client,
                const char *peer_id,
                GSocket    *socket,
                gpointer    user_data)
{
  GSource *watch;

  g_print ("Peer \"%s\" comes in (%s)\n", peer_id,
           rndz_socket_get_path (socket) == RNDZ_PATH_RELAYED ? "relayed" : "direct");

  /* The source keeps the socket */
  watch = g_socket_create_source (socket, G_IO_IN, NULL);
  g_source_set_callback (watch, G_SOURCE_FUNC (on_datagram), user_data, NULL);
  g_source_attach (watch, NULL);
  g_source_unref (watch);
}

/* TCP: one connection per peer, each echoed until the peer closes it */
typedef struct
{
  GIOStream *stream;            /* a GSocketConnection, or a GTlsConnection */
  char buffer[2048];
} Echo;

static void echo_read (Echo *echo);

static void
echo_free (Echo *echo)
{
  g_io_stream_close (echo->stream, NULL, NULL);
  g_object_unref (echo->stream);
  g_free (echo);
}

static void
on_echo_written (GObject      *stream,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (stream), result, NULL, NULL))
    echo_free (user_data);
  else
    echo_read (user_data);
}

static void
on_echo_read (GObject      *stream,
              GAsyncResult *result,
              gpointer      user_data)
{
  Echo *echo = user_data;
  gssize size = g_input_stream_read_finish (G_INPUT_STREAM (stream), result, NULL);

  if (size <= 0)    /* closed, or an error */
    {
      echo_free (echo);
      return;
    }

  g_print ("Echoing %" G_GSSIZE_FORMAT " bytes\n", size);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (echo->stream),
                                   echo->buffer, size, G_PRIORITY_DEFAULT, NULL,
                                   on_echo_written, echo);
}

static void
echo_read (Echo *echo)
{
  g_input_stream_read_async (g_io_stream_get_input_stream (echo->stream),
                             echo->buffer, sizeof echo->buffer, G_PRIORITY_DEFAULT, NULL,
                             on_echo_read, echo);
}

static void
echo_start (GIOStream *stream)
{
  Echo *echo = g_new0 (Echo, 1);

  echo->stream = stream;
  echo_read (echo);
}

static void
on_accepted (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  App *app = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *peer_id = NULL;
  GSocketConnection *connection;

  connection = rndz_client_accept_finish (app->client, result, &peer_id, &error);
  if (connection == NULL)
    {
      g_printerr ("Cannot accept: %s\n", error->message);
      quit (app, EXIT_FAILURE);
      return;
    }

  g_print ("Peer \"%s\" connected\n", peer_id);
  echo_start (G_IO_STREAM (connection));

  /* And wait for the next one */
  rndz_client_accept_async (app->client, NULL, on_accepted, app);
}

/* TLS: the same, over a GTlsConnection (a GIOStream too). The library let
 * the peer in only once it proved the identity it announced. */
static void
on_accepted_tls (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  App *app = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *peer_id = NULL;
  g_autofree char *fingerprint = NULL;
  GTlsConnection *connection;

  connection = rndz_client_accept_tls_finish (app->client, result, &peer_id, &error);
  if (connection == NULL)
    {
      g_printerr ("Cannot accept: %s\n", error->message);
      quit (app, EXIT_FAILURE);
      return;
    }

  fingerprint = tls_peer_fingerprint (G_IO_STREAM (connection));
  g_print ("Peer \"%s\" connected, fingerprint %s\n", peer_id, fingerprint);
  echo_start (G_IO_STREAM (connection));
  rndz_client_accept_tls_async (app->client, NULL, on_accepted_tls, app);
}

/* DTLS: a RndzDtlsChannel per peer; each datagram goes back on it. The
 * pending receive holds the channel. */
static void
on_channel_received (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  RndzDtlsChannel *channel = RNDZ_DTLS_CHANNEL (source);
  g_autoptr(GBytes) data = NULL;
  g_autoptr(GError) error = NULL;

  data = rndz_dtls_channel_receive_bytes_finish (channel, result, &error);
  if (data == NULL)
    {
      g_print ("Peer \"%s\" is gone: %s\n", (char *) user_data,
               error != NULL ? error->message : "closed");
      g_free (user_data);
      return;
    }

  g_print ("Echoing %" G_GSIZE_FORMAT " bytes\n", g_bytes_get_size (data));
  rndz_dtls_channel_send_bytes (channel, data, NULL, NULL);
  rndz_dtls_channel_receive_bytes_async (channel, NULL, on_channel_received, user_data);
}

static void
on_accepted_dtls (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  App *app = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzDtlsChannel) channel = NULL;
  char *peer_id = NULL;

  channel = rndz_client_accept_dtls_finish (app->client, result, &peer_id, &error);
  if (channel == NULL)
    {
      g_printerr ("Cannot accept: %s\n", error->message);
      quit (app, EXIT_FAILURE);
      return;
    }

  g_print ("Peer \"%s\" connected, fingerprint %s\n", peer_id,
           rndz_dtls_channel_get_peer_fingerprint (channel));
  /* The receive owns peer_id */
  rndz_dtls_channel_receive_bytes_async (channel, NULL, on_channel_received, peer_id);
  rndz_client_accept_dtls_async (app->client, NULL, on_accepted_dtls, app);
}

static void
print_registered (App        *app,
                  const char *transport)
{
  g_print ("Registered as \"%s\", listening on %s port %u\n",
           rndz_client_get_id (app->client), transport,
           rndz_client_get_local_port (app->client));
  /* What peers can pin (--peer-fingerprint) to be sure it is us */
  if (app->secure)
    g_print ("Fingerprint: %s\n",
             rndz_identity_get_fingerprint (rndz_client_get_identity (app->client)));
}

static void
on_listening_udp (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  App *app = user_data;
  g_autoptr(GError) error = NULL;

  app->socket = rndz_client_listen_udp_finish (app->client, result, &error);
  if (app->socket == NULL)
    {
      g_printerr ("Cannot register: %s\n", error->message);
      quit (app, EXIT_FAILURE);
      return;
    }

  print_registered (app, "UDP");
  if (app->secure)
    rndz_client_accept_dtls_async (app->client, NULL, on_accepted_dtls, app);

  /* This socket holds the port; each peer comes on a socket of its own
   * (on_peer_socket). Whatever arrives here is from a sender that did not
   * come through the rendezvous: we do not answer it, or we would echo
   * anything to anyone, forged sources included. */
}

static void
on_listening_tcp (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  App *app = user_data;
  g_autoptr(GError) error = NULL;

  if (!rndz_client_listen_tcp_finish (app->client, result, &error))
    {
      g_printerr ("Cannot register: %s\n", error->message);
      quit (app, EXIT_FAILURE);
      return;
    }

  print_registered (app, "TCP");
  if (app->secure)
    rndz_client_accept_tls_async (app->client, NULL, on_accepted_tls, app);
  else
    rndz_client_accept_async (app->client, NULL, on_accepted, app);
}

static int
run_listener (App *app)
{
  g_signal_connect (app->client, "peer-request", G_CALLBACK (on_peer_request), NULL);
  if (!app->secure)
    g_signal_connect (app->client, "peer-socket", G_CALLBACK (on_peer_socket), app);

  if (app->tcp)
    rndz_client_listen_tcp_async (app->client, NULL, on_listening_tcp, app);
  else
    rndz_client_listen_udp_async (app->client, NULL, on_listening_udp, app);

  g_main_loop_run (app->loop);
  /* Tell the servers we are gone */
  rndz_client_stop (app->client);
  return app->status;
}

/* The connector */

static void
got_reply (App        *app,
           const char *data,
           gsize       size)
{
  /* Chat lines end with a newline already; a one-off MESSAGE does not */
  g_print ("%.*s%s", (int) size, data, size > 0 && data[size - 1] == '\n' ? "" : "\n");
  if (app->message != NULL)
    quit (app, EXIT_SUCCESS);
}

static void
send_text (App        *app,
           const char *text)
{
  g_autoptr(GError) error = NULL;

  if (app->channel != NULL)
    {
      g_autoptr(GBytes) data = g_bytes_new (text, strlen (text));

      rndz_dtls_channel_send_bytes (app->channel, data, NULL, &error);
    }
  else if (app->socket != NULL)
    g_socket_send (app->socket, text, strlen (text), NULL, &error);
  else
    g_output_stream_write_all (g_io_stream_get_output_stream (app->stream),
                               text, strlen (text), NULL, NULL, &error);
  if (error != NULL)
    g_printerr ("Cannot send: %s\n", error->message);
}

static gboolean
on_reply_datagram (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  char buffer[2048];
  gssize size = g_socket_receive (socket, buffer, sizeof buffer, NULL, NULL);

  if (size >= 0)
    got_reply (user_data, buffer, size);
  return G_SOURCE_CONTINUE;
}

static void
on_reply_received (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  App *app = user_data;
  g_autoptr(GBytes) data = NULL;
  g_autoptr(GError) error = NULL;

  data = rndz_dtls_channel_receive_bytes_finish (RNDZ_DTLS_CHANNEL (source), result, &error);
  if (data == NULL)
    {
      g_printerr ("The peer is gone: %s\n", error != NULL ? error->message : "closed");
      quit (app, app->message != NULL ? EXIT_FAILURE : EXIT_SUCCESS);
      return;
    }

  got_reply (app, g_bytes_get_data (data, NULL), g_bytes_get_size (data));
  rndz_dtls_channel_receive_bytes_async (app->channel, NULL, on_reply_received, app);
}

static char reply_buffer[2048];

static void
on_reply_read (GObject      *stream,
               GAsyncResult *result,
               gpointer      user_data)
{
  App *app = user_data;
  gssize size = g_input_stream_read_finish (G_INPUT_STREAM (stream), result, NULL);

  if (size <= 0)
    {
      g_print ("The peer closed the connection\n");
      quit (app, app->message != NULL ? EXIT_FAILURE : EXIT_SUCCESS);
      return;
    }

  got_reply (app, reply_buffer, size);
  g_input_stream_read_async (G_INPUT_STREAM (stream), reply_buffer, sizeof reply_buffer,
                             G_PRIORITY_DEFAULT, NULL, on_reply_read, app);
}

static gboolean
on_input_done (gpointer user_data)
{
  quit (user_data, EXIT_SUCCESS);
  return G_SOURCE_REMOVE;
}

/* Chat: each line typed on standard input goes to the peer */
static void
on_line (GObject      *stream,
         GAsyncResult *result,
         gpointer      user_data)
{
  App *app = user_data;
  g_autofree char *line = NULL;
  g_autofree char *text = NULL;

  line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (stream), result, NULL, NULL);
  if (line == NULL)     /* end of input: give the last echo a moment */
    {
      g_timeout_add (500, on_input_done, app);
      return;
    }

  text = g_strconcat (line, "\n", NULL);
  send_text (app, text);
  g_data_input_stream_read_line_async (G_DATA_INPUT_STREAM (stream), G_PRIORITY_DEFAULT,
                                       NULL, on_line, app);
}

static gboolean
on_no_reply (gpointer user_data)
{
  g_printerr ("No reply\n");
  quit (user_data, EXIT_FAILURE);
  return G_SOURCE_REMOVE;
}

/* Once connected, whatever the transport: start sending and receiving */
static void
start_talking (App *app)
{
  if (app->channel != NULL)
    rndz_dtls_channel_receive_bytes_async (app->channel, NULL, on_reply_received, app);
  else if (app->socket != NULL)
    {
      GSource *watch = g_socket_create_source (app->socket, G_IO_IN, NULL);

      g_source_set_callback (watch, G_SOURCE_FUNC (on_reply_datagram), app, NULL);
      g_source_attach (watch, NULL);
      g_source_unref (watch);
    }
  else
    g_input_stream_read_async (g_io_stream_get_input_stream (app->stream),
                               reply_buffer, sizeof reply_buffer, G_PRIORITY_DEFAULT, NULL,
                               on_reply_read, app);

  if (app->message != NULL)
    {
      send_text (app, app->message);
      /* UDP may lose the message or its echo: do not wait forever */
      g_timeout_add_seconds (10, on_no_reply, app);
    }
  else
    {
      g_autoptr(GInputStream) in = g_unix_input_stream_new (0, FALSE);
      GDataInputStream *lines = g_data_input_stream_new (in);

      g_print ("Connected: type lines to send, Ctrl-D to quit\n");
      g_data_input_stream_read_line_async (lines, G_PRIORITY_DEFAULT, NULL, on_line, app);
      g_object_unref (lines);   /* the pending read keeps it alive */
    }
}

/* What the connector got, by transport; the peer's fingerprint goes to
 * standard error: standard output is for what the peer sends */
static void
take_connection (App          *app,
                 GAsyncResult *result,
                 GError      **error)
{
  g_autofree char *fingerprint = NULL;

  if (app->tcp && app->secure)
    {
      app->stream = G_IO_STREAM (rndz_client_connect_tls_finish (app->client, result, error));
      if (app->stream != NULL)
        fingerprint = tls_peer_fingerprint (app->stream);
    }
  else if (app->tcp)
    app->stream = G_IO_STREAM (rndz_client_connect_tcp_finish (app->client, result, error));
  else if (app->secure)
    {
      app->channel = rndz_client_connect_dtls_finish (app->client, result, error);
      if (app->channel != NULL)
        fingerprint = g_strdup (rndz_dtls_channel_get_peer_fingerprint (app->channel));
    }
  else
    app->socket = rndz_client_connect_udp_finish (app->client, result, error);

  if (fingerprint != NULL)
    g_printerr ("Connected to \"%s\", fingerprint %s\n", app->peer_id, fingerprint);
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  App *app = user_data;
  g_autoptr(GError) error = NULL;

  take_connection (app, result, &error);
  if (error != NULL)
    {
      /* For example RNDZ_ERROR_PEER_NOT_FOUND: no server knows the peer, or
       * RNDZ_ERROR_IDENTITY_MISMATCH: not the one --peer-fingerprint names */
      g_printerr ("Cannot reach the peer: %s\n", error->message);
      quit (app, EXIT_FAILURE);
      return;
    }

  start_talking (app);
}

static int
run_connector (App        *app,
               const char *peer_id)
{
  app->peer_id = peer_id;
  if (app->tcp && app->secure)
    rndz_client_connect_tls_async (app->client, peer_id, app->pin, NULL, on_connected, app);
  else if (app->tcp)
    rndz_client_connect_tcp_async (app->client, peer_id, NULL, on_connected, app);
  else if (app->secure)
    rndz_client_connect_dtls_async (app->client, peer_id, app->pin, NULL, on_connected, app);
  else
    rndz_client_connect_udp_async (app->client, peer_id, NULL, on_connected, app);

  g_main_loop_run (app->loop);
  return app->status;
}

static int
usage (void)
{
  g_printerr ("Usage: echo server [ADDRESS:PORT]\n"
              "       echo listen SERVER:PORT ID [OPTIONS]\n"
              "       echo connect SERVER:PORT ID PEER [MESSAGE] [OPTIONS]\n"
              "Options: --tcp --insecure --identity FILE --peer-fingerprint FP\n");
  return EXIT_FAILURE;
}

/* Options may come anywhere; the rest are positional, into @args */
static gboolean
parse_options (App        *app,
               int         argc,
               char       *argv[],
               GPtrArray  *args)
{
  app->secure = TRUE;
  for (int i = 1; i < argc; i++)
    {
      gboolean valued = strcmp (argv[i], "--identity") == 0 ||
                        strcmp (argv[i], "--peer-fingerprint") == 0;

      if (valued && i + 1 == argc)
        return FALSE;
      if (strcmp (argv[i], "--tcp") == 0)
        app->tcp = TRUE;
      else if (strcmp (argv[i], "--insecure") == 0)
        app->secure = FALSE;
      else if (strcmp (argv[i], "--identity") == 0)
        app->identity_path = argv[++i];
      else if (strcmp (argv[i], "--peer-fingerprint") == 0)
        app->pin = argv[++i];
      else
        g_ptr_array_add (args, argv[i]);
    }
  return TRUE;
}

/* A client, with an identity unless --insecure: the one in --identity's
 * file, or a fresh one in memory (nobody can pin that one from one run to
 * the next). The client's sockets and timers belong to this thread's main
 * context. */
static RndzClient *
new_client (App        *app,
            const char *id,
            const char *server,
            GError    **error)
{
  const char *servers[] = { server, NULL };
  g_autoptr(RndzClient) client = rndz_client_new (id, servers);
  g_autoptr(RndzIdentity) identity = NULL;

  if (!app->secure)
    return g_steal_pointer (&client);

  if (app->identity_path != NULL)
    identity = rndz_identity_new_from_file (app->identity_path, error);
  else
    identity = rndz_identity_new (error);
  if (identity == NULL)
    return NULL;
  rndz_client_set_identity (client, identity);
  return g_steal_pointer (&client);
}

static int
run_client (App        *app,
            GPtrArray  *args)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *pin = NULL;

  if (app->pin != NULL)
    {
      pin = rndz_fingerprint_normalize (app->pin, &error);
      if (pin == NULL)
        {
          g_printerr ("--peer-fingerprint: %s\n", error->message);
          return EXIT_FAILURE;
        }
      app->pin = pin;
    }

  app->client = new_client (app, args->pdata[2], args->pdata[1], &error);
  if (app->client == NULL)
    {
      g_printerr ("Cannot make an identity: %s\n", error->message);
      return EXIT_FAILURE;
    }

  if (args->len == 3)
    {
      const char *allowed[] = { app->pin, NULL };

      /* Others get no answer at all */
      if (app->pin != NULL)
        rndz_client_set_allowed_fingerprints (app->client, allowed);
      return run_listener (app);
    }
  app->message = args->len == 5 ? args->pdata[4] : NULL;
  return run_connector (app, args->pdata[3]);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  App app = { 0 };
  int status;

  /* For messages of the library in the user's language and charset */
  setlocale (LC_ALL, "");
  app.loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, on_signal, &app);
  g_unix_signal_add (SIGTERM, on_signal, &app);

  if (!parse_options (&app, argc, argv, args) || args->len < 1)
    return usage ();

  if (strcmp (args->pdata[0], "server") == 0 && args->len <= 2)
    status = run_server (&app, args->len == 2 ? args->pdata[1] : "0.0.0.0:8888");
  else if ((strcmp (args->pdata[0], "listen") == 0 && args->len == 3) ||
           (strcmp (args->pdata[0], "connect") == 0 && (args->len == 4 || args->len == 5)))
    status = run_client (&app, args);
  else
    return usage ();

  g_clear_object (&app.socket);
  g_clear_object (&app.channel);
  g_clear_object (&app.stream);
  g_clear_object (&app.client);
  g_main_loop_unref (app.loop);
  return status;
}
