/* rndz-relay-private.h: the server's relay port
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-types.h"
#include "rndz-server-types-private.h"
#include "rndz-message-private.h"

G_BEGIN_DECLS

/* Sessions not joined by both peers within this time are forgotten */
#define RNDZ_RELAY_JOIN_TIMEOUT_MS 10000

/*
 * RndzRelay:
 *
 * The relay port of a server: a UDP socket and a listening TCP socket on
 * one port, and the sessions that the server opened on them. The server
 * opens a session when a peer asks for one (`relay`), gives its token to
 * both peers (`session`); the peers join it with `hello` and the relay
 * then forwards their traffic, untouched, until one of them leaves or it
 * is idle for too long.
 */
typedef struct _RndzRelay RndzRelay;
typedef struct _RndzRelaySession RndzRelaySession;

RndzRelay        *rndz_relay_new               (GMainContext       *context,
                                                GSocket            *udp_socket,
                                                GSocket            *tcp_socket,
                                                RndzServerStats    *stats);
void              rndz_relay_free              (RndzRelay          *relay);
void              rndz_relay_configure         (RndzRelay          *relay,
                                                guint               max_sessions,
                                                guint               rate,
                                                guint               idle_timeout_ms);
void              rndz_relay_set_caps          (RndzRelay          *relay,
                                                guint               per_address,
                                                guint               per_network,
                                                guint               max_lifetime_ms);
void              rndz_relay_set_join_timeout  (RndzRelay          *relay,
                                                guint               ms);
guint16           rndz_relay_get_port          (RndzRelay          *relay);
guint             rndz_relay_get_session_count (RndzRelay          *relay);

RndzRelaySession *rndz_relay_find_request      (RndzRelay          *relay,
                                                RndzTransport       transport,
                                                const RndzAddr     *requester,
                                                guint32             tid);
RndzRelaySession *rndz_relay_open              (RndzRelay          *relay,
                                                RndzTransport       transport,
                                                const RndzAddr     *requester,
                                                guint32             tid,
                                                const char         *requester_id,
                                                const char         *target_id,
                                                const RndzAddr     *target_addr,
                                                guint32             target_tid);

const char       *rndz_relay_session_get_token      (RndzRelaySession *session);
const char       *rndz_relay_session_get_target     (RndzRelaySession *session);
guint32           rndz_relay_session_get_target_tid (RndzRelaySession *session);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzRelay, rndz_relay_free)

G_END_DECLS
