/* test-app-socket.c: what reaches the application's UDP sockets
 *
 * SPDX-License-Identifier: MIT
 *
 * After a UDP rendezvous each side's application holds a socket for its
 * peer. Only that peer's datagrams may reach it, and never a message of
 * the protocol: not a stranger's datagram, not a forged control message,
 * not the peer's own late retransmissions (issue 18, finding 9). The
 * strangers send from another port of 127.0.0.1 and from 127.0.0.2, to
 * both peers' ports; the peers send each other every message type on
 * their application sockets, as a late retransmission would come; and
 * then one datagram of data each way, which must still arrive.
 */

#include <gio/gio.h>
#include <signal.h>
#include <string.h>

#include "rndz-test-util.h"
#include "rndz-connect-private.h"
#include "rndz-udp-filter-private.h"

/* Data datagrams each stranger sends to each port */
#define N_STRANGER 20
/* How long a socket must stay quiet before its queue counts as read */
#define QUIET_MS 300

typedef struct
{
  RndzServer *server;
  char *address;
  RndzClient *alice;            /* listens */
  RndzClient *bob;              /* connects */
  GSocket *listening;           /* what listen_udp returned */
  GSocket *alice_peer;          /* peer-socket's; the listening one without it */
  GSocket *bob_socket;          /* what connect_udp returned */
  gboolean got_peer_socket;
} Pair;

/* What a socket received, by kind */
typedef struct
{
  guint data;                   /* the peer's "data" datagram */
  guint control;                /* a message of the protocol */
  guint other;                  /* anything else (a stranger's) */
} Received;

static void
peer_socket_cb (RndzClient *client,
                const char *peer_id,
                GSocket    *socket,
                gpointer    user_data)
{
  Pair *pair = user_data;

  g_assert_cmpstr (peer_id, ==, "bob");
  g_clear_object (&pair->alice_peer);
  pair->alice_peer = g_object_ref (socket);
  pair->got_peer_socket = TRUE;
}

/* A server, alice listening and bob connected to her; @relayed: through
 * the server's relay */
static void
pair_setup (Pair     *pair,
            gboolean  relayed)
{
  const char *servers[2] = { NULL, NULL };
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  guint16 port;

  pair->server = rndz_server_new ();
  if (relayed)
    rndz_server_set_relay_port (pair->server, rndz_test_free_port ());
  port = rndz_test_server_listen (pair->server, G_SOCKET_FAMILY_IPV4, 0);
  pair->address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, port);
  servers[0] = pair->address;

  pair->alice = rndz_client_new ("alice", servers);
  g_signal_connect (pair->alice, "peer-socket", G_CALLBACK (peer_socket_cb), pair);
  rndz_client_listen_udp_async (pair->alice, NULL, rndz_test_async_cb, &result);
  pair->listening = rndz_client_listen_udp_finish (pair->alice,
                                                   rndz_test_wait_async (NULL, &result, 5000),
                                                   &error);
  g_assert_no_error (error);
  g_clear_object (&result);

  pair->bob = rndz_client_new ("bob", servers);
  if (relayed)
    {
      rndz_client_set_direct_timeout (pair->bob, 200);
      rndz_connect_try_direct = FALSE;
    }
  rndz_client_connect_udp_async (pair->bob, "alice", NULL, rndz_test_async_cb, &result);
  pair->bob_socket = rndz_client_connect_udp_finish (pair->bob,
                                                     rndz_test_wait_async (NULL, &result, 8000),
                                                     &error);
  rndz_connect_try_direct = TRUE;
  g_assert_no_error (error);
  g_assert_cmpint (rndz_socket_get_path (pair->bob_socket) == RNDZ_PATH_RELAYED, ==, relayed);

  /* Before sockets of their own, a direct peer's datagrams came to the
   * listening socket: that is then the one to watch */
  rndz_test_run_until_true (NULL, &pair->got_peer_socket, 2000);
  if (pair->alice_peer == NULL)
    {
      g_test_message ("No peer-socket for bob: watching the listening socket");
      g_assert_false (relayed);
      pair->alice_peer = g_object_ref (pair->listening);
    }
}

static void
pair_clear (Pair *pair)
{
  g_clear_object (&pair->bob_socket);
  g_clear_object (&pair->alice_peer);
  g_clear_object (&pair->listening);
  g_clear_object (&pair->bob);
  g_clear_object (&pair->alice);
  g_clear_object (&pair->server);
  g_clear_pointer (&pair->address, g_free);
  /* The clients' sources go with them */
  rndz_test_drain (NULL);
}

/* @type as rndz-glib writes it, with every field it may carry */
static gsize
encode_type (RndzMessageType  type,
             const char      *id,
             const char      *target,
             char             buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE])
{
  RndzMessage msg;

  rndz_message_init (&msg, type, 42);
  g_strlcpy (msg.id, id, sizeof msg.id);
  g_strlcpy (msg.target, target, sizeof msg.target);
  msg.addr = rndz_test_addr ("127.0.0.1:9");
  g_strlcpy (msg.token, "0123456789abcdef0123456789abcdef", sizeof msg.token);
  msg.port = 9;
  return rndz_message_encode (&msg, buf, RNDZ_MESSAGE_DEFAULT_MAX_SIZE);
}

/* Every message type from @socket to @to (%NULL: its peer). Returns how
 * many were sent. */
static guint
send_every_type (GSocket        *socket,
                 GSocketAddress *to,
                 const char     *id,
                 const char     *target)
{
  guint n = 0;

  for (RndzMessageType type = RNDZ_MESSAGE_PING; type <= RNDZ_MESSAGE_LAST; type++)
    {
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
      gsize len = encode_type (type, id, target, buf);
      gssize sent;

      g_assert_cmpuint (len, >, 0);
      sent = to != NULL ? g_socket_send_to (socket, to, buf, len, NULL, NULL)
                        : g_socket_send (socket, buf, len, NULL, NULL);
      n += sent == (gssize) len;
    }
  return n;
}

static void
send_data (GSocket        *socket,
           GSocketAddress *to,
           const char     *text)
{
  g_autoptr(GError) error = NULL;
  gssize sent = to != NULL ? g_socket_send_to (socket, to, text, strlen (text), NULL, &error)
                           : g_socket_send (socket, text, strlen (text), NULL, &error);

  g_assert_no_error (error);
  g_assert_cmpint (sent, ==, (gssize) strlen (text));
}

/* Reads @socket until it has been quiet for QUIET_MS */
static Received
receive_all (GSocket *socket)
{
  Received received = { 0 };

  while (rndz_test_run_until_readable (NULL, socket, QUIET_MS))
    {
      char buf[2048];
      gssize n = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);
      RndzMessage msg;

      if (n < 0)
        continue;
      if (n == 4 && memcmp (buf, "data", 4) == 0)
        received.data++;
      else if (rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) ||
               (n > 0 && buf[0] == '{'))
        received.control++;
      else
        received.other++;
    }
  return received;
}

/* A UDP socket on @host, port 0 */
static GSocket *
stranger_new (const char *host)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) local = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocket) socket = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
  g_assert_nonnull (socket);
  g_socket_set_blocking (socket, FALSE);
  if (!g_socket_bind (socket, local, FALSE, NULL))
    return NULL;
  return g_steal_pointer (&socket);
}

/* What strangers throw at @port: N_STRANGER datagrams of data and every
 * message type, from 127.0.0.1 and 127.0.0.2 */
static guint
strangers_send (guint16 port)
{
  const char *hosts[] = { "127.0.0.1", "127.0.0.2" };
  g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  guint sent = 0;

  for (guint h = 0; h < G_N_ELEMENTS (hosts); h++)
    {
      g_autoptr(GSocket) stranger = stranger_new (hosts[h]);

      if (stranger == NULL)
        continue;
      for (guint i = 0; i < N_STRANGER; i++)
        sent += g_socket_send_to (stranger, to, "stranger", 8, NULL, NULL) == 8;
      sent += send_every_type (stranger, to, "bob", "alice");
    }
  return sent;
}

static guint16
local_port (GSocket *socket)
{
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (socket, NULL);

  g_assert_nonnull (local);
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
}

static void
check_pair (Pair *pair)
{
  g_autoptr(GSocketAddress) bob_address = g_socket_get_local_address (pair->bob_socket, NULL);
  guint to_alice, to_bob, late_alice, late_bob;
  Received alice, bob, listening = { 0 };
  gboolean own = pair->alice_peer != pair->listening;

  /* Strangers, at both peers' ports */
  to_alice = strangers_send (rndz_client_get_local_port (pair->alice));
  to_alice += strangers_send (local_port (pair->alice_peer));
  to_bob = strangers_send (local_port (pair->bob_socket));

  /* The peers' own late messages, every type, on the application's
   * sockets (alice's listening one is not connected to bob) */
  late_alice = send_every_type (pair->bob_socket, NULL, "bob", "alice");
  late_bob = own ? send_every_type (pair->alice_peer, NULL, "alice", "bob")
                 : send_every_type (pair->alice_peer, bob_address, "alice", "bob");

  /* And the data, behind all that */
  send_data (pair->bob_socket, NULL, "data");
  send_data (pair->alice_peer, own ? NULL : bob_address, "data");

  alice = receive_all (pair->alice_peer);
  bob = receive_all (pair->bob_socket);
  if (own)
    listening = receive_all (pair->listening);

  g_test_message ("alice's socket: %u data, %u protocol messages, %u other "
                  "(of %u from strangers, %u from bob)",
                  alice.data, alice.control, alice.other, to_alice, late_alice);
  g_test_message ("bob's socket: %u data, %u protocol messages, %u other "
                  "(of %u from strangers, %u from alice)",
                  bob.data, bob.control, bob.other, to_bob, late_bob);
  g_test_message ("alice's listening socket: %u protocol messages, %u other",
                  listening.control, listening.other);

  g_assert_true (own);
  g_assert_cmpuint (alice.control, ==, 0);
  g_assert_cmpuint (alice.other, ==, 0);
  g_assert_cmpuint (alice.data, ==, 1);
  g_assert_cmpuint (bob.control, ==, 0);
  g_assert_cmpuint (bob.other, ==, 0);
  g_assert_cmpuint (bob.data, ==, 1);
  /* No protocol message reaches the listening socket either */
  g_assert_cmpuint (listening.control, ==, 0);
}

static void
test_direct (void)
{
  Pair pair = { 0 };

  g_test_summary ("After a direct UDP rendezvous, each application socket gets its peer's "
                  "data and nothing else: no stranger's datagram, no protocol message");

  pair_setup (&pair, FALSE);
  check_pair (&pair);
  pair_clear (&pair);
}

static void
test_relayed (void)
{
  Pair pair = { 0 };

  g_test_summary ("After a relayed UDP rendezvous, each application socket gets its peer's "
                  "data and nothing else: the relay forwards the peer's protocol messages, "
                  "the socket drops them");

  pair_setup (&pair, TRUE);
  check_pair (&pair);
  pair_clear (&pair);
}

/* The tool */

static const char *
tool_path (void)
{
  const char *path = g_getenv ("RNDZ_TOOL");

  return path != NULL ? path : "rndz";
}

static GSubprocess *
tool_start (const char * const  *argv,
            GDataInputStream   **out)
{
  g_autoptr(GError) error = NULL;
  GSubprocess *process;

  process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                     G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error);
  g_assert_no_error (error);
  *out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));
  return process;
}

static char *
tool_read_line (GDataInputStream *out)
{
  g_autoptr(GAsyncResult) result = NULL;

  g_data_input_stream_read_line_async (out, G_PRIORITY_DEFAULT, NULL,
                                       rndz_test_async_cb, &result);
  rndz_test_wait_async (NULL, &result, 10000);
  return g_data_input_stream_read_line_finish_utf8 (out, result, NULL, NULL);
}

static void
tool_stop (GSubprocess *process)
{
  g_subprocess_send_signal (process, SIGKILL);
  g_subprocess_wait (process, NULL, NULL);
}

/* Counts what comes back to @stranger within QUIET_MS of the last */
static guint
count_echoes (GSocket *stranger)
{
  guint n = 0;

  while (rndz_test_run_until_readable (NULL, stranger, QUIET_MS))
    {
      char buf[2048];

      n += g_socket_receive (stranger, buf, sizeof buf, NULL, NULL) >= 0;
    }
  return n;
}

static void
test_tool_strangers (void)
{
  const char *server_argv[] = { tool_path (), "server", "--listen-addr", "127.0.0.1:0", NULL };
  g_autoptr(GDataInputStream) server_out = NULL, listener_out = NULL;
  g_autoptr(GSubprocess) server = tool_start (server_argv, &server_out);
  g_autoptr(GSubprocess) listener = NULL;
  g_autoptr(GSubprocess) connector = NULL;
  g_autofree char *line = NULL, *address = NULL, *out = NULL;
  g_autoptr(GSocket) stranger = stranger_new ("127.0.0.1");
  g_autoptr(GSocketAddress) to = NULL;
  g_autoptr(GError) error = NULL;
  guint sent = 0, echoed;
  guint64 port;

  g_test_summary ("A listening `rndz client` echoes its peers only: a stranger's datagrams "
                  "and protocol messages get nothing back");

  line = tool_read_line (server_out);
  g_assert_true (g_str_has_prefix (line, "Listening on "));
  address = g_strdup (line + strlen ("Listening on "));
  g_clear_pointer (&line, g_free);

  {
    const char *argv[] = { tool_path (), "client", "--id", "alice", "--server-addr", address,
                           NULL };

    listener = tool_start (argv, &listener_out);
  }
  line = tool_read_line (listener_out);
  g_assert_true (g_str_has_prefix (line, "Registered as alice on port "));
  port = g_ascii_strtoull (line + strlen ("Registered as alice on port "), NULL, 10);
  g_assert_cmpuint (port, >, 0);

  /* A stranger at the listener's port */
  to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  for (guint i = 0; i < N_STRANGER; i++)
    sent += g_socket_send_to (stranger, to, "stranger", 8, NULL, NULL) == 8;
  sent += send_every_type (stranger, to, "bob", "alice");
  echoed = count_echoes (stranger);
  g_test_message ("%u of %u datagrams of a stranger echoed", echoed, sent);

  /* A peer of the rendezvous still gets its echo */
  {
    const char *argv[] = { tool_path (), "client", "--id", "bob", "--server-addr", address,
                           "--remote-peer", "alice", "--message", "hi", "--timeout", "10", NULL };

    connector = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                         G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error);
    g_assert_no_error (error);
    g_assert_true (g_subprocess_communicate_utf8 (connector, NULL, NULL, &out, NULL, &error));
    g_assert_no_error (error);
  }

  tool_stop (listener);
  tool_stop (server);
  g_assert_cmpuint (echoed, ==, 0);
  g_assert_cmpstr (out, ==, "hi\n");
}

/* The filters themselves */

static void
test_prefix (void)
{
  g_test_summary ("Every message rndz-glib writes starts with the bytes the sockets' "
                  "filters drop");

  for (RndzMessageType type = RNDZ_MESSAGE_PING; type <= RNDZ_MESSAGE_LAST; type++)
    {
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
      gsize len = encode_type (type, "bob", "alice", buf);

      g_assert_true (rndz_udp_is_control_datagram (buf, len));
    }
  g_assert_cmpuint (strlen (RNDZ_CONTROL_PREFIX), ==, RNDZ_CONTROL_PREFIX_LEN);
  g_assert_false (rndz_udp_is_control_datagram (RNDZ_CONTROL_PREFIX, RNDZ_CONTROL_PREFIX_LEN - 1));
  g_assert_false (rndz_udp_is_control_datagram ("{ \"v\":1,\"type\":\"use\"}", 21));
}

/* What gets through @filter, of the datagrams below, as a string of their
 * letters */
static char *
filtered (RndzUdpFilter filter)
{
  static const struct
  {
    char letter;
    const char *data;
  } datagrams[] = {
    { 'a', "" },                                        /* empty */
    { 'b', "hi" },                                      /* short */
    { 'c', "{\"v\":1,\"type\":" },                      /* 14 bytes of the prefix */
    { 'd', "{\"v\":1,\"type\":\"" },                     /* the prefix, nothing more */
    { 'e', "{\"v\":1,\"type\":\"use\",\"tid\":1}" },
    { 'f', "{\"v\":1,\"type\":\"use\"" },
    { 'g', "{\"v\":1,\"type\":\"us\"" },
    { 'h', "{\"v\":1,\"type\":\"check\",\"tid\":1}" },
    { 'i', "{\"v\":2,\"type\":\"check\",\"tid\":1}" },   /* not as rndz-glib writes */
    { 'j', "{\"v\":1, \"type\":\"check\",\"tid\":1}" },
    { 'k', "Xv\":1,\"type\":\"check\",\"tid\":1}" },
    { 'l', "{\"v\":1,\"type\":Xcheck\"" },              /* the last byte differs */
    { 'm', "{\"v\":1,\"type\":\"wait\",\"tid\":1}" },
    { 'n', "{\"v\":1,\"type\":\"ready\",\"tid\":1}" },
  };
  RndzAddr local;
  g_autoptr(GSocket) socket = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                                    &local);
  g_autoptr(GSocket) sender = stranger_new ("127.0.0.1");
  g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, local.port);
  g_autoptr(GError) error = NULL;
  GString *got = g_string_new (NULL);

  g_assert_true (rndz_udp_filter_set (socket, filter, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (datagrams); i++)
    g_assert_cmpint (g_socket_send_to (sender, to, datagrams[i].data, strlen (datagrams[i].data),
                                       NULL, NULL), ==, (gssize) strlen (datagrams[i].data));

  while (rndz_test_run_until_readable (NULL, socket, 100))
    {
      char buf[64];
      gssize n = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);

      for (guint i = 0; i < G_N_ELEMENTS (datagrams) && n >= 0; i++)
        if ((gsize) n == strlen (datagrams[i].data) && memcmp (buf, datagrams[i].data, n) == 0)
          g_string_append_c (got, datagrams[i].letter);
    }
  return g_string_free (got, FALSE);
}

static void
test_filters (void)
{
  g_autofree char *application = filtered (RNDZ_UDP_FILTER_APPLICATION);
  g_autofree char *use_and_data = filtered (RNDZ_UDP_FILTER_USE_AND_DATA);
  g_autofree char *answers_and_data = filtered (RNDZ_UDP_FILTER_ANSWERS_AND_DATA);

  g_test_summary ("The application's sockets drop exactly the datagrams that start with "
                  "the prefix, whatever their length; a requester's chosen socket lets a "
                  "use in too, a relay join's a wait and a ready");

  g_assert_cmpstr (application, ==, "abcijkl");
  g_assert_cmpstr (use_and_data, ==, "abcefijkl");
  g_assert_cmpstr (answers_and_data, ==, "abcijklmn");
}

/* rndz_udp_hand_over(): what was queued before goes */
static void
test_hand_over (void)
{
  RndzAddr local;
  char control[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len = encode_type (RNDZ_MESSAGE_USE, "bob", "alice", control);

  g_test_summary ("Handing a socket out drains the protocol's messages at the head of its "
                  "queue, or everything before the peer may have sent anything");

  for (guint keep = 0; keep < 2; keep++)
    {
      g_autoptr(GSocket) socket = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4,
                                                        G_SOCKET_TYPE_DATAGRAM, &local);
      g_autoptr(GSocket) sender = stranger_new ("127.0.0.1");
      g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4,
                                                                 local.port);
      char buf[64];

      g_socket_send_to (sender, to, control, len, NULL, NULL);
      g_socket_send_to (sender, to, control, len, NULL, NULL);
      g_socket_send_to (sender, to, "data", 4, NULL, NULL);
      rndz_test_wait_readable (NULL, socket, 5000, "the first datagram");
      g_usleep (50 * 1000);

      g_assert_true (rndz_udp_hand_over (socket, keep));
      /* From now on the kernel drops them */
      g_socket_send_to (sender, to, control, len, NULL, NULL);
      g_socket_send_to (sender, to, "more", 4, NULL, NULL);
      rndz_test_wait_readable (NULL, socket, 5000, "the data");
      if (keep)
        {
          g_assert_cmpint (g_socket_receive (socket, buf, sizeof buf, NULL, NULL), ==, 4);
          g_assert_cmpmem (buf, 4, "data", 4);
        }
      g_assert_cmpint (g_socket_receive (socket, buf, sizeof buf, NULL, NULL), ==, 4);
      g_assert_cmpmem (buf, 4, "more", 4);
      g_assert_false (rndz_test_run_until_readable (NULL, socket, 100));
    }
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/app-socket/prefix", test_prefix);
  g_test_add_func ("/app-socket/filters", test_filters);
  g_test_add_func ("/app-socket/hand-over", test_hand_over);
  g_test_add_func ("/app-socket/udp/direct", test_direct);
  g_test_add_func ("/app-socket/udp/relayed", test_relayed);
  g_test_add_func ("/app-socket/tool/strangers", test_tool_strangers);

  return g_test_run ();
}
