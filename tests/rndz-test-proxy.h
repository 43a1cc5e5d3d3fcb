/* rndz-test-proxy.h: a proxy between peers and a server, or its relay
 *
 * SPDX-License-Identifier: MIT
 *
 * The peers are given the proxy's address instead of the server's (or
 * the relay's). It listens on 127.0.0.1, UDP or TCP, and forwards both
 * ways through a socket of its own per peer (per datagram source over
 * UDP, per connection over TCP), like a NAT.
 *
 * In messages mode it stands for a rendezvous server: it decodes what
 * the server sends to the peers (datagrams, or TCP frames), gives back
 * to every "addr" and "seen" the peer's own address (the server only
 * ever sees the proxy's sockets), hands each message to a rewrite function that may
 * change it (a fingerprint), hold it back a while or drop it, and sends
 * it on with at least its former size. In raw mode it stands for a relay
 * and only forwards and remembers every byte it carried.
 *
 * Its sources are attached to the thread-default main context.
 */

#pragma once

#include <rndz-glib/rndz.h>

#include "rndz-message-private.h"

G_BEGIN_DECLS

typedef struct _RndzTestProxy RndzTestProxy;

/* Called with each message from the server to a peer, which it may
 * change. Returns how long to hold the message back, in milliseconds
 * (0: not at all), or -1 to drop it. */
typedef gint (*RndzTestProxyRewrite) (RndzMessage *msg,
                                      gpointer     user_data);

RndzTestProxy *rndz_test_proxy_new            (RndzTransport         transport,
                                               guint16               upstream_port,
                                               gboolean              messages);
void           rndz_test_proxy_free           (RndzTestProxy        *proxy);
guint16        rndz_test_proxy_get_port       (RndzTestProxy        *proxy);
char          *rndz_test_proxy_get_address    (RndzTestProxy        *proxy);
void           rndz_test_proxy_set_rewrite    (RndzTestProxy        *proxy,
                                               RndzTestProxyRewrite  rewrite,
                                               gpointer              user_data);
void           rndz_test_proxy_set_relay_port (RndzTestProxy        *proxy,
                                               guint16               port);
gsize          rndz_test_proxy_get_carried    (RndzTestProxy        *proxy);
gboolean       rndz_test_proxy_has_carried    (RndzTestProxy        *proxy,
                                               const char           *text);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzTestProxy, rndz_test_proxy_free)

G_END_DECLS
