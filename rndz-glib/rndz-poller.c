/* rndz-poller.c: many file descriptors, one source
 *
 * SPDX-License-Identifier: MIT
 *
 * Each watch is a small record that epoll hands back with its events. A
 * watch removed while a batch of events is being dispatched is disarmed
 * (no function) and freed only after the batch, so events already
 * fetched never point at freed memory.
 */

#include "config.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rndz-poller-private.h"
#include "rndz-i18n-private.h"

/* Ready descriptors handled per dispatch; the rest wait for the next */
#define POLLER_BATCH 256

struct _RndzPoller
{
  GSource source;
  int epfd;
  gboolean dispatching;
  GPtrArray *released;   /* watches removed during a dispatch */
  guint n_watches;
};

struct _RndzPollerWatch
{
  int fd;
  guint32 events;        /* as registered with epoll; 0: not registered */
  RndzPollerFunc func;   /* NULL once removed */
  gpointer user_data;
};

static gboolean
poller_dispatch (GSource     *source,
                 GSourceFunc  callback,
                 gpointer     user_data)
{
  RndzPoller *poller = (RndzPoller *) source;
  struct epoll_event events[POLLER_BATCH];
  int n;

  n = epoll_wait (poller->epfd, events, G_N_ELEMENTS (events), 0);
  poller->dispatching = TRUE;

  /* A callback may free the poller: its source then is destroyed, and
   * stays allocated until this returns */
  for (int i = 0; i < n && !g_source_is_destroyed (source); i++)
    {
      RndzPollerWatch *watch = events[i].data.ptr;

      if (watch->func != NULL)
        watch->func (events[i].events, watch->user_data);
    }

  poller->dispatching = FALSE;
  g_ptr_array_set_size (poller->released, 0);
  return G_SOURCE_CONTINUE;
}

static void
poller_finalize (GSource *source)
{
  RndzPoller *poller = (RndzPoller *) source;

  if (poller->epfd >= 0)
    close (poller->epfd);
  g_clear_pointer (&poller->released, g_ptr_array_unref);
}

static GSourceFuncs poller_funcs = {
  .dispatch = poller_dispatch,
  .finalize = poller_finalize,
};

static void
set_error_from_errno (GError    **error,
                      int         errsv,
                      const char *what)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv), "%s: %s", what,
               g_strerror (errsv));
}

/*
 * rndz_poller_new:
 * @context: where the poller's source is attached and its callbacks run
 *
 * Returns: the poller, or %NULL if the kernel has no epoll descriptor to
 *   give (out of file descriptors, say)
 */
RndzPoller *
rndz_poller_new (GMainContext  *context,
                 GError       **error)
{
  int epfd;
  RndzPoller *poller;

  epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (epfd < 0)
    {
      set_error_from_errno (error, errno, _("Cannot create an epoll descriptor"));
      return NULL;
    }

  poller = (RndzPoller *) g_source_new (&poller_funcs, sizeof (RndzPoller));
  poller->epfd = epfd;
  poller->released = g_ptr_array_new_with_free_func (g_free);
  g_source_add_unix_fd ((GSource *) poller, poller->epfd, G_IO_IN);
  g_source_set_static_name ((GSource *) poller, "[rndz] poller");
  g_source_attach ((GSource *) poller, context);
  return poller;
}

void
rndz_poller_free (RndzPoller *poller)
{
  /* A watch left would point at the poller when removed */
  g_warn_if_fail (poller->n_watches == 0);
  g_source_destroy ((GSource *) poller);
  g_source_unref ((GSource *) poller);
}

GMainContext *
rndz_poller_get_context (RndzPoller *poller)
{
  return g_source_get_context ((GSource *) poller);
}

/*
 * rndz_poller_add:
 * @fd: the descriptor, which stays its caller's: remove the watch before
 *   closing it
 * @events: epoll events to watch for (EPOLLIN, EPOLLOUT, EPOLLRDHUP), or
 *   0 to watch nothing yet
 *
 * Returns: the watch, or %NULL if epoll refused @fd
 */
RndzPollerWatch *
rndz_poller_add (RndzPoller      *poller,
                 int              fd,
                 guint32          events,
                 RndzPollerFunc   func,
                 gpointer         user_data,
                 GError         **error)
{
  RndzPollerWatch *watch = g_new0 (RndzPollerWatch, 1);

  watch->fd = fd;
  watch->func = func;
  watch->user_data = user_data;
  if (!rndz_poller_set_events (poller, watch, events, error))
    {
      g_free (watch);
      return NULL;
    }

  poller->n_watches++;
  return watch;
}

/*
 * rndz_poller_set_events:
 * @events: what to watch for from now on; 0 takes the descriptor out of
 *   the epoll set, since epoll reports a hang-up even when nothing is
 *   asked for
 *
 * Returns: %FALSE if epoll refused (out of kernel memory, say); the watch
 *   keeps the events it had
 */
gboolean
rndz_poller_set_events (RndzPoller       *poller,
                        RndzPollerWatch  *watch,
                        guint32           events,
                        GError          **error)
{
  struct epoll_event event = { .events = events, .data.ptr = watch };
  int op;

  if (events == watch->events)
    return TRUE;

  if (watch->events == 0)
    op = EPOLL_CTL_ADD;
  else if (events == 0)
    op = EPOLL_CTL_DEL;
  else
    op = EPOLL_CTL_MOD;

  if (epoll_ctl (poller->epfd, op, watch->fd, &event) < 0)
    {
      set_error_from_errno (error, errno, _("Cannot watch a socket"));
      return FALSE;
    }

  watch->events = events;
  return TRUE;
}

guint32
rndz_poller_get_events (RndzPollerWatch *watch)
{
  return watch->events;
}

/* Frees @watch, at the end of the dispatch if one is under way */
void
rndz_poller_remove (RndzPoller      *poller,
                    RndzPollerWatch *watch)
{
  if (watch->events != 0)
    epoll_ctl (poller->epfd, EPOLL_CTL_DEL, watch->fd, NULL);
  watch->events = 0;
  watch->func = NULL;
  poller->n_watches--;

  if (poller->dispatching)
    g_ptr_array_add (poller->released, watch);
  else
    g_free (watch);
}
