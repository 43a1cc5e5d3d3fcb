/* rndz-test-channel.h: data over a secure channel, in tests
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <rndz-glib/rndz.h>

G_BEGIN_DECLS

/* @channel is a GTlsConnection (any GIOStream) or a RndzDtlsChannel */
void     rndz_test_channel_send     (GObject     *channel,
                                     const char  *text);
GBytes  *rndz_test_channel_receive  (GObject     *channel,
                                     gsize        size,
                                     guint        timeout_ms,
                                     GError     **error);
void     rndz_test_channel_expect   (GObject     *channel,
                                     const char  *text,
                                     guint        timeout_ms);
char    *rndz_test_peer_fingerprint (GObject     *channel);

G_END_DECLS
