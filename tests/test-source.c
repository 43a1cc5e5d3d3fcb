/* test-source.c: the library's socket sources
 *
 * SPDX-License-Identifier: MIT
 *
 * rndz_socket_source_add() makes sources that GLib does not block while
 * it dispatches them (blocking costs four system calls a datagram), so
 * the source guards itself: a callback that runs its context again (a
 * signal handler with a nested main loop) must not be dispatched inside
 * itself, and the source must watch its socket again afterwards; a
 * socket closed under its source must not make the context spin. The
 * socket is on 127.0.0.1, port 0; every wait is bounded.
 */

#include <rndz-glib/rndz.h>

#include "rndz-source-private.h"
#include "rndz-test-util.h"

#define WAIT_MS 3000

typedef struct
{
  GMainContext *context;
  guint depth;
  guint max_depth;
  guint n_calls;
  guint n_read;
} Watch;

static gboolean
read_one (GSocket *socket)
{
  char buf[64];

  return g_socket_receive (socket, buf, sizeof buf, NULL, NULL) > 0;
}

/* Reads one datagram, and the first time runs the context while another
 * waits on the socket */
static gboolean
nested_cb (GSocket      *socket,
           GIOCondition  condition,
           gpointer      user_data)
{
  Watch *watch = user_data;

  watch->depth++;
  watch->max_depth = MAX (watch->max_depth, watch->depth);
  watch->n_calls++;
  if (read_one (socket))
    watch->n_read++;

  if (watch->n_calls == 1)
    for (guint i = 0; i < 20; i++)
      g_main_context_iteration (watch->context, FALSE);

  watch->depth--;
  return G_SOURCE_CONTINUE;
}

static GSocket *
socket_to_self (GSocketAddress **address)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, any, FALSE, &error));
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  *address = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  return g_steal_pointer (&socket);
}

static void
test_source_nested (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSocketAddress) self = NULL;
  g_autoptr(GSocket) socket = socket_to_self (&self);
  Watch watch = { context, 0, 0, 0, 0 };
  GSource *source;
  gint64 deadline;

  g_test_summary ("A socket source whose callback runs its context is not dispatched "
                  "inside itself, and watches its socket again when the callback returns");

  g_main_context_push_thread_default (context);
  source = rndz_socket_source_add (socket, context, nested_cb, &watch, "test");
  for (guint i = 0; i < 2; i++)
    g_assert_cmpint (g_socket_send_to (socket, self, "x", 1, NULL, NULL), ==, 1);

  deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (watch.n_read < 2 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (context, FALSE);

  g_assert_cmpuint (watch.max_depth, ==, 1);
  g_assert_cmpuint (watch.n_read, ==, 2);

  /* Still watching, after the nested loop: a third datagram is read */
  g_assert_cmpint (g_socket_send_to (socket, self, "x", 1, NULL, NULL), ==, 1);
  deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (watch.n_read < 3 && g_get_monotonic_time () < deadline)
    g_main_context_iteration (context, FALSE);
  g_assert_cmpuint (watch.n_read, ==, 3);
  g_assert_cmpuint (watch.max_depth, ==, 1);

  rndz_source_clear (&source);
  g_main_context_pop_thread_default (context);
}

static gboolean
count_cb (GSocket      *socket,
          GIOCondition  condition,
          gpointer      user_data)
{
  Watch *watch = user_data;

  watch->n_calls++;
  if (condition & G_IO_NVAL)
    watch->n_read++;
  return G_SOURCE_CONTINUE;
}

static void
test_source_closed (void)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GSocketAddress) self = NULL;
  g_autoptr(GSocket) socket = socket_to_self (&self);
  Watch watch = { context, 0, 0, 0, 0 };
  GSource *source;

  g_test_summary ("A socket closed under its source: the callback hears G_IO_NVAL once, "
                  "and the context does not spin on the closed descriptor");

  source = rndz_socket_source_add (socket, context, count_cb, &watch, "test");
  g_assert_true (g_socket_close (socket, NULL));
  for (guint i = 0; i < 50; i++)
    g_main_context_iteration (context, FALSE);

  g_assert_cmpuint (watch.n_calls, ==, 1);
  g_assert_cmpuint (watch.n_read, ==, 1);
  g_assert_false (g_main_context_pending (context));
  rndz_source_clear (&source);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/source/socket/nested", test_source_nested);
  g_test_add_func ("/source/socket/closed", test_source_closed);
  return g_test_run ();
}
