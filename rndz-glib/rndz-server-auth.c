/* rndz-server-auth.c: how RndzServer authenticates peers
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <gio/gio.h>

#include "rndz-server-auth-private.h"
#include "rndz-auth.h"
#include "rndz-i18n-private.h"
#include "rndz-ratelimit-private.h"
#include "rndz-server-names-private.h"

/* How far a timestamp may be from the server's clock, how many failures
 * per second an address may cause before its messages are dropped
 * unread, and how many recent MACs are remembered against replays (a
 * full cache refuses rather than forgets). */
#define AUTH_WINDOW_MS (60 * 1000)
#define AUTH_FAILURE_RATE 10
#define REPLAY_CACHE_MAX 262144
/* One id's share: some 30 messages a second for two minutes */
#define REPLAY_PER_ID_MAX 4096
/* At most one message a second says that peers name another server */
#define WRONG_SERVER_LOG_US G_USEC_PER_SEC

/* A MAC seen recently, kept until it could no longer pass the timestamp
 * check */
typedef struct
{
  gint64 expiry;
  char mac[RNDZ_MAC_HEX_LEN + 1];
  char id[RNDZ_ID_MAX_LEN + 1];
} ReplayEntry;

struct _RndzServerAuth
{
  RndzServerStats *stats;
  RndzServerNames *names;      /* what a message's srv must be */
  gint64 wrong_server_logged;  /* monotonic time, 0 for never */
  GBytes *secret;
  GHashTable *keys;            /* id → GBytes */
  RndzRateLimit *failures;
  GHashTable *replay;          /* set of the MACs of replay_queue */
  GQueue replay_queue;         /* ReplayEntry, oldest first */
  GHashTable *replay_per_id;   /* id → entries in the queue */
};

RndzServerAuth *
rndz_server_auth_new (RndzServerStats *stats,
                      RndzServerNames *names)
{
  RndzServerAuth *auth = g_new0 (RndzServerAuth, 1);

  auth->stats = stats;
  auth->names = names;
  auth->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) g_bytes_unref);
  auth->failures = rndz_rate_limit_new (RNDZ_SERVER_RATE_LIMIT_BUCKETS, AUTH_FAILURE_RATE,
                                        2 * AUTH_FAILURE_RATE);
  auth->replay = g_hash_table_new (g_str_hash, g_str_equal);
  auth->replay_per_id = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return auth;
}

void
rndz_server_auth_free (RndzServerAuth *auth)
{
  rndz_rate_limit_free (auth->failures);
  g_queue_clear_full (&auth->replay_queue, g_free);
  g_hash_table_unref (auth->replay);
  g_hash_table_unref (auth->replay_per_id);
  g_hash_table_unref (auth->keys);
  g_clear_pointer (&auth->secret, g_bytes_unref);
  g_free (auth);
}

gboolean
rndz_server_auth_is_required (RndzServerAuth *auth)
{
  return auth->secret != NULL || g_hash_table_size (auth->keys) > 0;
}

/* (transfer none) (nullable) */
GBytes *
rndz_server_auth_get_secret (RndzServerAuth *auth)
{
  return auth->secret;
}

/* @secret: (nullable): an empty one is none */
void
rndz_server_auth_set_secret (RndzServerAuth *auth,
                             GBytes         *secret)
{
  g_clear_pointer (&auth->secret, g_bytes_unref);
  if (secret != NULL && g_bytes_get_size (secret) > 0)
    auth->secret = g_bytes_ref (secret);
}

void
rndz_server_auth_add_key (RndzServerAuth *auth,
                          const char     *id,
                          GBytes         *key)
{
  g_hash_table_insert (auth->keys, g_strdup (id), g_bytes_ref (key));
}

/*
 * rndz_server_auth_read_keys:
 *
 * Reads a file with one `ID HEXKEY` pair a line; empty lines and lines
 * that start with `#` are skipped.
 *
 * Returns: (transfer full): id → GBytes, or %NULL if a line is wrong
 */
GHashTable *
rndz_server_auth_read_keys (const char  *path,
                            GError     **error)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GHashTable) keys = NULL;

  if (!g_file_get_contents (path, &contents, NULL, error))
    return NULL;

  keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autoptr(GError) local_error = NULL;
      g_auto(GStrv) fields = NULL;
      GBytes *parsed;
      char *line = g_strstrip (lines[i]);

      if (line[0] == '\0' || line[0] == '#')
        continue;

      fields = g_strsplit_set (line, " \t", 2);
      if (g_strv_length (fields) != 2 || !rndz_id_is_valid (fields[0], -1) ||
          (parsed = rndz_key_from_hex (fields[1], &local_error)) == NULL)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("%s:%u: expected an id and a hexadecimal key"), path, i + 1);
          return NULL;
        }
      g_hash_table_insert (keys, g_strdup (fields[0]), parsed);
    }

  return g_steal_pointer (&keys);
}

static GBytes *
auth_key_for (RndzServerAuth *auth,
              const char     *id)
{
  GBytes *key = g_hash_table_lookup (auth->keys, id);

  if (key != NULL)
    return g_bytes_ref (key);
  if (auth->secret != NULL)
    return rndz_derive_key (auth->secret, id);
  return NULL;
}

static void
replay_count (RndzServerAuth *auth,
              const char     *id,
              int             delta)
{
  guint count = GPOINTER_TO_UINT (g_hash_table_lookup (auth->replay_per_id, id)) + delta;

  if (count == 0)
    g_hash_table_remove (auth->replay_per_id, id);
  else
    g_hash_table_insert (auth->replay_per_id, g_strdup (id), GUINT_TO_POINTER (count));
}

/* Returns FALSE if @msg's MAC was seen already, or if there is no room
 * to remember it. Each id has a share of the cache, so that a peer with
 * a valid key can exhaust only its own. */
static gboolean
replay_remember (RndzServerAuth    *auth,
                 const RndzMessage *msg,
                 gint64             now)
{
  ReplayEntry *entry;

  while ((entry = g_queue_peek_head (&auth->replay_queue)) != NULL && entry->expiry <= now)
    {
      g_queue_pop_head (&auth->replay_queue);
      g_hash_table_remove (auth->replay, entry->mac);
      replay_count (auth, entry->id, -1);
      g_free (entry);
    }

  if (g_hash_table_contains (auth->replay, msg->mac) ||
      g_hash_table_size (auth->replay) >= REPLAY_CACHE_MAX ||
      GPOINTER_TO_UINT (g_hash_table_lookup (auth->replay_per_id, msg->id)) >= REPLAY_PER_ID_MAX)
    return FALSE;

  entry = g_new (ReplayEntry, 1);
  entry->expiry = now + 2 * (gint64) AUTH_WINDOW_MS * 1000;
  g_strlcpy (entry->mac, msg->mac, sizeof entry->mac);
  g_strlcpy (entry->id, msg->id, sizeof entry->id);
  g_hash_table_add (auth->replay, entry->mac);
  g_queue_push_tail (&auth->replay_queue, entry);
  replay_count (auth, msg->id, +1);
  return TRUE;
}

/* A peer with a valid key named an address that is not ours: most
 * likely this server is reached through DNAT or port forwarding at an
 * address the operator did not name; or the message is a replay of one
 * sent to another server. Said once a second at most, where an operator
 * looks, since without it every peer fails silently. */
static void
auth_log_wrong_server (RndzServerAuth    *auth,
                       const RndzAddr    *from,
                       const RndzMessage *msg,
                       gint64             now)
{
  char srv[RNDZ_ADDR_STRLEN], source[RNDZ_ADDR_STRLEN];

  if (auth->wrong_server_logged != 0 && now - auth->wrong_server_logged < WRONG_SERVER_LOG_US)
    return;
  auth->wrong_server_logged = MAX (now, 1);

  rndz_addr_format (&msg->srv, srv);
  rndz_addr_format (from, source);
  g_message ("Dropped a %s from %s signed for the server %s, which is not an address of "
             "this server. If peers reach this server at %s (through DNAT or port "
             "forwarding), name it with “rndz server --public-address %s” "
             "(RndzServer:public-addresses); otherwise the message may be a replay of "
             "one sent to another server.",
             rndz_message_type_to_string (msg->type), source, srv, srv, srv);
}

/* Why @msg fails, or NULL if it passes */
static const char *
auth_verify (RndzServerAuth    *auth,
             const RndzAddr    *from,
             const RndzMessage *msg,
             gint64             now)
{
  g_autoptr(GBytes) key = auth_key_for (auth, msg->id);
  gint64 now_ms = g_get_real_time () / 1000;

  if (key == NULL)
    return "no key for this id";
  if (msg->mac[0] == '\0')
    return "unsigned";
  if (msg->srv.family == 0)
    return "no srv (a peer that signs with MAC input version 1?)";
  if (!rndz_message_verify (msg, key))
    return "wrong MAC";
  if (ABS (now_ms - msg->ts) > AUTH_WINDOW_MS)
    return "stale timestamp";
  /* The MAC is right, so the peer did name that server */
  if (!rndz_server_names_contains (auth->names, &msg->srv, now))
    {
      auth_log_wrong_server (auth, from, msg, now);
      return "signed for another server";
    }
  if (!replay_remember (auth, msg, now))
    return "replayed";
  return NULL;
}

/*
 * rndz_server_auth_check:
 *
 * With authentication on, a peer proves with a MAC under its id's key
 * that it sent the message, recently, once. Failures get no answer: an
 * answer would tell an attacker which of its guesses came close. Only a
 * request without any MAC may hear that a key is needed
 * (%RNDZ_AUTH_UNSIGNED): it guessed nothing.
 */
RndzAuthVerdict
rndz_server_auth_check (RndzServerAuth    *auth,
                        const RndzAddr    *from,
                        const RndzMessage *msg)
{
  gint64 now = g_get_monotonic_time ();
  const char *why;

  if (!rndz_server_auth_is_required (auth))
    return RNDZ_AUTH_PASSED;

  switch (msg->type)
    {
    case RNDZ_MESSAGE_PING:
    case RNDZ_MESSAGE_ISYNC:
    case RNDZ_MESSAGE_RSYNC:
    case RNDZ_MESSAGE_BYE:
    case RNDZ_MESSAGE_RELAY:
      break;
    default:
      return RNDZ_AUTH_PASSED;
    }

  /* A source that keeps failing is not even heard */
  if (!rndz_rate_limit_allows (auth->failures, from, now))
    {
      auth->stats->auth_failed++;
      return RNDZ_AUTH_FAILED;
    }

  why = auth_verify (auth, from, msg, now);
  if (why == NULL)
    return RNDZ_AUTH_PASSED;

  auth->stats->auth_failed++;
  rndz_rate_limit_take (auth->failures, from, now);
  g_debug ("Dropping a %s for “%s”: %s", rndz_message_type_to_string (msg->type), msg->id, why);

  /* bye and rsync never had an answer */
  if (msg->mac[0] == '\0' && msg->type != RNDZ_MESSAGE_BYE && msg->type != RNDZ_MESSAGE_RSYNC)
    return RNDZ_AUTH_UNSIGNED;
  return RNDZ_AUTH_FAILED;
}
