/* rndz-i18n-private.h: translations of the library's messages
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

const char *rndz_gettext (const char *msgid) G_GNUC_FORMAT (1);

G_END_DECLS

#ifdef _
#undef _
#endif
#define _(String) rndz_gettext (String)
#define N_(String) (String)
