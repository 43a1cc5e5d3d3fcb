/* rndz-relay-join.c: joining a session of the server's relay
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-relay-join-private.h"
#include "rndz-channel-private.h"
#include "rndz-peer-context-private.h"
#include "rndz-frame-reader-private.h"
#include "rndz-message-private.h"
#include "rndz-socket-private.h"
#include "rndz-udp-private.h"
#include "rndz-udp-filter-private.h"
#include "rndz-connect-attempt-private.h"
#include "rndz-source-private.h"
#include "rndz-i18n-private.h"

/* Joining a relay session takes these phases:
 *
 * UDP
 * 1. A new socket on an ephemeral port, connected to the relay: an ICMP
 *    error then tells at once that nothing listens there.
 * 2. `hello` every 250 ms until the relay answers. `wait` means the other
 *    peer is not there yet: `hello` goes on, every max(250 ms, 2 × RTT),
 *    because the relay may not repeat its `ready` and the NAT binding
 *    towards the relay must stay open.
 * 3. `ready` with the hello's tid: the socket is the application's. Until
 *    then its filter let in no protocol message but `wait` and `ready`
 *    (rndz-udp-filter.c); now it drops them all, those at the head of
 *    the queue are drained, and what the relay forwards after `ready`
 *    stays in the socket.
 *
 * TCP
 * 1. Connect to the relay from a new socket.
 * 2. Send one `hello` frame.
 * 3. Read exactly one frame: `ready` hands the connection out, with the
 *    first bytes of the other peer possibly right behind it, still
 *    unread; anything else fails.
 *
 * The socket is never handed out before `ready`, and is closed on every
 * failure.
 */

typedef struct
{
  GTask *task;                    /* owned while the operation runs */
  GMainContext *context;
  RndzTransport transport;
  GSocketFamily family;
  RndzAddr relay;
  char id[RNDZ_ID_MAX_LEN + 1];
  char token[RNDZ_TOKEN_LEN + 1];
  guint32 tid;

  GSocket *socket;
  GSource *timeout;
  GSource *cancel;

  /* UDP */
  GSource *source;
  GSource *resend;
  guint interval_ms;
  gint64 last_sent;               /* monotonic µs */
  gboolean waiting;               /* the relay said `wait` */

  /* TCP */
  RndzConnectAttempt *attempt;
  GCancellable *reading;          /* while the answer frame is read */
} JoinOp;

/* Releases everything but the socket */
static void
op_stop (JoinOp *op)
{
  rndz_source_clear (&op->timeout);
  rndz_source_clear (&op->cancel);
  rndz_source_clear (&op->source);
  rndz_source_clear (&op->resend);
  g_clear_pointer (&op->attempt, rndz_connect_attempt_free);
  /* The read's callback runs later, and closes the socket then */
  if (op->reading != NULL)
    g_cancellable_cancel (op->reading);
}

static void
op_close_socket (JoinOp *op)
{
  if (op->socket != NULL)
    g_socket_close (op->socket, NULL);
  g_clear_object (&op->socket);
}

static void
op_free (JoinOp *op)
{
  op_stop (op);
  op_close_socket (op);
  g_clear_object (&op->reading);
  g_main_context_unref (op->context);
  g_free (op);
}

/* g_task_return_*() may run the caller's callback at once, and the
 * caller may drop the last reference to the task (and so to the
 * operation): every callback holds one while it runs. */
static GTask *
op_hold (JoinOp *op)
{
  return g_object_ref (op->task);
}

static gboolean
op_is_done (JoinOp *op)
{
  return op->task == NULL;
}

static void
op_return_error (JoinOp *op,
                 GError *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&op->task);

  if (task == NULL)
    {
      g_error_free (error);
      return;
    }

  op_stop (op);
  /* A frame read in flight still watches the socket: it goes when the
   * read's callback comes */
  if (op->reading == NULL)
    op_close_socket (op);
  g_task_return_error (task, error);
}

static void
op_return_socket (JoinOp *op)
{
  g_autoptr(GTask) task = g_steal_pointer (&op->task);
  char text[RNDZ_ADDR_STRLEN];

  g_debug ("Joined the relay at %s", rndz_addr_format (&op->relay, text));

  op_stop (op);
  rndz_connect_attempt_hand_over (op->socket, op->context, 0);
  rndz_socket_set_path (op->socket, RNDZ_PATH_RELAYED);
  g_task_return_pointer (task, g_steal_pointer (&op->socket), g_object_unref);
}

static void
op_return_unreachable (JoinOp       *op,
                       const GError *error)
{
  char text[RNDZ_ADDR_STRLEN];

  op_return_error (op, g_error_new (RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE,
                                    _("The relay at %s cannot be reached: %s"),
                                    rndz_addr_format (&op->relay, text), error->message));
}

static void
op_init_hello (JoinOp      *op,
               RndzMessage *hello)
{
  rndz_message_init (hello, RNDZ_MESSAGE_HELLO, op->tid);
  g_strlcpy (hello->id, op->id, sizeof hello->id);
  g_strlcpy (hello->token, op->token, sizeof hello->token);
}

/* UDP */

static void
op_udp_send_hello (JoinOp *op)
{
  g_autoptr(GError) error = NULL;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage hello;
  gsize len;

  op_init_hello (op, &hello);
  /* The relay answers no datagram with a larger one */
  hello.pad_to = rndz_message_max_reply_size (&hello);
  len = rndz_message_encode (&hello, buf, sizeof buf);
  g_return_if_fail (len > 0);

  op->last_sent = g_get_monotonic_time ();
  /* An ICMP error for an earlier hello may be reported here */
  if (g_socket_send (op->socket, buf, len, NULL, &error) < 0 &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    op_return_unreachable (op, error);
}

static gboolean
op_udp_resend_cb (gpointer user_data)
{
  JoinOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->resend, g_source_unref);
  op_udp_send_hello (op);
  if (!op_is_done (op))
    op->resend = rndz_timeout_add (op->context, op->interval_ms, op_udp_resend_cb, op);

  return G_SOURCE_REMOVE;
}

/* Every hello carries the same tid, so a `wait` cannot say which one it
 * answers: the time since the latest is the RTT's lower bound. Erring
 * low only keeps the 250 ms that were used until then. */
static void
op_udp_waiting (JoinOp *op)
{
  gint64 rtt_ms = (g_get_monotonic_time () - op->last_sent) / 1000;

  op->waiting = TRUE;
  op->interval_ms = (guint) CLAMP (2 * rtt_ms, RNDZ_RELAY_HELLO_INTERVAL_MS, G_MAXINT);
  g_debug ("The relay waits for the other peer; hello every %u ms", op->interval_ms);

  rndz_source_clear (&op->resend);
  op->resend = rndz_timeout_add (op->context, op->interval_ms, op_udp_resend_cb, op);
}

/* Anything else, from whoever, is dropped: only the relay's answer to
 * our hello moves this on */
static gboolean
join_udp_read_one (GSocket           *socket,
                 const RndzAddr    *from,
                 const RndzMessage *msg,
                 gpointer           user_data)
{
  JoinOp *op = user_data;

  if (msg->tid != op->tid)
    return TRUE;

  if (msg->type == RNDZ_MESSAGE_READY)
    {
      /* Not one datagram more: what follows is the other peer's. Answers
       * to hellos sent again may be queued behind this one: those at the
       * head go, and from now on the kernel drops them. */
      rndz_udp_hand_over (op->socket, TRUE);
      op_return_socket (op);
      return FALSE;
    }

  if (msg->type == RNDZ_MESSAGE_WAIT && !op->waiting)
    op_udp_waiting (op);
  return !op_is_done (op);
}

static gboolean
join_udp_read_cb (GSocket      *socket,
                GIOCondition  condition,
                gpointer      user_data)
{
  JoinOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  g_autoptr(GError) error = NULL;

  if (!rndz_udp_read_messages (socket, FALSE, join_udp_read_one, op, &error) &&
      error != NULL && !op_is_done (op))
    op_return_unreachable (op, error);

  return G_SOURCE_CONTINUE;
}

static void
op_udp_start (JoinOp *op)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  op->socket = g_socket_new (op->family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, &error);
  if (op->socket == NULL)
    {
      op_return_error (op, g_steal_pointer (&error));
      return;
    }
  g_socket_set_blocking (op->socket, FALSE);
  /* Until `ready`, only the relay's answers and data: nothing else of
   * the protocol may be queued behind `ready` when it is read */
  if (!rndz_udp_filter_set (op->socket, RNDZ_UDP_FILTER_ANSWERS_AND_DATA, &error))
    {
      g_debug ("Joining the relay unfiltered: %s", error->message);
      g_clear_error (&error);
    }

  /* An IPv4 relay from an IPv6 socket is reached v4-mapped */
  address = rndz_addr_to_socket_address (&op->relay, op->family);
  if (address == NULL)
    {
      op_return_error (op, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                                _("The relay’s address family cannot be reached from the local address")));
      return;
    }
  if (!g_socket_connect (op->socket, address, NULL, &error))
    {
      op_return_unreachable (op, error);
      return;
    }

  op->source = rndz_socket_source_add (op->socket, op->context, join_udp_read_cb, op,
                                      "[rndz] relay join UDP");

  op->interval_ms = RNDZ_RELAY_HELLO_INTERVAL_MS;
  op->resend = rndz_timeout_add (op->context, op->interval_ms, op_udp_resend_cb, op);
  op_udp_send_hello (op);
}

/* TCP */

static void
op_tcp_answer_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  JoinOp *op = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  RndzMessage msg;

  g_clear_object (&op->reading);

  if (!rndz_frame_read_finish (result, &msg, &error))
    {
      if (op_is_done (op))
        op_close_socket (op);
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
        op_return_error (op, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                                  _("The relay closed the connection before the session was ready")));
      else
        {
          if (error->domain == RNDZ_PROTOCOL_ERROR)
            g_prefix_error (&error, _("Invalid answer from the relay: "));
          op_return_error (op, g_steal_pointer (&error));
        }
      return;
    }

  /* Unlike over UDP, the tid is not checked: nothing but the relay can
   * write on this connection, and the hello was the only thing sent on
   * it */
  if (op_is_done (op))
    op_close_socket (op);
  else if (msg.type != RNDZ_MESSAGE_READY)
    op_return_error (op, g_error_new (RNDZ_ERROR, RNDZ_ERROR_FAILED,
                                      _("The relay answered “%s” instead of “ready”"),
                                      rndz_message_type_to_string (msg.type)));
  else
    {
      /* Like the connections rndz_client_connect_tcp() returns */
      g_socket_set_blocking (op->socket, TRUE);
      op_return_socket (op);
    }
}

static void
op_tcp_connected_cb (GSocket      *socket,
                     const GError *error,
                     gpointer      user_data)
{
  JoinOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  g_autoptr(GError) send_error = NULL;
  char frame[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage hello;
  gssize sent;
  gsize len;

  g_clear_pointer (&op->attempt, rndz_connect_attempt_free);

  if (error != NULL)
    {
      op_return_unreachable (op, error);
      return;
    }

  op_init_hello (op, &hello);
  len = rndz_message_encode_frame (&hello, frame, sizeof frame);
  g_return_if_fail (len > 0);

  /* A fresh connection's send buffer takes a small frame whole: a short
   * write would mean something is badly wrong, not a reason to queue */
  sent = g_socket_send (op->socket, frame, len, NULL, &send_error);
  if (sent < 0)
    {
      op_return_unreachable (op, send_error);
      return;
    }
  if ((gsize) sent != len)
    {
      op_return_error (op, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_FAILED,
                                                _("Could not send the request to the relay")));
      return;
    }

  /* Bounded by the operation's timeout; cancelled when it ends */
  op->reading = g_cancellable_new ();
  rndz_frame_read_async (op->socket, op->context, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, 0,
                         op->reading, op_tcp_answer_cb, g_object_ref (op->task));
}

static void
op_tcp_start (JoinOp *op)
{
  g_autoptr(GError) error = NULL;

  op->socket = g_socket_new (op->family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  if (op->socket == NULL)
    {
      op_return_error (op, g_steal_pointer (&error));
      return;
    }

  op->attempt = rndz_connect_attempt_new (op->socket, &op->relay, op->context,
                                          op_tcp_connected_cb, op);
}

/* Starting */

static gboolean
op_timeout_cb (gpointer user_data)
{
  JoinOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  char text[RNDZ_ADDR_STRLEN];

  g_clear_pointer (&op->timeout, g_source_unref);
  op_return_error (op, g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                    op->waiting ? _("The peer did not join the relay at %s in time")
                                                : _("Timed out joining the relay at %s"),
                                    rndz_addr_format (&op->relay, text)));
  return G_SOURCE_REMOVE;
}

static gboolean
op_cancelled_cb (GCancellable *cancellable,
                 gpointer      user_data)
{
  JoinOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->cancel, g_source_unref);
  op_return_error (op, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                            _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

void
rndz_relay_join_async (RndzTransport        transport,
                       GSocketFamily        family,
                       const RndzAddr      *relay,
                       const char          *own_id,
                       const char          *token,
                       guint                timeout_ms,
                       GMainContext        *context,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             user_data)
{
  g_autoptr(GTask) hold = NULL;
  JoinOp *op;

  g_return_if_fail (relay != NULL && relay->family != 0);
  g_return_if_fail (own_id != NULL && rndz_id_is_valid (own_id, -1));
  g_return_if_fail (token != NULL && strlen (token) == RNDZ_TOKEN_LEN);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  op = g_new0 (JoinOp, 1);
  /* Callers run in @context: the callback runs there too */
  op->task = context != NULL ? rndz_task_new_in (context, cancellable, callback, user_data)
                             : g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (op->task, rndz_relay_join_async);
  g_task_set_name (op->task, "[rndz] relay join");
  g_task_set_task_data (op->task, op, (GDestroyNotify) op_free);

  op->context = context != NULL ? g_main_context_ref (context)
                                : g_main_context_ref_thread_default ();
  op->transport = transport;
  op->family = family;
  op->relay = *relay;
  op->tid = g_random_int ();
  g_strlcpy (op->id, own_id, sizeof op->id);
  g_strlcpy (op->token, token, sizeof op->token);

  /* The operation owns the task until it returns; this reference keeps
   * @op alive for the rest of this function should it fail at once */
  hold = op_hold (op);

  if (timeout_ms > 0)
    op->timeout = rndz_timeout_add (op->context, timeout_ms, op_timeout_cb, op);
  if (cancellable != NULL)
    {
      op->cancel = g_cancellable_source_new (cancellable);
      g_source_set_callback (op->cancel, G_SOURCE_FUNC (op_cancelled_cb), op, NULL);
      g_source_set_static_name (op->cancel, "[rndz] relay join cancelled");
      g_source_attach (op->cancel, op->context);
    }

  if (transport == RNDZ_TRANSPORT_UDP)
    op_udp_start (op);
  else
    op_tcp_start (op);
}

GSocket *
rndz_relay_join_finish (GAsyncResult  *result,
                        GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == rndz_relay_join_async, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}
