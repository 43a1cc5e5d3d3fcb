/* test-notls.c: the secure API in a build without GnuTLS
 *
 * SPDX-License-Identifier: MIT
 *
 * Built only with -Dtls=disabled (or without GnuTLS): every type and
 * function is there, and everything that would need a key fails with
 * G_IO_ERROR_NOT_SUPPORTED, at once, without touching the network or the
 * file system.
 */

#include <glib/gstdio.h>
#include <rndz-glib/rndz.h>

#include "rndz-dtls-channel-private.h"

#ifdef RNDZ_HAVE_TLS
#error "test-notls is for a build without TLS"
#endif

#define FP "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
test_identity (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("rndz-notls-XXXXXX", &error);
  g_autofree char *path = NULL;
  g_autoptr(RndzIdentity) fresh = NULL;
  g_autoptr(RndzIdentity) kept = NULL;

  g_assert_no_error (error);
  path = g_build_filename (dir, "identity.pem", NULL);

  fresh = rndz_identity_new (&error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (fresh);
  g_clear_error (&error);

  kept = rndz_identity_new_from_file (path, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (kept);
  /* Nothing written for an identity that cannot be made */
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

static RndzClient *
client_new (void)
{
  const char *servers[] = { "127.0.0.1:1", NULL };

  return rndz_client_new ("notls", servers);
}

static void
test_client_connect (void)
{
  g_autoptr(RndzClient) client = client_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GTlsConnection) tls = NULL;
  g_autoptr(RndzDtlsChannel) dtls = NULL;
  gint64 start = g_get_monotonic_time ();

  tls = rndz_client_connect_tls (client, "peer", NULL, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (tls);
  g_clear_error (&error);

  dtls = rndz_client_connect_dtls (client, "peer", FP, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (dtls);

  /* At once: no attempt to reach the (absent) server first */
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
  g_assert_null (rndz_client_get_identity (client));
}

static void
test_client_accept (void)
{
  g_autoptr(RndzClient) client = client_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GTlsConnection) tls = NULL;
  g_autoptr(RndzDtlsChannel) dtls = NULL;
  g_autofree char *peer_id = NULL;

  tls = rndz_client_accept_tls (client, &peer_id, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (tls);
  g_assert_null (peer_id);
  g_clear_error (&error);

  dtls = rndz_client_accept_dtls (client, &peer_id, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (dtls);
  g_assert_null (peer_id);
}

static GSocket *
udp_socket (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                  G_SOCKET_PROTOCOL_UDP, &error);

  g_assert_no_error (error);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  return socket;
}

static void
handshake_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static void
test_dtls_handshake (void)
{
  g_autoptr(GSocket) socket = udp_socket ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(RndzDtlsChannel) channel = NULL;
  g_autoptr(GError) error = NULL;

  /* No identity can be made: the stub must not look at it */
  rndz_dtls_channel_handshake_async (socket, FALSE, NULL, FP, 1000, NULL,
                                     handshake_cb, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  channel = rndz_dtls_channel_handshake_finish (result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (channel);
  g_assert_false (g_socket_is_closed (socket));
}

static void
receive_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

/* A channel the application made itself: there, but it never opened */
static void
test_dtls_channel (void)
{
  g_autoptr(GSocket) socket = udp_socket ();
  g_autoptr(RndzDtlsChannel) channel = g_object_new (RNDZ_TYPE_DTLS_CHANNEL,
                                                     "socket", socket, NULL);
  g_autoptr(GBytes) payload = g_bytes_new_static ("hello", 5);
  g_autoptr(GBytes) received = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  GInputVector vector = { (char [16]) { 0 }, 16 };
  GInputMessage message = { NULL, &vector, 1, 0, 0, NULL, NULL };

  g_assert_true (G_IS_DATAGRAM_BASED (channel));
  g_assert_true (rndz_dtls_channel_get_socket (channel) == socket);
  g_assert_null (rndz_dtls_channel_get_peer_fingerprint (channel));
  g_assert_true (rndz_dtls_channel_is_closed (channel));

  g_assert_false (rndz_dtls_channel_send_bytes (channel, payload, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_clear_error (&error);

  /* Returns at once, instead of blocking on a socket nobody sends to */
  received = rndz_dtls_channel_receive_bytes (channel, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (received);
  g_clear_error (&error);

  g_assert_cmpint (g_datagram_based_receive_messages (G_DATAGRAM_BASED (channel), &message, 1,
                                                      0, -1, NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_clear_error (&error);
  g_assert_cmpint (g_datagram_based_condition_check (G_DATAGRAM_BASED (channel), G_IO_IN),
                   ==, G_IO_HUP | G_IO_ERR);

  rndz_dtls_channel_receive_bytes_async (channel, NULL, receive_cb, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  received = rndz_dtls_channel_receive_bytes_finish (channel, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_null (received);

  rndz_dtls_channel_set_keepalive_interval (channel, 1000);
  g_assert_cmpuint (rndz_dtls_channel_get_keepalive_interval (channel), ==, 1000);
  rndz_dtls_channel_close (channel);
  g_assert_true (rndz_dtls_channel_is_closed (channel));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_summary ("A build without TLS: the secure API is there, and fails with NOT_SUPPORTED");

  g_test_add_func ("/notls/identity", test_identity);
  g_test_add_func ("/notls/client/connect", test_client_connect);
  g_test_add_func ("/notls/client/accept", test_client_accept);
  g_test_add_func ("/notls/dtls/handshake", test_dtls_handshake);
  g_test_add_func ("/notls/dtls/channel", test_dtls_channel);

  return g_test_run ();
}
