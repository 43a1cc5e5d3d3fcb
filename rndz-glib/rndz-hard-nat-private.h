/* rndz-hard-nat-private.h: through NATs that give each destination a new port
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-peer-context-private.h"
#include "rndz-message-private.h"

G_BEGIN_DECLS

/* How long ordinary checks have before the hard-NAT phase starts */
#define RNDZ_HARD_NAT_DELAY_MS 500
/* Sockets the hard side opens, each a mapping of its own */
#define RNDZ_SPRAY_SOCKETS 256
/* The friendly side's probes: so many every so often, at most so many */
#define RNDZ_PROBE_INTERVAL_MS 10
#define RNDZ_PROBES_PER_INTERVAL 5
#define RNDZ_PROBES_MAX 1500

/*
 * RndzProbeBudget:
 *
 * The probes a listener may send, for all requesters together: at most
 * RNDZ_PROBE_BUDGET in each window of RNDZ_PROBE_WINDOW_US. A listener
 * probes the address a request came from, which may be forged: the
 * budget keeps it from aiming a stream of datagrams at anyone (133 a
 * second on average, about 8 kB/s). A hit takes 250 probes on average.
 */
#define RNDZ_PROBE_BUDGET 4000
#define RNDZ_PROBE_WINDOW_US (30 * G_USEC_PER_SEC)

typedef struct
{
  gint64 window;                /* monotonic: when the window began, 0 if never */
  guint left;
} RndzProbeBudget;

gboolean rndz_probe_budget_take (RndzProbeBudget *budget,
                                 gint64           now);

gboolean rndz_nat_rewrites_port (const RndzAddr *observed,
                                 const RndzAddr *cands,
                                 guint           n_cands);
guint16  rndz_probe_port        (void);

/*
 * RndzProber:
 *
 * The friendly side's probes of the hard side's address: random ports
 * from 1024 up, RNDZ_PROBES_PER_INTERVAL every RNDZ_PROBE_INTERVAL_MS,
 * RNDZ_PROBES_MAX in all, from the first tick (never from within
 * rndz_prober_new()). The probe message is encoded once; the caller's
 * function sends it to each port and says how it went; both roles pace
 * their probes with it.
 */
typedef struct _RndzProber RndzProber;

typedef enum
{
  RNDZ_PROBE_SENT,              /* counted */
  RNDZ_PROBE_SKIPPED,           /* not sent, not counted: try another port */
  RNDZ_PROBE_WAIT,              /* not sent: no more this tick */
  RNDZ_PROBE_STOP,              /* not sent: no more at all */
} RndzProbeResult;

/* @data, @len: the probe, the same for every port */
typedef RndzProbeResult (*RndzProbeFunc) (const RndzAddr *to,
                                          const char     *data,
                                          gsize           len,
                                          gpointer        user_data);

RndzProber *rndz_prober_new       (GMainContext      *context,
                                   const RndzAddr    *host,
                                   const RndzMessage *probe,
                                   RndzProbeFunc      func,
                                   gpointer           user_data);
guint       rndz_prober_get_count (RndzProber     *prober);
gboolean    rndz_prober_has_probed (RndzProber    *prober,
                                    guint16        port);
gboolean    rndz_prober_is_done   (RndzProber     *prober);
void        rndz_prober_free      (RndzProber     *prober);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzProber, rndz_prober_free)

/*
 * RndzSpray:
 *
 * Many UDP sockets on ephemeral ports, each sending the same datagram to
 * one address: behind a NAT that maps every socket and destination to a
 * port of its own, each socket opens a mapping of its own towards that
 * address, for the other side to find by probing. Datagrams that arrive
 * on them are passed on decoded.
 */
typedef struct _RndzSpray RndzSpray;

typedef void (*RndzSprayFunc) (RndzSpray         *spray,
                               GSocket           *socket,
                               const RndzAddr    *from,
                               const RndzMessage *msg,
                               gpointer           user_data);

RndzSpray *rndz_spray_new         (RndzPeerContext   *peer,
                                   GSocketFamily      family,
                                   const RndzAddr    *to,
                                   const RndzMessage *msg,
                                   GMainContext      *context,
                                   RndzSprayFunc      func,
                                   gpointer           user_data);
guint      rndz_spray_get_size    (RndzSpray         *spray);
GSocket   *rndz_spray_take        (RndzSpray         *spray,
                                   GSocket           *socket);
void       rndz_spray_free        (RndzSpray         *spray);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzSpray, rndz_spray_free)

G_END_DECLS
