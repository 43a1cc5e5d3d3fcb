/* rndz-identity-gnutls.c: keys and self-signed certificates, with GnuTLS
 *
 * SPDX-License-Identifier: MIT
 *
 * GnuTLS is what glib-networking drives GIO's TLS with, and what the DTLS
 * channel uses directly, so an identity is made and held in its types.
 */

#include "config.h"

#include <string.h>
#include <time.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/crypto.h>

#include "rndz-identity-keys-private.h"
#include "rndz-i18n-private.h"

/* Certificates are valid from a day ago (clocks disagree) for 20 years;
 * peers check fingerprints, not dates, but TLS stacks want a period */
#define VALID_BEFORE_S (24 * 60 * 60)
#define VALID_FOR_S ((time_t) 20 * 36525 * 24 * 60 * 60 / 100)
#define SERIAL_LEN 16

struct _RndzIdentityKeys
{
  gnutls_x509_privkey_t key;
  gnutls_x509_crt_t crt;
  gnutls_certificate_credentials_t credentials;
  char *pem;
  GBytes *der;
};

G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_x509_privkey_t, gnutls_x509_privkey_deinit, NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_x509_crt_t, gnutls_x509_crt_deinit, NULL)

static gboolean
check (int          ret,
       const char  *what,
       GError     **error)
{
  if (ret >= 0)
    return TRUE;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
               "%s: %s", what, gnutls_strerror (ret));
  return FALSE;
}

void
rndz_identity_keys_free (RndzIdentityKeys *keys)
{
  if (keys == NULL)
    return;
  g_clear_pointer (&keys->credentials, gnutls_certificate_free_credentials);
  g_clear_pointer (&keys->crt, gnutls_x509_crt_deinit);
  g_clear_pointer (&keys->key, gnutls_x509_privkey_deinit);
  /* The key is in there */
  if (keys->pem != NULL)
    memset (keys->pem, 0, strlen (keys->pem));
  g_clear_pointer (&keys->pem, g_free);
  g_clear_pointer (&keys->der, g_bytes_unref);
  g_free (keys);
}

const char *
rndz_identity_keys_get_pem (RndzIdentityKeys *keys)
{
  return keys->pem;
}

GBytes *
rndz_identity_keys_get_der (RndzIdentityKeys *keys)
{
  return g_bytes_ref (keys->der);
}

gpointer
rndz_identity_keys_get_credentials (RndzIdentityKeys *keys)
{
  return keys->credentials;
}

static char *
datum_to_string (gnutls_datum_t *datum)
{
  char *text = g_strndup ((const char *) datum->data, datum->size);

  gnutls_memset (datum->data, 0, datum->size);
  gnutls_free (datum->data);
  datum->data = NULL;
  return text;
}

/* Fills in the PEM text, the DER and the credentials from the key and
 * the certificate */
static gboolean
keys_complete (RndzIdentityKeys  *keys,
               GError           **error)
{
  gnutls_datum_t key_pem = { NULL, 0 }, crt_pem = { NULL, 0 }, der = { NULL, 0 };
  g_autofree char *key_text = NULL;
  g_autofree char *crt_text = NULL;

  if (!check (gnutls_x509_privkey_export2_pkcs8 (keys->key, GNUTLS_X509_FMT_PEM, NULL,
                                                 GNUTLS_PKCS_PLAIN, &key_pem),
              "exporting the key", error))
    return FALSE;
  key_text = datum_to_string (&key_pem);
  if (!check (gnutls_x509_crt_export2 (keys->crt, GNUTLS_X509_FMT_PEM, &crt_pem),
              "exporting the certificate", error))
    return FALSE;
  crt_text = datum_to_string (&crt_pem);
  keys->pem = g_strconcat (key_text, crt_text, NULL);
  memset (key_text, 0, strlen (key_text));

  if (!check (gnutls_x509_crt_export2 (keys->crt, GNUTLS_X509_FMT_DER, &der),
              "exporting the certificate", error))
    return FALSE;
  keys->der = g_bytes_new (der.data, der.size);
  gnutls_free (der.data);

  return check (gnutls_certificate_allocate_credentials (&keys->credentials),
                "making credentials", error) &&
         check (gnutls_certificate_set_x509_key (keys->credentials, &keys->crt, 1, keys->key),
                "making credentials", error);
}

static gboolean
set_serial (gnutls_x509_crt_t   crt,
            GError            **error)
{
  guint8 serial[SERIAL_LEN];

  if (!check (gnutls_rnd (GNUTLS_RND_NONCE, serial, sizeof serial), "random serial", error))
    return FALSE;
  /* Positive and of full length, as RFC 5280 wants */
  serial[0] = (serial[0] & 0x7f) | 0x40;
  return check (gnutls_x509_crt_set_serial (crt, serial, sizeof serial), "serial", error);
}

static gboolean
fill_certificate (gnutls_x509_crt_t       crt,
                  gnutls_x509_privkey_t   key,
                  GError                **error)
{
  time_t now = time (NULL);
  guint8 key_id[64];
  size_t key_id_len = sizeof key_id;

  return check (gnutls_x509_crt_set_version (crt, 3), "version", error) &&
         set_serial (crt, error) &&
         check (gnutls_x509_crt_set_activation_time (crt, now - VALID_BEFORE_S), "validity", error) &&
         check (gnutls_x509_crt_set_expiration_time (crt, now + VALID_FOR_S), "validity", error) &&
         check (gnutls_x509_crt_set_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0, "rndz", 4),
                "subject", error) &&
         check (gnutls_x509_crt_set_key (crt, key), "public key", error) &&
         check (gnutls_x509_crt_set_basic_constraints (crt, 0, -1), "basic constraints", error) &&
         check (gnutls_x509_crt_set_key_usage (crt, GNUTLS_KEY_DIGITAL_SIGNATURE), "key usage", error) &&
         check (gnutls_x509_crt_set_key_purpose_oid (crt, GNUTLS_KP_TLS_WWW_SERVER, 0),
                "extended key usage", error) &&
         check (gnutls_x509_crt_set_key_purpose_oid (crt, GNUTLS_KP_TLS_WWW_CLIENT, 0),
                "extended key usage", error) &&
         check (gnutls_x509_crt_get_key_id (crt, GNUTLS_KEYID_USE_SHA1, key_id, &key_id_len),
                "key id", error) &&
         check (gnutls_x509_crt_set_subject_key_id (crt, key_id, key_id_len), "key id", error) &&
         check (gnutls_x509_crt_sign2 (crt, crt, key, GNUTLS_DIG_SHA256, 0), "signing", error);
}

RndzIdentityKeys *
rndz_identity_keys_generate (GError **error)
{
  g_autoptr(RndzIdentityKeys) keys = g_new0 (RndzIdentityKeys, 1);
  g_autoptr(GError) local_error = NULL;

  if (!check (gnutls_x509_privkey_init (&keys->key), "key", &local_error) ||
      !check (gnutls_x509_privkey_generate2 (keys->key, GNUTLS_PK_ECDSA,
                                             GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1),
                                             0, NULL, 0),
              "generating the key", &local_error) ||
      !check (gnutls_x509_crt_init (&keys->crt), "certificate", &local_error) ||
      !fill_certificate (keys->crt, keys->key, &local_error) ||
      !keys_complete (keys, &local_error))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("Could not make an identity: %s"), local_error->message);
      return NULL;
    }
  return g_steal_pointer (&keys);
}

/* Both blocks in one PEM text: GnuTLS finds each by its header */
static gboolean
import_pem (RndzIdentityKeys  *keys,
            const char        *pem,
            gsize              length,
            GError           **error)
{
  gnutls_datum_t data = { (unsigned char *) pem, length };
  guint8 key_id[64], crt_id[64];
  size_t key_id_len = sizeof key_id, crt_id_len = sizeof crt_id;

  if (!check (gnutls_x509_privkey_init (&keys->key), "key", error) ||
      !check (gnutls_x509_privkey_import2 (keys->key, &data, GNUTLS_X509_FMT_PEM, NULL,
                                           GNUTLS_PKCS_PLAIN),
              _("no private key"), error) ||
      !check (gnutls_x509_crt_init (&keys->crt), "certificate", error) ||
      !check (gnutls_x509_crt_import (keys->crt, &data, GNUTLS_X509_FMT_PEM),
              _("no certificate"), error) ||
      !check (gnutls_x509_privkey_get_key_id (keys->key, GNUTLS_KEYID_USE_SHA256, key_id, &key_id_len),
              "key id", error) ||
      !check (gnutls_x509_crt_get_key_id (keys->crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_id_len),
              "key id", error))
    return FALSE;
  if (key_id_len != crt_id_len || memcmp (key_id, crt_id, key_id_len) != 0)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           _("the certificate is not the key’s"));
      return FALSE;
    }
  return TRUE;
}

RndzIdentityKeys *
rndz_identity_keys_from_pem (const char  *pem,
                             gsize        length,
                             GError     **error)
{
  g_autoptr(RndzIdentityKeys) keys = g_new0 (RndzIdentityKeys, 1);
  g_autoptr(GError) local_error = NULL;

  if (!import_pem (keys, pem, length, &local_error))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, local_error->message);
      return NULL;
    }
  /* Written again by GnuTLS: the same text for the same key and
   * certificate, whatever else the file held */
  if (!keys_complete (keys, error))
    return NULL;
  return g_steal_pointer (&keys);
}
