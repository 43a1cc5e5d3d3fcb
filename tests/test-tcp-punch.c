/* test-tcp-punch.c: the sockets that punch TCP paths through loss
 *
 * SPDX-License-Identifier: MIT
 *
 * Through NATs that lose packets, a lost SYN of a punch goes again only
 * when the kernel sends it (after 1 s, then 3 s): while it punches, a
 * socket caps its RTO at 1 s where the kernel lets it (Linux 6.15,
 * TCP_RTO_MAX_MS), and gives the application the kernel's own limit
 * back. Towards a server, a SYN without an answer goes again from a new
 * socket after RNDZ_CONNECT_REDIAL_MS, and once connected, both ends of
 * the link cap their RTO at 1 s too, for as long as the link lives.
 * Measured in tests/netns/test-nat.sh (the loss cases).
 */

#include <rndz-glib/rndz.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "rndz-connect-attempt-private.h"
#include "rndz-server-link-private.h"
#include "rndz-server-private.h"
#include "rndz-socket-private.h"
#include "rndz-test-util.h"

static int
rto_max (GSocket *socket)
{
  int value = -1;

  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, &value, NULL));
  return value;
}

static int
user_timeout (GSocket *socket)
{
  int value = -1;

  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_USER_TIMEOUT, &value, NULL));
  return value;
}

/* Whether the kernel lets a socket cap its RTO; the test is skipped if not */
static gboolean
have_rto_max (void)
{
  g_autoptr(GSocket) socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, NULL);
  int value;

  g_assert_nonnull (socket);
  if (g_socket_get_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, &value, NULL))
    return TRUE;
  g_test_skip ("The kernel has no TCP_RTO_MAX_MS (Linux 6.15)");
  return FALSE;
}

/* A listening socket on loopback, and its address; @backlog: -1 for the default */
static GSocket *
loopback_listener (int       backlog,
                   RndzAddr *addr)
{
  g_autoptr(GSocketAddress) any = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) error = NULL;
  GSocket *server;

  server = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  if (backlog >= 0)
    g_socket_set_listen_backlog (server, backlog);
  g_assert_true (g_socket_bind (server, any, FALSE, &error));
  g_assert_true (g_socket_listen (server, &error));
  local = g_socket_get_local_address (server, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (addr, local));
  return server;
}

static void
connected_cb (GSocket      *socket,
              const GError *error,
              gpointer      user_data)
{
  gboolean *done = user_data;

  g_assert_no_error (error);
  *done = TRUE;
}

static void
test_rto_capped (void)
{
  g_autoptr(GSocket) server = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  RndzConnectAttempt *attempt;
  RndzAddr to;
  gboolean done = FALSE;
  int before;

  g_test_summary ("A punching TCP socket sends its SYN again at least every second, "
                  "and the application gets the kernel's RTO limit back");

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  if (!g_socket_get_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, &before, NULL))
    {
      g_test_skip ("The kernel has no TCP_RTO_MAX_MS (Linux 6.15)");
      return;
    }
  g_assert_cmpint (before, >, 1000);

  server = loopback_listener (-1, &to);

  attempt = rndz_connect_attempt_new (socket, &to, NULL, connected_cb, &done);
  g_assert_cmpint (rto_max (socket), ==, 1000);
  rndz_test_wait_true (NULL, &done, 5000);
  rndz_connect_attempt_free (attempt);
  g_assert_cmpint (rto_max (socket), ==, 1000);

  /* Lifted a while after the application got the connection */
  rndz_connect_attempt_hand_over (socket, NULL, 100);
  g_assert_cmpint (rto_max (socket), ==, 1000);
  rndz_test_run_for (NULL, 300);
  g_assert_cmpint (rto_max (socket), ==, before);
  /* Once is enough */
  rndz_connect_attempt_hand_over (socket, NULL, 0);
  g_assert_cmpint (rto_max (socket), ==, before);
}

/* A lost SYN to a server: a listening socket whose accept queue is full
 * drops SYNs, as a lossy NAT would. The queue empties after
 * QUEUE_FULL_MS: with the redial the link opens at the next one (below
 * READY_MS); with the kernel's pace only after 1 s. */
#define QUEUE_FULL_MS 300
#define READY_MS 800

static void
link_cb (RndzServerLink      *link,
         RndzServerLinkEvent  event,
         const RndzMessage   *msg,
         const GError        *error,
         gpointer             user_data)
{
  gint64 *ready = user_data;

  g_assert_no_error (error);
  if (event == RNDZ_SERVER_LINK_READY)
    *ready = g_get_monotonic_time ();
}

static gboolean
ready_cb (gpointer user_data)
{
  return *(gint64 *) user_data != 0;
}

static void
test_server_syn_lost (void)
{
  g_autoptr(RndzPeerContext) peer = rndz_peer_context_new (NULL);
  g_autoptr(GSocket) server = NULL;
  g_autoptr(GSocket) filler = NULL;
  g_autoptr(GSocket) queued = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(RndzServerLink) link = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr to;
  gint64 start, ready = 0;

  g_test_summary ("A client's SYN to a server that got no answer goes again well "
                  "before the kernel's 1 s");

  server = loopback_listener (0, &to);
  local = rndz_addr_to_socket_address (&to, G_SOCKET_FAMILY_INVALID);

  /* One connection fills the queue: the next SYNs are dropped */
  filler = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_true (g_socket_connect (filler, local, NULL, &error));
  g_assert_no_error (error);

  link = rndz_server_link_new (peer, RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, &to,
                               link_cb, &ready);
  start = g_get_monotonic_time ();
  g_assert_true (rndz_server_link_open (link, 0, &error));
  g_assert_no_error (error);
  rndz_test_run_for (NULL, QUEUE_FULL_MS);
  g_assert_cmpint (ready, ==, 0);

  queued = g_socket_accept (server, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_test_run_until (NULL, ready_cb, &ready, 5000));
  g_assert_cmpint ((ready - start) / 1000, <, READY_MS);
}

/* A peer's link to a server, once connected: a lost frame (a request,
 * an answer) goes again at least every second, and the link is given up
 * no sooner than the listener would give it up (rndz_socket_limit_tcp_backoff()) */
static void
test_link_backoff (void)
{
  g_autoptr(RndzPeerContext) peer = rndz_peer_context_new (NULL);
  g_autoptr(GSocket) server = NULL;
  g_autoptr(GSocket) accepted = NULL;
  g_autoptr(RndzServerLink) link = NULL;
  g_autoptr(GError) error = NULL;
  GSocket *socket;
  RndzAddr to;
  gint64 ready = 0;

  g_test_summary ("A peer's TCP link to a server sends a lost frame again at least "
                  "every second, and lives as long as the listener's keepalive says");
  if (!have_rto_max ())
    return;

  peer->keepalive_ms = 4000;
  server = loopback_listener (-1, &to);
  link = rndz_server_link_new (peer, RNDZ_TRANSPORT_TCP, G_SOCKET_FAMILY_IPV4, &to,
                               link_cb, &ready);
  g_assert_true (rndz_server_link_open (link, 0, &error));
  g_assert_no_error (error);
  /* While it connects, the kernel's own pace: a server that is not there
   * gets no SYN a second */
  g_assert_cmpint (rto_max (rndz_server_link_get_socket (link)), >, RNDZ_LINK_RTO_MAX_MS);
  accepted = g_socket_accept (server, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_test_run_until (NULL, ready_cb, &ready, 5000));

  socket = rndz_server_link_get_socket (link);
  g_assert_nonnull (socket);
  g_assert_cmpint (rto_max (socket), ==, RNDZ_LINK_RTO_MAX_MS);
  /* Two keepalives without a pong, and a second more: as the listener */
  g_assert_cmpint (user_timeout (socket), ==, 2 * 4000 + 1000);
  g_assert_cmpuint (rndz_peer_context_get_server_silence_ms (peer), ==, 2 * 4000 + 1000);
}

/* The server's side of the same links: the forward and the redirect */
static void
test_server_backoff (void)
{
  g_autoptr(RndzServer) rndz_server = rndz_server_new ();
  g_autoptr(GSocket) server = NULL;
  g_autoptr(GSocket) client = NULL;
  g_autoptr(GSocket) accepted = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr to;

  g_test_summary ("The server's TCP connections to peers send a lost frame again at least "
                  "every second, and live as long as the server keeps a silent peer");
  if (!have_rto_max ())
    return;

  rndz_server_set_peer_timeout (rndz_server, 7000);
  server = loopback_listener (-1, &to);
  address = rndz_addr_to_socket_address (&to, G_SOCKET_FAMILY_INVALID);
  client = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (client, address, NULL, &error));
  g_assert_no_error (error);
  accepted = g_socket_accept (server, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (rto_max (accepted), >, RNDZ_LINK_RTO_MAX_MS);

  rndz_server_add_connection (rndz_server, accepted, NULL);
  g_assert_false (g_socket_is_closed (accepted));
  g_assert_cmpint (rto_max (accepted), ==, RNDZ_LINK_RTO_MAX_MS);
  g_assert_cmpint (user_timeout (accepted), ==, 7000);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tcp-punch/rto-capped", test_rto_capped);
  g_test_add_func ("/tcp-punch/server-syn-lost", test_server_syn_lost);
  g_test_add_func ("/tcp-punch/link-backoff", test_link_backoff);
  g_test_add_func ("/tcp-punch/server-backoff", test_server_backoff);

  return g_test_run ();
}
