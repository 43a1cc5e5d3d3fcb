/* rndz-fingerprint.c: the one text form of certificate fingerprints
 *
 * SPDX-License-Identifier: MIT
 *
 * A fingerprint is the SHA-256 of a DER certificate, written as 64
 * lowercase hexadecimal digits and nothing else: in the API, on the wire
 * of the rendezvous, in the rndz tool and in the docs. Other spellings
 * (upper case, colons between the bytes, as openssl prints them) are
 * accepted from people by rndz_fingerprint_normalize() only.
 */

#include "config.h"

#include <string.h>

#include "rndz-identity.h"
#include "rndz-fingerprint-private.h"
#include "rndz-i18n-private.h"

char *
rndz_fingerprint_of_der (const guint8 *der,
                         gsize         length)
{
  /* GChecksum writes lowercase hex: the text form as it is */
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, der, length);
}

gboolean
rndz_fingerprint_is_valid (const char *text)
{
  if (text == NULL)
    return FALSE;
  for (gsize i = 0; i < RNDZ_FINGERPRINT_LEN; i++)
    {
      if (!g_ascii_isdigit (text[i]) && !(text[i] >= 'a' && text[i] <= 'f'))
        return FALSE;
    }
  return text[RNDZ_FINGERPRINT_LEN] == '\0';
}

/* @text is 32 pairs of hex digits, with a colon between every two pairs
 * or with none at all */
static gboolean
hex_pairs_to_text (const char *text,
                   char       *out)
{
  gsize len = strlen (text);
  gboolean colons = len == RNDZ_FINGERPRINT_LEN + RNDZ_FINGERPRINT_LEN / 2 - 1;
  gsize step = colons ? 3 : 2;

  if (!colons && len != RNDZ_FINGERPRINT_LEN)
    return FALSE;
  for (gsize i = 0; i < RNDZ_FINGERPRINT_LEN / 2; i++)
    {
      const char *pair = text + i * step;

      if (!g_ascii_isxdigit (pair[0]) || !g_ascii_isxdigit (pair[1]))
        return FALSE;
      if (colons && i + 1 < RNDZ_FINGERPRINT_LEN / 2 && pair[2] != ':')
        return FALSE;
      out[2 * i] = g_ascii_tolower (pair[0]);
      out[2 * i + 1] = g_ascii_tolower (pair[1]);
    }
  out[RNDZ_FINGERPRINT_LEN] = '\0';
  return TRUE;
}

/**
 * rndz_fingerprint_normalize:
 * @text: a fingerprint as a person may write it
 * @error: return location for a #GError
 *
 * Turns a SHA-256 certificate fingerprint into its one text form, as
 * [method@Rndz.Identity.get_fingerprint] gives it: 64 lowercase
 * hexadecimal digits. @text may use upper case, and may have a colon
 * between every two digits (`AB:CD:...`, as `openssl x509 -fingerprint`
 * writes it); white space around it is ignored.
 *
 * Returns: (transfer full): the fingerprint in its text form, or %NULL
 *   with %G_IO_ERROR_INVALID_ARGUMENT if @text is not 32 bytes written
 *   in one of these ways
 *
 * Since: 1.0
 */
char *
rndz_fingerprint_normalize (const char  *text,
                            GError     **error)
{
  g_autofree char *stripped = NULL;
  char out[RNDZ_FINGERPRINT_LEN + 1];

  g_return_val_if_fail (text != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  stripped = g_strstrip (g_strdup (text));
  if (!hex_pairs_to_text (stripped, out))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("“%s” is not a SHA-256 fingerprint: it must be 64 hexadecimal digits, "
                     "or 32 pairs of them separated by colons"), stripped);
      return NULL;
    }
  return g_strdup (out);
}

/**
 * rndz_fingerprint_from_certificate:
 * @certificate: a certificate, such as the one
 *   [method@Gio.TlsConnection.get_peer_certificate] gives
 *
 * Computes the fingerprint of @certificate (the SHA-256 of its DER form)
 * in the text form of [method@Rndz.Identity.get_fingerprint], to compare
 * with the fingerprint expected of a peer.
 *
 * Returns: (transfer full) (nullable): the fingerprint, or %NULL if
 *   @certificate has no DER form
 *
 * Since: 1.0
 */
char *
rndz_fingerprint_from_certificate (GTlsCertificate *certificate)
{
  g_autoptr(GByteArray) der = NULL;

  g_return_val_if_fail (G_IS_TLS_CERTIFICATE (certificate), NULL);

  g_object_get (certificate, "certificate", &der, NULL);
  if (der == NULL)
    return NULL;
  return rndz_fingerprint_of_der (der->data, der->len);
}
