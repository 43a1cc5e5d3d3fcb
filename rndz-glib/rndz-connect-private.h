/* rndz-connect-private.h: reaching a peer by id
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-client.h"
#include "rndz-peer-context-private.h"

G_BEGIN_DECLS

/* Tests turn direct paths off, to reach peers through the relay */
extern gboolean rndz_connect_try_direct;

/* Reaches @peer_id for @task: returns a GSocket (UDP) or a
 * GSocketConnection (TCP) through it. Runs in @peer's context. */
void            rndz_connect_start              (RndzPeerContext     *peer,
                                                 RndzTransport        transport,
                                                 const char          *peer_id,
                                                 GTask               *task);

G_END_DECLS
