/* test-identity.c: identities, their files and their fingerprints
 *
 * SPDX-License-Identifier: MIT
 */

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <rndz-glib/rndz.h>

#include "rndz-identity-private.h"
#include "rndz-test-util.h"

#define RACERS 8

typedef struct {
  char *dir;
  char *path;
} Fixture;

static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  fixture->dir = g_dir_make_tmp ("rndz-identity-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->path = g_build_filename (fixture->dir, "identity.pem", NULL);
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(GDir) dir = g_dir_open (fixture->dir, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (fixture->dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (fixture->dir);
  g_free (fixture->path);
  g_free (fixture->dir);
}

static gnutls_x509_crt_t
parse_der (RndzIdentity *identity)
{
  g_autoptr(GByteArray) der = NULL;
  gnutls_x509_crt_t crt;
  gnutls_datum_t datum;

  g_object_get (rndz_identity_get_certificate (identity), "certificate", &der, NULL);
  datum.data = der->data;
  datum.size = der->len;
  g_assert_cmpint (gnutls_x509_crt_init (&crt), ==, 0);
  g_assert_cmpint (gnutls_x509_crt_import (crt, &datum, GNUTLS_X509_FMT_DER), ==, 0);
  return crt;
}

/* The certificate is what the issue asks for, as another X.509 reader
 * sees it */
static void
check_certificate (RndzIdentity *identity)
{
  gnutls_x509_crt_t crt = parse_der (identity);
  char cn[64];
  size_t cn_len = sizeof cn;
  unsigned int usage = 0, bits = 0, critical;
  char oid[64];
  size_t oid_len;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;

  g_assert_cmpint (gnutls_x509_crt_get_version (crt), ==, 3);
  g_assert_cmpint (gnutls_x509_crt_get_dn_by_oid (crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len), ==, 0);
  g_assert_cmpstr (cn, ==, "rndz");
  g_assert_cmpint (gnutls_x509_crt_get_pk_algorithm (crt, &bits), ==, GNUTLS_PK_ECDSA);
  g_assert_cmpuint (bits, ==, 256);
  g_assert_cmpint (gnutls_x509_crt_get_key_usage (crt, &usage, &critical), >=, 0);
  g_assert_cmpuint (usage, ==, GNUTLS_KEY_DIGITAL_SIGNATURE);
  oid_len = sizeof oid;
  g_assert_cmpint (gnutls_x509_crt_get_key_purpose_oid (crt, 0, oid, &oid_len, NULL), ==, 0);
  g_assert_cmpstr (oid, ==, GNUTLS_KP_TLS_WWW_SERVER);
  oid_len = sizeof oid;
  g_assert_cmpint (gnutls_x509_crt_get_key_purpose_oid (crt, 1, oid, &oid_len, NULL), ==, 0);
  g_assert_cmpstr (oid, ==, GNUTLS_KP_TLS_WWW_CLIENT);
  g_assert_cmpint (gnutls_x509_crt_get_activation_time (crt), <=, now - 23 * 3600);
  g_assert_cmpint (gnutls_x509_crt_get_expiration_time (crt), >=, now + (gint64) 20 * 365 * 86400);
  /* Self-signed: the issuer is the subject, and the signature holds */
  g_assert_cmpint (gnutls_x509_crt_check_issuer (crt, crt), ==, 1);
  gnutls_x509_crt_deinit (crt);
}

static void
test_new (void)
{
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  g_autoptr(RndzIdentity) a = rndz_identity_new (&error);
  g_autoptr(RndzIdentity) b = NULL;
  g_autofree char *from_cert = NULL;
  g_autofree char *property = NULL;

  g_test_message ("a new identity: %.2f ms", (g_get_monotonic_time () - start) / 1000.0);
  g_assert_no_error (error);
  g_assert_true (rndz_fingerprint_is_valid (rndz_identity_get_fingerprint (a)));
  g_assert_cmpuint (strlen (rndz_identity_get_fingerprint (a)), ==, RNDZ_FINGERPRINT_LEN);
  g_assert_null (rndz_identity_get_path (a));
  g_assert_nonnull (rndz_identity_get_credentials (a));
  g_assert_nonnull (rndz_identity_get_certificate (a));

  from_cert = rndz_fingerprint_from_certificate (rndz_identity_get_certificate (a));
  g_assert_cmpstr (from_cert, ==, rndz_identity_get_fingerprint (a));
  g_object_get (a, "fingerprint", &property, NULL);
  g_assert_cmpstr (property, ==, rndz_identity_get_fingerprint (a));
  check_certificate (a);

  b = rndz_identity_new (&error);
  g_assert_no_error (error);
  g_assert_cmpstr (rndz_identity_get_fingerprint (a), !=, rndz_identity_get_fingerprint (b));
}

/* In a process of its own: whether GIO's TLS backend is loaded is a
 * matter of the whole process */
static void
test_certificate_lazy (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzIdentity) identity = NULL;
  g_autoptr(GTlsCertificate) property = NULL;

  if (!g_test_subprocess ())
    {
      g_test_summary ("An identity loads GIO's TLS backend (glib-networking) only when its "
                      "certificate is asked for: DTLS does without it");
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      return;
    }

  identity = rndz_identity_new (&error);
  g_assert_no_error (error);
  g_assert_nonnull (rndz_identity_get_credentials (identity));
  g_assert_cmpuint (g_type_from_name ("GTlsBackendGnutls"), ==, 0);

  if (rndz_identity_get_certificate (identity) == NULL)
    {
      g_test_skip ("No TLS backend (glib-networking) to load");
      return;
    }
  g_assert_cmpuint (g_type_from_name ("GTlsBackendGnutls"), !=, 0);
  /* Made once: the property gives the same one */
  g_object_get (identity, "certificate", &property, NULL);
  g_assert_true (property == rndz_identity_get_certificate (identity));
}

static void
test_file_create (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzIdentity) identity = NULL;
  g_autoptr(RndzIdentity) again = NULL;
  g_autofree char *contents = NULL;
  GStatBuf st;
  mode_t old_umask = umask (0);

  /* Mode 0600 by itself, not by the umask */
  identity = rndz_identity_new_from_file (fixture->path, &error);
  umask (old_umask);
  g_assert_no_error (error);
  g_assert_cmpstr (rndz_identity_get_path (identity), ==, fixture->path);
  g_assert_cmpint (g_stat (fixture->path, &st), ==, 0);
  g_assert_cmpuint (st.st_mode & 07777, ==, 0600);
  /* No temporary file left behind */
  g_assert_cmpuint (rndz_test_count_entries (fixture->dir), ==, 1);

  g_assert_true (g_file_get_contents (fixture->path, &contents, NULL, NULL));
  g_assert_true (g_str_has_prefix (contents, "-----BEGIN PRIVATE KEY-----\n"));
  g_assert_nonnull (strstr (contents, "-----BEGIN CERTIFICATE-----\n"));
  check_certificate (identity);

  again = rndz_identity_new_from_file (fixture->path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (rndz_identity_get_fingerprint (again), ==, rndz_identity_get_fingerprint (identity));
  g_assert_cmpuint (rndz_test_count_entries (fixture->dir), ==, 1);
}

static void
expect_invalid (const char *path,
                gint        code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzIdentity) identity = rndz_identity_new_from_file (path, &error);

  g_assert_null (identity);
  g_assert_error (error, G_IO_ERROR, code);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, path));
}

static void
write_private (const char *path,
               const char *contents,
               gssize      length)
{
  g_autoptr(GError) error = NULL;

  g_unlink (path);
  g_file_set_contents_full (path, contents, length, G_FILE_SET_CONTENTS_NONE, 0600, &error);
  g_assert_no_error (error);
}

static void
test_file_corrupt (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzIdentity) a = rndz_identity_new_from_file (fixture->path, &error);
  g_autofree char *other_path = g_build_filename (fixture->dir, "other.pem", NULL);
  g_autoptr(RndzIdentity) b = rndz_identity_new_from_file (other_path, &error);
  g_autofree char *pem_a = NULL;
  g_autofree char *pem_b = NULL;
  g_autofree char *mixed = NULL;

  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (fixture->path, &pem_a, NULL, NULL));
  g_assert_true (g_file_get_contents (other_path, &pem_b, NULL, NULL));

  write_private (fixture->path, "", 0);
  expect_invalid (fixture->path, G_IO_ERROR_INVALID_DATA);
  write_private (fixture->path, "not a key\n", -1);
  expect_invalid (fixture->path, G_IO_ERROR_INVALID_DATA);
  /* Cut short: the key without the certificate, then half a key */
  write_private (fixture->path, pem_a, strstr (pem_a, "-----BEGIN CERTIFICATE") - pem_a);
  expect_invalid (fixture->path, G_IO_ERROR_INVALID_DATA);
  write_private (fixture->path, pem_a, 100);
  expect_invalid (fixture->path, G_IO_ERROR_INVALID_DATA);
  /* A's key with B's certificate */
  mixed = g_strdup_printf ("%.*s%s", (int) (strstr (pem_a, "-----BEGIN CERTIFICATE") - pem_a), pem_a,
                           strstr (pem_b, "-----BEGIN CERTIFICATE"));
  write_private (fixture->path, mixed, -1);
  expect_invalid (fixture->path, G_IO_ERROR_INVALID_DATA);

  /* Put back whole, it loads again */
  write_private (fixture->path, pem_a, -1);
  g_clear_object (&b);
  b = rndz_identity_new_from_file (fixture->path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (rndz_identity_get_fingerprint (b), ==, rndz_identity_get_fingerprint (a));
}

static void
test_file_errors (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzIdentity) identity = rndz_identity_new_from_file (fixture->path, &error);
  g_autofree char *missing_dir = g_build_filename (fixture->dir, "none", "identity.pem", NULL);
  g_autofree char *fifo = g_build_filename (fixture->dir, "fifo", NULL);

  g_assert_no_error (error);

  /* Open to the group or others: refused, as ssh does */
  g_assert_cmpint (g_chmod (fixture->path, 0640), ==, 0);
  expect_invalid (fixture->path, G_IO_ERROR_PERMISSION_DENIED);
  g_assert_cmpint (g_chmod (fixture->path, 0604), ==, 0);
  expect_invalid (fixture->path, G_IO_ERROR_PERMISSION_DENIED);
  g_assert_cmpint (g_chmod (fixture->path, 0400), ==, 0);
  g_clear_object (&identity);
  identity = rndz_identity_new_from_file (fixture->path, &error);
  g_assert_no_error (error);

  /* Not a regular file (a FIFO would block a plain open()); a directory
   * that does not exist */
  expect_invalid (fixture->dir, G_IO_ERROR_INVALID_DATA);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  expect_invalid (fifo, G_IO_ERROR_INVALID_DATA);
  expect_invalid (missing_dir, G_IO_ERROR_NOT_FOUND);
  g_assert_false (g_file_test (missing_dir, G_FILE_TEST_EXISTS));
}

typedef struct {
  const char *path;
  gint *go;
  char *fingerprint;
  GError *error;
} Racer;

static gpointer
race (gpointer data)
{
  Racer *racer = data;
  g_autoptr(RndzIdentity) identity = NULL;

  while (!g_atomic_int_get (racer->go))
    ;
  identity = rndz_identity_new_from_file (racer->path, &racer->error);
  if (identity != NULL)
    racer->fingerprint = g_strdup (rndz_identity_get_fingerprint (identity));
  return NULL;
}

/* Threads that all find no file all make one: a single one wins and the
 * others load it, so all end with one identity (processes race the same
 * way: link() decides) */
static void
test_file_race (Fixture       *fixture,
                gconstpointer  data)
{
  Racer racers[RACERS];
  GThread *threads[RACERS];
  gint go = FALSE;
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzIdentity) identity = NULL;

  for (guint round = 0; round < 5; round++)
    {
      g_unlink (fixture->path);
      for (guint i = 0; i < RACERS; i++)
        {
          racers[i] = (Racer) { fixture->path, &go, NULL, NULL };
          threads[i] = g_thread_new ("racer", race, &racers[i]);
        }
      g_atomic_int_set (&go, TRUE);
      for (guint i = 0; i < RACERS; i++)
        g_thread_join (threads[i]);
      g_atomic_int_set (&go, FALSE);

      identity = rndz_identity_new_from_file (fixture->path, &error);
      g_assert_no_error (error);
      for (guint i = 0; i < RACERS; i++)
        {
          g_assert_no_error (racers[i].error);
          g_assert_cmpstr (racers[i].fingerprint, ==, rndz_identity_get_fingerprint (identity));
          g_free (racers[i].fingerprint);
        }
      g_clear_object (&identity);
      g_assert_cmpuint (rndz_test_count_entries (fixture->dir), ==, 1);
    }
}

#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP_COLONS "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:" \
                  "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:Ab:cD:eF"

static void
test_fingerprint_normalize (void)
{
  const char *good[] = {
    FP, "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
    FP_COLONS, "  " FP "\n",
  };
  const char *bad[] = {
    "", FP "0", FP "00", "0" FP, "0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef",
    /* colons but not between every pair, or at the end */
    FP_COLONS ":", "0:123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "0123:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:Ab:cD:eF:",
    "01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef 01 23 45 67 89 ab cd ef",
    "sha256:" FP,
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *text = rndz_fingerprint_normalize (good[i], &error);

      g_assert_no_error (error);
      g_assert_cmpstr (text, ==, FP);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *text = rndz_fingerprint_normalize (bad[i], &error);

      g_test_message ("refusing “%s”", bad[i]);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      g_assert_null (text);
    }
}

static void
test_fingerprint_valid (void)
{
  g_assert_true (rndz_fingerprint_is_valid (FP));
  g_assert_false (rndz_fingerprint_is_valid (NULL));
  g_assert_false (rndz_fingerprint_is_valid (""));
  g_assert_false (rndz_fingerprint_is_valid (FP "0"));
  g_assert_false (rndz_fingerprint_is_valid ("123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  g_assert_false (rndz_fingerprint_is_valid ("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
  g_assert_false (rndz_fingerprint_is_valid (FP_COLONS));
  g_assert_false (rndz_fingerprint_is_valid (" 123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
  g_assert_false (rndz_fingerprint_is_valid ("0123456789abcdeg0123456789abcdef0123456789abcdef0123456789abcdef"));
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("Identities: keys and certificates, their files, fingerprints");

  g_test_add_func ("/identity/new", test_new);
  g_test_add_func ("/identity/certificate-lazy", test_certificate_lazy);
  g_test_add ("/identity/file/create", Fixture, NULL, fixture_set_up, test_file_create, fixture_tear_down);
  g_test_add ("/identity/file/corrupt", Fixture, NULL, fixture_set_up, test_file_corrupt, fixture_tear_down);
  g_test_add ("/identity/file/errors", Fixture, NULL, fixture_set_up, test_file_errors, fixture_tear_down);
  g_test_add ("/identity/file/race", Fixture, NULL, fixture_set_up, test_file_race, fixture_tear_down);
  g_test_add_func ("/identity/fingerprint/normalize", test_fingerprint_normalize);
  g_test_add_func ("/identity/fingerprint/valid", test_fingerprint_valid);

  return g_test_run ();
}
