/* rndz-identity-keys-private.h: the key and certificate behind an identity
 *
 * SPDX-License-Identifier: MIT
 *
 * RndzIdentity (rndz-identity.c) is the same object in every build; what
 * makes and reads keys is rndz-identity-gnutls.c, or rndz-identity-none.c
 * in a build without GnuTLS, where every constructor fails with
 * G_IO_ERROR_NOT_SUPPORTED. rndz-identity-file.c keeps them in a file.
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _RndzIdentityKeys RndzIdentityKeys;

/* A fresh ECDSA P-256 key and its self-signed certificate */
RndzIdentityKeys *rndz_identity_keys_generate (GError           **error);
/* From the PEM text of a key (PKCS #8) and its certificate; G_IO_ERROR_INVALID_DATA
 * if it does not hold both, or if they do not belong together */
RndzIdentityKeys *rndz_identity_keys_from_pem (const char        *pem,
                                               gsize              length,
                                               GError           **error);
void              rndz_identity_keys_free     (RndzIdentityKeys  *keys);
/* The key and the certificate, as PEM text: what a file holds */
const char       *rndz_identity_keys_get_pem  (RndzIdentityKeys  *keys);
/* The certificate in DER */
GBytes           *rndz_identity_keys_get_der  (RndzIdentityKeys  *keys);
/* A gnutls_certificate_credentials_t (void * here: no GnuTLS types in
 * this header, which the build without GnuTLS shares) */
gpointer          rndz_identity_keys_get_credentials (RndzIdentityKeys *keys);

/* rndz-identity-file.c: loads @path, or makes keys and stores them there
 * when there is no such file (see rndz_identity_new_from_file()) */
RndzIdentityKeys *rndz_identity_keys_load_or_create (const char  *path,
                                                     GError     **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzIdentityKeys, rndz_identity_keys_free)

G_END_DECLS
