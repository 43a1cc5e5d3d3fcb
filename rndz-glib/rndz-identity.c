/* rndz-identity.c: a peer's key and certificate
 *
 * SPDX-License-Identifier: MIT
 *
 * The object only: the keys come from rndz-identity-gnutls.c (or
 * rndz-identity-none.c without GnuTLS), their file from
 * rndz-identity-file.c.
 */

#include "config.h"

#include "rndz-identity.h"
#include "rndz-features.h"
#include "rndz-fingerprint-private.h"
#include "rndz-identity-keys-private.h"
#ifdef RNDZ_HAVE_TLS
#include "rndz-identity-private.h"
#endif

/**
 * RndzIdentity:
 *
 * Who a peer is to the peers it talks to: a private key and a self-signed
 * X.509 certificate (ECDSA P-256), which the secure connections of
 * rndz-glib present to the other end.
 *
 * A peer is known by the [property@Rndz.Identity:fingerprint] of its
 * certificate: the SHA-256 of the certificate, as 64 lowercase
 * hexadecimal digits. The certificate is not signed by any authority and
 * says nothing of its own; a peer trusts another because its fingerprint
 * is the one it expects (carried by the rendezvous, or pinned by the
 * application), not because of what the certificate says.
 *
 * rndz_identity_new() makes a fresh identity that lives in memory only:
 * the peer is someone else each time it starts. rndz_identity_new_from_file()
 * keeps it in a file, which it creates the first time.
 *
 * An identity cannot change once made, and may be used from any thread.
 *
 * In a build of rndz-glib without GnuTLS (the `tls` build option), the
 * class exists but its constructors fail with %G_IO_ERROR_NOT_SUPPORTED.
 *
 * Since: 1.0
 */
struct _RndzIdentity
{
  GObject parent_instance;

  char *path;
  RndzIdentityKeys *keys;
  char *fingerprint;
  /* Made on first use: see identity_certificate() */
  gsize certificate_made;
  GTlsCertificate *certificate;
};

enum {
  PROP_0,
  PROP_PATH,
  PROP_FINGERPRINT,
  PROP_CERTIFICATE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void rndz_identity_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (RndzIdentity, rndz_identity, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                      rndz_identity_initable_iface_init))

/* The certificate for GIO's TLS needs GIO's TLS backend (glib-networking),
 * which DTLS does not: without it an identity still serves DTLS. It is
 * made when first asked for, not with the identity: loading the backend
 * (a GIO module, its GTypes, and parsing the key again) is most of what
 * a DTLS connector spends beyond a plain one, and only TLS needs it.
 * Once, whichever thread asks first. */
static GTlsCertificate *
identity_certificate (RndzIdentity *identity)
{
  if (g_once_init_enter (&identity->certificate_made))
    {
      g_autoptr(GError) error = NULL;

      identity->certificate = g_tls_certificate_new_from_pem (rndz_identity_keys_get_pem (identity->keys),
                                                              -1, &error);
      if (identity->certificate == NULL)
        g_debug ("No GTlsCertificate for identity %s: %s", identity->fingerprint, error->message);
      g_once_init_leave (&identity->certificate_made, 1);
    }
  return identity->certificate;
}

static gboolean
rndz_identity_initable_init (GInitable     *initable,
                             GCancellable  *cancellable,
                             GError       **error)
{
  RndzIdentity *identity = RNDZ_IDENTITY (initable);
  g_autoptr(GBytes) der = NULL;
  gsize der_len;
  const guint8 *der_data;

  if (identity->keys != NULL)
    return TRUE;

  if (identity->path != NULL)
    identity->keys = rndz_identity_keys_load_or_create (identity->path, error);
  else
    identity->keys = rndz_identity_keys_generate (error);
  if (identity->keys == NULL)
    return FALSE;

  der = rndz_identity_keys_get_der (identity->keys);
  der_data = g_bytes_get_data (der, &der_len);
  identity->fingerprint = rndz_fingerprint_of_der (der_data, der_len);
  return TRUE;
}

static void
rndz_identity_initable_iface_init (GInitableIface *iface)
{
  iface->init = rndz_identity_initable_init;
}

static void
rndz_identity_init (RndzIdentity *identity)
{
}

static void
rndz_identity_finalize (GObject *object)
{
  RndzIdentity *identity = RNDZ_IDENTITY (object);

  g_clear_object (&identity->certificate);
  g_clear_pointer (&identity->keys, rndz_identity_keys_free);
  g_clear_pointer (&identity->fingerprint, g_free);
  g_clear_pointer (&identity->path, g_free);

  G_OBJECT_CLASS (rndz_identity_parent_class)->finalize (object);
}

static void
rndz_identity_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  RndzIdentity *identity = RNDZ_IDENTITY (object);

  switch (prop_id)
    {
    case PROP_PATH:
      g_value_set_string (value, identity->path);
      break;
    case PROP_FINGERPRINT:
      g_value_set_string (value, identity->fingerprint);
      break;
    case PROP_CERTIFICATE:
      g_value_set_object (value, identity->keys != NULL ? identity_certificate (identity) : NULL);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_identity_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  RndzIdentity *identity = RNDZ_IDENTITY (object);

  switch (prop_id)
    {
    case PROP_PATH:
      identity->path = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
rndz_identity_class_init (RndzIdentityClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  object_class->finalize = rndz_identity_finalize;
  object_class->get_property = rndz_identity_get_property;
  object_class->set_property = rndz_identity_set_property;

  /**
   * RndzIdentity:path:
   *
   * The file that holds the identity, or %NULL for one that lives in
   * memory only.
   *
   * Since: 1.0
   */
  properties[PROP_PATH] =
    g_param_spec_string ("path", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * RndzIdentity:fingerprint:
   *
   * The SHA-256 of the certificate, as 64 lowercase hexadecimal digits:
   * the one text form of fingerprints in rndz-glib (see
   * rndz_fingerprint_normalize()).
   *
   * Since: 1.0
   */
  properties[PROP_FINGERPRINT] =
    g_param_spec_string ("fingerprint", NULL, NULL, NULL, ro);

  /**
   * RndzIdentity:certificate:
   *
   * The certificate with its private key, as [property@Gio.TlsConnection:certificate]
   * takes it, or %NULL when GIO has no TLS backend (glib-networking is
   * not installed).
   *
   * Since: 1.0
   */
  properties[PROP_CERTIFICATE] =
    g_param_spec_object ("certificate", NULL, NULL, G_TYPE_TLS_CERTIFICATE, ro);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

/**
 * rndz_identity_new:
 * @error: return location for a #GError
 *
 * Makes a fresh identity in memory: a new ECDSA P-256 key and its
 * self-signed certificate. It is gone when the object is; use
 * rndz_identity_new_from_file() for a peer that keeps who it is.
 *
 * Returns: (transfer full): the identity, or %NULL with
 *   %G_IO_ERROR_NOT_SUPPORTED in a build without GnuTLS
 *
 * Since: 1.0
 */
RndzIdentity *
rndz_identity_new (GError **error)
{
  return g_initable_new (RNDZ_TYPE_IDENTITY, NULL, error, NULL);
}

/**
 * rndz_identity_new_from_file:
 * @path: (type filename): the file that holds the identity
 * @error: return location for a #GError
 *
 * Loads the identity kept in @path, or makes a fresh one and keeps it
 * there if @path does not exist.
 *
 * The file is PEM text: the private key (an unencrypted PKCS #8 `PRIVATE
 * KEY` block) followed by the certificate (a `CERTIFICATE` block), as
 * `openssl` and `certtool` read them. A new file is created with mode
 * 0600, whole or not at all: it is written under a temporary name in the
 * same directory and linked into place only if no other process created
 * @path meanwhile, in which case that process's identity is loaded
 * instead, so that all who race to create it end with the same identity.
 *
 * Like ssh with its keys, this refuses a file that the group or others
 * may read or write (%G_IO_ERROR_PERMISSION_DENIED): someone else may
 * have read the key, and the identity is no longer the peer's alone.
 *
 * Returns: (transfer full): the identity, or %NULL with @error set:
 *   %G_IO_ERROR_INVALID_DATA if the file does not hold a key and its
 *   certificate, %G_IO_ERROR_PERMISSION_DENIED if it is open to others,
 *   %G_IO_ERROR_NOT_SUPPORTED in a build without GnuTLS, or the error
 *   from reading or writing the file; the message names the file
 *
 * Since: 1.0
 */
RndzIdentity *
rndz_identity_new_from_file (const char  *path,
                             GError     **error)
{
  g_return_val_if_fail (path != NULL, NULL);

  return g_initable_new (RNDZ_TYPE_IDENTITY, NULL, error, "path", path, NULL);
}

/**
 * rndz_identity_get_path:
 * @identity: an identity
 *
 * Gets the [property@Rndz.Identity:path] property.
 *
 * Returns: (type filename) (nullable): the file that holds the identity,
 *   or %NULL for one that lives in memory only
 *
 * Since: 1.0
 */
const char *
rndz_identity_get_path (RndzIdentity *identity)
{
  g_return_val_if_fail (RNDZ_IS_IDENTITY (identity), NULL);

  return identity->path;
}

/**
 * rndz_identity_get_fingerprint:
 * @identity: an identity
 *
 * Gets the [property@Rndz.Identity:fingerprint] property: the SHA-256 of
 * the certificate, as 64 lowercase hexadecimal digits.
 *
 * Returns: the fingerprint
 *
 * Since: 1.0
 */
const char *
rndz_identity_get_fingerprint (RndzIdentity *identity)
{
  g_return_val_if_fail (RNDZ_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (identity->keys != NULL, NULL);

  return identity->fingerprint;
}

/**
 * rndz_identity_get_certificate:
 * @identity: an identity
 *
 * Gets the [property@Rndz.Identity:certificate] property: the certificate
 * with its private key, for [property@Gio.TlsConnection:certificate].
 *
 * Returns: (transfer none) (nullable): the certificate, or %NULL when GIO
 *   has no TLS backend (glib-networking is not installed)
 *
 * Since: 1.0
 */
GTlsCertificate *
rndz_identity_get_certificate (RndzIdentity *identity)
{
  g_return_val_if_fail (RNDZ_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (identity->keys != NULL, NULL);

  return identity_certificate (identity);
}

#ifdef RNDZ_HAVE_TLS
gnutls_certificate_credentials_t
rndz_identity_get_credentials (RndzIdentity *identity)
{
  g_return_val_if_fail (RNDZ_IS_IDENTITY (identity), NULL);
  g_return_val_if_fail (identity->keys != NULL, NULL);

  return rndz_identity_keys_get_credentials (identity->keys);
}
#endif
