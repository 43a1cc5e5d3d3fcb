/* test-limits.c: the server's defences against abuse
 *
 * SPDX-License-Identifier: MIT
 */

#include <rndz-glib/rndz.h>
#include <string.h>

#include "rndz-message-private.h"
#include "rndz-server-private.h"
#include "rndz-test-util.h"

/* Datagrams the server sent, captured without sockets */
typedef RndzTestSent Sent;

typedef struct
{
  RndzServer *server;
  GArray *sent;
} Fixture;

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  user_data)
{
  fixture->server = rndz_server_new ();
  fixture->sent = rndz_test_capture_sent (fixture->server);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_clear_object (&fixture->server);
  g_array_unref (fixture->sent);
}

static void
ping (Fixture    *fixture,
      const char *from,
      const char *id)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (msg.id, id, sizeof msg.id);
  rndz_test_feed (fixture->server, from, &msg, TRUE);
}

static void
test_no_amplification (Fixture       *fixture,
                       gconstpointer  user_data)
{
  RndzMessage msg;
  gsize len;

  g_test_summary ("The server never answers a datagram with a larger one: an unpadded "
                  "ping gets no pong, a padded one gets a pong no larger than itself");

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 7);
  g_strlcpy (msg.id, "a", sizeof msg.id);
  len = rndz_test_feed (fixture->server, "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                        &msg, FALSE);
  g_assert_cmpuint (fixture->sent->len, ==, 0);

  len = rndz_test_feed (fixture->server, "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                        &msg, TRUE);
  g_assert_cmpuint (fixture->sent->len, ==, 1);
  g_assert_cmpint (g_array_index (fixture->sent, Sent, 0).msg.type, ==, RNDZ_MESSAGE_PONG);
  g_assert_cmpuint (g_array_index (fixture->sent, Sent, 0).len, <=, len);

  /* An isync for an unknown peer: the error is no larger either */
  g_array_set_size (fixture->sent, 0);
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, G_MAXUINT32);
  g_strlcpy (msg.id, "b", sizeof msg.id);
  g_strlcpy (msg.target, "c", sizeof msg.target);
  len = rndz_test_feed (fixture->server, "192.0.2.1:1", &msg, FALSE);
  for (guint i = 0; i < fixture->sent->len; i++)
    g_assert_cmpuint (g_array_index (fixture->sent, Sent, i).len, <=, len);
}

static void
test_redirect_no_larger (Fixture       *fixture,
                         gconstpointer  user_data)
{
  RndzMessage msg;
  gsize isync_len;
  guint32 server_tid;

  g_test_summary ("The redirect that ends a UDP rendezvous is no larger than the isync");

  ping (fixture, "[2001:db8:1:2:3:4:5:6]:40000", "a-rather-long-peer-name-to-make-the-redirect-long");
  g_array_set_size (fixture->sent, 0);

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 99);
  g_strlcpy (msg.id, "b", sizeof msg.id);
  g_strlcpy (msg.target, "a-rather-long-peer-name-to-make-the-redirect-long", sizeof msg.target);
  isync_len = rndz_test_feed (fixture->server, "[2001:db8:2::2]:5000", &msg, TRUE);
  g_assert_cmpuint (fixture->sent->len, ==, 1);
  g_assert_cmpint (g_array_index (fixture->sent, Sent, 0).msg.type, ==, RNDZ_MESSAGE_FSYNC);
  server_tid = g_array_index (fixture->sent, Sent, 0).msg.tid;
  g_array_set_size (fixture->sent, 0);

  rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, server_tid);
  g_strlcpy (msg.id, "a-rather-long-peer-name-to-make-the-redirect-long", sizeof msg.id);
  g_strlcpy (msg.target, "b", sizeof msg.target);
  rndz_test_feed (fixture->server, "[2001:db8:1:2:3:4:5:6]:40000", &msg, FALSE);
  g_assert_cmpuint (fixture->sent->len, ==, 1);
  g_assert_cmpint (g_array_index (fixture->sent, Sent, 0).msg.type, ==, RNDZ_MESSAGE_REDIRECT);
  g_assert_cmpuint (g_array_index (fixture->sent, Sent, 0).len, <=, isync_len);
}

static void
isync (Fixture    *fixture,
       const char *from,
       guint32     tid,
       const char *target)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, tid);
  g_strlcpy (msg.id, "x", sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  rndz_test_feed (fixture->server, from, &msg, TRUE);
}

static void
test_rate_limit_source (Fixture       *fixture,
                        gconstpointer  user_data)
{
  RndzServerStats stats;
  gint64 start;
  guint allowed;

  g_test_summary ("One source cannot make the server send more than its burst of "
                  "fsyncs; another source is still served");

  rndz_server_set_request_rate (fixture->server, 5);
  ping (fixture, "192.0.2.10:1000", "victim-1");
  ping (fixture, "192.0.2.11:1000", "victim-2");

  /* 1000 requests from one host, with changing ports and targets. The
   * bucket holds 10 and refills by 5 a second while the loop runs (it
   * is slow under valgrind) */
  start = g_get_monotonic_time ();
  for (guint i = 0; i < 1000; i++)
    {
      g_autofree char *from = g_strdup_printf ("203.0.113.5:%u", 1000 + i);

      isync (fixture, from, i, i % 2 ? "victim-1" : "victim-2");
    }
  /* Whole tokens only: the integer division rounds the refill down, as
   * the bucket does */
  allowed = 10 + 5 * (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  g_assert_cmpuint (rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_FSYNC), <=, allowed);
  g_assert_cmpuint (rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_FSYNC), >=, 5);

  rndz_server_get_stats (fixture->server, &stats);
  g_assert_cmpuint (stats.rate_limited, >=, 1000 - allowed);

  /* Someone else, asking once, gets through */
  g_array_set_size (fixture->sent, 0);
  isync (fixture, "198.51.100.77:4000", 1, "victim-1");
  g_assert_cmpuint (rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_FSYNC), ==, 1);
}

static void
test_rate_limit_target (Fixture       *fixture,
                        gconstpointer  user_data)
{
  gint64 start;

  g_test_summary ("Many sources together cannot make the server flood one target: "
                  "the shared budget (5 a second, a burst of 10) and the newcomers' "
                  "(50 a second, a burst of 100) bound it");

  rndz_server_set_request_rate (fixture->server, 5);
  ping (fixture, "192.0.2.10:1000", "victim");

  start = g_get_monotonic_time ();
  for (guint i = 0; i < 500; i++)
    {
      g_autofree char *from = g_strdup_printf ("10.%u.%u.1:2000", i / 200, i % 200);

      isync (fixture, from, i, "victim");
    }
  g_assert_cmpuint (rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_FSYNC), <=,
                    10 + 100 + 55 * (g_get_monotonic_time () - start) / G_USEC_PER_SEC + 1);
}

static void
test_rate_limit_refills (Fixture       *fixture,
                         gconstpointer  user_data)
{
  g_test_summary ("A rate-limited source is served again after a while");

  rndz_server_set_request_rate (fixture->server, 20);
  ping (fixture, "192.0.2.10:1000", "target");
  for (guint i = 0; i < 100; i++)
    isync (fixture, "203.0.113.9:1", i, "target");
  g_array_set_size (fixture->sent, 0);

  /* A real-time wait: the bucket refills by the clock, not by events.
   * The one that holds it back is the (target, requester) pair's, 2 a
   * second. */
  g_usleep (G_USEC_PER_SEC * 6 / 10);
  isync (fixture, "203.0.113.9:1", 1000, "target");
  g_assert_cmpuint (rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_FSYNC), ==, 1);
}

/* TCP: silent connections */

static GSocketAddress *
listen_loopback (RndzServer *server)
{
  guint16 port = rndz_test_server_listen (server, G_SOCKET_FAMILY_IPV4, 0);

  return rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
}

static GSocket *
tcp_connect (GSocketAddress *server)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  g_socket_set_timeout (socket, 5);
  g_assert_true (g_socket_connect (socket, server, NULL, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&socket);
}

/* Registers over @socket and waits for the pong */
static gboolean
tcp_register (GSocket    *socket,
              const char *id)
{
  RndzMessage msg;
  char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;
  gssize n;
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 3);
  g_strlcpy (msg.id, id, sizeof msg.id);
  len = rndz_message_encode_frame (&msg, buf, sizeof buf);
  if (g_socket_send (socket, buf, len, NULL, NULL) != (gssize) len)
    return FALSE;

  g_socket_set_blocking (socket, FALSE);
  while (g_get_monotonic_time () < deadline)
    {
      rndz_test_run_until_readable (NULL, socket, (deadline - g_get_monotonic_time ()) / 1000 + 1);
      n = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);
      if (n == 0)
        return FALSE;
      if (n > RNDZ_FRAME_HEADER_SIZE)
        return rndz_message_decode (&msg, buf + 2, n - 2, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) &&
               msg.type == RNDZ_MESSAGE_PONG;
    }
  return FALSE;
}

static void
test_silent_connections (Fixture       *fixture,
                         gconstpointer  user_data)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GPtrArray) silent = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GSocket) peer = NULL;
  RndzServerStats stats;

  g_test_summary ("Silent TCP connections cannot lock peers out: at the limit the oldest "
                  "silent one is closed, and registered peers stay");

  rndz_server_set_udp_sender (fixture->server, NULL, NULL);
  rndz_server_set_max_connections (fixture->server, 8);
  address = listen_loopback (fixture->server);

  /* One registered peer first */
  peer = tcp_connect (address);
  rndz_test_run_for (NULL, 20);
  g_assert_true (tcp_register (peer, "registered"));

  /* Fill the rest and more with silent connections: 127.0.0.1 may hold
   * at most 32 unregistered ones, so stay below that */
  for (guint i = 0; i < 20; i++)
    {
      g_ptr_array_add (silent, tcp_connect (address));
      rndz_test_run_for (NULL, 5);
    }

  rndz_server_get_stats (fixture->server, &stats);
  g_assert_cmpuint (stats.evicted, >=, 12);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 1);

  /* A newcomer still gets in and registers */
  {
    g_autoptr(GSocket) newcomer = tcp_connect (address);

    rndz_test_run_for (NULL, 20);
    g_assert_true (tcp_register (newcomer, "newcomer"));
    g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 2);
  }

  /* The registered peer is still served */
  g_socket_set_blocking (peer, TRUE);
  g_assert_true (tcp_register (peer, "registered"));
}

static void
test_per_address_cap (Fixture       *fixture,
                      gconstpointer  user_data)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GPtrArray) silent = g_ptr_array_new_with_free_func (g_object_unref);
  RndzServerStats stats;

  g_test_summary ("One address holds at most 32 silent connections; more are refused");

  rndz_server_set_udp_sender (fixture->server, NULL, NULL);
  address = listen_loopback (fixture->server);

  for (guint i = 0; i < 40; i++)
    {
      g_ptr_array_add (silent, tcp_connect (address));
      rndz_test_run_for (NULL, 2);
    }
  rndz_test_run_for (NULL, 50);

  rndz_server_get_stats (fixture->server, &stats);
  g_assert_cmpuint (stats.refused_connections, ==, 8);
  g_assert_cmpuint (stats.evicted, ==, 0);
}

static void
test_connection_pair (Fixture       *fixture,
                      gconstpointer  user_data)
{
  g_autoptr(GSocket) ours = NULL;
  g_autoptr(GSocket) theirs = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr remote = rndz_test_addr ("198.51.100.3:777");
  int fds[2];
  char junk[] = "\x00\x05{{{{{";

  g_test_summary ("Connections can be fed without a listening socket; bad input "
                  "closes them and counts as malformed");

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
  ours = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  theirs = g_socket_new_from_fd (fds[1], &error);
  g_assert_no_error (error);

  rndz_server_add_connection (fixture->server, ours, &remote);
  g_assert_true (tcp_register (theirs, "paired"));
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 1);

  g_socket_set_blocking (theirs, TRUE);
  g_socket_send (theirs, junk, sizeof junk - 1, NULL, NULL);
  rndz_test_run_for (NULL, 50);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 0);
  {
    RndzServerStats stats;

    rndz_server_get_stats (fixture->server, &stats);
    g_assert_cmpuint (stats.malformed, ==, 1);
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/limits/udp/no-amplification", Fixture, NULL, fixture_setup, test_no_amplification, fixture_teardown);
  g_test_add ("/limits/udp/redirect-no-larger", Fixture, NULL, fixture_setup, test_redirect_no_larger, fixture_teardown);
  g_test_add ("/limits/rate/source", Fixture, NULL, fixture_setup, test_rate_limit_source, fixture_teardown);
  g_test_add ("/limits/rate/target", Fixture, NULL, fixture_setup, test_rate_limit_target, fixture_teardown);
  g_test_add ("/limits/rate/refills", Fixture, NULL, fixture_setup, test_rate_limit_refills, fixture_teardown);
  g_test_add ("/limits/tcp/silent-connections", Fixture, NULL, fixture_setup, test_silent_connections, fixture_teardown);
  g_test_add ("/limits/tcp/per-address-cap", Fixture, NULL, fixture_setup, test_per_address_cap, fixture_teardown);
  g_test_add ("/limits/tcp/connection-pair", Fixture, NULL, fixture_setup, test_connection_pair, fixture_teardown);

  return g_test_run ();
}
