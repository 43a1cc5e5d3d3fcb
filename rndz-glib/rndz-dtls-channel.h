/* rndz-dtls-channel.h: DTLS 1.2 over a punched UDP path
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(__RNDZ_H_INSIDE__) && !defined(RNDZ_COMPILATION)
#error "Only <rndz-glib/rndz.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rndz-glib/rndz-types.h>

G_BEGIN_DECLS

/**
 * RNDZ_DTLS_CHANNEL_PATH_MTU:
 *
 * The largest datagram, UDP payload, that a [class@Rndz.DtlsChannel]
 * sends: 1400 bytes, which fits the paths of the Internet (IPv6 with
 * tunnels included) without fragmentation. Its payloads are smaller by
 * the DTLS record overhead and one byte of its own: see
 * rndz_dtls_channel_get_max_payload_size().
 *
 * Since: 1.0
 */
#define RNDZ_DTLS_CHANNEL_PATH_MTU 1400

#define RNDZ_TYPE_DTLS_CHANNEL (rndz_dtls_channel_get_type ())
RNDZ_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (RndzDtlsChannel, rndz_dtls_channel, RNDZ, DTLS_CHANNEL, GObject)

RNDZ_AVAILABLE_IN_1_0
GSocket    *rndz_dtls_channel_get_socket              (RndzDtlsChannel     *channel);
RNDZ_AVAILABLE_IN_1_0
const char *rndz_dtls_channel_get_peer_fingerprint    (RndzDtlsChannel     *channel);
RNDZ_AVAILABLE_IN_1_0
guint       rndz_dtls_channel_get_keepalive_interval  (RndzDtlsChannel     *channel);
RNDZ_AVAILABLE_IN_1_0
void        rndz_dtls_channel_set_keepalive_interval  (RndzDtlsChannel     *channel,
                                                       guint                milliseconds);
RNDZ_AVAILABLE_IN_1_0
gsize       rndz_dtls_channel_get_max_payload_size    (RndzDtlsChannel     *channel);
RNDZ_AVAILABLE_IN_1_0
gboolean    rndz_dtls_channel_send_bytes              (RndzDtlsChannel     *channel,
                                                       GBytes              *bytes,
                                                       GCancellable        *cancellable,
                                                       GError             **error);
RNDZ_AVAILABLE_IN_1_0
GBytes     *rndz_dtls_channel_receive_bytes           (RndzDtlsChannel     *channel,
                                                       GCancellable        *cancellable,
                                                       GError             **error);
RNDZ_AVAILABLE_IN_1_0
void        rndz_dtls_channel_receive_bytes_async     (RndzDtlsChannel     *channel,
                                                       GCancellable        *cancellable,
                                                       GAsyncReadyCallback  callback,
                                                       gpointer             user_data);
RNDZ_AVAILABLE_IN_1_0
GBytes     *rndz_dtls_channel_receive_bytes_finish    (RndzDtlsChannel     *channel,
                                                       GAsyncResult        *result,
                                                       GError             **error);
RNDZ_AVAILABLE_IN_1_0
void        rndz_dtls_channel_close                   (RndzDtlsChannel     *channel);
RNDZ_AVAILABLE_IN_1_0
gboolean    rndz_dtls_channel_is_closed               (RndzDtlsChannel     *channel);

G_END_DECLS
