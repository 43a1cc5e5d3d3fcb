/* rndz-dtls-channel-private.h: making secure channels, for the library
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-dtls-channel.h"
#include "rndz-identity.h"

G_BEGIN_DECLS

/* Runs the DTLS 1.2 handshake over @socket (UDP, connected to the peer;
 * made non-blocking) on the thread-default GMainContext, where the
 * channel's sources stay: as the server if @server (the listener), else
 * as the client (the connector). Both sides present @identity's
 * certificate and require the other's, whose fingerprint (text form)
 * must be @expected, else RNDZ_ERROR_IDENTITY_MISMATCH. Any other
 * failure, and no result within @timeout_ms, is
 * RNDZ_ERROR_HANDSHAKE_FAILED; cancellation G_IO_ERROR_CANCELLED. A
 * failure sends the peer an alert where DTLS has one, so that its
 * handshake fails too rather than at its deadline. */
void             rndz_dtls_channel_handshake_async  (GSocket              *socket,
                                                     gboolean              server,
                                                     RndzIdentity         *identity,
                                                     const char           *expected,
                                                     guint                 timeout_ms,
                                                     GCancellable         *cancellable,
                                                     GAsyncReadyCallback   callback,
                                                     gpointer              user_data);
RndzDtlsChannel *rndz_dtls_channel_handshake_finish (GAsyncResult         *result,
                                                     GError              **error);

/* What the channel counted, for tests and benchmarks */
typedef struct
{
  guint64 datagrams_in;         /* read from the socket, whatever they held */
  guint64 dropped;              /* failed to authenticate (or were replays) */
  guint64 overflow;             /* authentic, but the application's queue was full */
  guint64 pings_sent;
  guint64 pongs_sent;
  guint64 send_failures;        /* the socket refused a datagram: lost */
} RndzDtlsStats;

void rndz_dtls_channel_get_stats (RndzDtlsChannel *channel,
                                  RndzDtlsStats   *stats);

G_END_DECLS
