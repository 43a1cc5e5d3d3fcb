/* rndz-client-secure.c: a client's secure connections (TLS, DTLS)
 *
 * SPDX-License-Identifier: MIT
 *
 * The rendezvous carries each side's fingerprint (rndz-connect.c and
 * rndz-listener-requests.c); this file runs the handshake over the path
 * that comes out of it: TLS over TCP (rndz-tls.c), DTLS over UDP
 * (rndz-dtls-channel.c). Reaching a peer securely is reaching it plainly,
 * then the handshake as the client, checked against the fingerprint of
 * the redirect. A listener with an identity hands every peer that comes
 * in to a handshake as the server at once, several in parallel: a peer
 * that never finishes its handshake holds up nobody. Those that succeed
 * wait in a queue per transport for rndz_client_accept_tls() and
 * rndz_client_accept_dtls().
 *
 * Everything here runs in the client's context, like the operations of
 * rndz-client-calls.c; results go back to the caller's context through
 * GTask. Handshakes under way and the TCP pump hold the client weakly,
 * so that dropping the client stops them.
 */

#include "config.h"

#include "rndz-client.h"
#include "rndz-client-internal.h"
#include "rndz-connect-private.h"
#include "rndz-i18n-private.h"
#include "rndz-secure-handshake-private.h"
#include "rndz-source-private.h"

/* Secure peers waiting for an accept; more are closed */
#define MAX_READY 64

typedef struct
{
  GObject *channel;             /* GTlsConnection or RndzDtlsChannel */
  char *peer_id;
} SecurePeer;

typedef struct
{
  RndzClientSecure *secure;
  RndzTransport transport;
  GTask *task;
  GSource *cancel_source;
} Waiter;

struct _RndzClientSecure
{
  GQueue ready[2];              /* SecurePeer, by RndzTransport */
  GQueue waiters[2];            /* Waiter, by RndzTransport */
  GCancellable *cancellable;    /* the handshakes and the pump; cancelled by stop */
  gboolean pumping;             /* TCP: taking the listener's connections */
};

static void
channel_close (GObject *channel)
{
  if (G_IS_IO_STREAM (channel))
    g_io_stream_close (G_IO_STREAM (channel), NULL, NULL);
  else if (RNDZ_IS_DTLS_CHANNEL (channel))
    rndz_dtls_channel_close (RNDZ_DTLS_CHANNEL (channel));
}

static void
secure_peer_free (SecurePeer *peer)
{
  if (peer->channel != NULL)
    {
      channel_close (peer->channel);
      g_object_unref (peer->channel);
    }
  g_free (peer->peer_id);
  g_free (peer);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (SecurePeer, secure_peer_free)

static RndzClientSecure *
client_secure (RndzClient *client)
{
  if (client->secure == NULL)
    {
      client->secure = g_new0 (RndzClientSecure, 1);
      client->secure->cancellable = g_cancellable_new ();
    }
  return client->secure;
}

static void
waiter_free (Waiter *waiter)
{
  rndz_source_clear (&waiter->cancel_source);
  g_clear_object (&waiter->task);
  g_free (waiter);
}

/* Fails every accept waiting, and closes the peers nobody took */
static void
secure_clear (RndzClientSecure *secure,
              gboolean          closing)
{
  for (guint t = 0; t < G_N_ELEMENTS (secure->waiters); t++)
    {
      Waiter *waiter;

      g_queue_clear_full (&secure->ready[t], (GDestroyNotify) secure_peer_free);
      while ((waiter = g_queue_pop_head (&secure->waiters[t])) != NULL)
        {
          g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

          waiter_free (waiter);
          if (closing)
            g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CLOSED,
                                     _("The client stopped listening"));
        }
    }
}

void
rndz_client_secure_free (RndzClientSecure *secure)
{
  g_cancellable_cancel (secure->cancellable);
  secure_clear (secure, FALSE);
  g_object_unref (secure->cancellable);
  g_free (secure);
}

/* Stopping: the handshakes under way end, accepts fail */
void
rndz_client_secure_stop (RndzClient *client)
{
  RndzClientSecure *secure = client->secure;

  if (secure == NULL)
    return;

  g_cancellable_cancel (secure->cancellable);
  g_clear_object (&secure->cancellable);
  secure->cancellable = g_cancellable_new ();
  secure->pumping = FALSE;
  secure_clear (secure, TRUE);
}

/* Identity */

/**
 * rndz_client_get_identity:
 * @client: a #RndzClient
 *
 * Gets the client's identity.
 *
 * Returns: (transfer none) (nullable): the value of
 *   [property@Rndz.Client:identity]
 *
 * Since: 1.0
 */
RndzIdentity *
rndz_client_get_identity (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  return client->identity;
}

/**
 * rndz_client_set_identity:
 * @client: a #RndzClient
 * @identity: (nullable): the identity, or %NULL for none
 *
 * Sets [property@Rndz.Client:identity]. It applies to the next request
 * that comes in and the next peer reached.
 *
 * Since: 1.0
 */
void
rndz_client_set_identity (RndzClient   *client,
                          RndzIdentity *identity)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (identity == NULL || RNDZ_IS_IDENTITY (identity));

  if (!g_set_object (&client->identity, identity))
    return;

  g_free (client->peer->fingerprint);
  client->peer->fingerprint = identity != NULL ? g_strdup (rndz_identity_get_fingerprint (identity))
                                               : NULL;
  g_object_notify (G_OBJECT (client), "identity");
}

/* The first secure call makes an identity if the client has none */
gboolean
rndz_client_ensure_identity (RndzClient  *client,
                             GError     **error)
{
  g_autoptr(RndzIdentity) identity = NULL;

  if (client->identity != NULL)
    return TRUE;

  identity = rndz_identity_new (error);
  if (identity == NULL)
    return FALSE;
  rndz_client_set_identity (client, identity);
  return TRUE;
}

/**
 * rndz_client_get_allowed_fingerprints:
 * @client: a #RndzClient
 *
 * Gets the fingerprints of the peers a listening client lets in.
 *
 * Returns: (transfer none) (nullable) (array zero-terminated=1): the value
 *   of [property@Rndz.Client:allowed-fingerprints], in the text form
 *
 * Since: 1.0
 */
const char * const *
rndz_client_get_allowed_fingerprints (RndzClient *client)
{
  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  return (const char * const *) client->peer->allowed_fingerprints;
}

/**
 * rndz_client_set_allowed_fingerprints:
 * @client: a #RndzClient
 * @fingerprints: (nullable) (array zero-terminated=1): fingerprints, in
 *   any form rndz_fingerprint_normalize() accepts, or %NULL for any
 *
 * Sets [property@Rndz.Client:allowed-fingerprints]. Every entry must be
 * a fingerprint.
 *
 * Since: 1.0
 */
void
rndz_client_set_allowed_fingerprints (RndzClient         *client,
                                      const char * const *fingerprints)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new ();

  g_return_if_fail (RNDZ_IS_CLIENT (client));

  for (guint i = 0; fingerprints != NULL && fingerprints[i] != NULL; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *fp = rndz_fingerprint_normalize (fingerprints[i], &error);

      if (fp == NULL)
        {
          g_critical ("rndz_client_set_allowed_fingerprints: %s", error->message);
          return;
        }
      g_strv_builder_add (builder, fp);
    }

  g_strfreev (client->peer->allowed_fingerprints);
  client->peer->allowed_fingerprints = fingerprints != NULL ? g_strv_builder_end (builder) : NULL;
  g_object_notify (G_OBJECT (client), "allowed-fingerprints");
}

/* Secure peers that came in */

/* A secure peer is ready: to the first accept waiting, or into the queue */
static void
secure_deliver (RndzClient    *client,
                RndzTransport  transport,
                GObject       *channel,
                const char    *peer_id)
{
  RndzClientSecure *secure = client_secure (client);
  SecurePeer *peer = g_new0 (SecurePeer, 1);
  Waiter *waiter;

  peer->channel = channel;
  peer->peer_id = g_strdup (peer_id);

  waiter = g_queue_pop_head (&secure->waiters[transport]);
  if (waiter != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

      waiter_free (waiter);
      g_task_return_pointer (task, peer, (GDestroyNotify) secure_peer_free);
      return;
    }

  if (secure->ready[transport].length >= MAX_READY)
    {
      g_debug ("Closing the secure channel of “%s”: nobody accepts", peer_id);
      secure_peer_free (peer);
      return;
    }
  g_queue_push_tail (&secure->ready[transport], peer);
}

/* A handshake as the server, under way: it holds the client weakly */
typedef struct
{
  GWeakRef client;
  RndzTransport transport;
  char *peer_id;
  GCancellable *stop;           /* the client's, when the handshake began */
} Handshake;

static void
handshake_free (Handshake *handshake)
{
  g_object_unref (handshake->stop);
  g_weak_ref_clear (&handshake->client);
  g_free (handshake->peer_id);
  g_free (handshake);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Handshake, handshake_free)

static void
handshake_done_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(Handshake) handshake = user_data;
  g_autoptr(RndzClient) client = g_weak_ref_get (&handshake->client);
  g_autoptr(GError) error = NULL;
  GObject *channel = rndz_secure_handshake_finish (result, &error);

  if (channel == NULL)
    {
      g_debug ("No secure channel with “%s”: %s", handshake->peer_id, error->message);
      return;
    }
  if (client == NULL || g_cancellable_is_cancelled (handshake->stop))
    {
      channel_close (channel);
      g_object_unref (channel);
      return;
    }
  secure_deliver (client, handshake->transport, channel, handshake->peer_id);
}

/* A peer that came in, on @path: the handshake as the server, bounded
 * by the client's timeout; the client's stop ends it */
static void
handshake_start (RndzClient    *client,
                 RndzTransport  transport,
                 const char    *peer_id,
                 GObject       *path,
                 const char    *fp)
{
  Handshake *handshake = g_new0 (Handshake, 1);

  g_weak_ref_init (&handshake->client, client);
  handshake->transport = transport;
  handshake->peer_id = g_strdup (peer_id);
  handshake->stop = g_object_ref (client_secure (client)->cancellable);
  rndz_secure_handshake_async (path, TRUE, client->identity, fp, client->peer->timeout_ms,
                               handshake->stop, handshake_done_cb, handshake);
}

/*
 * rndz_client_secure_take_socket:
 *
 * A UDP peer came in on a socket of its own. With an identity, the
 * socket carries its DTLS channel: the handshake starts at once, as the
 * server (the requester's ClientHello may be on its way already), and the
 * peer goes to rndz_client_accept_dtls() when it is done.
 *
 * Returns: %TRUE if the socket is taken, %FALSE if it is the
 *   application's (a client without an identity)
 */
gboolean
rndz_client_secure_take_socket (RndzClient   *client,
                                RndzListener *listener,
                                const char   *peer_id,
                                GSocket      *socket)
{
  const char *fp;

  if (client->identity == NULL)
    return FALSE;

  /* Only secure requesters come in while we have an identity; one that
   * came before we had it gets nothing */
  fp = rndz_listener_get_peer_fingerprint (listener, peer_id);
  if (fp == NULL)
    {
      g_debug ("Closing the socket of “%s”: it asked for a plain connection", peer_id);
      g_socket_close (socket, NULL);
      return TRUE;
    }

  handshake_start (client, RNDZ_TRANSPORT_UDP, peer_id, G_OBJECT (socket), fp);
  return TRUE;
}

/* TCP: the pump takes every connection from the listener, and hands it to
 * a handshake as the server */

static void pump_next (RndzClient *client);

static void
pump_accepted_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  GWeakRef *weak = user_data;
  g_autoptr(RndzClient) client = g_weak_ref_get (weak);
  g_autoptr(RndzIncoming) incoming = NULL;
  g_autoptr(GError) error = NULL;

  g_weak_ref_clear (weak);
  g_free (weak);
  incoming = g_task_propagate_pointer (G_TASK (result), &error);
  if (client == NULL || client->secure == NULL)
    return;
  if (incoming == NULL)
    {
      /* The listener stopped, or we did */
      client->secure->pumping = FALSE;
      return;
    }

  if (incoming->fingerprint == NULL || client->identity == NULL)
    g_debug ("Closing the connection of “%s”: it asked for a plain connection",
             incoming->peer_id);
  else
    {
      /* The handshake has the connection now: the incoming must not
       * close it when it goes */
      g_autoptr(GSocketConnection) connection = g_steal_pointer (&incoming->connection);

      handshake_start (client, RNDZ_TRANSPORT_TCP, incoming->peer_id, G_OBJECT (connection),
                       incoming->fingerprint);
    }
  pump_next (client);
}

static void
pump_next (RndzClient *client)
{
  RndzListener *listener = client->listeners[RNDZ_TRANSPORT_TCP];
  RndzClientSecure *secure = client_secure (client);
  GWeakRef *weak;
  GTask *task;

  if (listener == NULL || !rndz_listener_is_active (listener))
    {
      secure->pumping = FALSE;
      return;
    }

  secure->pumping = TRUE;
  weak = g_new0 (GWeakRef, 1);
  g_weak_ref_init (weak, client);
  task = rndz_task_new_in (client->peer->context, secure->cancellable, pump_accepted_cb, weak);
  rndz_listener_accept (listener, task);
}

/* Accepting */

static gboolean
waiter_cancelled_cb (GCancellable *cancellable,
                     gpointer      user_data)
{
  Waiter *waiter = user_data;
  g_autoptr(GTask) task = g_steal_pointer (&waiter->task);

  g_queue_remove (&waiter->secure->waiters[waiter->transport], waiter);
  waiter_free (waiter);
  g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                           _("Operation was cancelled"));
  return G_SOURCE_REMOVE;
}

/* Runs in the client's context */
static void
accept_secure_start (GTask    *task,
                     gpointer  user_data)
{
  RndzClient *client = g_task_get_source_object (task);
  RndzTransport transport = GPOINTER_TO_UINT (user_data);
  RndzListener *listener = client->listeners[transport];
  GCancellable *cancellable = g_task_get_cancellable (task);
  RndzClientSecure *secure = client_secure (client);
  SecurePeer *peer;
  Waiter *waiter;

  if (listener == NULL || !rndz_listener_is_active (listener))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                               transport == RNDZ_TRANSPORT_TCP ? _("The client is not listening on TCP")
                                                               : _("The client is not listening on UDP"));
      return;
    }
  if (transport == RNDZ_TRANSPORT_TCP && !secure->pumping)
    pump_next (client);

  peer = g_queue_pop_head (&secure->ready[transport]);
  if (peer != NULL)
    {
      g_task_return_pointer (task, peer, (GDestroyNotify) secure_peer_free);
      return;
    }

  waiter = g_new0 (Waiter, 1);
  waiter->secure = secure;
  waiter->transport = transport;
  waiter->task = g_object_ref (task);
  if (cancellable != NULL)
    {
      waiter->cancel_source = g_cancellable_source_new (cancellable);
      g_source_set_callback (waiter->cancel_source, G_SOURCE_FUNC (waiter_cancelled_cb),
                             waiter, NULL);
      g_source_attach (waiter->cancel_source, client->peer->context);
    }
  g_queue_push_tail (&secure->waiters[transport], waiter);
}

static void
accept_secure_async (RndzClient          *client,
                     RndzTransport        transport,
                     gpointer             source_tag,
                     GCancellable        *cancellable,
                     GAsyncReadyCallback  callback,
                     gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (client, cancellable, callback, user_data);
  GError *error = NULL;

  g_task_set_source_tag (task, source_tag);
  if (!rndz_client_ensure_identity (client, &error))
    {
      g_task_return_error (task, error);
      return;
    }
  rndz_peer_context_invoke (client->peer, accept_secure_start, task, GUINT_TO_POINTER (transport));
}

static gpointer
accept_secure_finish (RndzClient    *client,
                      GAsyncResult  *result,
                      gpointer       source_tag,
                      char         **peer_id,
                      GError       **error)
{
  g_autoptr(SecurePeer) peer = NULL;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);
  g_return_val_if_fail (g_task_is_valid (result, client), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);

  peer = g_task_propagate_pointer (G_TASK (result), error);
  if (peer == NULL)
    return NULL;

  if (peer_id != NULL)
    *peer_id = g_steal_pointer (&peer->peer_id);
  return g_steal_pointer (&peer->channel);
}

/**
 * rndz_client_accept_tls_async:
 * @client: a #RndzClient listening on TCP
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when a peer came in
 *   securely
 * @user_data: data for @callback
 *
 * Waits for the next peer that reaches the client through a server with
 * rndz_client_connect_tls(), and whose TLS handshake succeeded: it
 * presented the certificate of the fingerprint it announced, and has
 * seen the client's. Peers whose handshake fails are closed and not
 * reported (see the debug log). Handshakes run as peers come, several
 * at once, each for at most [property@Rndz.Client:timeout].
 *
 * A client without an [property@Rndz.Client:identity] gets a fresh one,
 * which peers that ask from then on see. In a build without TLS support,
 * this fails at once with %G_IO_ERROR_NOT_SUPPORTED.
 *
 * Since: 1.0
 */
void
rndz_client_accept_tls_async (RndzClient          *client,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  accept_secure_async (client, RNDZ_TRANSPORT_TCP, rndz_client_accept_tls_async, cancellable,
                       callback, user_data);
}

/**
 * rndz_client_accept_tls_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @peer_id: (out) (optional) (transfer full): return location for the id
 *   of the peer
 * @error: return location for a #GError
 *
 * Finishes rndz_client_accept_tls_async().
 *
 * Returns: (transfer full): the TLS connection to the peer, or %NULL on
 *   error
 *
 * Since: 1.0
 */
GTlsConnection *
rndz_client_accept_tls_finish (RndzClient    *client,
                               GAsyncResult  *result,
                               char         **peer_id,
                               GError       **error)
{
  return accept_secure_finish (client, result, rndz_client_accept_tls_async, peer_id, error);
}

/**
 * rndz_client_accept_tls:
 * @client: a #RndzClient listening on TCP
 * @peer_id: (out) (optional) (transfer full): return location for the id
 *   of the peer
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_accept_tls_async().
 *
 * Returns: (transfer full): the TLS connection to the peer, or %NULL on
 *   error
 *
 * Since: 1.0
 */
GTlsConnection *
rndz_client_accept_tls (RndzClient    *client,
                        char         **peer_id,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_accept_tls_async (client, cancellable, rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_accept_tls_finish (client, result, peer_id, error);
}

/**
 * rndz_client_accept_dtls_async:
 * @client: a #RndzClient listening on UDP
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (closure user_data): called when a peer came in
 *   securely
 * @user_data: data for @callback
 *
 * Waits for the next peer that reaches the client through a server with
 * rndz_client_connect_dtls(), and whose DTLS handshake succeeded, with
 * the checks (and the failure without TLS support) of
 * rndz_client_accept_tls_async(). Each peer gets a
 * channel of its own, directly or through the relay: no datagram of
 * another sender, and no message of the rendezvous protocol, reaches
 * it.
 *
 * With an identity, the client hands out no plain peers: the
 * [signal@Rndz.Client::peer-socket] signal is not emitted, and the socket
 * that rndz_client_listen_udp() returned only sees strangers.
 *
 * Since: 1.0
 */
void
rndz_client_accept_dtls_async (RndzClient          *client,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (RNDZ_IS_CLIENT (client));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  accept_secure_async (client, RNDZ_TRANSPORT_UDP, rndz_client_accept_dtls_async, cancellable,
                       callback, user_data);
}

/**
 * rndz_client_accept_dtls_finish:
 * @client: a #RndzClient
 * @result: the #GAsyncResult passed to the callback
 * @peer_id: (out) (optional) (transfer full): return location for the id
 *   of the peer
 * @error: return location for a #GError
 *
 * Finishes rndz_client_accept_dtls_async().
 *
 * Returns: (transfer full): the secure channel to the peer, or %NULL on
 *   error
 *
 * Since: 1.0
 */
RndzDtlsChannel *
rndz_client_accept_dtls_finish (RndzClient    *client,
                                GAsyncResult  *result,
                                char         **peer_id,
                                GError       **error)
{
  return accept_secure_finish (client, result, rndz_client_accept_dtls_async, peer_id, error);
}

/**
 * rndz_client_accept_dtls:
 * @client: a #RndzClient listening on UDP
 * @peer_id: (out) (optional) (transfer full): return location for the id
 *   of the peer
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * The synchronous version of rndz_client_accept_dtls_async().
 *
 * Returns: (transfer full): the secure channel to the peer, or %NULL on
 *   error
 *
 * Since: 1.0
 */
RndzDtlsChannel *
rndz_client_accept_dtls (RndzClient    *client,
                         char         **peer_id,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  RndzSyncCall call;

  g_return_val_if_fail (RNDZ_IS_CLIENT (client), NULL);

  rndz_sync_call_begin (client, &call);
  rndz_client_accept_dtls_async (client, cancellable, rndz_sync_call_cb, &call);
  result = rndz_sync_call_end (&call);

  return rndz_client_accept_dtls_finish (client, result, peer_id, error);
}
