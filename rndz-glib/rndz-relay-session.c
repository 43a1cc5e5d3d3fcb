/* rndz-relay-session.c: the relay's sessions
 *
 * SPDX-License-Identifier: MIT
 *
 * The core of the relay, which both transports call: opening sessions
 * and giving them tokens, finding the session a hello joins, starting a
 * session when both sides are there, the rate buckets, and the timer
 * that closes sessions not joined in time or idle for too long. See
 * rndz-relay.c for what a session is.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "rndz-relay-session-private.h"
#include "rndz-source-private.h"
#include "rndz-i18n-private.h"

/* A relay request: who asked, in which transaction, over what */
typedef struct
{
  RndzAddr addr;
  guint32 tid;
  guint8 transport;
} RndzRelayRequestKey;

static guint
request_key_hash (gconstpointer key)
{
  const RndzRelayRequestKey *k = key;

  return rndz_addr_hash (&k->addr) ^ k->tid ^ k->transport;
}

static gboolean
request_key_equal (gconstpointer a,
                   gconstpointer b)
{
  const RndzRelayRequestKey *ka = a, *kb = b;

  return ka->tid == kb->tid && ka->transport == kb->transport &&
         rndz_addr_equal (&ka->addr, &kb->addr);
}

void
rndz_relay_schedule (RndzRelay *relay,
                     gint64     deadline)
{
  rndz_deadline_source_arm (relay->timer, deadline);
}

/* 128 bits from the kernel's generator: the token is all that lets a
 * peer into a session, so there is no weaker fallback. getrandom() fails
 * under a seccomp policy that forbids it, or on a kernel without it. */
static gboolean
make_token (char     token[RNDZ_TOKEN_LEN + 1],
            GError **error)
{
  guint8 bytes[RNDZ_TOKEN_LEN / 2];
  gsize got = 0;

  while (got < sizeof bytes)
    {
      gssize n = getrandom (bytes + got, sizeof bytes - got, 0);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int errsv = n < 0 ? errno : EIO;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       _("Cannot generate a session token: %s"), g_strerror (errsv));
          return FALSE;
        }
      got += n;
    }

  for (gsize i = 0; i < sizeof bytes; i++)
    g_snprintf (token + 2 * i, 3, "%02x", bytes[i]);
  return TRUE;
}

double
rndz_relay_burst (RndzRelay *relay)
{
  /* A quarter of a second, but at least a full datagram or buffer */
  return MAX (relay->rate / 4.0, (double) RNDZ_RELAY_SPLICE_BUFFER);
}

static void
bucket_fill (RndzRelay       *relay,
             RndzRelayBucket *bucket,
             gint64           now)
{
  bucket->tokens = rndz_relay_burst (relay);
  bucket->last = now;
}

/* Returns the bytes available now */
double
rndz_relay_bucket_refill (RndzRelay       *relay,
                          RndzRelayBucket *bucket,
                          gint64           now)
{
  if (relay->rate == 0)
    return G_MAXDOUBLE;

  bucket->tokens = MIN (rndz_relay_burst (relay),
                        bucket->tokens + (double) (now - bucket->last) * relay->rate / G_USEC_PER_SEC);
  bucket->last = now;
  return bucket->tokens;
}

void
rndz_relay_bucket_take (RndzRelay       *relay,
                        RndzRelayBucket *bucket,
                        gsize            n)
{
  if (relay->rate != 0)
    bucket->tokens -= n;
}

/* Caps per requester */

/* @addr without its port and with only its first @v4_bits or @v6_bits
 * (multiples of 8): an address or a network, to count sessions by */
static RndzAddr
addr_key (const RndzAddr *addr,
          guint           v4_bits,
          guint           v6_bits)
{
  RndzAddr key = { 0, };

  key.family = addr->family;
  memcpy (key.bytes, addr->bytes, (addr->family == 4 ? v4_bits : v6_bits) / 8);
  return key;
}

/* An IPv6 host gets a /64: it counts as one address */
static RndzAddr
address_key (const RndzAddr *addr)
{
  return addr_key (addr, 32, 64);
}

/* What one operator is likely to hold at most without effort: an IPv4
 * /16, an IPv6 /48 (a site) */
static RndzAddr
network_key (const RndzAddr *addr)
{
  return addr_key (addr, 16, 48);
}

static guint
count_get (GHashTable     *table,
           const RndzAddr *key)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (table, key));
}

static void
count_add (GHashTable     *table,
           const RndzAddr  key,
           int             delta)
{
  guint n = count_get (table, &key) + delta;

  if (n == 0)
    g_hash_table_remove (table, &key);
  else
    g_hash_table_insert (table, g_memdup2 (&key, sizeof key), GUINT_TO_POINTER (n));
}

/* One pending session per requester host, requester id and target id:
 * a new request for the pair (a new tid: a retransmission finds its
 * session by its tid) replaces the one not started yet, so that a peer
 * that tries again does not hold two. The ids are counted by length, so
 * no two pairs have the same key. */
static char *
pair_key (RndzTransport   transport,
          const RndzAddr *requester,
          const char     *requester_id,
          const char     *target_id)
{
  RndzAddr host = address_key (requester);
  char buf[RNDZ_ADDR_STRLEN];

  return g_strdup_printf ("%d %s %" G_GSIZE_FORMAT " %s%s", transport, rndz_addr_format (&host, buf),
                          strlen (requester_id), requester_id, target_id);
}

/* Sessions */

static void
session_free (RndzRelaySession *session)
{
  RndzRelay *relay = session->relay;
  RndzRelayRequestKey key = {
    session->requester_addr, session->requester_tid, session->transport
  };

  if (session->pair_key != NULL)
    g_hash_table_remove (relay->pending_pairs, session->pair_key);
  g_free (session->pair_key);
  count_add (relay->per_address, address_key (&session->requester_addr), -1);
  count_add (relay->per_network, network_key (&session->requester_addr), -1);

  g_debug ("Relay: closing the session of “%s” and “%s”", session->ids[0], session->ids[1]);

  for (guint i = 0; i < 2; i++)
    {
      RndzRelaySide *side = &session->sides[i];

      if (session->transport == RNDZ_TRANSPORT_UDP && side->bound)
        g_hash_table_remove (relay->by_endpoint, &side->addr);
      if (side->conn != NULL)
        relay->tcp_hooks->close_conn (g_steal_pointer (&side->conn));
    }

  g_hash_table_remove (relay->by_token, session->token);
  g_hash_table_remove (relay->by_request, &key);
  g_queue_unlink (&relay->sessions, &session->link);
  g_free (session);
}

void
rndz_relay_session_fail (RndzRelaySession *session,
                         const char       *why)
{
  g_debug ("Relay: %s", why);
  session_free (session);
}

RndzRelaySession *
rndz_relay_find_request (RndzRelay      *relay,
                         RndzTransport   transport,
                         const RndzAddr *requester,
                         guint32         tid)
{
  RndzRelayRequestKey key = { *requester, tid, transport };

  return g_hash_table_lookup (relay->by_request, &key);
}

/* Whether @requester may have one more session, after its pending one
 * for the same pair is closed; @key is the pair's */
static gboolean
relay_admit (RndzRelay      *relay,
             const RndzAddr *requester,
             const char     *key)
{
  RndzRelaySession *pending = g_hash_table_lookup (relay->pending_pairs, key);
  RndzAddr address = address_key (requester);
  RndzAddr network = network_key (requester);

  if (pending != NULL)
    rndz_relay_session_fail (pending, "session replaced by a new request for the same pair");

  if (relay->sessions.length >= relay->max_sessions)
    return FALSE;
  if (count_get (relay->per_address, &address) >= relay->max_per_address ||
      count_get (relay->per_network, &network) >= relay->max_per_network)
    return FALSE;
  return TRUE;
}

/* When @session ends unless something happens first */
static gint64
session_deadline (RndzRelaySession *session)
{
  RndzRelay *relay = session->relay;
  gint64 deadline;

  if (session->ready)
    deadline = session->last_activity + relay->idle_timeout_ms * (gint64) 1000;
  else
    deadline = session->created + relay->join_timeout_ms * (gint64) 1000;
  return MIN (deadline, session->created + relay->max_lifetime_ms * (gint64) 1000);
}

/*
 * rndz_relay_open:
 * @requester: where the request came from: the requester joins from
 *   that host
 * @target_addr: the target's registered address: it joins from that host
 * @target_tid: the transaction id of the session message to the target
 *
 * Opens a session for a relay request, or returns %NULL when there is
 * no room for one more or no token can be made for it (logged).
 */
RndzRelaySession *
rndz_relay_open (RndzRelay      *relay,
                 RndzTransport   transport,
                 const RndzAddr *requester,
                 guint32         tid,
                 const char     *requester_id,
                 const char     *target_id,
                 const RndzAddr *target_addr,
                 guint32         target_tid)
{
  g_autoptr(GError) error = NULL;
  g_autofree RndzRelaySession *session = NULL;
  g_autofree char *pair = pair_key (transport, requester, requester_id, target_id);
  RndzRelayRequestKey *key;

  if (!relay_admit (relay, requester, pair))
    return NULL;

  session = g_new0 (RndzRelaySession, 1);
  do
    {
      if (!make_token (session->token, &error))
        {
          g_debug ("Relay: no session for “%s”: %s", requester_id, error->message);
          return NULL;
        }
    }
  while (g_hash_table_contains (relay->by_token, session->token));

  session->relay = relay;
  session->transport = transport;
  g_strlcpy (session->ids[0], requester_id, sizeof session->ids[0]);
  g_strlcpy (session->ids[1], target_id, sizeof session->ids[1]);
  session->target_tid = target_tid;
  session->requester_addr = *requester;
  session->requester_tid = tid;
  session->hosts[0] = *requester;
  session->hosts[1] = *target_addr;
  session->created = g_get_monotonic_time ();
  session->link.data = session;

  key = g_new (RndzRelayRequestKey, 1);
  *key = (RndzRelayRequestKey) { *requester, tid, transport };
  g_hash_table_insert (relay->by_token, session->token, session);
  g_hash_table_insert (relay->by_request, key, session);
  g_queue_push_tail_link (&relay->sessions, &session->link);
  session->pair_key = g_steal_pointer (&pair);
  g_hash_table_insert (relay->pending_pairs, session->pair_key, session);
  count_add (relay->per_address, address_key (requester), 1);
  count_add (relay->per_network, network_key (requester), 1);
  rndz_relay_schedule (relay, session_deadline (session));

  relay->stats->relay_sessions++;
  g_debug ("Relay: opened a %s session for “%s” and “%s”",
           transport == RNDZ_TRANSPORT_TCP ? "TCP" : "UDP", requester_id, target_id);
  return g_steal_pointer (&session);
}

const char *
rndz_relay_session_get_token (RndzRelaySession *session)
{
  return session->token;
}

const char *
rndz_relay_session_get_target (RndzRelaySession *session)
{
  return session->ids[1];
}

guint32
rndz_relay_session_get_target_tid (RndzRelaySession *session)
{
  return session->target_tid;
}

/* Which side of @session @id is, or -1 */
static int
session_side (RndzRelaySession *session,
              const char       *id)
{
  for (int i = 0; i < 2; i++)
    if (g_str_equal (session->ids[i], id))
      return i;
  return -1;
}

/* The session that @msg, from @from, joins, if it is a hello that may
 * join one. A hello from another host than the one the server knows for
 * that side may come from a forged source: binding the side to it would
 * make the relay send the session's traffic to whatever address a holder
 * of the token names. */
RndzRelaySession *
rndz_relay_hello_session (RndzRelay         *relay,
                          const RndzMessage *msg,
                          RndzTransport      transport,
                          const RndzAddr    *from,
                          int               *idx)
{
  RndzRelaySession *session;

  if (msg->type != RNDZ_MESSAGE_HELLO)
    return NULL;
  session = g_hash_table_lookup (relay->by_token, msg->token);
  if (session == NULL || session->transport != transport)
    return NULL;
  *idx = session_side (session, msg->id);
  if (*idx < 0)
    return NULL;
  if (!rndz_addr_same_host (from, &session->hosts[*idx]))
    {
      g_debug ("Relay: a hello for “%s” from another host than its own", msg->id);
      return NULL;
    }
  return session;
}

/* Both sides are there: forwarding starts */
void
rndz_relay_session_start (RndzRelaySession *session)
{
  RndzRelay *relay = session->relay;
  gint64 now = g_get_monotonic_time ();

  session->ready = TRUE;
  session->last_activity = now;
  /* Started: a new request for the pair is another session */
  g_hash_table_remove (relay->pending_pairs, session->pair_key);
  g_clear_pointer (&session->pair_key, g_free);
  for (guint i = 0; i < 2; i++)
    bucket_fill (relay, &session->sides[i].bucket, now);
  rndz_relay_schedule (relay, session_deadline (session));
  g_debug ("Relay: “%s” and “%s” are both there", session->ids[0], session->ids[1]);
}

/* Timer: expiry and the end of pauses. Sessions are few (bounded by
 * max-sessions): a scan of them all is cheaper than keeping them in
 * order by deadline. */

static gint64
session_tick (RndzRelaySession *session,
              gint64            now)
{
  RndzRelay *relay = session->relay;
  gint64 deadline = session_deadline (session);
  gint64 next;

  if (deadline <= now)
    {
      if (session->created + relay->max_lifetime_ms * (gint64) 1000 <= now)
        rndz_relay_session_fail (session, "session at its maximum lifetime");
      else
        rndz_relay_session_fail (session,
                                 session->ready ? "session idle" : "session not joined in time");
      return G_MAXINT64;
    }

  next = deadline;
  if (session->transport == RNDZ_TRANSPORT_TCP && session->ready)
    for (guint i = 0; i < 2; i++)
      {
        RndzRelaySide *side = &session->sides[i];

        if (side->conn == NULL || !side->paused)
          continue;
        if (side->resume_at <= now)
          {
            side->paused = FALSE;
            relay->tcp_hooks->resume_conn (side->conn);
          }
        else
          next = MIN (next, side->resume_at);
      }

  return next;
}

static gboolean
relay_expire (gpointer user_data)
{
  RndzRelay *relay = user_data;
  gint64 now = g_get_monotonic_time ();
  gint64 next = G_MAXINT64;
  GList *l, *l_next;
  gint64 hellos;

  for (l = relay->sessions.head; l != NULL; l = l_next)
    {
      gint64 deadline;

      l_next = l->next;
      /* Not inside MIN (), which evaluates it twice */
      deadline = session_tick (l->data, now);
      next = MIN (next, deadline);
    }

  /* The TCP connections that have not said hello */
  hellos = relay->tcp_hooks->expire (relay, now);
  next = MIN (next, hellos);

  if (next != G_MAXINT64)
    rndz_relay_schedule (relay, next);
  return G_SOURCE_CONTINUE;
}

/* The relay */

void
rndz_relay_core_init (RndzRelay *relay)
{
  relay->by_token = g_hash_table_new (g_str_hash, g_str_equal);
  relay->by_request = g_hash_table_new_full (request_key_hash, request_key_equal, g_free, NULL);
  relay->by_endpoint = g_hash_table_new ((GHashFunc) rndz_addr_hash, (GEqualFunc) rndz_addr_equal);
  relay->per_address = g_hash_table_new_full ((GHashFunc) rndz_addr_hash, (GEqualFunc) rndz_addr_equal,
                                              g_free, NULL);
  relay->per_network = g_hash_table_new_full ((GHashFunc) rndz_addr_hash, (GEqualFunc) rndz_addr_equal,
                                              g_free, NULL);
  relay->pending_pairs = g_hash_table_new (g_str_hash, g_str_equal);
  relay->max_sessions = 1;
  relay->max_per_address = G_MAXUINT;
  relay->max_per_network = G_MAXUINT;
  relay->max_lifetime_ms = G_MAXUINT;
  relay->join_timeout_ms = RNDZ_RELAY_JOIN_TIMEOUT_MS;
  relay->timer = rndz_deadline_source_new (relay->context, "[rndz] relay timer", relay_expire, relay);
}

/* Stops the timer and closes every session */
void
rndz_relay_core_close_all (RndzRelay *relay)
{
  rndz_source_clear (&relay->timer);
  while (relay->sessions.head != NULL)
    session_free (relay->sessions.head->data);
}

void
rndz_relay_core_clear (RndzRelay *relay)
{
  g_clear_pointer (&relay->by_token, g_hash_table_unref);
  g_clear_pointer (&relay->by_request, g_hash_table_unref);
  g_clear_pointer (&relay->by_endpoint, g_hash_table_unref);
  g_clear_pointer (&relay->per_address, g_hash_table_unref);
  g_clear_pointer (&relay->per_network, g_hash_table_unref);
  g_clear_pointer (&relay->pending_pairs, g_hash_table_unref);
}

/*
 * rndz_relay_configure:
 * @rate: bytes per second per session and direction, 0 for no limit
 * @idle_timeout_ms: how long a joined session may go without traffic
 *
 * Applies the limits at once, to the sessions already open as well; a
 * lower @max_sessions closes none, it only refuses new ones.
 */
void
rndz_relay_configure (RndzRelay *relay,
                      guint      max_sessions,
                      guint      rate,
                      guint      idle_timeout_ms)
{
  relay->max_sessions = max_sessions;
  relay->rate = rate;
  relay->idle_timeout_ms = idle_timeout_ms;

  /* Deadlines and pauses depend on these: find the next one anew */
  rndz_relay_schedule (relay, 0);
}

/*
 * rndz_relay_set_caps:
 * @per_address: sessions a requester address (IPv6: its /64) may hold
 * @per_network: sessions requesters of one IPv4 /16 or IPv6 /48 may hold
 * @max_lifetime_ms: how long a session may last, traffic or not
 *
 * Like rndz_relay_configure(), applies at once: lower caps close no
 * session, a shorter lifetime ends the sessions older than it.
 */
void
rndz_relay_set_caps (RndzRelay *relay,
                     guint      per_address,
                     guint      per_network,
                     guint      max_lifetime_ms)
{
  relay->max_per_address = per_address;
  relay->max_per_network = per_network;
  relay->max_lifetime_ms = max_lifetime_ms;
  rndz_relay_schedule (relay, 0);
}

/* For tests: the join timeout, RNDZ_RELAY_JOIN_TIMEOUT_MS otherwise */
void
rndz_relay_set_join_timeout (RndzRelay *relay,
                             guint      ms)
{
  relay->join_timeout_ms = ms;
  rndz_relay_schedule (relay, 0);
}

guint
rndz_relay_get_session_count (RndzRelay *relay)
{
  return relay->sessions.length;
}
