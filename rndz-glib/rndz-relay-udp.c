/* rndz-relay-udp.c: the relay over UDP
 *
 * SPDX-License-Identifier: MIT
 *
 * The first address that says hello for a side, from the host the server
 * knows for that side, is that side's endpoint for good (no rebinding); the relay answers `wait` until the other side
 * is there, then `ready`, and from then on forwards every datagram of one
 * endpoint, unchanged, to the other, within the session's rate. Datagrams
 * are read into one buffer of the relay and sent on from there.
 */

#include "config.h"

#include <errno.h>
#include <sys/socket.h>

#include "rndz-relay-session-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"

/* Datagrams read per wake-up, so that TCP gets its turn */
#define UDP_BATCH 64

/* Sends a wait or ready, never larger than the hello it answers */
static void
relay_send_udp_reply (RndzRelay       *relay,
                      const RndzAddr  *to,
                      RndzMessageType  type,
                      guint32          tid,
                      gsize            limit)
{
  char buf[64];
  struct sockaddr_storage ss;
  gsize len, sslen;
  RndzMessage reply;

  rndz_message_init (&reply, type, tid);
  len = rndz_message_encode (&reply, buf, sizeof buf);
  sslen = rndz_addr_to_sockaddr (to, relay->family, &ss);
  if (len == 0 || len > limit || sslen == 0)
    return;

  if (sendto (g_socket_get_fd (relay->udp_socket), buf, len, MSG_DONTWAIT,
              (struct sockaddr *) &ss, sslen) < 0)
    g_debug ("Relay: UDP send failed: %s", g_strerror (errno));
}

/* Whether a datagram may be a hello, without parsing it: forwarded
 * traffic is not run through the JSON parser. */
static gboolean
maybe_hello (const char *data,
             gsize       len)
{
  return len > 0 && len <= RNDZ_MESSAGE_DEFAULT_MAX_SIZE && data[0] == '{' &&
         /* JSON holds no NUL, so stopping at one loses nothing */
         g_strstr_len (data, len, "\"hello\"") != NULL;
}

static gboolean
decode_hello (const char  *data,
              gsize        len,
              RndzMessage *msg)
{
  return maybe_hello (data, len) &&
         rndz_message_decode (msg, data, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) &&
         msg->type == RNDZ_MESSAGE_HELLO;
}

/* A hello from an address that is no session's endpoint yet */
static void
udp_join (RndzRelay      *relay,
          const RndzAddr *from,
          const char     *data,
          gsize           len)
{
  RndzRelaySession *session;
  RndzMessage msg;
  RndzRelaySide *side, *other;
  int idx;

  if (!decode_hello (data, len, &msg) ||
      (session = rndz_relay_hello_session (relay, &msg, RNDZ_TRANSPORT_UDP, from, &idx)) == NULL)
    {
      relay->stats->relay_dropped++;
      return;
    }

  side = &session->sides[idx];
  other = &session->sides[1 - idx];
  if (side->bound)
    {
      /* First come, for good */
      relay->stats->relay_dropped++;
      return;
    }

  side->bound = TRUE;
  side->addr = *from;
  side->hello_tid = msg.tid;
  g_hash_table_insert (relay->by_endpoint, &side->addr, session);

  if (!other->bound)
    {
      relay_send_udp_reply (relay, from, RNDZ_MESSAGE_WAIT, msg.tid, len);
      return;
    }

  rndz_relay_session_start (session);
  relay_send_udp_reply (relay, from, RNDZ_MESSAGE_READY, msg.tid, len);
  /* The other side need not wait for its next hello; its last one was
   * no smaller than this reply */
  relay_send_udp_reply (relay, &other->addr, RNDZ_MESSAGE_READY, other->hello_tid, G_MAXSIZE);
}

static void
udp_forward (RndzRelay        *relay,
             RndzRelaySession *session,
             int               idx,
             const char       *data,
             gsize             len)
{
  RndzRelaySide *side = &session->sides[idx];
  RndzRelaySide *other = &session->sides[1 - idx];
  struct sockaddr_storage ss;
  gsize sslen;
  gint64 now;

  /* Still alone: nobody to forward to */
  if (!session->ready)
    {
      relay->stats->relay_dropped++;
      return;
    }

  now = g_get_monotonic_time ();
  if (rndz_relay_bucket_refill (relay, &side->bucket, now) < len)
    {
      relay->stats->relay_dropped++;
      return;
    }
  rndz_relay_bucket_take (relay, &side->bucket, len);
  session->last_activity = now;

  sslen = rndz_addr_to_sockaddr (&other->addr, relay->family, &ss);
  if (sendto (g_socket_get_fd (relay->udp_socket), data, len, MSG_DONTWAIT,
              (struct sockaddr *) &ss, sslen) < 0)
    {
      relay->stats->relay_dropped++;
      return;
    }
  relay->stats->relay_bytes += len;
}

static void
udp_receive (RndzRelay      *relay,
             const RndzAddr *from,
             const char     *data,
             gsize           len)
{
  RndzRelaySession *session = g_hash_table_lookup (relay->by_endpoint, from);
  RndzMessage msg;
  int idx;

  if (session == NULL)
    {
      udp_join (relay, from, data, len);
      return;
    }

  idx = rndz_addr_equal (&session->sides[0].addr, from) ? 0 : 1;

  /* A hello again: the reply to the last one was lost. Whichever id it
   * names, it is the session's control message, not the peers' data:
   * answered, never forwarded (the sender is bound already, to its own
   * side, whatever the id says) */
  if (decode_hello (data, len, &msg) &&
      g_str_equal (msg.token, session->token) &&
      (g_str_equal (msg.id, session->ids[0]) || g_str_equal (msg.id, session->ids[1])))
    {
      session->sides[idx].hello_tid = msg.tid;
      relay_send_udp_reply (relay, from, session->ready ? RNDZ_MESSAGE_READY : RNDZ_MESSAGE_WAIT,
                            msg.tid, len);
      return;
    }

  udp_forward (relay, session, idx, data, len);
}

static gboolean
relay_udp_read_cb (GSocket      *socket,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  RndzRelay *relay = user_data;
  int fd = g_socket_get_fd (socket);

  for (guint i = 0; i < UDP_BATCH; i++)
    {
      struct sockaddr_storage ss;
      socklen_t sslen = sizeof ss;
      RndzAddr from;
      gssize n;

      n = recvfrom (fd, relay->datagram, sizeof relay->datagram, MSG_DONTWAIT,
                    (struct sockaddr *) &ss, &sslen);
      if (n < 0)
        {
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
          /* ICMP errors for earlier sends surface here; keep reading */
          continue;
        }

      if (rndz_addr_from_sockaddr (&from, (struct sockaddr *) &ss, sslen) && from.port != 0)
        udp_receive (relay, &from, relay->datagram, n);
    }

  return G_SOURCE_CONTINUE;
}

void
rndz_relay_udp_start (RndzRelay *relay)
{
  relay->family = g_socket_get_family (relay->udp_socket);
  relay->udp_source = rndz_socket_source_add (relay->udp_socket, relay->context,
                                              relay_udp_read_cb, relay, "[rndz] relay UDP");
}

void
rndz_relay_udp_stop (RndzRelay *relay)
{
  rndz_source_clear (&relay->udp_source);
}
