/* rndz-tls.c: TLS 1.3 over an established TCP path
 *
 * SPDX-License-Identifier: MIT
 *
 * Through GIO's GTlsClientConnection / GTlsServerConnection (the GnuTLS
 * backend of glib-networking), with both sides presenting their identity
 * and requiring the other's. The certificates are self-signed, so GIO
 * never finds them valid by itself: every peer certificate goes through
 * ::accept-certificate, which accepts it only if its fingerprint is the
 * one expected. There is no certificate database at all (no system
 * authority can vouch for a peer, and loading one costs 6 ms), and
 * the peer certificate is checked again once the handshake is done, so
 * that nothing is accepted whose fingerprint was not compared.
 *
 * Phases of a handshake:
 *   1. TCP keepalive on @base's socket, so that a dead path ends in an
 *      error instead of a connection that waits for ever, and TCP_NODELAY;
 *   2. the GTlsConnection over @base, with our certificate, no database,
 *      and (as the server) a client certificate required;
 *   3. g_tls_connection_handshake_async(), during which accept_certificate()
 *      compares and remembers what the peer showed;
 *   4. the peer certificate and the protocol version, checked again.
 *
 * In TLS 1.3 the client is done with the handshake before the server has
 * judged its certificate: a client whose certificate the server refuses
 * learns it at its first read (a TLS alert, then an error), not from this
 * handshake. It has sent nothing in plaintext meanwhile.
 *
 * Everything runs in the thread-default main context of the caller of
 * rndz_tls_handshake_async(), as GIO's handshake does.
 */

#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include "rndz-tls-private.h"
#include "rndz-types.h"
#include "rndz-fingerprint-private.h"
#include "rndz-i18n-private.h"

/* Probes after 15 s of silence, every 5 s, 3 times: a dead path is an
 * error within 30 s */
#define KEEPALIVE_IDLE_S 15
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

typedef struct {
  GIOStream *base;
  GTlsConnection *tls;
  char *expected;
  /* The fingerprint of what the peer last showed, or NULL */
  char *seen;
  gulong accept_id;
} Handshake;

static void
handshake_free (Handshake *hs)
{
  if (hs->accept_id != 0)
    g_signal_handler_disconnect (hs->tls, hs->accept_id);
  g_clear_object (&hs->tls);
  g_clear_object (&hs->base);
  g_free (hs->expected);
  g_free (hs->seen);
  g_free (hs);
}

static void
set_tcp_option (GSocket    *socket,
                int         option,
                const char *name,
                int         value)
{
  g_autoptr(GError) error = NULL;

  if (!g_socket_set_option (socket, IPPROTO_TCP, option, value, &error))
    g_debug ("Could not set %s on a TLS path: %s", name, error->message);
}

/* Keepalive, and no Nagle: the handshake's flights are small writes
 * that wait for an ACK, which the peer delays (40 ms on Linux) without
 * TCP_NODELAY; 44 ms a handshake on loopback instead of 1.3 ms */
static void
configure_socket (GIOStream *base)
{
  GSocket *socket;

  /* A relayed or test stream may not be a socket's */
  if (!G_IS_SOCKET_CONNECTION (base))
    return;
  socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (base));
  g_socket_set_keepalive (socket, TRUE);
  set_tcp_option (socket, TCP_NODELAY, "TCP_NODELAY", 1);
#ifdef TCP_KEEPIDLE
  set_tcp_option (socket, TCP_KEEPIDLE, "TCP_KEEPIDLE", KEEPALIVE_IDLE_S);
#endif
#ifdef TCP_KEEPINTVL
  set_tcp_option (socket, TCP_KEEPINTVL, "TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S);
#endif
#ifdef TCP_KEEPCNT
  set_tcp_option (socket, TCP_KEEPCNT, "TCP_KEEPCNT", KEEPALIVE_COUNT);
#endif
}

/* The only place where a certificate that GIO could not validate (all of
 * ours: they are self-signed) is let through */
static gboolean
accept_certificate (GTlsConnection       *tls,
                    GTlsCertificate      *peer,
                    GTlsCertificateFlags  errors,
                    gpointer              user_data)
{
  Handshake *hs = user_data;

  g_free (hs->seen);
  hs->seen = rndz_fingerprint_from_certificate (peer);
  return hs->seen != NULL && strcmp (hs->seen, hs->expected) == 0;
}

static GError *
mismatch_error (Handshake *hs)
{
  return g_error_new (RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH,
                      _("The peer is not who it should be: expected certificate %s, got %s"),
                      hs->expected, hs->seen != NULL ? hs->seen : _("none"));
}

static GError *
handshake_error (Handshake *hs,
                 GError    *error)
{
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return g_error_copy (error);
  if (hs->seen != NULL && strcmp (hs->seen, hs->expected) != 0)
    return mismatch_error (hs);
  return g_error_new (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                      _("TLS handshake failed: %s"), error->message);
}

static const char *
version_name (GTlsProtocolVersion version)
{
  switch (version)
    {
    case G_TLS_PROTOCOL_VERSION_SSL_3_0:
      return "SSL 3.0";
    case G_TLS_PROTOCOL_VERSION_TLS_1_0:
      return "TLS 1.0";
    case G_TLS_PROTOCOL_VERSION_TLS_1_1:
      return "TLS 1.1";
    case G_TLS_PROTOCOL_VERSION_TLS_1_2:
      return "TLS 1.2";
    default:
      return "an unknown version";
    }
}

/* Phase 4: whatever GIO thought of the certificate, it is the one
 * expected, and the protocol is TLS 1.3 */
static GError *
check_result (Handshake *hs)
{
  GTlsCertificate *peer = g_tls_connection_get_peer_certificate (hs->tls);
  GTlsProtocolVersion version = g_tls_connection_get_protocol_version (hs->tls);

  g_free (hs->seen);
  hs->seen = peer != NULL ? rndz_fingerprint_from_certificate (peer) : NULL;
  if (hs->seen == NULL || strcmp (hs->seen, hs->expected) != 0)
    return mismatch_error (hs);
  if (version != G_TLS_PROTOCOL_VERSION_TLS_1_3)
    return g_error_new (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                        _("TLS handshake failed: the peer negotiated %s, not TLS 1.3"),
                        version_name (version));
  return NULL;
}

/* A side that gives up closes the path: GnuTLS does not always send an
 * alert (a TLS 1.3 client that refuses the server's certificate does
 * not), and the peer would wait for the rest of the handshake for ever */
static void
return_error (GTask     *task,
              GIOStream *base,
              GError    *error)
{
  g_io_stream_close (base, NULL, NULL);
  g_task_return_error (task, error);
}

static void
handshake_done (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Handshake *hs = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  if (!g_tls_connection_handshake_finish (hs->tls, result, &error))
    {
      return_error (task, hs->base, handshake_error (hs, error));
      return;
    }
  error = check_result (hs);
  if (error != NULL)
    {
      return_error (task, hs->base, g_steal_pointer (&error));
      return;
    }
  g_signal_handler_disconnect (hs->tls, hs->accept_id);
  hs->accept_id = 0;
  g_task_return_pointer (task, g_object_ref (hs->tls), g_object_unref);
}

/* Phase 2. Made as g_tls_client_connection_new() and
 * g_tls_server_connection_new() do, but with the database set (to none)
 * before the connection initializes: otherwise glib-networking 2.74 loads
 * the system's trust store for each connection, some 6 ms each. */
static GTlsConnection *
make_connection (GIOStream        *base,
                 gboolean          server,
                 GTlsCertificate  *certificate,
                 GError          **error)
{
  GTlsBackend *backend = g_tls_backend_get_default ();

  if (server)
    return g_initable_new (g_tls_backend_get_server_connection_type (backend), NULL, error,
                           "base-io-stream", base,
                           "certificate", certificate,
                           "authentication-mode", G_TLS_AUTHENTICATION_REQUIRED,
                           "database", NULL,
                           NULL);
  return g_initable_new (g_tls_backend_get_client_connection_type (backend), NULL, error,
                         "base-io-stream", base,
                         "server-identity", NULL,
                         "certificate", certificate,
                         "database", NULL,
                         NULL);
}

void
rndz_tls_handshake_async (GIOStream           *base,
                          gboolean             server,
                          RndzIdentity        *identity,
                          const char          *expected,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  GTlsCertificate *certificate;
  Handshake *hs;

  g_return_if_fail (G_IS_IO_STREAM (base));
  g_return_if_fail (RNDZ_IS_IDENTITY (identity));
  g_return_if_fail (rndz_fingerprint_is_valid (expected));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, rndz_tls_handshake_async);
  g_task_set_name (task, "[rndz] TLS handshake");

  certificate = rndz_identity_get_certificate (identity);
  if (certificate == NULL)
    {
      return_error (task, base, g_error_new (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                                             _("TLS handshake failed: GIO has no TLS backend "
                                               "(is glib-networking installed?)")));
      return;
    }
  configure_socket (base);

  hs = g_new0 (Handshake, 1);
  hs->base = g_object_ref (base);
  hs->expected = g_strdup (expected);
  g_task_set_task_data (task, hs, (GDestroyNotify) handshake_free);
  hs->tls = make_connection (base, server, certificate, &error);
  if (hs->tls == NULL)
    {
      return_error (task, base, g_error_new (RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED,
                                             _("TLS handshake failed: %s"), error->message));
      return;
    }
  hs->accept_id = g_signal_connect (hs->tls, "accept-certificate",
                                    G_CALLBACK (accept_certificate), hs);
  g_tls_connection_handshake_async (hs->tls, G_PRIORITY_DEFAULT, cancellable,
                                    handshake_done, g_steal_pointer (&task));
}

GTlsConnection *
rndz_tls_handshake_finish (GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rndz_tls_handshake_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
