/* test-poller.c: the shared epoll poller, and running out of what it needs
 *
 * SPDX-License-Identifier: MIT
 *
 * The first tests drive an RndzPoller over socket pairs. The others run
 * in a forked child (g_test_trap_subprocess) that lowers its own
 * RLIMIT_NOFILE and fills its descriptor table, or forbids getrandom()
 * with a seccomp filter, and then reaches the code that used to abort:
 * they pass only if the child exits normally, having seen the failure
 * reported. Servers listen on 127.0.0.1, port 0 or a port found free.
 * Every wait is bounded.
 */

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <rndz-glib/rndz.h>

#include "rndz-acceptor-private.h"
#include "rndz-poller-private.h"
#include "rndz-relay-private.h"
#include "rndz-server-private.h"
#include "rndz-test-util.h"

/* How long to wait for something that should happen now */
#define WAIT_MS 3000
/* How long to watch for something that should not happen */
#define QUIET_MS 200
/* The children's descriptor limit: low, so that filling it is quick */
#define FD_LIMIT 128

/* Main context */

static gboolean
set_flag_cb (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates @context until *@flag is set; FALSE after @ms */
static gboolean
run_until (GMainContext   *context,
           const gboolean *flag,
           guint           ms)
{
  g_autoptr(GSource) timeout = g_timeout_source_new (ms);
  gboolean timed_out = FALSE;

  g_source_set_callback (timeout, set_flag_cb, &timed_out, NULL);
  g_source_attach (timeout, context);
  while (!*flag && !timed_out)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  return *flag;
}

static void
run_for (GMainContext *context,
         guint         ms)
{
  gboolean never = FALSE;

  run_until (context, &never, ms);
}

/* Descriptors */

/*
 * Lowers the soft descriptor limit to FD_LIMIT and fills the table with
 * copies of /dev/null, then closes @leave of them. Returns the others,
 * to give back with release_descriptors(). Children only.
 */
static GArray *
exhaust_descriptors (guint leave)
{
  GArray *fds = g_array_new (FALSE, FALSE, sizeof (int));
  struct rlimit limit;
  int null_fd;

  g_assert_cmpint (getrlimit (RLIMIT_NOFILE, &limit), ==, 0);
  limit.rlim_cur = MIN (limit.rlim_max, FD_LIMIT);
  g_assert_cmpint (setrlimit (RLIMIT_NOFILE, &limit), ==, 0);

  null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (null_fd, >=, 0);
  g_array_append_val (fds, null_fd);
  for (;;)
    {
      int fd = fcntl (null_fd, F_DUPFD_CLOEXEC, 0);

      if (fd < 0)
        {
          g_assert_cmpint (errno, ==, EMFILE);
          break;
        }
      g_array_append_val (fds, fd);
    }

  g_assert_cmpuint (fds->len, >, leave);
  for (guint i = 0; i < leave; i++)
    close (g_array_index (fds, int, fds->len - 1 - i));
  g_array_set_size (fds, fds->len - leave);
  return fds;
}

static void
release_descriptors (GArray *fds,
                     guint   n)
{
  n = MIN (n, fds->len);
  for (guint i = 0; i < n; i++)
    close (g_array_index (fds, int, fds->len - 1 - i));
  g_array_set_size (fds, fds->len - n);
}

/* Logging: what the library says, collected in the child */

static void
collect_log_cb (const char     *domain,
                GLogLevelFlags  level,
                const char     *message,
                gpointer        user_data)
{
  g_string_append_printf (user_data, "%s\n", message);
}

static GString *
collect_log (void)
{
  GString *log = g_string_new (NULL);

  g_log_set_handler ("Rndz", G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                     collect_log_cb, log);
  return log;
}

static void
assert_logged (GString    *log,
               const char *text)
{
  if (strstr (log->str, text) == NULL)
    g_test_message ("Library log:\n%s", log->str);
  g_assert_nonnull (strstr (log->str, text));
}

/* Sockets */

static GSocketAddress *
loopback_address (guint16 port)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);

  return g_inet_socket_address_new (loopback, port);
}

/* A TCP connection to @port; connected at once from the backlog */
static GSocket *
connect_to (guint16 port)
{
  g_autoptr(GSocketAddress) address = loopback_address (port);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP,
                         &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_connect (socket, address, NULL, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  return g_steal_pointer (&socket);
}

static gboolean
socket_ready_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  return set_flag_cb (user_data);
}

/* Whether the other side closed @socket within @ms */
static gboolean
closed_within (GMainContext *context,
               GSocket      *socket,
               guint         ms)
{
  g_autoptr(GSource) source = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                                      NULL);
  gboolean ready = FALSE;
  char byte;

  g_source_set_callback (source, G_SOURCE_FUNC (socket_ready_cb), &ready, NULL);
  g_source_attach (source, context);
  run_until (context, &ready, ms);
  g_source_destroy (source);

  /* Readable: EOF or a reset, since nobody sends anything */
  return ready && g_socket_receive (socket, &byte, 1, NULL, NULL) <= 0;
}

/* The poller */

typedef struct
{
  RndzPoller *poller;
  RndzPollerWatch *watch;
  int fds[2];
  gboolean called;
  guint32 events;
  guint *calls;             /* shared by the watches of a test */
  gpointer other;
  gpointer *survivor;       /* where the first called says it is */
} Watched;

static Watched *
watched_new (RndzPoller *poller,
             guint      *calls)
{
  Watched *w = g_new0 (Watched, 1);

  w->poller = poller;
  w->calls = calls;
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, w->fds),
                   ==, 0);
  return w;
}

static void
watched_free (Watched *w)
{
  if (w->watch != NULL)
    rndz_poller_remove (w->poller, w->watch);
  close (w->fds[0]);
  close (w->fds[1]);
  g_free (w);
}

static void
record_cb (guint32  events,
           gpointer user_data)
{
  Watched *w = user_data;

  w->called = TRUE;
  w->events = events;
  (*w->calls)++;
}

/* Runs until @w is called back; FALSE if it was not within @ms */
static gboolean
called_within (GMainContext *context,
               Watched      *w,
               guint         ms)
{
  w->called = FALSE;
  return run_until (context, &w->called, ms);
}

static void
test_watch (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  RndzPoller *poller;
  Watched *w;
  guint calls = 0;

  g_test_summary ("A watch is called back on the poller's context for the events it asks "
                  "for, as long as they last, and for none while it asks for none");

  poller = rndz_poller_new (context, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_poller_get_context (poller) == context);
  w = watched_new (poller, &calls);
  w->watch = rndz_poller_add (poller, w->fds[0], EPOLLIN, record_cb, w, &error);
  g_assert_no_error (error);
  g_assert_false (called_within (context, w, QUIET_MS));

  g_assert_cmpint (write (w->fds[1], "x", 1), ==, 1);
  g_assert_true (called_within (context, w, WAIT_MS));
  g_assert_cmphex (w->events & EPOLLIN, ==, EPOLLIN);
  /* Level-triggered: unread input calls again */
  g_assert_true (called_within (context, w, WAIT_MS));

  g_assert_true (rndz_poller_set_events (poller, w->watch, 0, &error));
  g_assert_no_error (error);
  g_assert_cmphex (rndz_poller_get_events (w->watch), ==, 0);
  g_assert_false (called_within (context, w, QUIET_MS));

  g_assert_true (rndz_poller_set_events (poller, w->watch, EPOLLOUT, &error));
  g_assert_true (called_within (context, w, WAIT_MS));
  g_assert_cmphex (w->events, ==, EPOLLOUT);

  watched_free (w);
  rndz_poller_free (poller);
}

/* Removes the other watch, and frees it: the poller must not call it */
static void
remove_other_cb (guint32  events,
                 gpointer user_data)
{
  Watched *w = user_data;

  record_cb (events, w);
  *w->survivor = w;
  if (w->other != NULL)
    watched_free (g_steal_pointer (&w->other));
}

static void
test_remove_in_callback (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GError) error = NULL;
  RndzPoller *poller;
  g_autoptr(GSource) timeout = NULL;
  gboolean timed_out = FALSE;
  Watched *a, *b;
  gpointer survivor = NULL;
  guint calls = 0;

  g_test_summary ("A watch removed by another's callback of the same batch is not called: "
                  "its data may be freed at once");

  poller = rndz_poller_new (context, &error);
  g_assert_no_error (error);
  a = watched_new (poller, &calls);
  b = watched_new (poller, &calls);
  a->other = b;
  b->other = a;
  a->survivor = b->survivor = &survivor;
  a->watch = rndz_poller_add (poller, a->fds[0], EPOLLIN, remove_other_cb, a, &error);
  b->watch = rndz_poller_add (poller, b->fds[0], EPOLLIN, remove_other_cb, b, &error);
  g_assert_no_error (error);

  /* Both ready before the poller looks: one batch */
  g_assert_cmpint (write (a->fds[1], "x", 1), ==, 1);
  g_assert_cmpint (write (b->fds[1], "x", 1), ==, 1);
  /* One iteration, bounded by a timeout: it dispatches the batch */
  timeout = g_timeout_source_new (WAIT_MS);
  g_source_set_callback (timeout, set_flag_cb, &timed_out, NULL);
  g_source_attach (timeout, context);
  g_main_context_iteration (context, TRUE);
  g_source_destroy (timeout);
  g_assert_cmpuint (calls, ==, 1);

  /* Nothing more from the one removed, under ASan or not */
  run_for (context, QUIET_MS);
  g_assert_nonnull (survivor);
  watched_free (survivor);
  rndz_poller_free (poller);
}

static void
test_new_no_descriptors (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr(GMainContext) context = g_main_context_new ();
      g_autoptr(GArray) fds = exhaust_descriptors (0);
      g_autoptr(GError) error = NULL;
      RndzPoller *poller;

      poller = rndz_poller_new (context, &error);
      g_assert_null (poller);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES);

      release_descriptors (fds, 1);
      g_clear_error (&error);
      poller = rndz_poller_new (context, &error);
      g_assert_no_error (error);
      rndz_poller_free (poller);
      release_descriptors (fds, fds->len);
      return;
    }

  g_test_summary ("Without a descriptor left, rndz_poller_new() fails with "
                  "G_IO_ERROR_TOO_MANY_OPEN_FILES rather than aborting");
  g_test_trap_subprocess (NULL, 10 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* The server and its relay, out of descriptors */

/* A frame that no JSON parser takes */
static void
send_garbage (GSocket *socket)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (g_socket_send (socket, "\0\2{]", 4, NULL, &error), ==, 4);
  g_assert_no_error (error);
}

static void
server_child (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GString) log = collect_log ();
  g_autoptr(GSocketAddress) address = loopback_address (0);
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GSocket) refused = NULL;
  g_autoptr(GSocket) served = NULL;
  g_autoptr(GArray) fds = NULL;
  g_autoptr(GError) error = NULL;
  RndzServerStats stats;

  g_main_context_push_thread_default (context);
  server = rndz_server_new ();
  g_assert_true (rndz_server_listen (server, address, &error));
  g_assert_no_error (error);
  refused = connect_to (rndz_server_get_port (server));

  /* accept() takes the last descriptor; the poller, made with the
   * first connection, finds none */
  fds = exhaust_descriptors (1);
  g_assert_true (closed_within (context, refused, WAIT_MS));
  rndz_server_get_stats (server, &stats);
  g_assert_cmpuint (stats.refused_connections, ==, 1);
  assert_logged (log, "Refusing TCP connection: ");

  /* With descriptors again, the next connection is served: it stays
   * open, and is read */
  release_descriptors (fds, 8);
  served = connect_to (rndz_server_get_port (server));
  g_assert_false (closed_within (context, served, QUIET_MS));
  send_garbage (served);
  g_assert_true (closed_within (context, served, WAIT_MS));
  rndz_server_get_stats (server, &stats);
  g_assert_cmpuint (stats.refused_connections, ==, 1);
  g_assert_cmpuint (stats.malformed, ==, 1);

  release_descriptors (fds, fds->len);
  rndz_server_stop (server);
  g_main_context_pop_thread_default (context);
}

static void
test_server_no_descriptors (void)
{
  if (g_test_subprocess ())
    {
      server_child ();
      return;
    }

  g_test_summary ("A TCP connection for which no poller can be made is refused, and the "
                  "server goes on; it used to abort");
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
relay_child (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GString) log = collect_log ();
  g_autoptr(GSocketAddress) address = loopback_address (0);
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GSocket) refused = NULL;
  g_autoptr(GSocket) served = NULL;
  g_autoptr(GArray) fds = NULL;
  g_autoptr(GError) error = NULL;
  guint16 relay_port;
  RndzServerStats stats;

  g_main_context_push_thread_default (context);
  server = rndz_server_new ();

  /* Four descriptors, for the sockets of the two ports: the relay needs
   * no more until a TCP connection comes */
  fds = exhaust_descriptors (4);
  for (guint attempt = 0; ; attempt++)
    {
      relay_port = rndz_test_free_port ();
      rndz_server_set_relay_port (server, relay_port);
      if (rndz_server_listen (server, address, &error))
        break;
      /* Someone took the port meanwhile */
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
      g_assert_cmpuint (attempt, <, 8);
      g_clear_error (&error);
    }

  /* One for this end, one for the relay's accept(), none for a poller */
  release_descriptors (fds, 2);
  refused = connect_to (relay_port);
  g_assert_true (closed_within (context, refused, WAIT_MS));
  rndz_server_get_stats (server, &stats);
  g_assert_cmpuint (stats.relay_dropped, ==, 1);
  assert_logged (log, "Relay: refusing a TCP connection: ");

  /* With descriptors again, the relay waits for a hello, and reads it */
  release_descriptors (fds, 8);
  served = connect_to (relay_port);
  g_assert_false (closed_within (context, served, QUIET_MS));
  send_garbage (served);
  g_assert_true (closed_within (context, served, WAIT_MS));
  rndz_server_get_stats (server, &stats);
  g_assert_cmpuint (stats.relay_dropped, ==, 2);

  release_descriptors (fds, fds->len);
  rndz_server_stop (server);
  g_main_context_pop_thread_default (context);
}

static void
test_relay_no_descriptors (void)
{
  if (g_test_subprocess ())
    {
      relay_child ();
      return;
    }

  g_test_summary ("A server with a relay port listens with no descriptor to spare, and its "
                  "relay refuses a TCP connection it cannot watch, then goes on; it used "
                  "to abort in listen()");
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* Random numbers */

/* Makes getrandom() fail with ENOSYS in this process, as a seccomp
 * policy or an old kernel would */
static void
deny_getrandom (void)
{
  struct sock_filter filter[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = { G_N_ELEMENTS (filter), filter };
  guint8 byte;

  g_assert_cmpint (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), ==, 0);
  g_assert_cmpint (prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program), ==, 0);
  g_assert_cmpint (syscall (SYS_getrandom, &byte, 1, 0), ==, -1);
  g_assert_cmpint (errno, ==, ENOSYS);
}

static GSocket *
bound_socket (GSocketType     type,
              GSocketProtocol protocol)
{
  g_autoptr(GSocketAddress) address = loopback_address (0);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, type, protocol, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, TRUE, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&socket);
}

static void
token_child (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GString) log = collect_log ();
  g_autoptr(GSocketAddress) requester_address = loopback_address (4000);
  g_autoptr(GSocket) udp = bound_socket (G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP);
  g_autoptr(GSocket) tcp = bound_socket (G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP);
  g_autoptr(RndzRelay) relay = NULL;
  RndzServerStats stats = { 0 };
  RndzAddr requester;

  g_assert_true (g_socket_listen (tcp, NULL));
  rndz_addr_from_socket_address (&requester, requester_address);
  relay = rndz_relay_new (context, udp, tcp, &stats);
  rndz_relay_configure (relay, 4, 0, 30);

  deny_getrandom ();
  g_assert_null (rndz_relay_open (relay, RNDZ_TRANSPORT_UDP, &requester, 1, "bob", "alice",
                                   &requester, 2));
  g_assert_cmpuint (rndz_relay_get_session_count (relay), ==, 0);
  g_assert_cmpuint (stats.relay_sessions, ==, 0);
  assert_logged (log, "Cannot generate a session token");
}

static void
test_token_no_random (void)
{
  if (g_test_subprocess ())
    {
      token_child ();
      return;
    }

  g_test_summary ("When getrandom() fails, no relay session is opened and the failure is "
                  "logged; it used to abort, and no weaker generator stands in");
  if (prctl (PR_GET_SECCOMP, 0, 0, 0, 0) < 0)
    {
      g_test_skip ("The kernel has no seccomp filters");
      return;
    }
  g_test_trap_subprocess (NULL, 10 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* CPU time of the process so far, in microseconds */
static gint64
cpu_time_us (void)
{
  struct rusage usage;

  g_assert_cmpint (getrusage (RUSAGE_SELF, &usage), ==, 0);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * G_USEC_PER_SEC +
         usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

static void
exhausted_child (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSocketAddress) address = loopback_address (0);
  g_autoptr(RndzServer) server = NULL;
  g_autoptr(GSocket) first = NULL;
  g_autoptr(GSocket) second = NULL;
  g_autoptr(GSocket) served = NULL;
  g_autoptr(GArray) fds = NULL;
  g_autoptr(GError) error = NULL;
  gint64 cpu;

  g_main_context_push_thread_default (context);
  server = rndz_server_new ();
  g_assert_true (rndz_server_listen (server, address, &error));
  g_assert_no_error (error);

  /* Two descriptors left, for the two connections: the server has none
   * to accept them with */
  fds = exhaust_descriptors (2);
  first = connect_to (rndz_server_get_port (server));
  second = connect_to (rndz_server_get_port (server));

  /* One is refused at once, with the spare descriptor; between tries the
   * server pauses instead of trying again and again, and refuses the
   * other at its next try */
  g_assert_true (closed_within (context, first, WAIT_MS));
  cpu = cpu_time_us ();
  run_for (context, 1000);
  cpu = cpu_time_us () - cpu;
  g_test_message ("CPU time while out of descriptors: %" G_GINT64_FORMAT " ms in 1000 ms",
                  cpu / 1000);
  g_assert_cmpint (cpu, <, 250 * 1000);
  g_assert_true (closed_within (context, second, WAIT_MS));

  /* With descriptors again, it accepts again, after its pause at most */
  release_descriptors (fds, 16);
  run_for (context, RNDZ_ACCEPT_PAUSE_MAX_MS);
  served = connect_to (rndz_server_get_port (server));
  g_assert_false (closed_within (context, served, QUIET_MS));
  send_garbage (served);
  g_assert_true (closed_within (context, served, WAIT_MS));

  release_descriptors (fds, fds->len);
  rndz_server_stop (server);
  g_main_context_pop_thread_default (context);
}

static void
test_server_exhausted (void)
{
  if (g_test_subprocess ())
    {
      exhausted_child ();
      return;
    }

  g_test_summary ("Out of descriptors, the server refuses a waiting connection, then stops "
                  "accepting for a while instead of spinning, and accepts again later");
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
count_accepted_cb (GSocket  *client,
                   gpointer  user_data)
{
  (*(guint *) user_data)++;
}

static void
acceptor_child (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSocket) listening = NULL;
  g_autoptr(GSocket) waiting = NULL;
  g_autoptr(GSocket) later = NULL;
  g_autoptr(GArray) fds = NULL;
  g_autoptr(GSocketAddress) address = loopback_address (0);
  g_autoptr(GSocketAddress) bound = NULL;
  RndzAcceptor *acceptor;
  guint accepted = 0;
  guint16 port;

  listening = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
  g_assert_true (g_socket_bind (listening, address, TRUE, NULL));
  g_assert_true (g_socket_listen (listening, NULL));
  g_socket_set_blocking (listening, FALSE);
  bound = g_socket_get_local_address (listening, NULL);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  acceptor = rndz_acceptor_new (listening, context, 8, count_accepted_cb, &accepted,
                                "[test] acceptor");

  /* One descriptor left, for the connection: none to accept it with */
  fds = exhaust_descriptors (1);
  waiting = connect_to (port);
  g_assert_true (closed_within (context, waiting, WAIT_MS));
  g_assert_cmpuint (rndz_acceptor_get_dropped (acceptor), ==, 1);
  g_assert_true (rndz_acceptor_is_paused (acceptor));
  g_assert_cmpuint (accepted, ==, 0);

  /* The pause ends, and connections are accepted again */
  release_descriptors (fds, 16);
  run_for (context, RNDZ_ACCEPT_PAUSE_MIN_MS + 50);
  g_assert_false (rndz_acceptor_is_paused (acceptor));
  later = connect_to (port);
  run_for (context, QUIET_MS);
  g_assert_cmpuint (accepted, ==, 1);

  rndz_acceptor_free (acceptor);
  release_descriptors (fds, fds->len);
}

static void
test_acceptor_exhausted (void)
{
  if (g_test_subprocess ())
    {
      acceptor_child ();
      return;
    }

  g_test_summary ("Out of descriptors, an acceptor refuses one waiting connection with its "
                  "spare descriptor and pauses, then accepts again");
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/poller/watch", test_watch);
  g_test_add_func ("/poller/remove-in-callback", test_remove_in_callback);
  g_test_add_func ("/poller/new/no-descriptors", test_new_no_descriptors);
  g_test_add_func ("/server/tcp/no-descriptors", test_server_no_descriptors);
  g_test_add_func ("/server/tcp/exhausted", test_server_exhausted);
  g_test_add_func ("/acceptor/exhausted", test_acceptor_exhausted);
  g_test_add_func ("/relay/tcp/no-descriptors", test_relay_no_descriptors);
  g_test_add_func ("/relay/token/no-random", test_token_no_random);

  return g_test_run ();
}
