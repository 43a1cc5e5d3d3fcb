/* rndz-gnutls.c: GnuTLS, opened when the first identity is made
 *
 * SPDX-License-Identifier: MIT
 *
 * See rndz-gnutls-private.h for why.
 */

#include "config.h"

#define RNDZ_GNUTLS_COMPILATION
#include "rndz-gnutls-private.h"

#include <gmodule.h>

#include "rndz-i18n-private.h"

RndzGnutlsApi rndz_gnutls_api;

#define CALL(name) { #name, G_STRUCT_OFFSET (RndzGnutlsApi, name) }

static const struct
{
  const char *symbol;
  gsize offset;
} gnutls_calls[] = {
  CALL (gnutls_alert_get),
  CALL (gnutls_alert_get_name),
  CALL (gnutls_alert_send_appropriate),
  CALL (gnutls_bye),
  CALL (gnutls_certificate_allocate_credentials),
  CALL (gnutls_certificate_free_credentials),
  CALL (gnutls_certificate_get_peers),
  CALL (gnutls_certificate_server_set_request),
  CALL (gnutls_certificate_set_x509_key),
  CALL (gnutls_cipher_get),
  CALL (gnutls_cipher_get_name),
  CALL (gnutls_credentials_set),
  CALL (gnutls_deinit),
  CALL (gnutls_dtls_get_data_mtu),
  CALL (gnutls_dtls_get_timeout),
  CALL (gnutls_dtls_set_mtu),
  CALL (gnutls_dtls_set_timeouts),
  CALL (gnutls_error_is_fatal),
  CALL (gnutls_handshake),
  CALL (gnutls_init),
  CALL (gnutls_memset),
  CALL (gnutls_priority_set_direct),
  CALL (gnutls_record_get_discarded),
  CALL (gnutls_record_recv),
  CALL (gnutls_record_send),
  CALL (gnutls_rnd),
  CALL (gnutls_session_get_ptr),
  CALL (gnutls_session_set_ptr),
  CALL (gnutls_session_set_verify_function),
  CALL (gnutls_strerror),
  CALL (gnutls_transport_set_errno),
  CALL (gnutls_transport_set_ptr),
  CALL (gnutls_transport_set_pull_function),
  CALL (gnutls_transport_set_pull_timeout_function),
  CALL (gnutls_transport_set_push_function),
  CALL (gnutls_x509_crt_deinit),
  CALL (gnutls_x509_crt_export2),
  CALL (gnutls_x509_crt_get_key_id),
  CALL (gnutls_x509_crt_import),
  CALL (gnutls_x509_crt_init),
  CALL (gnutls_x509_crt_set_activation_time),
  CALL (gnutls_x509_crt_set_basic_constraints),
  CALL (gnutls_x509_crt_set_dn_by_oid),
  CALL (gnutls_x509_crt_set_expiration_time),
  CALL (gnutls_x509_crt_set_key),
  CALL (gnutls_x509_crt_set_key_purpose_oid),
  CALL (gnutls_x509_crt_set_key_usage),
  CALL (gnutls_x509_crt_set_serial),
  CALL (gnutls_x509_crt_set_subject_key_id),
  CALL (gnutls_x509_crt_set_version),
  CALL (gnutls_x509_crt_sign2),
  CALL (gnutls_x509_privkey_deinit),
  CALL (gnutls_x509_privkey_export2_pkcs8),
  CALL (gnutls_x509_privkey_generate2),
  CALL (gnutls_x509_privkey_get_key_id),
  CALL (gnutls_x509_privkey_import2),
  CALL (gnutls_x509_privkey_init),
  /* A variable that holds the function: its address */
  { "gnutls_free", G_STRUCT_OFFSET (RndzGnutlsApi, free) },
};

static gboolean
gnutls_open (char **error_message)
{
  GModule *module = g_module_open (GNUTLS_SONAME, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  RndzGnutlsApi api = { 0 };

  if (module == NULL)
    {
      *error_message = g_strdup (g_module_error ());
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (gnutls_calls); i++)
    if (!g_module_symbol (module, gnutls_calls[i].symbol,
                          &G_STRUCT_MEMBER (gpointer, &api, gnutls_calls[i].offset)))
      {
        *error_message = g_strdup (g_module_error ());
        g_module_close (module);
        return FALSE;
      }

  g_module_make_resident (module);
  rndz_gnutls_api = api;
  return TRUE;
}

/*
 * rndz_gnutls_load:
 *
 * Opens GnuTLS the first time; later calls answer as the first did.
 *
 * Returns: whether rndz_gnutls_api is filled; %FALSE with @error set
 */
gboolean
rndz_gnutls_load (GError **error)
{
  static gsize loaded = 0;
  static char *error_message = NULL;

  if (g_once_init_enter (&loaded))
    {
      if (!gnutls_open (&error_message))
        g_debug ("Cannot open %s: %s", GNUTLS_SONAME, error_message);
      g_once_init_leave (&loaded, 1);
    }
  if (error_message != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Secure channels need GnuTLS (%s), which cannot be opened: %s"),
                   GNUTLS_SONAME, error_message);
      return FALSE;
    }
  return TRUE;
}
