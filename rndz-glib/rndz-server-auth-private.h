/* rndz-server-auth-private.h: how RndzServer authenticates peers
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

#include "rndz-message-private.h"
#include "rndz-server-names-private.h"
#include "rndz-server-types-private.h"

G_BEGIN_DECLS

/*
 * RndzServerAuth:
 *
 * The server's keys (a secret to derive them from, and keys per id), the
 * check of a message's MAC, timestamp and server (its `srv` must be one
 * of the server's names, which it reads, not owns), the cache of recent MACs
 * against replays, and the rate limit on failures per source address.
 * Off until a secret or a key is set.
 */
typedef struct _RndzServerAuth RndzServerAuth;

typedef enum
{
  RNDZ_AUTH_PASSED,     /* or authentication is off, or the type is not signed */
  RNDZ_AUTH_UNSIGNED,   /* a request with no MAC: it may hear that a key is needed */
  RNDZ_AUTH_FAILED,     /* anything else: dropped without an answer */
} RndzAuthVerdict;

RndzServerAuth  *rndz_server_auth_new          (RndzServerStats   *stats,
                                                RndzServerNames   *names);
void             rndz_server_auth_free         (RndzServerAuth    *auth);
gboolean         rndz_server_auth_is_required  (RndzServerAuth    *auth);
GBytes          *rndz_server_auth_get_secret   (RndzServerAuth    *auth);
void             rndz_server_auth_set_secret   (RndzServerAuth    *auth,
                                                GBytes            *secret);
void             rndz_server_auth_add_key      (RndzServerAuth    *auth,
                                                const char        *id,
                                                GBytes            *key);
GHashTable      *rndz_server_auth_read_keys    (const char        *path,
                                                GError           **error);
RndzAuthVerdict  rndz_server_auth_check        (RndzServerAuth    *auth,
                                                const RndzAddr    *from,
                                                const RndzMessage *msg);

G_END_DECLS
