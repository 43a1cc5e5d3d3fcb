/* rndz-channel-private.h: sockets, and framed messages over TCP
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-message-private.h"

G_BEGIN_DECLS

GSocket *rndz_socket_new_bound        (GSocketAddress  *local,
                                       GSocketType      type,
                                       GError         **error);
void     rndz_socket_set_nodelay      (GSocket         *socket);
GSocket *rndz_socket_new_for_family   (GSocketFamily    family,
                                       GSocketType      type,
                                       GError         **error);

GSource *rndz_timeout_add             (GMainContext    *context,
                                       guint            ms,
                                       GSourceFunc      func,
                                       gpointer         user_data);
void     rndz_source_clear            (GSource        **source);
GSource *rndz_socket_source_add       (GSocket         *socket,
                                       GMainContext    *context,
                                       GSocketSourceFunc func,
                                       gpointer         user_data,
                                       const char      *name);
typedef gboolean (*RndzControlFunc) (const RndzMessage *msg,
                                     gpointer           user_data);
void     rndz_udp_drain               (GSocket         *socket,
                                       RndzControlFunc  is_control,
                                       gpointer         user_data);
GSource *rndz_deadline_source_new     (GMainContext    *context,
                                       const char      *name,
                                       GSourceFunc      func,
                                       gpointer         user_data);
void     rndz_deadline_source_arm     (GSource         *source,
                                       gint64           deadline);

/*
 * RndzConnectAttempt:
 *
 * A non-blocking TCP connect of a bound socket. The callback runs once, on
 * the given context, with the error if the connect failed; never from
 * within rndz_connect_attempt_new() itself. Freeing the attempt before
 * then cancels it (the socket stays with the caller).
 */
typedef struct _RndzConnectAttempt RndzConnectAttempt;

typedef void (*RndzConnectFunc) (GSocket      *socket,
                                 const GError *error,
                                 gpointer      user_data);

RndzConnectAttempt *rndz_connect_attempt_new  (GSocket         *socket,
                                               const RndzAddr  *to,
                                               GMainContext    *context,
                                               RndzConnectFunc  func,
                                               gpointer         user_data);
void                rndz_connect_attempt_free (RndzConnectAttempt *attempt);

/*
 * RndzChannel:
 *
 * A connected, non-blocking TCP socket that carries framed messages: a
 * bounded input buffer (one frame of the largest allowed size), a bounded
 * output queue, and one read source on a given main context. Used for the
 * server's connections and the client's connections to the server.
 */
typedef struct _RndzChannel RndzChannel;
typedef struct _RndzPoller RndzPoller;

RndzPoller  *rndz_poller_new          (GMainContext    *context);
void         rndz_poller_free         (RndzPoller      *poller);

/* @msg is NULL when the channel failed or was closed by the other side;
 * @error says why. No more callbacks follow that one. */
typedef void (*RndzChannelFunc) (RndzChannel       *channel,
                                 const RndzMessage *msg,
                                 const GError      *error,
                                 gpointer           user_data);

RndzChannel *rndz_channel_new         (GSocket         *socket,
                                       GMainContext    *context,
                                       gsize            max_size,
                                       RndzChannelFunc  func,
                                       gpointer         user_data);
RndzChannel *rndz_channel_new_polled  (GSocket         *socket,
                                       RndzPoller      *poller,
                                       gsize            max_size,
                                       RndzChannelFunc  func,
                                       gpointer         user_data);
void         rndz_channel_set_callback (RndzChannel    *channel,
                                       RndzChannelFunc  func,
                                       gpointer         user_data);
RndzChannel *rndz_channel_ref         (RndzChannel     *channel);
void         rndz_channel_unref       (RndzChannel     *channel);
gboolean     rndz_channel_send        (RndzChannel     *channel,
                                       const RndzMessage *msg,
                                       GError         **error);
void         rndz_channel_close       (RndzChannel     *channel);
gboolean     rndz_channel_is_closed   (RndzChannel     *channel);
GSocket *    rndz_channel_get_socket  (RndzChannel     *channel);
const RndzAddr *rndz_channel_get_remote (RndzChannel   *channel);
void         rndz_channel_set_remote  (RndzChannel     *channel,
                                       const RndzAddr  *remote);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzChannel, rndz_channel_unref)

G_END_DECLS
