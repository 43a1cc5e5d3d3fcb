/* rndz-listener-requests.c: what a listener does for each requester
 *
 * SPDX-License-Identifier: MIT
 *
 * Admission (the application's say, fingerprints), the recent requests,
 * TCP punches and the requester's use frame, the relay. A UDP requester's
 * check sockets and the hard-NAT phase are in rndz-listener-udp.c.
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include "rndz-listener-internal.h"
#include "rndz-connect-private.h"
#include "rndz-connect-attempt-private.h"
#include "rndz-frame-reader-private.h"
#include "rndz-relay-join-private.h"
#include "rndz-source-private.h"

/* A TCP connect towards a peer that asked for us */
typedef struct
{
  RndzListener *listener;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  RndzAddr addr;
  RndzPath path;
  gint64 deadline;
  GSocket *socket;
  RndzConnectAttempt *attempt;
  GSource *retry;
  GSource *redial;
  GSource *expire;
  guint delay_ms;
} Punch;

/* TCP: a connection waiting for its "use" frame, or a relay being joined */
typedef struct
{
  RndzListener *listener;       /* a reference */
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  GSocket *socket;
  RndzPath path;
} Pending;

static void punch_try (Punch *punch);

/* Asks the application whether a requester may come in. Its handler
 * may even stop us: callers hold a reference and check listener->stopped */
static gboolean
listener_ask (RndzListener      *listener,
              const RndzMessage *fsync)
{
  guint signal_id = g_signal_lookup ("peer-request", G_OBJECT_TYPE (listener));
  g_autoptr(GSocketAddress) address = NULL;
  const char *fp = fsync->fp[0] != '\0' ? fsync->fp : NULL;
  gboolean allowed = TRUE;

  if (!g_signal_has_handler_pending (listener, signal_id, 0, FALSE))
    return TRUE;

  address = rndz_addr_to_socket_address (&fsync->addr, G_SOCKET_FAMILY_INVALID);
  g_signal_emit_by_name (listener, "peer-request", fsync->id, address, fp, &allowed);
  return allowed;
}

/* With an identity, we take secure requesters only, and with pins only
 * those we know */
static gboolean
listener_admits_fingerprint (RndzListener      *listener,
                             const RndzMessage *fsync)
{
  GStrv allowed = listener->peer->allowed_fingerprints;

  if (listener->peer->fingerprint == NULL)
    return TRUE;
  if (fsync->fp[0] == '\0')
    {
      g_debug ("Ignoring “%s”: it asks for a plain connection, and we have an identity",
               fsync->id);
      return FALSE;
    }
  if (allowed != NULL && allowed[0] != NULL && !g_strv_contains ((const char * const *) allowed, fsync->fp))
    {
      g_debug ("Ignoring “%s”: its fingerprint %s is not among the allowed ones",
               fsync->id, fsync->fp);
      return FALSE;
    }
  return TRUE;
}

/*
 * rndz_listener_get_peer_fingerprint:
 *
 * The fingerprint of the latest request of @peer_id that came in, or
 * %NULL if it asked for a plain connection (or is not known any more).
 */
const char *
rndz_listener_get_peer_fingerprint (RndzListener *listener,
                                    const char   *peer_id)
{
  for (guint n = 1; n <= RECENT_REQUESTS; n++)
    {
      guint i = (listener->recent_next + RECENT_REQUESTS - n) % RECENT_REQUESTS;

      if (!listener->recent[i].refused && g_str_equal (listener->recent[i].peer_id, peer_id))
        return listener->recent[i].fp[0] != '\0' ? listener->recent[i].fp : NULL;
    }
  return NULL;
}

/* Looks up a forwarded request among the recent ones; with @add, makes
 * room for it if it is new. Returns its index, or -1. */
int
rndz_listener_find_request (RndzListener   *listener,
                            const RndzAddr *addr,
                            guint32         tid,
                            gboolean        add)
{
  int i;

  for (i = 0; i < RECENT_REQUESTS; i++)
    if (listener->recent[i].tid == tid && rndz_addr_equal (&listener->recent[i].addr, addr))
      return i;

  if (!add)
    return -1;

  i = listener->recent_next;
  listener->recent[i].addr = *addr;
  listener->recent[i].tid = tid;
  listener->recent[i].refused = FALSE;
  listener->recent[i].reached = FALSE;
  listener->recent[i].peer_id[0] = '\0';
  listener->recent[i].fp[0] = '\0';
  listener->recent_next = (listener->recent_next + 1) % RECENT_REQUESTS;
  return i;
}

/* TCP: the requester names the connection it keeps with a "use" frame.
 * Exactly that frame is read: the bytes after it are the application's. */
static void
pending_free (Pending *pending)
{
  if (pending->socket != NULL)
    g_socket_close (pending->socket, NULL);
  g_clear_object (&pending->socket);
  g_object_unref (pending->listener);
  g_free (pending);
}

static gboolean
remove_punch_of (gpointer key,
                 gpointer value,
                 gpointer user_data)
{
  Punch *punch = value;

  return g_str_equal (punch->peer_id, user_data);
}

static void
use_read_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Pending *pending = user_data;
  RndzListener *listener = pending->listener;
  g_autoptr(GError) error = NULL;
  RndzMessage msg;

  if (!rndz_frame_read_finish (result, &msg, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("Closing a connection of “%s”: %s", pending->peer_id, error->message);
    }
  else if (listener->stopped)
    ;
  else if (msg.type != RNDZ_MESSAGE_USE || !g_str_equal (msg.id, pending->peer_id) ||
           !g_str_equal (msg.target, listener->peer->id))
    g_debug ("Closing a connection of “%s”: it did not choose it", pending->peer_id);
  else
    {
      g_autoptr(GSocket) socket = g_steal_pointer (&pending->socket);

      /* The requester keeps this one: the others towards it are moot */
      g_hash_table_foreach_remove (listener->punches, remove_punch_of, pending->peer_id);
      rndz_connect_attempt_hand_over (socket, listener->context, RNDZ_CONNECT_RTO_CAP_KEPT_MS);
      rndz_listener_deliver (listener, pending->peer_id,
                             rndz_listener_get_peer_fingerprint (listener, pending->peer_id),
                             socket, pending->path);
    }

  pending_free (pending);
}

static void
listener_wait_for_use (RndzListener *listener,
                       const char   *peer_id,
                       GSocket      *socket,
                       RndzPath      path)
{
  Pending *pending = g_new0 (Pending, 1);

  pending->listener = listener_ref (listener);
  g_strlcpy (pending->peer_id, peer_id, sizeof pending->peer_id);
  pending->socket = g_object_ref (socket);
  pending->path = path;
  rndz_frame_read_async (socket, listener->context, RNDZ_MESSAGE_DEFAULT_MAX_SIZE,
                         USE_TIMEOUT_MS, listener->cancellable, use_read_cb, pending);
}

static void
punch_free (Punch *punch)
{
  g_clear_pointer (&punch->attempt, rndz_connect_attempt_free);
  rndz_source_clear (&punch->retry);
  rndz_source_clear (&punch->redial);
  rndz_source_clear (&punch->expire);
  if (punch->socket != NULL)
    g_socket_close (punch->socket, NULL);
  g_clear_object (&punch->socket);
  g_free (punch);
}

static gboolean
punch_retry_cb (gpointer user_data)
{
  Punch *punch = user_data;

  g_clear_pointer (&punch->retry, g_source_unref);
  punch_try (punch);
  return G_SOURCE_REMOVE;
}

static void
punch_connected_cb (GSocket      *socket,
                    const GError *error,
                    gpointer      user_data)
{
  Punch *punch = user_data;
  RndzListener *listener = punch->listener;

  g_clear_pointer (&punch->attempt, rndz_connect_attempt_free);

  if (error == NULL)
    {
      g_autoptr(GSocket) connected = g_steal_pointer (&punch->socket);
      char peer_id[RNDZ_ID_MAX_LEN + 1];
      RndzPath path = punch->path;

      g_strlcpy (peer_id, punch->peer_id, sizeof peer_id);
      g_hash_table_remove (listener->punches, &punch->addr);
      listener_wait_for_use (listener, peer_id, connected, path);
      return;
    }

  /* The requester's SYN has not left its NAT yet, or it already reached
   * our listening socket: try again until the deadline. */
  g_socket_close (punch->socket, NULL);
  g_clear_object (&punch->socket);
  if (g_get_monotonic_time () + punch->delay_ms * 1000 > punch->deadline)
    {
      g_debug ("Giving up connecting to “%s”: %s", punch->peer_id, error->message);
      g_hash_table_remove (listener->punches, &punch->addr);
      return;
    }

  punch->retry = rndz_timeout_add (listener->context, punch->delay_ms, punch_retry_cb, punch);
  punch->delay_ms = MIN (punch->delay_ms * 2, RNDZ_RETRY_MAX_MS);
}

static void
punch_try (Punch *punch)
{
  RndzListener *listener = punch->listener;
  g_autoptr(GError) error = NULL;

  punch->socket = rndz_peer_context_bind (listener->peer, listener->family,
                                    G_SOCKET_TYPE_STREAM, listener->port, &error);
  if (punch->socket == NULL)
    {
      g_debug ("Cannot bind a socket towards “%s”: %s", punch->peer_id, error->message);
      g_hash_table_remove (listener->punches, &punch->addr);
      return;
    }

  punch->attempt = rndz_connect_attempt_new (punch->socket, &punch->addr, listener->context,
                                             punch_connected_cb, punch);
}

/* A message of ours to the requester @peer_id */
void
rndz_listener_init_message (RndzListener    *listener,
                            RndzMessageType  type,
                            guint32          tid,
                            const char      *peer_id,
                            RndzMessage     *msg)
{
  rndz_message_init (msg, type, tid);
  g_strlcpy (msg->id, listener->peer->id, sizeof msg->id);
  g_strlcpy (msg->target, peer_id, sizeof msg->target);
}

/* Our answer to a forwarded request: to the server, and as the punch */
void
rndz_listener_init_rsync (RndzListener      *listener,
            const RndzMessage *fsync,
            RndzMessage       *rsync)
{
  rndz_listener_init_message (listener, RNDZ_MESSAGE_RSYNC, fsync->tid, fsync->id, rsync);
  /* A secure requester learns who we are (a plain one does not care) */
  if (listener->peer->fingerprint != NULL && fsync->fp[0] != '\0')
    g_strlcpy (rsync->fp, listener->peer->fingerprint, sizeof rsync->fp);
}

/* Our punch's first SYN always reaches the requester's NAT before that
 * is open: the requester learns where we are only from the redirect that
 * our answer brings, and only then sends its SYN (and its spares,
 * rndz-connect.c). The kernel sends ours again a second later, just
 * before the requester's second SYN, and so on: through loss, when the
 * requester's first SYN is lost, each second has one chance. So a punch
 * still unanswered after PUNCH_TCP_REDIAL_MS goes again once, from a new
 * socket: by then the requester's spares have opened its NAT, and its
 * SYN-SENT socket answers ours; our retransmissions then fall between
 * the requester's, two chances a second.
 *
 * It is safe only for a socket that has had no answer at all (SYN-SENT):
 * nothing of it reached the requester, so the new sequence number meets
 * no half-open connection there. A socket that got the requester's SYN
 * answers it itself. The SYNs of the new socket come after the old
 * one's in our NAT's connection tracking, which takes them over (Linux
 * conntrack follows a SYN with a later sequence number); a connection
 * made by our listening socket instead, whose answer has a sequence
 * number the NAT never saw in a SYN, is out of its window there (seen
 * through Linux conntrack: the NAT stops translating it). */
static gboolean
punch_redial_cb (gpointer user_data)
{
  Punch *punch = user_data;
  char addr[RNDZ_ADDR_STRLEN];

  g_clear_pointer (&punch->redial, g_source_unref);
  if (punch->attempt == NULL || !rndz_connect_attempt_unanswered (punch->attempt))
    return G_SOURCE_REMOVE;

  g_debug ("Connecting to “%s” at %s again: no answer yet", punch->peer_id,
           rndz_addr_format (&punch->addr, addr));
  g_clear_pointer (&punch->attempt, rndz_connect_attempt_free);
  g_socket_close (punch->socket, NULL);
  g_clear_object (&punch->socket);
  punch_try (punch);
  return G_SOURCE_REMOVE;
}

/* A SYN that the other side's firewall drops is retried by the kernel for
 * minutes: give up on our own deadline instead. */
static gboolean
punch_expire_cb (gpointer user_data)
{
  Punch *punch = user_data;

  g_debug ("Giving up connecting to “%s”: timed out", punch->peer_id);
  g_clear_pointer (&punch->expire, g_source_unref);
  g_hash_table_remove (punch->listener->punches, &punch->addr);
  return G_SOURCE_REMOVE;
}

/* Our first SYN towards a requester opens our NAT for its SYNs; through
 * loss it is lost as often as any packet, and the kernel sends it again
 * only after 1 s. So spare SYNs go first, each from a socket closed at
 * once: any of them opens the mapping (one in 125 lost with two spares
 * at 20 % loss, not one in 5). It is safe only now, before our answer
 * goes to the server: the requester learns where we are from the
 * redirect that answer brings, so its NAT has no mapping for us yet and
 * drops every one of them. Later, one could reach the requester's
 * socket, whose SYN-ACK would then meet another sequence number here:
 * a reset, which closes the mappings on the way. */
static void
punch_send_spares (RndzListener   *listener,
                   const RndzAddr *addr)
{
  rndz_connect_attempt_spare_syns (listener->peer, listener->family, listener->port, addr,
                                   PUNCH_SPARE_SYNS, 0);
}

static void
punch_tcp (RndzListener      *listener,
           const RndzMessage *fsync,
           const RndzAddr    *addr,
           RndzPath           path)
{
  gint64 timeout = (gint64) listener->peer->timeout_ms * 1000;
  Punch *punch;

  /* Already connecting towards that address */
  if (g_hash_table_contains (listener->punches, addr))
    return;

  /* Until our own timeout: a requester without a relay connects until
   * its timeout, not its direct timeout (rndz-connect.c, "Without a
   * relay"), and we know neither its timeout nor whether it has one */

  punch = g_new0 (Punch, 1);

  punch->listener = listener;
  g_strlcpy (punch->peer_id, fsync->id, sizeof punch->peer_id);
  punch->addr = *addr;
  punch->path = path;
  punch->deadline = g_get_monotonic_time () + timeout;
  punch->delay_ms = PUNCH_RETRY_INITIAL_MS;
  punch->expire = rndz_timeout_add (listener->context, timeout / 1000, punch_expire_cb, punch);
  g_hash_table_insert (listener->punches, &punch->addr, punch);
  punch->redial = rndz_timeout_add (listener->context, PUNCH_TCP_REDIAL_MS, punch_redial_cb, punch);
  punch_send_spares (listener, addr);
  punch_try (punch);
}

/*
 * rndz_listener_take_request:
 * @port_kept: our NAT kept our port towards the server that forwarded it
 *
 * A requester asks for us (a forwarded request, or a copy of it): the
 * application decides, then the listener punches towards every address
 * of the requester and watches for the hard-NAT phase.
 *
 * Returns: %TRUE if the server should be answered with an rsync
 */
gboolean
rndz_listener_take_request (RndzListener      *listener,
                            const RndzMessage *fsync,
                            gboolean           port_kept)
{
  int request;

  if (listener->peer->require_auth && !fsync->auth)
    {
      g_debug ("Ignoring “%s”: the server did not authenticate it", fsync->id);
      return FALSE;
    }

  request = rndz_listener_find_request (listener, &fsync->addr, fsync->tid, FALSE);
  if (request < 0)
    {
      char addr[RNDZ_ADDR_STRLEN];
      gboolean allowed;

      g_debug ("“%s” at %s asks for us", fsync->id, rndz_addr_format (&fsync->addr, addr));
      request = rndz_listener_find_request (listener, &fsync->addr, fsync->tid, TRUE);

      /* The application decides first; its handler may even stop us */
      allowed = listener_admits_fingerprint (listener, fsync) && listener_ask (listener, fsync);
      if (listener->stopped)
        return FALSE;
      listener->recent[request].refused = !allowed;
      g_strlcpy (listener->recent[request].peer_id, fsync->id,
                 sizeof listener->recent[request].peer_id);
      memcpy (listener->recent[request].fp, fsync->fp, sizeof listener->recent[request].fp);

      /* Towards every address of the requester */
      for (guint i = 0; allowed && i <= fsync->n_cands; i++)
        {
          const RndzAddr *to = i == 0 ? &fsync->addr : &fsync->cands[i - 1];
          RndzPath path = i == 0 ? RNDZ_PATH_DIRECT : RNDZ_PATH_LOCAL;

          if (to->family == 6 && listener->family != G_SOCKET_FAMILY_IPV6)
            continue;
          if (listener->transport == RNDZ_TRANSPORT_UDP)
            rndz_listener_punch_udp (listener, fsync, to, path);
          else
            punch_tcp (listener, fsync, to, path);
        }
      if (allowed && listener->transport == RNDZ_TRANSPORT_UDP && rndz_connect_try_direct)
        rndz_listener_hard_watch (listener, fsync, port_kept);
    }

  /* A refused request gets no answer: the requester learns nothing more
   * than from a peer that went away */
  if (listener->recent[request].refused)
    {
      g_debug ("The application refused “%s”", fsync->id);
      return FALSE;
    }

  /* Every copy is answered: the server resends when ours was lost */
  return TRUE;
}

static void
relay_joined_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Pending *pending = user_data;
  RndzListener *listener = pending->listener;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = rndz_relay_join_finish (result, &error);
  if (socket == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        g_debug ("Could not join the relay for “%s”: %s", pending->peer_id, error->message);
    }
  else if (listener->stopped)
    g_socket_close (socket, NULL);
  else if (listener->transport == RNDZ_TRANSPORT_TCP)
    rndz_listener_deliver (listener, pending->peer_id,
                           rndz_listener_get_peer_fingerprint (listener, pending->peer_id),
                           socket, RNDZ_PATH_RELAYED);
  else
    {
      g_debug ("“%s” comes through the relay", pending->peer_id);
      g_signal_emit_by_name (listener, "peer-socket", pending->peer_id, socket);
    }

  pending_free (pending);
}

/* The requester found no direct path, and the server relays the two of
 * us: join the relay, if the requester is one we let in. */
void
rndz_listener_join_relay (RndzListener      *listener,
                          const RndzAddr    *server,
                          const RndzMessage *session)
{
  gboolean allowed = FALSE;
  RndzAddr relay = *server;
  Pending *pending;

  if (!listener->peer->relay)
    return;

  if (listener->peer->require_auth && !session->auth)
    {
      g_debug ("Ignoring a relay for “%s”: the server did not authenticate it", session->id);
      return;
    }

  for (guint i = 0; i < RECENT_REQUESTS; i++)
    allowed |= g_str_equal (listener->recent[i].peer_id, session->id) &&
               !listener->recent[i].refused;
  if (!allowed)
    {
      g_debug ("Ignoring a relay for “%s”: no request of it", session->id);
      return;
    }

  for (guint i = 0; i < RECENT_SESSIONS; i++)
    if (g_str_equal (listener->sessions[i], session->token))
      return;
  g_strlcpy (listener->sessions[listener->sessions_next], session->token,
             sizeof listener->sessions[0]);
  listener->sessions_next = (listener->sessions_next + 1) % RECENT_SESSIONS;

  g_debug ("Joining the relay for “%s”", session->id);
  rndz_listener_hard_forget (listener, session->id);
  pending = g_new0 (Pending, 1);
  pending->listener = listener_ref (listener);
  g_strlcpy (pending->peer_id, session->id, sizeof pending->peer_id);
  relay.port = session->port;
  /* A server of a cluster may name another node's relay */
  if (session->addr.family == relay.family)
    relay = session->addr;
  rndz_relay_join_async (listener->transport, listener->family, &relay,
                         listener->peer->id, session->token,
                         listener->peer->timeout_ms,
                         listener->context, listener->cancellable, relay_joined_cb, pending);
}

/* With a port mapped by the router, a requester behind a NAT that gives
 * each destination a port of its own comes in from a port we never saw:
 * its host must be one we punched towards, and its use frame name it */
static Punch *
find_punch_of_host (RndzListener   *listener,
                    const RndzAddr *addr)
{
  GHashTableIter iter;
  gpointer value;

  if (listener->mapped.family == 0)
    return NULL;

  g_hash_table_iter_init (&iter, listener->punches);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (rndz_addr_same_host (&((Punch *) value)->addr, addr))
      return value;
  return NULL;
}

/* A connection to our listening socket: only requesters we punched
 * towards get in */
void
rndz_listener_accepted (GSocket  *peer,
                        gpointer  user_data)
{
  RndzListener *listener = user_data;
  g_autoptr(GSocketAddress) remote = NULL;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  Punch *punch = NULL;
  RndzAddr addr;
  RndzPath path;

  if (listener->stopped)
    return;

  remote = g_socket_get_remote_address (peer, NULL);
  if (remote != NULL && rndz_addr_from_socket_address (&addr, remote))
    punch = g_hash_table_lookup (listener->punches, &addr);
  if (punch != NULL)
    {
      g_strlcpy (peer_id, punch->peer_id, sizeof peer_id);
      path = punch->path;
      g_hash_table_remove (listener->punches, &addr);
    }
  else if (remote != NULL && (punch = find_punch_of_host (listener, &addr)) != NULL)
    {
      g_strlcpy (peer_id, punch->peer_id, sizeof peer_id);
      path = RNDZ_PATH_DIRECT;
    }
  else
    {
      g_debug ("Closing a connection nobody asked the server for");
      g_socket_close (peer, NULL);
      return;
    }

  /* As if our punch had connected: the same pace for its first data */
  rndz_connect_attempt_limit_rto (peer);
  listener_wait_for_use (listener, peer_id, peer, path);
}

/* Setting up and tearing down */

void
rndz_listener_requests_init (RndzListener *listener)
{
  listener->punches = g_hash_table_new_full ((GHashFunc) rndz_addr_hash,
                                             (GEqualFunc) rndz_addr_equal,
                                             NULL, (GDestroyNotify) punch_free);
  rndz_listener_udp_init (listener);
}

/* Drops every request in progress; accepts still waiting fail */
void
rndz_listener_requests_clear (RndzListener *listener)
{
  g_hash_table_remove_all (listener->punches);
  rndz_listener_udp_clear (listener);
  rndz_listener_accept_clear (listener);
}

void
rndz_listener_requests_finalize (RndzListener *listener)
{
  g_hash_table_unref (listener->punches);
  rndz_listener_udp_finalize (listener);
}
