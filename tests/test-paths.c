/* test-paths.c: a path is taken only from the peer that proved it
 *
 * SPDX-License-Identifier: MIT
 *
 * Paths between peers are verified (doc/protocol.md, "Paths"): a check
 * must be confirmed from the address it went to, and the use answered
 * from the path it chose. These are spoofing defences, and nothing else
 * shows when they break: here a fake peer (a raw socket on 127.0.0.3)
 * speaks the protocol with a real RndzClient, and a stranger (a socket on
 * 127.0.0.2, or another port) sends the right messages, with the right
 * ids and tid, from the wrong address. The client must not take them; it
 * still takes the real path afterwards.
 */

#include <rndz-glib/rndz.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-client-internal.h"
#include "rndz-connect-op-private.h"
#include "rndz-listener-internal.h"
#include "rndz-hard-nat-private.h"
#include "rndz-test-util.h"

/* The fake peer, and the stranger: loopback addresses of their own */
#define PEER_HOST "127.0.0.3"
#define EVIL_HOST "127.0.0.2"
/* Long enough for a wrong answer to be taken, if it were, and for the
 * use to be sent again (USE_RETRY_MS, 300, in rndz-connect.c) */
#define QUIET_MS 400
/* The client's direct timeout: the hard-NAT phase must have time */
#define DIRECT_MS 8000

typedef struct
{
  RndzServer *server;
  char *server_string;
  RndzAddr server_addr;
  RndzClient *client;

  /* The client's operation */
  gboolean done;
  GObject *object;
  GError *error;
  char *peer_id;

  /* peer-socket */
  GSocket *peer_socket;
  char *peer_socket_id;
} Fixture;

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  guint16 port;

  fixture->server = rndz_server_new ();
  rndz_server_set_forward_timeout (fixture->server, 5000);
  port = rndz_test_server_listen (fixture->server, G_SOCKET_FAMILY_IPV4, 0);
  fixture->server_string = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, port);
  fixture->server_addr = rndz_test_addr (fixture->server_string);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  if (fixture->client != NULL)
    rndz_client_stop (fixture->client);
  g_clear_object (&fixture->client);
  g_clear_object (&fixture->object);
  g_clear_error (&fixture->error);
  g_clear_pointer (&fixture->peer_id, g_free);
  if (fixture->peer_socket != NULL)
    g_socket_close (fixture->peer_socket, NULL);
  g_clear_object (&fixture->peer_socket);
  g_clear_pointer (&fixture->peer_socket_id, g_free);
  g_clear_object (&fixture->server);
  g_clear_pointer (&fixture->server_string, g_free);
  rndz_test_drain (NULL);
}

/* Raw sockets and messages */

static GSocket *
udp_on (const char *host,
        guint16     port,
        RndzAddr   *local)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, port);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, FALSE, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);

  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  if (local != NULL)
    g_assert_true (rndz_addr_from_socket_address (local, bound));
  return g_steal_pointer (&socket);
}

static void
init_msg (RndzMessage     *msg,
          RndzMessageType  type,
          guint32          tid,
          const char      *id,
          const char      *target)
{
  rndz_message_init (msg, type, tid);
  g_strlcpy (msg->id, id, sizeof msg->id);
  g_strlcpy (msg->target, target, sizeof msg->target);
}

static void
send_msg (GSocket           *socket,
          const RndzAddr    *to,
          const RndzMessage *msg)
{
  g_autoptr(GSocketAddress) address = rndz_addr_to_socket_address (to, G_SOCKET_FAMILY_IPV4);
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len = rndz_message_encode (msg, buf, sizeof buf);

  g_assert_cmpuint (len, >, 0);
  g_assert_cmpint (g_socket_send_to (socket, address, buf, len, NULL, NULL), ==, len);
}

/* A request to the server, padded as clients pad them */
static void
send_request (Fixture     *fixture,
              GSocket     *socket,
              RndzMessage *msg)
{
  msg->pad_to = rndz_message_max_reply_size (msg);
  send_msg (socket, &fixture->server_addr, msg);
}

static void
send_peer (GSocket         *socket,
           const RndzAddr  *to,
           RndzMessageType  type,
           guint32          tid,
           const char      *id,
           const char      *target)
{
  RndzMessage msg;

  init_msg (&msg, type, tid, id, target);
  send_msg (socket, to, &msg);
}

/* Receives datagrams, running the default context, until one of @type
 * (any message for ANY_TYPE) comes (and from @from_port, unless 0).
 * FALSE after @timeout_ms. */
#define ANY_TYPE RNDZ_MESSAGE_INVALID

static gboolean
recv_from_port (GSocket         *socket,
                RndzMessageType  type,
                guint16          from_port,
                RndzAddr        *from,
                RndzMessage     *msg,
                guint            timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      g_autoptr(GSocketAddress) address = NULL;
      char buf[RNDZ_MESSAGE_MAX_MAX_SIZE];
      RndzMessage m;
      RndzAddr a;
      gssize n;

      n = g_socket_receive_from (socket, &address, buf, sizeof buf, NULL, NULL);
      if (n < 0)
        {
          gint64 left = deadline - g_get_monotonic_time ();

          if (left <= 0 || !rndz_test_run_until_readable (NULL, socket, left / 1000 + 1))
            return FALSE;
          continue;
        }
      if (!rndz_message_decode (&m, buf, n, RNDZ_MESSAGE_MAX_MAX_SIZE, NULL) ||
          (type != ANY_TYPE && m.type != type))
        continue;
      g_assert_true (rndz_addr_from_socket_address (&a, address));
      if (from_port != 0 && a.port != from_port)
        continue;
      if (from != NULL)
        *from = a;
      if (msg != NULL)
        *msg = m;
      return TRUE;
    }
}

static gboolean
recv_type (GSocket         *socket,
           RndzMessageType  type,
           RndzAddr        *from,
           RndzMessage     *msg,
           guint            timeout_ms)
{
  return recv_from_port (socket, type, 0, from, msg, timeout_ms);
}

/* What has come to @socket by now: how many of @type */
static guint
count_type (GSocket         *socket,
            RndzMessageType  type)
{
  guint n = 0;

  while (recv_type (socket, type, NULL, NULL, 0))
    n++;
  return n;
}

/* The fake peer: registered with the server from PEER_HOST, with
 * @cand as its candidate if not NULL */
static GSocket *
fake_register (Fixture        *fixture,
               const char     *id,
               const RndzAddr *cand,
               RndzAddr       *local)
{
  g_autoptr(GSocket) socket = udp_on (PEER_HOST, 0, local);
  RndzMessage ping;

  init_msg (&ping, RNDZ_MESSAGE_PING, g_random_int (), id, "");
  if (cand != NULL)
    {
      ping.cands[0] = *cand;
      ping.n_cands = 1;
    }
  send_request (fixture, socket, &ping);
  g_assert_true (recv_type (socket, RNDZ_MESSAGE_PONG, NULL, NULL, 5000));
  return g_steal_pointer (&socket);
}

/* The client's side */

static void
connect_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Fixture *fixture = user_data;

  fixture->object = G_OBJECT (rndz_client_connect_udp_finish (RNDZ_CLIENT (source), result,
                                                              &fixture->error));
  fixture->done = TRUE;
}

static RndzClient *
new_client (Fixture    *fixture,
            const char *id)
{
  const char *servers[] = { fixture->server_string, NULL };
  RndzClient *client = rndz_client_new (id, servers);

  /* A failed path fails the test: no relay to hide it */
  rndz_client_set_relay (client, FALSE);
  rndz_client_set_direct_timeout (client, DIRECT_MS);
  rndz_client_set_timeout (client, DIRECT_MS + 2000);
  return client;
}

/* bob asks for alice, the fake peer on @alice: the server's fsync is
 * answered, and bob's first check arrives. Returns bob's check. */
static void
bob_connects (Fixture     *fixture,
              GSocket     *alice,
              RndzAddr    *bob,
              RndzMessage *check)
{
  RndzMessage fsync, rsync;

  fixture->client = new_client (fixture, "bob");
  rndz_client_connect_udp_async (fixture->client, "alice", NULL, connect_cb, fixture);

  g_assert_true (recv_type (alice, RNDZ_MESSAGE_FSYNC, NULL, &fsync, 5000));
  g_assert_cmpstr (fsync.id, ==, "bob");
  init_msg (&rsync, RNDZ_MESSAGE_RSYNC, fsync.tid, "alice", "bob");
  send_msg (alice, &fixture->server_addr, &rsync);

  g_assert_true (recv_type (alice, RNDZ_MESSAGE_CHECK, bob, check, 5000));
  g_assert_cmpstr (check->id, ==, "bob");
  g_assert_cmpstr (check->target, ==, "alice");
}

static void
assert_connected_to (Fixture        *fixture,
                     const RndzAddr *addr)
{
  g_autoptr(GSocketAddress) remote = NULL;
  g_autoptr(GError) error = NULL;
  RndzAddr a;

  rndz_test_wait_true (NULL, &fixture->done, 5000);
  g_assert_no_error (fixture->error);
  g_assert_true (G_IS_SOCKET (fixture->object));
  remote = g_socket_get_remote_address (G_SOCKET (fixture->object), &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&a, remote));
  g_assert_true (rndz_addr_equal (&a, addr));
}

static guint16
local_port (GSocket *socket)
{
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (socket, NULL);

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
}

/* The requester's side: confirms and answers to its use */

static void
test_connect_confirm_unchecked (Fixture       *fixture,
                                gconstpointer  data)
{
  g_autoptr(GSocket) alice = NULL;
  g_autoptr(GSocket) evil = NULL;
  RndzAddr alice_addr, bob;
  RndzMessage check;
  guint32 tid;

  g_test_summary ("A confirm from an address that was never checked, or with another "
                  "tid or other ids, does not choose the path; the real one does");

  alice = fake_register (fixture, "alice", NULL, &alice_addr);
  evil = udp_on (EVIL_HOST, 0, NULL);
  bob_connects (fixture, alice, &bob, &check);
  tid = check.tid;

  send_peer (evil, &bob, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
  send_peer (alice, &bob, RNDZ_MESSAGE_CONFIRM, tid + 1, "alice", "bob");
  send_peer (alice, &bob, RNDZ_MESSAGE_CONFIRM, tid, "mallory", "bob");
  send_peer (alice, &bob, RNDZ_MESSAGE_CONFIRM, tid, "alice", "carol");
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
  g_assert_cmpuint (count_type (alice, RNDZ_MESSAGE_USE), ==, 0);
  g_assert_false (fixture->done);

  /* The real confirm: bob uses the path, and takes it when alice says so */
  send_peer (alice, &bob, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
  g_assert_true (recv_from_port (alice, RNDZ_MESSAGE_USE, bob.port, NULL, NULL, 5000));
  send_peer (alice, &bob, RNDZ_MESSAGE_USE, tid, "alice", "bob");
  assert_connected_to (fixture, &alice_addr);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
}

static void
test_connect_use_elsewhere (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GSocket) alice = NULL;
  g_autoptr(GSocket) evil = NULL;
  g_autoptr(GSocket) alice_other = NULL;
  RndzAddr alice_addr, bob;
  RndzMessage check;
  guint32 tid;

  g_test_summary ("An answer to the use from any address but the chosen one, even the "
                  "peer's host at another port, or with another tid, does not end it");

  alice = fake_register (fixture, "alice", NULL, &alice_addr);
  evil = udp_on (EVIL_HOST, 0, NULL);
  alice_other = udp_on (PEER_HOST, 0, NULL);
  bob_connects (fixture, alice, &bob, &check);
  tid = check.tid;

  send_peer (alice, &bob, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
  g_assert_true (recv_from_port (alice, RNDZ_MESSAGE_USE, bob.port, NULL, NULL, 5000));

  send_peer (evil, &bob, RNDZ_MESSAGE_USE, tid, "alice", "bob");
  send_peer (alice_other, &bob, RNDZ_MESSAGE_USE, tid, "alice", "bob");
  send_peer (alice, &bob, RNDZ_MESSAGE_USE, tid + 1, "alice", "bob");
  send_peer (alice, &bob, RNDZ_MESSAGE_USE, tid, "mallory", "bob");
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_false (fixture->done);

  send_peer (alice, &bob, RNDZ_MESSAGE_USE, tid, "alice", "bob");
  assert_connected_to (fixture, &alice_addr);
}

/* Sockets on alice's host for bob's probes to find: with 512 of the
 * 64512 ports, 1500 probes miss them all with a chance of 1 in 100000 */
#define PROBE_TARGETS 512

/* Reads what the probe targets got: marks those a probe of bob's (a
 * check from bob's port) reached. Returns one of them, or -1. */
static int
find_probed (GPtrArray      *targets,
             gboolean       *probed,
             const RndzAddr *bob)
{
  int hit = -1;

  for (guint i = 0; i < targets->len; i++)
    {
      while (recv_from_port (targets->pdata[i], RNDZ_MESSAGE_CHECK, bob->port, NULL, NULL, 0))
        probed[i] = TRUE;
      if (probed[i])
        hit = i;
    }
  return hit;
}

/* A confirm from @socket does not make bob use that path */
static void
assert_confirm_ignored (Fixture        *fixture,
                        GSocket        *socket,
                        const RndzAddr *bob,
                        guint32         tid)
{
  send_peer (socket, bob, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_cmpuint (count_type (socket, RNDZ_MESSAGE_USE), ==, 0);
  g_assert_false (fixture->done);
}

static void
test_connect_probe_elsewhere (Fixture       *fixture,
                              gconstpointer  data)
{
  g_autoptr(GSocket) alice = NULL;
  g_autoptr(GSocket) evil = NULL;
  g_autoptr(GSocket) evil_probed = NULL;
  g_autoptr(GPtrArray) targets = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree gboolean *probed = g_new0 (gboolean, PROBE_TARGETS);
  g_autofree RndzAddr *addrs = g_new0 (RndzAddr, PROBE_TARGETS);
  RndzAddr alice_addr, bob, cand;
  RndzMessage check;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  int hit = -1, missed = -1;
  guint32 tid;

  g_test_summary ("While probing a hard peer's ports, bob takes a confirm from a port of "
                  "the peer's host that it probed, from no other port and no other host");

  /* A candidate at another port: alice's NAT seems to change ports */
  cand = rndz_test_addr (PEER_HOST ":1");
  alice = fake_register (fixture, "alice", &cand, &alice_addr);
  evil = udp_on (EVIL_HOST, 0, NULL);
  for (guint i = 0; i < PROBE_TARGETS; i++)
    g_ptr_array_add (targets, udp_on (PEER_HOST, 0, &addrs[i]));
  bob_connects (fixture, alice, &bob, &check);
  tid = check.tid;

  /* The probes start after RNDZ_HARD_NAT_DELAY_MS */
  for (guint i = 0; i < 3; i++)
    {
      send_peer (evil, &bob, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
      rndz_test_run_for (NULL, RNDZ_HARD_NAT_DELAY_MS / 2);
      g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
    }
  g_assert_false (fixture->done);

  /* A probe finds one of the targets */
  while ((hit = find_probed (targets, probed, &bob)) < 0 && g_get_monotonic_time () < deadline)
    rndz_test_run_for (NULL, 20);
  g_assert_cmpint (hit, >=, 0);

  /* The port the probe went to, on another host: not taken */
  evil_probed = udp_on (EVIL_HOST, addrs[hit].port, NULL);
  assert_confirm_ignored (fixture, evil_probed, &bob, tid);

  /* A port of alice's host that no probe reached: not taken */
  find_probed (targets, probed, &bob);
  for (guint i = 0; i < PROBE_TARGETS && missed < 0; i++)
    if (!probed[i])
      missed = i;
  g_assert_cmpint (missed, >=, 0);
  assert_confirm_ignored (fixture, targets->pdata[missed], &bob, tid);

  /* The probed one is */
  send_peer (targets->pdata[hit], &bob, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
  g_assert_true (recv_from_port (targets->pdata[hit], RNDZ_MESSAGE_USE, bob.port, NULL, NULL,
                                 5000));
  send_peer (targets->pdata[hit], &bob, RNDZ_MESSAGE_USE, tid, "alice", "bob");
  assert_connected_to (fixture, &addrs[hit]);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
}

static void
test_connect_spray_elsewhere (Fixture       *fixture,
                              gconstpointer  data)
{
  g_autoptr(GSocket) alice = NULL;
  g_autoptr(GSocket) evil = NULL;
  RndzAddr alice_addr, bob, spray;
  RndzMessage check;
  guint32 tid;

  g_test_summary ("On the many mappings of a hard requester, punches, confirms and "
                  "answers from another host, or with another tid, are not taken");

  /* No candidate: alice's NAT seems friendly, bob may be the hard side */
  alice = fake_register (fixture, "alice", NULL, &alice_addr);
  evil = udp_on (EVIL_HOST, 0, NULL);
  bob_connects (fixture, alice, &bob, &check);
  tid = check.tid;

  /* A check from one of bob's mappings, not from its port */
  do
    g_assert_true (recv_type (alice, RNDZ_MESSAGE_CHECK, &spray, &check, 5000));
  while (spray.port == bob.port);
  g_assert_cmpuint (check.tid, ==, tid);
  /* The spray's checks fill alice's buffer: room for what comes next */
  rndz_test_run_for (NULL, 50);
  g_assert_cmpuint (count_type (alice, RNDZ_MESSAGE_USE), ==, 0);

  send_peer (evil, &spray, RNDZ_MESSAGE_RSYNC, g_random_int (), "alice", "bob");
  send_peer (evil, &spray, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
  send_peer (alice, &spray, RNDZ_MESSAGE_CONFIRM, tid + 1, "alice", "bob");
  send_peer (alice, &spray, RNDZ_MESSAGE_CONFIRM, tid, "mallory", "bob");
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_CHECK), ==, 0);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
  g_assert_cmpuint (count_type (alice, RNDZ_MESSAGE_USE), ==, 0);
  g_assert_false (fixture->done);

  /* Chosen from alice; a stranger's answer to the use does not end it */
  send_peer (alice, &spray, RNDZ_MESSAGE_CONFIRM, tid, "alice", "bob");
  g_assert_true (recv_from_port (alice, RNDZ_MESSAGE_USE, spray.port, NULL, NULL, 5000));
  send_peer (evil, &spray, RNDZ_MESSAGE_USE, tid, "alice", "bob");
  send_peer (alice, &spray, RNDZ_MESSAGE_USE, tid + 1, "alice", "bob");
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_false (fixture->done);

  send_peer (alice, &spray, RNDZ_MESSAGE_USE, tid, "alice", "bob");
  assert_connected_to (fixture, &alice_addr);
  g_assert_cmpuint (local_port (G_SOCKET (fixture->object)), ==, spray.port);
}

/* The listener's side */

static void
listen_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Fixture *fixture = user_data;

  fixture->object = G_OBJECT (rndz_client_listen_udp_finish (RNDZ_CLIENT (source), result,
                                                             &fixture->error));
  fixture->done = TRUE;
}

static void
listen_tcp_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Fixture *fixture = user_data;

  rndz_client_listen_tcp_finish (RNDZ_CLIENT (source), result, &fixture->error);
  fixture->done = TRUE;
}

static void
peer_socket_cb (RndzClient *client,
                const char *peer_id,
                GSocket    *socket,
                gpointer    user_data)
{
  Fixture *fixture = user_data;

  g_clear_pointer (&fixture->peer_socket_id, g_free);
  g_clear_object (&fixture->peer_socket);
  fixture->peer_socket_id = g_strdup (peer_id);
  fixture->peer_socket = g_object_ref (socket);
}

/* alice, a real listener; returns its port */
static guint16
alice_listens (Fixture       *fixture,
               RndzTransport  transport)
{
  fixture->client = new_client (fixture, "alice");
  g_signal_connect (fixture->client, "peer-socket", G_CALLBACK (peer_socket_cb), fixture);
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_listen_udp_async (fixture->client, NULL, listen_cb, fixture);
  else
    rndz_client_listen_tcp_async (fixture->client, NULL, listen_tcp_cb, fixture);
  rndz_test_wait_true (NULL, &fixture->done, 5000);
  g_assert_no_error (fixture->error);
  fixture->done = FALSE;
  return rndz_client_get_local_port (fixture->client);
}

/* A NAT in front of alice, towards the server only: the server sees her
 * at another port than her own, the evidence that her NAT gives each
 * destination a port of its own, after which she opens mappings for a
 * requester that does not reach her (the hard-NAT phase) */
typedef struct
{
  GSocket *front;               /* what alice takes for the server */
  GSocket *back;                /* towards the server, from another port */
  GSocketAddress *server;
  GSocketAddress *alice;        /* the last sender on front */
  GSource *sources[2];
} Nat;

static gboolean
nat_relay_cb (GSocket      *socket,
              GIOCondition  condition,
              gpointer      user_data)
{
  Nat *nat = user_data;
  g_autoptr(GSocketAddress) from = NULL;
  char buf[2048];
  gssize n = g_socket_receive_from (socket, &from, buf, sizeof buf, NULL, NULL);

  if (n < 0)
    return G_SOURCE_CONTINUE;
  if (socket == nat->front)
    {
      g_clear_object (&nat->alice);
      nat->alice = g_steal_pointer (&from);
      g_socket_send_to (nat->back, nat->server, buf, n, NULL, NULL);
    }
  else if (nat->alice != NULL)
    g_socket_send_to (nat->front, nat->alice, buf, n, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

static Nat *
nat_new (const RndzAddr *server)
{
  Nat *nat = g_new0 (Nat, 1);

  nat->front = udp_on ("127.0.0.1", 0, NULL);
  nat->back = udp_on ("127.0.0.1", 0, NULL);
  nat->server = rndz_addr_to_socket_address (server, G_SOCKET_FAMILY_IPV4);
  for (guint i = 0; i < 2; i++)
    {
      nat->sources[i] = g_socket_create_source (i == 0 ? nat->front : nat->back, G_IO_IN, NULL);
      g_source_set_callback (nat->sources[i], G_SOURCE_FUNC (nat_relay_cb), nat, NULL);
      g_source_attach (nat->sources[i], NULL);
    }
  return nat;
}

static void
nat_free (Nat *nat)
{
  for (guint i = 0; i < 2; i++)
    {
      g_source_destroy (nat->sources[i]);
      g_source_unref (nat->sources[i]);
    }
  g_object_unref (nat->front);
  g_object_unref (nat->back);
  g_object_unref (nat->server);
  g_clear_object (&nat->alice);
  g_free (nat);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Nat, nat_free)

/* alice, a real UDP listener that registers through @nat */
static guint16
alice_listens_behind (Fixture *fixture,
                      Nat     *nat)
{
  g_autoptr(GSocketAddress) front = g_socket_get_local_address (nat->front, NULL);
  RndzAddr addr;
  char text[RNDZ_ADDR_STRLEN];
  const char *servers[] = { text, NULL };

  g_assert_true (rndz_addr_from_socket_address (&addr, front));
  rndz_addr_format (&addr, text);
  fixture->client = rndz_client_new ("alice", servers);
  rndz_client_set_relay (fixture->client, FALSE);
  rndz_client_set_direct_timeout (fixture->client, DIRECT_MS);
  rndz_client_set_timeout (fixture->client, DIRECT_MS + 2000);
  g_signal_connect (fixture->client, "peer-socket", G_CALLBACK (peer_socket_cb), fixture);
  rndz_client_listen_udp_async (fixture->client, NULL, listen_cb, fixture);
  rndz_test_wait_true (NULL, &fixture->done, 5000);
  g_assert_no_error (fixture->error);
  fixture->done = FALSE;
  return rndz_client_get_local_port (fixture->client);
}

/* The fake requester bob, on PEER_HOST, asks for alice with its own
 * address as its candidate (its NAT keeps ports), or @cand */
static void
bob_asks (Fixture        *fixture,
          GSocket        *bob,
          const RndzAddr *bob_addr,
          const RndzAddr *cand,
          guint32         tid)
{
  RndzMessage isync;

  init_msg (&isync, RNDZ_MESSAGE_ISYNC, tid, "bob", "alice");
  isync.cands[0] = cand != NULL ? *cand : *bob_addr;
  isync.n_cands = 1;
  send_request (fixture, bob, &isync);
}

/* alice listens over UDP; bob asks for her from PEER_HOST (in
 * @bob_addr), and her punch tells him where she is (@alice) */
static GSocket *
bob_punched (Fixture  *fixture,
             RndzAddr *bob_addr,
             RndzAddr *alice,
             guint32   tid)
{
  g_autoptr(GSocket) bob = NULL;

  alice_listens (fixture, RNDZ_TRANSPORT_UDP);
  bob = udp_on (PEER_HOST, 0, bob_addr);
  bob_asks (fixture, bob, bob_addr, NULL, tid);
  g_assert_true (recv_type (bob, RNDZ_MESSAGE_RSYNC, alice, NULL, 5000));
  return g_steal_pointer (&bob);
}

static void
test_listener_check_elsewhere (Fixture       *fixture,
                               gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) evil = NULL;
  RndzAddr bob_addr, alice;
  guint32 tid = g_random_int ();

  g_test_summary ("alice confirms checks, and answers the use, only on the address the "
                  "request came from, not a stranger's with the same ids, and only when "
                  "they name the requester and alice");

  alice_listens (fixture, RNDZ_TRANSPORT_UDP);
  bob = udp_on (PEER_HOST, 0, &bob_addr);
  evil = udp_on (EVIL_HOST, 0, NULL);
  bob_asks (fixture, bob, &bob_addr, NULL, tid);

  /* alice's punch comes from its port */
  g_assert_true (recv_type (bob, RNDZ_MESSAGE_RSYNC, &alice, NULL, 5000));
  g_assert_cmpuint (alice.port, ==, rndz_client_get_local_port (fixture->client));

  send_peer (evil, &alice, RNDZ_MESSAGE_CHECK, tid, "bob", "alice");
  send_peer (evil, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  /* From bob's address, but not naming bob and alice */
  send_peer (bob, &alice, RNDZ_MESSAGE_CHECK, tid, "mallory", "alice");
  send_peer (bob, &alice, RNDZ_MESSAGE_CHECK, tid, "bob", "carol");
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_CONFIRM), ==, 0);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
  g_assert_cmpuint (count_type (bob, RNDZ_MESSAGE_CONFIRM), ==, 0);

  send_peer (bob, &alice, RNDZ_MESSAGE_CHECK, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_CONFIRM, alice.port, NULL, NULL, 5000));
  send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_USE, alice.port, NULL, NULL, 5000));
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_CONFIRM), ==, 0);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
}

static void
test_listener_use_moved (Fixture       *fixture,
                         gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) bob_lan = NULL;
  g_autoptr(GSocketAddress) remote = NULL;
  g_autoptr(GSocketAddress) to_alice = NULL;
  RndzAddr bob_addr, lan_addr, alice, a;
  guint n_sockets = 0;
  guint32 tid = g_random_int ();

  g_test_summary ("The requester's use on one path, answered, then on another: alice "
                  "gives the application the second path only, never the one the "
                  "requester gave up");

  alice_listens (fixture, RNDZ_TRANSPORT_UDP);
  bob = udp_on (PEER_HOST, 0, &bob_addr);
  bob_lan = udp_on ("127.0.0.4", 0, &lan_addr);
  bob_asks (fixture, bob, &bob_addr, &lan_addr, tid);
  g_assert_true (recv_type (bob, RNDZ_MESSAGE_RSYNC, &alice, NULL, 5000));

  /* The use from bob's public address is answered, and bob (as if the
   * answer had not come) moves to its LAN address, and speaks there */
  send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_USE, alice.port, NULL, NULL, 5000));
  send_peer (bob_lan, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob_lan, RNDZ_MESSAGE_USE, alice.port, NULL, NULL, 5000));
  to_alice = rndz_addr_to_socket_address (&alice, G_SOCKET_FAMILY_IPV4);
  g_assert_cmpint (g_socket_send_to (bob_lan, to_alice, "data", 4, NULL, NULL), ==, 4);

  /* Longer than alice waits for more uses before a hand-over */
  for (gint64 end = g_get_monotonic_time () + 1000 * G_TIME_SPAN_MILLISECOND;
       g_get_monotonic_time () < end;)
    {
      rndz_test_run_for (NULL, 20);
      if (fixture->peer_socket != NULL)
        {
          n_sockets++;
          g_clear_object (&remote);
          remote = g_socket_get_remote_address (fixture->peer_socket, NULL);
          g_clear_object (&fixture->peer_socket);
        }
    }
  g_assert_cmpuint (n_sockets, ==, 1);
  g_assert_true (rndz_addr_from_socket_address (&a, remote));
  g_assert_true (rndz_addr_equal (&a, &lan_addr));
}

static void
test_listener_use_stops_punches (Fixture       *fixture,
                                 gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) bob_lan = NULL;
  RndzAddr bob_addr, lan_addr, alice;
  guint32 tid = g_random_int ();

  g_test_summary ("Once alice answers the requester's use (which carries the requester's "
                  "tid, not the server's), she stops punching its other addresses: the "
                  "path is chosen");

  alice_listens (fixture, RNDZ_TRANSPORT_UDP);
  bob = udp_on (PEER_HOST, 0, &bob_addr);
  bob_lan = udp_on ("127.0.0.4", 0, &lan_addr);
  bob_asks (fixture, bob, &bob_addr, &lan_addr, tid);
  g_assert_true (recv_type (bob, RNDZ_MESSAGE_RSYNC, &alice, NULL, 5000));
  g_assert_true (recv_type (bob_lan, RNDZ_MESSAGE_RSYNC, NULL, NULL, 5000));

  send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_USE, alice.port, NULL, NULL, 5000));
  count_type (bob_lan, RNDZ_MESSAGE_RSYNC);

  /* Punches go again at 100, 200, 400 ms gaps until the direct timeout
   * while no path is chosen: this is longer than two of them */
  rndz_test_run_for (NULL, 700);
  g_assert_cmpuint (count_type (bob_lan, RNDZ_MESSAGE_RSYNC), ==, 0);
}

static void
test_listener_answers_lost (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocketAddress) to_alice = NULL;
  g_autoptr(GSocketAddress) remote = NULL;
  RndzAddr bob_addr, alice, a;
  guint32 tid = g_random_int ();
  gint64 start;

  g_test_summary ("Every answer to the requester's uses is lost: while it goes on with "
                  "uses and checks (it has had no answer), alice keeps the check socket "
                  "and answers, long after her fourth answer; its data then hands the "
                  "socket over");

  bob = bob_punched (fixture, &bob_addr, &alice, tid);

  /* A requester nominated by the punch: uses for a second, then checks
   * (rndz-connect-udp.c); alice's answers are "lost": bob drops them */
  start = g_get_monotonic_time ();
  while (g_get_monotonic_time () - start < 2000 * G_TIME_SPAN_MILLISECOND)
    {
      gboolean uses = g_get_monotonic_time () - start < 1000 * G_TIME_SPAN_MILLISECOND;

      send_peer (bob, &alice, uses ? RNDZ_MESSAGE_USE : RNDZ_MESSAGE_CHECK, tid, "bob", "alice");
      rndz_test_run_for (NULL, 200);
      count_type (bob, ANY_TYPE);
    }
  g_assert_null (fixture->peer_socket);

  /* A confirm came through at last, and the use after it */
  send_peer (bob, &alice, RNDZ_MESSAGE_CHECK, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_CONFIRM, alice.port, NULL, NULL, 1000));
  send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_USE, alice.port, NULL, NULL, 1000));

  to_alice = rndz_addr_to_socket_address (&alice, G_SOCKET_FAMILY_IPV4);
  g_assert_cmpint (g_socket_send_to (bob, to_alice, "data", 4, NULL, NULL), ==, 4);
  g_assert_true (rndz_test_run_until_set (NULL, (gpointer *) &fixture->peer_socket, 2000));
  remote = g_socket_get_remote_address (fixture->peer_socket, NULL);
  g_assert_true (rndz_addr_from_socket_address (&a, remote));
  g_assert_true (rndz_addr_equal (&a, &bob_addr));
}

static void
test_listener_uses_forever (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  RndzAddr bob_addr, alice;
  guint32 tid = g_random_int ();
  gint64 start, handed = 0;

  g_test_summary ("A requester that sends uses and never data keeps alice's check socket "
                  "from the application no longer than two thirds of her direct timeout");

  bob = bob_punched (fixture, &bob_addr, &alice, tid);
  /* Read at the first use */
  rndz_client_set_direct_timeout (fixture->client, 1500);

  start = g_get_monotonic_time ();
  while (handed == 0 && g_get_monotonic_time () - start < 3000 * G_TIME_SPAN_MILLISECOND)
    {
      send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
      rndz_test_run_for (NULL, 100);
      if (fixture->peer_socket != NULL)
        handed = g_get_monotonic_time ();
    }
  g_assert_cmpint (handed, >, 0);
  g_assert_cmpint (handed - start, >=, 900 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (handed - start, <, 1500 * G_TIME_SPAN_MILLISECOND);
}

static void
test_listener_uses_lost (Fixture       *fixture,
                         gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  RndzAddr bob_addr, alice;
  guint32 tid = g_random_int ();

  g_test_summary ("A requester without an answer whose next three uses are lost (800 ms "
                  "of silence) still finds alice's check socket answering");

  bob = bob_punched (fixture, &bob_addr, &alice, tid);

  /* A use whose answer is "lost", then three lost uses: silence */
  send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  rndz_test_run_for (NULL, 4 * USE_RETRY_MAX_MS);
  count_type (bob, ANY_TYPE);
  g_assert_null (fixture->peer_socket);

  send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_USE, alice.port, NULL, NULL, 1000));
}

static void
test_listener_last_answers (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  RndzAddr bob_addr, alice;
  guint32 tid = g_random_int ();

  g_test_summary ("When a requester goes quiet without data, alice answers its use "
                  "again as her check socket goes to the application");

  bob = bob_punched (fixture, &bob_addr, &alice, tid);

  send_peer (bob, &alice, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_USE, alice.port, NULL, NULL, 1000));
  g_assert_true (rndz_test_run_until_set (NULL, (gpointer *) &fixture->peer_socket,
                                          HANDOVER_QUIET_MS + 1000));
  rndz_test_run_for (NULL, 100);
  g_assert_cmpuint (count_type (bob, RNDZ_MESSAGE_USE), ==, HANDOVER_LAST_ANSWERS);
}

static void
test_listener_spray_elsewhere (Fixture       *fixture,
                               gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) evil = NULL;
  g_autoptr(Nat) nat = nat_new (&fixture->server_addr);
  RndzAddr bob_addr, alice, spray;
  RndzMessage use;
  guint32 tid = g_random_int ();
  guint16 port;

  g_test_summary ("On alice's many mappings, checks and uses from another host, or "
                  "with other ids, get no answer and no socket");

  /* Her NAT changes her port: she is the hard side */
  port = alice_listens_behind (fixture, nat);
  bob = udp_on (PEER_HOST, 0, &bob_addr);
  evil = udp_on (EVIL_HOST, 0, NULL);
  bob_asks (fixture, bob, &bob_addr, NULL, tid);
  g_assert_true (recv_type (bob, RNDZ_MESSAGE_RSYNC, &alice, NULL, 5000));

  /* After RNDZ_HARD_NAT_DELAY_MS, punches from alice's mappings */
  do
    g_assert_true (recv_type (bob, RNDZ_MESSAGE_RSYNC, &spray, NULL, 5000));
  while (spray.port == port);
  /* The spray's punches fill bob's buffer: room for what comes next */
  rndz_test_run_for (NULL, 50);
  g_assert_cmpuint (count_type (bob, RNDZ_MESSAGE_CONFIRM), ==, 0);

  send_peer (evil, &spray, RNDZ_MESSAGE_CHECK, tid, "bob", "alice");
  send_peer (evil, &spray, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  send_peer (bob, &spray, RNDZ_MESSAGE_CHECK, tid, "mallory", "alice");
  send_peer (bob, &spray, RNDZ_MESSAGE_CHECK, tid, "bob", "carol");
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_CONFIRM), ==, 0);
  g_assert_cmpuint (count_type (evil, RNDZ_MESSAGE_USE), ==, 0);
  g_assert_cmpuint (count_type (bob, RNDZ_MESSAGE_CONFIRM), ==, 0);
  g_assert_null (fixture->peer_socket);

  send_peer (bob, &spray, RNDZ_MESSAGE_CHECK, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_CONFIRM, spray.port, NULL, NULL, 5000));
  send_peer (bob, &spray, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  g_assert_true (recv_from_port (bob, RNDZ_MESSAGE_USE, spray.port, NULL, &use, 5000));
  g_assert_cmpuint (use.tid, ==, tid);
  g_assert_nonnull (fixture->peer_socket);
  g_assert_cmpstr (fixture->peer_socket_id, ==, "bob");
  g_assert_cmpuint (local_port (fixture->peer_socket), ==, spray.port);
}

/* TCP: a connection to alice's listening socket */

static GSocket *
tcp_from (const char *host,
          guint16     port,
          gboolean    reuse)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, port);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, &error);
  g_assert_no_error (error);
  /* A second socket on the port of the first, as the library's are */
  if (reuse)
    g_assert_true (g_socket_set_option (socket, SOL_SOCKET, SO_REUSEPORT, 1, &error));
  g_assert_true (g_socket_bind (socket, address, reuse, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&socket);
}

static void
tcp_send_msg (GSocket           *socket,
              const RndzMessage *msg)
{
  char buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len = rndz_message_encode_frame (msg, buf, sizeof buf);

  g_assert_cmpint (g_socket_send (socket, buf, len, NULL, NULL), ==, len);
}

static void
tcp_connect (GSocket *socket,
             guint16  port)
{
  g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  g_autoptr(GError) error = NULL;

  g_socket_set_timeout (socket, 5);
  g_assert_true (g_socket_connect (socket, to, NULL, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
}

static void
accept_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Fixture *fixture = user_data;

  fixture->object = G_OBJECT (rndz_client_accept_finish (RNDZ_CLIENT (source), result,
                                                         &fixture->peer_id, &fixture->error));
  fixture->done = TRUE;
}

/* The connection was closed on us (EOF or reset) */
static gboolean
tcp_closed (GSocket *socket)
{
  char buf[64];
  gssize n;

  if (!rndz_test_run_until_readable (NULL, socket, 5000))
    return FALSE;
  n = g_socket_receive (socket, buf, sizeof buf, NULL, NULL);
  return n <= 0;
}

/* The server's redirect to bob: alice took the request, and punches
 * towards bob. Whatever came is read. */
static void
wait_redirect (GSocket *bob)
{
  char buf[1024];

  g_assert_true (rndz_test_run_until_readable (NULL, bob, 5000));
  rndz_test_run_for (NULL, 50);
  while (g_socket_receive (bob, buf, sizeof buf, NULL, NULL) > 0)
    ;
}

/* bob asks for alice over TCP, from a port (in @bob_port) he can connect
 * from again, and gets the redirect */
static GSocket *
bob_asks_tcp (Fixture *fixture,
              guint32  tid,
              guint16 *bob_port)
{
  g_autoptr(GSocket) bob = tcp_from ("127.0.0.1", 0, TRUE);
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (bob, NULL);
  RndzMessage msg;

  *bob_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  tcp_connect (bob, rndz_server_get_port (fixture->server));
  init_msg (&msg, RNDZ_MESSAGE_ISYNC, tid, "bob", "alice");
  tcp_send_msg (bob, &msg);
  wait_redirect (bob);
  return g_steal_pointer (&bob);
}

static void
test_listener_tcp_elsewhere (Fixture       *fixture,
                             gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) bob_again = NULL;
  g_autoptr(GSocket) evil = NULL;
  RndzMessage msg;
  guint16 port, bob_port;
  guint32 tid = g_random_int ();

  g_test_summary ("alice hands out a TCP connection only from an address a request "
                  "named, whatever the stranger's use frame says, and only with a use "
                  "frame from the requester");

  port = alice_listens (fixture, RNDZ_TRANSPORT_TCP);
  rndz_client_accept_async (fixture->client, NULL, accept_cb, fixture);

  /* bob asks over TCP from a port it can connect from again */
  bob = bob_asks_tcp (fixture, tid, &bob_port);

  evil = tcp_from (EVIL_HOST, 0, FALSE);
  tcp_connect (evil, port);
  init_msg (&msg, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  tcp_send_msg (evil, &msg);
  g_assert_true (tcp_closed (evil));
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_false (fixture->done);

  /* From bob's address, but the frame names someone else */
  bob_again = tcp_from ("127.0.0.1", bob_port, TRUE);
  tcp_connect (bob_again, port);
  init_msg (&msg, RNDZ_MESSAGE_USE, tid, "mallory", "alice");
  tcp_send_msg (bob_again, &msg);
  g_assert_true (tcp_closed (bob_again));
  g_socket_close (bob_again, NULL);
  g_clear_object (&bob_again);
  rndz_test_run_for (NULL, QUIET_MS);
  g_assert_false (fixture->done);

  /* A new request, and bob comes in */
  init_msg (&msg, RNDZ_MESSAGE_ISYNC, tid + 1, "bob", "alice");
  tcp_send_msg (bob, &msg);
  wait_redirect (bob);
  bob_again = tcp_from ("127.0.0.1", bob_port, TRUE);
  tcp_connect (bob_again, port);
  init_msg (&msg, RNDZ_MESSAGE_USE, tid + 1, "bob", "alice");
  tcp_send_msg (bob_again, &msg);
  rndz_test_wait_true (NULL, &fixture->done, 5000);
  g_assert_no_error (fixture->error);
  g_assert_cmpstr (fixture->peer_id, ==, "bob");
}

/* Through loss the requester's use frame, the first data of the
 * connection, may come only with TCP's retransmission: 3 s after a lost
 * SYN (RFC 6298's fallback RTO), 6 s more when that is lost too. The
 * requester took the connection when it sent the frame: closing it
 * before then leaves it a connection that carries nothing. */
#define USE_LATE_MS 5500

static void
test_listener_tcp_use_late (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) bob_again = NULL;
  RndzMessage msg;
  guint16 port, bob_port;
  guint32 tid = g_random_int ();

  g_test_summary ("alice waits for a TCP requester's use frame longer than TCP takes "
                  "to send it again after a loss");

  port = alice_listens (fixture, RNDZ_TRANSPORT_TCP);
  rndz_client_accept_async (fixture->client, NULL, accept_cb, fixture);

  bob = bob_asks_tcp (fixture, tid, &bob_port);

  /* The connection opens; its use frame comes late */
  bob_again = tcp_from ("127.0.0.1", bob_port, TRUE);
  tcp_connect (bob_again, port);
  rndz_test_run_for (NULL, USE_LATE_MS);
  g_assert_false (fixture->done);
  init_msg (&msg, RNDZ_MESSAGE_USE, tid, "bob", "alice");
  tcp_send_msg (bob_again, &msg);
  rndz_test_wait_true (NULL, &fixture->done, 5000);
  g_assert_no_error (fixture->error);
  g_assert_cmpstr (fixture->peer_id, ==, "bob");
}

/* alice listens over TCP; bob listens on the port he asks her from, with
 * a full accept queue: the kernel drops every SYN that comes (none is
 * answered) and counts it. bob asks for alice; returns the count from
 * before, or -1 if the kernel does not count (the test is skipped). */
static gint64
bob_asks_unanswered (Fixture  *fixture,
                     GSocket **bob,
                     GSocket **listening,
                     GSocket **filler)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) error = NULL;
  RndzMessage msg;
  guint16 bob_port;
  gint64 before;

  if (rndz_test_listen_overflows () < 0)
    {
      g_test_skip ("No /proc/net/netstat to count the SYNs by");
      return -1;
    }

  alice_listens (fixture, RNDZ_TRANSPORT_TCP);
  *bob = tcp_from ("127.0.0.1", 0, TRUE);
  local = g_socket_get_local_address (*bob, NULL);
  bob_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  *listening = tcp_from ("127.0.0.1", bob_port, TRUE);
  g_socket_set_listen_backlog (*listening, 0);
  g_assert_true (g_socket_listen (*listening, &error));
  g_assert_no_error (error);
  *filler = tcp_from ("127.0.0.1", 0, FALSE);
  tcp_connect (*filler, bob_port);

  before = rndz_test_listen_overflows ();
  tcp_connect (*bob, rndz_server_get_port (fixture->server));
  init_msg (&msg, RNDZ_MESSAGE_ISYNC, g_random_int (), "bob", "alice");
  tcp_send_msg (*bob, &msg);
  wait_redirect (*bob);
  return before;
}

static void
test_listener_tcp_spare_syns (Fixture       *fixture,
                              gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) bob_listening = NULL;
  g_autoptr(GSocket) filler = NULL;
  gint64 before;

  g_test_summary ("alice's first punch towards a TCP requester is three SYNs, sent "
                  "before her answer, so that one lost does not keep her NAT closed");

  before = bob_asks_unanswered (fixture, &bob, &bob_listening, &filler);
  if (before < 0)
    return;
  /* Well before the kernel sends the first SYN again (1 s) */
  rndz_test_run_for (NULL, 200);
  g_assert_cmpint (rndz_test_listen_overflows () - before, >=, 1 + PUNCH_SPARE_SYNS);
}

static void
test_listener_tcp_redial (Fixture       *fixture,
                          gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) bob_listening = NULL;
  g_autoptr(GSocket) filler = NULL;
  gint64 before, sent;

  g_test_summary ("alice's punch towards a TCP requester that has had no answer goes "
                  "again from a new socket after PUNCH_TCP_REDIAL_MS, before the "
                  "kernel's own 1 s");

  before = bob_asks_unanswered (fixture, &bob, &bob_listening, &filler);
  if (before < 0)
    return;
  /* The new socket's SYN, well before the old one's second (1 s). (Not
   * exactly so many: other tests may fill accept queues meanwhile.) */
  rndz_test_run_for (NULL, PUNCH_TCP_REDIAL_MS + 150);
  sent = rndz_test_listen_overflows () - before;
  g_test_message ("%" G_GINT64_FORMAT " SYNs by %u ms", sent, PUNCH_TCP_REDIAL_MS + 150);
  g_assert_cmpint (sent, >=, 2 + PUNCH_SPARE_SYNS);
}

/* The listener's probes: per requester, and not again for a new request */

/* How long the listener's probes take at their pace, and then some */
#define PROBES_MS (RNDZ_HARD_NAT_DELAY_MS + \
                   RNDZ_PROBES_MAX / RNDZ_PROBES_PER_INTERVAL * RNDZ_PROBE_INTERVAL_MS + 1000)

static guint
probes_used (Fixture *fixture)
{
  RndzListener *listener = fixture->client->listeners[RNDZ_TRANSPORT_UDP];

  return listener->probes.window == 0 ? 0 : RNDZ_PROBE_BUDGET - listener->probes.left;
}

static gboolean
probes_reach (gpointer data)
{
  Fixture *fixture = data;

  return probes_used (fixture) >= RNDZ_PROBES_MAX;
}

static void
test_listener_probes_per_requester (Fixture       *fixture,
                                    gconstpointer  data)
{
  g_autoptr(GSocket) bob = NULL;
  RndzAddr bob_addr, cand;

  g_test_summary ("A listener probes one requester's address RNDZ_PROBES_MAX times, "
                  "however many requests come from there");

  alice_listens (fixture, RNDZ_TRANSPORT_UDP);
  /* The phase lasts as long as the direct timeout: room for every probe
   * even when the probes come slower than 500 a second (valgrind) */
  rndz_client_set_direct_timeout (fixture->client, 4 * PROBES_MS);
  bob = udp_on (PEER_HOST, 0, &bob_addr);
  /* A candidate at another port: bob's NAT seems to change ports */
  cand = rndz_test_addr (PEER_HOST ":1");
  bob_asks (fixture, bob, &bob_addr, &cand, 1);

  /* 500 a second after RNDZ_HARD_NAT_DELAY_MS */
  g_assert_true (rndz_test_run_until (NULL, probes_reach, fixture, 3 * PROBES_MS));
  rndz_test_run_for (NULL, 200);
  g_assert_cmpuint (probes_used (fixture), ==, RNDZ_PROBES_MAX);

  /* A new request from the same address: no new probes */
  bob_asks (fixture, bob, &bob_addr, &cand, 2);
  rndz_test_run_for (NULL, RNDZ_HARD_NAT_DELAY_MS + 500);
  g_assert_cmpuint (probes_used (fixture), ==, RNDZ_PROBES_MAX);
}

/* The requester's side: the target's punch */

/* The first check or use from bob to @alice, in @msg; FALSE after
 * @timeout_ms */
static gboolean
recv_check_or_use (GSocket     *alice,
                   RndzAddr    *from,
                   RndzMessage *msg,
                   guint        timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      gint64 left = deadline - g_get_monotonic_time ();

      if (left <= 0 || !recv_type (alice, ANY_TYPE, from, msg, left / 1000 + 1))
        return FALSE;
      if (msg->type == RNDZ_MESSAGE_CHECK || msg->type == RNDZ_MESSAGE_USE)
        return TRUE;
    }
}

/* bob asks for alice, the fake peer on @alice, which punches bob at the
 * address of the fsync and does not answer the server: no redirect
 * comes, only the punch */
static void
bob_is_punched (Fixture  *fixture,
                GSocket  *alice,
                RndzAddr *bob)
{
  RndzMessage fsync;

  fixture->client = new_client (fixture, "bob");
  rndz_client_connect_udp_async (fixture->client, "alice", NULL, connect_cb, fixture);

  g_assert_true (recv_type (alice, RNDZ_MESSAGE_FSYNC, NULL, &fsync, 5000));
  *bob = fsync.addr;
  send_peer (alice, bob, RNDZ_MESSAGE_RSYNC, fsync.tid, "alice", "bob");
}

static void
test_connect_punch_use (Fixture       *fixture,
                        gconstpointer  data)
{
  g_autoptr(GSocket) alice = NULL;
  RndzAddr alice_addr, bob, from;
  RndzMessage msg;

  g_test_summary ("The target's punch shows a path that reaches us: the requester sends "
                  "its use there at once, with no check and confirm first");

  alice = fake_register (fixture, "alice", NULL, &alice_addr);
  bob_is_punched (fixture, alice, &bob);

  g_assert_true (recv_check_or_use (alice, &from, &msg, 2000));
  g_assert_cmpstr (rndz_message_type_to_string (msg.type), ==, "use");
  g_assert_cmpuint (from.port, ==, bob.port);
  send_peer (alice, &bob, RNDZ_MESSAGE_USE, msg.tid, "alice", "bob");
  assert_connected_to (fixture, &alice_addr);
  g_assert_cmpuint (count_type (alice, RNDZ_MESSAGE_CHECK), ==, 0);
}

static void
test_connect_punch_unanswered (Fixture       *fixture,
                               gconstpointer  data)
{
  g_autoptr(GSocket) alice = NULL;
  RndzAddr alice_addr, bob;
  RndzMessage check;
  gint64 start;
  guint n_uses = 0;

  g_test_summary ("Uses to where the punch came from that get no answer: after a second "
                  "the requester checks, and a confirm chooses the path");

  alice = fake_register (fixture, "alice", NULL, &alice_addr);
  bob_is_punched (fixture, alice, &bob);
  start = g_get_monotonic_time ();

  /* Uses, unanswered, then a check */
  while (recv_check_or_use (alice, NULL, &check, 3000) && check.type == RNDZ_MESSAGE_USE)
    n_uses++;
  g_assert_cmpstr (rndz_message_type_to_string (check.type), ==, "check");
  g_assert_cmpuint (n_uses, >=, 4);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 900 * G_TIME_SPAN_MILLISECOND);

  /* Another punch from there is worth no more uses: checks go on */
  send_peer (alice, &bob, RNDZ_MESSAGE_RSYNC, g_random_int (), "alice", "bob");
  g_assert_true (recv_check_or_use (alice, NULL, &check, 3000));
  g_assert_cmpstr (rndz_message_type_to_string (check.type), ==, "check");

  send_peer (alice, &bob, RNDZ_MESSAGE_CONFIRM, check.tid, "alice", "bob");
  g_assert_true (recv_from_port (alice, RNDZ_MESSAGE_USE, bob.port, NULL, NULL, 5000));
  send_peer (alice, &bob, RNDZ_MESSAGE_USE, check.tid, "alice", "bob");
  assert_connected_to (fixture, &alice_addr);
}

static void
test_connect_punch_one_way (Fixture       *fixture,
                            gconstpointer  data)
{
  g_autoptr(GSocket) alice = NULL;
  g_autoptr(GSocket) alice_lan = NULL;
  RndzAddr alice_addr, lan_addr, bob, from;
  RndzMessage fsync, rsync, msg;
  gint64 start;

  g_test_summary ("A punch that came one way only (our uses to it are dropped): the "
                  "checks to the target's other addresses go on meanwhile, and a confirm "
                  "from one of them takes over well before the uses give up");

  alice_lan = udp_on ("127.0.0.4", 0, &lan_addr);
  alice = fake_register (fixture, "alice", &lan_addr, &alice_addr);
  fixture->client = new_client (fixture, "bob");
  rndz_client_connect_udp_async (fixture->client, "alice", NULL, connect_cb, fixture);

  g_assert_true (recv_type (alice, RNDZ_MESSAGE_FSYNC, NULL, &fsync, 5000));
  bob = fsync.addr;
  start = g_get_monotonic_time ();
  send_peer (alice, &bob, RNDZ_MESSAGE_RSYNC, fsync.tid, "alice", "bob");
  init_msg (&rsync, RNDZ_MESSAGE_RSYNC, fsync.tid, "alice", "bob");
  send_msg (alice, &fixture->server_addr, &rsync);

  /* What bob sends to alice's public address is lost; on the LAN, a
   * check gets its confirm, and the use there its answer */
  g_assert_true (recv_check_or_use (alice_lan, &from, &msg, 2000));
  g_assert_cmpstr (rndz_message_type_to_string (msg.type), ==, "check");
  send_peer (alice_lan, &bob, RNDZ_MESSAGE_CONFIRM, msg.tid, "alice", "bob");
  g_assert_true (recv_from_port (alice_lan, RNDZ_MESSAGE_USE, bob.port, NULL, &msg, 2000));
  send_peer (alice_lan, &bob, RNDZ_MESSAGE_USE, msg.tid, "alice", "bob");
  assert_connected_to (fixture, &lan_addr);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 600 * G_TIME_SPAN_MILLISECOND);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/paths/connect/confirm-unchecked", test_connect_confirm_unchecked);
  ADD ("/paths/connect/punch-use", test_connect_punch_use);
  ADD ("/paths/connect/punch-unanswered", test_connect_punch_unanswered);
  ADD ("/paths/connect/punch-one-way", test_connect_punch_one_way);
  ADD ("/paths/connect/use-elsewhere", test_connect_use_elsewhere);
  ADD ("/paths/connect/probe-elsewhere", test_connect_probe_elsewhere);
  ADD ("/paths/connect/spray-elsewhere", test_connect_spray_elsewhere);
  ADD ("/paths/listener/check-elsewhere", test_listener_check_elsewhere);
  ADD ("/paths/listener/use-moved", test_listener_use_moved);
  ADD ("/paths/listener/use-stops-punches", test_listener_use_stops_punches);
  ADD ("/paths/listener/answers-lost", test_listener_answers_lost);
  ADD ("/paths/listener/uses-lost", test_listener_uses_lost);
  ADD ("/paths/listener/last-answers", test_listener_last_answers);
  ADD ("/paths/listener/uses-forever", test_listener_uses_forever);
  ADD ("/paths/listener/spray-elsewhere", test_listener_spray_elsewhere);
  ADD ("/paths/listener/tcp-elsewhere", test_listener_tcp_elsewhere);
  ADD ("/paths/listener/tcp-use-late", test_listener_tcp_use_late);
  ADD ("/paths/listener/tcp-spare-syns", test_listener_tcp_spare_syns);
  ADD ("/paths/listener/tcp-redial", test_listener_tcp_redial);
  ADD ("/paths/listener/probes-per-requester", test_listener_probes_per_requester);
#undef ADD

  return g_test_run ();
}
