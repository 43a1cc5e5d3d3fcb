/* rndz-connect-op-private.h: one operation that reaches a peer
 *
 * SPDX-License-Identifier: MIT
 *
 * What rndz-connect.c (the phases, the servers, the relay, TCP) and
 * rndz-connect-udp.c (UDP paths: checks, the punch, uses, hard NATs)
 * share. The phases are described at the top of rndz-connect.c.
 */

#pragma once

#include "rndz-connect-private.h"
#include "rndz-hard-nat-private.h"
#include "rndz-request-private.h"

G_BEGIN_DECLS

/*
 * ConnectPhase:
 *
 * Where an operation is, by the steps at the top of rndz-connect.c. It
 * only moves forward, so
 * "the peer is known" is phase >= PHASE_CHECKING, and so on.
 */
typedef enum
{
  PHASE_RESOLVING,                /* 1: looking the servers up */
  PHASE_REQUESTING,               /* 2-3: asking every server for the peer */
  PHASE_CHECKING,                 /* 4-5: the peer's addresses known, checks race */
  PHASE_NOMINATED,                /* 5, UDP: a path confirmed, our use sent */
  PHASE_RELAY,                    /* 6: asking the redirecting server to relay */
  PHASE_RELAY_JOINING,            /* 6: joining the relay's session */
  PHASE_HELD,                     /* secure: a path works, the redirect has not come */
  PHASE_DONE,                     /* the task has its result */
} ConnectPhase;

typedef struct _ConnectOp ConnectOp;

/* The peer's addresses: observed, local, and seen (its punches) */
#define MAX_PATHS (2 + RNDZ_MAX_CANDIDATES + 2)
/* Checks: the first at once, then with growing gaps up to the maximum */
#define CHECK_INITIAL_MS 50
#define CHECK_MAX_MS 400
/* A use goes again until its answer comes, with gaps from the first to
 * the maximum: the peer answers every copy until our own first datagram
 * reaches it, or until it has heard no use for HANDOVER_QUIET_MS (600,
 * rndz-listener-internal.h), which must be well above the maximum */
#define USE_RETRY_INITIAL_MS 100
#define USE_RETRY_MAX_MS 200
/* A path nominated on the peer's punch alone (it reached us; whether we
 * reach it, the use tells) goes back to checks when no use is answered
 * for this long: five copies, so that loss alone rarely gives it up */
#define PUNCH_USE_GIVE_UP_MS 1000

struct _ConnectOp
{
  GTask *task;                    /* owned while the operation runs */
  ConnectPhase phase;
  RndzPeerContext *peer;          /* who we are */
  GMainContext *context;          /* peer->context */
  RndzTransport transport;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  guint32 tid;

  GSocketFamily family;
  guint16 port;
  RndzRequest *request;           /* to the servers */

  GSource *timeout;
  gint64 deadline;                /* monotonic: when the timeout fires */
  GSource *cancel;

  GSocket *socket;                /* UDP: unconnected, on P: checks, punches, confirms */
  GSource *source;

  /* Our local addresses, offered to the peer */
  RndzAddr cands[RNDZ_MAX_CANDIDATES];
  guint n_cands;

  RndzAddr paths[MAX_PATHS];
  RndzPath path_kinds[MAX_PATHS];
  gboolean path_punched[MAX_PATHS]; /* UDP: a punch of the peer came from there */
  guint n_paths;
  GSource *direct_timeout;
  GSource *check_timer;           /* UDP: checks, then uses */
  guint check_ms;
  /* UDP: the path confirmed first, and the socket that will be the
   * result: bound to P (or a spray socket's port) and connected to it */
  GSocket *chosen_socket;
  GSource *chosen_source;
  RndzAddr chosen_addr;
  RndzPath chosen_kind;
  gint64 chosen_on_punch;         /* UDP: when a punch nominated it, or 0 */
  gboolean punch_unanswered;      /* UDP: that did not work; checks decide */
  GSource *other_checks;          /* UDP: meanwhile, checks to the other addresses */
  guint other_checks_ms;

  /* UDP, hard NATs */
  RndzAddr peer_addr;             /* as the server saw it */
  gboolean peer_rewrites;         /* its NAT changed its port */
  gboolean we_rewrite;            /* ours changed ours (the redirect's seen) */
  GSource *hard_timer;            /* starts the phase */
  RndzProber *prober;             /* the peer looks hard: we probe */
  RndzSpray *spray;
  GPtrArray *attempts;            /* TCP: PeerAttempt */

  GCancellable *join_cancellable;

  /* The early relay: asked for beside the direct paths, when these look
   * unlikely to work */
  GSource *early_timer;
  gboolean relay_early;           /* asked for */
  GError *relay_error;            /* it failed: what the op fails with, if direct does too */
  /* TCP: no relay to fall back on, so the direct paths go on until the
   * timeout, which then fails with relay_error (rndz-connect.c, "Without
   * a relay") */
  gboolean direct_only;

  /* A secure connection: the result waits for the target's fingerprint */
  RndzConnectSecurity *security;
  GSocket *held;
  RndzPath held_path;
};

/* g_task_return_*() may run the caller's callback at once, and the
 * caller may drop the last reference to the task (and so to the
 * operation): every callback holds one while it runs. */
static inline GTask *
op_hold (ConnectOp *op)
{
  return g_object_ref (op->task);
}

static inline gboolean
op_is_done (ConnectOp *op)
{
  return op->phase == PHASE_DONE;
}

/* A message of ours to the peer */
static inline void
op_init_peer_message (ConnectOp       *op,
                      RndzMessageType  type,
                      RndzMessage     *msg)
{
  rndz_message_init (msg, type, op->tid);
  g_strlcpy (msg->id, op->peer->id, sizeof msg->id);
  g_strlcpy (msg->target, op->peer_id, sizeof msg->target);
}

/* rndz-connect.c */
void      rndz_connect_op_return_error       (ConnectOp         *op,
                                              GError            *error);
void      rndz_connect_op_return_udp         (ConnectOp         *op,
                                              GSocket           *socket,
                                              RndzPath           path);
int       rndz_connect_op_find_path          (ConnectOp         *op,
                                              const RndzAddr    *addr);
gboolean  rndz_connect_op_add_path           (ConnectOp         *op,
                                              const RndzAddr    *addr,
                                              RndzPath           kind);
gboolean  rndz_connect_op_add_redirect_paths (ConnectOp         *op,
                                              const RndzMessage *redirect);
void      rndz_connect_op_found_peer         (ConnectOp         *op);
void      rndz_connect_op_maybe_relay_early  (ConnectOp         *op);

/* rndz-connect-udp.c */
void      rndz_connect_op_udp_start          (ConnectOp         *op);
void      rndz_connect_op_udp_redirected     (ConnectOp         *op,
                                              const RndzMessage *redirect);
gboolean  rndz_connect_op_hard_start_cb      (gpointer           user_data);

G_END_DECLS
