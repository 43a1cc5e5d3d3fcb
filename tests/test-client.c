/* test-client.c: RndzClient end to end, against an in-process server
 *
 * SPDX-License-Identifier: MIT
 */

#include <rndz-glib/rndz.h>
#include <string.h>

#include "rndz-connect-private.h"
#include "rndz-peer-context-private.h"
#include "rndz-message-private.h"
#include "rndz-test-util.h"

typedef struct
{
  RndzServer *server;
  char *server_addr;
  gboolean ipv6;
} Fixture;

typedef struct
{
  gboolean ipv6;
  RndzTransport transport;
} TestData;

static const TestData data_ipv4 = { FALSE, RNDZ_TRANSPORT_UDP };
static const TestData data_ipv6 = { TRUE, RNDZ_TRANSPORT_UDP };
static const TestData data_udp = { FALSE, RNDZ_TRANSPORT_UDP };
static const TestData data_tcp = { FALSE, RNDZ_TRANSPORT_TCP };

static RndzTransport
transport_of (gconstpointer user_data)
{
  return ((const TestData *) user_data)->transport;
}

/* Runs the default context until *done, failing after @timeout_ms */
static void
run_until (gboolean *done,
           guint     timeout_ms)
{
  rndz_test_wait_true (NULL, done, timeout_ms);
}

static void
run_for (guint ms)
{
  rndz_test_run_for (NULL, ms);
}

static gboolean
server_has_peers (gpointer server)
{
  return rndz_server_get_peer_count (server) > 0;
}

static GSocketFamily
family_of (Fixture *fixture)
{
  return fixture->ipv6 ? G_SOCKET_FAMILY_IPV6 : G_SOCKET_FAMILY_IPV4;
}

static void
fixture_start_server (Fixture *fixture,
                      guint16  port)
{
  rndz_test_server_listen (fixture->server, family_of (fixture), port);
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  user_data)
{
  const TestData *data = user_data;

  fixture->ipv6 = data != NULL && data->ipv6;
  if (fixture->ipv6 && !rndz_test_have_ipv6 ())
    {
      g_test_skip ("IPv6 loopback is not available");
      return;
    }

  fixture->server = rndz_server_new ();
  rndz_server_set_forward_timeout (fixture->server, 1000);
  fixture_start_server (fixture, 0);
  fixture->server_addr = rndz_test_loopback_string (family_of (fixture),
                                                     rndz_server_get_port (fixture->server));
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_clear_object (&fixture->server);
  g_clear_pointer (&fixture->server_addr, g_free);
  /* Let closed sockets' sources go */
  rndz_test_drain (NULL);
}

static RndzClient *
new_client (Fixture    *fixture,
            const char *id)
{
  const char *servers[] = { fixture->server_addr, NULL };

  return rndz_client_new (id, servers);
}

/* Async helpers: each stores its result and sets a flag */

typedef struct
{
  gboolean done;
  GObject *object;
  GError *error;
  char *peer_id;
} Result;

static void
result_clear (Result *result)
{
  g_clear_object (&result->object);
  g_clear_error (&result->error);
  g_clear_pointer (&result->peer_id, g_free);
  result->done = FALSE;
}

static void
listen_udp_cb (GObject      *source,
               GAsyncResult *res,
               gpointer      user_data)
{
  Result *result = user_data;

  result->object = (GObject *) rndz_client_listen_udp_finish (RNDZ_CLIENT (source), res, &result->error);
  result->done = TRUE;
}

static void
listen_tcp_cb (GObject      *source,
               GAsyncResult *res,
               gpointer      user_data)
{
  Result *result = user_data;

  rndz_client_listen_tcp_finish (RNDZ_CLIENT (source), res, &result->error);
  result->done = TRUE;
}

static void
accept_cb (GObject      *source,
           GAsyncResult *res,
           gpointer      user_data)
{
  Result *result = user_data;

  result->object = (GObject *) rndz_client_accept_finish (RNDZ_CLIENT (source), res,
                                                          &result->peer_id, &result->error);
  result->done = TRUE;
}

static void
connect_udp_cb (GObject      *source,
                GAsyncResult *res,
                gpointer      user_data)
{
  Result *result = user_data;

  result->object = (GObject *) rndz_client_connect_udp_finish (RNDZ_CLIENT (source), res, &result->error);
  result->done = TRUE;
}

static void
connect_tcp_cb (GObject      *source,
                GAsyncResult *res,
                gpointer      user_data)
{
  Result *result = user_data;

  result->object = (GObject *) rndz_client_connect_tcp_finish (RNDZ_CLIENT (source), res, &result->error);
  result->done = TRUE;
}

static GSocket *
listen_udp (RndzClient *client)
{
  Result result = { 0 };

  rndz_client_listen_udp_async (client, NULL, listen_udp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  g_assert_true (G_IS_SOCKET (result.object));
  g_assert_cmpint (rndz_client_get_state (client), ==, RNDZ_CLIENT_STATE_REGISTERED);
  return G_SOCKET (result.object);
}

static void
listen_tcp (RndzClient *client)
{
  Result result = { 0 };

  rndz_client_listen_tcp_async (client, NULL, listen_tcp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  g_assert_cmpint (rndz_client_get_state (client), ==, RNDZ_CLIENT_STATE_REGISTERED);
}

/* Receives one datagram on a non-blocking socket, within 5 s */
static char *
receive_datagram (GSocket         *socket,
                  GSocketAddress **from)
{
  char buf[2048];
  gssize n = rndz_test_receive_from (NULL, socket, from, buf, sizeof buf - 1, 5000);

  buf[n] = '\0';
  return g_strdup (buf);
}

static void
peer_request_cb (RndzClient     *client,
                 const char     *peer_id,
                 GSocketAddress *address,
                 gpointer        user_data)
{
  char **last = user_data;

  g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
  g_free (*last);
  *last = g_strdup (peer_id);
}

static void
test_udp_rendezvous (Fixture       *fixture,
                     gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocket) to_alice = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  g_autoptr(GSocketAddress) bob_local = NULL;
  g_autofree char *requester = NULL;
  g_autofree char *hello = NULL;
  g_autofree char *reply = NULL;
  Result result = { 0 };
  g_autoptr(GError) error = NULL;

  g_test_summary ("A UDP rendezvous gives a connected socket; data flows both ways");
  if (fixture->server == NULL)
    return;

  alice = new_client (fixture, "alice");
  g_signal_connect (alice, "peer-request", G_CALLBACK (peer_request_cb), &requester);
  listening = listen_udp (alice);
  g_assert_cmpuint (rndz_client_get_local_port (alice), !=, 0);
  g_assert_cmpint (rndz_client_get_last_pong (alice), >, 0);

  bob = new_client (fixture, "bob");
  rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  to_alice = G_SOCKET (g_steal_pointer (&result.object));
  g_assert_true (g_socket_is_connected (to_alice));
  g_assert_cmpstr (requester, ==, "bob");

  g_assert_cmpint (g_socket_send (to_alice, "hello", 5, NULL, &error), ==, 5);
  g_assert_no_error (error);
  hello = receive_datagram (listening, &from);
  g_assert_cmpstr (hello, ==, "hello");

  /* It came from the port bob talked to the server from */
  bob_local = g_socket_get_local_address (to_alice, &error);
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (from)), ==,
                    g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bob_local)));

  g_assert_cmpint (g_socket_send_to (listening, from, "world", 5, NULL, &error), ==, 5);
  g_assert_no_error (error);
  reply = receive_datagram (to_alice, NULL);
  g_assert_cmpstr (reply, ==, "world");

  result_clear (&result);
}

static GIOStream *
stream_of (GObject *object)
{
  return G_IO_STREAM (object);
}

static void
exchange_over_streams (GIOStream  *a,
                       GIOStream  *b)
{
  g_autoptr(GError) error = NULL;
  char buf[16] = { 0 };
  gsize n;

  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (a), "ping!", 5, &n, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_input_stream_read_all (g_io_stream_get_input_stream (b), buf, 5, &n, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (buf, ==, "ping!");

  memset (buf, 0, sizeof buf);
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (b), "pong!", 5, &n, NULL, &error));
  g_assert_true (g_input_stream_read_all (g_io_stream_get_input_stream (a), buf, 5, &n, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (buf, ==, "pong!");
}

static void
test_tcp_rendezvous (Fixture       *fixture,
                     gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autofree char *requester = NULL;
  Result accepted = { 0 };
  Result connected = { 0 };

  g_test_summary ("A TCP rendezvous gives a connection on each side; data flows both ways");
  if (fixture->server == NULL)
    return;

  alice = new_client (fixture, "alice");
  g_signal_connect (alice, "peer-request", G_CALLBACK (peer_request_cb), &requester);
  listen_tcp (alice);
  rndz_client_accept_async (alice, NULL, accept_cb, &accepted);

  bob = new_client (fixture, "bob");
  rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &connected);
  run_until (&connected.done, 5000);
  g_assert_no_error (connected.error);
  run_until (&accepted.done, 5000);
  g_assert_no_error (accepted.error);
  g_assert_cmpstr (accepted.peer_id, ==, "bob");
  g_assert_cmpstr (requester, ==, "bob");

  exchange_over_streams (stream_of (connected.object), stream_of (accepted.object));

  result_clear (&accepted);
  result_clear (&connected);
}

#define N_CONNECTORS 4

static void
test_udp_several_connectors (Fixture       *fixture,
                             gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(GSocket) listening = NULL;
  RndzClient *connectors[N_CONNECTORS];
  Result results[N_CONNECTORS] = { 0 };
  guint seen = 0;

  g_test_summary ("Several peers reach one UDP listener at once");
  if (fixture->server == NULL)
    return;

  alice = new_client (fixture, "alice");
  listening = listen_udp (alice);

  for (guint i = 0; i < N_CONNECTORS; i++)
    {
      g_autofree char *id = g_strdup_printf ("peer-%u", i);

      connectors[i] = new_client (fixture, id);
      rndz_client_connect_udp_async (connectors[i], "alice", NULL, connect_udp_cb, &results[i]);
    }

  for (guint i = 0; i < N_CONNECTORS; i++)
    {
      g_autofree char *text = g_strdup_printf ("from %u", i);

      run_until (&results[i].done, 5000);
      g_assert_no_error (results[i].error);
      g_socket_send (G_SOCKET (results[i].object), text, strlen (text), NULL, NULL);
    }

  for (guint i = 0; i < N_CONNECTORS; i++)
    {
      g_autofree char *text = receive_datagram (listening, NULL);

      g_assert_true (g_str_has_prefix (text, "from "));
      seen |= 1u << atoi (text + 5);
    }
  g_assert_cmpuint (seen, ==, (1u << N_CONNECTORS) - 1);

  for (guint i = 0; i < N_CONNECTORS; i++)
    {
      result_clear (&results[i]);
      g_object_unref (connectors[i]);
    }
}

static void
test_tcp_several_connectors (Fixture       *fixture,
                             gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  RndzClient *connectors[N_CONNECTORS];
  Result results[N_CONNECTORS] = { 0 };
  GHashTable *ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  g_test_summary ("Several peers reach one TCP listener at once");
  if (fixture->server == NULL)
    return;

  alice = new_client (fixture, "alice");
  listen_tcp (alice);

  for (guint i = 0; i < N_CONNECTORS; i++)
    {
      g_autofree char *id = g_strdup_printf ("peer-%u", i);

      connectors[i] = new_client (fixture, id);
      rndz_client_connect_tcp_async (connectors[i], "alice", NULL, connect_tcp_cb, &results[i]);
    }

  for (guint i = 0; i < N_CONNECTORS; i++)
    {
      Result accepted = { 0 };

      rndz_client_accept_async (alice, NULL, accept_cb, &accepted);
      run_until (&accepted.done, 5000);
      g_assert_no_error (accepted.error);
      g_hash_table_add (ids, g_steal_pointer (&accepted.peer_id));
      result_clear (&accepted);
    }
  g_assert_cmpuint (g_hash_table_size (ids), ==, N_CONNECTORS);

  for (guint i = 0; i < N_CONNECTORS; i++)
    {
      run_until (&results[i].done, 5000);
      g_assert_no_error (results[i].error);
      result_clear (&results[i]);
      g_object_unref (connectors[i]);
    }
  g_hash_table_unref (ids);
}

static void
test_unknown_peer (Fixture       *fixture,
                   gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) bob = NULL;
  Result result = { 0 };
  gint64 start;

  g_test_summary ("Asking for a peer nobody registered fails at once with PEER_NOT_FOUND");

  bob = new_client (fixture, "bob");
  start = g_get_monotonic_time ();
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (bob, "nobody", NULL, connect_udp_cb, &result);
  else
    rndz_client_connect_tcp_async (bob, "nobody", NULL, connect_tcp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_error (result.error, RNDZ_ERROR, RNDZ_ERROR_PEER_NOT_FOUND);
  g_assert_null (result.object);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC / 2);
  result_clear (&result);
}

/* Reaches alice once over @transport; returns the error, if any, and
 * how long it took */
static GError *
connect_once (RndzClient    *bob,
              RndzTransport  transport,
              gint64        *took_us)
{
  Result result = { 0 };
  gint64 start = g_get_monotonic_time ();
  GError *error;

  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  else
    rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &result);
  run_until (&result.done, 10000);
  *took_us = g_get_monotonic_time () - start;
  error = g_steal_pointer (&result.error);
  result_clear (&result);
  return error;
}

static void
test_rate_limited (Fixture       *fixture,
                   gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) alice = new_client (fixture, "alice");
  g_autoptr(RndzClient) bob = new_client (fixture, "bob");
  g_autoptr(GSocket) listening = NULL;
  gint64 took;
  guint waited = 0;

  g_test_summary ("A request the server limits waits for the retry-after it is given and "
                  "then succeeds; one that cannot wait that long fails at once with "
                  "RATE_LIMITED, not a time-out");

  /* One request a second, two at once */
  rndz_server_set_request_rate (fixture->server, 1);
  if (transport == RNDZ_TRANSPORT_UDP)
    listening = listen_udp (alice);
  else
    listen_tcp (alice);

  /* The burst, then requests that must wait up to a second each */
  for (guint i = 0; i < 4; i++)
    {
      g_autoptr(GError) error = connect_once (bob, transport, &took);

      g_assert_no_error (error);
      g_test_message ("connect %u took %" G_GINT64_FORMAT " ms", i, took / 1000);
      g_assert_cmpint (took, <, 1500 * 1000);
      waited += took > 200 * 1000;
    }
  g_assert_cmpuint (waited, >=, 1);

  /* With one second to go, a wait of up to a second does not fit. Over
   * UDP an address hears one refusal a second: let that window pass, and
   * the token that comes back meanwhile be spent. */
  run_for (1100);
  {
    g_autoptr(GError) error = connect_once (bob, transport, &took);

    g_assert_no_error (error);
  }
  rndz_client_set_timeout (bob, 1000);
  {
    g_autoptr(GError) error = connect_once (bob, transport, &took);

    g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_RATE_LIMITED);
    g_assert_nonnull (strstr (error->message, " ms"));
    g_assert_cmpint (took, <, 300 * 1000);
  }
}

static void
test_auth_required (Fixture       *fixture,
                    gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) bob = new_client (fixture, "bob");
  g_autoptr(GError) error = NULL;
  gint64 took;

  g_test_summary ("A client without a key asking a server that requires one learns so at once");

  {
    g_autoptr(GBytes) secret = g_bytes_new_static ("secret", 6);

    rndz_server_set_secret (fixture->server, secret);
  }
  error = connect_once (bob, transport, &took);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_AUTH_REQUIRED);
  g_assert_cmpint (took, <, G_USEC_PER_SEC / 2);
}

/* A peer that registers and then goes away without a word */
static GSocket *
register_silent_peer (Fixture       *fixture,
                      const char    *id,
                      RndzTransport  transport)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) server = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4,
                                                                 rndz_server_get_port (fixture->server));
  g_autoptr(GError) error = NULL;
  RndzMessage ping;
  char buf[256];
  gsize len;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (ping.id, id, sizeof ping.id);
  ping.pad_to = rndz_message_max_reply_size (&ping);

  if (transport == RNDZ_TRANSPORT_UDP)
    {
      socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, &error);
      len = rndz_message_encode (&ping, buf, sizeof buf);
    }
  else
    {
      socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
      len = rndz_message_encode_frame (&ping, buf, sizeof buf);
    }
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (socket, server, NULL, &error));
  g_assert_cmpint (g_socket_send (socket, buf, len, NULL, &error), ==, (gssize) len);

  g_assert_true (rndz_test_run_until (NULL, server_has_peers, fixture->server, 5000));

  return g_steal_pointer (&socket);
}

static void
test_vanished_listener (Fixture       *fixture,
                        gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) ghost = NULL;
  Result result = { 0 };
  gint64 start;

  g_test_summary ("A listener that vanished without bye fails fast with PEER_NO_ANSWER, "
                  "not after the client's timeout");

  ghost = register_silent_peer (fixture, "ghost", transport);
  if (transport == RNDZ_TRANSPORT_UDP)
    g_socket_close (ghost, NULL);

  bob = new_client (fixture, "bob");
  rndz_client_set_timeout (bob, 10000);
  start = g_get_monotonic_time ();
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (bob, "ghost", NULL, connect_udp_cb, &result);
  else
    rndz_client_connect_tcp_async (bob, "ghost", NULL, connect_tcp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_error (result.error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER);
  /* The server's forward timeout is 1 s here */
  g_assert_cmpint (g_get_monotonic_time () - start, <, 3 * G_USEC_PER_SEC);
  result_clear (&result);
}

static void
test_timeout (Fixture       *fixture,
              gconstpointer  user_data)
{
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) ghost = NULL;
  Result result = { 0 };
  gint64 start;

  g_test_summary ("The client's own timeout ends a rendezvous the server keeps waiting on");

  rndz_server_set_forward_timeout (fixture->server, 30000);
  ghost = register_silent_peer (fixture, "ghost", RNDZ_TRANSPORT_UDP);

  bob = new_client (fixture, "bob");
  rndz_client_set_timeout (bob, 1000);
  start = g_get_monotonic_time ();
  rndz_client_connect_udp_async (bob, "ghost", NULL, connect_udp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, G_USEC_PER_SEC * 9 / 10);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 2 * G_USEC_PER_SEC);
  result_clear (&result);
}

static gboolean
cancel_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

static void
test_cancel (Fixture       *fixture,
             gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) ghost = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Result result = { 0 };
  gint64 start;

  g_test_summary ("Cancelling a rendezvous returns G_IO_ERROR_CANCELLED at once");

  rndz_server_set_forward_timeout (fixture->server, 30000);
  ghost = register_silent_peer (fixture, "ghost", transport);

  bob = new_client (fixture, "bob");
  start = g_get_monotonic_time ();
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (bob, "ghost", cancellable, connect_udp_cb, &result);
  else
    rndz_client_connect_tcp_async (bob, "ghost", cancellable, connect_tcp_cb, &result);
  g_timeout_add (100, cancel_cb, cancellable);
  run_until (&result.done, 5000);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
  result_clear (&result);
}

static void
test_accept_cancel (Fixture       *fixture,
                    gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  Result accepted = { 0 };
  Result second = { 0 };

  g_test_summary ("A pending accept can be cancelled, and fails with CLOSED on stop");

  alice = new_client (fixture, "alice");
  listen_tcp (alice);
  rndz_client_accept_async (alice, cancellable, accept_cb, &accepted);
  g_timeout_add (50, cancel_cb, cancellable);
  run_until (&accepted.done, 2000);
  g_assert_error (accepted.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  rndz_client_accept_async (alice, NULL, accept_cb, &second);
  rndz_client_stop (alice);
  run_until (&second.done, 2000);
  g_assert_error (second.error, G_IO_ERROR, G_IO_ERROR_CLOSED);

  result_clear (&accepted);
  result_clear (&second);
}

static void
count_removed_cb (RndzServer    *server,
                  const char    *id,
                  RndzTransport  transport,
                  gpointer       user_data)
{
  guint *removed = user_data;

  (*removed)++;
}

static gboolean
removed_some (gpointer data)
{
  return *(guint *) data > 0;
}

static void
test_stop_says_bye (Fixture       *fixture,
                    gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(GSocket) listening = NULL;
  guint removed = 0;
  gulong handler;

  g_test_summary ("Stopping a listener unregisters it from the server at once");

  alice = new_client (fixture, "alice");
  if (transport == RNDZ_TRANSPORT_UDP)
    listening = listen_udp (alice);
  else
    listen_tcp (alice);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 1);

  handler = g_signal_connect (fixture->server, "peer-removed", G_CALLBACK (count_removed_cb), &removed);
  rndz_client_stop (alice);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_IDLE);
  g_assert_cmpuint (rndz_client_get_local_port (alice), ==, 0);
  rndz_test_run_until (NULL, removed_some, &removed, 2000);
  g_assert_cmpuint (removed, ==, 1);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 0);
  g_signal_handler_disconnect (fixture->server, handler);

  /* And it can listen again */
  if (transport == RNDZ_TRANSPORT_UDP)
    {
      g_clear_object (&listening);
      listening = listen_udp (alice);
    }
  else
    listen_tcp (alice);
}

static void
test_server_restart (Fixture       *fixture,
                     gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) listening = NULL;
  guint16 port = rndz_server_get_port (fixture->server);
  Result result = { 0 };

  g_test_summary ("A listener re-registers by itself when the server restarts");

  alice = new_client (fixture, "alice");
  rndz_client_set_keepalive_interval (alice, 1000);
  if (transport == RNDZ_TRANSPORT_UDP)
    listening = listen_udp (alice);
  else
    listen_tcp (alice);

  rndz_server_stop (fixture->server);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 0);
  run_for (transport == RNDZ_TRANSPORT_TCP ? 300 : 1500);
  if (transport == RNDZ_TRANSPORT_TCP)
    g_assert_cmpint (rndz_client_get_state (alice), !=, RNDZ_CLIENT_STATE_IDLE);

  fixture_start_server (fixture, port);
  g_assert_true (rndz_test_run_until (NULL, server_has_peers, fixture->server, 5000));
  run_for (100);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_REGISTERED);

  bob = new_client (fixture, "bob");
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  else
    rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  result_clear (&result);
}

static void
test_two_servers_one_down (Fixture       *fixture,
                           gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autofree char *dead = g_strdup_printf ("127.0.0.1:%u", rndz_test_free_port ());
  const char *servers[] = { dead, fixture->server_addr, NULL };
  g_autoptr(RndzClient) alice = rndz_client_new ("alice", servers);
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  g_autoptr(GSocket) listening = NULL;
  Result result = { 0 };
  Result accepted = { 0 };

  g_test_summary ("With two servers, one of them down, listening and connecting still work");

  if (transport == RNDZ_TRANSPORT_UDP)
    {
      listening = listen_udp (alice);
      rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
    }
  else
    {
      listen_tcp (alice);
      rndz_client_accept_async (alice, NULL, accept_cb, &accepted);
      rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &result);
    }
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  if (transport == RNDZ_TRANSPORT_TCP)
    {
      run_until (&accepted.done, 5000);
      g_assert_no_error (accepted.error);
      g_assert_cmpstr (accepted.peer_id, ==, "bob");
    }
  result_clear (&result);
  result_clear (&accepted);
}

static void
test_server_unreachable (Fixture       *fixture,
                         gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autofree char *dead = g_strdup_printf ("127.0.0.1:%u", rndz_test_free_port ());
  const char *servers[] = { dead, NULL };
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  g_autoptr(RndzClient) alice = rndz_client_new ("alice", servers);
  Result result = { 0 };
  Result listened = { 0 };
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("A server that is down is reported at once as SERVER_UNREACHABLE");

  if (transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
      rndz_client_listen_udp_async (alice, NULL, listen_udp_cb, &listened);
    }
  else
    {
      rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &result);
      rndz_client_listen_tcp_async (alice, NULL, listen_tcp_cb, &listened);
    }
  run_until (&result.done, 5000);
  run_until (&listened.done, 5000);
  g_assert_error (result.error, RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE);
  g_assert_error (listened.error, RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_IDLE);
  result_clear (&result);
  result_clear (&listened);
}

static void
test_bad_server_address (void)
{
  const char *servers[] = { "no port here", NULL };
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  Result result = { 0 };

  g_test_summary ("A server address that does not parse is an error, not a crash");

  rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_error (result.error, RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE);
  result_clear (&result);
}

static void
test_invalid_peer_id (Fixture       *fixture,
                      gconstpointer  user_data)
{
  g_autoptr(RndzClient) bob = new_client (fixture, "bob");
  Result result = { 0 };

  g_test_summary ("An invalid peer id is refused with G_IO_ERROR_INVALID_ARGUMENT");

  rndz_client_connect_udp_async (bob, "", NULL, connect_udp_cb, &result);
  run_until (&result.done, 1000);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  result_clear (&result);
}

static gboolean
authorize_cb (RndzClient     *client,
              const char     *peer_id,
              GSocketAddress *address,
              gpointer        user_data)
{
  guint *asked = user_data;

  (*asked)++;
  return !g_str_equal (peer_id, "mallory");
}

static void
test_refuse (Fixture       *fixture,
             gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzClient) alice = new_client (fixture, "alice");
  g_autoptr(RndzClient) mallory = new_client (fixture, "mallory");
  g_autoptr(RndzClient) bob = new_client (fixture, "bob");
  g_autoptr(GSocket) listening = NULL;
  Result refused = { 0 }, welcome = { 0 }, accepted = { 0 };
  guint asked = 0;

  g_test_summary ("An authorize-peer handler that returns FALSE turns the peer away: it "
                  "fails with PEER_NO_ANSWER, and others still get in");

  g_signal_connect (alice, "authorize-peer", G_CALLBACK (authorize_cb), &asked);
  if (transport == RNDZ_TRANSPORT_UDP)
    listening = listen_udp (alice);
  else
    {
      listen_tcp (alice);
      rndz_client_accept_async (alice, NULL, accept_cb, &accepted);
    }

  if (transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_connect_udp_async (mallory, "alice", NULL, connect_udp_cb, &refused);
      rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &welcome);
    }
  else
    {
      rndz_client_connect_tcp_async (mallory, "alice", NULL, connect_tcp_cb, &refused);
      rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &welcome);
    }

  run_until (&welcome.done, 5000);
  g_assert_no_error (welcome.error);
  run_until (&refused.done, 5000);
  g_assert_error (refused.error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER);
  if (transport == RNDZ_TRANSPORT_TCP)
    {
      run_until (&accepted.done, 5000);
      g_assert_cmpstr (accepted.peer_id, ==, "bob");
    }
  /* Retransmitted requests do not ask the application again */
  g_assert_cmpuint (asked, ==, 2);

  result_clear (&refused);
  result_clear (&welcome);
  result_clear (&accepted);
}

static void
test_invalid_own_id (Fixture       *fixture,
                     gconstpointer  user_data)
{
  const char *servers[] = { fixture->server_addr, NULL };
  g_autoptr(RndzClient) client = NULL;
  Result result = { 0 };
  gint64 start = g_get_monotonic_time ();
  char long_id[66];

  g_test_summary ("A client with an invalid id fails to listen at once, "
                  "with G_IO_ERROR_INVALID_ARGUMENT; rndz_is_valid_id() tells beforehand");

  memset (long_id, 'x', 65);
  long_id[65] = '\0';
  g_assert_false (rndz_is_valid_id (long_id));
  g_assert_false (rndz_is_valid_id (""));
  g_assert_false (rndz_is_valid_id ("tab\there"));
  g_assert_true (rndz_is_valid_id ("日本"));

  g_test_expect_message ("Rndz", G_LOG_LEVEL_CRITICAL, "*not a valid id*");
  client = rndz_client_new (long_id, servers);
  g_test_assert_expected_messages ();

  rndz_client_listen_udp_async (client, NULL, listen_udp_cb, &result);
  run_until (&result.done, 1000);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC / 2);
  result_clear (&result);
}

static guint16
socket_port (GSocket *socket)
{
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (socket, NULL);

  g_assert_nonnull (local);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
}

static void
test_listen_twice (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = new_client (fixture, "alice");
  g_autoptr(RndzClient) bob = new_client (fixture, "bob");
  g_autoptr(GSocket) listening = NULL;
  Result result = { 0 };
  g_autofree char *received = NULL;

  g_test_summary ("One client listens over UDP and TCP at once under its id; "
                  "a second listen on one transport is busy");

  listening = listen_udp (alice);
  listen_tcp (alice);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 2);
  g_assert_cmpuint (rndz_client_get_local_port (alice), ==, socket_port (listening));

  rndz_client_listen_udp_async (alice, NULL, listen_udp_cb, &result);
  run_until (&result.done, 1000);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_REGISTERED);
  result_clear (&result);

  /* bob reaches alice over both */
  rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  g_assert_cmpint (g_socket_send (G_SOCKET (result.object), "udp", 3, NULL, NULL), ==, 3);
  received = receive_datagram (listening, NULL);
  g_assert_cmpstr (received, ==, "udp");
  result_clear (&result);

  rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &result);
  {
    Result accepted = { 0 };

    rndz_client_accept_async (alice, NULL, accept_cb, &accepted);
    run_until (&accepted.done, 5000);
    g_assert_no_error (accepted.error);
    g_assert_cmpstr (accepted.peer_id, ==, "bob");
    result_clear (&accepted);
  }
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  result_clear (&result);

  rndz_client_stop (alice);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_IDLE);
  g_assert_cmpuint (rndz_client_get_local_port (alice), ==, 0);
}

/* The thread and context model: a client made in one thread, used from
 * another by its synchronous API, signals and notifies in its own */

typedef struct
{
  Fixture *fixture;
  RndzClient *client;
  GThread *owner;
  guint notifies;
  guint wrong_thread;
  gboolean done;
  GError *error;
} ThreadModel;

static void
thread_model_notify_cb (GObject    *object,
                        GParamSpec *pspec,
                        gpointer    user_data)
{
  ThreadModel *model = user_data;

  model->notifies++;
  if (g_thread_self () != model->owner)
    model->wrong_thread++;
}

static gpointer
thread_model_listen_thread (gpointer user_data)
{
  ThreadModel *model = user_data;
  g_autoptr(GSocket) socket = NULL;

  socket = rndz_client_listen_udp (model->client, NULL, &model->error);
  g_atomic_int_set (&model->done, TRUE);
  g_main_context_wakeup (NULL);
  return NULL;
}

static gboolean
thread_model_done (gpointer data)
{
  ThreadModel *model = data;

  return g_atomic_int_get (&model->done);
}

static void
test_thread_model (Fixture       *fixture,
                   gconstpointer  user_data)
{
  /* A host name, so that the resolver's callbacks are in the game */
  g_autofree char *name = g_strdup_printf ("localhost:%u", rndz_server_get_port (fixture->server));
  const char *servers[] = { name, NULL };
  g_autoptr(RndzClient) alice = rndz_client_new ("alice", servers);
  ThreadModel model = { fixture, alice, g_thread_self (), 0, 0, FALSE, NULL };
  GThread *thread;

  g_test_summary ("A sync call from a thread that does not own the client's context runs "
                  "every callback and signal in that context's thread");

  g_signal_connect (alice, "notify::state", G_CALLBACK (thread_model_notify_cb), &model);

  /* This thread owns the default context (the client's and the
   * server's) and runs it while the other one waits in listen */
  g_main_context_acquire (NULL);
  thread = g_thread_new ("listener", thread_model_listen_thread, &model);
  g_assert_true (rndz_test_run_until (NULL, thread_model_done, &model, 5000));
  g_thread_join (thread);
  g_main_context_release (NULL);

  g_assert_no_error (model.error);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_REGISTERED);
  g_assert_cmpuint (model.notifies, >, 0);
  g_assert_cmpuint (model.wrong_thread, ==, 0);

  rndz_client_stop (alice);
  g_assert_cmpuint (model.wrong_thread, ==, 0);
}

static gpointer
sync_connect_thread (gpointer user_data)
{
  Fixture *fixture = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  char buf[8] = { 0 };
  gsize n;

  g_main_context_push_thread_default (context);
  bob = new_client (fixture, "bob");
  connection = rndz_client_connect_tcp (bob, "alice", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_input_stream_read_all (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                                          buf, 3, &n, NULL, &error));
  g_assert_cmpstr (buf, ==, "hi!");
  g_clear_object (&bob);
  g_main_context_pop_thread_default (context);
  return NULL;
}

static void
test_sync_api (Fixture       *fixture,
               gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = new_client (fixture, "alice");
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *peer_id = NULL;
  GThread *thread;
  gboolean done = FALSE;

  g_test_summary ("The synchronous API works, from the context's thread and from another one");

  g_assert_true (rndz_client_listen_tcp (alice, NULL, &error));
  g_assert_no_error (error);

  /* The connector runs its own context in its thread; this thread runs
   * the server's and alice's while it blocks in accept. */
  thread = g_thread_new ("connector", sync_connect_thread, fixture);
  connection = rndz_client_accept (alice, &peer_id, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (peer_id, ==, "bob");
  g_assert_true (g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                            "hi!", 3, NULL, NULL, &error));
  g_thread_join (thread);
  (void) done;
}

static void
test_hostname (Fixture       *fixture,
               gconstpointer  user_data)
{
  g_autofree char *name = g_strdup_printf ("localhost:%u", rndz_server_get_port (fixture->server));
  const char *servers[] = { name, NULL };
  g_autoptr(RndzClient) alice = rndz_client_new ("alice", servers);
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  g_autoptr(GSocket) listening = NULL;
  Result result = { 0 };

  g_test_summary ("A server given by name is reached at whichever of its addresses "
                  "serves: localhost may resolve to ::1 first");

  listening = listen_udp (alice);
  rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  result_clear (&result);
}

/* Reaches @listener_id from a client of @id through @server_addr, and
 * checks that data gets across */
static void
reach_and_exchange (RndzTransport  transport,
                    const char    *server_addr,
                    const char    *id,
                    RndzClient    *listener,
                    GSocket       *listening)
{
  const char *servers[] = { server_addr, NULL };
  g_autoptr(RndzClient) client = rndz_client_new (id, servers);
  g_autoptr(GError) error = NULL;
  Result connected = { 0 }, accepted = { 0 };

  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (client, rndz_client_get_id (listener), NULL,
                                   connect_udp_cb, &connected);
  else
    {
      rndz_client_accept_async (listener, NULL, accept_cb, &accepted);
      rndz_client_connect_tcp_async (client, rndz_client_get_id (listener), NULL,
                                     connect_tcp_cb, &connected);
    }
  run_until (&connected.done, 5000);
  g_assert_no_error (connected.error);

  if (transport == RNDZ_TRANSPORT_UDP)
    {
      g_autofree char *hello = NULL;

      g_assert_cmpint (g_socket_send (G_SOCKET (connected.object), "hello", 5, NULL, &error), ==, 5);
      g_assert_no_error (error);
      hello = receive_datagram (listening, NULL);
      g_assert_cmpstr (hello, ==, "hello");
    }
  else
    {
      run_until (&accepted.done, 5000);
      g_assert_no_error (accepted.error);
      exchange_over_streams (stream_of (connected.object), stream_of (accepted.object));
    }

  result_clear (&connected);
  result_clear (&accepted);
}

static void
test_dual_stack (gconstpointer user_data)
{
  RndzTransport transport = transport_of (user_data);
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GInetAddress) any = g_inet_address_new_any (G_SOCKET_FAMILY_IPV6);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (any, 0);
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) dave = NULL;
  g_autoptr(RndzClient) carol = NULL;
  g_autoptr(GSocket) alice_socket = NULL;
  g_autoptr(GSocket) dave_socket = NULL;
  g_autofree char *v4 = NULL, *v6 = NULL;
  Result mixed = { 0 };
  gint64 start;

  g_test_summary ("One server on the IPv6 any address: IPv4 peers meet IPv4 peers, IPv6 "
                  "peers meet IPv6 peers, and a request across the two fails at once "
                  "with ADDRESS_FAMILY");

  if (!rndz_test_have_ipv6 ())
    {
      g_test_skip ("IPv6 loopback is not available");
      return;
    }

  g_assert_true (rndz_server_listen (server, address, &error));
  g_assert_no_error (error);
  v4 = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (server));
  v6 = g_strdup_printf ("[::1]:%u", rndz_server_get_port (server));

  {
    const char *v4_servers[] = { v4, NULL };
    const char *v6_servers[] = { v6, NULL };

    alice = rndz_client_new ("alice", v4_servers);
    dave = rndz_client_new ("dave", v6_servers);
    carol = rndz_client_new ("carol", v6_servers);
  }

  if (transport == RNDZ_TRANSPORT_UDP)
    {
      alice_socket = listen_udp (alice);
      dave_socket = listen_udp (dave);
    }
  else
    {
      listen_tcp (alice);
      listen_tcp (dave);
    }

  reach_and_exchange (transport, v4, "bob", alice, alice_socket);
  reach_and_exchange (transport, v6, "erin", dave, dave_socket);

  start = g_get_monotonic_time ();
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (carol, "alice", NULL, connect_udp_cb, &mixed);
  else
    rndz_client_connect_tcp_async (carol, "alice", NULL, connect_tcp_cb, &mixed);
  run_until (&mixed.done, 5000);
  g_assert_error (mixed.error, RNDZ_ERROR, RNDZ_ERROR_ADDRESS_FAMILY);
  g_assert_cmpint (g_get_monotonic_time () - start, <, G_USEC_PER_SEC / 2);
  result_clear (&mixed);
}

static void
test_socket_receive_bytes (void)
{
  g_autoptr(GSocket) a = NULL;
  g_autoptr(GSocket) b = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) a_addr = NULL;
  g_autoptr(GSocketAddress) b_addr = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("rndz_socket_receive_bytes() returns a datagram, truncated to the "
                  "size asked for, with its sender; WOULD_BLOCK when there is none");

  a = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  b = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  g_assert_true (g_socket_bind (a, any, FALSE, &error));
  g_assert_true (g_socket_bind (b, any, FALSE, &error));
  a_addr = g_socket_get_local_address (a, &error);
  b_addr = g_socket_get_local_address (b, &error);
  g_socket_set_blocking (a, FALSE);

  bytes = rndz_socket_receive_bytes (a, 100, NULL, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_assert_null (bytes);
  g_clear_error (&error);

  g_socket_send_to (b, a_addr, "hello, world", 12, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_condition_timed_wait (a, G_IO_IN, 5 * G_USEC_PER_SEC, NULL, NULL));
  bytes = rndz_socket_receive_bytes (a, 5, &from, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), "hello", 5);
  g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (from)), ==,
                    g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (b_addr)));
}

static void
add_transport_tests (const char *name,
                     void      (*func) (Fixture *, gconstpointer))
{
  g_autofree char *udp = g_strdup_printf ("/client/udp/%s", name);
  g_autofree char *tcp = g_strdup_printf ("/client/tcp/%s", name);

  g_test_add (udp, Fixture, &data_udp, fixture_setup, func, fixture_teardown);
  g_test_add (tcp, Fixture, &data_tcp, fixture_setup, func, fixture_teardown);
}


/* Paths */


/* Restarts the fixture's server with its relay on */
static void
fixture_enable_relay (Fixture *fixture)
{
  rndz_server_stop (fixture->server);
  rndz_server_set_relay_port (fixture->server, rndz_test_free_port ());
  fixture_start_server (fixture, 0);
  g_free (fixture->server_addr);
  fixture->server_addr = rndz_test_loopback_string (family_of (fixture),
                                                     rndz_server_get_port (fixture->server));
}

static void
peer_socket_cb (RndzClient *client,
                const char *peer_id,
                GSocket    *socket,
                gpointer    user_data)
{
  Result *result = user_data;

  g_assert_false (result->done);
  result->object = g_object_ref (G_OBJECT (socket));
  result->peer_id = g_strdup (peer_id);
  result->done = TRUE;
}

static void
test_udp_path_direct (Fixture       *fixture,
                      gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  g_autofree char *first = NULL;
  g_autoptr(GError) error = NULL;
  Result result = { 0 };
  RndzPath path;

  g_test_summary ("A verified UDP path is direct or local, and the listener's socket "
                  "sees the application's first datagram, not the checks");
  if (fixture->server == NULL)
    return;

  alice = new_client (fixture, "alice");
  listening = listen_udp (alice);
  g_assert_cmpint (rndz_socket_get_path (listening), ==, RNDZ_PATH_UNKNOWN);

  bob = new_client (fixture, "bob");
  rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  run_until (&result.done, 5000);
  g_assert_no_error (result.error);
  path = rndz_socket_get_path (G_SOCKET (result.object));
  g_assert_true (path == RNDZ_PATH_DIRECT || path == RNDZ_PATH_LOCAL);

  g_assert_cmpint (g_socket_send (G_SOCKET (result.object), "first", 5, NULL, &error), ==, 5);
  g_assert_no_error (error);
  first = receive_datagram (listening, &from);
  g_assert_cmpstr (first, ==, "first");

  result_clear (&result);
}

static void
test_udp_relayed (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *hello = NULL;
  g_autofree char *reply = NULL;
  Result relayed = { 0 };
  Result result = { 0 };

  g_test_summary ("Without a direct path, a UDP pair goes through the relay: both get "
                  "sockets that carry only the application's datagrams");
  if (fixture->server == NULL)
    return;

  fixture_enable_relay (fixture);
  alice = new_client (fixture, "alice");
  g_signal_connect (alice, "peer-socket", G_CALLBACK (peer_socket_cb), &relayed);
  listening = listen_udp (alice);

  bob = new_client (fixture, "bob");
  rndz_client_set_direct_timeout (bob, 200);
  rndz_connect_try_direct = FALSE;
  rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  run_until (&result.done, 5000);
  rndz_connect_try_direct = TRUE;
  g_assert_no_error (result.error);
  g_assert_cmpint (rndz_socket_get_path (G_SOCKET (result.object)), ==, RNDZ_PATH_RELAYED);
  run_until (&relayed.done, 5000);
  g_assert_cmpstr (relayed.peer_id, ==, "bob");
  g_assert_cmpint (rndz_socket_get_path (G_SOCKET (relayed.object)), ==, RNDZ_PATH_RELAYED);

  g_assert_cmpint (g_socket_send (G_SOCKET (result.object), "hello", 5, NULL, &error), ==, 5);
  g_assert_no_error (error);
  hello = receive_datagram (G_SOCKET (relayed.object), NULL);
  g_assert_cmpstr (hello, ==, "hello");
  g_assert_cmpint (g_socket_send (G_SOCKET (relayed.object), "world", 5, NULL, &error), ==, 5);
  g_assert_no_error (error);
  reply = receive_datagram (G_SOCKET (result.object), NULL);
  g_assert_cmpstr (reply, ==, "world");

  result_clear (&result);
  result_clear (&relayed);
}

static void
exchange_over_sockets (GSocketConnection *a,
                       GSocketConnection *b)
{
  GSocket *sa = g_socket_connection_get_socket (a);
  GSocket *sb = g_socket_connection_get_socket (b);
  g_autoptr(GError) error = NULL;
  char buf[16] = { 0 };

  g_assert_cmpint (g_socket_send (sa, "ping!", 5, NULL, &error), ==, 5);
  g_assert_no_error (error);
  rndz_test_read_exactly (NULL, sb, buf, 5, 5000);
  g_assert_cmpstr (buf, ==, "ping!");
  g_assert_cmpint (g_socket_send (sb, "pong!", 5, NULL, &error), ==, 5);
  g_assert_no_error (error);
  rndz_test_read_exactly (NULL, sa, buf, 5, 5000);
  g_assert_cmpstr (buf, ==, "pong!");
}

static void
test_tcp_relayed (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  Result accepted = { 0 };
  Result connected = { 0 };
  GSocket *socket;

  g_test_summary ("Without a direct path, a TCP pair goes through the relay: both get "
                  "connections that carry the application's bytes");
  if (fixture->server == NULL)
    return;

  fixture_enable_relay (fixture);
  alice = new_client (fixture, "alice");
  listen_tcp (alice);
  rndz_client_accept_async (alice, NULL, accept_cb, &accepted);

  bob = new_client (fixture, "bob");
  rndz_client_set_direct_timeout (bob, 200);
  rndz_connect_try_direct = FALSE;
  rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &connected);
  run_until (&connected.done, 5000);
  rndz_connect_try_direct = TRUE;
  g_assert_no_error (connected.error);
  run_until (&accepted.done, 5000);
  g_assert_no_error (accepted.error);
  g_assert_cmpstr (accepted.peer_id, ==, "bob");

  socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (connected.object));
  g_assert_cmpint (rndz_socket_get_path (socket), ==, RNDZ_PATH_RELAYED);
  socket = g_socket_connection_get_socket (G_SOCKET_CONNECTION (accepted.object));
  g_assert_cmpint (rndz_socket_get_path (socket), ==, RNDZ_PATH_RELAYED);

  /* The relay is in this process: its main context must run meanwhile */
  exchange_over_sockets (G_SOCKET_CONNECTION (connected.object), G_SOCKET_CONNECTION (accepted.object));

  result_clear (&accepted);
  result_clear (&connected);
}

/* No relay (the server's, or the client's own choice): a clean error,
 * as soon as the direct timeout is over */
static void
test_no_relay (Fixture       *fixture,
               gconstpointer  user_data)
{
  RndzTransport transport = transport_of (user_data);
  gboolean server_relays = g_str_has_suffix (g_test_get_path (), "client-off");
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) listening = NULL;
  Result result = { 0 };
  gint64 start, elapsed_ms;

  g_test_summary ("Without a direct path and without a relay, reaching a peer fails "
                  "with RNDZ_ERROR_NO_PATH right after the direct timeout");
  if (fixture->server == NULL)
    return;

  if (server_relays)
    fixture_enable_relay (fixture);
  alice = new_client (fixture, "alice");
  if (transport == RNDZ_TRANSPORT_UDP)
    listening = listen_udp (alice);
  else
    listen_tcp (alice);

  bob = new_client (fixture, "bob");
  rndz_client_set_direct_timeout (bob, 300);
  g_assert_true (rndz_client_get_relay (bob));
  if (server_relays)
    rndz_client_set_relay (bob, FALSE);
  rndz_connect_try_direct = FALSE;
  start = g_get_monotonic_time ();
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (bob, "alice", NULL, connect_udp_cb, &result);
  else
    rndz_client_connect_tcp_async (bob, "alice", NULL, connect_tcp_cb, &result);
  run_until (&result.done, 5000);
  rndz_connect_try_direct = TRUE;
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;

  g_assert_error (result.error, RNDZ_ERROR, RNDZ_ERROR_NO_PATH);
  g_assert_null (result.object);
  g_assert_cmpint (elapsed_ms, >=, 300);
  g_assert_cmpint (elapsed_ms, <, 2000);
  result_clear (&result);
}

static void
test_relay_properties (void)
{
  const char *servers[] = { "127.0.0.1:1", NULL };
  g_autoptr(RndzClient) client = rndz_client_new ("props", servers);
  gboolean relay;
  guint direct_timeout;

  g_test_summary ("The relay and direct-timeout properties have their defaults and notify");

  g_object_get (client, "relay", &relay, "direct-timeout", &direct_timeout, NULL);
  g_assert_true (relay);
  g_assert_cmpuint (direct_timeout, ==, 3000);
  g_object_set (client, "relay", FALSE, "direct-timeout", 500, NULL);
  g_assert_false (rndz_client_get_relay (client));
  g_assert_cmpuint (rndz_client_get_direct_timeout (client), ==, 500);
}

/* Every timeout and interval is in milliseconds, as in GLib: the
 * defaults say so, and a listen to a server that never answers gives up
 * after the 1500 ms it was given, neither after a whole second nor after
 * 1500 seconds */
static void
test_properties (void)
{
  g_autoptr(GSocket) silent = NULL;
  g_autoptr(RndzClient) client = NULL;
  g_autofree char *silent_addr = NULL;
  const char *servers[] = { NULL, NULL };
  guint timeout, keepalive, direct_timeout;
  Result result = { 0 };
  RndzAddr bound;
  gint64 start, elapsed_ms;

  g_test_summary ("The client's timeouts are in milliseconds: the defaults, and a "
                  "listen to a silent server that times out after 1500 ms");

  /* Bound, so that the pings get no ICMP error, and never read */
  silent = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, &bound);
  silent_addr = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, bound.port);
  servers[0] = silent_addr;
  client = rndz_client_new ("props", servers);

  g_object_get (client, "timeout", &timeout, "keepalive-interval", &keepalive,
                "direct-timeout", &direct_timeout, NULL);
  g_assert_cmpuint (timeout, ==, 10000);
  g_assert_cmpuint (keepalive, ==, 10000);
  g_assert_cmpuint (direct_timeout, ==, 3000);

  rndz_client_set_keepalive_interval (client, 2500);
  g_assert_cmpuint (rndz_client_get_keepalive_interval (client), ==, 2500);
  g_object_set (client, "timeout", 1500, NULL);
  g_assert_cmpuint (rndz_client_get_timeout (client), ==, 1500);

  start = g_get_monotonic_time ();
  rndz_client_listen_udp_async (client, NULL, listen_udp_cb, &result);
  run_until (&result.done, 5000);
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("Gave up after %" G_GINT64_FORMAT " ms", elapsed_ms);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (elapsed_ms, >=, 1400);
  g_assert_cmpint (elapsed_ms, <, 2500);
  g_assert_cmpint (rndz_client_get_state (client), ==, RNDZ_CLIENT_STATE_IDLE);
  result_clear (&result);
}

static void
test_candidates (void)
{
  g_autoptr(RndzPeerContext) peer = rndz_peer_context_new (NULL);
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) bound = g_inet_socket_address_new (loopback, 0);
  RndzAddr cands[RNDZ_MAX_CANDIDATES];
  guint n;

  g_test_summary ("Candidates are the local addresses with the given port, never loopback");

  n = rndz_peer_context_get_candidates (peer, G_SOCKET_FAMILY_IPV4, 4242, cands);
  g_assert_cmpuint (n, <=, RNDZ_MAX_CANDIDATES);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (cands[i].family, ==, 4);
      g_assert_cmpuint (cands[i].port, ==, 4242);
      g_assert_cmpuint (cands[i].bytes[0], !=, 127);
    }

  /* A dual-stack socket offers both families, in turn, IPv6 first */
  n = rndz_peer_context_get_candidates (peer, G_SOCKET_FAMILY_IPV6, 4242, cands);
  g_assert_cmpuint (n, <=, RNDZ_MAX_CANDIDATES);
  {
    gboolean any4 = FALSE, any6 = FALSE;

    for (guint i = 0; i < n; i++)
      {
        static const guint8 loopback6[16] = { [15] = 1 };

        g_assert_cmpuint (cands[i].port, ==, 4242);
        any4 |= cands[i].family == 4;
        any6 |= cands[i].family == 6;
        if (cands[i].family == 4)
          g_assert_cmpuint (cands[i].bytes[0], !=, 127);
        else
          {
            g_assert_cmpuint (cands[i].family, ==, 6);
            g_assert_true (memcmp (cands[i].bytes, loopback6, 16) != 0);
            /* Not link-local (fe80::/10) */
            g_assert_false (cands[i].bytes[0] == 0xfe && (cands[i].bytes[1] & 0xc0) == 0x80);
          }
      }
    if (any4 && any6)
      {
        g_assert_cmpuint (cands[0].family, ==, 6);
        g_assert_cmpuint (cands[1].family, ==, 4);
      }
    /* The IPv4 addresses are those of an IPv4 socket */
    if (any4)
      {
        RndzAddr cands4[RNDZ_MAX_CANDIDATES];
        guint n4 = rndz_peer_context_get_candidates (peer, G_SOCKET_FAMILY_IPV4, 4242, cands4);

        g_assert_cmpuint (n4, >, 0);
        g_assert_true (rndz_addr_equal (&cands4[0], &cands[any6 ? 1 : 0]));
      }
  }

  /* Bound to loopback: nothing to offer */
  peer->local_address = g_object_ref (G_INET_SOCKET_ADDRESS (bound));
  g_assert_cmpuint (rndz_peer_context_get_candidates (peer, G_SOCKET_FAMILY_IPV4, 4242, cands), ==, 0);
}

typedef struct
{
  guint state;
  guint local_port;
  guint last_pong;
  guint16 port_seen;        /* rndz_client_get_local_port() at the last notify */
} Notifies;

static void
count_notify_cb (GObject    *object,
                 GParamSpec *pspec,
                 gpointer    user_data)
{
  Notifies *notifies = user_data;

  if (g_str_equal (pspec->name, "state"))
    notifies->state++;
  else if (g_str_equal (pspec->name, "local-port"))
    {
      notifies->local_port++;
      notifies->port_seen = rndz_client_get_local_port (RNDZ_CLIENT (object));
    }
  else if (g_str_equal (pspec->name, "last-pong"))
    notifies->last_pong++;
}

static void
test_notify (Fixture       *fixture,
             gconstpointer  user_data)
{
  g_autoptr(RndzClient) alice = new_client (fixture, "alice");
  g_autoptr(GSocket) listening = NULL;
  Notifies notifies = { 0 };
  guint16 port;

  g_test_summary ("Listening notifies state, local-port and last-pong; stopping "
                  "notifies state and local-port again");

  g_signal_connect (alice, "notify", G_CALLBACK (count_notify_cb), &notifies);
  listening = listen_udp (alice);
  port = rndz_client_get_local_port (alice);
  g_assert_cmpuint (port, !=, 0);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_REGISTERED);
  g_assert_cmpuint (notifies.state, >=, 1);
  g_assert_cmpuint (notifies.local_port, ==, 1);
  g_assert_cmpuint (notifies.port_seen, ==, port);
  g_assert_cmpuint (notifies.last_pong, >=, 1);

  notifies.state = 0;
  rndz_client_stop (alice);
  g_assert_cmpint (rndz_client_get_state (alice), ==, RNDZ_CLIENT_STATE_IDLE);
  g_assert_cmpuint (notifies.state, ==, 1);
  g_assert_cmpuint (notifies.local_port, ==, 2);
  g_assert_cmpuint (notifies.port_seen, ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/client/udp/rendezvous-ipv4", Fixture, &data_ipv4, fixture_setup, test_udp_rendezvous, fixture_teardown);
  g_test_add ("/client/udp/rendezvous-ipv6", Fixture, &data_ipv6, fixture_setup, test_udp_rendezvous, fixture_teardown);
  g_test_add ("/client/tcp/rendezvous-ipv4", Fixture, &data_ipv4, fixture_setup, test_tcp_rendezvous, fixture_teardown);
  g_test_add ("/client/tcp/rendezvous-ipv6", Fixture, &data_ipv6, fixture_setup, test_tcp_rendezvous, fixture_teardown);
  g_test_add ("/client/udp/several-connectors", Fixture, NULL, fixture_setup, test_udp_several_connectors, fixture_teardown);
  g_test_add ("/client/tcp/several-connectors", Fixture, NULL, fixture_setup, test_tcp_several_connectors, fixture_teardown);
  add_transport_tests ("unknown-peer", test_unknown_peer);
  add_transport_tests ("vanished-listener", test_vanished_listener);
  add_transport_tests ("cancel", test_cancel);
  add_transport_tests ("stop-says-bye", test_stop_says_bye);
  add_transport_tests ("server-restart", test_server_restart);
  add_transport_tests ("two-servers-one-down", test_two_servers_one_down);
  add_transport_tests ("refuse", test_refuse);
  add_transport_tests ("server-unreachable", test_server_unreachable);
  g_test_add ("/client/udp/timeout", Fixture, NULL, fixture_setup, test_timeout, fixture_teardown);
  g_test_add ("/client/tcp/accept-cancel", Fixture, NULL, fixture_setup, test_accept_cancel, fixture_teardown);
  g_test_add ("/client/invalid-peer-id", Fixture, NULL, fixture_setup, test_invalid_peer_id, fixture_teardown);
  g_test_add ("/client/listen-both-transports", Fixture, NULL, fixture_setup, test_listen_twice, fixture_teardown);
  g_test_add ("/client/invalid-own-id", Fixture, NULL, fixture_setup, test_invalid_own_id, fixture_teardown);
  add_transport_tests ("rate-limited", test_rate_limited);
  add_transport_tests ("auth-required", test_auth_required);
  g_test_add ("/client/tcp/sync-api", Fixture, NULL, fixture_setup, test_sync_api, fixture_teardown);
  g_test_add ("/client/udp/sync-from-another-thread", Fixture, NULL, fixture_setup, test_thread_model, fixture_teardown);
  g_test_add_func ("/client/bad-server-address", test_bad_server_address);
  g_test_add_func ("/client/socket-receive-bytes", test_socket_receive_bytes);
  g_test_add ("/client/udp/hostname", Fixture, &data_ipv4, fixture_setup, test_hostname, fixture_teardown);
  g_test_add_data_func ("/client/udp/dual-stack-server", &data_udp, test_dual_stack);
  g_test_add_data_func ("/client/tcp/dual-stack-server", &data_tcp, test_dual_stack);
  g_test_add ("/client/udp/path-direct", Fixture, NULL, fixture_setup, test_udp_path_direct, fixture_teardown);
  g_test_add ("/client/udp/relayed", Fixture, NULL, fixture_setup, test_udp_relayed, fixture_teardown);
  g_test_add ("/client/tcp/relayed", Fixture, NULL, fixture_setup, test_tcp_relayed, fixture_teardown);
  g_test_add ("/client/udp/no-relay/server-off", Fixture, &data_udp, fixture_setup, test_no_relay, fixture_teardown);
  g_test_add ("/client/tcp/no-relay/server-off", Fixture, &data_tcp, fixture_setup, test_no_relay, fixture_teardown);
  g_test_add ("/client/udp/no-relay/client-off", Fixture, &data_udp, fixture_setup, test_no_relay, fixture_teardown);
  g_test_add ("/client/tcp/no-relay/client-off", Fixture, &data_tcp, fixture_setup, test_no_relay, fixture_teardown);
  g_test_add_func ("/client/relay-properties", test_relay_properties);
  g_test_add_func ("/client/properties", test_properties);
  g_test_add ("/client/udp/notify", Fixture, NULL, fixture_setup, test_notify, fixture_teardown);
  g_test_add_func ("/client/candidates", test_candidates);

  return g_test_run ();
}
