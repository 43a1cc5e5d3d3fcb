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
  guint32 *marks;     /* pairs: when marked, in seconds + 1; made when first marked */
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
  g_free (limit->marks);
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

/* FNV-1a over the address, without the port; /64 for v6 */
static guint32
hash_addr (guint32         h,
           const RndzAddr *addr)
{
  gsize n = addr->family == 4 ? 4 : 8;

  h = (h ^ addr->family) * 16777619u;
  for (gsize i = 0; i < n; i++)
    h = (h ^ addr->bytes[i]) * 16777619u;
  return h;
}

static guint
bucket_index (RndzRateLimit  *limit,
              const RndzAddr *addr)
{
  return hash_addr (2166136261u ^ limit->seed, addr) % limit->n_buckets;
}

static Bucket *
bucket_refill_at (RndzRateLimit *limit,
                  guint          index,
                  gint64         now)
{
  Bucket *bucket = &limit->buckets[index];

  if (bucket->updated == 0)
    bucket->tokens = limit->burst;
  else if (now > bucket->updated)
    bucket->tokens = MIN (limit->burst,
                          bucket->tokens + (now - bucket->updated) * limit->per_second / G_USEC_PER_SEC);
  bucket->updated = now;
  return bucket;
}

static Bucket *
bucket_refill (RndzRateLimit  *limit,
               const RndzAddr *addr,
               gint64          now)
{
  return bucket_refill_at (limit, bucket_index (limit, addr), now);
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

/* The milliseconds until a bucket @missing tokens short has one */
static guint
wait_for (RndzRateLimit *limit,
          gdouble        missing)
{
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
  return wait_for (limit, 1.0 - bucket_refill (limit, addr, now)->tokens);
}

/* Pairs */

/* The two slots of the pair (@a, @b): a pair is as well off as the
 * better of them, so it suffers only if another pair drained both */
static void
pair_slots (RndzRateLimit  *limit,
            const RndzAddr *a,
            const RndzAddr *b,
            guint           slots[2])
{
  for (guint i = 0; i < 2; i++)
    {
      guint32 h = 2166136261u ^ (i == 0 ? limit->seed : ~limit->seed);

      h = hash_addr (hash_addr (h, a), b);
      /* A last mix: FNV alone spreads its final bytes poorly over a
       * modulus */
      h ^= h >> 15;
      h *= 0x2c1b3c6du;
      h ^= h >> 12;
      slots[i] = h % limit->n_buckets;
    }
}

static gdouble
pair_tokens (RndzRateLimit *limit,
             const guint    slots[2],
             gint64         now)
{
  return MAX (bucket_refill_at (limit, slots[0], now)->tokens,
              bucket_refill_at (limit, slots[1], now)->tokens);
}

/*
 * rndz_rate_limit_take_pair:
 *
 * Takes a token for the pair (@a, @b), if it has one, in a table of
 * pairs (each pair has two slots; it has what the better one holds, and
 * a token is taken from both).
 *
 * Returns: how full the pair's bucket was before: %RNDZ_RATE_LIMIT_EMPTY
 *   if it had no token (nothing was taken), %RNDZ_RATE_LIMIT_FULL if it
 *   held its whole burst, else %RNDZ_RATE_LIMIT_SOME
 */
RndzRateLimitLevel
rndz_rate_limit_take_pair (RndzRateLimit  *limit,
                           const RndzAddr *a,
                           const RndzAddr *b,
                           gint64          now)
{
  guint slots[2];
  gdouble tokens;

  pair_slots (limit, a, b, slots);
  tokens = pair_tokens (limit, slots, now);
  if (tokens < 1.0)
    return RNDZ_RATE_LIMIT_EMPTY;

  for (guint i = 0; i < 2; i++)
    {
      Bucket *bucket = &limit->buckets[slots[i]];

      bucket->tokens = MAX (bucket->tokens - 1.0, 0.0);
    }
  return tokens >= limit->burst ? RNDZ_RATE_LIMIT_FULL : RNDZ_RATE_LIMIT_SOME;
}

/*
 * rndz_rate_limit_wait_pair_ms:
 * @full: wait for the whole burst, not for one token
 *
 * Returns: like rndz_rate_limit_wait_ms(), for the pair (@a, @b)
 */
guint
rndz_rate_limit_wait_pair_ms (RndzRateLimit  *limit,
                              const RndzAddr *a,
                              const RndzAddr *b,
                              gboolean        full,
                              gint64          now)
{
  guint slots[2];

  pair_slots (limit, a, b, slots);
  return wait_for (limit, (full ? limit->burst : 1.0) - pair_tokens (limit, slots, now));
}

/* Pair marks count whole seconds from 1; 0 is never */
static guint32
mark_seconds (gint64 now)
{
  return (guint32) (now / G_USEC_PER_SEC) + 1;
}

/*
 * rndz_rate_limit_mark_pair:
 *
 * Marks the pair (@a, @b) (both its slots) as of @now, for
 * rndz_rate_limit_pair_marked().
 */
void
rndz_rate_limit_mark_pair (RndzRateLimit  *limit,
                           const RndzAddr *a,
                           const RndzAddr *b,
                           gint64          now)
{
  guint slots[2];

  if (limit->marks == NULL)
    limit->marks = g_new0 (guint32, limit->n_buckets);
  pair_slots (limit, a, b, slots);
  for (guint i = 0; i < 2; i++)
    limit->marks[slots[i]] = mark_seconds (now);
}

/*
 * rndz_rate_limit_pair_marked:
 *
 * Returns: whether the pair (@a, @b) was marked less than @seconds
 *   before @now (to the second): both its slots were, since a pair is as
 *   well off as the better one
 */
gboolean
rndz_rate_limit_pair_marked (RndzRateLimit  *limit,
                             const RndzAddr *a,
                             const RndzAddr *b,
                             guint           seconds,
                             gint64          now)
{
  guint32 since = mark_seconds (now) - MIN (seconds, mark_seconds (now));
  guint slots[2];

  if (limit->marks == NULL)
    return FALSE;
  pair_slots (limit, a, b, slots);
  return limit->marks[slots[0]] > since && limit->marks[slots[1]] > since;
}
