/* test-tcp-punch.c: the sockets that punch TCP paths through loss
 *
 * SPDX-License-Identifier: MIT
 *
 * Through NATs that lose packets, a lost SYN of a punch goes again only
 * when the kernel sends it (after 1 s, then 3 s): while it punches, a
 * socket caps its RTO at 1 s where the kernel lets it (Linux 6.15,
 * TCP_RTO_MAX_MS), and gives the application the kernel's own limit
 * back. Towards a server, a SYN without an answer goes again from a new
 * socket after RNDZ_CONNECT_REDIAL_MS. Measured in tests/netns/test-nat.sh
 * (the loss cases).
 */

#include <rndz-glib/rndz.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "rndz-connect-attempt-private.h"
#include "rndz-server-link-private.h"
#include "rndz-test-util.h"

#ifndef TCP_RTO_MAX_MS
#define TCP_RTO_MAX_MS 44
#endif

static int
rto_max (GSocket *socket)
{
  int value = -1;

  g_assert_true (g_socket_get_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, &value, NULL));
  return value;
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
  g_autoptr(GSocketAddress) any = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  g_autoptr(GSocketAddress) local = NULL;
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

  server = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (server, any, FALSE, &error));
  g_assert_true (g_socket_listen (server, &error));
  local = g_socket_get_local_address (server, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&to, local));

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
  g_autoptr(GSocketAddress) any = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(RndzServerLink) link = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr to;
  gint64 start, ready = 0;

  g_test_summary ("A client's SYN to a server that got no answer goes again well "
                  "before the kernel's 1 s");

  server = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_socket_set_listen_backlog (server, 0);
  g_assert_true (g_socket_bind (server, any, FALSE, &error));
  g_assert_true (g_socket_listen (server, &error));
  local = g_socket_get_local_address (server, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&to, local));

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

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tcp-punch/rto-capped", test_rto_capped);
  g_test_add_func ("/tcp-punch/server-syn-lost", test_server_syn_lost);

  return g_test_run ();
}
