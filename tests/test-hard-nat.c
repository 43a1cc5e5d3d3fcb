/* test-hard-nat.c: the pieces of the hard-NAT phase, on the loopback
 *
 * SPDX-License-Identifier: MIT
 *
 * The phase itself needs NATs that give each destination a new port:
 * tests/netns/test-nat.sh runs it through real ones and measures it.
 */

#include <rndz-glib/rndz.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "rndz-socket-private.h"
#include "rndz-hard-nat-private.h"
#include "rndz-udp-filter-private.h"
#include "rndz-test-util.h"

/* The guess of which side is hard */

static void
test_rewrites_port (void)
{
  RndzAddr observed = rndz_test_addr ("203.0.113.2:40000");
  RndzAddr cands[3];

  /* Nothing to compare with: no guess */
  g_assert_false (rndz_nat_rewrites_port (&observed, cands, 0));

  /* The NAT kept the port the peer bound */
  cands[0] = rndz_test_addr ("10.0.2.2:40000");
  g_assert_false (rndz_nat_rewrites_port (&observed, cands, 1));

  /* It picked another */
  cands[0] = rndz_test_addr ("10.0.2.2:51000");
  g_assert_true (rndz_nat_rewrites_port (&observed, cands, 1));

  /* Any candidate with the port is enough to call it kept */
  cands[1] = rndz_test_addr ("[2001:db8::2]:51000");
  cands[2] = rndz_test_addr ("192.168.1.2:40000");
  g_assert_true (rndz_nat_rewrites_port (&observed, cands, 2));
  g_assert_false (rndz_nat_rewrites_port (&observed, cands, 3));

  /* No NAT at all: the public address is a candidate */
  cands[0] = observed;
  g_assert_false (rndz_nat_rewrites_port (&observed, cands, 1));
}

static void
test_same_host (void)
{
  RndzAddr a = rndz_test_addr ("203.0.113.2:40000");
  RndzAddr b = rndz_test_addr ("203.0.113.2:1024");
  RndzAddr c = rndz_test_addr ("203.0.113.3:40000");
  RndzAddr v6 = rndz_test_addr ("[2001:db8::cb00:7102]:40000");
  RndzAddr v6b = rndz_test_addr ("[2001:db8::cb00:7102]:9");
  RndzAddr v6c = rndz_test_addr ("[2001:db8::1:cb00:7102]:40000");

  g_assert_true (rndz_addr_same_host (&a, &b));
  g_assert_false (rndz_addr_same_host (&a, &c));
  g_assert_false (rndz_addr_same_host (&a, &v6));
  g_assert_true (rndz_addr_same_host (&v6, &v6b));
  g_assert_false (rndz_addr_same_host (&v6, &v6c));
}

/* Where the path to a peer counts as local */
static void
test_is_private (void)
{
  const char *private[] = { "10.0.1.2:1", "10.255.255.255:1", "172.16.0.1:1", "172.31.255.254:1",
                            "192.168.1.20:1", "[fd00::2]:1", "[fc00::1]:1" };
  const char *public[] = { "9.255.255.255:1", "11.0.0.1:1", "172.15.255.255:1", "172.32.0.1:1",
                           "192.167.1.1:1", "192.169.0.1:1", "203.0.113.2:1", "127.0.0.1:1",
                           "100.64.0.1:1", "[2001:db8::1]:1", "[fe80::1]:1", "[::1]:1",
                           "[fbff::1]:1", "[fe00::1]:1" };

  for (guint i = 0; i < G_N_ELEMENTS (private); i++)
    {
      RndzAddr a = rndz_test_addr (private[i]);

      g_assert_true (rndz_addr_is_private (&a));
    }
  for (guint i = 0; i < G_N_ELEMENTS (public); i++)
    {
      RndzAddr a = rndz_test_addr (public[i]);

      g_assert_false (rndz_addr_is_private (&a));
    }
}

/* A listener's probes, for all requesters: so many per window */
static void
test_probe_budget (void)
{
  RndzProbeBudget budget = { 0, };
  gint64 start = 1000 * G_USEC_PER_SEC;
  guint taken = 0;

  /* The whole budget, spread over the window, and not one more */
  for (guint i = 0; i < RNDZ_PROBE_BUDGET + 100; i++)
    taken += rndz_probe_budget_take (&budget, start + i * (RNDZ_PROBE_WINDOW_US / (RNDZ_PROBE_BUDGET + 100)));
  g_assert_cmpuint (taken, ==, RNDZ_PROBE_BUDGET);
  g_assert_false (rndz_probe_budget_take (&budget, start + RNDZ_PROBE_WINDOW_US - 1));

  /* A new window, a new budget */
  g_assert_true (rndz_probe_budget_take (&budget, start + RNDZ_PROBE_WINDOW_US));
  for (taken = 1; rndz_probe_budget_take (&budget, start + RNDZ_PROBE_WINDOW_US + 1); taken++)
    ;
  g_assert_cmpuint (taken, ==, RNDZ_PROBE_BUDGET);

  /* A monotonic clock may start near 0: the first take opens a window */
  budget = (RndzProbeBudget) { 0, };
  g_assert_true (rndz_probe_budget_take (&budget, 1));
  g_assert_cmpuint (budget.left, ==, RNDZ_PROBE_BUDGET - 1);
}

static void
test_probe_port (void)
{
  gboolean low = FALSE, high = FALSE;

  for (guint i = 0; i < 100000; i++)
    {
      guint16 port = rndz_probe_port ();

      g_assert_cmpuint (port, >=, 1024);
      low |= port < 1024 + 2048;
      high |= port > 65535 - 2048;
    }

  /* The whole range, ends included, with a chance of missing either of
   * about e^-3000 */
  g_assert_true (low);
  g_assert_true (high);
}

/* RndzSpray */

typedef struct
{
  GMainContext *context;
  RndzPeerContext *peer;        /* bob */
  GSocket *target;              /* where the spray sends */
  RndzAddr target_addr;
  RndzMessage msg;
  RndzSpray *spray;
  gboolean big_buffer;

  /* What the callback saw */
  guint calls;
  GSocket *last_socket;
  RndzAddr last_from;
  RndzMessage last_msg;
  gboolean take;
  gboolean free_spray;
  GSocket *taken;
  guint wait_calls;             /* what called() waits for */
} Fixture;

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(GSocketAddress) local = NULL;

  fixture->context = g_main_context_new ();
  g_main_context_push_thread_default (fixture->context);
  fixture->peer = rndz_peer_context_new (fixture->context);

  fixture->target = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                          &fixture->target_addr);
  /* Room for every socket's datagram at once: more than rmem_max
   * allows, for root */
  fixture->big_buffer = g_socket_set_option (fixture->target, SOL_SOCKET, SO_RCVBUFFORCE,
                                             1 << 20, NULL);
  local = rndz_addr_to_socket_address (&fixture->target_addr, G_SOCKET_FAMILY_IPV4);

  /* Our own port is taken (by the target, without SO_REUSEPORT): the
   * spray must not try to use it */
  fixture->peer->local_address = g_object_ref (G_INET_SOCKET_ADDRESS (local));

  rndz_message_init (&fixture->msg, RNDZ_MESSAGE_CHECK, 4242);
  g_strlcpy (fixture->msg.id, "bob", sizeof fixture->msg.id);
  g_strlcpy (fixture->msg.target, "alice", sizeof fixture->msg.target);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  g_clear_pointer (&fixture->spray, rndz_spray_free);
  if (fixture->taken != NULL)
    g_socket_close (fixture->taken, NULL);
  g_clear_object (&fixture->taken);
  g_clear_object (&fixture->target);
  g_clear_pointer (&fixture->peer, rndz_peer_context_unref);
  g_main_context_pop_thread_default (fixture->context);
  g_main_context_unref (fixture->context);
}

static void
spray_cb (RndzSpray         *spray,
          GSocket           *socket,
          const RndzAddr    *from,
          const RndzMessage *msg,
          gpointer           user_data)
{
  Fixture *fixture = user_data;

  g_assert_true (spray == fixture->spray);
  fixture->calls++;
  fixture->last_socket = socket;
  fixture->last_from = *from;
  fixture->last_msg = *msg;

  if (fixture->take && fixture->taken == NULL)
    fixture->taken = rndz_spray_take (spray, socket);
  if (fixture->free_spray)
    g_clear_pointer (&fixture->spray, rndz_spray_free);
}

/* Reads what the target has, into @sources (port → count) */
static guint
read_target (Fixture    *fixture,
             GHashTable *sources)
{
  guint n = 0;

  for (;;)
    {
      g_autoptr(GSocketAddress) from = NULL;
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
      RndzMessage msg;
      RndzAddr a;
      gssize len;

      len = g_socket_receive_from (fixture->target, &from, buf, sizeof buf, NULL, NULL);
      if (len < 0)
        return n;

      g_assert_true (rndz_message_decode (&msg, buf, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL));
      g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_CHECK);
      g_assert_cmpuint (msg.tid, ==, 4242);
      g_assert_cmpstr (msg.id, ==, "bob");
      g_assert_cmpstr (msg.target, ==, "alice");
      g_assert_true (rndz_addr_from_socket_address (&a, from));
      g_assert_true (rndz_addr_same_host (&a, &fixture->target_addr));
      g_hash_table_insert (sources, GUINT_TO_POINTER (a.port),
                           GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (sources, GUINT_TO_POINTER (a.port))) + 1));
      n++;
    }
}

typedef struct
{
  GHashTable *sources;
  guint received;
} Count;

/* Collects what the spray sends in half a second: every socket's
 * datagram, or what came of them by then */
static void
collect (Fixture *fixture,
         Count   *count)
{
  gint64 deadline = g_get_monotonic_time () + 500 * 1000;

  for (;;)
    {
      gint64 left = deadline - g_get_monotonic_time ();

      count->received += read_target (fixture, count->sources);
      if (count->received >= RNDZ_SPRAY_SOCKETS || left <= 0)
        return;
      rndz_test_run_until_readable (fixture->context, fixture->target, left / 1000 + 1);
    }
}

/* Every socket sends once, from a port of its own. The loopback drops
 * what the target's buffer cannot hold of a burst of 256: as root, the
 * test makes the buffer large enough to count them all. */
static void
test_spray_sends (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(GHashTable) sources = g_hash_table_new (NULL, NULL);
  Count count = { sources, 0 };

  fixture->spray = rndz_spray_new (fixture->peer, G_SOCKET_FAMILY_IPV4, &fixture->target_addr,
                                   &fixture->msg, fixture->context, spray_cb, fixture);
  g_assert_cmpuint (rndz_spray_get_size (fixture->spray), ==, RNDZ_SPRAY_SOCKETS);

  collect (fixture, &count);
  /* One from each port */
  g_assert_cmpuint (g_hash_table_size (sources), ==, count.received);
  if (fixture->big_buffer)
    g_assert_cmpuint (count.received, ==, RNDZ_SPRAY_SOCKETS);
  else
    g_assert_cmpuint (count.received, >=, RNDZ_SPRAY_SOCKETS / 4);
  g_assert_false (g_hash_table_contains (sources, GUINT_TO_POINTER (fixture->target_addr.port)));

  /* And not again: the target's buffer keeps what would come */
  rndz_test_run_for (fixture->context, 1500);
  g_assert_cmpuint (read_target (fixture, sources), ==, 0);
  g_assert_cmpuint (fixture->calls, ==, 0);
}

static gboolean
called (gpointer data)
{
  Fixture *fixture = data;

  return fixture->calls >= fixture->wait_calls;
}

/* Runs the context until the callback ran @calls times in all */
static void
wait_calls (Fixture *fixture,
            guint    calls)
{
  fixture->wait_calls = calls;
  g_assert_true (rndz_test_run_until (fixture->context, called, fixture, RNDZ_TEST_TIMEOUT_MS));
}

/* Sends @msg to one of the spray's ports, learnt from the target */
static void
answer_from_target (Fixture           *fixture,
                    const RndzMessage *msg,
                    guint16            port)
{
  g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len = rndz_message_encode (msg, buf, sizeof buf);

  g_assert_cmpint (g_socket_send_to (fixture->target, to, buf, len, NULL, NULL), ==, len);
}

static GArray *
spray_ports (Fixture *fixture)
{
  g_autoptr(GHashTable) sources = g_hash_table_new (NULL, NULL);
  Count count = { sources, 0 };
  GArray *ports = g_array_new (FALSE, FALSE, sizeof (guint16));
  GHashTableIter iter;
  gpointer port;

  collect (fixture, &count);
  g_assert_cmpuint (count.received, >=, 20);
  g_hash_table_iter_init (&iter, sources);
  while (g_hash_table_iter_next (&iter, &port, NULL))
    {
      guint16 p = GPOINTER_TO_UINT (port);
      g_array_append_val (ports, p);
    }
  return ports;
}

/* What comes in on a port is passed on decoded, with its sender; a
 * taken socket leaves the spray and stays open */
static void
test_spray_receives (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(GArray) ports = NULL;
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) error = NULL;
  RndzMessage answer;
  RndzAddr taken_addr;
  guint16 port;

  fixture->spray = rndz_spray_new (fixture->peer, G_SOCKET_FAMILY_IPV4, &fixture->target_addr,
                                   &fixture->msg, fixture->context, spray_cb, fixture);
  ports = spray_ports (fixture);
  port = g_array_index (ports, guint16, 17);

  /* Not a message: not passed on */
  {
    g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);

    g_socket_send_to (fixture->target, to, "not json", 8, NULL, NULL);
  }

  rndz_message_init (&answer, RNDZ_MESSAGE_CONFIRM, 4242);
  g_strlcpy (answer.id, "alice", sizeof answer.id);
  g_strlcpy (answer.target, "bob", sizeof answer.target);
  fixture->take = TRUE;
  answer_from_target (fixture, &answer, port);
  wait_calls (fixture, 1);

  g_assert_cmpuint (fixture->calls, ==, 1);
  g_assert_true (rndz_addr_equal (&fixture->last_from, &fixture->target_addr));
  g_assert_cmpint (fixture->last_msg.type, ==, RNDZ_MESSAGE_CONFIRM);
  g_assert_cmpstr (fixture->last_msg.id, ==, "alice");

  /* Taken: out of the spray, still open, on that port */
  g_assert_nonnull (fixture->taken);
  g_assert_true (fixture->taken == fixture->last_socket);
  g_assert_false (g_socket_is_closed (fixture->taken));
  g_assert_cmpuint (rndz_spray_get_size (fixture->spray), ==, RNDZ_SPRAY_SOCKETS - 1);
  local = g_socket_get_local_address (fixture->taken, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (&taken_addr, local));
  g_assert_cmpuint (taken_addr.port, ==, port);

  /* What comes to it now is the taker's, not the callback's */
  answer_from_target (fixture, &answer, port);
  answer_from_target (fixture, &answer, g_array_index (ports, guint16, 18));
  wait_calls (fixture, 2);
  g_assert_true (fixture->last_socket != fixture->taken);
  g_assert_cmpint (g_socket_condition_check (fixture->taken, G_IO_IN), ==, G_IO_IN);

  /* Freeing the spray leaves the taken socket alone */
  g_clear_pointer (&fixture->spray, rndz_spray_free);
  g_assert_false (g_socket_is_closed (fixture->taken));
}

/* The callback may free the spray; what was queued behind is dropped */
static void
test_spray_free_in_callback (Fixture       *fixture,
                             gconstpointer  data)
{
  g_autoptr(GArray) ports = NULL;
  RndzMessage answer;
  guint16 port;

  fixture->spray = rndz_spray_new (fixture->peer, G_SOCKET_FAMILY_IPV4, &fixture->target_addr,
                                   &fixture->msg, fixture->context, spray_cb, fixture);
  ports = spray_ports (fixture);
  port = g_array_index (ports, guint16, 3);

  rndz_message_init (&answer, RNDZ_MESSAGE_USE, 4242);
  g_strlcpy (answer.id, "alice", sizeof answer.id);
  g_strlcpy (answer.target, "bob", sizeof answer.target);
  /* Two on one port, one on another: all queued before the callback */
  answer_from_target (fixture, &answer, port);
  answer_from_target (fixture, &answer, port);
  answer_from_target (fixture, &answer, g_array_index (ports, guint16, 4));
  /* A real-time wait, not a context run: all three must be queued
   * before the first dispatch */
  g_usleep (50 * 1000);

  fixture->free_spray = TRUE;
  wait_calls (fixture, 1);
  g_assert_null (fixture->spray);

  /* Nothing more is dispatched */
  for (guint i = 0; i < 20; i++)
    g_main_context_iteration (fixture->context, FALSE);
  g_assert_cmpuint (fixture->calls, ==, 1);
}

/* Out of descriptors: fewer sockets, and no failure */
static void
test_spray_few_descriptors (Fixture       *fixture,
                            gconstpointer  data)
{
  if (g_test_subprocess ())
    {
      struct rlimit limit;
      guint size;

      g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &limit), ==, 0);
      /* Room for what is open already and a few more */
      limit.rlim_cur = 64;
      g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &limit), ==, 0);

      fixture->spray = rndz_spray_new (fixture->peer, G_SOCKET_FAMILY_IPV4, &fixture->target_addr,
                                       &fixture->msg, fixture->context, spray_cb, fixture);
      size = rndz_spray_get_size (fixture->spray);
      g_assert_cmpuint (size, >, 0);
      g_assert_cmpuint (size, <, 64);
      g_clear_pointer (&fixture->spray, rndz_spray_free);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
}

/* rndz_udp_drain(): what the application filter would have dropped */

static void
test_drain (Fixture       *fixture,
            gconstpointer  data)
{
  g_autoptr(GSocket) sender = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
  g_autoptr(GSocketAddress) to = NULL;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg;
  gsize len;
  gssize n;

  to = rndz_addr_to_socket_address (&fixture->target_addr, G_SOCKET_FAMILY_IPV4);
  len = rndz_message_encode (&fixture->msg, buf, sizeof buf);
  g_socket_send_to (sender, to, buf, len, NULL, NULL);
  rndz_message_init (&msg, RNDZ_MESSAGE_USE, 1);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  g_strlcpy (msg.target, "bob", sizeof msg.target);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_socket_send_to (sender, to, buf, len, NULL, NULL);
  g_socket_send_to (sender, to, "application", 11, NULL, NULL);
  g_socket_send_to (sender, to, buf, len, NULL, NULL);
  /* A real-time wait: rndz_udp_drain() reads without a main context */
  g_usleep (50 * 1000);

  g_assert_cmpuint (rndz_udp_drain (fixture->target), ==, 2);

  /* The application's datagram is first, and the use behind it stays */
  n = g_socket_receive (fixture->target, buf, sizeof buf, NULL, NULL);
  g_assert_cmpint (n, ==, 11);
  g_assert_cmpmem (buf, n, "application", 11);
  n = g_socket_receive (fixture->target, buf, sizeof buf, NULL, NULL);
  g_assert_cmpint (n, ==, len);

  /* An empty queue: nothing to do */
  g_assert_cmpuint (rndz_udp_drain (fixture->target), ==, 0);
}

/* RndzProber */

typedef struct
{
  RndzProbeResult answer;
  guint calls;
  RndzAddr host;
  gboolean wrong_host;
  gboolean low_port;
  gboolean wrong_data;
  guint8 sent[65536];           /* the ports a probe was sent to */
} Probes;

static RndzProbeResult
probe_cb (const RndzAddr *to,
          const char     *data,
          gsize           len,
          gpointer        user_data)
{
  Probes *probes = user_data;
  RndzAddr host = *to;
  RndzMessage msg;

  probes->calls++;
  probes->wrong_data |= !rndz_message_decode (&msg, data, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) ||
                        msg.type != RNDZ_MESSAGE_CHECK || msg.tid != 7 ||
                        !g_str_equal (msg.target, "alice");
  host.port = probes->host.port;
  probes->wrong_host |= !rndz_addr_equal (&host, &probes->host);
  probes->low_port |= to->port < 1024;
  probes->sent[to->port] |= probes->answer == RNDZ_PROBE_SENT;
  return probes->answer;
}

static gboolean
set_true_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
run_ticks (guint ticks)
{
  gboolean done = FALSE;

  g_timeout_add (ticks * RNDZ_PROBE_INTERVAL_MS + 2, set_true_cb, &done);
  while (!done)
    g_main_context_iteration (NULL, TRUE);
}

static void
test_prober (void)
{
  Probes probes = { RNDZ_PROBE_SENT };
  g_autoptr(RndzProber) prober = NULL;
  RndzMessage check;
  guint count;

  g_test_summary ("The prober paces probes to random ports of one host, a probe that "
                  "did not leave is not counted, and it knows which ports it probed");

  g_assert_true (rndz_addr_parse (&probes.host, "192.0.2.1:9", NULL));
  rndz_message_init (&check, RNDZ_MESSAGE_CHECK, 7);
  g_strlcpy (check.id, "bob", sizeof check.id);
  g_strlcpy (check.target, "alice", sizeof check.target);
  prober = rndz_prober_new (NULL, &probes.host, &check, probe_cb, &probes);
  g_assert_cmpuint (probes.calls, ==, 0);

  run_ticks (3);
  count = rndz_prober_get_count (prober);
  g_assert_cmpuint (count, >=, RNDZ_PROBES_PER_INTERVAL);
  g_assert_cmpuint (count % RNDZ_PROBES_PER_INTERVAL, ==, 0);
  g_assert_cmpuint (count, <=, 4 * RNDZ_PROBES_PER_INTERVAL);
  g_assert_false (probes.wrong_host);
  g_assert_false (probes.low_port);
  g_assert_false (probes.wrong_data);

  /* Skipped and waiting probes count for nothing */
  probes.answer = RNDZ_PROBE_SKIPPED;
  run_ticks (2);
  probes.answer = RNDZ_PROBE_WAIT;
  run_ticks (2);
  g_assert_cmpuint (rndz_prober_get_count (prober), ==, count);
  g_assert_false (rndz_prober_is_done (prober));

  /* Stopped: no more calls */
  probes.answer = RNDZ_PROBE_STOP;
  run_ticks (2);
  g_assert_true (rndz_prober_is_done (prober));
  probes.calls = 0;
  run_ticks (2);
  g_assert_cmpuint (probes.calls, ==, 0);

  /* It knows the ports it probed, and only those: a confirm from any
   * other port of the host is no answer to a probe */
  for (guint port = 0; port < 65536; port++)
    g_assert_cmpint (rndz_prober_has_probed (prober, port), ==, probes.sent[port]);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/hard-nat/rewrites-port", test_rewrites_port);
  g_test_add_func ("/hard-nat/same-host", test_same_host);
  g_test_add_func ("/hard-nat/is-private", test_is_private);
  g_test_add_func ("/hard-nat/probe-port", test_probe_port);
  g_test_add_func ("/hard-nat/probe-budget", test_probe_budget);
  g_test_add_func ("/hard-nat/prober", test_prober);
  g_test_add ("/hard-nat/spray/sends", Fixture, NULL, fixture_setup, test_spray_sends, fixture_teardown);
  g_test_add ("/hard-nat/spray/receives", Fixture, NULL, fixture_setup, test_spray_receives, fixture_teardown);
  g_test_add ("/hard-nat/spray/free-in-callback", Fixture, NULL, fixture_setup,
              test_spray_free_in_callback, fixture_teardown);
  g_test_add ("/hard-nat/spray/few-descriptors", Fixture, NULL, fixture_setup,
              test_spray_few_descriptors, fixture_teardown);
  g_test_add ("/hard-nat/drain", Fixture, NULL, fixture_setup, test_drain, fixture_teardown);

  return g_test_run ();
}
