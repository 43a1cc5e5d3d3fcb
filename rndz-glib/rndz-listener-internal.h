/* rndz-listener-internal.h: what the parts of the listener share
 *
 * SPDX-License-Identifier: MIT
 *
 * rndz-listener.c registers with the servers and keeps the registration
 * (the object, its links, its state); rndz-listener-requests.c does what
 * the listener does for each requester (punches, checks, the hard-NAT
 * phase, the relay), and rndz-listener-accept.c keeps the connections it
 * hands out (the accept queue). Each calls only the ones after it: the
 * last two tell through the object's signals. rndz-listener-mapped.c
 * reads what comes through the router's port mapping (UDP), and hands
 * checks to rndz-listener-requests.c.
 */

#pragma once

#include "rndz-listener-private.h"
#include "rndz-acceptor-private.h"
#include "rndz-hard-nat-private.h"
#include "rndz-portmap-private.h"

G_BEGIN_DECLS

/* Requests answered recently, so that a retransmitted fsync punches once */
#define RECENT_REQUESTS 32
/* Connections that came in and wait for accept; more are closed */
#define MAX_INCOMING 64
#define PUNCH_RETRY_INITIAL_MS 50
/* TCP: SYNs sent before a request's first punch (punch_send_spares()),
 * and when a punch still unanswered goes again from a new socket
 * (punch_redial_cb()) */
#define PUNCH_SPARE_SYNS 2
#define PUNCH_TCP_REDIAL_MS 500
/* How long a connection may take to say it is the one. The requester
 * sends its use frame as soon as the connection opens and takes the
 * connection at once: when the frame is lost, only TCP sends it again,
 * after an RTO that is 3 s when a SYN of the handshake was lost (RFC
 * 6298's fallback), or what the kernel remembers of the path, then
 * twice that. Closing before then drops a connection the requester
 * already uses (seen through 20 % loss: 4 in 80 trials at 5 s). */
#define USE_TIMEOUT_MS 15000
/* Relay sessions joined recently, so that a repeated session joins once */
#define RECENT_SESSIONS 8
/* Hard NATs: a probe's check socket waits this long for an answer (an
 * answer that comes later reaches the application's socket) */
#define PROBE_LIFETIME_MS 500
/* At most so many check sockets at once, and requesters sprayed for */
#define MAX_CHECKS 512
#define MAX_SPRAYS 2
/* UDP, through loss: a punch goes again with growing gaps until the
 * requester's check comes (or the direct timeout), and our rsync to the
 * server likewise (doc/protocol.md, "Retransmission") */
#define PUNCH_UDP_INITIAL_MS 100
#define PUNCH_UDP_MAX_MS 400
#define RSYNC_RETRY_INITIAL_MS 200
#define RSYNC_RETRY_MAX_MS 800
/* A check socket whose use we answered stays ours, to answer the use
 * (and the checks) again, until the requester's first datagram of its
 * own comes, or until it has sent none of them for this long: four of
 * its gaps between uses (USE_RETRY_MAX_MS in rndz-connect.c), two and a
 * half between checks (CHECK_MAX_MS). With 600 ms, three uses lost in a
 * row (one in 125 at 20 % loss) took the socket from a requester that
 * had no answer yet. No longer than two thirds of the direct timeout
 * after the first use, though: a requester that never gets an answer
 * still learns that the path is its own from our application's first
 * datagram, if ours speaks first, before its own direct timeout. When
 * the socket goes without the requester's data, HANDOVER_LAST_ANSWERS
 * more answers go first (check_send_last_answers()). */
#define HANDOVER_QUIET_MS 1000
#define HANDOVER_LAST_ANSWERS 2

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
    gboolean reached;           /* a check of the requester came */
    char peer_id[RNDZ_ID_MAX_LEN + 1];
    char fp[RNDZ_FP_LEN + 1];   /* the requester's, if it asked for a secure connection */
  } recent[RECENT_REQUESTS];
  guint recent_next;

  char sessions[RECENT_SESSIONS][RNDZ_TOKEN_LEN + 1];
  guint sessions_next;

  GHashTable *punches;          /* RndzAddr → Punch */
  GHashTable *checks;           /* RndzAddr → Check */
  GHashTable *hards;            /* RndzAddr (the requester's) → Hard */
  RndzAddr cands[RNDZ_MAX_CANDIDATES];  /* ours, as of cands_time */
  guint n_cands;
  gint64 cands_time;            /* monotonic, 0 if never */
  RndzProbeBudget probes;       /* for all requesters */

  /* Port mapping on the router (rndz-portmap.c), when the client's
   * port-mapping is on and there is a gateway: TCP maps P; UDP maps the
   * port of a socket of its own (rndz-listener-mapped.c) */
  RndzPortmap *portmap;
  RndzAddr mapped;              /* the router's address for us; family 0: none */
  GSocket *mapped_socket;       /* UDP: on M */
  guint16 mapped_port;          /* UDP: M */
  GSource *mapped_source;
  GQueue incoming;              /* RndzIncoming */
  GQueue waiters;               /* Waiter */

  /* Network changes (GNetworkMonitor): the links start again once the
   * changes have settled */
  GNetworkMonitor *monitor;
  gulong monitor_id;
  GSource *network_settle;
};

#define listener_ref g_object_ref

/* rndz-listener-requests.c */
void      rndz_listener_requests_init     (RndzListener      *listener);
void      rndz_listener_requests_clear    (RndzListener      *listener);
void      rndz_listener_requests_finalize (RndzListener      *listener);
gboolean  rndz_listener_take_request      (RndzListener      *listener,
                                           const RndzMessage *fsync,
                                           gboolean           port_kept);
void      rndz_listener_init_message      (RndzListener      *listener,
                                           RndzMessageType    type,
                                           guint32            tid,
                                           const char        *peer_id,
                                           RndzMessage       *msg);
void      rndz_listener_init_rsync        (RndzListener      *listener,
                                           const RndzMessage *fsync,
                                           RndzMessage       *rsync);
int       rndz_listener_find_request      (RndzListener      *listener,
                                           const RndzAddr    *addr,
                                           guint32            tid,
                                           gboolean           add);
void      rndz_listener_join_relay        (RndzListener      *listener,
                                           const RndzAddr    *server,
                                           const RndzMessage *session);
void      rndz_listener_accepted          (GSocket           *peer,
                                           gpointer           user_data);

/* rndz-listener-udp.c */
void      rndz_listener_udp_init          (RndzListener      *listener);
void      rndz_listener_udp_clear         (RndzListener      *listener);
void      rndz_listener_udp_finalize      (RndzListener      *listener);
void      rndz_listener_punch_udp         (RndzListener      *listener,
                                           const RndzMessage *fsync,
                                           const RndzAddr    *to,
                                           RndzPath           path);
void      rndz_listener_hard_watch        (RndzListener      *listener,
                                           const RndzMessage *fsync,
                                           gboolean           port_kept);
void      rndz_listener_hard_forget       (RndzListener      *listener,
                                           const char        *peer_id);
gboolean  rndz_listener_request_reached   (RndzListener      *listener,
                                           const RndzMessage *fsync);
void      rndz_listener_check_mapped      (RndzListener      *listener,
                                           guint16            port,
                                           const char        *peer_id,
                                           const RndzAddr    *from,
                                           const RndzMessage *check);

/* rndz-listener-mapped.c */
gboolean  rndz_listener_mapped_open       (RndzListener      *listener,
                                           guint16           *port,
                                           GError           **error);
void      rndz_listener_mapped_close      (RndzListener      *listener);

/* rndz-listener-accept.c */
void      rndz_listener_deliver           (RndzListener      *listener,
                                           const char        *peer_id,
                                           const char        *fingerprint,
                                           GSocket           *socket,
                                           RndzPath           path);
void      rndz_listener_accept_clear      (RndzListener      *listener);

G_END_DECLS
