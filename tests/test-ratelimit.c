/* test-ratelimit.c: the token buckets' exact numbers
 *
 * SPDX-License-Identifier: MIT
 *
 * RndzRateLimit takes the time as an argument, so these tests give it
 * the clock they want and can pin every bound exactly: the burst, the
 * refill per elapsed time, the cap on the refill, the wait. The server's
 * own tests (test-limits.c) check the same limits end to end, by the
 * real clock.
 */

#include <rndz-glib/rndz.h>

#include "rndz-ratelimit-private.h"
#include "rndz-test-util.h"

#define RATE 5
#define BURST 10
/* A start far from 0: a bucket's time 0 means "never used" */
#define T0 (G_GINT64_CONSTANT (1000) * G_USEC_PER_SEC)
/* How long one token takes to come back */
#define TOKEN_US (G_USEC_PER_SEC / RATE)
#define HOUR_US (G_GINT64_CONSTANT (3600) * G_USEC_PER_SEC)

/* Takes tokens at @now until the bucket refuses; returns how many */
static guint
drain (RndzRateLimit  *limit,
       const RndzAddr *addr,
       gint64          now)
{
  guint n = 0;

  while (rndz_rate_limit_take (limit, addr, now))
    {
      n++;
      /* Far more than any bucket holds: a bug, not a slow test */
      g_assert_cmpuint (n, <, 1000000);
    }
  return n;
}

static void
test_burst (void)
{
  g_autoptr(RndzRateLimit) limit = rndz_rate_limit_new (64, RATE, BURST);
  RndzAddr a = rndz_test_addr ("203.0.113.5:1000");

  g_test_summary ("A new bucket holds exactly the burst, and an empty one refuses");

  g_assert_true (rndz_rate_limit_allows (limit, &a, T0));
  for (guint i = 0; i < BURST; i++)
    g_assert_true (rndz_rate_limit_take (limit, &a, T0));
  g_assert_false (rndz_rate_limit_take (limit, &a, T0));
  g_assert_false (rndz_rate_limit_allows (limit, &a, T0));
  /* A refused request costs nothing and earns nothing */
  g_assert_false (rndz_rate_limit_take (limit, &a, T0));
}

static void
test_refill (void)
{
  g_autoptr(RndzRateLimit) limit = rndz_rate_limit_new (64, RATE, BURST);
  RndzAddr a = rndz_test_addr ("203.0.113.5:1000");
  gint64 now = T0;

  g_test_summary ("An empty bucket gets exactly RATE tokens a second back, one every "
                  "1/RATE s, not a microsecond early");

  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);

  /* One token, exactly when it is due */
  g_assert_false (rndz_rate_limit_take (limit, &a, now + TOKEN_US - 1));
  g_assert_true (rndz_rate_limit_take (limit, &a, now + TOKEN_US));
  g_assert_false (rndz_rate_limit_take (limit, &a, now + TOKEN_US));
  now += TOKEN_US;

  /* A second: RATE tokens */
  now += G_USEC_PER_SEC;
  g_assert_cmpuint (drain (limit, &a, now), ==, RATE);

  /* Half a token and half a token make one: the fraction is kept */
  g_assert_false (rndz_rate_limit_take (limit, &a, now + TOKEN_US / 2));
  g_assert_true (rndz_rate_limit_take (limit, &a, now + TOKEN_US));
  now += TOKEN_US;

  /* 1.5 s: 7.5 tokens, so 7 now and the eighth half a token later */
  now += 3 * G_USEC_PER_SEC / 2;
  g_assert_cmpuint (drain (limit, &a, now), ==, 7);
  g_assert_false (rndz_rate_limit_take (limit, &a, now + TOKEN_US / 2 - 1));
  g_assert_true (rndz_rate_limit_take (limit, &a, now + TOKEN_US / 2));
}

static void
test_refill_capped (void)
{
  g_autoptr(RndzRateLimit) limit = rndz_rate_limit_new (64, RATE, BURST);
  RndzAddr a = rndz_test_addr ("203.0.113.5:1000");
  gint64 now = T0;

  g_test_summary ("However long a bucket idles, it holds exactly the burst again, "
                  "not more");

  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);

  /* Just enough time to fill it */
  now += BURST * TOKEN_US;
  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);

  /* An hour */
  now += HOUR_US;
  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);

  /* A full bucket that idles stays full, and no fuller */
  now += HOUR_US;
  g_assert_true (rndz_rate_limit_allows (limit, &a, now));
  now += HOUR_US;
  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);

  /* Half used, then idle: full, not half and a burst */
  g_assert_cmpuint (drain (limit, &a, now + BURST * TOKEN_US / 2), ==, BURST / 2);
  now += 10 * G_USEC_PER_SEC;
  for (guint i = 0; i < BURST / 2; i++)
    g_assert_true (rndz_rate_limit_take (limit, &a, now));
  now += HOUR_US;
  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);
}

static void
test_wait_ms (void)
{
  g_autoptr(RndzRateLimit) limit = rndz_rate_limit_new (64, RATE, BURST);
  RndzAddr a = rndz_test_addr ("203.0.113.5:1000");
  gint64 now = T0;

  g_test_summary ("The wait is exactly the time until the next token, rounded up to "
                  "the millisecond, and 0 when there is one");

  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now), ==, 0);
  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);

  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now), ==, 1000 / RATE);
  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now + 50 * 1000), ==, 1000 / RATE - 50);
  /* A microsecond short is a whole millisecond to wait */
  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now + 150 * 1000 + 1), ==, 50);
  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now + TOKEN_US - 1), ==, 1);
  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now + TOKEN_US), ==, 0);

  /* A retry at the time it says finds the token */
  now += TOKEN_US;
  g_assert_true (rndz_rate_limit_take (limit, &a, now));
  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now), ==, 1000 / RATE);
  g_assert_false (rndz_rate_limit_take (limit, &a, now + 199 * 1000));
  g_assert_true (rndz_rate_limit_take (limit, &a, now + 200 * 1000));

  /* Asking does not take */
  now += 200 * 1000 + HOUR_US;
  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, now), ==, 0);
  g_assert_cmpuint (drain (limit, &a, now), ==, BURST);
}

static void
test_wait_never (void)
{
  g_autoptr(RndzRateLimit) limit = rndz_rate_limit_new (16, 0, 3);
  RndzAddr a = rndz_test_addr ("203.0.113.5:1000");

  g_test_summary ("A bucket that never refills gives its burst once, and says so");

  g_assert_cmpuint (drain (limit, &a, T0), ==, 3);
  g_assert_cmpuint (drain (limit, &a, T0 + HOUR_US), ==, 0);
  g_assert_cmpuint (rndz_rate_limit_wait_ms (limit, &a, T0 + HOUR_US), ==, G_MAXUINT);
}

static void
test_set (void)
{
  g_autoptr(RndzRateLimit) limit = rndz_rate_limit_new (64, RATE, 0);
  RndzAddr a = rndz_test_addr ("203.0.113.5:1000");
  gint64 now = T0;

  g_test_summary ("A burst of 0 is 1; new numbers apply from the next refill");

  g_assert_cmpuint (drain (limit, &a, now), ==, 1);
  now += HOUR_US;
  g_assert_cmpuint (drain (limit, &a, now), ==, 1);

  rndz_rate_limit_set (limit, 2 * RATE, 2 * BURST);
  now += HOUR_US;
  g_assert_cmpuint (drain (limit, &a, now), ==, 2 * BURST);
  g_assert_cmpuint (drain (limit, &a, now + TOKEN_US), ==, 2);
}

/* Different sources may share a bucket (the hash is seeded at random):
 * only sources that must share one are compared */
static void
test_keys (void)
{
  g_autoptr(RndzRateLimit) limit = rndz_rate_limit_new (1024, RATE, BURST);
  g_autoptr(RndzRateLimit) limit6 = rndz_rate_limit_new (1024, RATE, BURST);
  RndzAddr a1 = rndz_test_addr ("203.0.113.5:1000");
  RndzAddr a2 = rndz_test_addr ("203.0.113.5:2000");
  RndzAddr v6a = rndz_test_addr ("[2001:db8:0:1::1]:1000");
  RndzAddr v6b = rndz_test_addr ("[2001:db8:0:1:ffff::2]:2000");

  g_test_summary ("Ports do not count, and an IPv6 /64 is one source");

  for (guint i = 0; i < BURST / 2; i++)
    g_assert_true (rndz_rate_limit_take (limit, &a1, T0));
  g_assert_cmpuint (drain (limit, &a2, T0), ==, BURST / 2);

  g_assert_cmpuint (drain (limit6, &v6a, T0), ==, BURST);
  g_assert_cmpuint (drain (limit6, &v6b, T0), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/ratelimit/burst", test_burst);
  g_test_add_func ("/ratelimit/refill", test_refill);
  g_test_add_func ("/ratelimit/refill-capped", test_refill_capped);
  g_test_add_func ("/ratelimit/wait-ms", test_wait_ms);
  g_test_add_func ("/ratelimit/wait-never", test_wait_never);
  g_test_add_func ("/ratelimit/set", test_set);
  g_test_add_func ("/ratelimit/keys", test_keys);

  return g_test_run ();
}
