/* rndz-auth.c: keys for authenticated registration
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-auth.h"
#include "rndz-types.h"
#include "rndz-message-private.h"
#include "rndz-i18n-private.h"

/**
 * rndz_derive_key:
 * @secret: the server's secret
 * @id: a peer id
 *
 * Derives the key of the peer @id from a server's secret, as
 * HMAC-SHA256(@secret, @id). A server configured with the secret accepts
 * the peer that holds this key, so an operator can hand out per-id keys
 * without storing them.
 *
 * Returns: (transfer full): the 32-byte key
 *
 * Since: 1.0
 */
GBytes *
rndz_derive_key (GBytes     *secret,
                 const char *id)
{
  g_autoptr(GHmac) hmac = NULL;
  guint8 digest[32];
  gsize digest_len = sizeof digest;
  gsize secret_len;
  const guint8 *secret_data;

  g_return_val_if_fail (secret != NULL, NULL);
  g_return_val_if_fail (id != NULL, NULL);

  secret_data = g_bytes_get_data (secret, &secret_len);
  hmac = g_hmac_new (G_CHECKSUM_SHA256, secret_data, secret_len);
  g_hmac_update (hmac, (const guchar *) id, strlen (id));
  g_hmac_get_digest (hmac, digest, &digest_len);

  return g_bytes_new (digest, digest_len);
}

/**
 * rndz_key_from_hex:
 * @hex: a key written in hexadecimal, surrounding white space allowed
 * @error: return location for a #GError
 *
 * Parses a key as written by rndz_key_to_hex() or `rndz key`.
 *
 * Returns: (transfer full): the key, or %NULL if @hex is not an even
 *   number of hexadecimal digits (at least 32, that is 16 bytes)
 *
 * Since: 1.0
 */
GBytes *
rndz_key_from_hex (const char  *hex,
                   GError     **error)
{
  g_autofree char *text = NULL;
  g_autofree guint8 *data = NULL;
  gsize len;

  g_return_val_if_fail (hex != NULL, NULL);

  text = g_strstrip (g_strdup (hex));
  len = strlen (text);
  if (len < 32 || len % 2 != 0 || len / 2 > RNDZ_KEY_MAX_LEN)
    goto invalid;

  data = g_malloc (len / 2);
  for (gsize i = 0; i < len / 2; i++)
    {
      int hi = g_ascii_xdigit_value (text[2 * i]);
      int lo = g_ascii_xdigit_value (text[2 * i + 1]);

      if (hi < 0 || lo < 0)
        goto invalid;
      data[i] = (hi << 4) | lo;
    }

  return g_bytes_new_take (g_steal_pointer (&data), len / 2);

invalid:
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("A key must be at least 32 hexadecimal digits, an even number of them"));
  return NULL;
}

/**
 * rndz_key_to_hex:
 * @key: a key
 *
 * Formats a key as text, the inverse of rndz_key_from_hex().
 *
 * Returns: (transfer full): @key in lower-case hexadecimal
 *
 * Since: 1.0
 */
char *
rndz_key_to_hex (GBytes *key)
{
  gsize len;
  const guint8 *data;
  GString *hex;

  g_return_val_if_fail (key != NULL, NULL);

  data = g_bytes_get_data (key, &len);
  hex = g_string_sized_new (2 * len);
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", data[i]);

  return g_string_free (hex, FALSE);
}
