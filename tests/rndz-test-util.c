/* rndz-test-util.c: what the C tests share
 *
 * SPDX-License-Identifier: MIT
 *
 * Modelled on libsoup's tests/test-utils.c: one small library that every
 * test links, so that there is one way to wait, one way to start a
 * server and one way to play a peer.
 */

#include "rndz-test-util.h"

#include <string.h>

/* Main context */

static gboolean
set_flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs @context (NULL: the thread-default one) until @cond returns TRUE;
 * FALSE if it did not within @timeout_ms. @cond is checked after each
 * dispatch: it must come true in a callback of the context, or the wait
 * lasts until the timeout. */
gboolean
rndz_test_run_until (GMainContext *context,
                     RndzTestCond  cond,
                     gpointer      data,
                     guint         timeout_ms)
{
  g_autoptr(GMainContext) ctx = context != NULL ? g_main_context_ref (context)
                                                : g_main_context_ref_thread_default ();
  g_autoptr(GSource) timeout = g_timeout_source_new (timeout_ms);
  gboolean timed_out = FALSE;
  gboolean ok;

  g_source_set_callback (timeout, set_flag_cb, &timed_out, NULL);
  g_source_set_static_name (timeout, "rndz-test timeout");
  g_source_attach (timeout, ctx);
  while (!(ok = cond (data)) && !timed_out)
    g_main_context_iteration (ctx, TRUE);
  g_source_destroy (timeout);
  return ok;
}

static gboolean
flag_is_true (gpointer data)
{
  return *(const gboolean *) data;
}

gboolean
rndz_test_run_until_true (GMainContext   *context,
                          const gboolean *flag,
                          guint           timeout_ms)
{
  return rndz_test_run_until (context, flag_is_true, (gpointer) flag, timeout_ms);
}

static gboolean
pointer_is_set (gpointer data)
{
  return *(gpointer *) data != NULL;
}

gboolean
rndz_test_run_until_set (GMainContext *context,
                         gpointer     *pointer,
                         guint         timeout_ms)
{
  return rndz_test_run_until (context, pointer_is_set, pointer, timeout_ms);
}

static gboolean
socket_ready_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  return set_flag_cb (user_data);
}

/* Runs the context until @socket is readable or closed; FALSE after
 * @timeout_ms */
gboolean
rndz_test_run_until_readable (GMainContext *context,
                              GSocket      *socket,
                              guint         timeout_ms)
{
  g_autoptr(GMainContext) ctx = context != NULL ? g_main_context_ref (context)
                                                : g_main_context_ref_thread_default ();
  g_autoptr(GSource) ready_source = NULL;
  gboolean ready = FALSE;
  gboolean ok;

  ready_source = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (ready_source, G_SOURCE_FUNC (socket_ready_cb), &ready, NULL);
  g_source_attach (ready_source, ctx);
  ok = rndz_test_run_until_true (ctx, &ready, timeout_ms);
  g_source_destroy (ready_source);
  /* A zero timeout may fire before the socket's source is polled */
  return ok || g_socket_condition_check (socket, G_IO_IN | G_IO_HUP | G_IO_ERR) != 0;
}

static gboolean
never (gpointer data)
{
  return FALSE;
}

/* Runs the context for @ms milliseconds, whatever happens */
void
rndz_test_run_for (GMainContext *context,
                   guint         ms)
{
  rndz_test_run_until (context, never, NULL, ms);
}

/* Waits, @timeout_ms at most, for @cond, which looks at other
 * processes: nothing in this one wakes the main context when it turns
 * true, so it is asked every 10 ms, while the thread-default context
 * runs what is ready in between */
gboolean
rndz_test_poll_until (RndzTestCond cond,
                      gpointer     data,
                      guint        timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (!cond (data))
    {
      if (g_get_monotonic_time () >= deadline)
        return FALSE;
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (10 * 1000);
    }
  return TRUE;
}

/* Dispatches what is ready: lets closed sockets' sources go */
void
rndz_test_drain (GMainContext *context)
{
  g_autoptr(GMainContext) ctx = context != NULL ? g_main_context_ref (context)
                                                : g_main_context_ref_thread_default ();

  while (g_main_context_iteration (ctx, FALSE))
    ;
}

void
rndz_test_async_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  GAsyncResult **out = user_data;

  g_assert_null (*out);
  *out = g_object_ref (result);
}

/* Runs the context until rndz_test_async_cb() stored *@result; fails
 * the test after @timeout_ms. Returns *@result (still owned there). */
GAsyncResult *
rndz_test_wait_async (GMainContext  *context,
                      GAsyncResult **result,
                      guint          timeout_ms)
{
  if (!rndz_test_run_until_set (context, (gpointer *) result, timeout_ms))
    g_error ("No async result within %u ms", timeout_ms);
  return *result;
}

/* The environment */

gboolean
rndz_test_under_valgrind (void)
{
  return g_getenv ("RNDZ_UNDER_VALGRIND") != NULL;
}

/* How many entries the directory @path has: files, or a process's open
 * descriptors in /proc/PID/fd */
guint
rndz_test_count_entries (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

/* Linux: how many SYNs met a full accept queue in this network
 * namespace (and were dropped unanswered), or -1 if it does not say.
 * A test counts the SYNs sent to a port that listens with a full queue
 * by it (other tests running beside it may add some). */
gint64
rndz_test_listen_overflows (void)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/net/netstat", &text, NULL, NULL))
    return -1;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL && lines[i + 1] != NULL; i++)
    {
      g_auto(GStrv) names = g_strsplit (lines[i], " ", -1);
      g_auto(GStrv) values = g_strsplit (lines[i + 1], " ", -1);

      if (!g_str_equal (names[0], "TcpExt:") || !g_str_equal (values[0], "TcpExt:"))
        continue;
      for (guint j = 1; names[j] != NULL && values[j] != NULL; j++)
        if (g_str_equal (names[j], "ListenOverflows"))
          return g_ascii_strtoll (values[j], NULL, 10);
    }
  return -1;
}

/* Whether ::1 can be bound: containers often have no IPv6 */
gboolean
rndz_test_have_ipv6 (void)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV6, 0);

  socket = g_socket_new (G_SOCKET_FAMILY_IPV6, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, NULL);
  return socket != NULL && g_socket_bind (socket, address, FALSE, NULL);
}

/* Addresses and sockets */

RndzAddr
rndz_test_addr (const char *text)
{
  g_autoptr(GError) error = NULL;
  RndzAddr a;

  g_assert_true (rndz_addr_parse (&a, text, &error));
  g_assert_no_error (error);
  return a;
}

GSocketAddress *
rndz_test_loopback_address (GSocketFamily family,
                            guint16       port)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (family);

  return g_inet_socket_address_new (loopback, port);
}

/* "127.0.0.1:PORT" or "[::1]:PORT", as clients take servers */
char *
rndz_test_loopback_string (GSocketFamily family,
                           guint16       port)
{
  if (family == G_SOCKET_FAMILY_IPV6)
    return g_strdup_printf ("[::1]:%u", port);
  return g_strdup_printf ("127.0.0.1:%u", port);
}

/* A non-blocking socket bound to the loopback, port 0; a stream socket
 * listens. Not SO_REUSEPORT for UDP: a test may hold a port so that
 * nothing else takes it. */
GSocket *
rndz_test_socket_new (GSocketFamily  family,
                      GSocketType    type,
                      RndzAddr      *local)
{
  g_autoptr(GSocketAddress) address = rndz_test_loopback_address (family, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (family, type, 0, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  g_assert_true (g_socket_bind (socket, address, type == G_SOCKET_TYPE_STREAM, &error));
  g_assert_no_error (error);
  if (type == G_SOCKET_TYPE_STREAM)
    {
      g_assert_true (g_socket_listen (socket, &error));
      g_assert_no_error (error);
    }

  if (local != NULL)
    {
      bound = g_socket_get_local_address (socket, &error);
      g_assert_no_error (error);
      g_assert_true (rndz_addr_from_socket_address (local, bound));
    }
  return g_steal_pointer (&socket);
}

/* The lowest port the kernel hands out for a bind to port 0 */
static guint
ephemeral_low (void)
{
  g_autofree char *range = NULL;
  guint64 low;

  if (!g_file_get_contents ("/proc/sys/net/ipv4/ip_local_port_range", &range, NULL, NULL))
    return 32768;
  low = g_ascii_strtoull (range, NULL, 10);
  return low > 2048 && low <= G_MAXUINT16 ? (guint) low : 32768;
}

static gboolean
port_is_free (GSocketFamily  family,
              GSocketType    type,
              guint16        port)
{
  g_autoptr(GSocketAddress) address = rndz_test_loopback_address (family, port);
  g_autoptr(GSocket) socket = g_socket_new (family, type, 0, NULL);

  return socket != NULL && g_socket_bind (socket, address, FALSE, NULL);
}

/* A port on the loopback of @family that nothing holds now, for UDP and
 * for TCP. It lies below the kernel's ephemeral range, so no socket bound
 * to port 0 (other tests running beside this one, their connections) can
 * take it before the caller does; only another test picking a fixed port
 * could, one chance in thousands. */
guint16
rndz_test_free_port_for (GSocketFamily family)
{
  guint low = ephemeral_low ();
  guint first = low > 12000 ? 10000 : 1024;

  for (guint attempt = 0; attempt < 256; attempt++)
    {
      guint16 port = g_random_int_range (first, low);

      if (port_is_free (family, G_SOCKET_TYPE_DATAGRAM, port) &&
          port_is_free (family, G_SOCKET_TYPE_STREAM, port))
        return port;
    }

  g_assert_not_reached ();
}

/* A port on 127.0.0.1 that nothing holds, for UDP and for TCP */
guint16
rndz_test_free_port (void)
{
  return rndz_test_free_port_for (G_SOCKET_FAMILY_IPV4);
}

#ifdef RNDZ_HAVE_SERVER
/* Has @server listen on the loopback of @family, at @port (0: any);
 * returns the port */
guint16
rndz_test_server_listen (RndzServer    *server,
                         GSocketFamily  family,
                         guint16        port)
{
  g_autoptr(GSocketAddress) address = rndz_test_loopback_address (family, port);
  g_autoptr(GError) error = NULL;

  rndz_server_listen (server, address, &error);
  g_assert_no_error (error);
  port = rndz_server_get_port (server);
  g_assert_cmpuint (port, !=, 0);
  return port;
}

/* A server listening on the loopback of @family, port 0, on the
 * thread-default context; @address (if not NULL) gets "HOST:PORT" */
RndzServer *
rndz_test_server_new (GSocketFamily   family,
                      char          **address)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  guint16 port = rndz_test_server_listen (server, family, 0);

  if (address != NULL)
    *address = rndz_test_loopback_string (family, port);
  return g_steal_pointer (&server);
}

static void
capture_cb (const RndzAddr *to,
            const char     *data,
            gsize           len,
            gpointer        user_data)
{
  RndzTestSent sent = { *to, len };

  g_assert_true (rndz_message_decode (&sent.msg, data, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL));
  g_array_append_val (user_data, sent);
}

/* What @server sends over UDP from now on goes into the array returned,
 * not to a socket. The array must outlive the server (or its sender). */
GArray *
rndz_test_capture_sent (RndzServer *server)
{
  GArray *sent = g_array_new (FALSE, FALSE, sizeof (RndzTestSent));

  rndz_server_set_udp_sender (server, capture_cb, sent);
  return sent;
}

guint
rndz_test_count_sent (GArray          *sent,
                      RndzMessageType  type)
{
  guint n = 0;

  for (guint i = 0; i < sent->len; i++)
    if (g_array_index (sent, RndzTestSent, i).msg.type == type)
      n++;
  return n;
}

/* @data, as a datagram from @from ("HOST:PORT") */
void
rndz_test_feed_datagram (RndzServer *server,
                         const char *from,
                         const char *data,
                         gsize       len)
{
  RndzAddr source = rndz_test_addr (from);

  rndz_server_receive_datagram (server, &source, data, len);
}

/* @msg, encoded (padded as clients pad, if @pad), as a datagram from
 * @from; returns its size */
gsize
rndz_test_feed (RndzServer  *server,
                const char  *from,
                RndzMessage *msg,
                gboolean     pad)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  if (pad)
    msg->pad_to = rndz_message_max_reply_size (msg);
  len = rndz_message_encode (msg, buf, sizeof buf);
  g_assert_cmpuint (len, >, 0);
  rndz_test_feed_datagram (server, from, buf, len);
  return len;
}
#endif

/* Raw peers */

/* A peer on the loopback of @family, talking to @port there. A TCP
 * peer is connected already: the kernel completes the handshake from
 * the listen backlog, so a blocking connect() needs no main context. */
RndzTestPeer *
rndz_test_peer_new (RndzTransport transport,
                    GSocketFamily family,
                    guint16       port)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) error = NULL;
  RndzTestPeer *peer = g_new0 (RndzTestPeer, 1);

  peer->transport = transport;
  peer->to = rndz_test_loopback_address (family, port);
  if (transport == RNDZ_TRANSPORT_UDP)
    {
      g_autoptr(GSocketAddress) any_port = rndz_test_loopback_address (family, 0);

      peer->socket = g_socket_new (family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
      g_assert_no_error (error);
      g_socket_bind (peer->socket, any_port, FALSE, &error);
      g_assert_no_error (error);
    }
  else
    {
      peer->socket = g_socket_new (family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
      g_assert_no_error (error);
      g_socket_connect (peer->socket, peer->to, NULL, &error);
      g_assert_no_error (error);
    }
  g_socket_set_blocking (peer->socket, FALSE);

  local = g_socket_get_local_address (peer->socket, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&peer->local, local));
  return peer;
}

void
rndz_test_peer_free (RndzTestPeer *peer)
{
  g_socket_close (peer->socket, NULL);
  g_object_unref (peer->socket);
  g_object_unref (peer->to);
  g_free (peer);
}

void
rndz_test_peer_send_raw (RndzTestPeer *peer,
                         const void   *data,
                         gsize         len)
{
  g_autoptr(GError) error = NULL;
  gssize n;

  if (peer->transport == RNDZ_TRANSPORT_UDP)
    n = g_socket_send_to (peer->socket, peer->to, data, len, NULL, &error);
  else
    n = g_socket_send (peer->socket, data, len, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, ==, len);
}

/* A datagram, or a frame over TCP, as encoded */
void
rndz_test_peer_send_unpadded (RndzTestPeer      *peer,
                              const RndzMessage *msg)
{
  char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  if (peer->transport == RNDZ_TRANSPORT_UDP)
    len = rndz_message_encode (msg, buf, sizeof buf);
  else
    len = rndz_message_encode_frame (msg, buf, sizeof buf);
  g_assert_cmpuint (len, >, 0);
  rndz_test_peer_send_raw (peer, buf, len);
}

/* Datagrams are padded as clients pad them: the server never answers a
 * datagram with a larger one */
void
rndz_test_peer_send (RndzTestPeer      *peer,
                     const RndzMessage *msg)
{
  RndzMessage padded = *msg;

  if (peer->transport == RNDZ_TRANSPORT_UDP)
    padded.pad_to = rndz_message_max_reply_size (msg);
  rndz_test_peer_send_unpadded (peer, &padded);
}

/* Runs the context until @socket is readable or closed; fails the test,
 * saying it waited for @what, after @timeout_ms */
void
rndz_test_wait_readable (GMainContext *context,
                         GSocket      *socket,
                         guint         timeout_ms,
                         const char   *what)
{
  if (!rndz_test_run_until_readable (context, socket, timeout_ms))
    g_error ("Timed out after %u ms waiting for %s", timeout_ms, what);
}

static gssize
receive_datagram (GMainContext    *context,
                  GSocket         *socket,
                  GSocketAddress **from,
                  char            *buf,
                  gsize            size,
                  guint            timeout_ms,
                  const char      *what)
{
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gssize n;

      rndz_test_wait_readable (context, socket, timeout_ms, what);
      if (from != NULL)
        g_clear_object (from);
      n = g_socket_receive_from (socket, from, buf, size, NULL, &error);
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          g_assert_no_error (error);
          return n;
        }
    }
}

/* One datagram, within @timeout_ms (the test fails otherwise) */
gssize
rndz_test_receive_from (GMainContext    *context,
                        GSocket         *socket,
                        GSocketAddress **from,
                        char            *buf,
                        gsize            size,
                        guint            timeout_ms)
{
  return receive_datagram (context, socket, from, buf, size, timeout_ms, "a datagram");
}

/* Exactly @len bytes from a stream socket, however they come; fails the
 * test on EOF or after @timeout_ms of waiting for more */
void
rndz_test_read_exactly (GMainContext *context,
                        GSocket      *socket,
                        char         *buf,
                        gsize         len,
                        guint         timeout_ms)
{
  gsize got = 0;

  while (got < len)
    {
      g_autoptr(GError) error = NULL;
      gssize n;

      rndz_test_wait_readable (context, socket, timeout_ms, "the rest of a read");
      n = g_socket_receive_with_blocking (socket, buf + got, len - got, FALSE, NULL, &error);
      if (n > 0)
        {
          got += n;
          continue;
        }
      g_assert_cmpint (n, !=, 0);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
    }
}

/* TCP: reads up to the end of the next frame, never further: what
 * follows it may be data for the test, not for the peer */
static void
peer_read_frame (GMainContext *context,
                 RndzTestPeer *peer,
                 guint         timeout_ms,
                 const char   *what)
{
  g_autoptr(GError) error = NULL;
  gsize want;
  gssize n;

  rndz_test_wait_readable (context, peer->socket, timeout_ms, what);
  if (peer->in_len < RNDZ_FRAME_HEADER_SIZE)
    want = RNDZ_FRAME_HEADER_SIZE - peer->in_len;
  else
    want = RNDZ_FRAME_HEADER_SIZE + ((peer->in_buf[0] << 8) | peer->in_buf[1]) - peer->in_len;
  n = g_socket_receive (peer->socket, (char *) peer->in_buf + peer->in_len, want, NULL, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return;
  g_assert_no_error (error);
  if (n == 0)
    g_error ("The server closed the connection while we waited for %s", what);
  peer->in_len += n;
}

/* One datagram or frame's payload, nul-terminated; fails the test after
 * @timeout_ms. A datagram must come from the port the peer sends to. */
char *
rndz_test_peer_recv_payload (GMainContext *context,
                             RndzTestPeer *peer,
                             gsize        *len_out,
                             guint         timeout_ms,
                             const char   *what)
{
  if (peer->transport == RNDZ_TRANSPORT_UDP)
    {
      g_autoptr(GSocketAddress) from = NULL;
      g_autofree char *buf = g_malloc (RNDZ_MESSAGE_MAX_MAX_SIZE);
      gssize n = receive_datagram (context, peer->socket, &from, buf,
                                   RNDZ_MESSAGE_MAX_MAX_SIZE, timeout_ms, what);

      g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (from)), ==,
                        g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (peer->to)));
      *len_out = n;
      return g_strndup (buf, n);
    }

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      gssize payload = rndz_frame_peek (peer->in_buf, peer->in_len,
                                        RNDZ_MESSAGE_MAX_MAX_SIZE, &error);

      g_assert_no_error (error);
      if (payload > 0)
        {
          char *text = g_strndup ((const char *) peer->in_buf + RNDZ_FRAME_HEADER_SIZE, payload);

          peer->in_len -= RNDZ_FRAME_HEADER_SIZE + payload;
          memmove (peer->in_buf, peer->in_buf + RNDZ_FRAME_HEADER_SIZE + payload, peer->in_len);
          *len_out = payload;
          return text;
        }
      peer_read_frame (context, peer, timeout_ms, what);
    }
}

void
rndz_test_peer_recv (GMainContext *context,
                     RndzTestPeer *peer,
                     RndzMessage  *msg,
                     guint         timeout_ms,
                     const char   *what)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *payload = NULL;
  gsize len;

  payload = rndz_test_peer_recv_payload (context, peer, &len, timeout_ms, what);
  rndz_message_decode (msg, payload, len, RNDZ_MESSAGE_MAX_MAX_SIZE, &error);
  g_assert_no_error (error);
}

/* One message of @type (and of @tid, unless 0), into @msg if not NULL */
void
rndz_test_peer_expect (GMainContext    *context,
                       RndzTestPeer    *peer,
                       RndzMessageType  type,
                       guint32          tid,
                       RndzMessage     *msg,
                       guint            timeout_ms)
{
  RndzMessage got;

  rndz_test_peer_recv (context, peer, &got, timeout_ms, rndz_message_type_to_string (type));
  /* As names: a failure then says which message came instead */
  g_assert_cmpstr (rndz_message_type_to_string (got.type), ==, rndz_message_type_to_string (type));
  if (tid != 0)
    g_assert_cmpuint (got.tid, ==, tid);
  if (msg != NULL)
    *msg = got;
}

/* The server closes @peer's connection (EOF, or a reset when input was
 * left unread), sending nothing first */
void
rndz_test_peer_expect_closed (GMainContext *context,
                              RndzTestPeer *peer,
                              guint         timeout_ms)
{
  g_autoptr(GError) error = NULL;
  char buf[256];
  gssize n;

  g_assert_cmpint (peer->transport, ==, RNDZ_TRANSPORT_TCP);
  g_assert_cmpuint (peer->in_len, ==, 0);
  do
    {
      g_clear_error (&error);
      rndz_test_wait_readable (context, peer->socket, timeout_ms,
                               "the server to close the connection");
      n = g_socket_receive (peer->socket, buf, sizeof buf, NULL, &error);
    }
  while (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK));

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    return;
  g_assert_no_error (error);
  g_assert_cmpint (n, ==, 0);
}

/* Nothing arrives for @peer in @quiet_ms */
void
rndz_test_peer_expect_silence (GMainContext *context,
                               RndzTestPeer *peer,
                               guint         quiet_ms)
{
  rndz_test_run_for (context, quiet_ms);
  g_assert_cmpuint (peer->in_len, ==, 0);
  g_assert_cmpuint (g_socket_condition_check (peer->socket, G_IO_IN | G_IO_HUP | G_IO_ERR), ==, 0);
}
