/* rndz-gnutls-private.h: GnuTLS, opened when the first identity is made
 *
 * SPDX-License-Identifier: MIT
 *
 * GnuTLS and what it brings (p11-kit, libtasn1, Nettle, GMP, libidn2,
 * libunistring), and the initialization its constructor runs, cost every
 * program linked with them about 1 ms at start-up: a third of
 * `rndz --version`, and as much of every `rndz client --insecure` and
 * `rndz server`, which never use them. So rndz-glib is built against its
 * headers but not linked with it: rndz-gnutls.c opens it by its soname
 * when the first identity is made (rndz_gnutls_load()), and every secure
 * path starts from an identity.
 *
 * A file of the library that calls GnuTLS includes this header after the
 * GnuTLS ones: each call then goes through rndz_gnutls_api, filled by
 * rndz_gnutls_load(). A call before the first identity would be a call
 * through NULL.
 */

#pragma once

#include <gio/gio.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/dtls.h>
#include <gnutls/x509.h>

G_BEGIN_DECLS

/* The calls of GnuTLS that rndz-glib makes, and its gnutls_free */
typedef struct
{
  __typeof__ (gnutls_alert_get) *gnutls_alert_get;
  __typeof__ (gnutls_alert_get_name) *gnutls_alert_get_name;
  __typeof__ (gnutls_alert_send_appropriate) *gnutls_alert_send_appropriate;
  __typeof__ (gnutls_bye) *gnutls_bye;
  __typeof__ (gnutls_certificate_allocate_credentials) *gnutls_certificate_allocate_credentials;
  __typeof__ (gnutls_certificate_free_credentials) *gnutls_certificate_free_credentials;
  __typeof__ (gnutls_certificate_get_peers) *gnutls_certificate_get_peers;
  __typeof__ (gnutls_certificate_server_set_request) *gnutls_certificate_server_set_request;
  __typeof__ (gnutls_certificate_set_x509_key) *gnutls_certificate_set_x509_key;
  __typeof__ (gnutls_cipher_get) *gnutls_cipher_get;
  __typeof__ (gnutls_cipher_get_name) *gnutls_cipher_get_name;
  __typeof__ (gnutls_credentials_set) *gnutls_credentials_set;
  __typeof__ (gnutls_deinit) *gnutls_deinit;
  __typeof__ (gnutls_dtls_get_data_mtu) *gnutls_dtls_get_data_mtu;
  __typeof__ (gnutls_dtls_get_timeout) *gnutls_dtls_get_timeout;
  __typeof__ (gnutls_dtls_set_mtu) *gnutls_dtls_set_mtu;
  __typeof__ (gnutls_dtls_set_timeouts) *gnutls_dtls_set_timeouts;
  __typeof__ (gnutls_error_is_fatal) *gnutls_error_is_fatal;
  __typeof__ (gnutls_handshake) *gnutls_handshake;
  __typeof__ (gnutls_init) *gnutls_init;
  __typeof__ (gnutls_memset) *gnutls_memset;
  __typeof__ (gnutls_priority_set_direct) *gnutls_priority_set_direct;
  __typeof__ (gnutls_record_get_discarded) *gnutls_record_get_discarded;
  __typeof__ (gnutls_record_recv) *gnutls_record_recv;
  __typeof__ (gnutls_record_send) *gnutls_record_send;
  __typeof__ (gnutls_rnd) *gnutls_rnd;
  __typeof__ (gnutls_session_get_ptr) *gnutls_session_get_ptr;
  __typeof__ (gnutls_session_set_ptr) *gnutls_session_set_ptr;
  __typeof__ (gnutls_session_set_verify_function) *gnutls_session_set_verify_function;
  __typeof__ (gnutls_strerror) *gnutls_strerror;
  __typeof__ (gnutls_transport_set_errno) *gnutls_transport_set_errno;
  __typeof__ (gnutls_transport_set_ptr) *gnutls_transport_set_ptr;
  __typeof__ (gnutls_transport_set_pull_function) *gnutls_transport_set_pull_function;
  __typeof__ (gnutls_transport_set_pull_timeout_function) *gnutls_transport_set_pull_timeout_function;
  __typeof__ (gnutls_transport_set_push_function) *gnutls_transport_set_push_function;
  __typeof__ (gnutls_x509_crt_deinit) *gnutls_x509_crt_deinit;
  __typeof__ (gnutls_x509_crt_export2) *gnutls_x509_crt_export2;
  __typeof__ (gnutls_x509_crt_get_key_id) *gnutls_x509_crt_get_key_id;
  __typeof__ (gnutls_x509_crt_import) *gnutls_x509_crt_import;
  __typeof__ (gnutls_x509_crt_init) *gnutls_x509_crt_init;
  __typeof__ (gnutls_x509_crt_set_activation_time) *gnutls_x509_crt_set_activation_time;
  __typeof__ (gnutls_x509_crt_set_basic_constraints) *gnutls_x509_crt_set_basic_constraints;
  __typeof__ (gnutls_x509_crt_set_dn_by_oid) *gnutls_x509_crt_set_dn_by_oid;
  __typeof__ (gnutls_x509_crt_set_expiration_time) *gnutls_x509_crt_set_expiration_time;
  __typeof__ (gnutls_x509_crt_set_key) *gnutls_x509_crt_set_key;
  __typeof__ (gnutls_x509_crt_set_key_purpose_oid) *gnutls_x509_crt_set_key_purpose_oid;
  __typeof__ (gnutls_x509_crt_set_key_usage) *gnutls_x509_crt_set_key_usage;
  __typeof__ (gnutls_x509_crt_set_serial) *gnutls_x509_crt_set_serial;
  __typeof__ (gnutls_x509_crt_set_subject_key_id) *gnutls_x509_crt_set_subject_key_id;
  __typeof__ (gnutls_x509_crt_set_version) *gnutls_x509_crt_set_version;
  __typeof__ (gnutls_x509_crt_sign2) *gnutls_x509_crt_sign2;
  __typeof__ (gnutls_x509_privkey_deinit) *gnutls_x509_privkey_deinit;
  __typeof__ (gnutls_x509_privkey_export2_pkcs8) *gnutls_x509_privkey_export2_pkcs8;
  __typeof__ (gnutls_x509_privkey_generate2) *gnutls_x509_privkey_generate2;
  __typeof__ (gnutls_x509_privkey_get_key_id) *gnutls_x509_privkey_get_key_id;
  __typeof__ (gnutls_x509_privkey_import2) *gnutls_x509_privkey_import2;
  __typeof__ (gnutls_x509_privkey_init) *gnutls_x509_privkey_init;
  gnutls_free_function *free;
} RndzGnutlsApi;

G_GNUC_INTERNAL extern RndzGnutlsApi rndz_gnutls_api;

G_GNUC_INTERNAL gboolean rndz_gnutls_load (GError **error);

#ifndef RNDZ_GNUTLS_COMPILATION

#define gnutls_alert_get (rndz_gnutls_api.gnutls_alert_get)
#define gnutls_alert_get_name (rndz_gnutls_api.gnutls_alert_get_name)
#define gnutls_alert_send_appropriate (rndz_gnutls_api.gnutls_alert_send_appropriate)
#define gnutls_bye (rndz_gnutls_api.gnutls_bye)
#define gnutls_certificate_allocate_credentials (rndz_gnutls_api.gnutls_certificate_allocate_credentials)
#define gnutls_certificate_free_credentials (rndz_gnutls_api.gnutls_certificate_free_credentials)
#define gnutls_certificate_get_peers (rndz_gnutls_api.gnutls_certificate_get_peers)
#define gnutls_certificate_server_set_request (rndz_gnutls_api.gnutls_certificate_server_set_request)
#define gnutls_certificate_set_x509_key (rndz_gnutls_api.gnutls_certificate_set_x509_key)
#define gnutls_cipher_get (rndz_gnutls_api.gnutls_cipher_get)
#define gnutls_cipher_get_name (rndz_gnutls_api.gnutls_cipher_get_name)
#define gnutls_credentials_set (rndz_gnutls_api.gnutls_credentials_set)
#define gnutls_deinit (rndz_gnutls_api.gnutls_deinit)
#define gnutls_dtls_get_data_mtu (rndz_gnutls_api.gnutls_dtls_get_data_mtu)
#define gnutls_dtls_get_timeout (rndz_gnutls_api.gnutls_dtls_get_timeout)
#define gnutls_dtls_set_mtu (rndz_gnutls_api.gnutls_dtls_set_mtu)
#define gnutls_dtls_set_timeouts (rndz_gnutls_api.gnutls_dtls_set_timeouts)
#define gnutls_error_is_fatal (rndz_gnutls_api.gnutls_error_is_fatal)
#define gnutls_handshake (rndz_gnutls_api.gnutls_handshake)
#define gnutls_init (rndz_gnutls_api.gnutls_init)
#define gnutls_memset (rndz_gnutls_api.gnutls_memset)
#define gnutls_priority_set_direct (rndz_gnutls_api.gnutls_priority_set_direct)
#define gnutls_record_get_discarded (rndz_gnutls_api.gnutls_record_get_discarded)
#define gnutls_record_recv (rndz_gnutls_api.gnutls_record_recv)
#define gnutls_record_send (rndz_gnutls_api.gnutls_record_send)
#define gnutls_rnd (rndz_gnutls_api.gnutls_rnd)
#define gnutls_session_get_ptr (rndz_gnutls_api.gnutls_session_get_ptr)
#define gnutls_session_set_ptr (rndz_gnutls_api.gnutls_session_set_ptr)
#define gnutls_session_set_verify_function (rndz_gnutls_api.gnutls_session_set_verify_function)
#define gnutls_strerror (rndz_gnutls_api.gnutls_strerror)
#define gnutls_transport_set_errno (rndz_gnutls_api.gnutls_transport_set_errno)
#define gnutls_transport_set_ptr (rndz_gnutls_api.gnutls_transport_set_ptr)
#define gnutls_transport_set_pull_function (rndz_gnutls_api.gnutls_transport_set_pull_function)
#define gnutls_transport_set_pull_timeout_function (rndz_gnutls_api.gnutls_transport_set_pull_timeout_function)
#define gnutls_transport_set_push_function (rndz_gnutls_api.gnutls_transport_set_push_function)
#define gnutls_x509_crt_deinit (rndz_gnutls_api.gnutls_x509_crt_deinit)
#define gnutls_x509_crt_export2 (rndz_gnutls_api.gnutls_x509_crt_export2)
#define gnutls_x509_crt_get_key_id (rndz_gnutls_api.gnutls_x509_crt_get_key_id)
#define gnutls_x509_crt_import (rndz_gnutls_api.gnutls_x509_crt_import)
#define gnutls_x509_crt_init (rndz_gnutls_api.gnutls_x509_crt_init)
#define gnutls_x509_crt_set_activation_time (rndz_gnutls_api.gnutls_x509_crt_set_activation_time)
#define gnutls_x509_crt_set_basic_constraints (rndz_gnutls_api.gnutls_x509_crt_set_basic_constraints)
#define gnutls_x509_crt_set_dn_by_oid (rndz_gnutls_api.gnutls_x509_crt_set_dn_by_oid)
#define gnutls_x509_crt_set_expiration_time (rndz_gnutls_api.gnutls_x509_crt_set_expiration_time)
#define gnutls_x509_crt_set_key (rndz_gnutls_api.gnutls_x509_crt_set_key)
#define gnutls_x509_crt_set_key_purpose_oid (rndz_gnutls_api.gnutls_x509_crt_set_key_purpose_oid)
#define gnutls_x509_crt_set_key_usage (rndz_gnutls_api.gnutls_x509_crt_set_key_usage)
#define gnutls_x509_crt_set_serial (rndz_gnutls_api.gnutls_x509_crt_set_serial)
#define gnutls_x509_crt_set_subject_key_id (rndz_gnutls_api.gnutls_x509_crt_set_subject_key_id)
#define gnutls_x509_crt_set_version (rndz_gnutls_api.gnutls_x509_crt_set_version)
#define gnutls_x509_crt_sign2 (rndz_gnutls_api.gnutls_x509_crt_sign2)
#define gnutls_x509_privkey_deinit (rndz_gnutls_api.gnutls_x509_privkey_deinit)
#define gnutls_x509_privkey_export2_pkcs8 (rndz_gnutls_api.gnutls_x509_privkey_export2_pkcs8)
#define gnutls_x509_privkey_generate2 (rndz_gnutls_api.gnutls_x509_privkey_generate2)
#define gnutls_x509_privkey_get_key_id (rndz_gnutls_api.gnutls_x509_privkey_get_key_id)
#define gnutls_x509_privkey_import2 (rndz_gnutls_api.gnutls_x509_privkey_import2)
#define gnutls_x509_privkey_init (rndz_gnutls_api.gnutls_x509_privkey_init)
#undef gnutls_free
#define gnutls_free(a) ((*rndz_gnutls_api.free) ((void *) (a)), (a) = NULL)
#endif

G_END_DECLS
