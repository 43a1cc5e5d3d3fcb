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
#include "rndz-test-proxy.h"

#define WAIT_MS 10000
#define DIRECT_TIMEOUT_MS 3000

typedef struct
{
  RndzTransport transport;
  RndzServer *server;
  guint16 port;
  char *address;

  /* The "NAT": a socket of its own towards the server per peer */
  RndzTestProxy *proxy;
  char *proxy_address;

  RndzClient *alice;
  GSocket *listening;
} Fixture;

static void
proxy_start (Fixture *f)
{
  f->proxy = rndz_test_proxy_new (f->transport, f->port, FALSE);
  f->proxy_address = rndz_test_proxy_get_address (f->proxy);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  f->transport = GPOINTER_TO_UINT (data);
  f->server = rndz_server_new ();
  rndz_server_set_relay_port (f->server, rndz_test_free_port ());
  f->port = rndz_test_server_listen (f->server, G_SOCKET_FAMILY_IPV4, 0);
  f->address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, f->port);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  rndz_connect_try_direct = TRUE;
  g_clear_object (&f->listening);
  g_clear_object (&f->alice);
  g_clear_pointer (&f->proxy, rndz_test_proxy_free);
  g_clear_object (&f->server);
  g_clear_pointer (&f->address, g_free);
  g_clear_pointer (&f->proxy_address, g_free);
  rndz_test_drain (NULL);
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
