/* rndz-client-secure-connect.c: reaching a peer securely
 *
 * SPDX-License-Identifier: MIT
 *
 * The plain operation of rndz-connect.c, told to carry our fingerprint
 * and to bring back the target's (RndzConnectSecurity), then the
 * handshake as the client over the path it found: TLS over TCP, DTLS
 * over UDP. The handshake has the client's timeout of its own, on top of
 * the rendezvous.
 */

#include "config.h"

#include "rndz-client.h"
#include "rndz-client-internal.h"
#include "rndz-connect-private.h"
#include "rndz-i18n-private.h"
#include "rndz-secure-handshake-private.h"

typedef struct
{
  RndzConnectSecurity security;
  RndzTransport transport;
  char *peer_id;
  RndzIdentity *identity;
  GMainContext *context;        /* the client's */
  guint timeout_ms;
} SecureConnect;

static void
secure_connect_free (SecureConnect *sc)
{
  g_clear_object (&sc->identity);
  g_main_context_unref (sc->context);
  g_free (sc->security.pin);
  g_free (sc->peer_id);
  g_free (sc);
}

static void
handshake_done_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  SecureConnect *sc = g_task_get_task_data (task);
  GError *error = NULL;
  GObject *channel = rndz_secure_handshake_finish (result, &error);

  if (channel == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  g_debug ("Secure channel to “%s” (%s) is up", sc->peer_id, sc->security.peer_fp);
  g_task_return_pointer (task, channel, g_object_unref);
}

/* The rendezvous found a path, and the target's fingerprint came with
 * it: the handshake, as the client */
static void
rendezvous_done_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  SecureConnect *sc = g_task_get_task_data (task);
  g_autoptr(GObject) path = NULL;
  GError *error = NULL;

  path = g_task_propagate_pointer (G_TASK (result), &error);
  if (path == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  rndz_secure_handshake_async (path, FALSE, sc->identity, sc->security.peer_fp, sc->timeout_ms,
                               g_task_get_cancellable (task), handshake_done_cb,
                               g_object_ref (task));
}

/* Runs in the client's context */
static void
secure_connect_start (GTask    *task,
                      gpointer  user_data)
{
  RndzClient *client = g_task_get_source_object (task);
  SecureConnect *sc = g_task_get_task_data (task);
  GTask *rendezvous;

  rendezvous = rndz_task_new_in (sc->context, g_task_get_cancellable (task), rendezvous_done_cb,
                                 g_object_ref (task));
  rndz_connect_start (client->peer, sc->transport, sc->peer_id, &sc->security, rendezvous);
}

static void
secure_connect_async (RndzClient          *client,
                      RndzTransport        transport,
                      const char          *peer_id,
                      const char          *peer_fingerprint,
                      gpointer             source_tag,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (client, cancellable, callback, user_data);
  g_autofree char *pin = NULL;
  GError *error = NULL;
  SecureConnect *sc;

  g_task_set_source_tag (task, source_tag);
  if (!rndz_id_is_valid (peer_id, -1))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("Invalid peer id “%s”"), peer_id);
      return;
    }
  if ((peer_fingerprint != NULL && (pin = rndz_fingerprint_normalize (peer_fingerprint, &error)) == NULL) ||
      !rndz_client_ensure_identity (client, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  sc = g_new0 (SecureConnect, 1);
  sc->transport = transport;
  sc->peer_id = g_strdup (peer_id);
  sc->security.pin = g_steal_pointer (&pin);
  sc->identity = g_object_ref (client->identity);
  sc->context = g_main_context_ref (client->peer->context);
  sc->timeout_ms = client->peer->timeout_ms;
  g_task_set_task_data (task, sc, (GDestroyNotify) secure_connect_free);
  rndz_peer_context_invoke (client->peer, secure_connect_start, task, NULL);
}

static gpointer
secure_connect_finish (RndzClient    *client,
                       GAsyncResult  *result,
                       gpointer       source_tag,
                       GError       **error)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);
  g_return_val_if_fail (g_task_is_valid (result, client), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * rndz_client_connect_tls_async:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @peer_fingerprint: (nullable): the fingerprint the peer must have, or
 *   %NULL to take the one the rendezvous brings
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when the secure
 *   connection is up, or could not be made
 * @user_data: data for @callback
 *
 * Reaches @peer_id over TCP, as rndz_client_connect_tcp_async() does, and
 * secures the connection with TLS 1.3: both sides present their
 * certificates ([property@Rndz.Client:identity]; a client without one
 * gets a fresh one), and each checks that the other's has the
 * fingerprint that the rendezvous carried. The peer must listen with an
 * identity too.
 *
 * With @peer_fingerprint, the peer must have that one: the servers and
 * relays on the way are then not trusted with the peer's identity at
 * all. Without it, they are trusted to carry the fingerprint the peer
 * gave them, and a server that swaps it can put itself in the middle;
 * pin peers you know.
 *
 * Fails as rndz_client_connect_tcp_async() does, and with
 * %RNDZ_ERROR_NOT_SECURE if the peer listens without an identity,
 * %RNDZ_ERROR_IDENTITY_MISMATCH if its fingerprint is not @peer_fingerprint
 * (before anything is sent to it) or if what answers the handshake is
 * not the peer the rendezvous named, and %RNDZ_ERROR_HANDSHAKE_FAILED if
 * the handshake fails otherwise or takes longer than
 * [property@Rndz.Client:timeout]. In a build without TLS support, it
 * fails at once with %G_IO_ERROR_NOT_SUPPORTED.
 *
 * Since: 1.0
 */
void
rndz_client_connect_tls_async (RndzClient          *client,
                               const char          *peer_id,
                               const char          *peer_fingerprint,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (peer_id != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  secure_connect_async (client, RNDZ_TRANSPORT_TCP, peer_id, peer_fingerprint,
                        rndz_client_connect_tls_async, cancellable, callback, user_data);
}

/**
 * rndz_client_connect_tls_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes rndz_client_connect_tls_async().
 *
 * Returns: (transfer full): the TLS connection to the peer, or %NULL on
 *   error. Read and write its streams; its peer certificate is the
 *   peer's (rndz_fingerprint_from_certificate() gives its fingerprint).
 *
 * Since: 1.0
 */
GTlsConnection *
rndz_client_connect_tls_finish (RndzClient    *client,
                                GAsyncResult  *result,
                                GError       **error)
{
  return secure_connect_finish (client, result, rndz_client_connect_tls_async, error);
}

/**
 * rndz_client_connect_tls:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @peer_fingerprint: (nullable): the fingerprint the peer must have
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_connect_tls_async().
 *
 * Returns: (transfer full): the TLS connection to the peer, or %NULL on
 *   error
 *
 * Since: 1.0
 */
GTlsConnection *
rndz_client_connect_tls (RndzClient    *client,
                         const char    *peer_id,
                         const char    *peer_fingerprint,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_connect_tls_async (client, peer_id, peer_fingerprint, cancellable,
                                 rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_connect_tls_finish (client, result, error);
}

/**
 * rndz_client_connect_dtls_async:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @peer_fingerprint: (nullable): the fingerprint the peer must have, or
 *   %NULL to take the one the rendezvous brings
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when the secure
 *   channel is up, or could not be made
 * @user_data: data for @callback
 *
 * Reaches @peer_id over UDP, as rndz_client_connect_udp_async() does, and
 * secures the path with DTLS 1.2, with the same checks of identities as
 * rndz_client_connect_tls_async(), which says what @peer_fingerprint
 * protects against. The result carries datagrams, encrypted and
 * authenticated, and keeps the path open with keepalives of its own.
 *
 * Fails as rndz_client_connect_udp_async() does, and with
 * %RNDZ_ERROR_NOT_SECURE, %RNDZ_ERROR_IDENTITY_MISMATCH and
 * %RNDZ_ERROR_HANDSHAKE_FAILED (or %G_IO_ERROR_NOT_SUPPORTED) as
 * rndz_client_connect_tls_async() does.
 *
 * Since: 1.0
 */
void
rndz_client_connect_dtls_async (RndzClient          *client,
                                const char          *peer_id,
                                const char          *peer_fingerprint,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (peer_id != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  secure_connect_async (client, RNDZ_TRANSPORT_UDP, peer_id, peer_fingerprint,
                        rndz_client_connect_dtls_async, cancellable, callback, user_data);
}

/**
 * rndz_client_connect_dtls_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @error: return location for a #GError
 *
 * Finishes rndz_client_connect_dtls_async().
 *
 * Returns: (transfer full): the secure channel to the peer, or %NULL on
 *   error
 *
 * Since: 1.0
 */
RndzDtlsChannel *
rndz_client_connect_dtls_finish (RndzClient    *client,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  return secure_connect_finish (client, result, rndz_client_connect_dtls_async, error);
}

/**
 * rndz_client_connect_dtls:
 * @client: a #RndzClient
 * @peer_id: the id of the peer to reach
 * @peer_fingerprint: (nullable): the fingerprint the peer must have
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_connect_dtls_async().
 *
 * Returns: (transfer full): the secure channel to the peer, or %NULL on
 *   error
 *
 * Since: 1.0
 */
RndzDtlsChannel *
rndz_client_connect_dtls (RndzClient    *client,
                          const char    *peer_id,
                          const char    *peer_fingerprint,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_connect_dtls_async (client, peer_id, peer_fingerprint, cancellable,
                                  rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_connect_dtls_finish (client, result, error);
}
