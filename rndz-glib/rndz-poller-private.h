/* rndz-poller-private.h: many file descriptors, one source
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * RndzPoller:
 *
 * One GSource that watches many file descriptors through one epoll
 * descriptor, with a callback per descriptor. GLib's main loop polls
 * every descriptor of every source on each iteration; a server with ten
 * thousand connections would pay ten thousand pollfds per wake-up. A
 * poller's source polls a single descriptor and asks the kernel which
 * of its watches are ready.
 *
 * Threads and contexts: the source is attached to the #GMainContext
 * given to rndz_poller_new(), and every callback runs there, from the
 * source's dispatch. The poller and its watches are used from the thread
 * that runs that context, and from no other.
 *
 * Watches are level-triggered: a callback that leaves data unread is
 * called again on the next iteration. One dispatch handles at most a
 * fixed batch of ready descriptors, so that other sources get their turn.
 *
 * A callback may add and remove watches, its own included. A watch
 * removed gets no callback afterwards, not even for events already
 * fetched in the batch being dispatched: its owner may free the
 * user_data right after rndz_poller_remove(). Every watch is removed
 * before the poller is freed.
 */
typedef struct _RndzPoller RndzPoller;
typedef struct _RndzPollerWatch RndzPollerWatch;

/* @events: the epoll events that are ready, EPOLLERR and EPOLLHUP
 * included even when not asked for */
typedef void (*RndzPollerFunc) (guint32  events,
                                gpointer user_data);

RndzPoller      *rndz_poller_new         (GMainContext     *context,
                                          GError          **error);
void             rndz_poller_free        (RndzPoller       *poller);
GMainContext    *rndz_poller_get_context (RndzPoller       *poller);

RndzPollerWatch *rndz_poller_add         (RndzPoller       *poller,
                                          int               fd,
                                          guint32           events,
                                          RndzPollerFunc    func,
                                          gpointer          user_data,
                                          GError          **error);
gboolean         rndz_poller_set_events  (RndzPoller       *poller,
                                          RndzPollerWatch  *watch,
                                          guint32           events,
                                          GError          **error);
guint32          rndz_poller_get_events  (RndzPollerWatch  *watch);
void             rndz_poller_remove      (RndzPoller       *poller,
                                          RndzPollerWatch  *watch);

G_END_DECLS
