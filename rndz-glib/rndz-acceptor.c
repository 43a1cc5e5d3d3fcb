/* rndz-acceptor.c: accepting TCP connections without spinning
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rndz-acceptor-private.h"
#include "rndz-source-private.h"

struct _RndzAcceptor
{
  GSocket *listening;
  GMainContext *context;
  guint batch;
  RndzAcceptFunc func;
  gpointer user_data;
  const char *name;
  gboolean freed;               /* by the owner; memory goes with the last reference */

  GSource *source;              /* watching the socket, unless paused */
  GSource *pause;               /* out of descriptors: until this fires */
  guint pause_ms;
  int spare_fd;                 /* given up to refuse one connection; -1 if none */
  guint dropped;
};

static void acceptor_watch (RndzAcceptor *acceptor);

static RndzAcceptor *
acceptor_ref (RndzAcceptor *acceptor)
{
  return g_rc_box_acquire (acceptor);
}

static void
acceptor_clear (RndzAcceptor *acceptor)
{
  g_object_unref (acceptor->listening);
  g_main_context_unref (acceptor->context);
}

static void
acceptor_unref (RndzAcceptor *acceptor)
{
  g_rc_box_release_full (acceptor, (GDestroyNotify) acceptor_clear);
}

static int
spare_open (void)
{
  return open ("/dev/null", O_RDONLY | O_CLOEXEC);
}

static gboolean
pause_cb (gpointer user_data)
{
  RndzAcceptor *acceptor = user_data;

  g_clear_pointer (&acceptor->pause, g_source_unref);
  acceptor_watch (acceptor);
  return G_SOURCE_REMOVE;
}

/* No descriptor left: refuse one waiting connection with the spare
 * descriptor, and stop watching the socket for a while */
static void
acceptor_exhausted (RndzAcceptor *acceptor)
{
  if (acceptor->spare_fd >= 0)
    {
      int fd;

      close (acceptor->spare_fd);
      fd = accept (g_socket_get_fd (acceptor->listening), NULL, NULL);
      if (fd >= 0)
        {
          close (fd);
          acceptor->dropped++;
        }
      acceptor->spare_fd = spare_open ();
    }

  g_debug ("%s: no descriptor left, not accepting for %u ms", acceptor->name,
           acceptor->pause_ms);
  rndz_source_clear (&acceptor->source);
  acceptor->pause = rndz_timeout_add (acceptor->context, acceptor->pause_ms, pause_cb, acceptor);
  acceptor->pause_ms = MIN (acceptor->pause_ms * 2, RNDZ_ACCEPT_PAUSE_MAX_MS);
}

static gboolean
accept_cb (GSocket      *socket,
           GIOCondition  condition,
           gpointer      user_data)
{
  RndzAcceptor *acceptor = acceptor_ref (user_data);

  for (guint i = 0; i < acceptor->batch && !acceptor->freed; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GSocket) client = g_socket_accept (socket, NULL, &error);

      if (client != NULL)
        {
          acceptor->pause_ms = RNDZ_ACCEPT_PAUSE_MIN_MS;
          acceptor->func (client, acceptor->user_data);
          continue;
        }

      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TOO_MANY_OPEN_FILES))
        acceptor_exhausted (acceptor);
      else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        g_debug ("%s: accept failed: %s", acceptor->name, error->message);
      break;
    }

  acceptor_unref (acceptor);
  return G_SOURCE_CONTINUE;
}

static void
acceptor_watch (RndzAcceptor *acceptor)
{
  acceptor->source = rndz_socket_source_add (acceptor->listening, acceptor->context, accept_cb,
                                             acceptor, acceptor->name);
}

/* @name: a static string, for the source and the debug log */
RndzAcceptor *
rndz_acceptor_new (GSocket        *listening,
                   GMainContext   *context,
                   guint           batch,
                   RndzAcceptFunc  func,
                   gpointer        user_data,
                   const char     *name)
{
  RndzAcceptor *acceptor = g_rc_box_new0 (RndzAcceptor);

  acceptor->listening = g_object_ref (listening);
  acceptor->context = g_main_context_ref (context);
  acceptor->batch = batch;
  acceptor->func = func;
  acceptor->user_data = user_data;
  acceptor->name = name;
  acceptor->pause_ms = RNDZ_ACCEPT_PAUSE_MIN_MS;
  acceptor->spare_fd = spare_open ();
  acceptor_watch (acceptor);
  return acceptor;
}

/* Connections refused for want of a descriptor */
guint
rndz_acceptor_get_dropped (RndzAcceptor *acceptor)
{
  return acceptor->dropped;
}

gboolean
rndz_acceptor_is_paused (RndzAcceptor *acceptor)
{
  return acceptor->pause != NULL;
}

/* Safe from within the callback */
void
rndz_acceptor_free (RndzAcceptor *acceptor)
{
  acceptor->freed = TRUE;
  rndz_source_clear (&acceptor->source);
  rndz_source_clear (&acceptor->pause);
  if (acceptor->spare_fd >= 0)
    close (acceptor->spare_fd);
  acceptor->spare_fd = -1;
  acceptor_unref (acceptor);
}

/*
 * rndz_descriptors_free:
 *
 * How many more descriptors the process may open now: its soft
 * RLIMIT_NOFILE less the descriptors it holds (counted in /proc/self/fd).
 * G_MAXUINT when there is no limit or it cannot be read.
 */
guint
rndz_descriptors_free (void)
{
  g_autoptr(GDir) dir = NULL;
  struct rlimit limit;
  guint open_now = 0;

  if (getrlimit (RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY ||
      limit.rlim_cur >= G_MAXUINT)
    return G_MAXUINT;

  /* The listing holds a descriptor of its own, counted with the rest */
  dir = g_dir_open ("/proc/self/fd", 0, NULL);
  if (dir == NULL)
    return G_MAXUINT;
  while (g_dir_read_name (dir) != NULL)
    open_now++;

  return open_now < limit.rlim_cur ? (guint) (limit.rlim_cur - open_now) : 0;
}
