/* rndz-tls-private.h: TLS over an established TCP path
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-identity.h"

G_BEGIN_DECLS

/* Runs a TLS 1.3 handshake over @base (the punched or relayed TCP
 * connection): as the TLS server if @server (the listener), else as the
 * client (the connector); both sides present @identity's certificate and
 * require the other's. The peer's certificate must have the fingerprint
 * @expected (text form; never NULL): else RNDZ_ERROR_IDENTITY_MISMATCH.
 * Other failures: RNDZ_ERROR_HANDSHAKE_FAILED (with the TLS message);
 * G_IO_ERROR_CANCELLED stays. On failure @base is closed, so that the
 * peer's handshake fails too instead of waiting. Turns TCP keepalive
 * (and TCP_NODELAY) on for @base's socket so a dead path is seen. In
 * TLS 1.3 a client whose certificate the server refuses finishes its
 * handshake and gets the error at its first read. */
void            rndz_tls_handshake_async  (GIOStream           *base,
                                           gboolean             server,
                                           RndzIdentity        *identity,
                                           const char          *expected,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
GTlsConnection *rndz_tls_handshake_finish (GAsyncResult        *result,
                                           GError             **error);

G_END_DECLS
