/* rndz-server-cmd.c: `rndz server`, a rendezvous server
 *
 * SPDX-License-Identifier: MIT
 *
 *   rndz server [--listen-addr ADDRESS:PORT] [limits…]
 *               [--cluster redis://… [--cluster-secret-file FILE]] [--reuse-port]
 *
 * Prints "Listening on ADDRESS:PORT" (and "Relaying on ADDRESS:PORT"
 * with --relay-port, then "Cluster node NODE through redis://…" with
 * --cluster, then "Metrics on http://ADDRESS:PORT/metrics" with
 * --metrics-addr) once it serves, and runs until SIGINT or SIGTERM.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gi18n.h>

#include <rndz-glib/rndz.h>

#include "rndz-metrics.h"
#include "rndz-tool.h"

#define DEFAULT_LISTEN_ADDRESS "0.0.0.0:8888"

/* The option names are the names of the RndzServer properties they set */
enum
{
  LIMIT_PEER_TIMEOUT,
  LIMIT_FORWARD_TIMEOUT,
  LIMIT_REGISTER_TIMEOUT,
  LIMIT_MAX_PEERS,
  LIMIT_MAX_PEERS_PER_ADDRESS,
  LIMIT_MAX_PEERS_PER_NETWORK,
  LIMIT_MAX_CONNECTIONS,
  LIMIT_MAX_MESSAGE_SIZE,
  LIMIT_REQUEST_RATE,
  LIMIT_RELAY_PORT,
  LIMIT_RELAY_MAX_SESSIONS,
  LIMIT_RELAY_RATE,
  LIMIT_RELAY_IDLE_TIMEOUT,
  LIMIT_RELAY_MAX_PER_ADDRESS,
  LIMIT_RELAY_MAX_PER_NETWORK,
  LIMIT_RELAY_MAX_LIFETIME,
  N_LIMITS
};

/* The options take seconds, the properties milliseconds */
static const guint limit_scales[N_LIMITS] = {
  [LIMIT_PEER_TIMEOUT] = 1000,
  [LIMIT_FORWARD_TIMEOUT] = 1000,
  [LIMIT_REGISTER_TIMEOUT] = 1000,
  [LIMIT_MAX_PEERS] = 1,
  [LIMIT_MAX_PEERS_PER_ADDRESS] = 1,
  [LIMIT_MAX_PEERS_PER_NETWORK] = 1,
  [LIMIT_MAX_CONNECTIONS] = 1,
  [LIMIT_MAX_MESSAGE_SIZE] = 1,
  [LIMIT_REQUEST_RATE] = 1,
  [LIMIT_RELAY_PORT] = 1,
  [LIMIT_RELAY_MAX_SESSIONS] = 1,
  [LIMIT_RELAY_RATE] = 1,
  [LIMIT_RELAY_IDLE_TIMEOUT] = 1000,
  [LIMIT_RELAY_MAX_PER_ADDRESS] = 1,
  [LIMIT_RELAY_MAX_PER_NETWORK] = 1,
  [LIMIT_RELAY_MAX_LIFETIME] = 1000,
};

static const char * const limit_names[N_LIMITS] = {
  "peer-timeout",
  "forward-timeout",
  "register-timeout",
  "max-peers",
  "max-peers-per-address",
  "max-peers-per-network",
  "max-connections",
  "max-message-size",
  "request-rate",
  "relay-port",
  "relay-max-sessions",
  "relay-rate",
  "relay-idle-timeout",
  "relay-max-sessions-per-address",
  "relay-max-sessions-per-network",
  "relay-max-lifetime",
};

static char *server_listen_address = NULL;
static char *server_limits[N_LIMITS] = { NULL, };
static char *server_secret_file = NULL;
static char *server_key_file = NULL;
static char **server_public_addresses = NULL;
static gboolean server_verbose = FALSE;
static char *server_cluster = NULL;
static char *server_cluster_secret_file = NULL;
static gboolean server_reuse_port = FALSE;
static char *server_metrics_address = NULL;
static RndzMetrics *server_metrics = NULL;

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
  { "max-peers-per-address", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_MAX_PEERS_PER_ADDRESS],
    N_("Register at most N peers from one IPv4 address or IPv6 /64 (default: 1000)"), N_("N") },
  { "max-peers-per-network", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_MAX_PEERS_PER_NETWORK],
    N_("Register at most N peers from one IPv4 /16 or IPv6 /48 (default: 10000)"), N_("N") },
  { "max-connections", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_MAX_CONNECTIONS],
    N_("Keep at most N TCP connections open"), N_("N") },
  { "request-rate", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_REQUEST_RATE],
    N_("Forward at most N connection requests a second from one address, and to one address"), N_("N") },
  { "secret-file", 0, 0, G_OPTION_ARG_FILENAME, &server_secret_file,
    N_("Require peers to authenticate with keys derived from the secret in FILE (or in the RNDZ_SECRET environment variable)"),
    N_("FILE") },
  { "key-file", 0, 0, G_OPTION_ARG_FILENAME, &server_key_file,
    N_("Require peers to authenticate with the keys in FILE, one “ID HEXKEY” a line"), N_("FILE") },
  { "public-address", 0, 0, G_OPTION_ARG_STRING_ARRAY, &server_public_addresses,
    N_("Peers reach this server at ADDRESS:PORT too, through DNAT or port forwarding: accept messages they sign for it (repeatable)"),
    N_("ADDRESS:PORT") },
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
  { "relay-max-sessions-per-address", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_RELAY_MAX_PER_ADDRESS],
    N_("Relay at most N sessions at once for requests from one address, an IPv6 /64 (default: 4)"), N_("N") },
  { "relay-max-sessions-per-network", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_RELAY_MAX_PER_NETWORK],
    N_("Relay at most N sessions at once for requests from one IPv4 /16 or IPv6 /48 (default: 16)"), N_("N") },
  { "relay-max-lifetime", 0, 0, G_OPTION_ARG_STRING, &server_limits[LIMIT_RELAY_MAX_LIFETIME],
    N_("Close a relay session SECONDS after it was opened, traffic or not (default: 3600)"), N_("SECONDS") },
  { "cluster", 0, 0, G_OPTION_ARG_STRING, &server_cluster,
    N_("Be a node of the cluster whose Redis is at URL, redis://[:PASSWORD@]ADDRESS[:PORT][/DB]: the nodes share their peers"),
    N_("URL") },
  { "cluster-secret-file", 0, 0, G_OPTION_ARG_FILENAME, &server_cluster_secret_file,
    N_("Sign the messages between the nodes of the cluster with the secret in FILE (or in the RNDZ_CLUSTER_SECRET environment variable; default: derived from --secret-file)"),
    N_("FILE") },
  { "reuse-port", 0, 0, G_OPTION_ARG_NONE, &server_reuse_port,
    N_("Share the listening port with other rndz server processes (SO_REUSEPORT), for several nodes of a cluster on one machine"),
    NULL },
  { "metrics-addr", 0, 0, G_OPTION_ARG_STRING, &server_metrics_address,
    N_("Serve Prometheus metrics over HTTP at http://ADDRESS:PORT/metrics (default: off)"),
    N_("ADDRESS:PORT") },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &server_verbose,
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
      if (!rndz_tool_parse_uint_option (option, server_limits[i], RNDZ_TYPE_SERVER,
                                        limit_names[i], limit_scales[i],
                                        G_MAXUINT / limit_scales[i], &value, error))
        return FALSE;

      g_object_set (server, limit_names[i], value * limit_scales[i], NULL);
    }

  return TRUE;
}

/* The addresses of --public-address, numeric like --listen-addr's, and
 * with a port */
static gboolean
apply_public_addresses (RndzServer  *server,
                        GError     **error)
{
  g_autoptr(GPtrArray) addresses = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; server_public_addresses != NULL && server_public_addresses[i] != NULL; i++)
    {
      g_autoptr(GSocketAddress) address = parse_listen_address (server_public_addresses[i], error);

      if (address == NULL)
        {
          g_prefix_error (error, "--public-address: ");
          return FALSE;
        }
      if (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address)) == 0)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("--public-address: “%s” has port 0"), server_public_addresses[i]);
          return FALSE;
        }
      g_ptr_array_add (addresses, rndz_tool_format_address (address));
    }

  g_ptr_array_add (addresses, NULL);
  rndz_server_set_public_addresses (server, (const char * const *) addresses->pdata);
  return TRUE;
}

static gboolean
apply_server_auth (RndzServer  *server,
                   GError     **error)
{
  g_autoptr(GBytes) secret = NULL;
  g_autoptr(GError) local_error = NULL;

  secret = rndz_tool_read_secret (server_secret_file, "RNDZ_SECRET", &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  if (secret != NULL)
    rndz_server_set_secret (server, secret);

  if (server_key_file != NULL && !rndz_server_load_keys (server, server_key_file, error))
    return FALSE;
  if (!apply_public_addresses (server, error))
    return FALSE;

  if (rndz_server_get_auth_required (server))
    rndz_tool_print_note (_("Peers must authenticate"));

  return TRUE;
}

#ifdef RNDZ_HAVE_CLUSTER
/* Whether apply_server_auth() found an authentication secret, from
 * which the library derives the cluster key when none is given */
static gboolean
tool_has_auth_secret (void)
{
  const char *value = g_getenv ("RNDZ_SECRET");

  return server_secret_file != NULL || (value != NULL && value[0] != '\0');
}

/* --cluster and its secret */
static gboolean
apply_cluster (RndzServer  *server,
               GError     **error)
{
  g_autoptr(GBytes) secret = NULL;
  g_autoptr(GError) local_error = NULL;

  secret = rndz_tool_read_secret (server_cluster_secret_file, "RNDZ_CLUSTER_SECRET",
                                  &local_error);
  if (local_error != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                  "--cluster-secret-file: ");
      return FALSE;
    }

  /* The library says the same at listen, but in its own words, not the
   * options' */
  if (secret == NULL && !tool_has_auth_secret ())
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--cluster needs a secret that the nodes sign their messages with: "
                             "--cluster-secret-file (or RNDZ_CLUSTER_SECRET), or --secret-file "
                             "(or RNDZ_SECRET)"));
      return FALSE;
    }

  rndz_server_set_cluster (server, server_cluster);
  rndz_server_set_cluster_secret (server, secret);
  return TRUE;
}
#endif

/* --cluster, its secret, and --reuse-port */
static gboolean
apply_server_cluster (RndzServer  *server,
                      GError     **error)
{
  rndz_server_set_reuse_port (server, server_reuse_port);

  if (server_cluster == NULL)
    {
      if (server_cluster_secret_file == NULL)
        return TRUE;
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--cluster-secret-file needs --cluster"));
      return FALSE;
    }

#ifdef RNDZ_HAVE_CLUSTER
  return apply_cluster (server, error);
#else
  g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("--cluster: this rndz was built without cluster support (hiredis)"));
  return FALSE;
#endif
}

/* A server with the options' limits and keys, listening; or NULL after
 * the error was printed */
static RndzServer *
server_start (void)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GError) error = NULL;

  address = parse_listen_address (server_listen_address != NULL ? server_listen_address
                                                                : DEFAULT_LISTEN_ADDRESS,
                                  &error);
  if (address == NULL)
    {
      rndz_tool_print_error ("%s", error->message);
      return NULL;
    }

  server = rndz_server_new ();
  if (!apply_server_limits (server, &error) || !apply_server_auth (server, &error) ||
      !apply_server_cluster (server, &error))
    {
      rndz_tool_print_error ("%s", error->message);
      return NULL;
    }

  if (!rndz_server_listen (server, address, &error))
    {
      g_autofree char *address_text = rndz_tool_format_address (address);

      rndz_tool_print_error (_("Cannot listen on %s: %s"), address_text, error->message);
      return NULL;
    }

  return g_steal_pointer (&server);
}

/* @url without its password, for a line that may end up in a log */
static char *
cluster_url_for_display (const char *url)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_HAS_PASSWORD, NULL);

  if (uri == NULL || g_uri_get_password (uri) == NULL)
    return g_strdup (url);
  return g_uri_join_with_user (G_URI_FLAGS_NONE, "redis", g_uri_get_user (uri), "***", NULL,
                               g_uri_get_host (uri), g_uri_get_port (uri),
                               g_uri_get_path (uri), NULL, NULL);
}

/* --metrics-addr: an address to give, never a wildcard by default.
 * Returns FALSE after printing the error. */
static gboolean
server_metrics_start (RndzServer *server)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  if (server_metrics_address == NULL)
    return TRUE;

  address = parse_listen_address (server_metrics_address, &error);
  if (address != NULL)
    server_metrics = rndz_metrics_new (server, address, &error);
  if (server_metrics == NULL)
    {
      rndz_tool_print_error ("--metrics-addr: %s", error->message);
      return FALSE;
    }
  return TRUE;
}

/* The lines that scripts wait for */
static void
server_announce (RndzServer *server)
{
  g_autoptr(GSocketAddress) local_address = NULL;
  g_autofree char *local_text = NULL;

  local_address = rndz_server_get_local_address (server);
  local_text = rndz_tool_format_address (local_address);
  g_print (_("Listening on %s\n"), local_text);
  if (rndz_server_get_relay_port (server) != 0)
    {
      GInetAddress *inet = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (local_address));
      g_autoptr(GSocketAddress) relay_address =
        g_inet_socket_address_new (inet, rndz_server_get_relay_port (server));
      g_autofree char *relay_text = rndz_tool_format_address (relay_address);

      g_print (_("Relaying on %s\n"), relay_text);
    }
  if (rndz_server_get_cluster (server) != NULL)
    {
      g_autofree char *url = cluster_url_for_display (rndz_server_get_cluster (server));

      g_print (_("Cluster node %s through %s\n"), rndz_server_get_cluster_node (server), url);
    }
  if (server_metrics != NULL)
    {
      g_autoptr(GSocketAddress) metrics_address = rndz_metrics_get_local_address (server_metrics);
      g_autofree char *metrics_text = rndz_tool_format_address (metrics_address);

      g_print (_("Metrics on http://%s/metrics\n"), metrics_text);
    }
  fflush (stdout);
}

/* The state of the way to Redis, as the tool last told it */
typedef struct
{
  gboolean connected;
  gboolean lost;
} ClusterWatch;

/* Lines on the way to Redis, once per change (CONNECTING and DOWN both
 * read as not connected). Losing Redis, and getting it back, change what
 * the fleet can do: those lines are printed without --verbose too. */
static void
cluster_connected_cb (GObject    *object,
                      GParamSpec *pspec,
                      gpointer    user_data)
{
  ClusterWatch *watch = user_data;
  gboolean connected = rndz_server_get_cluster_connected (RNDZ_SERVER (object));
  g_autofree char *url = NULL;

  if (connected == watch->connected)
    return;
  watch->connected = connected;

  url = cluster_url_for_display (rndz_server_get_cluster (RNDZ_SERVER (object)));
  if (!connected)
    {
      watch->lost = TRUE;
      rndz_tool_print_error (_("Lost the cluster’s Redis at %s: serving this node’s peers only, "
                               "requests for other nodes’ peers fail until it is back"), url);
    }
  else if (watch->lost)
    rndz_tool_print_error (_("The cluster’s Redis at %s is back"), url);
  else
    rndz_tool_print_note (_("Connected to the cluster’s Redis at %s"), url);
}

static gboolean
server_quit_cb (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

/* The signals are caught before the server says it listens: a script
 * that reads the line and stops the server at once gets a clean exit */
static void
server_run (RndzServer *server)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  guint signal_ids[2] = { 0, 0 };
  ClusterWatch cluster_watch = { rndz_server_get_cluster_connected (server), FALSE };
  gulong cluster_handler;

  rndz_tool_add_quit_signals (server_quit_cb, loop, signal_ids);
  cluster_handler = g_signal_connect (server, "notify::cluster-connected",
                                      G_CALLBACK (cluster_connected_cb), &cluster_watch);
  server_announce (server);
  g_main_loop_run (loop);
  g_signal_handler_disconnect (server, cluster_handler);
  rndz_tool_remove_quit_signals (signal_ids);

  rndz_tool_print_note (_("Stopping"));
  rndz_server_stop (server);
}

static void
server_clear_options (void)
{
  g_clear_pointer (&server_listen_address, g_free);
  g_clear_pointer (&server_metrics_address, g_free);
  g_clear_pointer (&server_secret_file, g_free);
  g_clear_pointer (&server_key_file, g_free);
  g_clear_pointer (&server_public_addresses, g_strfreev);
  g_clear_pointer (&server_cluster, g_free);
  g_clear_pointer (&server_cluster_secret_file, g_free);
  server_reuse_port = FALSE;
  for (guint i = 0; i < N_LIMITS; i++)
    g_clear_pointer (&server_limits[i], g_free);
}

int
rndz_tool_server_main (int    argc,
                       char **argv)
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GError) error = NULL;
  int status = EXIT_FAILURE;

  context = g_option_context_new (NULL);
  g_option_context_set_summary (context, _("Run a rendezvous server: peers register with it, and it forwards their connection requests."));
  g_option_context_add_main_entries (context, server_entries, GETTEXT_PACKAGE);

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

  rndz_tool_set_verbose (server_verbose);

  server = server_start ();
  if (server == NULL || !server_metrics_start (server))
    goto out;

  server_run (server);
  status = EXIT_SUCCESS;

out:
  g_clear_pointer (&server_metrics, rndz_metrics_free);
  server_clear_options ();
  return status;
}
