/* rndz-request-private.h: a connector's request for one peer, to every server
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-peer-context-private.h"
#include "rndz-types.h"

G_BEGIN_DECLS

/*
 * RndzRequest:
 *
 * Asks every server for one peer (isync) from our port, and collects
 * their answers: the first redirect names the peer's addresses; errors
 * count only when every server has answered, and then the most telling
 * one wins. Over UDP the request goes again, with growing gaps, until it
 * is answered; a server that says it limits requests is asked again when
 * it says the request would pass, if that is still in time. Later, the
 * server that redirected is asked to relay.
 *
 * It tells the connect operation what happens through its callbacks, in
 * the peer context's GMainContext. Any callback may free the request.
 */
typedef struct _RndzRequest RndzRequest;

typedef struct
{
  /* The first redirect from any server */
  void (*redirect)    (RndzRequest       *request,
                       const RndzMessage *redirect,
                       gpointer           user_data);
  /* The redirecting server's answer to the relay request: a session,
   * or an error */
  void (*relay_reply) (RndzRequest       *request,
                       const RndzMessage *msg,
                       gpointer           user_data);
  /* No server can help (@error: why, transfer full), or over TCP the
   * redirecting server's connection broke while we asked it to relay */
  void (*failed)      (RndzRequest       *request,
                       GError            *error,
                       gpointer           user_data);
} RndzRequestCallbacks;

RndzRequest    *rndz_request_new        (RndzPeerContext            *peer,
                                         RndzTransport               transport,
                                         GSocketFamily               family,
                                         GArray                     *servers,
                                         const char                 *peer_id,
                                         guint32                     tid,
                                         gint64                      deadline,
                                         const RndzRequestCallbacks *callbacks,
                                         gpointer                    user_data);
guint16         rndz_request_open       (RndzRequest                *request,
                                         guint16                     port);
void            rndz_request_set_fingerprint (RndzRequest           *request,
                                              const char            *fp);
void            rndz_request_send       (RndzRequest                *request,
                                         const RndzAddr             *cands,
                                         guint                       n_cands);
void            rndz_request_found      (RndzRequest                *request);
const RndzAddr *rndz_request_get_server (RndzRequest                *request);
void            rndz_request_relay      (RndzRequest                *request,
                                         guint32                     tid);
void            rndz_request_free       (RndzRequest                *request);

G_END_DECLS
