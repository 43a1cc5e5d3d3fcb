/* rndz-client-cmd.c: `rndz client`, a peer that listens or connects
 *
 * SPDX-License-Identifier: MIT
 *
 *   rndz client --id ID --server-addr HOST:PORT [--remote-peer PEER] [--tcp]
 *               [--insecure | --identity FILE --peer-fingerprint FP]
 *
 * Without --remote-peer it registers, prints "Registered as ID on port
 * PORT" (and, secure, "Fingerprint: FP") and echoes what peers send
 * (rndz-echo.c) until SIGINT or SIGTERM; with it, it reaches PEER, sends
 * the message and prints the echo.
 *
 * Secure is the default: DTLS over UDP (RndzDtlsChannel), TLS over TCP
 * (GTlsConnection), with this peer's identity from --identity or made
 * for the run, and the peer's fingerprint printed on standard error once
 * the channel is up. --insecure is the plain behaviour of before, byte
 * for byte: a GSocket or a GSocketConnection.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>

#include <rndz-glib/rndz.h>

#include "rndz-echo.h"
#include "rndz-tool.h"

#define DEFAULT_MESSAGE "hello"
/* --timeout is in seconds, as in the Rust rndz; RndzClient:timeout in
 * milliseconds. The upper bound comes from the property. */
#define DEFAULT_TIMEOUT_S 10
/* As long as a NAT keeps an idle UDP path open (Linux conntrack's
 * udp_timeout_stream): a peer quiet for longer cannot reach the socket
 * anyway */
#define DEFAULT_IDLE_TIMEOUT_S 120
#define MAX_IDLE_TIMEOUT_S (7 * 24 * 3600)
#define MAX_MESSAGE_SIZE 8192
#define RESEND_INTERVAL_MS 200
/* What rndz_is_valid_id() accepts, for the error message */
#define ID_MAX_LEN 64
/* Time left to pending operations to finish once cancelled */
#define DRAIN_TIMEOUT_MS 2000
/* A listener's port mapping made with UPnP-IGD goes with an HTTP request,
 * which leaves only while the main context runs after the stop */
#define PORTMAP_GRACE_MS 300

static char *client_id = NULL;
static char **client_server_addresses = NULL;
static char *client_remote_peer = NULL;
static gboolean client_tcp = FALSE;
static char *client_message = NULL;
static char *client_timeout = NULL;
static char *client_key_file = NULL;
static gboolean client_require_auth = FALSE;
static gboolean client_insecure = FALSE;
static char *client_identity_file = NULL;
static char **client_peer_fingerprints = NULL;
static gboolean client_verbose = FALSE;
static gboolean client_no_port_mapping = FALSE;
static char *client_idle_timeout = NULL;

static const GOptionEntry client_entries[] = {
  { "id", 0, 0, G_OPTION_ARG_STRING, &client_id,
    N_("The id of this peer (required)"), N_("ID") },
  { "server-addr", 0, 0, G_OPTION_ARG_STRING_ARRAY, &client_server_addresses,
    N_("A rendezvous server, as HOST:PORT or [IPV6-ADDRESS]:PORT (required; may be given more than once)"),
    N_("HOST:PORT") },
  { "remote-peer", 0, 0, G_OPTION_ARG_STRING, &client_remote_peer,
    N_("Connect to the peer PEER, send the message and print its reply; without this option, register and echo what peers send"),
    N_("PEER") },
  { "tcp", 0, 0, G_OPTION_ARG_NONE, &client_tcp,
    N_("Use TCP instead of UDP"), NULL },
  { "message", 0, 0, G_OPTION_ARG_STRING, &client_message,
    N_("The message to send to the remote peer (default: hello)"), N_("TEXT") },
  { "timeout", 0, 0, G_OPTION_ARG_STRING, &client_timeout,
    N_("Give up after SECONDS (default: 10)"), N_("SECONDS") },
  { "key-file", 0, 0, G_OPTION_ARG_FILENAME, &client_key_file,
    N_("Authenticate with the hexadecimal key in FILE (or in the RNDZ_KEY environment variable)"),
    N_("FILE") },
  { "require-auth", 0, 0, G_OPTION_ARG_NONE, &client_require_auth,
    N_("When listening, let in only peers that the server authenticated"), NULL },
  { "insecure", 0, 0, G_OPTION_ARG_NONE, &client_insecure,
    N_("Exchange plain, unencrypted data, with peers that use this option too (by default, the data is encrypted and the peer authenticated)"),
    NULL },
  { "identity", 0, 0, G_OPTION_ARG_FILENAME, &client_identity_file,
    N_("Use the identity (key and certificate) in FILE, made when FILE does not exist (default: a new identity each time)"),
    N_("FILE") },
  { "peer-fingerprint", 0, 0, G_OPTION_ARG_STRING_ARRAY, &client_peer_fingerprints,
    N_("Accept only the peer whose identity has the fingerprint FP (when listening, may be given more than once)"),
    N_("FP") },
  { "no-port-mapping", 0, 0, G_OPTION_ARG_NONE, &client_no_port_mapping,
    N_("When listening, do not ask the router for a port mapping"), NULL },
  { "idle-timeout", 0, 0, G_OPTION_ARG_STRING, &client_idle_timeout,
    N_("When listening over UDP, forget a peer that sent nothing for SECONDS, and close its socket (default: 120)"),
    N_("SECONDS") },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &client_verbose,
    N_("Print what happens, and debug messages, to standard error"), NULL },
  { NULL }
};

/*
 * Client:
 *
 * The state of both client modes. Listening, the phases are:
 *
 *   1. registering: rndz_client_listen_{udp,tcp}_async(), then wait until
 *      the client's state says registered, and print the port;
 *   2. echoing (rndz-echo.c): datagrams from the socket that listen_udp
 *      returned, or connections from rndz_client_accept_async(), each
 *      echoed until it closes, until SIGINT or SIGTERM.
 *
 * Connecting, the phases are:
 *
 *   1. rndz_client_connect_{udp,tcp}_async(), or, secure,
 *      rndz_client_connect_{dtls,tls}_async();
 *   2. send the message (over UDP again every RESEND_INTERVAL_MS);
 *   3. read the echo, print it and quit.
 *
 * One timer of --timeout seconds bounds registering and the whole of
 * connecting. Every asynchronous operation is counted in @pending (and
 * the echo's in rndz_tool_echo_get_pending()), so that after the main
 * loop quits, the program can let cancelled operations finish and free
 * what they hold.
 */
typedef struct
{
  GMainLoop *loop;
  GCancellable *cancellable;
  RndzClient *client;
  int status;
  gboolean quitting;
  guint pending;

  const char *id;
  const char *peer_id;          /* NULL when listening */
  gboolean tcp;
  const char *message;
  gsize message_len;
  guint timeout_s;
  guint idle_timeout_s;         /* a UDP peer of the echo */

  /* Secure (without --insecure) */
  gboolean secure;
  RndzIdentity *identity;
  char **fingerprints;          /* normalized --peer-fingerprint, or NULL */

  guint timer_id;
  guint signal_ids[2];
  gboolean listening;
  gboolean announced;

  /* Listening */
  RndzToolEcho *echo;

  /* UDP, both modes: connecting, the socket and the reply's source */
  GSocket *socket;
  GSource *receive_source;
  guint resend_id;
  guint8 *datagram;

  /* UDP, connecting, secure: instead of the socket */
  RndzDtlsChannel *channel;

  /* TCP, connecting: a GSocketConnection, or secure a GTlsConnection */
  GIOStream *connection;
  GByteArray *reply;

  GBytes *key;
} Client;

static void
client_quit (Client *self,
             int     status)
{
  if (self->quitting)
    return;

  self->quitting = TRUE;
  self->status = status;
  g_cancellable_cancel (self->cancellable);
  g_main_loop_quit (self->loop);
}

static void
client_fail (Client     *self,
             const char *format,
             ...) G_GNUC_PRINTF (2, 3);

static void
client_fail (Client     *self,
             const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  if (self->quitting)
    return;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  rndz_tool_print_error ("%s", message);
  client_quit (self, EXIT_FAILURE);
}

static gboolean
client_timeout_cb (gpointer user_data)
{
  Client *self = user_data;

  self->timer_id = 0;

  if (self->peer_id != NULL)
    client_fail (self,
                 ngettext ("No reply from peer “%s” within %u second",
                           "No reply from peer “%s” within %u seconds", self->timeout_s),
                 self->peer_id, self->timeout_s);
  else
    client_fail (self,
                 ngettext ("Not registered with a rendezvous server within %u second",
                           "Not registered with a rendezvous server within %u seconds", self->timeout_s),
                 self->timeout_s);

  return G_SOURCE_REMOVE;
}

static gboolean
client_signal_cb (gpointer user_data)
{
  Client *self = user_data;

  /* Already on the way out: once is enough */
  if (self->quitting)
    return G_SOURCE_CONTINUE;

  if (self->peer_id != NULL)
    {
      client_fail (self, _("Interrupted"));
      return G_SOURCE_CONTINUE;
    }

  rndz_tool_print_note (_("Stopping"));
  client_quit (self, EXIT_SUCCESS);
  return G_SOURCE_CONTINUE;
}

static void
client_peer_request_cb (RndzClient     *client,
                        const char     *peer_id,
                        GSocketAddress *address,
                        gpointer        user_data)
{
  g_autofree char *address_text = rndz_tool_format_address (address);

  rndz_tool_print_note (_("Connection request from peer “%s” at %s"), peer_id, address_text);
}

/* Listening: registration */

static void
client_announce (Client *self)
{
  if (self->announced || self->quitting || !self->listening)
    return;
  if (rndz_client_get_state (self->client) != RNDZ_CLIENT_STATE_REGISTERED)
    return;

  self->announced = TRUE;
  g_clear_handle_id (&self->timer_id, g_source_remove);

  g_print (_("Registered as %s on port %u\n"), self->id,
           rndz_client_get_local_port (self->client));
  if (self->secure)
    /* Translators: then 64 hexadecimal digits; scripts take the last word */
    g_print (_("Fingerprint: %s\n"), rndz_identity_get_fingerprint (self->identity));
  fflush (stdout);
}

static void
client_state_cb (GObject    *object,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  Client *self = user_data;
  RndzClientState state = rndz_client_get_state (self->client);

  if (!self->announced)
    {
      client_announce (self);
      return;
    }

  if (state == RNDZ_CLIENT_STATE_RECONNECTING)
    rndz_tool_print_note (_("Lost contact with the rendezvous servers, trying again"));
  else if (state == RNDZ_CLIENT_STATE_REGISTERED)
    rndz_tool_print_note (_("Registered again"));
}

static void
listen_udp_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;

  self->pending--;
  socket = rndz_client_listen_udp_finish (self->client, result, &error);
  if (socket == NULL)
    {
      client_fail (self, _("Cannot register as “%s”: %s"), self->id, error->message);
      return;
    }
  if (self->quitting)
    return;

  self->socket = g_steal_pointer (&socket);
  rndz_tool_echo_udp_start (self->echo, self->socket);

  self->listening = TRUE;
  client_announce (self);
}

static void
listen_tcp_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;

  self->pending--;
  if (!rndz_client_listen_tcp_finish (self->client, result, &error))
    {
      client_fail (self, _("Cannot register as “%s”: %s"), self->id, error->message);
      return;
    }
  if (self->quitting)
    return;

  self->listening = TRUE;
  client_announce (self);
  rndz_tool_echo_tcp_start (self->echo);
}

/* Connecting: UDP */

static void
client_print_reply (Client       *self,
                    const guint8 *data,
                    gsize         len)
{
  g_autofree char *text = NULL;

  text = g_strndup ((const char *) data, len);
  g_print ("%s\n", text);
  fflush (stdout);

  client_quit (self, EXIT_SUCCESS);
}

/* Why reaching the peer failed, with a word on the options when they
 * are the reason */
static void
client_fail_connect (Client       *self,
                     const GError *error)
{
  if (g_error_matches (error, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH) &&
      self->fingerprints != NULL)
    client_fail (self, _("Peer “%s” does not have the fingerprint %s given with --peer-fingerprint: %s"),
                 self->peer_id, self->fingerprints[0], error->message);
  else if (g_error_matches (error, RNDZ_ERROR, RNDZ_ERROR_NOT_SECURE))
    client_fail (self, _("Cannot reach peer “%s” securely: %s (a peer that runs with --insecure is reached with --insecure)"),
                 self->peer_id, error->message);
  /* A secure listener does not answer plain requesters */
  else if (g_error_matches (error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER) && !self->secure)
    client_fail (self, _("Cannot reach peer “%s”: %s (a peer that runs without --insecure does not answer --insecure)"),
                 self->peer_id, error->message);
  else
    client_fail (self, _("Cannot reach peer “%s”: %s"), self->peer_id, error->message);
}

static gboolean
client_is_echo (Client       *self,
                const guint8 *data,
                gsize         len)
{
  /* Only the echo is the reply: a late punch of the peer (see
   * RndzClient) or any other datagram is not. */
  if (len == self->message_len && memcmp (data, self->message, len) == 0)
    return TRUE;

  rndz_tool_print_note (_("Ignoring %u bytes that are not the echo of the message"), (guint) len);
  return FALSE;
}

static gboolean
resend_cb (gpointer user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  gboolean sent;

  if (self->channel != NULL)
    {
      g_autoptr(GBytes) bytes = g_bytes_new_static (self->message, self->message_len);

      sent = rndz_dtls_channel_send_bytes (self->channel, bytes, NULL, &error);
    }
  else
    sent = g_socket_send_with_blocking (self->socket, self->message, self->message_len,
                                        FALSE, NULL, &error) >= 0;
  if (!sent)
    rndz_tool_print_note (_("Sending to peer “%s” failed: %s"), self->peer_id, error->message);

  return G_SOURCE_CONTINUE;
}

static gboolean
receive_reply_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  Client *self = user_data;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gssize received;

      received = g_socket_receive_with_blocking (socket, (char *) self->datagram, G_MAXUINT16,
                                                 FALSE, NULL, &error);
      if (received < 0)
        {
          /* A refused datagram (ICMP port unreachable) says nothing about
           * the next one: keep sending until the timer runs out. */
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            rndz_tool_print_note (_("Receiving from peer “%s” failed: %s"), self->peer_id,
                                  error->message);
          return G_SOURCE_CONTINUE;
        }

      if (!client_is_echo (self, self->datagram, received))
        continue;

      client_print_reply (self, self->datagram, received);
      return G_SOURCE_CONTINUE;
    }
}

static void
connect_udp_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) socket = NULL;

  self->pending--;
  socket = rndz_client_connect_udp_finish (self->client, result, &error);
  if (socket == NULL)
    {
      client_fail_connect (self, error);
      return;
    }
  if (self->quitting)
    return;

  rndz_tool_print_note (_("Connected to peer “%s” (%s), sending the message"), self->peer_id,
                        rndz_tool_path_name (socket));

  self->socket = g_steal_pointer (&socket);
  self->datagram = g_malloc (G_MAXUINT16);
  self->receive_source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->receive_source, G_SOURCE_FUNC (receive_reply_cb), self, NULL);
  g_source_attach (self->receive_source, NULL);

  resend_cb (self);
  self->resend_id = g_timeout_add (RESEND_INTERVAL_MS, resend_cb, self);
}

/* Connecting: UDP, secure */

static void client_receive_secure_reply (Client *self);

static void
receive_secure_reply_cb (GObject      *object,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  const guint8 *data;
  gsize len;

  self->pending--;
  bytes = rndz_dtls_channel_receive_bytes_finish (RNDZ_DTLS_CHANNEL (object), result, &error);
  if (bytes == NULL)
    {
      client_fail (self, _("Cannot receive the reply of peer “%s”: %s"), self->peer_id,
                   error->message);
      return;
    }
  if (self->quitting)
    return;

  data = g_bytes_get_data (bytes, &len);
  if (!client_is_echo (self, data, len))
    {
      client_receive_secure_reply (self);
      return;
    }

  client_print_reply (self, data, len);
}

static void
client_receive_secure_reply (Client *self)
{
  self->pending++;
  rndz_dtls_channel_receive_bytes_async (self->channel, self->cancellable,
                                         receive_secure_reply_cb, self);
}

static void
connect_dtls_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  gsize max;

  self->pending--;
  self->channel = rndz_client_connect_dtls_finish (self->client, result, &error);
  if (self->channel == NULL)
    {
      client_fail_connect (self, error);
      return;
    }
  if (self->quitting)
    return;

  rndz_tool_print_note (_("Connected to peer “%s” (%s), sending the message"), self->peer_id,
                        rndz_tool_path_name (rndz_dtls_channel_get_socket (self->channel)));
  rndz_tool_print_peer_fingerprint (self->peer_id,
                                    rndz_dtls_channel_get_peer_fingerprint (self->channel));
  /* A plain datagram may be up to 64 KiB; a record of the channel, less */
  max = rndz_dtls_channel_get_max_payload_size (self->channel);
  if (self->message_len > max)
    {
      client_fail (self, _("The message is too long for a secure datagram: %u bytes at most"),
                   (guint) max);
      return;
    }

  client_receive_secure_reply (self);
  resend_cb (self);
  self->resend_id = g_timeout_add (RESEND_INTERVAL_MS, resend_cb, self);
}

/* Connecting: TCP */

static void client_read_reply (Client *self);

static void
read_reply_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  gconstpointer data;
  gsize len;

  self->pending--;
  bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (object), result, &error);
  if (bytes == NULL)
    {
      client_fail (self, _("Cannot read the reply of peer “%s”: %s"), self->peer_id, error->message);
      return;
    }
  if (self->quitting)
    return;

  data = g_bytes_get_data (bytes, &len);
  if (len == 0)
    {
      client_fail (self, _("Peer “%s” closed the connection before it replied"), self->peer_id);
      return;
    }

  g_byte_array_append (self->reply, data, len);
  if (self->reply->len < self->message_len)
    {
      client_read_reply (self);
      return;
    }

  client_print_reply (self, self->reply->data, self->reply->len);
}

static void
client_read_reply (Client *self)
{
  GInputStream *input = g_io_stream_get_input_stream (self->connection);

  /* The echo is as long as the message; never read more */
  self->pending++;
  g_input_stream_read_bytes_async (input, self->message_len - self->reply->len,
                                   G_PRIORITY_DEFAULT, self->cancellable,
                                   read_reply_cb, self);
}

static void
write_message_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;

  self->pending--;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (object), result, NULL, &error))
    {
      client_fail (self, _("Cannot send the message to peer “%s”: %s"), self->peer_id, error->message);
      return;
    }
  if (self->quitting)
    return;

  client_read_reply (self);
}

/* Phase 2 over TCP, on self->connection, plain or TLS */
static void
client_write_message (Client *self)
{
  GOutputStream *output = g_io_stream_get_output_stream (self->connection);

  rndz_tool_print_note (_("Connected to peer “%s” (%s), sending the message"), self->peer_id,
                        rndz_tool_path_name (rndz_tool_stream_get_socket (self->connection)));
  if (self->secure)
    rndz_tool_print_tls_peer (self->peer_id, G_TLS_CONNECTION (self->connection));

  self->reply = g_byte_array_new ();
  self->pending++;
  g_output_stream_write_all_async (output, self->message, self->message_len,
                                   G_PRIORITY_DEFAULT, self->cancellable,
                                   write_message_cb, self);
}

static void
connect_tcp_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;

  self->pending--;
  if (self->secure)
    self->connection = G_IO_STREAM (rndz_client_connect_tls_finish (self->client, result, &error));
  else
    self->connection = G_IO_STREAM (rndz_client_connect_tcp_finish (self->client, result, &error));
  if (self->connection == NULL)
    {
      client_fail_connect (self, error);
      return;
    }
  if (self->quitting)
    return;

  client_write_message (self);
}

/* Options */

static gboolean
check_peer_id (const char  *option,
               const char  *id,
               GError     **error)
{
  if (id == NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("The option %s is required"), option);
      return FALSE;
    }

  if (!rndz_is_valid_id (id))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("Invalid peer id “%s” for %s: expected 1 to %u bytes of text without control characters"),
                   id, option, ID_MAX_LEN);
      return FALSE;
    }

  return TRUE;
}

static gboolean
check_server_addresses (char    **addresses,
                        GError  **error)
{
  if (addresses == NULL || addresses[0] == NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("The option %s is required"), "--server-addr");
      return FALSE;
    }

  for (guint i = 0; addresses[i] != NULL; i++)
    {
      g_autoptr(GSocketConnectable) connectable = NULL;

      connectable = g_network_address_parse (addresses[i], 0, NULL);
      if (connectable == NULL ||
          g_network_address_get_port (G_NETWORK_ADDRESS (connectable)) == 0)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("Invalid server address “%s”: expected HOST:PORT or [IPV6-ADDRESS]:PORT"),
                       addresses[i]);
          return FALSE;
        }
    }

  return TRUE;
}

/* The key of --key-file or $RNDZ_KEY, if any */
static gboolean
read_client_key (GBytes **key,
                 GError **error)
{
  g_autoptr(GBytes) text = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *hex = NULL;

  text = rndz_tool_read_secret (client_key_file, "RNDZ_KEY", &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (text == NULL)
    return TRUE;

  hex = g_strndup (g_bytes_get_data (text, NULL), g_bytes_get_size (text));
  *key = rndz_key_from_hex (hex, error);
  return *key != NULL;
}

/* --peer-fingerprint, in the one text form of the library */
static gboolean
read_peer_fingerprints (Client  *self,
                        GError **error)
{
  g_autoptr(GPtrArray) fingerprints = g_ptr_array_new_with_free_func (g_free);
  guint n = client_peer_fingerprints != NULL ? g_strv_length (client_peer_fingerprints) : 0;

  if (n == 0)
    return TRUE;
  if (n > 1 && self->peer_id != NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("The option %s may be given only once with %s"), "--peer-fingerprint",
                   "--remote-peer");
      return FALSE;
    }

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GError) local_error = NULL;
      char *fingerprint = rndz_fingerprint_normalize (client_peer_fingerprints[i], &local_error);

      if (fingerprint == NULL)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("Invalid value for %s: %s"), "--peer-fingerprint",
                       local_error->message);
          return FALSE;
        }
      g_ptr_array_add (fingerprints, fingerprint);
    }

  g_ptr_array_add (fingerprints, NULL);
  self->fingerprints = (char **) g_ptr_array_free (g_steal_pointer (&fingerprints), FALSE);
  return TRUE;
}

/* Secure unless --insecure: this peer's identity and the pins */
static gboolean
check_secure_options (Client  *self,
                      GError **error)
{
  g_autoptr(GError) local_error = NULL;

  if (client_insecure)
    {
      const char *other = client_identity_file != NULL ? "--identity"
                          : client_peer_fingerprints != NULL ? "--peer-fingerprint" : NULL;

      if (other == NULL)
        return TRUE;
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("The options %s and %s exclude each other"), "--insecure", other);
      return FALSE;
    }

  self->secure = TRUE;
  if (!read_peer_fingerprints (self, error))
    return FALSE;

  /* The library's errors name the file, and say why */
  if (client_identity_file != NULL)
    self->identity = rndz_identity_new_from_file (client_identity_file, &local_error);
  else
    self->identity = rndz_identity_new (&local_error);
  if (self->identity == NULL)
    {
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
        g_prefix_error (&local_error, _("No secure channels in this build (use --insecure): "));
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  return TRUE;
}

static gboolean
check_client_options (Client  *self,
                      GError **error)
{
  if (!check_peer_id ("--id", client_id, error))
    return FALSE;
  if (!check_server_addresses (client_server_addresses, error))
    return FALSE;
  if (client_remote_peer != NULL && !check_peer_id ("--remote-peer", client_remote_peer, error))
    return FALSE;

  self->id = client_id;
  self->peer_id = client_remote_peer;
  self->tcp = client_tcp;
  self->message = client_message != NULL ? client_message : DEFAULT_MESSAGE;
  self->message_len = strlen (self->message);
  if (self->message_len < 1 || self->message_len > MAX_MESSAGE_SIZE)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("Invalid message for %s: expected 1 to %u bytes"), "--message",
                   MAX_MESSAGE_SIZE);
      return FALSE;
    }

  self->timeout_s = DEFAULT_TIMEOUT_S;
  if (client_timeout != NULL &&
      !rndz_tool_parse_uint_option ("--timeout", client_timeout, RNDZ_TYPE_CLIENT, "timeout",
                                    1000, G_MAXUINT / 1000, &self->timeout_s, error))
    return FALSE;

  self->idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S;
  if (client_idle_timeout != NULL &&
      !rndz_tool_parse_uint_option ("--idle-timeout", client_idle_timeout, G_TYPE_INVALID, NULL,
                                    1, MAX_IDLE_TIMEOUT_S, &self->idle_timeout_s, error))
    return FALSE;

  if (!read_client_key (&self->key, error))
    return FALSE;

  return check_secure_options (self, error);
}

static void
client_clear_options (void)
{
  g_clear_pointer (&client_id, g_free);
  g_clear_pointer (&client_server_addresses, g_strfreev);
  g_clear_pointer (&client_remote_peer, g_free);
  g_clear_pointer (&client_message, g_free);
  g_clear_pointer (&client_timeout, g_free);
  g_clear_pointer (&client_idle_timeout, g_free);
  g_clear_pointer (&client_key_file, g_free);
  g_clear_pointer (&client_identity_file, g_free);
  g_clear_pointer (&client_peer_fingerprints, g_strfreev);
}

/* Running */

static gboolean
drain_timeout_cb (gpointer user_data)
{
  gboolean *expired = user_data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
}

static guint
client_get_pending (Client *self)
{
  return self->pending + (self->echo != NULL ? rndz_tool_echo_get_pending (self->echo) : 0);
}

/* Lets cancelled operations finish, so that they free what they hold,
 * and the bye of rndz_client_stop() leave; within bounds, whatever the
 * library does. */
static void
client_drain (Client *self)
{
  gboolean expired = FALSE;
  guint drain_id;

  drain_id = g_timeout_add (DRAIN_TIMEOUT_MS, drain_timeout_cb, &expired);
  while (client_get_pending (self) > 0 && !expired)
    g_main_context_iteration (NULL, TRUE);
  while (g_main_context_iteration (NULL, FALSE) && !expired)
    ;

  if (!expired)
    g_source_remove (drain_id);
}

/* Runs the main context for @ms, whatever happens */
static void
client_run_for (guint ms)
{
  gboolean expired = FALSE;

  g_timeout_add (ms, drain_timeout_cb, &expired);
  while (!expired)
    g_main_context_iteration (NULL, TRUE);
}

static RndzClient *
client_new_client (Client *self)
{
  g_autoptr(GPtrArray) servers = g_ptr_array_new ();
  RndzClient *client;

  for (guint i = 0; client_server_addresses[i] != NULL; i++)
    g_ptr_array_add (servers, client_server_addresses[i]);
  g_ptr_array_add (servers, NULL);

  client = rndz_client_new (self->id, (const char * const *) servers->pdata);
  rndz_client_set_timeout (client, self->timeout_s * 1000);
  rndz_client_set_key (client, self->key);
  rndz_client_set_require_auth (client, client_require_auth);
  if (self->secure)
    {
      rndz_client_set_identity (client, self->identity);
      /* A listener's pins; a connector's is an argument of its call */
      if (self->peer_id == NULL)
        rndz_client_set_allowed_fingerprints (client, (const char * const *) self->fingerprints);
    }
  g_object_set (client, "port-mapping", !client_no_port_mapping, NULL);
  return client;
}

/* Phase 1 of connecting */
static void
client_start_connect (Client *self)
{
  const char *pin = self->fingerprints != NULL ? self->fingerprints[0] : NULL;

  if (self->secure && !self->tcp)
    rndz_client_connect_dtls_async (self->client, self->peer_id, pin, self->cancellable,
                                    connect_dtls_cb, self);
  else if (self->secure)
    rndz_client_connect_tls_async (self->client, self->peer_id, pin, self->cancellable,
                                   connect_tcp_cb, self);
  else if (!self->tcp)
    rndz_client_connect_udp_async (self->client, self->peer_id, self->cancellable,
                                   connect_udp_cb, self);
  else
    rndz_client_connect_tcp_async (self->client, self->peer_id, self->cancellable,
                                   connect_tcp_cb, self);
}

/* Phase 1 of the mode, and the signals and the timer that end it */
static void
client_start (Client *self)
{
  self->loop = g_main_loop_new (NULL, FALSE);
  self->cancellable = g_cancellable_new ();
  self->client = client_new_client (self);

  if (g_signal_lookup ("peer-request", RNDZ_TYPE_CLIENT) != 0)
    g_signal_connect (self->client, "peer-request", G_CALLBACK (client_peer_request_cb), self);
  g_signal_connect (self->client, "notify::state", G_CALLBACK (client_state_cb), self);
  if (self->peer_id == NULL)
    self->echo = rndz_tool_echo_new (self->client, self->secure, self->idle_timeout_s,
                                      self->cancellable);

  rndz_tool_add_quit_signals (client_signal_cb, self, self->signal_ids);
  self->timer_id = g_timeout_add (self->timeout_s * 1000, client_timeout_cb, self);

  self->pending++;
  if (self->peer_id == NULL && !self->tcp)
    rndz_client_listen_udp_async (self->client, self->cancellable, listen_udp_cb, self);
  else if (self->peer_id == NULL)
    rndz_client_listen_tcp_async (self->client, self->cancellable, listen_tcp_cb, self);
  else
    client_start_connect (self);
}

static void
client_finish (Client *self)
{
  g_clear_handle_id (&self->timer_id, g_source_remove);
  g_clear_handle_id (&self->resend_id, g_source_remove);
  if (self->receive_source != NULL)
    g_source_destroy (self->receive_source);
  g_clear_pointer (&self->receive_source, g_source_unref);
  if (self->echo != NULL)
    rndz_tool_echo_stop (self->echo);

  /* Says bye to the servers when listening */
  rndz_client_stop (self->client);
  client_drain (self);
  if (self->peer_id == NULL && !client_no_port_mapping)
    client_run_for (PORTMAP_GRACE_MS);
  /* Only now: without a handler, a second SIGTERM while the bye leaves
   * (timeout(1) sends one to the program and one to its group) would kill
   * the program with status 143 */
  rndz_tool_remove_quit_signals (self->signal_ids);
  g_signal_handlers_disconnect_by_data (self->client, self);
  g_clear_pointer (&self->echo, rndz_tool_echo_free);

  if (self->connection != NULL)
    g_io_stream_close (self->connection, NULL, NULL);
  g_clear_object (&self->connection);
  if (self->channel != NULL)
    rndz_dtls_channel_close (self->channel);
  g_clear_object (&self->channel);
  if (self->socket != NULL)
    g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);
  g_clear_pointer (&self->reply, g_byte_array_unref);
  g_clear_pointer (&self->datagram, g_free);
  g_clear_object (&self->client);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->loop, g_main_loop_unref);
}

int
rndz_tool_client_main (int    argc,
                       char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  Client self = { .status = EXIT_FAILURE, };

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, _("Without --remote-peer, register with the rendezvous servers as peer ID and echo everything that other peers send. With --remote-peer, reach that peer through the servers, send it a message and print its reply."));
  g_option_context_add_main_entries (context, client_entries, GETTEXT_PACKAGE);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      rndz_tool_print_error ("%s", error->message);
      goto out;
    }
  if (argc > 1)
    {
      rndz_tool_print_error (_("Unexpected argument “%s”"), argv[1]);
      goto out;
    }

  if (!check_client_options (&self, &error))
    {
      rndz_tool_print_error ("%s", error->message);
      goto out;
    }

  rndz_tool_set_verbose (client_verbose);

  client_start (&self);
  g_main_loop_run (self.loop);
  client_finish (&self);

out:
  client_clear_options ();
  g_clear_pointer (&self.key, g_bytes_unref);
  g_clear_object (&self.identity);
  g_clear_pointer (&self.fingerprints, g_strfreev);

  return self.status;
}
