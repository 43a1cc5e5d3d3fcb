/* rndz-auth.h: keys for authenticated registration
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(__RNDZ_H_INSIDE__) && !defined(RNDZ_COMPILATION)
#error "Only <rndz-glib/rndz.h> can be included directly."
#endif

#include <glib.h>
#include <rndz-glib/rndz-version-macros.h>

G_BEGIN_DECLS

RNDZ_AVAILABLE_IN_1_0
GBytes *rndz_derive_key      (GBytes      *secret,
                              const char  *id);
RNDZ_AVAILABLE_IN_1_0
GBytes *rndz_key_from_hex    (const char  *hex,
                              GError     **error);
RNDZ_AVAILABLE_IN_1_0
char   *rndz_key_to_hex      (GBytes      *key);

G_END_DECLS
