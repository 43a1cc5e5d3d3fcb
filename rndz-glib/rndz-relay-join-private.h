/* rndz-relay-join-private.h: joining a session of the server's relay
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-types.h"
#include "rndz-addr-private.h"

G_BEGIN_DECLS

/* UDP: `hello` is sent this often until the relay answers, and never
 * more often after that */
#define RNDZ_RELAY_HELLO_INTERVAL_MS 250

/*
 * rndz_relay_join_async:
 * @family: the family of the new socket; an IPv6 socket reaches an IPv4
 *   relay v4-mapped
 * @relay: the server's address with the relay port (a `session`'s port)
 * @own_id: the id to join as
 * @token: the session's token, from the `session` message
 * @timeout_ms: how long joining may take, the wait for the other peer
 *   included
 * @context: (nullable): where the operation runs; it must be the
 *   thread-default context of the caller, where @callback runs too.
 *   %NULL means the thread-default context.
 *
 * Joins a relay session from a new socket on an ephemeral port, and
 * hands that socket out once the relay says `ready`: from then on the
 * relay forwards what is sent on it to the other peer, unchanged.
 *
 * UDP: `hello` datagrams until a `wait` or `ready` answers; more of them
 * while waiting, to keep the NAT binding open and to hear `ready` should
 * one be lost. TCP: one `hello` frame, then exactly one frame back.
 */
void     rndz_relay_join_async  (RndzTransport         transport,
                                 GSocketFamily         family,
                                 const RndzAddr       *relay,
                                 const char           *own_id,
                                 const char           *token,
                                 guint                 timeout_ms,
                                 GMainContext         *context,
                                 GCancellable         *cancellable,
                                 GAsyncReadyCallback   callback,
                                 gpointer              user_data);

/*
 * rndz_relay_join_finish:
 *
 * Returns: (transfer full): the socket, connected to the relay and marked
 *   %RNDZ_PATH_RELAYED: UDP non-blocking, TCP blocking (as
 *   rndz_client_connect_*() return them); %NULL with @error set:
 *   %G_IO_ERROR_TIMED_OUT, %G_IO_ERROR_CANCELLED,
 *   %RNDZ_ERROR_SERVER_UNREACHABLE when the relay port refuses, or an
 *   error about what the relay sent instead of `ready`.
 */
GSocket *rndz_relay_join_finish (GAsyncResult         *result,
                                 GError              **error);

G_END_DECLS
