/* rndz-secure-handshake-private.h: one handshake, TLS or DTLS
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-identity.h"

G_BEGIN_DECLS

/* Secures @path, what a rendezvous gave: TLS over a GIOStream (TCP),
 * DTLS over a connected GSocket (UDP); as the server if @server (the
 * listener). The peer must present the certificate of @expected. Runs in
 * the thread-default context, and fails with RNDZ_ERROR_HANDSHAKE_FAILED
 * after @timeout_ms. The result is a GTlsConnection or a
 * RndzDtlsChannel. */
void     rndz_secure_handshake_async  (GObject             *path,
                                       gboolean             server,
                                       RndzIdentity        *identity,
                                       const char          *expected,
                                       guint                timeout_ms,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data);
GObject *rndz_secure_handshake_finish (GAsyncResult        *result,
                                       GError             **error);

G_END_DECLS
