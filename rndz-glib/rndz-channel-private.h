/* rndz-channel-private.h: framed messages over TCP
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-message-private.h"
#include "rndz-poller-private.h"
/* Not needed here: rndz-server.c takes its sources from this header
 * until it includes rndz-source-private.h itself */
#include "rndz-source-private.h"

G_BEGIN_DECLS

/*
 * RndzChannel:
 *
 * A connected, non-blocking TCP socket that carries framed messages: a
 * bounded input buffer (one frame of the largest allowed size), a bounded
 * output queue, and one read source on a given main context. Used for the
 * server's connections and the client's connections to the server.
 */
typedef struct _RndzChannel RndzChannel;

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
                                       gpointer         user_data,
                                       GError         **error);
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
