/* rndz-tool.c: helpers that the modes of the rndz program share
 *
 * SPDX-License-Identifier: MIT
 *
 * Whatever scripts read is written to stdout, one line per event, and
 * flushed at once; everything else (errors, --verbose notes, debug
 * messages of the library) goes to stderr.
 */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>

#include <glib/gi18n.h>
#include <glib-unix.h>

#include <rndz-glib/rndz.h>

#include "rndz-tool.h"

/* The library logs to "Rndz", this program to G_LOG_DOMAIN */
#define RNDZ_LIBRARY_LOG_DOMAIN "Rndz"

static gboolean verbose = FALSE;

void
rndz_tool_print_error (const char *format,
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
void
rndz_tool_print_note (const char *format,
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

/* Who is at the other end of a secure channel: always said, on standard
 * error (standard output is the scripts'), so that a person can compare
 * it with the fingerprint the peer printed, as with ssh's host keys */
void
rndz_tool_print_peer_fingerprint (const char *peer_id,
                                  const char *fingerprint)
{
  /* Translators: the program name, a peer's id, then 64 hexadecimal
   * digits; scripts take the last word of the line */
  g_printerr (_("%s: Peer “%s” has the fingerprint %s\n"), g_get_prgname (), peer_id,
              fingerprint);
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

/* --verbose: the notes, and the debug messages of the library and of
 * this program. Called once the options are parsed, before anything is
 * logged. */
void
rndz_tool_set_verbose (gboolean enable)
{
  verbose = enable;
  if (verbose)
    enable_debug_logging ();
}

char *
rndz_tool_format_address (GSocketAddress *address)
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

/* How a connection reaches its peer, for the notes */
const char *
rndz_tool_path_name (GSocket *socket)
{
  switch (socket != NULL ? rndz_socket_get_path (socket) : RNDZ_PATH_UNKNOWN)
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

/* The socket under a TCP connection, plain or TLS (transfer none: the
 * connection holds it) */
GSocket *
rndz_tool_stream_get_socket (GIOStream *stream)
{
  g_autoptr(GIOStream) base = NULL;

  if (G_IS_SOCKET_CONNECTION (stream))
    return g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
  if (!G_IS_TLS_CONNECTION (stream))
    return NULL;

  g_object_get (stream, "base-io-stream", &base, NULL);
  return base != NULL ? rndz_tool_stream_get_socket (base) : NULL;
}

/* The fingerprint of the certificate the peer of @connection showed */
void
rndz_tool_print_tls_peer (const char     *peer_id,
                          GTlsConnection *connection)
{
  GTlsCertificate *certificate = g_tls_connection_get_peer_certificate (connection);
  g_autofree char *fingerprint = NULL;

  if (certificate != NULL)
    fingerprint = rndz_fingerprint_from_certificate (certificate);
  rndz_tool_print_peer_fingerprint (peer_id, fingerprint != NULL ? fingerprint : "?");
}

/* Secrets and keys come from files or the environment, never from the
 * command line alone: other users can read a process's arguments. */
GBytes *
rndz_tool_read_secret (const char  *path,
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

/* Reads a number for the option @option that sets the guint property
 * @property of @type, within the range the property accepts. One unit of
 * the option is @scale units of the property: 1000 for an option in
 * seconds (what users type, as in the Rust rndz) that sets a property in
 * milliseconds (what the library takes, as GLib does). @value and
 * @fallback_max are in the option's unit. An option of the tool's own
 * (@property %NULL) takes 1 to @fallback_max. */
gboolean
rndz_tool_parse_uint_option (const char  *option,
                             const char  *text,
                             GType        type,
                             const char  *property,
                             guint        scale,
                             guint        fallback_max,
                             guint       *value,
                             GError     **error)
{
  g_autoptr(GTypeClass) klass = property != NULL ? g_type_class_ref (type) : NULL;
  GParamSpec *pspec = klass != NULL ? g_object_class_find_property (G_OBJECT_CLASS (klass), property) : NULL;
  guint minimum = 1;
  guint maximum = fallback_max;
  guint64 number;

  g_return_val_if_fail (scale >= 1, FALSE);

  if (pspec != NULL && G_IS_PARAM_SPEC_UINT (pspec))
    {
      GParamSpecUInt *range = G_PARAM_SPEC_UINT (pspec);

      /* The option's range is the part of the property's it can reach */
      minimum = range->minimum / scale + (range->minimum % scale != 0);
      maximum = MIN (range->maximum / scale, fallback_max);
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

void
rndz_tool_add_quit_signals (GSourceFunc  callback,
                            gpointer     user_data,
                            guint        ids[2])
{
  ids[0] = g_unix_signal_add (SIGINT, callback, user_data);
  ids[1] = g_unix_signal_add (SIGTERM, callback, user_data);
}

void
rndz_tool_remove_quit_signals (guint ids[2])
{
  g_clear_handle_id (&ids[0], g_source_remove);
  g_clear_handle_id (&ids[1], g_source_remove);
}

/*
 * rndz_tool_raise_descriptor_limit:
 *
 * Raises the soft limit on open files to the hard one, as servers do: the
 * soft limit (often 1024) is a default for programs that do not expect
 * many connections, and a server that reaches it stops accepting.
 */
void
rndz_tool_raise_descriptor_limit (void)
{
  struct rlimit limit;

  if (getrlimit (RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max)
    return;

  limit.rlim_cur = limit.rlim_max;
  if (setrlimit (RLIMIT_NOFILE, &limit) != 0)
    g_debug ("Could not raise the limit on open files: %s", g_strerror (errno));
}
