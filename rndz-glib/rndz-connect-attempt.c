/* rndz-connect-attempt.c: a non-blocking TCP connect
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

#include "rndz-connect-attempt-private.h"
#include "rndz-socket-private.h"
#include "rndz-source-private.h"
#include "rndz-i18n-private.h"

/* While punching: the SYN (and a simultaneous open's SYN-ACK) again every
 * second, not after 1 s then 2 s more */
#define PUNCH_RTO_MAX_MS 1000
#define SAVED_RTO_MAX_KEY "rndz-saved-rto-max"

struct _RndzConnectAttempt
{
  GSocket *socket;
  GSource *source;
  GError *error;         /* failed at once; reported from an idle */
  RndzConnectFunc func;
  gpointer user_data;
};

/* Through loss, a punch's SYN is lost as often as any packet, and the
 * kernel sends it again after 1 s, then 3 s: with a direct timeout of
 * 3 s, two chances. Where the kernel lets a socket cap its RTO at 1 s
 * (Linux 6.15), three, and the first data of the connection (the use
 * frame) goes again within 1 s too, not after the 3 s RTO that follows a
 * lost SYN. The cap is lifted by rndz_connect_attempt_hand_over().
 * Elsewhere the option fails: the kernel's own pace. */
void
rndz_connect_attempt_limit_rto (GSocket *socket)
{
#ifdef __linux__
  int saved;

  if (g_object_get_data (G_OBJECT (socket), SAVED_RTO_MAX_KEY) != NULL ||
      !g_socket_get_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, &saved, NULL) ||
      saved <= PUNCH_RTO_MAX_MS ||
      !g_socket_set_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, PUNCH_RTO_MAX_MS, NULL))
    return;
  g_object_set_data (G_OBJECT (socket), SAVED_RTO_MAX_KEY, GINT_TO_POINTER (saved));
#endif
}

typedef struct
{
  GWeakRef socket;
  int saved;
} RtoRestore;

static void
rto_restore_free (RtoRestore *restore)
{
  g_weak_ref_clear (&restore->socket);
  g_free (restore);
}

static gboolean
rto_restore_cb (gpointer user_data)
{
  RtoRestore *restore = user_data;
  g_autoptr(GSocket) socket = g_weak_ref_get (&restore->socket);

  if (socket != NULL && !g_socket_is_closed (socket))
    g_socket_set_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, restore->saved, NULL);
  return G_SOURCE_REMOVE;
}

/*
 * rndz_connect_attempt_hand_over:
 * @context: where the cap is lifted after @after_ms
 * @after_ms: 0 to lift it at once
 *
 * The connection goes to the application: its RTO may grow again as far
 * as the kernel lets it (a cap of 1 s would fail a connection within
 * seconds of an outage), after @after_ms. Between peers, the first data
 * are often the ones that matter most (the use frame, the application's
 * first message), and their RTO after a lost SYN is 3 s, then 6 s: the
 * cap stays a while for them. The socket is not kept alive for it.
 */
void
rndz_connect_attempt_hand_over (GSocket      *socket,
                                GMainContext *context,
                                guint         after_ms)
{
#ifdef __linux__
  int saved = GPOINTER_TO_INT (g_object_steal_data (G_OBJECT (socket), SAVED_RTO_MAX_KEY));
  RtoRestore *restore;
  GSource *source;

  if (saved <= 0)
    return;
  if (after_ms == 0)
    {
      g_socket_set_option (socket, IPPROTO_TCP, TCP_RTO_MAX_MS, saved, NULL);
      return;
    }

  restore = g_new0 (RtoRestore, 1);
  g_weak_ref_init (&restore->socket, socket);
  restore->saved = saved;
  source = g_timeout_source_new (after_ms);
  g_source_set_callback (source, rto_restore_cb, restore, (GDestroyNotify) rto_restore_free);
  g_source_set_static_name (source, "[rndz] RTO cap");
  g_source_attach (source, context);
  g_source_unref (source);
#endif
}

static gboolean
connect_ready_cb (GSocket      *socket,
                  GIOCondition  condition,
                  gpointer      user_data)
{
  RndzConnectAttempt *attempt = user_data;
  g_autoptr(GError) error = NULL;

  if (attempt->error == NULL)
    g_socket_check_connect_result (socket, &error);
  else
    error = g_steal_pointer (&attempt->error);

  /* One shot: the callback usually frees the attempt */
  g_clear_pointer (&attempt->source, g_source_unref);
  attempt->func (socket, error, attempt->user_data);
  return G_SOURCE_REMOVE;
}

static gboolean
connect_failed_cb (gpointer user_data)
{
  RndzConnectAttempt *attempt = user_data;

  return connect_ready_cb (attempt->socket, 0, attempt);
}

RndzConnectAttempt *
rndz_connect_attempt_new (GSocket         *socket,
                          const RndzAddr  *to,
                          GMainContext    *context,
                          RndzConnectFunc  func,
                          gpointer         user_data)
{
  RndzConnectAttempt *attempt = g_new0 (RndzConnectAttempt, 1);
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  attempt->socket = g_object_ref (socket);
  attempt->func = func;
  attempt->user_data = user_data;
  rndz_connect_attempt_limit_rto (socket);

  g_socket_set_blocking (socket, FALSE);
  /* An IPv4 peer from a dual-stack socket is reached v4-mapped */
  address = rndz_addr_to_socket_address (to, g_socket_get_family (socket));
  if (address == NULL)
    attempt->error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                          _("Address family not supported"));
  else if (g_socket_connect (socket, address, NULL, &error) ||
           g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PENDING))
    {
      attempt->source = g_socket_create_source (socket, G_IO_OUT, NULL);
      g_source_set_callback (attempt->source, G_SOURCE_FUNC (connect_ready_cb), attempt, NULL);
      g_source_set_static_name (attempt->source, "[rndz] connect");
      g_source_attach (attempt->source, context);
      return attempt;
    }
  else
    attempt->error = g_steal_pointer (&error);

  attempt->source = g_idle_source_new ();
  g_source_set_callback (attempt->source, connect_failed_cb, attempt, NULL);
  g_source_set_static_name (attempt->source, "[rndz] connect failed");
  g_source_attach (attempt->source, context);
  return attempt;
}

void
rndz_connect_attempt_free (RndzConnectAttempt *attempt)
{
  rndz_source_clear (&attempt->source);
  g_clear_error (&attempt->error);
  g_object_unref (attempt->socket);
  g_free (attempt);
}

/*
 * rndz_connect_attempt_unanswered:
 *
 * Whether the attempt's SYN has had no answer at all yet (Linux: the
 * socket is still in SYN-SENT). Closing such a socket sends nothing, and
 * a new one on the same ports sends its SYN at once: that is how a SYN
 * goes again sooner than the kernel's fixed 1 s, then 3 s.
 *
 * Towards a server. Between peers behind NATs, a new socket has a new
 * initial sequence number: when the old SYN did reach the peer, the
 * new socket answers the peer's SYN-ACK (or challenge ACK) with a
 * reset, and a reset through a NAT's connection tracking closes the
 * mapping for the peer's SYNs for seconds (seen through 20 % loss: 7
 * of 40 trials failed so, against 2 to 4 with the kernel's pace). The
 * listener redials a punch once, when its first SYN cannot have reached
 * the requester (rndz-listener-requests.c, punch_redial_cb()).
 * Where the state cannot be read, FALSE: the kernel's own pace.
 */
gboolean
rndz_connect_attempt_unanswered (RndzConnectAttempt *attempt)
{
#if defined(__linux__) && defined(TCP_INFO)
  struct tcp_info info;
  socklen_t len = sizeof info;

  if (attempt->error != NULL ||
      getsockopt (g_socket_get_fd (attempt->socket), IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
    return FALSE;
  return info.tcpi_state == TCP_SYN_SENT;
#else
  return FALSE;
#endif
}

/*
 * rndz_connect_attempt_spare_syns:
 * @n: how many
 * @ttl: how many hops each may go (its IPv4 TTL or IPv6 hop limit), or
 *   0 for as far as any
 *
 * Sends @n SYNs towards @to from @peer's @port, each from a socket of its
 * own closed at once: a socket closed before any answer came sends
 * nothing more. What is left is the mapping a SYN opened in our NAT's
 * connection tracking, which a later SYN on the same ports (with another
 * sequence number) takes over.
 */
void
rndz_connect_attempt_spare_syns (RndzPeerContext *peer,
                                 GSocketFamily    family,
                                 guint16          port,
                                 const RndzAddr  *to,
                                 guint            n,
                                 guint            ttl)
{
  g_autoptr(GSocketAddress) address = rndz_addr_to_socket_address (to, family);

  if (address == NULL)
    return;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GSocket) spare = rndz_peer_context_bind (peer, family, G_SOCKET_TYPE_STREAM,
                                                         port, NULL);

      if (spare == NULL)
        continue;
      /* On an IPv6 socket this sets the TTL of v4-mapped peers too */
      if (ttl > 0)
        g_socket_set_ttl (spare, ttl);
      g_socket_set_blocking (spare, FALSE);
      g_socket_connect (spare, address, NULL, NULL);
      g_socket_close (spare, NULL);
    }
}
