/* rndz-identity-private.h: what the secure channels need of an identity
 *
 * SPDX-License-Identifier: MIT
 *
 * Only in a build with GnuTLS (RNDZ_HAVE_TLS).
 */

#pragma once

#include <gnutls/gnutls.h>

#include "rndz-identity.h"
#include "rndz-fingerprint-private.h"

G_BEGIN_DECLS

/* Credentials with this identity's key and certificate, for a GnuTLS
 * session (DTLS); owned by @identity */
gnutls_certificate_credentials_t rndz_identity_get_credentials (RndzIdentity *identity);

G_END_DECLS
