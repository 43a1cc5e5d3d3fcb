/* rndz-client-private.h: what the parts of RndzClient share
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-client.h"
#include "rndz-channel-private.h"
#include "rndz-message-private.h"

G_BEGIN_DECLS

/* Retransmission of requests: the first after this, doubling up to the
 * maximum, until the operation's timeout. */
#define RNDZ_RETRY_INITIAL_MS 200
#define RNDZ_RETRY_MAX_MS 1000

GMainContext   *rndz_client_get_context         (RndzClient          *client);
GSocketFamily   rndz_client_pick_family         (RndzClient          *client,
                                                 GArray              *servers);
GSocket        *rndz_client_bind                (RndzClient          *client,
                                                 GSocketFamily        family,
                                                 GSocketType          type,
                                                 guint16              port,
                                                 GError             **error);
GSocket        *rndz_client_bind_own_port       (RndzClient          *client,
                                                 GSocketFamily        family,
                                                 GSocketType          type,
                                                 GError             **error);
guint32         rndz_client_new_tid             (void);
void            rndz_client_sign                (RndzClient          *client,
                                                 RndzMessage         *msg);
void            rndz_client_update_state        (RndzClient          *client,
                                                 RndzClientState      state,
                                                 gint64               last_pong);
gboolean        rndz_client_emit_peer_request   (RndzClient          *client,
                                                 const char          *peer_id,
                                                 const RndzAddr      *addr);
void            rndz_client_emit_peer_socket    (RndzClient          *client,
                                                 const char          *peer_id,
                                                 GSocket             *socket);
guint           rndz_client_get_candidates      (RndzClient          *client,
                                                 GSocketFamily        family,
                                                 guint16              port,
                                                 RndzAddr             cands[RNDZ_MAX_CANDIDATES]);

/* Server names resolved to an array of RndzAddr, in the order given.
 * Names that do not resolve are left out; it fails only if none does. */
void            rndz_resolve_servers_async      (RndzClient          *client,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
GArray         *rndz_resolve_servers_finish     (RndzClient          *client,
                                                 GAsyncResult        *result,
                                                 GError             **error);

/* rndz-connect.c */

/* Tests turn direct paths off, to reach peers through the relay */
extern gboolean rndz_connect_try_direct;

void            rndz_connect_start              (RndzClient          *client,
                                                 RndzTransport        transport,
                                                 const char          *peer_id,
                                                 GTask               *task);

/* rndz-listener.c */
typedef struct _RndzListener RndzListener;

RndzListener   *rndz_listener_new               (RndzClient          *client,
                                                 RndzTransport        transport);
void            rndz_listener_start             (RndzListener        *listener,
                                                 GTask               *task);
void            rndz_listener_accept            (RndzListener        *listener,
                                                 GTask               *task);
GSocket        *rndz_listener_get_socket        (RndzListener        *listener);
guint16         rndz_listener_get_port          (RndzListener        *listener);
RndzTransport   rndz_listener_get_transport     (RndzListener        *listener);
gboolean        rndz_listener_is_active         (RndzListener        *listener);
void            rndz_listener_free_resources    (RndzListener        *listener);
void            rndz_listener_free              (RndzListener        *listener);

/* The result of an accept: a connection and the id of the peer */
typedef struct
{
  GSocketConnection *connection;
  char *peer_id;
} RndzIncoming;

void            rndz_incoming_free              (RndzIncoming        *incoming);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzIncoming, rndz_incoming_free)

G_END_DECLS
