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
#include "rndz-identity.h"

typedef struct _RndzClientSecure RndzClientSecure;

G_BEGIN_DECLS

struct _RndzClient
{
  GObject parent_instance;

  RndzPeerContext *peer;         /* our id and settings, for the operations */

  RndzClientState state;
  gint64 last_pong;

  RndzListener *listeners[2];    /* by RndzTransport, while listening */
  RndzIdentity *identity;        /* for secure connections */
  RndzClientSecure *secure;      /* their handshakes and accept queues */
};

/* Synchronous calls (rndz-client-calls.c): start the asynchronous twin
 * between begin and end, with sync_call_cb and the call */
typedef struct
{
  GMainContext *context;
  gboolean acquired;
  GAsyncResult *result;
} RndzSyncCall;

void          rndz_sync_call_begin (RndzClient     *client,
                                    RndzSyncCall   *call);
void          rndz_sync_call_cb    (GObject        *source,
                                    GAsyncResult   *result,
                                    gpointer        user_data);
GAsyncResult *rndz_sync_call_end   (RndzSyncCall   *call);

/* rndz-client-secure.c */
gboolean      rndz_client_ensure_identity    (RndzClient       *client,
                                              GError          **error);
void          rndz_client_secure_free        (RndzClientSecure *secure);
void          rndz_client_secure_stop        (RndzClient       *client);
gboolean      rndz_client_secure_take_socket (RndzClient       *client,
                                              RndzListener     *listener,
                                              const char       *peer_id,
                                              GSocket          *socket);

G_END_DECLS
