/* rndz-client.h: a peer of the rendezvous protocol
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(__RNDZ_H_INSIDE__) && !defined(RNDZ_COMPILATION)
#error "Only <rndz-glib/rndz.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rndz-glib/rndz-types.h>
#include <rndz-glib/rndz-identity.h>
#include <rndz-glib/rndz-dtls-channel.h>

G_BEGIN_DECLS

/**
 * RndzClientState:
 * @RNDZ_CLIENT_STATE_IDLE: the client is not listening
 * @RNDZ_CLIENT_STATE_REGISTERING: the client listens and waits for a first
 *   answer from a server
 * @RNDZ_CLIENT_STATE_REGISTERED: at least one server answers the client's
 *   keepalives
 * @RNDZ_CLIENT_STATE_RECONNECTING: no server has answered for a while, or
 *   the network changed (#GNetworkMonitor) and the client registers again
 *   at once; it keeps trying, with growing delays
 *
 * The health of a listening [class@Rndz.Client], as its
 * [property@Rndz.Client:state] property.
 *
 * Since: 1.0
 */
typedef enum {
  RNDZ_CLIENT_STATE_IDLE,
  RNDZ_CLIENT_STATE_REGISTERING,
  RNDZ_CLIENT_STATE_REGISTERED,
  RNDZ_CLIENT_STATE_RECONNECTING,
} RndzClientState;

#define RNDZ_TYPE_CLIENT (rndz_client_get_type ())

RNDZ_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (RndzClient, rndz_client, RNDZ, CLIENT, GObject)

RNDZ_AVAILABLE_IN_1_0
RndzClient         *rndz_client_new                    (const char          *id,
                                                        const char * const  *servers);

RNDZ_AVAILABLE_IN_1_0
const char         *rndz_client_get_id                 (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
const char * const *rndz_client_get_servers            (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
GInetSocketAddress *rndz_client_get_local_address      (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_local_address      (RndzClient          *client,
                                                        GInetSocketAddress  *address);
RNDZ_AVAILABLE_IN_1_0
guint               rndz_client_get_keepalive_interval (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_keepalive_interval (RndzClient          *client,
                                                        guint                milliseconds);
RNDZ_AVAILABLE_IN_1_0
guint               rndz_client_get_timeout            (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_timeout            (RndzClient          *client,
                                                        guint                milliseconds);
RNDZ_AVAILABLE_IN_1_0
RndzClientState     rndz_client_get_state              (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
gint64              rndz_client_get_last_pong          (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
guint16             rndz_client_get_local_port         (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
GBytes             *rndz_client_get_key                (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_key                (RndzClient          *client,
                                                        GBytes              *key);
RNDZ_AVAILABLE_IN_1_0
gboolean            rndz_client_get_require_auth       (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_require_auth       (RndzClient          *client,
                                                        gboolean             require_auth);
RNDZ_AVAILABLE_IN_1_0
gboolean            rndz_client_get_relay              (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_relay              (RndzClient          *client,
                                                        gboolean             relay);
RNDZ_AVAILABLE_IN_1_0
guint               rndz_client_get_direct_timeout     (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_direct_timeout     (RndzClient          *client,
                                                        guint                milliseconds);

RNDZ_AVAILABLE_IN_1_0
RndzIdentity       *rndz_client_get_identity           (RndzClient          *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_identity           (RndzClient          *client,
                                                        RndzIdentity        *identity);
RNDZ_AVAILABLE_IN_1_0
const char * const *rndz_client_get_allowed_fingerprints (RndzClient        *client);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_set_allowed_fingerprints (RndzClient        *client,
                                                          const char * const *fingerprints);

/* Listening */

RNDZ_AVAILABLE_IN_1_0
GSocket            *rndz_client_listen_udp             (RndzClient          *client,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_listen_udp_async       (RndzClient          *client,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
GSocket            *rndz_client_listen_udp_finish      (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        GError             **error);

RNDZ_AVAILABLE_IN_1_0
gboolean            rndz_client_listen_tcp             (RndzClient          *client,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_listen_tcp_async       (RndzClient          *client,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
gboolean            rndz_client_listen_tcp_finish      (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        GError             **error);

RNDZ_AVAILABLE_IN_1_0
GSocketConnection  *rndz_client_accept                 (RndzClient          *client,
                                                        char               **peer_id,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_accept_async           (RndzClient          *client,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
GSocketConnection  *rndz_client_accept_finish          (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        char               **peer_id,
                                                        GError             **error);

RNDZ_AVAILABLE_IN_1_0
void                rndz_client_stop                   (RndzClient          *client);

/* Reaching a peer */

RNDZ_AVAILABLE_IN_1_0
GSocket            *rndz_client_connect_udp            (RndzClient          *client,
                                                        const char          *peer_id,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_connect_udp_async      (RndzClient          *client,
                                                        const char          *peer_id,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
GSocket            *rndz_client_connect_udp_finish     (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        GError             **error);

RNDZ_AVAILABLE_IN_1_0
GSocketConnection  *rndz_client_connect_tcp            (RndzClient          *client,
                                                        const char          *peer_id,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_connect_tcp_async      (RndzClient          *client,
                                                        const char          *peer_id,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
GSocketConnection  *rndz_client_connect_tcp_finish     (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        GError             **error);

/* Secure connections */

RNDZ_AVAILABLE_IN_1_0
GTlsConnection     *rndz_client_connect_tls            (RndzClient          *client,
                                                        const char          *peer_id,
                                                        const char          *peer_fingerprint,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_connect_tls_async      (RndzClient          *client,
                                                        const char          *peer_id,
                                                        const char          *peer_fingerprint,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
GTlsConnection     *rndz_client_connect_tls_finish     (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
RndzDtlsChannel    *rndz_client_connect_dtls           (RndzClient          *client,
                                                        const char          *peer_id,
                                                        const char          *peer_fingerprint,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_connect_dtls_async     (RndzClient          *client,
                                                        const char          *peer_id,
                                                        const char          *peer_fingerprint,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
RndzDtlsChannel    *rndz_client_connect_dtls_finish    (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
GTlsConnection     *rndz_client_accept_tls             (RndzClient          *client,
                                                        char               **peer_id,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_accept_tls_async       (RndzClient          *client,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
GTlsConnection     *rndz_client_accept_tls_finish      (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        char               **peer_id,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
RndzDtlsChannel    *rndz_client_accept_dtls            (RndzClient          *client,
                                                        char               **peer_id,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
RNDZ_AVAILABLE_IN_1_0
void                rndz_client_accept_dtls_async      (RndzClient          *client,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
RndzDtlsChannel    *rndz_client_accept_dtls_finish     (RndzClient          *client,
                                                        GAsyncResult        *result,
                                                        char               **peer_id,
                                                        GError             **error);

G_END_DECLS
