/* test-early-relay.c: the relay beside direct paths (issue 19, item 3)
 *
 * SPDX-License-Identifier: MIT
 *
 * Alice listens through a "NAT" of the test's own that rewrites her port:
 * a proxy between her and the server, which forwards her messages from a
 * port of its own (UDP: another socket; TCP: another connection). The
 * server then sees her at a port none of her candidates has, as behind a
 * port-rewriting NAT, and a requester should ask for the relay beside
 * the direct paths instead of after its direct timeout. Direct paths are
 * turned off (rndz_connect_try_direct), as for the relay tests: the
 * relay is the only way, and the time it takes tells when it was asked
 * for. Without the proxy, the same requester waits out the direct
 * timeout: that is what the early relay saves.
 */

#include <gio/gio.h>

#include "rndz-test-util.h"
#include "rndz-connect-private.h"
#include "rndz-source-private.h"

#define WAIT_MS 10000
#define DIRECT_TIMEOUT_MS 3000

typedef struct
{
  RndzTransport transport;
  RndzServer *server;
  char *address;
  GSocketAddress *server_address;

  /* UDP proxy: alice ↔ inside, outside ↔ server */
  GSocket *inside;
  GSocket *outside;
  GSocketAddress *alice_address;
  GSource *inside_source;
  GSource *outside_source;

  /* TCP proxy */
  GSocketService *service;
  GCancellable *cancellable;

  char *proxy_address;
  RndzClient *alice;
  GSocket *listening;
} Fixture;

static gboolean
inside_cb (GSocket      *socket,
           GIOCondition  condition,
           gpointer      user_data)
{
  Fixture *f = user_data;
  g_autoptr(GSocketAddress) from = NULL;
  char buf[2048];
  gssize n = g_socket_receive_from (socket, &from, buf, sizeof buf, NULL, NULL);

  if (n > 0)
    {
      g_set_object (&f->alice_address, from);
      g_socket_send_to (f->outside, f->server_address, buf, n, NULL, NULL);
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
outside_cb (GSocket      *socket,
            GIOCondition  condition,
            gpointer      user_data)
{
  Fixture *f = user_data;
  char buf[2048];
  gssize n = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);

  if (n > 0 && f->alice_address != NULL)
    g_socket_send_to (f->inside, f->alice_address, buf, n, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

static void
udp_proxy_start (Fixture *f)
{
  RndzAddr inside;

  f->inside = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, &inside);
  f->outside = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, NULL);
  f->inside_source = g_socket_create_source (f->inside, G_IO_IN, NULL);
  g_source_set_callback (f->inside_source, G_SOURCE_FUNC (inside_cb), f, NULL);
  g_source_attach (f->inside_source, NULL);
  f->outside_source = g_socket_create_source (f->outside, G_IO_IN, NULL);
  g_source_set_callback (f->outside_source, G_SOURCE_FUNC (outside_cb), f, NULL);
  g_source_attach (f->outside_source, NULL);
  f->proxy_address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, inside.port);
}

static void
splice_done_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_io_stream_splice_finish (result, NULL);
}

/* Each connection of alice's goes on to the server from a port of the
 * proxy's */
static gboolean
incoming_cb (GSocketService    *service,
             GSocketConnection *connection,
             GObject           *source_object,
             gpointer           user_data)
{
  Fixture *f = user_data;
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) upstream = NULL;

  g_socket_client_set_enable_proxy (client, FALSE);
  upstream = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (f->server_address), NULL, NULL);
  if (upstream == NULL)
    return TRUE;
  g_io_stream_splice_async (G_IO_STREAM (connection), G_IO_STREAM (upstream),
                            G_IO_STREAM_SPLICE_CLOSE_STREAM1 | G_IO_STREAM_SPLICE_CLOSE_STREAM2,
                            G_PRIORITY_DEFAULT, f->cancellable, splice_done_cb, NULL);
  return TRUE;
}

static void
tcp_proxy_start (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  guint16 port;

  f->cancellable = g_cancellable_new ();
  f->service = g_socket_service_new ();
  port = g_socket_listener_add_any_inet_port (G_SOCKET_LISTENER (f->service), NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (f->service, "incoming", G_CALLBACK (incoming_cb), f);
  g_socket_service_start (f->service);
  f->proxy_address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, port);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  guint16 port;

  f->transport = GPOINTER_TO_UINT (data);
  f->server = rndz_server_new ();
  rndz_server_set_relay_port (f->server, rndz_test_free_port ());
  port = rndz_test_server_listen (f->server, G_SOCKET_FAMILY_IPV4, 0);
  f->address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, port);
  f->server_address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  rndz_connect_try_direct = TRUE;
  g_clear_object (&f->listening);
  g_clear_object (&f->alice);
  if (f->cancellable != NULL)
    g_cancellable_cancel (f->cancellable);
  if (f->service != NULL)
    g_socket_service_stop (f->service);
  g_clear_object (&f->service);
  g_clear_object (&f->cancellable);
  rndz_source_clear (&f->inside_source);
  rndz_source_clear (&f->outside_source);
  g_clear_object (&f->inside);
  g_clear_object (&f->outside);
  g_clear_object (&f->alice_address);
  g_clear_object (&f->server);
  g_clear_object (&f->server_address);
  g_clear_pointer (&f->address, g_free);
  g_clear_pointer (&f->proxy_address, g_free);
  rndz_test_drain (NULL);
}

static void
proxy_start (Fixture *f)
{
  if (f->transport == RNDZ_TRANSPORT_UDP)
    udp_proxy_start (f);
  else
    tcp_proxy_start (f);
}

/* Alice listens, through the proxy if @rewritten */
static void
alice_listen (Fixture  *f,
              gboolean  rewritten)
{
  const char *servers[2] = { NULL, NULL };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  if (rewritten)
    proxy_start (f);
  servers[0] = rewritten ? f->proxy_address : f->address;

  f->alice = rndz_client_new ("alice", servers);
  g_object_set (f->alice, "port-mapping", FALSE, NULL);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_listen_udp_async (f->alice, NULL, rndz_test_async_cb, &result);
      f->listening = rndz_client_listen_udp_finish (f->alice, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                    &error);
    }
  else
    {
      rndz_client_listen_tcp_async (f->alice, NULL, rndz_test_async_cb, &result);
      rndz_client_listen_tcp_finish (f->alice, rndz_test_wait_async (NULL, &result, WAIT_MS), &error);
    }
  g_assert_no_error (error);
}

/* Bob reaches alice through the relay, talking to the server through
 * the proxy if @rewritten; returns how long it took, in ms */
static gint64
bob_reaches_alice (Fixture  *f,
                   gboolean  rewritten)
{
  const char *servers[2] = { rewritten ? f->proxy_address : f->address, NULL };
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  GSocket *path;

  rndz_client_set_direct_timeout (bob, DIRECT_TIMEOUT_MS);
  rndz_connect_try_direct = FALSE;
  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_connect_udp_async (bob, "alice", NULL, rndz_test_async_cb, &result);
      socket = rndz_client_connect_udp_finish (bob, rndz_test_wait_async (NULL, &result, WAIT_MS), &error);
      path = socket;
    }
  else
    {
      rndz_client_connect_tcp_async (bob, "alice", NULL, rndz_test_async_cb, &result);
      connection = rndz_client_connect_tcp_finish (bob, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                   &error);
      path = connection != NULL ? g_socket_connection_get_socket (connection) : NULL;
    }
  rndz_connect_try_direct = TRUE;
  g_assert_no_error (error);
  g_assert_cmpint (rndz_socket_get_path (path), ==, RNDZ_PATH_RELAYED);
  return (g_get_monotonic_time () - start) / 1000;
}

static void
test_early (Fixture       *f,
            gconstpointer  data)
{
  gint64 ms;

  g_test_summary ("When the target's NAT rewrites ports, the relay is asked for beside "
                  "the direct paths: it is there long before the direct timeout");

  alice_listen (f, TRUE);
  ms = bob_reaches_alice (f, FALSE);
  g_test_message ("Relayed after %" G_GINT64_FORMAT " ms (direct timeout %u ms)", ms,
                  DIRECT_TIMEOUT_MS);
  g_assert_cmpint (ms, <, DIRECT_TIMEOUT_MS / 2);
}

static void
test_late (Fixture       *f,
           gconstpointer  data)
{
  gint64 ms;

  g_test_summary ("When the target's NAT keeps ports, the relay waits for the direct "
                  "timeout (what the test above tells apart)");

  alice_listen (f, FALSE);
  ms = bob_reaches_alice (f, FALSE);
  g_test_message ("Relayed after %" G_GINT64_FORMAT " ms (direct timeout %u ms)", ms,
                  DIRECT_TIMEOUT_MS);
  g_assert_cmpint (ms, >=, DIRECT_TIMEOUT_MS);
}

static void
test_own_nat (Fixture       *f,
              gconstpointer  data)
{
  gint64 ms;

  g_test_summary ("When the requester's own NAT rewrites its port (the redirect's seen "
                  "says where the server saw it), it asks for the relay early too");

  alice_listen (f, FALSE);
  proxy_start (f);
  ms = bob_reaches_alice (f, TRUE);
  g_test_message ("Relayed after %" G_GINT64_FORMAT " ms (direct timeout %u ms)", ms,
                  DIRECT_TIMEOUT_MS);
  g_assert_cmpint (ms, <, DIRECT_TIMEOUT_MS / 2);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/early-relay/udp/early", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_UDP),
              fixture_setup, test_early, fixture_teardown);
  g_test_add ("/early-relay/udp/late", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_UDP),
              fixture_setup, test_late, fixture_teardown);
  g_test_add ("/early-relay/tcp/early", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_TCP),
              fixture_setup, test_early, fixture_teardown);
  g_test_add ("/early-relay/tcp/late", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_TCP),
              fixture_setup, test_late, fixture_teardown);
  g_test_add ("/early-relay/udp/own-nat", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_UDP),
              fixture_setup, test_own_nat, fixture_teardown);
  g_test_add ("/early-relay/tcp/own-nat", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_TCP),
              fixture_setup, test_own_nat, fixture_teardown);

  return g_test_run ();
}
