/* rndz-fingerprint-private.h: the text form of certificate fingerprints
 *
 * SPDX-License-Identifier: MIT
 *
 * Apart from rndz-identity-private.h so that the files that need no
 * GnuTLS (and the build without it) can use them.
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define RNDZ_FINGERPRINT_LEN 64

/* The text form of the SHA-256 of a DER certificate */
char     *rndz_fingerprint_of_der   (const guint8 *der,
                                     gsize         length);
/* TRUE if @text is in the text form (as on the wire) */
gboolean  rndz_fingerprint_is_valid (const char   *text);

G_END_DECLS
