/* rndz-test-channel.c: data over a secure channel, in tests
 *
 * SPDX-License-Identifier: MIT
 *
 * What the secure tests do with the result of a secure connect or
 * accept, whichever its transport: a TLS stream over TCP, a DTLS
 * channel over UDP.
 */

#include <string.h>

#include "rndz-test-channel.h"
#include "rndz-test-util.h"

void
rndz_test_channel_send (GObject    *channel,
                        const char *text)
{
  g_autoptr(GError) error = NULL;

  if (RNDZ_IS_DTLS_CHANNEL (channel))
    {
      g_autoptr(GBytes) bytes = g_bytes_new (text, strlen (text));

      rndz_dtls_channel_send_bytes (RNDZ_DTLS_CHANNEL (channel), bytes, NULL, &error);
    }
  else
    {
      GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (channel));

      g_output_stream_write_all (out, text, strlen (text), NULL, NULL, &error);
    }
  g_assert_no_error (error);
}

/* What comes next on @channel (up to @size bytes over TLS, a datagram
 * over DTLS), or NULL and @error */
GBytes *
rndz_test_channel_receive (GObject  *channel,
                           gsize     size,
                           guint     timeout_ms,
                           GError  **error)
{
  g_autoptr(GAsyncResult) result = NULL;
  GInputStream *in;

  if (RNDZ_IS_DTLS_CHANNEL (channel))
    {
      rndz_dtls_channel_receive_bytes_async (RNDZ_DTLS_CHANNEL (channel), NULL, rndz_test_async_cb,
                                             &result);
      return rndz_dtls_channel_receive_bytes_finish (RNDZ_DTLS_CHANNEL (channel),
                                                     rndz_test_wait_async (NULL, &result, timeout_ms),
                                                     error);
    }
  in = g_io_stream_get_input_stream (G_IO_STREAM (channel));
  g_input_stream_read_bytes_async (in, size, G_PRIORITY_DEFAULT, NULL, rndz_test_async_cb, &result);
  return g_input_stream_read_bytes_finish (in, rndz_test_wait_async (NULL, &result, timeout_ms), error);
}

void
rndz_test_channel_expect (GObject    *channel,
                          const char *text,
                          guint       timeout_ms)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = rndz_test_channel_receive (channel, strlen (text), timeout_ms, &error);

  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), text, strlen (text));
}

/* The fingerprint of the peer at the other end of @channel */
char *
rndz_test_peer_fingerprint (GObject *channel)
{
  GTlsCertificate *certificate;

  if (RNDZ_IS_DTLS_CHANNEL (channel))
    return g_strdup (rndz_dtls_channel_get_peer_fingerprint (RNDZ_DTLS_CHANNEL (channel)));
  certificate = g_tls_connection_get_peer_certificate (G_TLS_CONNECTION (channel));
  g_assert_nonnull (certificate);
  return rndz_fingerprint_from_certificate (certificate);
}
