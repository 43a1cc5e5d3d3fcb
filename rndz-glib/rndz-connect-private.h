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

/*
 * RndzConnectSecurity:
 * @pin: (nullable): the fingerprint the peer must have
 * @peer_fp: (out): the peer's fingerprint, as its redirect gave it
 *
 * A connection that is to be secured: our fingerprint
 * (@peer->fingerprint, which must be set) goes in the isync, and the
 * operation returns only once the target's has come back in the
 * redirect, equal to @pin if that is set. It fails with
 * %RNDZ_ERROR_NOT_SECURE if the target has no identity, and with
 * %RNDZ_ERROR_IDENTITY_MISMATCH if it is not the pinned one. The caller
 * keeps it alive until the task returns.
 */
typedef struct
{
  char *pin;
  char peer_fp[RNDZ_FP_LEN + 1];
} RndzConnectSecurity;

/* Reaches @peer_id for @task: returns a GSocket (UDP) or a
 * GSocketConnection (TCP) through it. Runs in @peer's context.
 * @security: (nullable): for a secure connection */
void            rndz_connect_start              (RndzPeerContext     *peer,
                                                 RndzTransport        transport,
                                                 const char          *peer_id,
                                                 RndzConnectSecurity *security,
                                                 GTask               *task);

G_END_DECLS
