/* rndz-peer-context-private.h: what every operation of a client shares
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-message-private.h"

G_BEGIN_DECLS

/* Retransmission of requests: the first after this, doubling up to the
 * maximum, until the operation's timeout. */
#define RNDZ_RETRY_INITIAL_MS 200
#define RNDZ_RETRY_MAX_MS 1000

/*
 * RndzPeerContext:
 * @context: the #GMainContext every source and callback of the client's
 *   operations runs in: the thread-default one when the client was made
 * @id: our id
 * @servers: the servers, as HOST:PORT strings
 * @local_address: (nullable): the address to bind, if set
 * @keepalive_ms: the interval between pings of a registered listener
 * @timeout_ms: how long a listen or a connect may take
 * @key: (nullable): the key that signs our messages
 * @require_auth: a listener turns away requesters the server did not
 *   authenticate
 * @relay: fall back to the server's relay when no direct path works
 * @direct_timeout_ms: how long direct paths are tried before the relay
 * @fingerprint: (nullable): our identity's fingerprint, when we have one:
 *   a listener then takes only secure requesters, and tells them this
 * @allowed_fingerprints: (nullable): a listener's pins: when set, only
 *   requesters with one of these fingerprints come in
 * @port_mapping: a listener asks its router for a port mapping
 *
 * What a peer is, for the listener and the connect operations: its id,
 * its settings and the services that depend on them (binding sockets,
 * signing, local addresses, resolving the servers). RndzClient owns one
 * and writes its fields, from its property setters only; the operations
 * hold a reference and read them when they need them, so a changed
 * setting applies to the next message. Nothing here calls back into the
 * client.
 *
 * The thread and context model, for the client and everything it runs:
 * every source, timer and callback of the client's operations, its own
 * and those of the GIO calls it makes, runs in @context, in whichever
 * thread runs it. A public call starts its work through
 * rndz_peer_context_invoke(): at once when the calling thread can own
 * @context, else from an idle source in @context. Results go back to the
 * caller's thread-default context, as GTask does; signals and property
 * notifications come from @context.
 */
typedef struct
{
  GMainContext *context;
  char *id;
  GStrv servers;
  GInetSocketAddress *local_address;
  guint keepalive_ms;
  guint timeout_ms;
  GBytes *key;
  gboolean require_auth;
  gboolean relay;
  guint direct_timeout_ms;
  char *fingerprint;
  GStrv allowed_fingerprints;
  gboolean port_mapping;
} RndzPeerContext;

RndzPeerContext *rndz_peer_context_new            (GMainContext        *context);
RndzPeerContext *rndz_peer_context_ref            (RndzPeerContext     *self);
void             rndz_peer_context_unref          (RndzPeerContext     *self);

typedef void (*RndzInvokeFunc) (GTask    *task,
                                gpointer  user_data);

void             rndz_peer_context_invoke         (RndzPeerContext     *self,
                                                   RndzInvokeFunc       func,
                                                   GTask               *task,
                                                   gpointer             user_data);
GTask           *rndz_task_new_in                 (GMainContext        *context,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);

guint32          rndz_new_tid                     (void);
void             rndz_peer_context_sign           (RndzPeerContext     *self,
                                                   const RndzAddr      *server,
                                                   RndzMessage         *msg);
guint            rndz_peer_context_get_server_silence_ms (RndzPeerContext *self);
GSocketFamily    rndz_peer_context_pick_family    (RndzPeerContext     *self,
                                                   GArray              *servers);
GSocket         *rndz_peer_context_bind           (RndzPeerContext     *self,
                                                   GSocketFamily        family,
                                                   GSocketType          type,
                                                   guint16              port,
                                                   GError             **error);
GSocket         *rndz_peer_context_bind_own_port  (RndzPeerContext     *self,
                                                   GSocketFamily        family,
                                                   GSocketType          type,
                                                   GError             **error);
guint            rndz_peer_context_get_candidates (RndzPeerContext     *self,
                                                   GSocketFamily        family,
                                                   guint16              port,
                                                   RndzAddr             cands[RNDZ_MAX_CANDIDATES]);

/* Server names resolved to an array of RndzAddr, in the order given.
 * Names that do not resolve are left out; it fails only if none does.
 * The callback runs in @self's context. */
void             rndz_resolve_servers_async       (RndzPeerContext     *self,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
GArray          *rndz_resolve_servers_finish      (GAsyncResult        *result,
                                                   GError             **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzPeerContext, rndz_peer_context_unref)

G_END_DECLS
