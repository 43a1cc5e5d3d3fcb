/* rndz-forward-internal.h: what rndz-forward.c and rndz-forward-cluster.c share
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-cluster-private.h"
#include "rndz-forward-private.h"
#include "rndz-ratelimit-private.h"

G_BEGIN_DECLS

/* Outstanding forwarded requests; more is a flood, not a workload */
#define MAX_FORWARDS 4096

/* The share of one requester (address, or IPv6 /64) in one target's
 * requests: new requests a second, and the burst. Its table is large
 * enough that a flood from thousands of pairs rarely drains both slots
 * of another pair (doc/security.md, "Rate limits"). */
#define PAIR_BUCKETS 65536
#define PAIR_RATE 2
#define PAIR_BURST 4

/* A target's budget for requesters it has not heard from lately, as a
 * multiple of its shared budget (request-rate), and how long a requester
 * stays off it once a request of its own was forwarded to that target */
#define NEWCOMER_FACTOR 10
#define NEWCOMER_INTERVAL_S 10

/* The fsync of a pending UDP request is sent again for copies of its
 * isync, at most this many times: the request paid for them, the
 * target's budget for new requests does not (doc/protocol.md,
 * "Retransmission") */
#define MAX_FSYNC_COPIES 4

/* An isync forwarded to its target, waiting for the target's rsync; over
 * UDP kept, answered, until its deadline: a copy of the isync (the
 * redirect was lost) gets the redirect again */
typedef struct
{
  guint32 server_tid;
  guint32 requester_tid;
  gsize reply_limit;              /* UDP: the isync's size, less its fsync's */
  gboolean authenticated;
  RndzTransport transport;
  RndzAddr requester_addr;
  RndzAddr requester_cands[RNDZ_MAX_CANDIDATES];
  guint n_requester_cands;
  char requester_fp[RNDZ_FP_LEN + 1]; /* empty: a plain request */
  RndzServerConn *requester_conn; /* TCP; NULL once that connection closed */
  char requester_id[RNDZ_ID_MAX_LEN + 1];
  char target_id[RNDZ_ID_MAX_LEN + 1];
  gint64 deadline;
  GList link;                     /* in RndzForwarder.queue, by deadline */
  guint fsync_copies;             /* UDP: fsyncs sent again for copies of the isync */
  RndzMessage *redirect;          /* UDP: the answer, once the target's rsync came */

  /* Across a cluster (doc/cluster.md). The origin node (the requester's)
   * asks Redis where the target is (lookup), then sends the request to
   * that node; the node that holds the target keeps a forward with
   * remote set, and answers the origin instead of a requester. */
  RndzForwarder *forwarder;       /* for the lookup's callback */
  RndzClusterLookup *lookup;      /* while asking Redis */
  char node[RNDZ_CLUSTER_NODE_LEN + 1]; /* the other node: the target's, or the origin */
  gboolean remote;                /* the requester is at the origin node */
  gboolean relay;                 /* a relay request, not an isync */
  guint32 origin_tid;             /* the origin's id of the request */
  gint64 sent_across;             /* the origin: when it first sent the request across */
} RndzForward;

/* Key of the UDP retransmission table: the same isync sent again */
typedef struct
{
  RndzAddr addr;
  guint32 tid;
} RndzForwardKey;

struct _RndzForwarder
{
  RndzServerIo *io;
  RndzRegistry *registry;
  const RndzServerConfig *config;
  RndzServerStats *stats;
  RndzRelay *relay;             /* while listening with a relay port */

  GHashTable *forwards;         /* server tid → RndzForward */
  GHashTable *by_request;       /* RndzForwardKey → RndzForward, UDP only */
  GQueue queue;                 /* by deadline */
  guint32 next_tid;

  RndzRateLimit *requester_limit;
  RndzRateLimit *target_limit;

  RndzCluster *cluster;         /* when the server is in one */
  RndzAddr relay_addr;          /* how other nodes' peers reach our relay, if known */
  GHashTable *by_origin;        /* "NODE/TID" → RndzForward, with remote set */
  RndzRateLimit *pair_limit;     /* (target, requester) */
  RndzRateLimit *newcomer_limit; /* per target, for pairs with a full bucket */
};

/* rndz-forward.c */
RndzForward *rndz_forward_add           (RndzForwarder          *forwarder,
                                         const RndzServerSource *src,
                                         const RndzMessage      *msg,
                                         gboolean                authenticated,
                                         gsize                   reply_limit);
RndzForward *rndz_forward_find_retransmission (RndzForwarder          *forwarder,
                                               const RndzServerSource *src,
                                               const RndzMessage      *msg,
                                               gboolean               *again);
void         rndz_forward_free          (RndzForwarder          *forwarder,
                                         RndzForward            *forward);
void         rndz_forward_reply         (RndzForwarder          *forwarder,
                                         RndzForward            *forward,
                                         const RndzMessage      *msg);
guint32      rndz_forward_new_tid       (RndzForwarder          *forwarder);
void         rndz_forward_fit_redirect  (const RndzForward      *forward,
                                         RndzMessage            *redirect);
void         rndz_forward_count_error   (RndzForwarder          *forwarder,
                                         RndzWireError           code);
gboolean     rndz_forward_take          (RndzForwarder          *forwarder,
                                         const RndzAddr         *requester,
                                         const RndzAddr         *target,
                                         const char             *requester_id);
guint        rndz_forward_isync_admit   (RndzForwarder          *forwarder,
                                         const RndzAddr         *requester,
                                         const RndzAddr         *target);
gboolean     rndz_forward_isync_fits    (RndzForwarder          *forwarder,
                                         const RndzServerSource *src,
                                         const RndzMessage      *msg,
                                         const RndzPeer         *target,
                                         gboolean                authenticated,
                                         gsize                  *reply_limit);
void         rndz_forward_send_fsync    (RndzForwarder          *forwarder,
                                         RndzPeer               *target,
                                         RndzForward            *forward);

/* rndz-forward-cluster.c */
void         rndz_forward_across        (RndzForwarder          *forwarder,
                                         const RndzServerSource *src,
                                         const RndzMessage      *msg,
                                         gboolean                authenticated);
void         rndz_forward_relay_across  (RndzForwarder          *forwarder,
                                         const RndzServerSource *src,
                                         const RndzMessage      *msg,
                                         gboolean                authenticated);
void         rndz_forward_answer_origin (RndzForwarder          *forwarder,
                                         RndzForward            *forward,
                                         const RndzMessage      *msg);

G_END_DECLS
