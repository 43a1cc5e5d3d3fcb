/* rndz-udp-private.h: reading and sending the control datagrams of a client
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-message-private.h"

G_BEGIN_DECLS

/* Datagrams read from one socket in one dispatch, at most: a socket that
 * is flooded cannot starve the rest of the context */
#define RNDZ_UDP_READ_BUDGET 64

/*
 * RndzUdpReadFunc:
 * @socket: the socket the message came on
 * @from: (nullable): the sender; %NULL when the reader did not ask for it
 * @msg: the message
 *
 * Returns: %TRUE to go on reading, %FALSE when the reader is done (or
 *   gone: it must not touch @socket's source then)
 */
typedef gboolean (*RndzUdpReadFunc) (GSocket           *socket,
                                     const RndzAddr    *from,
                                     const RndzMessage *msg,
                                     gpointer           user_data);

gboolean rndz_udp_read_messages (GSocket          *socket,
                                 gboolean          want_from,
                                 RndzUdpReadFunc   func,
                                 gpointer          user_data,
                                 GError          **error);

gboolean rndz_udp_send         (GSocket          *socket,
                                GSocketAddress   *to,
                                const char       *buf,
                                gsize             len,
                                const char       *what);

gboolean rndz_udp_error_is_icmp (const GError    *error);

/* Tests lose datagrams on purpose: when set, each control datagram a
 * client is about to send (to a peer, or to a server) goes to it first,
 * and is not sent if it returns TRUE. Never set outside tests. */
typedef gboolean (*RndzUdpDropFunc) (const char *buf,
                                     gsize       len,
                                     gboolean    to_server);
extern RndzUdpDropFunc rndz_udp_test_drop;

G_END_DECLS
