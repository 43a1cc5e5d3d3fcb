/* rndz-acceptor-private.h: accepting TCP connections without spinning
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * RndzAcceptor:
 *
 * Accepts the connections of a listening socket, a batch per dispatch,
 * in a given GMainContext. When the process has no descriptor left,
 * accept() fails with EMFILE while the listening socket stays readable:
 * a loop that only stops there would run the context at 100 % CPU. The
 * acceptor gives up a spare descriptor to accept and close one waiting
 * connection (its peer learns at once), and stops watching the socket
 * for a while, with gaps growing to a second, until accept() works
 * again. Other sources of the context (UDP, established connections)
 * are served meanwhile.
 */
typedef struct _RndzAcceptor RndzAcceptor;

/* @client: a new connection, for the callback to keep (a reference) */
typedef void (*RndzAcceptFunc) (GSocket  *client,
                                gpointer  user_data);

/* Pauses start at this and double up to the maximum */
#define RNDZ_ACCEPT_PAUSE_MIN_MS 50
#define RNDZ_ACCEPT_PAUSE_MAX_MS 1000

RndzAcceptor *rndz_acceptor_new         (GSocket        *listening,
                                         GMainContext   *context,
                                         guint           batch,
                                         RndzAcceptFunc  func,
                                         gpointer        user_data,
                                         const char     *name);
guint         rndz_acceptor_get_dropped (RndzAcceptor   *acceptor);
gboolean      rndz_acceptor_is_paused   (RndzAcceptor   *acceptor);
void          rndz_acceptor_free        (RndzAcceptor   *acceptor);

guint         rndz_descriptors_free     (void);

G_END_DECLS
