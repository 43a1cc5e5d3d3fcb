/* rndz-listener-internal.h: what the two halves of the listener share
 *
 * SPDX-License-Identifier: MIT
 *
 * rndz-listener.c registers with the servers and keeps the registration
 * (the object, its links, its state); rndz-listener-requests.c does what
 * the listener does for each requester (punches, checks, the hard-NAT
 * phase, the relay, the accept queue). The first calls the second, never
 * the other way: the second tells through the object's signals.
 */

#pragma once

#include "rndz-listener-private.h"
#include "rndz-acceptor-private.h"
#include "rndz-hard-nat-private.h"

G_BEGIN_DECLS

/* Requests answered recently, so that a retransmitted fsync punches once */
#define RECENT_REQUESTS 32
/* Connections that came in and wait for accept; more are closed */
#define MAX_INCOMING 64
#define PUNCH_RETRY_INITIAL_MS 50
/* How long a connection may take to say it is the one */
#define USE_TIMEOUT_MS 5000
/* Relay sessions joined recently, so that a repeated session joins once */
#define RECENT_SESSIONS 8
/* Hard NATs: a probe's check socket waits this long for an answer (an
 * answer that comes later reaches the application's socket) */
#define PROBE_LIFETIME_MS 500
/* At most so many check sockets at once, and requesters sprayed for */
#define MAX_CHECKS 512
#define MAX_SPRAYS 2

struct _RndzListener
{
  GObject parent_instance;

  RndzPeerContext *peer;        /* who we are */
  GMainContext *context;        /* peer->context */
  RndzTransport transport;
  gboolean stopped;

  GCancellable *cancellable;
  GTask *start_task;
  GSource *start_timeout;
  GSource *start_cancel;

  GSocketFamily family;
  GSocket *socket;              /* UDP: the application's; TCP: listening */
  guint16 port;
  RndzAcceptor *acceptor;       /* TCP: the listening socket's */

  GPtrArray *links;
  GSource *timer;
  RndzClientState state;
  gint64 last_pong;             /* real time, 0 if never */

  struct
  {
    RndzAddr addr;
    guint32 tid;
    gboolean refused;
    char peer_id[RNDZ_ID_MAX_LEN + 1];
    char fp[RNDZ_FP_LEN + 1];   /* the requester's, if it asked for a secure connection */
  } recent[RECENT_REQUESTS];
  guint recent_next;

  /* UDP: the addresses of requesters whose path was handed over lately
   * (listener_handed_recently() in rndz-listener-requests.c) */
  struct
  {
    RndzAddr addr;
    gint64 time;                /* monotonic, 0 if unused */
  } handed[RECENT_REQUESTS];
  guint handed_next;

  char sessions[RECENT_SESSIONS][RNDZ_TOKEN_LEN + 1];
  guint sessions_next;

  GHashTable *punches;          /* RndzAddr → Punch */
  GHashTable *checks;           /* RndzAddr → Check */
  GHashTable *hards;            /* RndzAddr (the requester's) → Hard */
  RndzAddr cands[RNDZ_MAX_CANDIDATES];  /* ours, as of cands_time */
  guint n_cands;
  gint64 cands_time;            /* monotonic, 0 if never */
  RndzProbeBudget probes;       /* for all requesters */
  GQueue incoming;              /* RndzIncoming */
  GQueue waiters;               /* Waiter */
};

#define listener_ref g_object_ref

/* rndz-listener-requests.c */
void      rndz_listener_requests_init     (RndzListener      *listener);
void      rndz_listener_requests_clear    (RndzListener      *listener);
void      rndz_listener_requests_finalize (RndzListener      *listener);
gboolean  rndz_listener_take_request      (RndzListener      *listener,
                                           const RndzMessage *fsync,
                                           gboolean           port_kept);
void      rndz_listener_init_rsync        (RndzListener      *listener,
                                           const RndzMessage *fsync,
                                           RndzMessage       *rsync);
void      rndz_listener_join_relay        (RndzListener      *listener,
                                           const RndzAddr    *server,
                                           const RndzMessage *session);
void      rndz_listener_accepted          (GSocket           *peer,
                                           gpointer           user_data);

G_END_DECLS
