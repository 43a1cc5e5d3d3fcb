/* rndz-client-internal.h: what the two halves of the client share
 *
 * SPDX-License-Identifier: MIT
 *
 * rndz-client.c is the GObject shell (type, properties, signals,
 * accessors); rndz-client-calls.c does the operations (listen, accept,
 * reach a peer, stop) and follows the listeners. The shell may call the
 * operations' public functions, never the other way: the operations
 * emit the client's signals and notify its properties by name.
 */

#pragma once

#include "rndz-client.h"
#include "rndz-listener-private.h"
#include "rndz-peer-context-private.h"

G_BEGIN_DECLS

struct _RndzClient
{
  GObject parent_instance;

  RndzPeerContext *peer;         /* our id and settings, for the operations */

  RndzClientState state;
  gint64 last_pong;

  RndzListener *listeners[2];    /* by RndzTransport, while listening */
};

G_END_DECLS
