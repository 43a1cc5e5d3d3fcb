/* rndz-identity-none.c: identities in a build without GnuTLS
 *
 * SPDX-License-Identifier: MIT
 *
 * RndzIdentity exists, so that the API and the introspection data are the
 * same in every build, but none can be made: the constructors fail here,
 * before anything is read or written, and nothing else is reached.
 */

#include "config.h"

#include "rndz-identity-keys-private.h"
#include "rndz-i18n-private.h"

static void
set_not_supported (GError **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       _("rndz-glib was built without TLS support"));
}

RndzIdentityKeys *
rndz_identity_keys_generate (GError **error)
{
  set_not_supported (error);
  return NULL;
}

RndzIdentityKeys *
rndz_identity_keys_from_pem (const char  *pem,
                             gsize        length,
                             GError     **error)
{
  set_not_supported (error);
  return NULL;
}

RndzIdentityKeys *
rndz_identity_keys_load_or_create (const char  *path,
                                   GError     **error)
{
  set_not_supported (error);
  return NULL;
}

void
rndz_identity_keys_free (RndzIdentityKeys *keys)
{
}

const char *
rndz_identity_keys_get_pem (RndzIdentityKeys *keys)
{
  g_return_val_if_reached (NULL);
}

GBytes *
rndz_identity_keys_get_der (RndzIdentityKeys *keys)
{
  g_return_val_if_reached (NULL);
}

gpointer
rndz_identity_keys_get_credentials (RndzIdentityKeys *keys)
{
  g_return_val_if_reached (NULL);
}
