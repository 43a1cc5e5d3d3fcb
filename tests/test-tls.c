/* test-tls.c: TLS 1.3 with identities over a TCP path (rndz-tls.c)
 *
 * SPDX-License-Identifier: MIT
 *
 * Over a loopback TCP path made with plain sockets (no GSocketClient, so
 * no proxy resolver is loaded), through a tap: a thread that forwards the
 * bytes both ways and keeps them, to show what was on the wire. The "client" is the connector, the
 * "server" the listener; alice is the client's identity, bob the
 * server's, and mallory one that nobody should accept.
 */

#define _GNU_SOURCE /* memmem() */

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <rndz-glib/rndz.h>

#include "rndz-identity-private.h"
#include "rndz-tls-private.h"
#include "rndz-test-util.h"

#define SECRET "attack at dawn"

static RndzIdentity *alice, *bob, *mallory;

typedef struct {
  GSocket *a;
  GSocket *b;
  GMutex lock;
  GString *wire;
  GThread *thread;
} Tap;

typedef struct {
  GMainContext *context;
  Tap tap;
  GSocketConnection *client_base;
  GSocketConnection *server_base;
  GAsyncResult *client_result;
  GAsyncResult *server_result;
  GTlsConnection *client;
  GTlsConnection *server;
  GError *client_error;
  GError *server_error;
} Fixture;

/* Forwards what one side sent to the other; FALSE when that side is done */
static gboolean
tap_forward (Tap *tap,
             int  from,
             int  to)
{
  char buffer[16384];
  gssize n = recv (from, buffer, sizeof buffer, 0);

  if (n <= 0)
    return FALSE;
  g_mutex_lock (&tap->lock);
  g_string_append_len (tap->wire, buffer, n);
  g_mutex_unlock (&tap->lock);
  return send (to, buffer, n, MSG_NOSIGNAL) == n;
}

static gpointer
tap_thread (gpointer data)
{
  Tap *tap = data;
  struct pollfd fds[2] = {
    { g_socket_get_fd (tap->a), POLLIN, 0 },
    { g_socket_get_fd (tap->b), POLLIN, 0 },
  };

  while (poll (fds, 2, -1) > 0)
    {
      if (fds[0].revents != 0 && !tap_forward (tap, fds[0].fd, fds[1].fd))
        break;
      if (fds[1].revents != 0 && !tap_forward (tap, fds[1].fd, fds[0].fd))
        break;
    }
  /* One side is gone: so is the path, for the other */
  shutdown (fds[0].fd, SHUT_RDWR);
  shutdown (fds[1].fd, SHUT_RDWR);
  return NULL;
}

static gboolean
wire_has (Fixture    *f,
          const char *text)
{
  gboolean found;

  g_mutex_lock (&f->tap.lock);
  /* Not g_strstr_len(): it stops at the first NUL byte */
  found = memmem (f->tap.wire->str, f->tap.wire->len, text, strlen (text)) != NULL;
  g_mutex_unlock (&f->tap.lock);
  return found;
}

/* A connected pair of sockets: the one that connected, the one accepted */
static void
tcp_pair (GSocket **out_connected,
          GSocket **out_accepted)
{
  g_autoptr(GSocket) listener = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, NULL);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  address = g_socket_get_local_address (listener, &error);
  g_assert_no_error (error);
  *out_connected = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (*out_connected, address, NULL, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (listener, TRUE);
  *out_accepted = g_socket_accept (listener, NULL, &error);
  g_assert_no_error (error);
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GSocket) client = NULL;
  g_autoptr(GSocket) server = NULL;

  f->context = g_main_context_ref_thread_default ();
  tcp_pair (&client, &f->tap.a);
  tcp_pair (&f->tap.b, &server);
  /* The library sets it on its ends; the tap's need it too, or Nagle and
   * delayed ACKs add 40 ms a flight */
  g_assert_true (g_socket_set_option (f->tap.a, IPPROTO_TCP, TCP_NODELAY, 1, NULL));
  g_assert_true (g_socket_set_option (f->tap.b, IPPROTO_TCP, TCP_NODELAY, 1, NULL));
  g_mutex_init (&f->tap.lock);
  f->tap.wire = g_string_new (NULL);
  f->tap.thread = g_thread_new ("tap", tap_thread, &f->tap);
  f->client_base = g_socket_connection_factory_create_connection (client);
  f->server_base = g_socket_connection_factory_create_connection (server);
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  g_clear_object (&f->client);
  g_clear_object (&f->server);
  g_clear_object (&f->client_result);
  g_clear_object (&f->server_result);
  g_clear_error (&f->client_error);
  g_clear_error (&f->server_error);
  g_io_stream_close (G_IO_STREAM (f->client_base), NULL, NULL);
  g_io_stream_close (G_IO_STREAM (f->server_base), NULL, NULL);
  g_clear_object (&f->client_base);
  g_clear_object (&f->server_base);
  g_thread_join (f->tap.thread);
  g_clear_object (&f->tap.a);
  g_clear_object (&f->tap.b);
  g_string_free (f->tap.wire, TRUE);
  g_mutex_clear (&f->tap.lock);
  rndz_test_drain (f->context);
  g_main_context_unref (f->context);
}

static void
start_client (Fixture      *f,
              const char   *expected,
              GCancellable *cancellable)
{
  rndz_tls_handshake_async (G_IO_STREAM (f->client_base), FALSE, alice, expected, cancellable,
                            rndz_test_async_cb, &f->client_result);
}

static void
start_server (Fixture      *f,
              const char   *expected,
              GCancellable *cancellable)
{
  rndz_tls_handshake_async (G_IO_STREAM (f->server_base), TRUE, bob, expected, cancellable,
                            rndz_test_async_cb, &f->server_result);
}

static void
finish_client (Fixture *f)
{
  rndz_test_wait_async (f->context, &f->client_result, RNDZ_TEST_TIMEOUT_MS);
  f->client = rndz_tls_handshake_finish (f->client_result, &f->client_error);
  g_assert_true ((f->client == NULL) != (f->client_error == NULL));
}

static void
finish_server (Fixture *f)
{
  rndz_test_wait_async (f->context, &f->server_result, RNDZ_TEST_TIMEOUT_MS);
  f->server = rndz_tls_handshake_finish (f->server_result, &f->server_error);
  g_assert_true ((f->server == NULL) != (f->server_error == NULL));
}

/* Both sides, each expecting the given fingerprint of the other */
static void
handshake (Fixture    *f,
           const char *client_expects,
           const char *server_expects)
{
  start_client (f, client_expects, NULL);
  start_server (f, server_expects, NULL);
  finish_client (f);
  finish_server (f);
  if (f->client_error != NULL)
    g_test_message ("client: %s", f->client_error->message);
  if (f->server_error != NULL)
    g_test_message ("server: %s", f->server_error->message);
}

static void
send_text (GTlsConnection *tls,
           const char     *text)
{
  g_autoptr(GError) error = NULL;
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (tls));

  g_assert_true (g_output_stream_write_all (out, text, strlen (text), NULL, NULL, &error));
  g_assert_no_error (error);
}

/* Reads in a thread: GIO's sync read would block the context that the
 * other side's TLS needs */
static gpointer
read_thread (gpointer data)
{
  GTlsConnection *tls = data;
  GInputStream *in = g_io_stream_get_input_stream (G_IO_STREAM (tls));
  char buffer[256] = { 0 };
  GError *error = NULL;
  gssize n = g_input_stream_read (in, buffer, sizeof buffer - 1, NULL, &error);

  if (n < 0)
    return error;
  return g_strndup (buffer, n);
}

static void
expect_text (GTlsConnection *tls,
             const char     *text)
{
  g_autofree char *got = g_thread_join (g_thread_new ("read", read_thread, tls));

  g_assert_cmpstr (got, ==, text);
}

static void
check_keepalive (GSocketConnection *base)
{
  GSocket *socket = g_socket_connection_get_socket (base);
  g_autoptr(GError) error = NULL;
  int value = 0;

  g_assert_true (g_socket_get_keepalive (socket));
  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_KEEPIDLE, &value, &error));
  g_assert_cmpint (value, ==, 15);
  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_KEEPINTVL, &value, &error));
  g_assert_cmpint (value, ==, 5);
  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_KEEPCNT, &value, &error));
  g_assert_cmpint (value, ==, 3);
  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_NODELAY, &value, &error));
  g_assert_cmpint (value, !=, 0);
  g_assert_no_error (error);
}

static void
test_handshake (Fixture       *f,
                gconstpointer  data)
{
  g_autofree char *client_sees = NULL;
  g_autofree char *server_sees = NULL;
  g_autofree char *suite = NULL;
  gint64 start = g_get_monotonic_time ();

  handshake (f, rndz_identity_get_fingerprint (bob), rndz_identity_get_fingerprint (alice));
  g_test_message ("handshake: %.2f ms", (g_get_monotonic_time () - start) / 1000.0);
  g_assert_no_error (f->client_error);
  g_assert_no_error (f->server_error);

  g_assert_cmpint (g_tls_connection_get_protocol_version (f->client), ==, G_TLS_PROTOCOL_VERSION_TLS_1_3);
  g_assert_cmpint (g_tls_connection_get_protocol_version (f->server), ==, G_TLS_PROTOCOL_VERSION_TLS_1_3);
  client_sees = rndz_fingerprint_from_certificate (g_tls_connection_get_peer_certificate (f->client));
  server_sees = rndz_fingerprint_from_certificate (g_tls_connection_get_peer_certificate (f->server));
  g_assert_cmpstr (client_sees, ==, rndz_identity_get_fingerprint (bob));
  g_assert_cmpstr (server_sees, ==, rndz_identity_get_fingerprint (alice));
  suite = g_tls_connection_get_ciphersuite_name (f->client);
  g_test_message ("cipher suite %s", suite);

  send_text (f->client, "hello from alice");
  expect_text (f->server, "hello from alice");
  send_text (f->server, "hello from bob");
  expect_text (f->client, "hello from bob");
  g_assert_false (wire_has (f, "hello from"));
  /* TLS 1.3 application data records */
  g_assert_true (wire_has (f, "\x17\x03\x03"));

  check_keepalive (f->client_base);
  check_keepalive (f->server_base);
}

/* The client expects someone else than bob: it refuses bob's
 * certificate, and bob's handshake fails on the alert */
static void
test_client_refuses (Fixture       *f,
                     gconstpointer  data)
{
  handshake (f, rndz_identity_get_fingerprint (mallory), rndz_identity_get_fingerprint (alice));
  g_assert_error (f->client_error, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_nonnull (strstr (f->client_error->message, rndz_identity_get_fingerprint (mallory)));
  g_assert_nonnull (strstr (f->client_error->message, rndz_identity_get_fingerprint (bob)));
  g_assert_error (f->server_error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
}

/* The server expects someone else than alice. In TLS 1.3 the client is
 * done first: it may write, but what it writes is never plaintext on the
 * wire, and its first read fails */
static void
test_server_refuses (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) read_error = NULL;

  handshake (f, rndz_identity_get_fingerprint (bob), rndz_identity_get_fingerprint (mallory));
  g_assert_error (f->server_error, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_nonnull (strstr (f->server_error->message, rndz_identity_get_fingerprint (mallory)));
  g_assert_nonnull (strstr (f->server_error->message, rndz_identity_get_fingerprint (alice)));
  if (f->client != NULL)
    {
      GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (f->client));

      g_output_stream_write_all (out, SECRET, strlen (SECRET), NULL, NULL, NULL);
      read_error = g_thread_join (g_thread_new ("read", read_thread, f->client));
      g_assert_true (read_error != NULL && read_error->domain != 0);
      g_test_message ("client read: %s", read_error->message);
    }
  else
    {
      g_assert_error (f->client_error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
    }
  g_assert_false (wire_has (f, SECRET));
}

/* A rendezvous server that swaps the fingerprints it carries: each side
 * expects mallory, and neither connects */
static void
test_swap (Fixture       *f,
           gconstpointer  data)
{
  handshake (f, rndz_identity_get_fingerprint (mallory), rndz_identity_get_fingerprint (mallory));
  g_assert_error (f->client_error, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_nonnull (f->server_error);
  g_assert_true (f->server_error->domain == RNDZ_ERROR);
  g_assert_true (f->server_error->code == RNDZ_ERROR_HANDSHAKE_FAILED ||
                 f->server_error->code == RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_null (f->client);
  g_assert_null (f->server);
}

/* The server never answers; the client gives up when told to */
static void
test_cancel (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  start_client (f, rndz_identity_get_fingerprint (bob), cancellable);
  rndz_test_run_for (f->context, 50);
  g_assert_null (f->client_result);
  g_cancellable_cancel (cancellable);
  finish_client (f);
  g_assert_error (f->client_error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

static void
test_cancelled_before (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();

  g_cancellable_cancel (cancellable);
  start_server (f, rndz_identity_get_fingerprint (alice), cancellable);
  finish_server (f);
  g_assert_error (f->server_error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
}

/* A peer that speaks no TLS, or hangs up */
static void
test_not_tls (Fixture       *f,
              gconstpointer  data)
{
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (f->client_base));

  g_assert_true (g_output_stream_write_all (out, "GET / HTTP/1.0\r\n\r\n", 18, NULL, NULL, NULL));
  start_server (f, rndz_identity_get_fingerprint (alice), NULL);
  finish_server (f);
  g_assert_error (f->server_error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
  g_test_message ("%s", f->server_error->message);
}

static void
test_hang_up (Fixture       *f,
              gconstpointer  data)
{
  start_client (f, rndz_identity_get_fingerprint (bob), NULL);
  g_io_stream_close (G_IO_STREAM (f->server_base), NULL, NULL);
  finish_client (f);
  g_assert_error (f->client_error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
  g_test_message ("%s", f->client_error->message);
}

/* Peers whose GnuTLS will not speak TLS 1.3 (main() sets glib-networking's
 * priority string in the subprocess): refused on both sides */
static void
test_old_version (void)
{
  Fixture f = { 0 };

  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      return;
    }
  fixture_set_up (&f, NULL);
  handshake (&f, rndz_identity_get_fingerprint (bob), rndz_identity_get_fingerprint (alice));
  g_assert_error (f.client_error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
  g_assert_nonnull (strstr (f.client_error->message, "TLS 1.2"));
  g_assert_error (f.server_error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
  fixture_tear_down (&f, NULL);
}

static void
add (const char *path,
     void (*func) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down);
}

int
main (int argc, char *argv[])
{
  g_autoptr(GError) error = NULL;
  int ret;

  g_test_init (&argc, &argv, NULL);
  g_test_summary ("TLS 1.3 between identities over a TCP path");
  /* Only the subprocess of /tls/version/tls-1-2-refused, before GIO's
   * TLS backend reads it */
  if (g_test_subprocess ())
    g_setenv ("G_TLS_GNUTLS_PRIORITY", "NORMAL:-VERS-TLS1.3", TRUE);

  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_test_skip ("GIO has no TLS backend (glib-networking)");
      return g_test_run ();
    }
  alice = rndz_identity_new (&error);
  g_assert_no_error (error);
  bob = rndz_identity_new (&error);
  g_assert_no_error (error);
  mallory = rndz_identity_new (&error);
  g_assert_no_error (error);

  add ("/tls/handshake", test_handshake);
  add ("/tls/mismatch/client-refuses", test_client_refuses);
  add ("/tls/mismatch/server-refuses", test_server_refuses);
  add ("/tls/mismatch/swap", test_swap);
  add ("/tls/cancel/during", test_cancel);
  add ("/tls/cancel/before", test_cancelled_before);
  add ("/tls/fail/not-tls", test_not_tls);
  add ("/tls/fail/hang-up", test_hang_up);
  g_test_add_func ("/tls/version/tls-1-2-refused", test_old_version);

  ret = g_test_run ();
  g_clear_object (&alice);
  g_clear_object (&bob);
  g_clear_object (&mallory);
  return ret;
}
