/* rndz-test-redis.h: a redis-server of the test's own, and raw commands
 *
 * SPDX-License-Identifier: MIT
 *
 * For the tests of the cluster: a redis-server on a loopback port, in a
 * directory of the test's, without persistence, and what a test needs
 * to look into it or talk to it without the library (and without
 * hiredis: GIO only). Redis dies with the test (PR_SET_PDEATHSIG).
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct
{
  GSubprocess *process;
  guint16 port;
} RndzTestRedis;

gboolean       rndz_test_redis_installed    (void);
RndzTestRedis *rndz_test_redis_start        (const char     *dir,
                                             guint16         port,
                                             guint           timeout_ms,
                                             GError        **error);
void           rndz_test_redis_stop         (RndzTestRedis  *redis);

/* Inline commands on a connection of their own */
char          *rndz_test_redis_command      (guint16         port,
                                             const char     *command);
gboolean       rndz_test_redis_wait         (guint16         port,
                                             const char     *command,
                                             const char     *reply,
                                             guint           timeout_ms);

/* Raw connections: commands in RESP, with binary arguments */
GSocket       *rndz_test_redis_connect      (guint16         port);
void           rndz_test_redis_send         (GSocket        *socket,
                                             const char     *args[],
                                             const gsize     lens[],
                                             guint           n);
char          *rndz_test_redis_read_message (GSocket        *socket,
                                             const char     *channel,
                                             gsize          *len,
                                             guint           timeout_ms);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzTestRedis, rndz_test_redis_stop)

G_END_DECLS
