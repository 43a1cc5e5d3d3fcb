/* test-loss.c: a UDP rendezvous through lost datagrams
 *
 * SPDX-License-Identifier: MIT
 *
 * Every step of the exchange survives loss (doc/protocol.md,
 * "Retransmission"): here chosen datagrams are lost on purpose, the
 * first copies of one message, and the connection must still come,
 * direct, within the direct timeout, without the hard-NAT phase (lost
 * packets are no evidence of a hard NAT), and with nothing of the
 * protocol reaching the applications. The clients lose what they send
 * through rndz_udp_test_drop; the server's part runs on datagrams fed
 * to it.
 */

#include <rndz-glib/rndz.h>
#include <string.h>

#include "rndz-forward-internal.h"
#include "rndz-udp-private.h"
#include "rndz-test-util.h"

/* The listener, and the requester */
#define ALICE 0
#define BOB 1
#define DIRECT_MS 3000
/* A rendezvous through the losses below takes at most about 2 s */
#define BOUND_MS 2500
/* Datagrams of one type from one side; the hard-NAT phase would send
 * hundreds */
#define FEW 40
/* For the server's part */
#define ALICE_AT "192.0.2.1:4000"
#define BOB_AT "198.51.100.2:5000"

typedef struct
{
  RndzMessageType type;
  guint sender;                 /* ALICE or BOB */
  gboolean to_server;
  guint first;                  /* the copies lost: from this one */
  guint count;                  /* how many */
} Loss;

/* What the clients sent, by type, sender and whether to the server */
static guint counts[RNDZ_MESSAGE_LAST + 1][2][2];
static const Loss *losses;

static gboolean
drop_cb (const char *buf,
         gsize       len,
         gboolean    to_server)
{
  RndzMessage msg;
  guint sender, n;

  if (!rndz_message_decode (&msg, buf, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) ||
      msg.type > RNDZ_MESSAGE_LAST)
    return FALSE;

  sender = g_str_equal (msg.id, "alice") ? ALICE : BOB;
  n = counts[msg.type][sender][to_server]++;
  for (const Loss *loss = losses; loss != NULL && loss->count > 0; loss++)
    if (loss->type == msg.type && loss->sender == sender && loss->to_server == to_server &&
        n >= loss->first && n < loss->first + loss->count)
      return TRUE;
  return FALSE;
}

typedef struct
{
  gboolean done;
  GObject *object;
  GError *error;
  GSocket *peer_socket;
} Result;

static void
listen_cb (GObject      *source,
           GAsyncResult *res,
           gpointer      user_data)
{
  Result *result = user_data;

  result->object = (GObject *) rndz_client_listen_udp_finish (RNDZ_CLIENT (source), res,
                                                             &result->error);
  result->done = TRUE;
}

static void
connect_cb (GObject      *source,
            GAsyncResult *res,
            gpointer      user_data)
{
  Result *result = user_data;

  result->object = (GObject *) rndz_client_connect_udp_finish (RNDZ_CLIENT (source), res,
                                                              &result->error);
  result->done = TRUE;
}

static void
peer_socket_cb (RndzClient *client,
                const char *peer_id,
                GSocket    *socket,
                gpointer    user_data)
{
  Result *result = user_data;

  g_assert_cmpstr (peer_id, ==, "bob");
  g_clear_object (&result->peer_socket);
  result->peer_socket = g_object_ref (socket);
}

static RndzClient *
new_client (const char *id,
            const char *server)
{
  const char *servers[] = { server, NULL };
  RndzClient *client = rndz_client_new (id, servers);

  /* A lost path fails the test: no relay to hide it */
  rndz_client_set_relay (client, FALSE);
  rndz_client_set_direct_timeout (client, DIRECT_MS);
  rndz_client_set_timeout (client, DIRECT_MS + 2000);
  return client;
}

/* One datagram of the application from @from, which @to must read
 * first: no message of the protocol before it */
static void
data_flows (GSocket    *from,
            GSocket    *to,
            const char *text)
{
  g_autoptr(GError) error = NULL;
  char buf[2048];
  gssize n;

  g_assert_cmpint (g_socket_send (from, text, strlen (text), NULL, &error), ==, strlen (text));
  g_assert_no_error (error);
  n = rndz_test_receive_from (NULL, to, NULL, buf, sizeof buf - 1, 5000);
  g_assert_cmpint (n, >=, 0);
  buf[n] = '\0';
  g_assert_cmpstr (buf, ==, text);
}

/* alice listens, then bob reaches her while @lost are lost: directly,
 * in time, and they talk */
static void
rendezvous_through (const Loss *lost)
{
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) to_alice = NULL;
  g_autofree char *address = NULL;
  Result listening = { 0 }, reached = { 0 };
  gint64 start, elapsed_ms;

  server = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, &address);
  alice = new_client ("alice", address);
  g_signal_connect (alice, "peer-socket", G_CALLBACK (peer_socket_cb), &reached);
  rndz_client_listen_udp_async (alice, NULL, listen_cb, &listening);
  rndz_test_wait_true (NULL, &listening.done, 5000);
  g_assert_no_error (listening.error);

  memset (counts, 0, sizeof counts);
  losses = lost;
  rndz_udp_test_drop = drop_cb;

  bob = new_client ("bob", address);
  start = g_get_monotonic_time ();
  rndz_client_connect_udp_async (bob, "alice", NULL, connect_cb, &reached);
  rndz_test_wait_true (NULL, &reached.done, DIRECT_MS + 4000);
  elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("Reached alice in %" G_GINT64_FORMAT " ms", elapsed_ms);
  g_assert_no_error (reached.error);
  to_alice = G_SOCKET (g_steal_pointer (&reached.object));
  /* Direct, or through one of alice's local addresses */
  g_assert_cmpint (rndz_socket_get_path (to_alice), !=, RNDZ_PATH_RELAYED);
  g_assert_cmpint (elapsed_ms, <, BOUND_MS);

  /* No hard-NAT phase: a lost packet is no sign of a hard NAT */
  g_assert_cmpuint (counts[RNDZ_MESSAGE_CHECK][BOB][FALSE], <, FEW);
  g_assert_cmpuint (counts[RNDZ_MESSAGE_RSYNC][ALICE][FALSE], <, FEW);

  /* bob's first datagram gives alice her socket for him, if the quiet
   * after her answer did not already */
  g_assert_cmpint (g_socket_send (to_alice, "hello", 5, NULL, NULL), ==, 5);
  if (!rndz_test_run_until_set (NULL, (gpointer *) &reached.peer_socket, 5000))
    g_error ("alice got no socket for bob");
  {
    char buf[64];
    gssize n = rndz_test_receive_from (NULL, reached.peer_socket, NULL, buf, sizeof buf - 1, 5000);

    g_assert_cmpint (n, ==, 5);
    buf[n] = '\0';
    g_assert_cmpstr (buf, ==, "hello");
  }
  data_flows (reached.peer_socket, to_alice, "world");

  rndz_udp_test_drop = NULL;
  losses = NULL;
  g_clear_object (&reached.peer_socket);
  g_clear_object (&listening.object);
  rndz_client_stop (alice);
  rndz_client_stop (bob);
  rndz_test_drain (NULL);
}

static void
test_rsync_lost (void)
{
  /* The isync's copies too: the server would send the fsync again for
   * them, and alice would answer that. And her punches, which bob would
   * take for her answer on the loopback, where no NAT is in the way. */
  static const Loss lost[] = {
    { RNDZ_MESSAGE_RSYNC, ALICE, TRUE, 0, 1 },
    { RNDZ_MESSAGE_ISYNC, BOB, TRUE, 1, 1000 },
    { RNDZ_MESSAGE_RSYNC, ALICE, FALSE, 0, 1000 },
    { 0 },
  };

  g_test_summary ("alice's answer to the server is lost, and bob sends no copy of his "
                  "request: alice sends her answer again until bob's check shows it came");
  rendezvous_through (lost);
  g_assert_cmpuint (counts[RNDZ_MESSAGE_RSYNC][ALICE][TRUE], >=, 2);
}

static void
test_checks_lost (void)
{
  static const Loss lost[] = {
    { RNDZ_MESSAGE_CHECK, BOB, FALSE, 0, 8 },
    { 0 },
  };

  /* A check goes to every address of alice at once: here her observed
   * one and her local ones, a few rounds */
  g_test_summary ("bob's first eight checks are lost: the next get through, after the "
                  "hard-NAT phase would have begun, and that phase does not begin");
  rendezvous_through (lost);
}

static void
test_confirms_lost (void)
{
  static const Loss lost[] = {
    { RNDZ_MESSAGE_CONFIRM, ALICE, FALSE, 0, 8 },
    { 0 },
  };

  g_test_summary ("alice's first eight confirms are lost: bob checks again, alice confirms "
                  "every check, and no hard-NAT phase begins");
  rendezvous_through (lost);
}

static void
test_use_lost (void)
{
  static const Loss lost[] = {
    { RNDZ_MESSAGE_USE, BOB, FALSE, 0, 2 },
    { 0 },
  };

  g_test_summary ("bob's first two uses are lost: he sends it again until alice answers");
  rendezvous_through (lost);
}

static void
test_use_answer_lost (void)
{
  static const Loss lost[] = {
    { RNDZ_MESSAGE_USE, ALICE, FALSE, 0, 2 },
    { 0 },
  };

  g_test_summary ("alice's first two answers to bob's use are lost: she answers every copy "
                  "of his use until his own first datagram comes, which her application "
                  "then reads first");
  rendezvous_through (lost);
  g_assert_cmpuint (counts[RNDZ_MESSAGE_USE][ALICE][FALSE], >=, 3);
}

static void
test_everything_lost_once (void)
{
  static const Loss lost[] = {
    { RNDZ_MESSAGE_ISYNC, BOB, TRUE, 0, 1 },
    { RNDZ_MESSAGE_RSYNC, ALICE, TRUE, 0, 1 },
    { RNDZ_MESSAGE_RSYNC, ALICE, FALSE, 0, 1 },
    { RNDZ_MESSAGE_CHECK, BOB, FALSE, 0, 1 },
    { RNDZ_MESSAGE_CONFIRM, ALICE, FALSE, 0, 1 },
    { RNDZ_MESSAGE_USE, BOB, FALSE, 0, 1 },
    { RNDZ_MESSAGE_USE, ALICE, FALSE, 0, 1 },
    { 0 },
  };

  g_test_summary ("The first copy of every message of the exchange is lost");
  rendezvous_through (lost);
}

/* alice's application speaks first: it greets bob on the socket it gets */
static void
greeting_peer_socket_cb (RndzClient *client,
                         const char *peer_id,
                         GSocket    *socket,
                         gpointer    user_data)
{
  g_autoptr(GError) error = NULL;

  peer_socket_cb (client, peer_id, socket, user_data);
  g_assert_cmpint (g_socket_send (socket, "greetings", 9, NULL, &error), ==, 9);
  g_assert_no_error (error);
}

static void
test_use_answers_all_lost (void)
{
  static const Loss lost[] = {
    { RNDZ_MESSAGE_USE, ALICE, FALSE, 0, 1000 },
    { 0 },
  };
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(RndzClient) bob = NULL;
  g_autoptr(GSocket) to_alice = NULL;
  g_autofree char *address = NULL;
  Result listening = { 0 }, reached = { 0 };
  char buf[64];
  gssize n;

  g_test_summary ("Every answer of alice's to bob's use is lost, and her application "
                  "speaks first: she hands the path over when bob's uses stop coming, "
                  "and her first datagram tells bob that the path is his, and reaches "
                  "his application first");

  server = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, &address);
  alice = new_client ("alice", address);
  g_signal_connect (alice, "peer-socket", G_CALLBACK (greeting_peer_socket_cb), &reached);
  rndz_client_listen_udp_async (alice, NULL, listen_cb, &listening);
  rndz_test_wait_true (NULL, &listening.done, 5000);
  g_assert_no_error (listening.error);

  memset (counts, 0, sizeof counts);
  losses = lost;
  rndz_udp_test_drop = drop_cb;

  bob = new_client ("bob", address);
  rndz_client_connect_udp_async (bob, "alice", NULL, connect_cb, &reached);
  rndz_test_wait_true (NULL, &reached.done, DIRECT_MS + 4000);
  g_assert_no_error (reached.error);
  to_alice = G_SOCKET (g_steal_pointer (&reached.object));
  g_assert_cmpint (rndz_socket_get_path (to_alice), !=, RNDZ_PATH_RELAYED);

  n = rndz_test_receive_from (NULL, to_alice, NULL, buf, sizeof buf - 1, 5000);
  g_assert_cmpint (n, ==, 9);
  buf[n] = '\0';
  g_assert_cmpstr (buf, ==, "greetings");

  rndz_udp_test_drop = NULL;
  losses = NULL;
  g_clear_object (&reached.peer_socket);
  g_clear_object (&listening.object);
  rndz_client_stop (alice);
  rndz_client_stop (bob);
  rndz_test_drain (NULL);
}

/* The hard-NAT phase of a listener whose NAT kept its port: only on
 * evidence */

/* alice listens; a raw requester on 127.0.0.3, whose candidate is its
 * own address (its NAT looks friendly), asks for her and then says
 * nothing, its socket open (@closed FALSE: as if everything it sent was
 * lost) or closed (TRUE: alice's punches draw ICMP errors, as from a
 * router that has no mapping there for her). Returns the punches and
 * probes alice sent in the @ms after. */
static guint
listener_sends_to_silent_requester (gboolean closed,
                                    guint    ms)
{
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(RndzClient) alice = NULL;
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocketAddress) to = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  g_autofree char *address = NULL;
  Result listening = { 0 };
  RndzAddr server_addr, bob_addr;
  RndzMessage isync;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;
  guint sent_to_bob;

  server = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, &address);
  alice = new_client ("alice", address);
  rndz_client_listen_udp_async (alice, NULL, listen_cb, &listening);
  rndz_test_wait_true (NULL, &listening.done, 5000);
  g_assert_no_error (listening.error);

  local = g_inet_socket_address_new_from_string ("127.0.0.3", 0);
  bob = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
  g_assert_true (g_socket_bind (bob, local, FALSE, NULL));
  g_clear_object (&local);
  local = g_socket_get_local_address (bob, NULL);
  g_assert_true (rndz_addr_from_socket_address (&bob_addr, local));

  memset (counts, 0, sizeof counts);
  losses = NULL;
  rndz_udp_test_drop = drop_cb;

  rndz_message_init (&isync, RNDZ_MESSAGE_ISYNC, 42);
  g_strlcpy (isync.id, "bob", sizeof isync.id);
  g_strlcpy (isync.target, "alice", sizeof isync.target);
  isync.cands[0] = bob_addr;
  isync.n_cands = 1;
  isync.pad_to = rndz_message_max_reply_size (&isync);
  len = rndz_message_encode (&isync, buf, sizeof buf);
  server_addr = rndz_test_addr (address);
  to = rndz_addr_to_socket_address (&server_addr, G_SOCKET_FAMILY_IPV4);
  g_assert_cmpint (g_socket_send_to (bob, to, buf, len, NULL, NULL), ==, len);
  if (closed)
    g_socket_close (bob, NULL);

  rndz_test_run_for (NULL, ms);
  sent_to_bob = counts[RNDZ_MESSAGE_RSYNC][ALICE][FALSE];
  g_test_message ("alice sent %u punches and probes", sent_to_bob);

  rndz_udp_test_drop = NULL;
  g_clear_object (&listening.object);
  rndz_client_stop (alice);
  rndz_test_drain (NULL);
  return sent_to_bob;
}

static void
test_hard_nat_no_evidence (void)
{
  g_test_summary ("A listener whose NAT kept its port, and whose requester looks "
                  "friendly, neither probes nor opens mappings when nothing comes back: "
                  "lost packets are no sign of a hard NAT");
  g_assert_cmpuint (listener_sends_to_silent_requester (FALSE, 900), <, FEW);
}

static void
test_hard_nat_icmp_evidence (void)
{
  g_test_summary ("When its punches to the requester draw ICMP errors, the requester's "
                  "router has no mapping there for it: the listener probes");
  g_assert_cmpuint (listener_sends_to_silent_requester (TRUE, 900), >, 100);
}

static void
test_hard_nat_late (void)
{
  g_test_summary ("When nothing comes back for long after the punches and their copies, "
                  "the listener probes even without ICMP errors (routers limit those)");
  g_assert_cmpuint (listener_sends_to_silent_requester (FALSE, 1900), >, 100);
}

/* The server: copies of an isync */

typedef struct
{
  RndzServer *server;
  GArray *sent;
} Fixture;

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  RndzMessage ping;

  fixture->server = rndz_server_new ();
  fixture->sent = rndz_test_capture_sent (fixture->server);
  rndz_message_init (&ping, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (ping.id, "alice", sizeof ping.id);
  rndz_test_feed (fixture->server, ALICE_AT, &ping, TRUE);
  g_array_set_size (fixture->sent, 0);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  g_clear_object (&fixture->server);
  g_array_unref (fixture->sent);
}

static gsize
feed_isync (Fixture    *fixture,
            const char *from,
            const char *id,
            guint32     tid)
{
  RndzMessage isync;

  rndz_message_init (&isync, RNDZ_MESSAGE_ISYNC, tid);
  g_strlcpy (isync.id, id, sizeof isync.id);
  g_strlcpy (isync.target, "alice", sizeof isync.target);
  return rndz_test_feed (fixture->server, from, &isync, TRUE);
}

static void
feed_rsync (Fixture *fixture,
            guint32  tid)
{
  RndzMessage rsync;

  rndz_message_init (&rsync, RNDZ_MESSAGE_RSYNC, tid);
  g_strlcpy (rsync.id, "alice", sizeof rsync.id);
  g_strlcpy (rsync.target, "bob", sizeof rsync.target);
  rndz_test_feed (fixture->server, ALICE_AT, &rsync, FALSE);
}

/* The fsyncs sent to alice for requester @id; the tid of the last */
static guint
count_fsyncs (Fixture    *fixture,
              const char *id,
              guint32    *tid)
{
  guint n = 0;

  for (guint i = 0; i < fixture->sent->len; i++)
    {
      const RndzTestSent *sent = &g_array_index (fixture->sent, RndzTestSent, i);

      if (sent->msg.type == RNDZ_MESSAGE_FSYNC && g_str_equal (sent->msg.id, id))
        {
          n++;
          if (tid != NULL)
            *tid = sent->msg.tid;
        }
    }
  return n;
}

static void
test_server_redirect_again (Fixture       *fixture,
                            gconstpointer  data)
{
  const RndzTestSent *redirect;
  guint32 server_tid = 0;
  gsize len;

  g_test_summary ("A copy of an isync whose rsync came (the redirect was lost) gets the "
                  "redirect again, no larger than itself, and no fsync; a copy of the "
                  "rsync changes nothing");

  len = feed_isync (fixture, BOB_AT, "bob", 42);
  g_assert_cmpuint (count_fsyncs (fixture, "bob", &server_tid), ==, 1);
  feed_rsync (fixture, server_tid);
  g_assert_cmpuint (rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_REDIRECT), ==, 1);
  g_array_set_size (fixture->sent, 0);

  for (guint i = 0; i < 3; i++)
    {
      g_assert_cmpuint (feed_isync (fixture, BOB_AT, "bob", 42), ==, len);
      g_assert_cmpuint (fixture->sent->len, ==, 1);
      redirect = &g_array_index (fixture->sent, RndzTestSent, 0);
      g_assert_cmpint (redirect->msg.type, ==, RNDZ_MESSAGE_REDIRECT);
      g_assert_cmpuint (redirect->msg.tid, ==, 42);
      g_assert_cmpstr (redirect->msg.id, ==, "alice");
      g_assert_cmpuint (redirect->to.port, ==, 5000);
      g_assert_cmpuint (redirect->len, <=, len);
      g_array_set_size (fixture->sent, 0);
    }

  feed_rsync (fixture, server_tid);
  g_assert_cmpuint (fixture->sent->len, ==, 0);
}

static void
test_server_fsync_copies (Fixture       *fixture,
                          gconstpointer  data)
{
  g_autofree char *from = NULL;
  guint32 server_tid = 0;
  gsize len;

  g_test_summary ("Copies of a pending isync send its fsync again even when others have "
                  "used up alice's budget for new requests, and at most "
                  G_STRINGIFY (MAX_FSYNC_COPIES) " times, each no larger than the copy");

  len = feed_isync (fixture, BOB_AT, "bob", 42);
  g_assert_cmpuint (count_fsyncs (fixture, "bob", &server_tid), ==, 1);

  /* Requesters of their own take the rest of alice's shared budget (40
   * by default), then her newcomers' */
  for (guint i = 0; i < 500; i++)
    {
      g_free (from);
      from = g_strdup_printf ("203.0.113.%u:%u", 1 + i % 250, 6000 + i);
      feed_isync (fixture, from, "carol", 1000 + i);
    }
  /* Not all of them got through */
  g_assert_cmpuint (count_fsyncs (fixture, "carol", NULL), <, 500);
  g_array_set_size (fixture->sent, 0);

  for (guint i = 0; i < 20; i++)
    feed_isync (fixture, BOB_AT, "bob", 42);
  g_assert_cmpuint (count_fsyncs (fixture, "bob", NULL), ==, MAX_FSYNC_COPIES);
  for (guint i = 0; i < fixture->sent->len; i++)
    g_assert_cmpuint (g_array_index (fixture->sent, RndzTestSent, i).len, <=, len);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/loss/udp/rsync", test_rsync_lost);
  g_test_add_func ("/loss/udp/checks", test_checks_lost);
  g_test_add_func ("/loss/udp/confirms", test_confirms_lost);
  g_test_add_func ("/loss/udp/use", test_use_lost);
  g_test_add_func ("/loss/udp/use-answer", test_use_answer_lost);
  g_test_add_func ("/loss/udp/every-step-once", test_everything_lost_once);
  g_test_add_func ("/loss/udp/use-answers-all", test_use_answers_all_lost);
  g_test_add_func ("/loss/hard-nat/no-evidence", test_hard_nat_no_evidence);
  g_test_add_func ("/loss/hard-nat/icmp-evidence", test_hard_nat_icmp_evidence);
  g_test_add_func ("/loss/hard-nat/late", test_hard_nat_late);
  g_test_add ("/loss/server/redirect-again", Fixture, NULL,
              fixture_setup, test_server_redirect_again, fixture_teardown);
  g_test_add ("/loss/server/fsync-copies", Fixture, NULL,
              fixture_setup, test_server_fsync_copies, fixture_teardown);

  return g_test_run ();
}
