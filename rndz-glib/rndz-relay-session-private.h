/* rndz-relay-session-private.h: what only the relay's files share
 *
 * SPDX-License-Identifier: MIT
 *
 * The relay is split by concern:
 *
 *   rndz-relay-session.c  sessions, tokens, rate buckets, the timer
 *   rndz-relay-udp.c      joining and forwarding over UDP
 *   rndz-relay-tcp.c      accepting, joining and splicing over TCP
 *   rndz-relay.c          the shell: creates and frees the relay
 *
 * The transports call the session core; the core calls neither: what it
 * needs of the TCP part (closing or resuming a connection, expiring the
 * connections that have not said hello) goes through the hooks that part
 * registers. rndz-relay.c calls all three, and nothing calls it but the
 * server. The rest of the library includes rndz-relay-private.h.
 */

#pragma once

#include <gio/gio.h>

#include "rndz-relay-private.h"
#include "rndz-acceptor-private.h"
#include "rndz-poller-private.h"

G_BEGIN_DECLS

/* Bytes buffered per TCP direction */
#define RNDZ_RELAY_SPLICE_BUFFER (64 * 1024)

/* A TCP connection to the relay port (rndz-relay-tcp.c) */
typedef struct _RndzRelayConn RndzRelayConn;

/* Bytes a side may send: refilled at the relay's rate, up to a burst */
typedef struct
{
  double tokens;
  gint64 last;
} RndzRelayBucket;

typedef struct
{
  gboolean bound;
  RndzAddr addr;             /* UDP: the endpoint */
  RndzRelayConn *conn;       /* TCP: the connection, once it said hello */
  guint32 hello_tid;         /* the last hello's, echoed by ready */
  RndzRelayBucket bucket;    /* what this side sends */
  gboolean paused;           /* TCP, over the rate: not read until resume_at */
  gint64 resume_at;
} RndzRelaySide;

struct _RndzRelaySession
{
  RndzRelay *relay;
  RndzTransport transport;
  char token[RNDZ_TOKEN_LEN + 1];
  char ids[2][RNDZ_ID_MAX_LEN + 1];   /* requester, target */
  guint32 target_tid;
  RndzAddr requester_addr;
  guint32 requester_tid;
  /* Where each side may join from, port ignored: the requester's request
   * and the target's registration came from there. A peer joins from a
   * new socket, whose port differs (and a NAT maps it to another one),
   * but a NAT keeps its host's public address (RFC 4787, "paired"). */
  RndzAddr hosts[2];
  char *pair_key;            /* until started: in RndzRelay.pending_pairs */
  RndzRelaySide sides[2];
  gboolean ready;
  gint64 created;
  gint64 last_activity;
  GList link;                /* in RndzRelay.sessions */
};

/* What the session core asks of the TCP part */
typedef struct
{
  /* Closes @conn, whose session is being closed */
  void   (*close_conn)  (RndzRelayConn *conn);
  /* The pause of @conn's side is over: read from it again */
  void   (*resume_conn) (RndzRelayConn *conn);
  /* Expires what the part keeps outside sessions; returns its next
   * deadline, or G_MAXINT64 */
  gint64 (*expire)      (RndzRelay     *relay,
                         gint64         now);
} RndzRelayTcpHooks;

struct _RndzRelay
{
  GMainContext *context;
  RndzServerStats *stats;
  GSource *timer;

  /* The session core's */
  GQueue sessions;           /* oldest first */
  GHashTable *by_token;      /* token → session */
  GHashTable *by_request;    /* request key → session */
  GHashTable *by_endpoint;   /* UDP: RndzAddr → session */
  guint max_sessions;
  guint rate;
  guint idle_timeout_ms;
  guint join_timeout_ms;
  /* What one requester may hold: sessions per address (IPv6: /64) and
   * per network (IPv4 /16, IPv6 /48), and how long any session lasts */
  GHashTable *per_address;   /* RndzAddr key → sessions */
  GHashTable *per_network;   /* RndzAddr key → sessions */
  GHashTable *pending_pairs; /* pair key → its session, not started yet */
  guint max_per_address;
  guint max_per_network;
  guint max_lifetime_ms;

  /* The UDP part's */
  GSocket *udp_socket;
  GSocketFamily family;
  GSource *udp_source;
  char datagram[G_MAXUINT16 + 1];     /* every datagram passes through here */

  /* The TCP part's */
  const RndzRelayTcpHooks *tcp_hooks;
  GSocket *tcp_socket;
  RndzAcceptor *acceptor;       /* the TCP socket's */
  RndzPoller *poller;        /* from the first TCP connection on */
  gboolean dispatching;
  GPtrArray *dead;           /* connections closed during a poller callback */
  GQueue hellos;             /* connections waiting for their hello, oldest first */
};

/* rndz-relay-session.c */
void              rndz_relay_core_init        (RndzRelay               *relay);
void              rndz_relay_core_close_all   (RndzRelay               *relay);
void              rndz_relay_core_clear       (RndzRelay               *relay);
void              rndz_relay_schedule         (RndzRelay               *relay,
                                               gint64                   deadline);
double            rndz_relay_burst            (RndzRelay               *relay);
double            rndz_relay_bucket_refill    (RndzRelay               *relay,
                                               RndzRelayBucket         *bucket,
                                               gint64                   now);
void              rndz_relay_bucket_take      (RndzRelay               *relay,
                                               RndzRelayBucket         *bucket,
                                               gsize                    n);
RndzRelaySession *rndz_relay_hello_session    (RndzRelay               *relay,
                                               const RndzMessage       *msg,
                                               RndzTransport            transport,
                                               const RndzAddr          *from,
                                               int                     *idx);
void              rndz_relay_session_start    (RndzRelaySession        *session);
void              rndz_relay_session_fail     (RndzRelaySession        *session,
                                               const char              *why);

/* rndz-relay-udp.c */
void              rndz_relay_udp_start        (RndzRelay               *relay);
void              rndz_relay_udp_stop         (RndzRelay               *relay);

/* rndz-relay-tcp.c */
void              rndz_relay_tcp_start        (RndzRelay               *relay);
void              rndz_relay_tcp_stop         (RndzRelay               *relay);

G_END_DECLS
