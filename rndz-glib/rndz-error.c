/* rndz-error.c: error domains and translations
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "rndz-types.h"
#include "rndz-i18n-private.h"

/**
 * rndz_error_quark:
 *
 * Gets the error domain of rendezvous failures, %RNDZ_ERROR. Its codes
 * are those of [error@Rndz.Error].
 *
 * Returns: the quark of the %RNDZ_ERROR domain
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (rndz-error-quark, rndz_error)

/**
 * rndz_protocol_error_quark:
 *
 * Gets the error domain of malformed protocol messages,
 * %RNDZ_PROTOCOL_ERROR. Its codes are those of [error@Rndz.ProtocolError].
 *
 * Returns: the quark of the %RNDZ_PROTOCOL_ERROR domain
 *
 * Since: 1.0
 */
G_DEFINE_QUARK (rndz-protocol-error-quark, rndz_protocol_error)

/* The text domain is bound the first time the library needs a message,
 * not in a constructor: an application that never hits an error never
 * pays for it. */
const char *
rndz_gettext (const char *msgid)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      /* RNDZ_LOCALEDIR runs translations from a build tree */
      const char *dir = g_getenv ("RNDZ_LOCALEDIR");

      bindtextdomain (GETTEXT_PACKAGE, dir != NULL ? dir : RNDZ_LOCALEDIR);
      bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
      g_once_init_leave (&initialized, 1);
    }

  return g_dgettext (GETTEXT_PACKAGE, msgid);
}
