/* test-udp.c: reading and sending a client's control datagrams
 *
 * SPDX-License-Identifier: MIT
 */

#include <rndz-glib/rndz.h>
#include <string.h>

#include "rndz-test-util.h"
#include "rndz-socket-private.h"
#include "rndz-udp-private.h"

typedef struct
{
  guint calls;
  guint stop_after;             /* 0: never */
  RndzAddr last_from;
  gboolean had_from;
} Reader;

static gboolean
count_cb (GSocket           *socket,
          const RndzAddr    *from,
          const RndzMessage *msg,
          gpointer           user_data)
{
  Reader *reader = user_data;

  reader->calls++;
  reader->had_from = from != NULL;
  if (from != NULL)
    reader->last_from = *from;
  return reader->stop_after == 0 || reader->calls < reader->stop_after;
}

static GSocket *
udp_socket (GSocketAddress **local)
{
  RndzAddr addr;
  GSocket *socket = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, &addr);

  if (local != NULL)
    *local = rndz_addr_to_socket_address (&addr, G_SOCKET_FAMILY_IPV4);
  return socket;
}

static void
send_ping (GSocket        *from,
           GSocketAddress *to)
{
  RndzMessage ping;
  char buf[256];
  gsize len;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (ping.id, "alice", sizeof ping.id);
  len = rndz_message_encode (&ping, buf, sizeof buf);
  g_assert_true (rndz_udp_send (from, to, buf, len, "ping"));
}

/* Datagrams on loopback are queued at once, but let the kernel settle */
static void
wait_readable (GSocket *socket)
{
  g_assert_true (g_socket_condition_timed_wait (socket, G_IO_IN, G_USEC_PER_SEC, NULL, NULL));
}

static void
test_read_budget (void)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) reader_socket = udp_socket (&local);
  g_autoptr(GSocket) sender = udp_socket (NULL);
  g_autoptr(GError) error = NULL;
  Reader reader = { 0 };
  guint n = RNDZ_UDP_READ_BUDGET + 36;

  g_test_summary ("One round reads at most the budget; the next one the rest");

  for (guint i = 0; i < n; i++)
    send_ping (sender, local);
  wait_readable (reader_socket);

  g_assert_true (rndz_udp_read_messages (reader_socket, TRUE, count_cb, &reader, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (reader.calls, ==, RNDZ_UDP_READ_BUDGET);
  g_assert_true (reader.had_from);

  g_assert_true (rndz_udp_read_messages (reader_socket, TRUE, count_cb, &reader, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (reader.calls, ==, n);
}

static void
test_read_stop_and_garbage (void)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocketAddress) sender_local = NULL;
  g_autoptr(GSocket) reader_socket = udp_socket (&local);
  g_autoptr(GSocket) sender = udp_socket (&sender_local);
  g_autoptr(GError) error = NULL;
  Reader reader = { 0, 1 };
  RndzAddr expected;

  g_test_summary ("What does not decode is dropped; the reader may stop the round");

  g_assert_true (rndz_udp_send (sender, local, "{\"nope", 6, "garbage"));
  send_ping (sender, local);
  send_ping (sender, local);
  wait_readable (reader_socket);

  g_assert_false (rndz_udp_read_messages (reader_socket, TRUE, count_cb, &reader, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (reader.calls, ==, 1);
  g_assert_true (rndz_addr_from_socket_address (&expected, sender_local));
  g_assert_true (rndz_addr_equal (&reader.last_from, &expected));

  /* The second ping is still there, and without an address */
  reader.stop_after = 0;
  g_assert_true (rndz_udp_read_messages (reader_socket, FALSE, count_cb, &reader, &error));
  g_assert_cmpuint (reader.calls, ==, 2);
  g_assert_false (reader.had_from);
}

static void
test_read_icmp (void)
{
  g_autoptr(GSocketAddress) closed_local = NULL;
  g_autoptr(GSocket) closed = udp_socket (&closed_local);
  g_autoptr(GSocket) socket = udp_socket (NULL);
  g_autoptr(GError) error = NULL;
  Reader reader = { 0 };

  g_test_summary ("An ICMP error on a connected socket ends the round once, as an ICMP error");

  /* Nobody at that port any more: the kernel answers with an ICMP port
   * unreachable, which the connected socket reads as an error */
  g_socket_close (closed, NULL);
  g_assert_true (g_socket_connect (socket, closed_local, NULL, &error));
  send_ping (socket, NULL);
  g_assert_true (g_socket_condition_timed_wait (socket, G_IO_IN | G_IO_ERR, G_USEC_PER_SEC, NULL, NULL));

  g_assert_false (rndz_udp_read_messages (socket, FALSE, count_cb, &reader, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED);
  g_assert_true (rndz_udp_error_is_icmp (error));
  g_clear_error (&error);

  g_assert_true (rndz_udp_read_messages (socket, FALSE, count_cb, &reader, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (reader.calls, ==, 0);
}

static void
test_read_persistent_error_child (void)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocket) connecting = NULL;
  g_autoptr(GError) error = NULL;
  Reader reader = { 0 };

  /* A listening TCP socket with a connection waiting polls readable,
   * and every read of it fails: an error that stays */
  listening = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_true (g_socket_bind (listening, any, TRUE, &error));
  g_assert_true (g_socket_listen (listening, &error));
  g_socket_set_blocking (listening, FALSE);
  local = g_socket_get_local_address (listening, &error);
  connecting = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_true (g_socket_connect (connecting, local, NULL, &error));
  g_assert_true (g_socket_condition_timed_wait (listening, G_IO_IN, G_USEC_PER_SEC, NULL, NULL));

  g_assert_false (rndz_udp_read_messages (listening, FALSE, count_cb, &reader, &error));
  g_assert_nonnull (error);
  g_assert_false (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK));
  g_assert_cmpint (g_socket_condition_check (listening, G_IO_IN), !=, 0);
  g_assert_cmpuint (reader.calls, ==, 0);
}

static void
test_read_persistent_error (void)
{
  g_test_summary ("An error that stays while the socket polls readable ends the round: "
                  "no endless loop");

  g_test_trap_subprocess ("/udp/read/persistent-error/subprocess", 5 * G_USEC_PER_SEC,
                          G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_send_errors (void)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) target = udp_socket (&local);
  g_autoptr(GSocket) socket = udp_socket (NULL);
  char big[70000] = { 0 };

  g_test_summary ("A send that fails says so");

  g_assert_true (rndz_udp_send (socket, local, "x", 1, "test"));
  /* Too large for a datagram */
  g_assert_false (rndz_udp_send (socket, local, big, sizeof big, "test"));
  g_socket_close (socket, NULL);
  g_assert_false (rndz_udp_send (socket, local, "x", 1, "test"));
}

static void
test_own_ports (void)
{
  g_autoptr(GInetAddress) any = g_inet_address_new_any (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (any, 0);
  g_autoptr(GPtrArray) sockets = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GHashTable) ports = g_hash_table_new (NULL, NULL);
  guint shared = 0;

  g_test_summary ("A socket the library binds to port 0 gets a port no other socket has, "
                  "though it shares its port with its own kind later");

  /* With SO_REUSEADDR or SO_REUSEPORT, the kernel may give port 0 a
   * port such a socket already has: a few in a thousand */
  for (guint i = 0; i < 900; i++)
    {
      g_autoptr(GError) error = NULL;
      GSocket *socket = rndz_socket_new_bound (local, G_SOCKET_TYPE_DATAGRAM, &error);
      g_autoptr(GSocketAddress) bound = NULL;
      guint port;

      g_assert_no_error (error);
      bound = g_socket_get_local_address (socket, NULL);
      port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
      shared += g_hash_table_contains (ports, GUINT_TO_POINTER (port));
      g_hash_table_add (ports, GUINT_TO_POINTER (port));
      g_ptr_array_add (sockets, socket);
    }
  g_assert_cmpuint (shared, ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/udp/read/budget", test_read_budget);
  g_test_add_func ("/udp/read/stop-and-garbage", test_read_stop_and_garbage);
  g_test_add_func ("/udp/read/icmp", test_read_icmp);
  g_test_add_func ("/udp/read/persistent-error", test_read_persistent_error);
  g_test_add_func ("/udp/read/persistent-error/subprocess", test_read_persistent_error_child);
  g_test_add_func ("/udp/send-errors", test_send_errors);
  g_test_add_func ("/udp/own-ports", test_own_ports);

  return g_test_run ();
}
