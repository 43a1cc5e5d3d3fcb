/* test-network.c: a listener when the network changes (issue 19, item 2)
 *
 * SPDX-License-Identifier: MIT
 *
 * GNetworkMonitor::network-changed makes a listening client register
 * again at once, instead of at its next keepalive. On loopback the
 * address does not change, so the test makes the servers forget the
 * listener instead (a new server on the same port, as after a crash):
 * then only a fresh registration lets a connector find it. The signal
 * is emitted on the default monitor, as GIO would.
 */

#include <gio/gio.h>

#include "rndz-test-util.h"

#define WAIT_MS 5000
/* Long enough that no keepalive falls within a test */
#define KEEPALIVE_MS 60000

typedef struct
{
  RndzTransport transport;
  RndzServer *server;
  guint16 port;
  char *address;
  RndzClient *alice;
  GSocket *listening;
  GArray *states;               /* RndzClientState, as notified */
} Fixture;

static void
state_cb (GObject    *object,
          GParamSpec *pspec,
          gpointer    user_data)
{
  Fixture *f = user_data;
  RndzClientState state = rndz_client_get_state (RNDZ_CLIENT (object));

  g_array_append_val (f->states, state);
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  const char *servers[2] = { NULL, NULL };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  f->transport = GPOINTER_TO_UINT (data);
  f->states = g_array_new (FALSE, FALSE, sizeof (RndzClientState));
  f->server = rndz_server_new ();
  f->port = rndz_test_server_listen (f->server, G_SOCKET_FAMILY_IPV4, 0);
  f->address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, f->port);
  servers[0] = f->address;

  f->alice = rndz_client_new ("alice", servers);
  rndz_client_set_keepalive_interval (f->alice, KEEPALIVE_MS);
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
  g_assert_cmpint (rndz_client_get_state (f->alice), ==, RNDZ_CLIENT_STATE_REGISTERED);
  g_signal_connect (f->alice, "notify::state", G_CALLBACK (state_cb), f);
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  g_clear_object (&f->listening);
  g_clear_object (&f->alice);
  g_clear_object (&f->server);
  g_clear_pointer (&f->address, g_free);
  g_clear_pointer (&f->states, g_array_unref);
  rndz_test_drain (NULL);
}

/* A new server on the same port: it knows nobody */
static void
restart_server (Fixture *f)
{
  g_clear_object (&f->server);
  rndz_test_drain (NULL);
  f->server = rndz_server_new ();
  rndz_test_server_listen (f->server, G_SOCKET_FAMILY_IPV4, f->port);
}

/* Bob asks for alice: TRUE if he reaches her */
static gboolean
bob_reaches_alice (Fixture  *f,
                   GError  **error)
{
  const char *servers[2] = { f->address, NULL };
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GObject) path = NULL;

  rndz_client_set_timeout (bob, 2000);
  if (f->transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_connect_udp_async (bob, "alice", NULL, rndz_test_async_cb, &result);
      path = (GObject *) rndz_client_connect_udp_finish (bob, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                         error);
    }
  else
    {
      rndz_client_connect_tcp_async (bob, "alice", NULL, rndz_test_async_cb, &result);
      path = (GObject *) rndz_client_connect_tcp_finish (bob, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                         error);
    }
  return path != NULL;
}

static gboolean
registered_again (gpointer user_data)
{
  Fixture *f = user_data;

  return rndz_client_get_state (f->alice) == RNDZ_CLIENT_STATE_REGISTERED &&
         f->states->len >= 2;
}

static void
test_changed (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  gint64 start;

  g_test_summary ("After network-changed, a listener registers again at once: a server "
                  "that forgot it knows it again within a second, and the state says "
                  "reconnecting, then registered");

  restart_server (f);
  start = g_get_monotonic_time ();
  g_signal_emit_by_name (g_network_monitor_get_default (), "network-changed", TRUE);
  g_assert_true (rndz_test_run_until (NULL, registered_again, f, 1000));
  g_test_message ("Registered again after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - start) / 1000);
  g_assert_cmpint (g_array_index (f->states, RndzClientState, 0), ==,
                   RNDZ_CLIENT_STATE_RECONNECTING);
  g_assert_cmpint (g_array_index (f->states, RndzClientState, f->states->len - 1), ==,
                   RNDZ_CLIENT_STATE_REGISTERED);

  g_assert_true (bob_reaches_alice (f, &error));
  g_assert_no_error (error);
}

static void
test_unchanged (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("Without network-changed, a server that forgot the listener does not "
                  "find it before the next keepalive (what the test above relies on)");

  restart_server (f);
  rndz_test_run_for (NULL, 300);
  g_assert_false (bob_reaches_alice (f, &error));
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_PEER_NOT_FOUND);
  g_assert_cmpint (rndz_client_get_state (f->alice), ==, RNDZ_CLIENT_STATE_REGISTERED);
}

static void
test_kept (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("After network-changed, a TCP listener whose connection still works "
                  "keeps it, and is registered again at once");

  g_signal_emit_by_name (g_network_monitor_get_default (), "network-changed", TRUE);
  g_assert_true (rndz_test_run_until (NULL, registered_again, f, 1000));
  /* The probe's deadline passes: the connection stays */
  rndz_test_run_for (NULL, 1500);
  g_assert_cmpuint (f->states->len, ==, 2);
  g_assert_true (bob_reaches_alice (f, &error));
  g_assert_no_error (error);
}

static void
test_burst (Fixture       *f,
            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;

  g_test_summary ("A burst of network-changed signals (one per route) starts the "
                  "registration once, after the burst");

  restart_server (f);
  for (guint i = 0; i < 20; i++)
    g_signal_emit_by_name (g_network_monitor_get_default (), "network-changed", TRUE);
  g_assert_true (rndz_test_run_until (NULL, registered_again, f, 1000));
  rndz_test_run_for (NULL, 200);
  /* reconnecting, registered: once */
  g_assert_cmpuint (f->states->len, ==, 2);
  g_assert_true (bob_reaches_alice (f, &error));
  g_assert_no_error (error);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/network/udp/changed", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_UDP),
              fixture_setup, test_changed, fixture_teardown);
  g_test_add ("/network/tcp/changed", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_TCP),
              fixture_setup, test_changed, fixture_teardown);
  g_test_add ("/network/udp/unchanged", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_UDP),
              fixture_setup, test_unchanged, fixture_teardown);
  g_test_add ("/network/tcp/kept", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_TCP),
              fixture_setup, test_kept, fixture_teardown);
  g_test_add ("/network/udp/burst", Fixture, GUINT_TO_POINTER (RNDZ_TRANSPORT_UDP),
              fixture_setup, test_burst, fixture_teardown);

  return g_test_run ();
}
