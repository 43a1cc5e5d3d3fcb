/* rndz-connect-attempt-private.h: a non-blocking TCP connect
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-addr-private.h"
#include "rndz-peer-context-private.h"

G_BEGIN_DECLS

/*
 * RndzConnectAttempt:
 *
 * A non-blocking TCP connect of a bound socket. The callback runs once, on
 * the given context, with the error if the connect failed; never from
 * within rndz_connect_attempt_new() itself. Freeing the attempt before
 * then cancels it (the socket stays with the caller).
 */
typedef struct _RndzConnectAttempt RndzConnectAttempt;

typedef void (*RndzConnectFunc) (GSocket      *socket,
                                 const GError *error,
                                 gpointer      user_data);

RndzConnectAttempt *rndz_connect_attempt_new  (GSocket         *socket,
                                               const RndzAddr  *to,
                                               GMainContext    *context,
                                               RndzConnectFunc  func,
                                               gpointer         user_data);
void                rndz_connect_attempt_free (RndzConnectAttempt *attempt);
void                rndz_connect_attempt_limit_rto (GSocket      *socket);
void                rndz_connect_attempt_hand_over (GSocket      *socket,
                                                    GMainContext *context,
                                                    guint         after_ms);

/* How long a connection between peers keeps its RTO cap once the
 * application has it (rndz_connect_attempt_hand_over()) */
#define RNDZ_CONNECT_RTO_CAP_KEPT_MS 10000
gboolean            rndz_connect_attempt_unanswered (RndzConnectAttempt *attempt);
void                rndz_connect_attempt_spare_syns (RndzPeerContext *peer,
                                                     GSocketFamily    family,
                                                     guint16          port,
                                                     const RndzAddr  *to,
                                                     guint            n,
                                                     guint            ttl);

/* Towards a server, a SYN that met no answer goes again from a new socket
 * on the same port this often, instead of after the kernel's 1 s
 * (rndz_connect_attempt_unanswered()) */
#define RNDZ_CONNECT_REDIAL_MS 250
/* ... doubling, as long as the gap is at most this */
#define RNDZ_CONNECT_REDIAL_MAX_MS 1000

G_END_DECLS
