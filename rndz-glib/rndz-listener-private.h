/* rndz-listener-private.h: the listening side of a client
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-client.h"
#include "rndz-peer-context-private.h"

G_BEGIN_DECLS

/*
 * RndzListener:
 *
 * Registers a peer with its servers over one transport, keeps the
 * registration alive, and lets in the peers that ask for it. It knows
 * nothing of RndzClient: it tells what happens through its signals, which
 * the client re-emits, and every source and callback of it runs in the
 * peer context's GMainContext.
 *
 * Signals (all internal):
 * - "peer-request" (const char *peer_id, GSocketAddress *address,
 *   const char *fingerprint) → gboolean: may the requester come in?
 *   @fingerprint is NULL for a plain request. Without a handler, it may.
 * - "peer-socket" (const char *peer_id, GSocket *socket): a UDP peer that
 *   came on a socket of its own (relayed, or through a hard NAT).
 * - "state-changed": rndz_listener_get_state() or
 *   rndz_listener_get_last_pong() changed.
 *
 * A handler may stop the listener or drop the last reference to it.
 */
#define RNDZ_TYPE_LISTENER (rndz_listener_get_type ())
G_DECLARE_FINAL_TYPE (RndzListener, rndz_listener, RNDZ, LISTENER, GObject)

RndzListener   *rndz_listener_new               (RndzPeerContext     *peer,
                                                 RndzTransport        transport);
void            rndz_listener_start             (RndzListener        *listener,
                                                 GTask               *task);
void            rndz_listener_accept            (RndzListener        *listener,
                                                 GTask               *task);
void            rndz_listener_stop              (RndzListener        *listener);
GSocket        *rndz_listener_get_socket        (RndzListener        *listener);
guint16         rndz_listener_get_port          (RndzListener        *listener);
RndzTransport   rndz_listener_get_transport     (RndzListener        *listener);
gboolean        rndz_listener_is_active         (RndzListener        *listener);
RndzClientState rndz_listener_get_state         (RndzListener        *listener);
gint64          rndz_listener_get_last_pong     (RndzListener        *listener);

const char     *rndz_listener_get_peer_fingerprint (RndzListener     *listener,
                                                    const char       *peer_id);

/* The result of an accept: a connection, the id of the peer, and its
 * fingerprint if it asked for a secure connection */
typedef struct
{
  GSocketConnection *connection;
  char *peer_id;
  char *fingerprint;
} RndzIncoming;

void            rndz_incoming_free              (RndzIncoming        *incoming);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzIncoming, rndz_incoming_free)

G_END_DECLS
