/* test-relay-join.c: joining a relay session, and reading one frame,
 * against a relay the tests play themselves on the loopback
 *
 * SPDX-License-Identifier: MIT
 */

#include <rndz-glib/rndz.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-frame-reader-private.h"
#include "rndz-message-private.h"
#include "rndz-relay-join-private.h"
#include "rndz-test-util.h"

#define OWN_ID "bob"
#define TOKEN "0123456789abcdef0123456789abcdef"
#define APP_DATA "application bytes, not a frame"

typedef struct
{
  gboolean ipv6;
} TestData;

static const TestData data_ipv4 = { FALSE };
static const TestData data_ipv6 = { TRUE };

/* Helpers */

static gboolean
skip_unless_family (const TestData *data)
{
  if (!data->ipv6 || rndz_test_have_ipv6 ())
    return FALSE;

  g_test_skip ("IPv6 loopback is not available");
  return TRUE;
}

static GSocketFamily
family_of (const TestData *data)
{
  return data->ipv6 ? G_SOCKET_FAMILY_IPV6 : G_SOCKET_FAMILY_IPV4;
}

/* A loopback port where nothing listens: bound a moment, then closed */
static void
closed_port (const TestData *data,
             GSocketType     type,
             RndzAddr       *addr)
{
  g_autoptr(GSocket) socket = rndz_test_socket_new (family_of (data), type, addr);

  g_socket_close (socket, NULL);
}

static gsize
encode_reply (RndzMessageType  type,
              guint32          tid,
              char            *buf,
              gsize            size)
{
  RndzMessage msg;
  gsize len;

  rndz_message_init (&msg, type, tid);
  len = rndz_message_encode (&msg, buf, size);
  g_assert_cmpuint (len, >, 0);
  return len;
}

static void
send_all (GSocket    *socket,
          const void *data,
          gsize       len)
{
  g_autoptr(GError) error = NULL;
  gssize sent;

  sent = g_socket_send (socket, data, len, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (sent, ==, (gssize) len);
}

/* Waits (at most 5 s, in blocking style) for @len bytes or a datagram
 * on a socket, and checks them */
static void
assert_receive (GSocket    *socket,
                const char *expected,
                gsize       len)
{
  g_autoptr(GError) error = NULL;
  char buf[256];
  gsize got = 0;

  g_assert_cmpuint (len, <=, sizeof buf);
  while (got < len)
    {
      gssize n;

      g_assert_true (g_socket_condition_timed_wait (socket, G_IO_IN, 5 * G_USEC_PER_SEC,
                                                    NULL, &error));
      g_assert_no_error (error);
      n = g_socket_receive_with_blocking (socket, buf + got, sizeof buf - got, FALSE, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n, >, 0);
      got += n;
      if (g_socket_get_socket_type (socket) == G_SOCKET_TYPE_DATAGRAM)
        break;
    }

  g_assert_cmpmem (buf, got, expected, len);
}

static void
assert_nothing_to_read (GSocket *socket)
{
  g_autoptr(GError) error = NULL;
  char buf[64];

  g_assert_cmpint (g_socket_receive_with_blocking (socket, buf, sizeof buf, FALSE, NULL, &error),
                   ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
}

/* The other end of a connection saw it closed: EOF or a reset */
static void
assert_closed_remotely (GSocket *socket)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      char buf[64];
      gssize n;

      rndz_test_wait_readable (NULL, socket, 5000, "the connection to close");
      n = g_socket_receive_with_blocking (socket, buf, sizeof buf, FALSE, NULL, &error);
      if (n == 0 || (n < 0 && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)))
        return;
    }
}

static void
assert_hello (const RndzMessage *msg)
{
  g_assert_cmpint (msg->type, ==, RNDZ_MESSAGE_HELLO);
  g_assert_cmpstr (msg->id, ==, OWN_ID);
  g_assert_cmpstr (msg->token, ==, TOKEN);
}

/* The operation under test */

typedef struct
{
  gboolean done;
  GSocket *socket;
  GError *error;
  gint64 finished;
} JoinResult;

static void
join_result_clear (JoinResult *result)
{
  if (result->socket != NULL)
    g_socket_close (result->socket, NULL);
  g_clear_object (&result->socket);
  g_clear_error (&result->error);
}

/* Takes the result and drops the task: the operation's last reference
 * goes with it */
static void
join_cb (GObject      *source,
         GAsyncResult *res,
         gpointer      user_data)
{
  JoinResult *result = user_data;

  g_assert_null (source);
  result->socket = rndz_relay_join_finish (res, &result->error);
  result->finished = g_get_monotonic_time ();
  result->done = TRUE;
}

static void
join_start (RndzTransport   transport,
            const TestData *data,
            const RndzAddr *relay,
            guint           timeout_ms,
            GCancellable   *cancellable,
            JoinResult     *result)
{
  rndz_relay_join_async (transport, family_of (data), relay, OWN_ID, TOKEN, timeout_ms,
                         NULL, cancellable, join_cb, result);
}

static void
assert_joined (JoinResult     *result,
               const RndzAddr *relay)
{
  g_autoptr(GSocketAddress) remote = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr addr;

  g_assert_no_error (result->error);
  g_assert_nonnull (result->socket);
  g_assert_cmpint (rndz_socket_get_path (result->socket), ==, RNDZ_PATH_RELAYED);

  remote = g_socket_get_remote_address (result->socket, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&addr, remote));
  g_assert_true (rndz_addr_equal (&addr, relay));
}

/* UDP: the relay's side */

/* Runs the context until the relay gets a datagram that is a hello */
static void
udp_relay_expect_hello (GSocket         *relay,
                        RndzMessage     *hello,
                        GSocketAddress **from)
{
  g_autoptr(GError) error = NULL;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
  gssize n;

  n = rndz_test_receive_from (NULL, relay, from, buf, sizeof buf, 5000);
  g_assert_true (rndz_message_decode (hello, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, &error));
  g_assert_no_error (error);
  assert_hello (hello);
  /* The relay never answers with more than it got */
  g_assert_cmpuint (n, >=, rndz_message_max_reply_size (hello));
}

/* Takes the hellos sent so far: once the join has returned, none follow */
static void
udp_relay_drain (GSocket *relay)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
  RndzMessage msg;
  gssize n;

  while ((n = g_socket_receive (relay, buf, sizeof buf, NULL, NULL)) > 0)
    {
      g_assert_true (rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL));
      assert_hello (&msg);
    }
}

static void
udp_relay_send (GSocket        *relay,
                GSocketAddress *to,
                const void     *data,
                gsize           len)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_socket_send_to (relay, to, data, len, NULL, &error), ==, (gssize) len);
  g_assert_no_error (error);
}

static void
udp_relay_reply (GSocket         *relay,
                 GSocketAddress  *to,
                 RndzMessageType  type,
                 guint32          tid)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len = encode_reply (type, tid, buf, sizeof buf);

  udp_relay_send (relay, to, buf, len);
}

/* UDP tests */

static void
test_udp_ready (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) relay = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  JoinResult result = { 0 };
  RndzMessage hello, again;
  RndzAddr relay_addr;

  g_test_summary ("UDP: hello, wait, hello again, ready: the socket is returned, "
                  "connected to the relay, and what the relay sends right behind "
                  "ready is the application's");
  if (skip_unless_family (data))
    return;

  relay = rndz_test_socket_new (family_of (data), G_SOCKET_TYPE_DATAGRAM, &relay_addr);
  join_start (RNDZ_TRANSPORT_UDP, data, &relay_addr, RNDZ_TEST_TIMEOUT_MS, NULL, &result);

  udp_relay_expect_hello (relay, &hello, &from);
  udp_relay_reply (relay, from, RNDZ_MESSAGE_WAIT, hello.tid);

  /* The other peer is not there yet: hello goes on, with the same tid */
  udp_relay_expect_hello (relay, &again, &from);
  g_assert_cmpuint (again.tid, ==, hello.tid);
  g_assert_false (result.done);

  /* ready, two answers to retransmitted hellos, then the other peer's
   * first datagram, all queued before the client reads any of them */
  udp_relay_reply (relay, from, RNDZ_MESSAGE_READY, hello.tid);
  udp_relay_reply (relay, from, RNDZ_MESSAGE_READY, hello.tid);
  udp_relay_reply (relay, from, RNDZ_MESSAGE_WAIT, hello.tid);
  udp_relay_send (relay, from, APP_DATA, strlen (APP_DATA));
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  assert_joined (&result, &relay_addr);
  g_assert_false (g_socket_get_blocking (result.socket));
  assert_receive (result.socket, APP_DATA, strlen (APP_DATA));
  udp_relay_drain (relay);

  /* Forwarded both ways, untouched; no hello after ready */
  udp_relay_send (relay, from, "\0\1\2", 3);
  assert_receive (result.socket, "\0\1\2", 3);
  send_all (result.socket, "pong", 4);
  assert_receive (relay, "pong", 4);
  rndz_test_run_for (NULL, 600);
  assert_nothing_to_read (relay);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_udp_stray (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) relay = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  JoinResult result = { 0 };
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage hello, pong;
  RndzAddr relay_addr;
  gsize len;

  g_test_summary ("UDP: datagrams that are not the relay's wait or ready for "
                  "this hello are dropped, and do not end the join");
  if (skip_unless_family (data))
    return;

  relay = rndz_test_socket_new (family_of (data), G_SOCKET_TYPE_DATAGRAM, &relay_addr);
  join_start (RNDZ_TRANSPORT_UDP, data, &relay_addr, RNDZ_TEST_TIMEOUT_MS, NULL, &result);
  udp_relay_expect_hello (relay, &hello, &from);

  udp_relay_send (relay, from, "garbage", 7);
  udp_relay_send (relay, from, "{\"v\":1,\"type\":\"ready\"}", 22);
  udp_relay_reply (relay, from, RNDZ_MESSAGE_READY, hello.tid + 1);
  udp_relay_reply (relay, from, RNDZ_MESSAGE_WAIT, hello.tid ^ 0x80000000);
  rndz_message_init (&pong, RNDZ_MESSAGE_PONG, hello.tid);
  rndz_addr_parse (&pong.addr, "192.0.2.1:9", NULL);
  len = rndz_message_encode (&pong, buf, sizeof buf);
  udp_relay_send (relay, from, buf, len);

  rndz_test_run_for (NULL, 400);
  g_assert_false (result.done);

  udp_relay_reply (relay, from, RNDZ_MESSAGE_READY, hello.tid);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);
  assert_joined (&result, &relay_addr);
  /* The strays were read and dropped before ready */
  assert_nothing_to_read (result.socket);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_udp_interval (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) relay = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  JoinResult result = { 0 };
  RndzMessage hello;
  RndzAddr relay_addr;
  gint64 start, waited, next;

  g_test_summary ("UDP: hello every 250 ms, and every 2 x RTT once a slow wait came");
  if (skip_unless_family (data))
    return;
  if (rndz_test_under_valgrind ())
    {
      g_test_skip ("Timing is meaningless under valgrind");
      return;
    }

  relay = rndz_test_socket_new (family_of (data), G_SOCKET_TYPE_DATAGRAM, &relay_addr);
  start = g_get_monotonic_time ();
  join_start (RNDZ_TRANSPORT_UDP, data, &relay_addr, RNDZ_TEST_TIMEOUT_MS, NULL, &result);

  /* Unanswered: the second hello comes 250 ms after the first */
  udp_relay_expect_hello (relay, &hello, &from);
  udp_relay_expect_hello (relay, &hello, &from);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 240 * 1000);

  /* A wait 150 ms after a hello: the RTT is at least that much, so the
   * next hello waits at least 300 ms */
  rndz_test_run_for (NULL, 150);
  udp_relay_reply (relay, from, RNDZ_MESSAGE_WAIT, hello.tid);
  waited = g_get_monotonic_time ();
  udp_relay_expect_hello (relay, &hello, &from);
  next = g_get_monotonic_time ();
  g_assert_cmpint (next - waited, >=, 290 * 1000);
  g_assert_cmpint (next - waited, <, 2000 * 1000);

  udp_relay_reply (relay, from, RNDZ_MESSAGE_READY, hello.tid);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);
  assert_joined (&result, &relay_addr);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_udp_timeout (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) relay = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  JoinResult result = { 0 };
  RndzMessage hello;
  RndzAddr relay_addr;
  gint64 start;

  g_test_summary ("UDP: a relay that never answers: G_IO_ERROR_TIMED_OUT after the timeout");
  if (skip_unless_family (data))
    return;

  relay = rndz_test_socket_new (family_of (data), G_SOCKET_TYPE_DATAGRAM, &relay_addr);
  start = g_get_monotonic_time ();
  join_start (RNDZ_TRANSPORT_UDP, data, &relay_addr, 600, NULL, &result);

  udp_relay_expect_hello (relay, &hello, &from);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_null (result.socket);
  g_assert_cmpint (result.finished - start, >=, 590 * 1000);

  /* The socket is gone: no more hellos */
  udp_relay_drain (relay);
  rndz_test_run_for (NULL, 600);
  assert_nothing_to_read (relay);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_udp_refused (gconstpointer user_data)
{
  const TestData *data = user_data;
  JoinResult result = { 0 };
  RndzAddr relay_addr;

  g_test_summary ("UDP: an ICMP port unreachable for the hello: RNDZ_ERROR_SERVER_UNREACHABLE, "
                  "long before the timeout");
  if (skip_unless_family (data))
    return;

  closed_port (data, G_SOCKET_TYPE_DATAGRAM, &relay_addr);
  join_start (RNDZ_TRANSPORT_UDP, data, &relay_addr, RNDZ_TEST_TIMEOUT_MS, NULL, &result);
  rndz_test_wait_true (NULL, &result.done, 5000);

  g_assert_error (result.error, RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE);
  g_assert_null (result.socket);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_udp_cancel (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) relay = NULL;
  g_autoptr(GSocketAddress) from = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  JoinResult result = { 0 };
  RndzMessage hello;
  RndzAddr relay_addr;

  g_test_summary ("UDP: cancelled while waiting for the other peer: G_IO_ERROR_CANCELLED");
  if (skip_unless_family (data))
    return;

  relay = rndz_test_socket_new (family_of (data), G_SOCKET_TYPE_DATAGRAM, &relay_addr);
  join_start (RNDZ_TRANSPORT_UDP, data, &relay_addr, RNDZ_TEST_TIMEOUT_MS, cancellable, &result);
  udp_relay_expect_hello (relay, &hello, &from);
  udp_relay_reply (relay, from, RNDZ_MESSAGE_WAIT, hello.tid);
  rndz_test_run_for (NULL, 50);

  g_cancellable_cancel (cancellable);
  rndz_test_wait_true (NULL, &result.done, 5000);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (result.socket);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_udp_cancelled_before (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) relay = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  JoinResult result = { 0 };
  RndzAddr relay_addr;

  g_test_summary ("UDP: a cancellable cancelled already: G_IO_ERROR_CANCELLED, "
                  "never from within the _async call");
  if (skip_unless_family (data))
    return;

  relay = rndz_test_socket_new (family_of (data), G_SOCKET_TYPE_DATAGRAM, &relay_addr);
  g_cancellable_cancel (cancellable);
  join_start (RNDZ_TRANSPORT_UDP, data, &relay_addr, RNDZ_TEST_TIMEOUT_MS, cancellable, &result);
  g_assert_false (result.done);
  rndz_test_wait_true (NULL, &result.done, 5000);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

/* TCP: the relay's side */

static GSocket *
tcp_relay_accept (GSocket *listener)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      GSocket *connection;

      rndz_test_wait_readable (NULL, listener, 5000, "a connection to the relay");
      connection = g_socket_accept (listener, NULL, &error);
      if (connection != NULL)
        {
          g_socket_set_blocking (connection, FALSE);
          return connection;
        }
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
    }
}

static void
tcp_relay_expect_hello (GSocket     *connection,
                        RndzMessage *hello)
{
  g_autoptr(GError) error = NULL;
  guint8 header[RNDZ_FRAME_HEADER_SIZE];
  char payload[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  rndz_test_read_exactly (NULL, connection, (char *) header, sizeof header, 5000);
  len = ((gsize) header[0] << 8) | header[1];
  g_assert_cmpuint (len, <=, sizeof payload);
  rndz_test_read_exactly (NULL, connection, payload, len, 5000);

  g_assert_true (rndz_message_decode (hello, payload, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, &error));
  g_assert_no_error (error);
  assert_hello (hello);

  /* One frame, nothing more */
  assert_nothing_to_read (connection);
}

static gsize
encode_frame (RndzMessageType  type,
              guint32          tid,
              char            *buf,
              gsize            size)
{
  RndzMessage msg;
  gsize len;

  rndz_message_init (&msg, type, tid);
  len = rndz_message_encode_frame (&msg, buf, size);
  g_assert_cmpuint (len, >, 0);
  return len;
}

/* Starts a TCP join and plays the relay up to the hello */
static GSocket *
tcp_join_to_hello (const TestData *data,
                   GSocket       **listener,
                   RndzAddr       *relay_addr,
                   guint           timeout_ms,
                   GCancellable   *cancellable,
                   JoinResult     *result,
                   RndzMessage    *hello)
{
  GSocket *connection;

  *listener = rndz_test_socket_new (family_of (data), G_SOCKET_TYPE_STREAM, relay_addr);
  join_start (RNDZ_TRANSPORT_TCP, data, relay_addr, timeout_ms, cancellable, result);
  connection = tcp_relay_accept (*listener);
  tcp_relay_expect_hello (connection, hello);
  return connection;
}

/* TCP tests */

static void
test_tcp_ready (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocket) connection = NULL;
  JoinResult result = { 0 };
  char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE + sizeof APP_DATA];
  RndzMessage hello;
  RndzAddr relay_addr;
  gsize len;

  g_test_summary ("TCP: the ready frame and the other peer's first bytes in one "
                  "write: exactly the frame is read, the bytes stay for the application");
  if (skip_unless_family (data))
    return;

  connection = tcp_join_to_hello (data, &listener, &relay_addr, RNDZ_TEST_TIMEOUT_MS, NULL,
                                  &result, &hello);
  rndz_test_run_for (NULL, 50);
  g_assert_false (result.done);

  len = encode_frame (RNDZ_MESSAGE_READY, hello.tid, buf, sizeof buf);
  memcpy (buf + len, APP_DATA, strlen (APP_DATA));
  send_all (connection, buf, len + strlen (APP_DATA));
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  assert_joined (&result, &relay_addr);
  g_assert_true (g_socket_get_blocking (result.socket));
  assert_receive (result.socket, APP_DATA, strlen (APP_DATA));

  /* And the other way */
  send_all (result.socket, "pong", 4);
  rndz_test_read_exactly (NULL, connection, buf, 4, 5000);
  g_assert_cmpmem (buf, 4, "pong", 4);

  join_result_clear (&result);
  assert_closed_remotely (connection);
  rndz_test_drain (NULL);
}

static void
test_tcp_eof (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocket) connection = NULL;
  JoinResult result = { 0 };
  char half_frame[] = { 0, 40, '{' };
  RndzMessage hello;
  RndzAddr relay_addr;

  g_test_summary ("TCP: the relay closes the connection in the middle of a frame: "
                  "G_IO_ERROR_CONNECTION_CLOSED");
  if (skip_unless_family (data))
    return;

  connection = tcp_join_to_hello (data, &listener, &relay_addr, RNDZ_TEST_TIMEOUT_MS, NULL,
                                  &result, &hello);
  send_all (connection, half_frame, sizeof half_frame);
  g_socket_close (connection, NULL);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_null (result.socket);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

/* Either raw bytes, a payload to frame, or a message to encode */
typedef struct
{
  const char *name;
  const char *raw;
  gsize raw_len;
  const char *payload;
  RndzMessageType type;
  gboolean protocol_error;       /* else RNDZ_ERROR */
  gint code;
} BadAnswer;

static const BadAnswer bad_answers[] = {
  { "too-large", "\xff\xff{", 3, NULL, 0, TRUE, RNDZ_PROTOCOL_ERROR_TOO_LARGE },
  { "empty", "\0\0", 2, NULL, 0, TRUE, RNDZ_PROTOCOL_ERROR_TRUNCATED },
  { "not-json", NULL, 0, "hello", 0, TRUE, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "not-utf8", NULL, 0, "\xff\xfe\xfd", 0, TRUE, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "unknown-type", NULL, 0, "{\"v\":1,\"type\":\"greet\",\"tid\":7}", 0, TRUE,
    RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE },
  { "wait", NULL, 0, NULL, RNDZ_MESSAGE_WAIT, FALSE, RNDZ_ERROR_FAILED },
  { "error", NULL, 0, NULL, RNDZ_MESSAGE_ERROR, FALSE, RNDZ_ERROR_FAILED },
};

static void
send_bad_answer (GSocket           *connection,
                 const BadAnswer   *bad,
                 const RndzMessage *hello)
{
  char frame[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  if (bad->raw != NULL)
    {
      send_all (connection, bad->raw, bad->raw_len);
      return;
    }

  if (bad->payload != NULL)
    {
      len = strlen (bad->payload);
      frame[0] = len >> 8;
      frame[1] = len & 0xff;
      memcpy (frame + RNDZ_FRAME_HEADER_SIZE, bad->payload, len);
      len += RNDZ_FRAME_HEADER_SIZE;
    }
  else
    len = encode_frame (bad->type, hello->tid, frame, sizeof frame);

  send_all (connection, frame, len);
}

static void
test_tcp_bad_answer (void)
{
  g_test_summary ("TCP: anything but a valid ready frame fails the join, with the "
                  "codec's protocol error or an RNDZ_ERROR; the socket is closed");

  for (gsize i = 0; i < G_N_ELEMENTS (bad_answers); i++)
    {
      const BadAnswer *bad = &bad_answers[i];
      g_autoptr(GSocket) listener = NULL;
      g_autoptr(GSocket) connection = NULL;
      JoinResult result = { 0 };
      RndzMessage hello;
      RndzAddr relay_addr;

      g_test_message ("Case %s", bad->name);
      connection = tcp_join_to_hello (&data_ipv4, &listener, &relay_addr, RNDZ_TEST_TIMEOUT_MS,
                                      NULL, &result, &hello);
      send_bad_answer (connection, bad, &hello);
      rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

      g_assert_null (result.socket);
      /* g_assert_error() does not put its arguments in parentheses */
      g_assert_error (result.error, (bad->protocol_error ? RNDZ_PROTOCOL_ERROR : RNDZ_ERROR),
                      bad->code);
      assert_closed_remotely (connection);

      join_result_clear (&result);
      rndz_test_drain (NULL);
    }
}

static void
test_tcp_timeout (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocket) connection = NULL;
  JoinResult result = { 0 };
  RndzMessage hello;
  RndzAddr relay_addr;
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("TCP: the relay never says ready: G_IO_ERROR_TIMED_OUT, the connection closed");
  if (skip_unless_family (data))
    return;

  connection = tcp_join_to_hello (data, &listener, &relay_addr, 600, NULL, &result, &hello);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_null (result.socket);
  g_assert_cmpint (result.finished - start, >=, 590 * 1000);
  assert_closed_remotely (connection);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_tcp_cancel (gconstpointer user_data)
{
  const TestData *data = user_data;
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocket) connection = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  JoinResult result = { 0 };
  RndzMessage hello;
  RndzAddr relay_addr;

  g_test_summary ("TCP: cancelled while waiting for ready: G_IO_ERROR_CANCELLED, "
                  "the connection closed");
  if (skip_unless_family (data))
    return;

  connection = tcp_join_to_hello (data, &listener, &relay_addr, RNDZ_TEST_TIMEOUT_MS, cancellable,
                                  &result, &hello);
  g_cancellable_cancel (cancellable);
  rndz_test_wait_true (NULL, &result.done, 5000);

  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (result.socket);
  assert_closed_remotely (connection);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

static void
test_tcp_refused (gconstpointer user_data)
{
  const TestData *data = user_data;
  JoinResult result = { 0 };
  RndzAddr relay_addr;

  g_test_summary ("TCP: nothing listens on the relay port: RNDZ_ERROR_SERVER_UNREACHABLE");
  if (skip_unless_family (data))
    return;

  closed_port (data, G_SOCKET_TYPE_STREAM, &relay_addr);
  join_start (RNDZ_TRANSPORT_TCP, data, &relay_addr, RNDZ_TEST_TIMEOUT_MS, NULL, &result);
  rndz_test_wait_true (NULL, &result.done, 5000);

  g_assert_error (result.error, RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE);
  g_assert_null (result.socket);

  join_result_clear (&result);
  rndz_test_drain (NULL);
}

/* The frame reader on its own */

typedef struct
{
  gboolean done;
  gboolean ok;
  RndzMessage msg;
  GError *error;
} ReadResult;

static void
read_cb (GObject      *source,
         GAsyncResult *res,
         gpointer      user_data)
{
  ReadResult *result = user_data;

  result->ok = rndz_frame_read_finish (res, &result->msg, &result->error);
  result->done = TRUE;
}

/* A connected pair of non-blocking TCP sockets on the loopback */
static void
tcp_pair (GSocket **client,
          GSocket **server)
{
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr addr;

  listener = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, &addr);
  address = rndz_addr_to_socket_address (&addr, G_SOCKET_FAMILY_IPV4);
  *client = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  /* A blocking connect on the loopback returns at once */
  g_assert_true (g_socket_connect (*client, address, NULL, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (*client, FALSE);
  *server = tcp_relay_accept (listener);
}

static void
test_frame_split (void)
{
  g_autoptr(GSocket) reader = NULL;
  g_autoptr(GSocket) writer = NULL;
  ReadResult result = { 0 };
  char frame[64 + sizeof APP_DATA];
  gsize len;

  g_test_summary ("The frame arrives a few bytes at a time, the application's bytes "
                  "behind it: the message is decoded, the bytes stay");

  tcp_pair (&reader, &writer);
  len = encode_frame (RNDZ_MESSAGE_READY, 42, frame, sizeof frame);
  memcpy (frame + len, APP_DATA, strlen (APP_DATA));

  rndz_frame_read_async (reader, NULL, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, 10000, NULL,
                         read_cb, &result);
  send_all (writer, frame, 1);
  rndz_test_run_for (NULL, 30);
  send_all (writer, frame + 1, 3);
  rndz_test_run_for (NULL, 30);
  g_assert_false (result.done);
  send_all (writer, frame + 4, len - 4 + strlen (APP_DATA));
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  g_assert_no_error (result.error);
  g_assert_true (result.ok);
  g_assert_cmpint (result.msg.type, ==, RNDZ_MESSAGE_READY);
  g_assert_cmpuint (result.msg.tid, ==, 42);
  assert_receive (reader, APP_DATA, strlen (APP_DATA));

  rndz_test_drain (NULL);
}

static void
test_frame_eof (void)
{
  g_autoptr(GSocket) reader = NULL;
  g_autoptr(GSocket) writer = NULL;
  ReadResult result = { 0 };

  g_test_summary ("End of stream inside the header: G_IO_ERROR_CONNECTION_CLOSED; "
                  "the socket stays open for its owner");

  tcp_pair (&reader, &writer);
  rndz_frame_read_async (reader, NULL, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, 10000, NULL,
                         read_cb, &result);
  send_all (writer, "\0", 1);
  g_socket_close (writer, NULL);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  g_assert_false (result.ok);
  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_assert_false (g_socket_is_closed (reader));

  g_clear_error (&result.error);
  rndz_test_drain (NULL);
}

static void
test_frame_max_size (void)
{
  g_autoptr(GSocket) reader = NULL;
  g_autoptr(GSocket) writer = NULL;
  ReadResult result = { 0 };
  char frame[64];
  gsize len;

  g_test_summary ("A frame longer than max_size fails from its header alone");

  tcp_pair (&reader, &writer);
  len = encode_frame (RNDZ_MESSAGE_READY, 1, frame, sizeof frame);
  rndz_frame_read_async (reader, NULL, len - RNDZ_FRAME_HEADER_SIZE - 1, 10000, NULL,
                         read_cb, &result);
  send_all (writer, frame, len);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  g_assert_error (result.error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
  /* Only the header was taken */
  assert_receive (reader, frame + RNDZ_FRAME_HEADER_SIZE, len - RNDZ_FRAME_HEADER_SIZE);

  g_clear_error (&result.error);
  rndz_test_drain (NULL);
}

static void
test_frame_timeout (void)
{
  g_autoptr(GSocket) reader = NULL;
  g_autoptr(GSocket) writer = NULL;
  ReadResult result = { 0 };
  gint64 start = g_get_monotonic_time ();

  g_test_summary ("Half a frame and then nothing: G_IO_ERROR_TIMED_OUT");

  tcp_pair (&reader, &writer);
  rndz_frame_read_async (reader, NULL, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, 300, NULL,
                         read_cb, &result);
  send_all (writer, "\0\x10{", 3);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 290 * 1000);

  g_clear_error (&result.error);
  rndz_test_drain (NULL);
}

static void
test_frame_cancel (void)
{
  g_autoptr(GSocket) reader = NULL;
  g_autoptr(GSocket) writer = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  ReadResult result = { 0 };

  g_test_summary ("Cancelled in the middle of a frame: G_IO_ERROR_CANCELLED");

  tcp_pair (&reader, &writer);
  rndz_frame_read_async (reader, NULL, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, 0, cancellable,
                         read_cb, &result);
  send_all (writer, "\0\x10{", 3);
  rndz_test_run_for (NULL, 30);
  g_cancellable_cancel (cancellable);
  rndz_test_wait_true (NULL, &result.done, RNDZ_TEST_TIMEOUT_MS);

  g_assert_error (result.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  g_clear_error (&result.error);
  rndz_test_drain (NULL);
}

/* Another thread's own context: the reader's sources and its callback
 * belong there, not to the default context */
typedef struct
{
  GSocket *reader;
  ReadResult result;
} ThreadRead;

static gpointer
thread_read (gpointer user_data)
{
  ThreadRead *read = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();

  g_main_context_push_thread_default (context);
  rndz_frame_read_async (read->reader, context, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, 5000, NULL,
                         read_cb, &read->result);
  rndz_test_run_until_true (context, &read->result.done, 10000);
  g_main_context_pop_thread_default (context);
  return NULL;
}

static void
test_frame_thread_context (void)
{
  g_autoptr(GSocket) writer = NULL;
  ThreadRead read = { 0 };
  GThread *thread;
  char frame[64];
  gsize len;

  g_test_summary ("The reader runs on the context it is given, in another thread");

  tcp_pair (&read.reader, &writer);
  thread = g_thread_new ("reader", thread_read, &read);
  len = encode_frame (RNDZ_MESSAGE_WAIT, 7, frame, sizeof frame);
  send_all (writer, frame, len);
  g_thread_join (thread);

  g_assert_true (read.result.done);
  g_assert_no_error (read.result.error);
  g_assert_cmpint (read.result.msg.type, ==, RNDZ_MESSAGE_WAIT);
  g_clear_object (&read.reader);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_data_func ("/relay-join/udp/ready/ipv4", &data_ipv4, test_udp_ready);
  g_test_add_data_func ("/relay-join/udp/ready/ipv6", &data_ipv6, test_udp_ready);
  g_test_add_data_func ("/relay-join/udp/stray/ipv4", &data_ipv4, test_udp_stray);
  g_test_add_data_func ("/relay-join/udp/stray/ipv6", &data_ipv6, test_udp_stray);
  g_test_add_data_func ("/relay-join/udp/interval", &data_ipv4, test_udp_interval);
  g_test_add_data_func ("/relay-join/udp/timeout/ipv4", &data_ipv4, test_udp_timeout);
  g_test_add_data_func ("/relay-join/udp/timeout/ipv6", &data_ipv6, test_udp_timeout);
  g_test_add_data_func ("/relay-join/udp/refused/ipv4", &data_ipv4, test_udp_refused);
  g_test_add_data_func ("/relay-join/udp/refused/ipv6", &data_ipv6, test_udp_refused);
  g_test_add_data_func ("/relay-join/udp/cancel", &data_ipv4, test_udp_cancel);
  g_test_add_data_func ("/relay-join/udp/cancelled-before", &data_ipv4, test_udp_cancelled_before);

  g_test_add_data_func ("/relay-join/tcp/ready-then-data/ipv4", &data_ipv4, test_tcp_ready);
  g_test_add_data_func ("/relay-join/tcp/ready-then-data/ipv6", &data_ipv6, test_tcp_ready);
  g_test_add_data_func ("/relay-join/tcp/eof/ipv4", &data_ipv4, test_tcp_eof);
  g_test_add_data_func ("/relay-join/tcp/eof/ipv6", &data_ipv6, test_tcp_eof);
  g_test_add_func ("/relay-join/tcp/bad-answer", test_tcp_bad_answer);
  g_test_add_data_func ("/relay-join/tcp/timeout/ipv4", &data_ipv4, test_tcp_timeout);
  g_test_add_data_func ("/relay-join/tcp/timeout/ipv6", &data_ipv6, test_tcp_timeout);
  g_test_add_data_func ("/relay-join/tcp/cancel/ipv4", &data_ipv4, test_tcp_cancel);
  g_test_add_data_func ("/relay-join/tcp/cancel/ipv6", &data_ipv6, test_tcp_cancel);
  g_test_add_data_func ("/relay-join/tcp/refused/ipv4", &data_ipv4, test_tcp_refused);
  g_test_add_data_func ("/relay-join/tcp/refused/ipv6", &data_ipv6, test_tcp_refused);

  g_test_add_func ("/frame-reader/split", test_frame_split);
  g_test_add_func ("/frame-reader/eof", test_frame_eof);
  g_test_add_func ("/frame-reader/max-size", test_frame_max_size);
  g_test_add_func ("/frame-reader/timeout", test_frame_timeout);
  g_test_add_func ("/frame-reader/cancel", test_frame_cancel);
  g_test_add_func ("/frame-reader/thread-context", test_frame_thread_context);

  return g_test_run ();
}
