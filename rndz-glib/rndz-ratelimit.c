/* rndz-ratelimit.c: per-address token buckets in fixed memory
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-ratelimit-private.h"

typedef struct
{
  gint64 updated;     /* monotonic µs */
  gdouble tokens;
} Bucket;

struct _RndzRateLimit
{
  guint n_buckets;
  gdouble per_second;
  gdouble burst;
  guint32 seed;
  Bucket *buckets;
};

RndzRateLimit *
rndz_rate_limit_new (guint n_buckets,
                     guint per_second,
                     guint burst)
{
  RndzRateLimit *limit = g_new0 (RndzRateLimit, 1);

  g_return_val_if_fail (n_buckets > 0, NULL);

  limit->n_buckets = n_buckets;
  limit->seed = g_random_int ();
  limit->buckets = g_new0 (Bucket, n_buckets);
  rndz_rate_limit_set (limit, per_second, burst);
  return limit;
}

void
rndz_rate_limit_free (RndzRateLimit *limit)
{
  g_free (limit->buckets);
  g_free (limit);
}

void
rndz_rate_limit_set (RndzRateLimit *limit,
                     guint          per_second,
                     guint          burst)
{
  limit->per_second = per_second;
  limit->burst = MAX (burst, 1);
}

static guint
bucket_index (RndzRateLimit  *limit,
              const RndzAddr *addr)
{
  /* FNV-1a over the seed and the address, without the port; /64 for v6 */
  gsize n = addr->family == 4 ? 4 : 8;
  guint32 h = 2166136261u ^ limit->seed;

  h = (h ^ addr->family) * 16777619u;
  for (gsize i = 0; i < n; i++)
    h = (h ^ addr->bytes[i]) * 16777619u;

  return h % limit->n_buckets;
}

static Bucket *
bucket_refill (RndzRateLimit  *limit,
               const RndzAddr *addr,
               gint64          now)
{
  Bucket *bucket = &limit->buckets[bucket_index (limit, addr)];

  if (bucket->updated == 0)
    bucket->tokens = limit->burst;
  else if (now > bucket->updated)
    bucket->tokens = MIN (limit->burst,
                          bucket->tokens + (now - bucket->updated) * limit->per_second / G_USEC_PER_SEC);
  bucket->updated = now;
  return bucket;
}

/*
 * rndz_rate_limit_allows:
 *
 * Returns: whether @addr's bucket has a token, without taking it
 */
gboolean
rndz_rate_limit_allows (RndzRateLimit  *limit,
                        const RndzAddr *addr,
                        gint64          now)
{
  return bucket_refill (limit, addr, now)->tokens >= 1.0;
}

/*
 * rndz_rate_limit_take:
 *
 * Takes one token from @addr's bucket.
 *
 * Returns: %FALSE if the bucket is empty: the request must be refused
 */
gboolean
rndz_rate_limit_take (RndzRateLimit  *limit,
                      const RndzAddr *addr,
                      gint64          now)
{
  Bucket *bucket = bucket_refill (limit, addr, now);

  if (bucket->tokens < 1.0)
    return FALSE;

  bucket->tokens -= 1.0;
  return TRUE;
}

/*
 * rndz_rate_limit_wait_ms:
 *
 * Returns: the milliseconds until @addr's bucket has a token again (at
 *   most the time one token takes to refill), 0 if it has one now, or
 *   %G_MAXUINT if the bucket never refills
 */
guint
rndz_rate_limit_wait_ms (RndzRateLimit  *limit,
                         const RndzAddr *addr,
                         gint64          now)
{
  gdouble missing = 1.0 - bucket_refill (limit, addr, now)->tokens;
  gdouble ms;
  guint whole;

  if (missing <= 0.0)
    return 0;
  if (limit->per_second <= 0.0)
    return G_MAXUINT;

  /* Rounded up: a retry at that time finds the token there */
  ms = missing * 1000.0 / limit->per_second;
  whole = (guint) ms;
  return whole < ms ? whole + 1 : whole;
}
