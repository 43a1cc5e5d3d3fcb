/* rndz-ratelimit-private.h: per-address token buckets in fixed memory
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

#include "rndz-addr-private.h"

G_BEGIN_DECLS

/*
 * RndzRateLimit:
 *
 * Token buckets keyed by source address, in a fixed array: addresses that
 * hash to the same slot share a bucket, which errs on the strict side and
 * keeps memory constant whatever the number of sources. The port is
 * ignored, and an IPv6 address counts by its /64, which one host usually
 * owns whole. The hash is keyed with a random seed so that nobody can aim
 * at someone else's bucket.
 *
 * The same table can be keyed by pairs of addresses (the _pair
 * functions; use a table for one kind of key only): each pair has two
 * slots, and holds what the fuller one holds, so a pair that shares one
 * slot with a drained pair is not drained with it. A pair can also be
 * marked with the time, for its owner's own use.
 */
typedef struct _RndzRateLimit RndzRateLimit;

/* How full a bucket was */
typedef enum
{
  RNDZ_RATE_LIMIT_EMPTY,
  RNDZ_RATE_LIMIT_SOME,
  RNDZ_RATE_LIMIT_FULL,
} RndzRateLimitLevel;

RndzRateLimit *rndz_rate_limit_new     (guint           n_buckets,
                                        guint           per_second,
                                        guint           burst);
void           rndz_rate_limit_free    (RndzRateLimit  *limit);
void           rndz_rate_limit_set     (RndzRateLimit  *limit,
                                        guint           per_second,
                                        guint           burst);
gboolean       rndz_rate_limit_allows  (RndzRateLimit  *limit,
                                        const RndzAddr *addr,
                                        gint64          now);
gboolean       rndz_rate_limit_take    (RndzRateLimit  *limit,
                                        const RndzAddr *addr,
                                        gint64          now);
guint          rndz_rate_limit_wait_ms (RndzRateLimit  *limit,
                                        const RndzAddr *addr,
                                        gint64          now);

RndzRateLimitLevel rndz_rate_limit_take_pair    (RndzRateLimit  *limit,
                                                 const RndzAddr *a,
                                                 const RndzAddr *b,
                                                 gint64          now);
guint              rndz_rate_limit_wait_pair_ms (RndzRateLimit  *limit,
                                                 const RndzAddr *a,
                                                 const RndzAddr *b,
                                                 gboolean        full,
                                                 gint64          now);
void               rndz_rate_limit_mark_pair    (RndzRateLimit  *limit,
                                                 const RndzAddr *a,
                                                 const RndzAddr *b,
                                                 gint64          now);
gboolean           rndz_rate_limit_pair_marked  (RndzRateLimit  *limit,
                                                 const RndzAddr *a,
                                                 const RndzAddr *b,
                                                 guint           seconds,
                                                 gint64          now);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzRateLimit, rndz_rate_limit_free)

G_END_DECLS
