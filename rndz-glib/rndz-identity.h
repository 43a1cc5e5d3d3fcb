/* rndz-identity.h: a peer's key and certificate
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

#define RNDZ_TYPE_IDENTITY (rndz_identity_get_type ())

RNDZ_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (RndzIdentity, rndz_identity, RNDZ, IDENTITY, GObject)

RNDZ_AVAILABLE_IN_1_0
RndzIdentity    *rndz_identity_new                 (GError          **error);
RNDZ_AVAILABLE_IN_1_0
RndzIdentity    *rndz_identity_new_from_file       (const char       *path,
                                                    GError          **error);
RNDZ_AVAILABLE_IN_1_0
const char      *rndz_identity_get_path            (RndzIdentity     *identity);
RNDZ_AVAILABLE_IN_1_0
const char      *rndz_identity_get_fingerprint     (RndzIdentity     *identity);
RNDZ_AVAILABLE_IN_1_0
GTlsCertificate *rndz_identity_get_certificate     (RndzIdentity     *identity);

RNDZ_AVAILABLE_IN_1_0
char            *rndz_fingerprint_normalize        (const char       *text,
                                                    GError          **error);
RNDZ_AVAILABLE_IN_1_0
char            *rndz_fingerprint_from_certificate (GTlsCertificate  *certificate);

G_END_DECLS
