/* rndz.c: the rndz command line tool
 *
 * SPDX-License-Identifier: MIT
 *
 * One program, two modes, with the options of the Rust rndz so that
 * existing scripts keep working:
 *
 *   rndz server [--listen-addr ADDRESS:PORT] [limits…]
 *   rndz client --id ID --server-addr HOST:PORT [--remote-peer PEER] [--tcp]
 *
 * Whatever scripts read is written to stdout, one line per event, and
 * flushed at once; everything else (errors, --verbose notes, debug
 * messages of the library) goes to stderr.
 */

#include "config.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>
#include <glib-unix.h>
#include <gio/gio.h>

#include <rndz-glib/rndz.h>

/* The library logs to "Rndz", this program to G_LOG_DOMAIN */
#define RNDZ_LIBRARY_LOG_DOMAIN "Rndz"

static gboolean verbose = FALSE;

static void
print_error (const char *format,
             ...) G_GNUC_PRINTF (1, 2);

static void
print_error (const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  /* Translators: the program name, then a message */
  g_printerr (_("%s: %s\n"), g_get_prgname (), message);
}

/* A note for --verbose: a sentence for people, so it is translated,
 * unlike the library's debug messages. */
static void
print_note (const char *format,
            ...) G_GNUC_PRINTF (1, 2);

static void
print_note (const char *format,
            ...)
{
  g_autofree char *message = NULL;
  va_list args;

  if (!verbose)
    return;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  /* Translators: the program name, then a message */
  g_printerr (_("%s: %s\n"), g_get_prgname (), message);
}

static void
enable_debug_logging (void)
{
  const char *domains = g_getenv ("G_MESSAGES_DEBUG");
  g_autofree char *new_domains = NULL;

  /* G_MESSAGES_DEBUG is read when a message is logged, and nothing has
   * been logged yet, so adding to it here is enough. */
  if (domains != NULL && *domains != '\0')
    new_domains = g_strjoin (" ", domains, RNDZ_LIBRARY_LOG_DOMAIN, G_LOG_DOMAIN, NULL);
  else
    new_domains = g_strjoin (" ", RNDZ_LIBRARY_LOG_DOMAIN, G_LOG_DOMAIN, NULL);

  g_setenv ("G_MESSAGES_DEBUG", new_domains, TRUE);
}

static char *
format_address (GSocketAddress *address)
{
  GInetAddress *inet_address;
  g_autofree char *host = NULL;
  guint16 port;

  if (!G_IS_INET_SOCKET_ADDRESS (address))
    return g_strdup ("?");

  inet_address = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address));
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
  host = g_inet_address_to_string (inet_address);

  if (g_inet_address_get_family (inet_address) == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[%s]:%u", host, port);

  return g_strdup_printf ("%s:%u", host, port);
}

/* Reads a number for the option @option that sets the guint property
 * @property of @type, within the range the property accepts. */
/* Secrets and keys come from files or the environment, never from the
 * command line alone: other users can read a process's arguments. */
static GBytes *
read_secret (const char  *path,
             const char  *variable,
             GError     **error)
{
  g_autofree char *contents = NULL;
  const char *value;
  gsize len;

  if (path != NULL)
    {
      if (!g_file_get_contents (path, &contents, &len, error))
        return NULL;
    }
  else if ((value = g_getenv (variable)) != NULL && value[0] != '\0')
    {
      contents = g_strdup (value);
      len = strlen (contents);
    }
  else
    return NULL;

  /* A file usually ends with a newline that is not part of the secret */
  while (len > 0 && (contents[len - 1] == '\n' || contents[len - 1] == '\r'))
    len--;

  if (len == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   path != NULL ? _("The file “%s” is empty") : _("The variable %s is empty"),
                   path != NULL ? path : variable);
      return NULL;
    }

  return g_bytes_new (contents, len);
}

static gboolean
parse_uint_option (const char  *option,
                   const char  *text,
                   GType        type,
                   const char  *property,
                   guint        fallback_max,
                   guint       *value,
                   GError     **error)
{
  g_autoptr(GTypeClass) klass = g_type_class_ref (type);
  GParamSpec *pspec = g_object_class_find_property (G_OBJECT_CLASS (klass), property);
  guint minimum = 1;
  guint maximum = fallback_max;
  guint64 number;

  if (pspec != NULL && G_IS_PARAM_SPEC_UINT (pspec))
    {
      minimum = G_PARAM_SPEC_UINT (pspec)->minimum;
      maximum = MIN (G_PARAM_SPEC_UINT (pspec)->maximum, fallback_max);
    }

  if (!g_ascii_string_to_unsigned (text, 10, minimum, maximum, &number, NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("Invalid value “%s” for %s: expected a number from %u to %u"),
                   text, option, minimum, maximum);
      return FALSE;
    }

  *value = (guint) number;
  return TRUE;
}

static void
add_quit_signals (GMainLoop   *loop,
                  GSourceFunc  callback,
                  gpointer     user_data,
                  guint        ids[2])
{
  ids[0] = g_unix_signal_add (SIGINT, callback, user_data);
  ids[1] = g_unix_signal_add (SIGTERM, callback, user_data);
}

static void
remove_quit_signals (guint ids[2])
{
  g_clear_handle_id (&ids[0], g_source_remove);
  g_clear_handle_id (&ids[1], g_source_remove);
}


/* Server mode */

#ifdef RNDZ_HAVE_SERVER

#define DEFAULT_LISTEN_ADDRESS "0.0.0.0:8888"

/* The option names are the names of the RndzServer properties they set */
enum
{
  LIMIT_PEER_TIMEOUT,
  LIMIT_FORWARD_TIMEOUT,
  LIMIT_REGISTER_TIMEOUT,
  LIMIT_MAX_PEERS,
  LIMIT_MAX_CONNECTIONS,
  LIMIT_MAX_MESSAGE_SIZE,
  LIMIT_REQUEST_RATE,
  LIMIT_RELAY_PORT,
  LIMIT_RELAY_MAX_SESSIONS,
  LIMIT_RELAY_RATE,
  LIMIT_RELAY_IDLE_TIMEOUT,
  N_LIMITS
};

static const char * const limit_names[N_LIMITS] = {
  "peer-timeout",
  "forward-timeout",
  "register-timeout",
  "max-peers",
  "max-connections",
  "max-message-size",
  "request-rate",
  "relay-port",
  "relay-max-sessions",
  "relay-rate",
  "relay-idle-timeout",
};

static char *server_listen_address = NULL;
static char *server_limits[N_LIMITS] = { NULL, };
static char *server_secret_file = NULL;
static char *server_key_file = NULL;

static const GOptionEntry server_entries[] = {
  { "listen-addr", 0, 0, G_OPTION_ARG_STRING, &server_listen_address,
    N_("Serve TCP and UDP on ADDRESS:PORT or [IPV6-ADDRESS]:PORT (default: 0.0.0.0:8888; [::]:8888 serves IPv4 and IPv6)"),
    N_("ADDRESS:PORT") },
  { "peer-timeout", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_PEER_TIMEOUT],
    N_("Forget a peer SECONDS after its last ping"), N_("SECONDS") },
  { "forward-timeout", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_FORWARD_TIMEOUT],
    N_("Wait SECONDS for a peer to answer a forwarded connection request"), N_("SECONDS") },
  { "register-timeout", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_REGISTER_TIMEOUT],
    N_("Close a TCP connection that does not register a peer within SECONDS"), N_("SECONDS") },
  { "max-peers", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_MAX_PEERS],
    N_("Register at most N peers"), N_("N") },
  { "max-connections", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_MAX_CONNECTIONS],
    N_("Keep at most N TCP connections open"), N_("N") },
  { "request-rate", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_REQUEST_RATE],
    N_("Forward at most N connection requests a second from one address, and to one address"), N_("N") },
  { "secret-file", 0, 0, G_OPTION_ARG_FILENAME, &server_secret_file,
    N_("Require peers to authenticate with keys derived from the secret in FILE (or in the RNDZ_SECRET environment variable)"),
    N_("FILE") },
  { "key-file", 0, 0, G_OPTION_ARG_FILENAME, &server_key_file,
    N_("Require peers to authenticate with the keys in FILE, one “ID HEXKEY” a line"), N_("FILE") },
  { "max-message-size", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_MAX_MESSAGE_SIZE],
    N_("Accept messages of at most BYTES bytes"), N_("BYTES") },
  { "relay-port", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_RELAY_PORT],
    N_("Relay, over TCP and UDP on PORT of the listening address, between peers that cannot reach each other directly (default: 0, no relay)"),
    N_("PORT") },
  { "relay-max-sessions", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_RELAY_MAX_SESSIONS],
    N_("Relay at most N sessions at once (default: 64)"), N_("N") },
  { "relay-rate", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_RELAY_RATE],
    N_("Relay at most BYTES bytes a second per session and direction; 0 for no limit (default: 1048576)"),
    N_("BYTES") },
  { "relay-idle-timeout", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_RELAY_IDLE_TIMEOUT],
    N_("Close a relay session after SECONDS without traffic (default: 60)"), N_("SECONDS") },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
    N_("Print debug messages to standard error"), NULL },
  { NULL }
};

static gboolean
parse_port (const char *text,
            guint16    *port)
{
  guint64 number;

  /* g_ascii_string_to_unsigned() takes a sign and leading spaces */
  if (!g_ascii_isdigit (text[0]) || strlen (text) > 5)
    return FALSE;
  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT16, &number, NULL))
    return FALSE;

  *port = (guint16) number;
  return TRUE;
}

/* Accepts "198.51.100.7:8888" and "[2001:db8::1]:8888", numeric only: a
 * server listens on an address of its own, never on a name. Port 0 lets
 * the system pick one. */
static GSocketAddress *
parse_listen_address (const char  *text,
                      GError     **error)
{
  g_autofree char *host = NULL;
  g_autoptr(GInetAddress) inet_address = NULL;
  GSocketFamily family;
  const char *port_text;
  guint16 port;

  if (text[0] == '[')
    {
      const char *end = strstr (text, "]:");

      if (end == NULL)
        goto invalid;
      host = g_strndup (text + 1, end - text - 1);
      port_text = end + 2;
      family = G_SOCKET_FAMILY_IPV6;
    }
  else
    {
      const char *colon = strchr (text, ':');

      if (colon == NULL || strchr (colon + 1, ':') != NULL)
        goto invalid;
      host = g_strndup (text, colon - text);
      port_text = colon + 1;
      family = G_SOCKET_FAMILY_IPV4;
    }

  inet_address = g_inet_address_new_from_string (host);
  if (inet_address == NULL || g_inet_address_get_family (inet_address) != family)
    goto invalid;
  if (!parse_port (port_text, &port))
    goto invalid;

  return g_inet_socket_address_new (inet_address, port);

invalid:
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               _("Invalid address “%s”: expected IPV4-ADDRESS:PORT or [IPV6-ADDRESS]:PORT, with a numeric address"),
               text);
  return NULL;
}

static gboolean
apply_server_limits (RndzServer  *server,
                     GError     **error)
{
  for (guint i = 0; i < N_LIMITS; i++)
    {
      g_autofree char *option = NULL;
      guint value;

      if (server_limits[i] == NULL)
        continue;

      option = g_strconcat ("--", limit_names[i], NULL);
      if (!parse_uint_option (option, server_limits[i], RNDZ_TYPE_SERVER, limit_names[i],
                              G_MAXUINT, &value, error))
        return FALSE;

      g_object_set (server, limit_names[i], value, NULL);
    }

  return TRUE;
}

static gboolean
apply_server_auth (RndzServer  *server,
                   GError     **error)
{
  g_autoptr(GBytes) secret = NULL;
  g_autoptr(GError) local_error = NULL;

  secret = read_secret (server_secret_file, "RNDZ_SECRET", &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (secret != NULL)
    rndz_server_set_secret (server, secret);

  if (server_key_file != NULL && !rndz_server_load_keys (server, server_key_file, error))
    return FALSE;

  if (rndz_server_get_auth_required (server))
    print_note (_("Peers must authenticate"));

  return TRUE;
}

static gboolean
server_quit_cb (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

static int
server_main (int    argc,
             char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) local_address = NULL;
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *local_text = NULL;
  guint signal_ids[2] = { 0, 0 };
  int status = EXIT_FAILURE;

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, _("Run a rendezvous server: peers register with it, and it forwards their connection requests."));
  g_option_context_add_main_entries (context, server_entries, GETTEXT_PACKAGE);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      print_error ("%s", error->message);
      goto out;
    }
  if (argc > 1)
    {
      print_error (_("Unexpected argument “%s”"), argv[1]);
      goto out;
    }

  if (verbose)
    enable_debug_logging ();

  address = parse_listen_address (server_listen_address != NULL ? server_listen_address
                                                                : DEFAULT_LISTEN_ADDRESS,
                                  &error);
  if (address == NULL)
    {
      print_error ("%s", error->message);
      goto out;
    }

  server = rndz_server_new ();
  if (!apply_server_limits (server, &error) || !apply_server_auth (server, &error))
    {
      print_error ("%s", error->message);
      goto out;
    }

  if (!rndz_server_listen (server, address, &error))
    {
      g_autofree char *address_text = format_address (address);

      print_error (_("Cannot listen on %s: %s"), address_text, error->message);
      goto out;
    }

  local_address = rndz_server_get_local_address (server);
  local_text = format_address (local_address);
  g_print (_("Listening on %s\n"), local_text);
  if (rndz_server_get_relay_port (server) != 0)
    {
      GInetAddress *inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (local_address));
      g_autoptr(GSocketAddress) relay_address =
        g_inet_socket_address_new (inet, rndz_server_get_relay_port (server));
      g_autofree char *relay_text = format_address (relay_address);

      g_print (_("Relaying on %s\n"), relay_text);
    }
  fflush (stdout);

  loop = g_main_loop_new (NULL, FALSE);
  add_quit_signals (loop, server_quit_cb, loop, signal_ids);
  g_main_loop_run (loop);
  remove_quit_signals (signal_ids);

  print_note (_("Stopping"));
  rndz_server_stop (server);
  status = EXIT_SUCCESS;

out:
  g_clear_pointer (&server_listen_address, g_free);
  g_clear_pointer (&server_secret_file, g_free);
  g_clear_pointer (&server_key_file, g_free);
  for (guint i = 0; i < N_LIMITS; i++)
    g_clear_pointer (&server_limits[i], g_free);

  return status;
}

#endif /* RNDZ_HAVE_SERVER */


/* Client mode */

#ifdef RNDZ_HAVE_CLIENT

#define DEFAULT_MESSAGE "hello"
#define DEFAULT_TIMEOUT 10
/* Large enough for any timeout in milliseconds to fit a guint */
#define MAX_TIMEOUT (24 * 60 * 60)
#define MAX_MESSAGE_SIZE 8192
#define RESEND_INTERVAL_MS 200
#define ID_MAX_LEN 64
/* Time left to pending operations to finish once cancelled */
#define DRAIN_TIMEOUT_MS 2000

/* How a connection reaches its peer, for the notes */
static const char *
path_name (GSocket *socket)
{
  switch (rndz_socket_get_path (socket))
    {
    case RNDZ_PATH_DIRECT:
      /* Translators: how a connection reaches the peer: straight to its public address */
      return C_("path", "direct");
    case RNDZ_PATH_LOCAL:
      /* Translators: how a connection reaches the peer: to one of its local addresses */
      return C_("path", "local");
    case RNDZ_PATH_RELAYED:
      /* Translators: how a connection reaches the peer: through the server's relay */
      return C_("path", "relayed");
    case RNDZ_PATH_UNKNOWN:
    default:
      return C_("path", "unknown");
    }
}

static char *client_id = NULL;
static char **client_server_addresses = NULL;
static char *client_remote_peer = NULL;
static gboolean client_tcp = FALSE;
static char *client_message = NULL;
static char *client_timeout = NULL;
static char *client_key_file = NULL;
static gboolean client_require_auth = FALSE;

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
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
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
 *   2. echoing: datagrams from the socket that listen_udp returned, or
 *      connections from rndz_client_accept_async(), each echoed until it
 *      closes, until SIGINT or SIGTERM.
 *
 * Connecting, the phases are:
 *
 *   1. rndz_client_connect_{udp,tcp}_async();
 *   2. send the message (over UDP again every RESEND_INTERVAL_MS);
 *   3. read the echo, print it and quit.
 *
 * One timer of --timeout seconds bounds registering and the whole of
 * connecting. Every asynchronous operation is counted in @pending, so
 * that after the main loop quits, the program can let cancelled
 * operations finish and free what they hold.
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
  guint timeout;

  guint timer_id;
  guint signal_ids[2];
  gboolean listening;
  gboolean announced;

  /* UDP, both modes */
  GSocket *socket;
  GSource *receive_source;
  GPtrArray *peer_sources;   /* UDP listener: one per peer on its own socket */
  guint resend_id;
  guint8 *datagram;

  /* TCP, connecting */
  GSocketConnection *connection;
  GByteArray *reply;

  GBytes *key;
} Client;

/* One TCP connection accepted while listening */
typedef struct
{
  Client *client;
  GSocketConnection *connection;
  char *peer_id;
  guint8 buffer[4096];
} EchoConnection;

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

  print_error ("%s", message);
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
                           "No reply from peer “%s” within %u seconds", self->timeout),
                 self->peer_id, self->timeout);
  else
    client_fail (self,
                 ngettext ("Not registered with a rendezvous server within %u second",
                           "Not registered with a rendezvous server within %u seconds", self->timeout),
                 self->timeout);

  return G_SOURCE_REMOVE;
}

static gboolean
client_signal_cb (gpointer user_data)
{
  Client *self = user_data;

  if (self->peer_id != NULL)
    {
      client_fail (self, _("Interrupted"));
      return G_SOURCE_CONTINUE;
    }

  print_note (_("Stopping"));
  client_quit (self, EXIT_SUCCESS);
  return G_SOURCE_CONTINUE;
}

static void
client_peer_request_cb (RndzClient     *client,
                        const char     *peer_id,
                        GSocketAddress *address,
                        gpointer        user_data)
{
  g_autofree char *address_text = format_address (address);

  print_note (_("Connection request from peer “%s” at %s"), peer_id, address_text);
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
    print_note (_("Lost contact with the rendezvous servers, trying again"));
  else if (state == RNDZ_CLIENT_STATE_REGISTERED)
    print_note (_("Registered again"));
}

/* Listening: UDP echo */

static gboolean
echo_datagrams_cb (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  Client *self = user_data;

  /* A bounded batch, so that a flood does not starve the rest */
  for (guint i = 0; i < 64; i++)
    {
      g_autoptr(GSocketAddress) sender = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *sender_text = NULL;
      gssize received;

      received = g_socket_receive_from (socket, &sender, (char *) self->datagram,
                                        G_MAXUINT16, NULL, &error);
      if (received < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            print_note (_("Receiving failed: %s"), error->message);
          break;
        }

      sender_text = format_address (sender);
      print_note (_("Echoing %u bytes to %s"), (guint) received, sender_text);

      if (g_socket_send_to (socket, sender, (const char *) self->datagram, received,
                            NULL, &error) < 0)
        print_note (_("Sending to %s failed: %s"), sender_text, error->message);
    }

  return G_SOURCE_CONTINUE;
}

/* A peer that reached us on a socket of its own (through the server's
 * relay, or through our NAT's port for it alone): its datagrams are
 * echoed like the others */
static void
client_peer_socket_cb (RndzClient *client,
                       const char *peer_id,
                       GSocket    *socket,
                       gpointer    user_data)
{
  Client *self = user_data;
  GSource *source;

  if (self->quitting || self->datagram == NULL)
    return;

  if (rndz_socket_get_path (socket) == RNDZ_PATH_RELAYED)
    print_note (_("Peer “%s” comes through the relay"), peer_id);
  else
    print_note (_("Peer “%s” comes on a port of its own"), peer_id);
  g_socket_set_blocking (socket, FALSE);
  source = g_socket_create_source (socket, G_IO_IN, NULL);
  g_source_set_callback (source, G_SOURCE_FUNC (echo_datagrams_cb), self, NULL);
  g_source_attach (source, NULL);
  g_ptr_array_add (self->peer_sources, source);
}

static void
destroy_and_unref_source (gpointer data)
{
  g_source_destroy (data);
  g_source_unref (data);
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
  g_socket_set_blocking (self->socket, FALSE);
  self->datagram = g_malloc (G_MAXUINT16);
  self->receive_source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->receive_source, G_SOURCE_FUNC (echo_datagrams_cb), self, NULL);
  g_source_attach (self->receive_source, NULL);

  self->listening = TRUE;
  client_announce (self);
}

/* Listening: TCP echo */

static void echo_connection_read (EchoConnection *echo);

static void
echo_connection_free (EchoConnection *echo)
{
  g_io_stream_close (G_IO_STREAM (echo->connection), NULL, NULL);
  g_object_unref (echo->connection);
  g_free (echo->peer_id);
  g_free (echo);
}

static void
echo_connection_write_cb (GObject      *object,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  EchoConnection *echo = user_data;
  Client *self = echo->client;
  g_autoptr(GError) error = NULL;

  self->pending--;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (object), result, NULL, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        print_note (_("Connection with peer “%s” failed: %s"), echo->peer_id, error->message);
      echo_connection_free (echo);
      return;
    }

  echo_connection_read (echo);
}

static void
echo_connection_read_cb (GObject      *object,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  EchoConnection *echo = user_data;
  Client *self = echo->client;
  g_autoptr(GError) error = NULL;
  gssize n_read;

  self->pending--;
  n_read = g_input_stream_read_finish (G_INPUT_STREAM (object), result, &error);
  if (n_read <= 0)
    {
      if (n_read == 0)
        print_note (_("Peer “%s” closed the connection"), echo->peer_id);
      else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        print_note (_("Connection with peer “%s” failed: %s"), echo->peer_id, error->message);
      echo_connection_free (echo);
      return;
    }

  print_note (_("Echoing %u bytes to peer “%s”"), (guint) n_read, echo->peer_id);
  self->pending++;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (G_IO_STREAM (echo->connection)),
                                   echo->buffer, n_read, G_PRIORITY_DEFAULT,
                                   self->cancellable, echo_connection_write_cb, echo);
}

static void
echo_connection_read (EchoConnection *echo)
{
  Client *self = echo->client;

  self->pending++;
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (echo->connection)),
                             echo->buffer, sizeof echo->buffer, G_PRIORITY_DEFAULT,
                             self->cancellable, echo_connection_read_cb, echo);
}

static void client_accept (Client *self);

static gboolean
accept_again_cb (gpointer user_data)
{
  Client *self = user_data;

  self->pending--;
  client_accept (self);
  return G_SOURCE_REMOVE;
}

static void
accept_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autofree char *peer_id = NULL;
  EchoConnection *echo;

  self->pending--;
  connection = rndz_client_accept_finish (self->client, result, &peer_id, &error);
  if (connection == NULL)
    {
      if (self->quitting)
        return;

      print_error (_("Cannot accept a connection: %s"), error->message);

      /* Most failures concern one peer only: go on accepting, after a
       * pause so that a lasting failure does not spin. */
      self->pending++;
      g_timeout_add (RESEND_INTERVAL_MS, accept_again_cb, self);
      return;
    }

  if (self->quitting)
    {
      g_io_stream_close (G_IO_STREAM (connection), NULL, NULL);
      return;
    }

  print_note (_("Accepted a connection from peer “%s” (%s)"), peer_id != NULL ? peer_id : "?",
              path_name (g_socket_connection_get_socket (connection)));

  echo = g_new0 (EchoConnection, 1);
  echo->client = self;
  echo->connection = g_steal_pointer (&connection);
  echo->peer_id = peer_id != NULL ? g_steal_pointer (&peer_id) : g_strdup ("?");
  echo_connection_read (echo);

  client_accept (self);
}

static void
client_accept (Client *self)
{
  if (self->quitting)
    return;

  self->pending++;
  rndz_client_accept_async (self->client, self->cancellable, accept_cb, self);
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
  client_accept (self);
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

static gboolean
resend_cb (gpointer user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;

  if (g_socket_send_with_blocking (self->socket, self->message, self->message_len,
                                   FALSE, NULL, &error) < 0)
    print_note (_("Sending to peer “%s” failed: %s"), self->peer_id, error->message);

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
            print_note (_("Receiving from peer “%s” failed: %s"), self->peer_id, error->message);
          return G_SOURCE_CONTINUE;
        }

      /* Only the echo is the reply: a late punch of the peer (see
       * RndzClient) or any other datagram is not. */
      if ((gsize) received != self->message_len ||
          memcmp (self->datagram, self->message, received) != 0)
        {
          print_note (_("Ignoring %u bytes that are not the echo of the message"),
                      (guint) received);
          continue;
        }

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
      client_fail (self, _("Cannot reach peer “%s”: %s"), self->peer_id, error->message);
      return;
    }
  if (self->quitting)
    return;

  print_note (_("Connected to peer “%s” (%s), sending the message"), self->peer_id,
              path_name (socket));

  self->socket = g_steal_pointer (&socket);
  self->datagram = g_malloc (G_MAXUINT16);
  self->receive_source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->receive_source, G_SOURCE_FUNC (receive_reply_cb), self, NULL);
  g_source_attach (self->receive_source, NULL);

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
  GInputStream *input = g_io_stream_get_input_stream (G_IO_STREAM (self->connection));

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

static void
connect_tcp_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  Client *self = user_data;
  g_autoptr(GError) error = NULL;
  GOutputStream *output;

  self->pending--;
  self->connection = rndz_client_connect_tcp_finish (self->client, result, &error);
  if (self->connection == NULL)
    {
      client_fail (self, _("Cannot reach peer “%s”: %s"), self->peer_id, error->message);
      return;
    }
  if (self->quitting)
    return;

  print_note (_("Connected to peer “%s” (%s), sending the message"), self->peer_id,
              path_name (g_socket_connection_get_socket (self->connection)));

  self->reply = g_byte_array_new ();
  output = g_io_stream_get_output_stream (G_IO_STREAM (self->connection));
  self->pending++;
  g_output_stream_write_all_async (output, self->message, self->message_len,
                                   G_PRIORITY_DEFAULT, self->cancellable,
                                   write_message_cb, self);
}

/* Client mode: options and main */

static gboolean
id_is_valid (const char *id)
{
  gsize len = strlen (id);

  if (len < 1 || len > ID_MAX_LEN || !g_utf8_validate (id, len, NULL))
    return FALSE;

  for (const char *p = id; *p != '\0'; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      return FALSE;

  return TRUE;
}

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

  if (!id_is_valid (id))
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

  self->timeout = DEFAULT_TIMEOUT;
  if (client_timeout != NULL &&
      !parse_uint_option ("--timeout", client_timeout, RNDZ_TYPE_CLIENT, "timeout",
                          MAX_TIMEOUT, &self->timeout, error))
    return FALSE;

  {
    g_autoptr(GBytes) text = NULL;
    g_autoptr(GError) local_error = NULL;
    g_autofree char *hex = NULL;

    text = read_secret (client_key_file, "RNDZ_KEY", &local_error);
    if (local_error != NULL)
      {
        g_propagate_error (error, g_steal_pointer (&local_error));
        return FALSE;
      }
    if (text != NULL)
      {
        hex = g_strndup (g_bytes_get_data (text, NULL), g_bytes_get_size (text));
        self->key = rndz_key_from_hex (hex, error);
        if (self->key == NULL)
          return FALSE;
      }
  }

  return TRUE;
}

static gboolean
drain_timeout_cb (gpointer user_data)
{
  gboolean *expired = user_data;

  *expired = TRUE;
  return G_SOURCE_REMOVE;
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
  while (self->pending > 0 && !expired)
    g_main_context_iteration (NULL, TRUE);
  while (g_main_context_iteration (NULL, FALSE) && !expired)
    ;

  if (!expired)
    g_source_remove (drain_id);
}

static void
client_run (Client *self)
{
  g_autoptr(GPtrArray) servers = g_ptr_array_new ();

  for (guint i = 0; client_server_addresses[i] != NULL; i++)
    g_ptr_array_add (servers, client_server_addresses[i]);
  g_ptr_array_add (servers, NULL);

  self->loop = g_main_loop_new (NULL, FALSE);
  self->cancellable = g_cancellable_new ();
  self->client = rndz_client_new (self->id, (const char * const *) servers->pdata);
  rndz_client_set_timeout (self->client, self->timeout);
  rndz_client_set_key (self->client, self->key);
  rndz_client_set_require_auth (self->client, client_require_auth);

  if (g_signal_lookup ("peer-request", RNDZ_TYPE_CLIENT) != 0)
    g_signal_connect (self->client, "peer-request", G_CALLBACK (client_peer_request_cb), self);
  g_signal_connect (self->client, "notify::state", G_CALLBACK (client_state_cb), self);
  self->peer_sources = g_ptr_array_new_with_free_func (destroy_and_unref_source);
  g_signal_connect (self->client, "peer-socket", G_CALLBACK (client_peer_socket_cb), self);

  add_quit_signals (self->loop, client_signal_cb, self, self->signal_ids);
  self->timer_id = g_timeout_add (self->timeout * 1000, client_timeout_cb, self);

  self->pending++;
  if (self->peer_id == NULL && !self->tcp)
    rndz_client_listen_udp_async (self->client, self->cancellable, listen_udp_cb, self);
  else if (self->peer_id == NULL)
    rndz_client_listen_tcp_async (self->client, self->cancellable, listen_tcp_cb, self);
  else if (!self->tcp)
    rndz_client_connect_udp_async (self->client, self->peer_id, self->cancellable,
                                   connect_udp_cb, self);
  else
    rndz_client_connect_tcp_async (self->client, self->peer_id, self->cancellable,
                                   connect_tcp_cb, self);

  g_main_loop_run (self->loop);

  remove_quit_signals (self->signal_ids);
  g_clear_handle_id (&self->timer_id, g_source_remove);
  g_clear_handle_id (&self->resend_id, g_source_remove);
  if (self->receive_source != NULL)
    g_source_destroy (self->receive_source);
  g_clear_pointer (&self->receive_source, g_source_unref);
  g_clear_pointer (&self->peer_sources, g_ptr_array_unref);

  /* Says bye to the servers when listening */
  rndz_client_stop (self->client);
  client_drain (self);
  g_signal_handlers_disconnect_by_data (self->client, self);

  if (self->connection != NULL)
    g_io_stream_close (G_IO_STREAM (self->connection), NULL, NULL);
  g_clear_object (&self->connection);
  if (self->socket != NULL)
    g_socket_close (self->socket, NULL);
  g_clear_object (&self->socket);
  g_clear_pointer (&self->reply, g_byte_array_unref);
  g_clear_pointer (&self->datagram, g_free);
  g_clear_object (&self->client);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->loop, g_main_loop_unref);
}

static int
client_main (int    argc,
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
      print_error ("%s", error->message);
      goto out;
    }
  if (argc > 1)
    {
      print_error (_("Unexpected argument “%s”"), argv[1]);
      goto out;
    }

  if (!check_client_options (&self, &error))
    {
      print_error ("%s", error->message);
      goto out;
    }

  if (verbose)
    enable_debug_logging ();

  client_run (&self);

out:
  g_clear_pointer (&client_id, g_free);
  g_clear_pointer (&client_server_addresses, g_strfreev);
  g_clear_pointer (&client_remote_peer, g_free);
  g_clear_pointer (&client_message, g_free);
  g_clear_pointer (&client_timeout, g_free);
  g_clear_pointer (&client_key_file, g_free);
  g_clear_pointer (&self.key, g_bytes_unref);

  return self.status;
}

#endif /* RNDZ_HAVE_CLIENT */


/* Key mode */

static char *key_secret_file = NULL;
static char *key_id = NULL;

static const GOptionEntry key_entries[] = {
  { "secret-file", 0, 0, G_OPTION_ARG_FILENAME, &key_secret_file,
    N_("The server’s secret, in FILE (or in the RNDZ_SECRET environment variable)"), N_("FILE") },
  { "id", 0, 0, G_OPTION_ARG_STRING, &key_id,
    N_("The id of the peer (required)"), N_("ID") },
  { NULL }
};

static int
key_main (int    argc,
          char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GBytes) secret = NULL;
  g_autoptr(GBytes) key = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *hex = NULL;
  int status = EXIT_FAILURE;

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, _("Print the key of a peer, derived from the server’s secret, for the peer’s --key-file."));
  g_option_context_add_main_entries (context, key_entries, GETTEXT_PACKAGE);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    print_error ("%s", error->message);
  else if (argc > 1)
    print_error (_("Unexpected argument “%s”"), argv[1]);
  else if (key_id == NULL)
    print_error (_("The option --id is required"));
  else if ((secret = read_secret (key_secret_file, "RNDZ_SECRET", &error)) == NULL)
    print_error ("%s", error != NULL ? error->message
                                     : _("No secret: give --secret-file or set RNDZ_SECRET"));
  else
    {
      key = rndz_derive_key (secret, key_id);
      hex = rndz_key_to_hex (key);
      g_print ("%s\n", hex);
      status = EXIT_SUCCESS;
    }

  g_clear_pointer (&key_secret_file, g_free);
  g_clear_pointer (&key_id, g_free);
  return status;
}


/* Choosing a mode */

static gboolean show_version = FALSE;

static const GOptionEntry main_entries[] = {
  { "version", 0, 0, G_OPTION_ARG_NONE, &show_version,
    N_("Print the version and exit"), NULL },
  { NULL }
};

static int
run_mode (const char  *mode,
          int          argc,
          char       **argv)
{
  g_autofree char *prgname = NULL;

  /* Like gio(1): "rndz server" in the usage line and in errors */
  prgname = g_strdup_printf ("%s %s", g_get_prgname (), mode);
  g_set_prgname (prgname);

  if (g_str_equal (mode, "key"))
    return key_main (argc, argv);

  if (g_str_equal (mode, "server"))
    {
#ifdef RNDZ_HAVE_SERVER
      return server_main (argc, argv);
#else
      print_error (_("The server mode is not built into this program (rndz-glib was configured with -Dserver=false)"));
      return EXIT_FAILURE;
#endif
    }

#ifdef RNDZ_HAVE_CLIENT
  return client_main (argc, argv);
#else
  print_error (_("The client mode is not built into this program (rndz-glib was configured with -Dclient=false)"));
  return EXIT_FAILURE;
#endif
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *prgname = NULL;

  setlocale (LC_ALL, "");
  /* RNDZ_LOCALEDIR runs translations from a build tree */
  bindtextdomain (GETTEXT_PACKAGE, g_getenv ("RNDZ_LOCALEDIR") != NULL ? g_getenv ("RNDZ_LOCALEDIR")
                                                                       : RNDZ_LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  prgname = g_path_get_basename (argc > 0 && argv[0] != NULL ? argv[0] : "rndz");
  g_set_prgname (prgname);

  /* Debug messages go to stderr: stdout is for scripts */
  g_log_writer_default_set_use_stderr (TRUE);

  context = g_option_context_new (_("MODE"));
  g_option_context_set_summary (context, _("NAT traversal by rendezvous.\n\n"
                                           "Modes:\n"
                                           "  server    Run a rendezvous server\n"
                                           "  client    Register with a rendezvous server and echo what peers send,\n"
                                           "            or reach a peer through it and exchange a message\n"
                                           "  key       Print a peer’s key, derived from a server’s secret"));
  g_option_context_set_description (context, _("Run “rndz MODE --help” for the options of a mode."));
  g_option_context_add_main_entries (context, main_entries, GETTEXT_PACKAGE);
  /* Stop at the mode: what follows it is the mode's business */
  g_option_context_set_strict_posix (context, TRUE);

  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      print_error ("%s", error->message);
      return EXIT_FAILURE;
    }

  if (show_version)
    {
      g_print ("%s %s\n", g_get_prgname (), RNDZ_VERSION_S);
      return EXIT_SUCCESS;
    }

  if (argc < 2)
    {
      print_error (_("No mode given; run “%s --help” for the modes"), g_get_prgname ());
      return EXIT_FAILURE;
    }

  if (!g_str_equal (argv[1], "server") && !g_str_equal (argv[1], "client") &&
      !g_str_equal (argv[1], "key"))
    {
      print_error (_("Unknown mode “%s”: expected “server”, “client” or “key”"), argv[1]);
      return EXIT_FAILURE;
    }

  return run_mode (argv[1], argc - 1, argv + 1);
}
