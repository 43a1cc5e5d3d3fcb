/* rndz-connect.c: reaching a peer, for RndzClient
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>

#include "rndz-client-private.h"
#include "rndz-i18n-private.h"

/* Reaching a peer by id takes these phases:
 *
 * 1. Resolve the servers.
 * 2. Bind a local port P; every socket of the operation is bound to it.
 * 3. Ask every server for the peer (isync) from P: over UDP from one
 *    socket per server, connected to it, so that an ICMP error tells at
 *    once that nobody serves there; over TCP on one connection per
 *    server. UDP requests are sent again with growing delays until they
 *    are answered.
 * 4. The first redirect names the peer's address. Over UDP, the peer's
 *    own punch (an rsync datagram from its port) may arrive first and
 *    names it just as well.
 * 5. UDP: connect the operation's unconnected socket on P to the peer.
 *    TCP: connect from P to the peer while the peer connects from its
 *    port to us (a simultaneous open), again and again until it works or
 *    the timeout expires.
 *
 * Errors of the servers are collected: the operation fails early only
 * when every server has answered, and then with the most telling error.
 */

typedef enum
{
  SERVER_PENDING,
  SERVER_NOT_FOUND,
  SERVER_NO_ANSWER,
  SERVER_UNREACHABLE,
  SERVER_FAILED,
} ServerStatus;

typedef struct _ConnectOp ConnectOp;

typedef struct
{
  ConnectOp *op;
  RndzAddr addr;
  ServerStatus status;
  GError *error;

  GSocket *socket;                /* UDP: connected to the server */
  GSource *source;
  GSocket *connecting;            /* TCP */
  RndzConnectAttempt *attempt;
  RndzChannel *channel;
} Server;

struct _ConnectOp
{
  GTask *task;                    /* owned while the operation runs */
  RndzClient *client;
  GMainContext *context;
  RndzTransport transport;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  guint32 tid;

  GSocketFamily family;
  guint16 port;
  GPtrArray *servers;             /* Server */

  GSource *timeout;
  GSource *cancel;
  GSource *retry;
  guint retry_ms;

  GSocket *socket;                /* UDP: the result, unconnected until the end */
  GSource *source;

  gboolean have_peer;
  RndzAddr peer_addr;
  GSocket *peer_socket;           /* TCP */
  RndzConnectAttempt *peer_attempt;
  GSource *peer_retry;
  guint peer_delay_ms;
};

static void
server_close (Server *server)
{
  rndz_source_clear (&server->source);
  if (server->socket != NULL)
    g_socket_close (server->socket, NULL);
  g_clear_object (&server->socket);
  g_clear_pointer (&server->attempt, rndz_connect_attempt_free);
  if (server->connecting != NULL)
    g_socket_close (server->connecting, NULL);
  g_clear_object (&server->connecting);
  if (server->channel != NULL)
    rndz_channel_close (server->channel);
  g_clear_pointer (&server->channel, rndz_channel_unref);
}

static void
server_free (Server *server)
{
  server_close (server);
  g_clear_error (&server->error);
  g_free (server);
}

/* Releases everything but the result */
static void
op_stop (ConnectOp *op)
{
  rndz_source_clear (&op->timeout);
  rndz_source_clear (&op->cancel);
  rndz_source_clear (&op->retry);
  rndz_source_clear (&op->source);
  rndz_source_clear (&op->peer_retry);
  g_clear_pointer (&op->peer_attempt, rndz_connect_attempt_free);
  if (op->servers != NULL)
    g_ptr_array_set_size (op->servers, 0);
}

static void
op_free (ConnectOp *op)
{
  op_stop (op);
  g_clear_pointer (&op->servers, g_ptr_array_unref);
  if (op->socket != NULL)
    g_socket_close (op->socket, NULL);
  g_clear_object (&op->socket);
  if (op->peer_socket != NULL)
    g_socket_close (op->peer_socket, NULL);
  g_clear_object (&op->peer_socket);
  g_main_context_unref (op->context);
  g_free (op);
}

/* g_task_return_*() may run the caller's callback at once, and the
 * caller may drop the last reference to the task (and so to the
 * operation): every callback holds one while it runs. */
static GTask *
op_hold (ConnectOp *op)
{
  return g_object_ref (op->task);
}

static gboolean
op_is_done (ConnectOp *op)
{
  return op->task == NULL;
}

static void
op_return_error (ConnectOp *op,
                 GError    *error)
{
  g_autoptr(GTask) task = g_steal_pointer (&op->task);

  if (task == NULL)
    {
      g_error_free (error);
      return;
    }

  op_stop (op);
  g_task_return_error (task, error);
}

static void
op_return_udp (ConnectOp *op)
{
  g_autoptr(GTask) task = g_steal_pointer (&op->task);

  op_stop (op);
  g_task_return_pointer (task, g_steal_pointer (&op->socket), g_object_unref);
}

static void
op_return_tcp (ConnectOp *op,
               GSocket   *socket)
{
  g_autoptr(GTask) task = g_steal_pointer (&op->task);
  GSocketConnection *connection;

  op_stop (op);
  g_socket_set_blocking (socket, TRUE);
  connection = g_socket_connection_factory_create_connection (socket);
  g_task_return_pointer (task, connection, g_object_unref);
}

/* What every server said */

static void
op_check_servers (ConnectOp *op)
{
  gboolean no_answer = FALSE, not_found = FALSE;
  Server *failed = NULL, *unreachable = NULL;

  for (guint i = 0; i < op->servers->len; i++)
    {
      Server *server = g_ptr_array_index (op->servers, i);

      switch (server->status)
        {
        case SERVER_PENDING:
          return;
        case SERVER_NO_ANSWER:
          no_answer = TRUE;
          break;
        case SERVER_NOT_FOUND:
          not_found = TRUE;
          break;
        case SERVER_FAILED:
          failed = failed != NULL ? failed : server;
          break;
        case SERVER_UNREACHABLE:
        default:
          unreachable = unreachable != NULL ? unreachable : server;
          break;
        }
    }

  if (no_answer)
    op_return_error (op, rndz_wire_error_to_gerror (RNDZ_WIRE_ERROR_PEER_NO_ANSWER, op->peer_id));
  else if (not_found)
    op_return_error (op, rndz_wire_error_to_gerror (RNDZ_WIRE_ERROR_PEER_NOT_FOUND, op->peer_id));
  else if (failed != NULL)
    op_return_error (op, g_error_copy (failed->error));
  else if (unreachable != NULL)
    op_return_error (op, g_error_new (RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE,
                                      _("No rendezvous server could be reached: %s"),
                                      unreachable->error->message));
}

static void
server_set_status (Server       *server,
                   ServerStatus  status,
                   const GError *error)
{
  if (server->status != SERVER_PENDING)
    return;

  server->status = status;
  if (error != NULL)
    server->error = g_error_copy (error);
  server_close (server);
  op_check_servers (server->op);
}

static void
server_set_wire_error (Server        *server,
                       RndzWireError  code)
{
  g_autoptr(GError) error = rndz_wire_error_to_gerror (code, server->op->peer_id);

  switch (code)
    {
    case RNDZ_WIRE_ERROR_PEER_NOT_FOUND:
      server_set_status (server, SERVER_NOT_FOUND, error);
      break;
    case RNDZ_WIRE_ERROR_PEER_NO_ANSWER:
      server_set_status (server, SERVER_NO_ANSWER, error);
      break;
    default:
      server_set_status (server, SERVER_FAILED, error);
      break;
    }
}

static void
op_init_isync (ConnectOp   *op,
               RndzMessage *isync)
{
  rndz_message_init (isync, RNDZ_MESSAGE_ISYNC, op->tid);
  g_strlcpy (isync->id, rndz_client_get_id (op->client), sizeof isync->id);
  g_strlcpy (isync->target, op->peer_id, sizeof isync->target);
  /* Signed afresh for every copy: the server refuses a replayed MAC */
  rndz_client_sign (op->client, isync);
}

/* UDP */

/* The peer's punch may sit in the socket's queue still; it is not the
 * application's. Anything else stays for the application. */
static void
op_udp_drain_punches (ConnectOp *op)
{
  for (;;)
    {
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
      RndzMessage msg;
      GInputVector vector = { buf, sizeof buf };
      gint flags = G_SOCKET_MSG_PEEK;
      gssize n;

      n = g_socket_receive_message (op->socket, NULL, &vector, 1, NULL, NULL, &flags, NULL, NULL);
      if (n < 0 || !rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) ||
          msg.type != RNDZ_MESSAGE_RSYNC)
        return;

      g_socket_receive (op->socket, buf, sizeof buf, NULL, NULL);
    }
}

static void
op_udp_found (ConnectOp      *op,
              const RndzAddr *addr)
{
  g_autoptr(GSocketAddress) peer = NULL;
  g_autoptr(GError) error = NULL;
  char text[RNDZ_ADDR_STRLEN];

  g_debug ("Reached “%s” at %s", op->peer_id, rndz_addr_format (addr, text));

  peer = rndz_addr_to_socket_address (addr, op->family);
  if (peer == NULL || !g_socket_connect (op->socket, peer, NULL, &error))
    {
      op_return_error (op, error != NULL ? g_steal_pointer (&error)
                                         : g_error_new_literal (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                                                _("The peer’s address family cannot be reached")));
      return;
    }

  op_udp_drain_punches (op);
  op_return_udp (op);
}

static void
server_udp_handle (Server            *server,
                   const RndzMessage *msg)
{
  ConnectOp *op = server->op;

  if (msg->tid != op->tid)
    return;

  if (msg->type == RNDZ_MESSAGE_REDIRECT && g_str_equal (msg->id, op->peer_id))
    op_udp_found (op, &msg->addr);
  else if (msg->type == RNDZ_MESSAGE_ERROR)
    server_set_wire_error (server, msg->code);
}

static gboolean
server_udp_read_cb (GSocket      *socket,
                    GIOCondition  condition,
                    gpointer      user_data)
{
  Server *server = user_data;
  ConnectOp *op = server->op;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  while (!op_is_done (op) && server->socket != NULL)
    {
      g_autoptr(GError) error = NULL;
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
      RndzMessage msg;
      gssize n;

      n = g_socket_receive (server->socket, buf, sizeof buf, NULL, &error);
      if (n < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            server_set_status (server, SERVER_UNREACHABLE, error);
          break;
        }

      if (rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL))
        server_udp_handle (server, &msg);
    }

  return G_SOURCE_CONTINUE;
}

/* Datagrams on the unconnected socket: the peer's punch */
static gboolean
op_udp_read_cb (GSocket      *socket,
                GIOCondition  condition,
                gpointer      user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  while (!op_is_done (op))
    {
      g_autoptr(GSocketAddress) from = NULL;
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
      RndzMessage msg;
      RndzAddr addr;
      gssize n;

      n = g_socket_receive_from (op->socket, &from, buf, sizeof buf, NULL, NULL);
      if (n < 0)
        break;

      if (rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) &&
          msg.type == RNDZ_MESSAGE_RSYNC &&
          g_str_equal (msg.id, op->peer_id) &&
          g_str_equal (msg.target, rndz_client_get_id (op->client)) &&
          rndz_addr_from_socket_address (&addr, from))
        {
          op_udp_found (op, &addr);
          break;
        }
    }

  return G_SOURCE_CONTINUE;
}

static void
op_udp_send_isync (ConnectOp *op)
{
  RndzMessage isync;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  for (guint i = 0; i < op->servers->len; i++)
    {
      Server *server = g_ptr_array_index (op->servers, i);
      g_autoptr(GError) error = NULL;

      if (server->status != SERVER_PENDING || server->socket == NULL)
        continue;

      op_init_isync (op, &isync);
      /* The server answers no datagram with a larger one */
      isync.pad_to = rndz_message_max_reply_size (&isync);
      len = rndz_message_encode (&isync, buf, sizeof buf);

      if (g_socket_send (server->socket, buf, len, NULL, &error) < 0 &&
          !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          server_set_status (server, SERVER_UNREACHABLE, error);
          if (op_is_done (op))
            return;
        }
    }
}

static gboolean
op_udp_retry_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->retry, g_source_unref);
  op_udp_send_isync (op);
  if (op_is_done (op))
    return G_SOURCE_REMOVE;

  op->retry_ms = MIN (op->retry_ms * 2, RNDZ_RETRY_MAX_MS);
  op->retry = rndz_timeout_add (op->context, op->retry_ms, op_udp_retry_cb, op);
  return G_SOURCE_REMOVE;
}

static gboolean
server_udp_open (Server  *server,
                 GError **error)
{
  ConnectOp *op = server->op;
  g_autoptr(GSocketAddress) address = NULL;

  address = rndz_addr_to_socket_address (&server->addr, op->family);
  if (address == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                           _("The server’s address family cannot be reached from the local address"));
      return FALSE;
    }

  server->socket = rndz_client_bind (op->client, op->family, G_SOCKET_TYPE_DATAGRAM,
                                     op->port, error);
  if (server->socket == NULL || !g_socket_connect (server->socket, address, NULL, error))
    return FALSE;

  server->source = g_socket_create_source (server->socket, G_IO_IN, NULL);
  g_source_set_callback (server->source, G_SOURCE_FUNC (server_udp_read_cb), server, NULL);
  g_source_set_static_name (server->source, "[rndz] connect UDP server");
  g_source_attach (server->source, op->context);
  return TRUE;
}

static void
op_udp_start (ConnectOp *op)
{
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GError) error = NULL;

  op->socket = rndz_client_bind (op->client, op->family, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  if (op->socket == NULL || (local = g_socket_get_local_address (op->socket, &error)) == NULL)
    {
      op_return_error (op, g_steal_pointer (&error));
      return;
    }
  op->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));

  op->source = g_socket_create_source (op->socket, G_IO_IN, NULL);
  g_source_set_callback (op->source, G_SOURCE_FUNC (op_udp_read_cb), op, NULL);
  g_source_set_static_name (op->source, "[rndz] connect UDP");
  g_source_attach (op->source, op->context);

  for (guint i = 0; i < op->servers->len && !op_is_done (op); i++)
    {
      Server *server = g_ptr_array_index (op->servers, i);

      if (!server_udp_open (server, &error))
        {
          server_set_status (server, SERVER_UNREACHABLE, error);
          g_clear_error (&error);
        }
    }
  if (op_is_done (op))
    return;

  op->retry_ms = RNDZ_RETRY_INITIAL_MS;
  op->retry = rndz_timeout_add (op->context, op->retry_ms, op_udp_retry_cb, op);
  op_udp_send_isync (op);
}

/* TCP */

static void op_tcp_connect_peer (ConnectOp *op);

static gboolean
op_tcp_peer_retry_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->peer_retry, g_source_unref);
  op_tcp_connect_peer (op);
  return G_SOURCE_REMOVE;
}

static void
op_tcp_peer_connected_cb (GSocket      *socket,
                          const GError *error,
                          gpointer      user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  g_autoptr(GSocket) peer_socket = g_steal_pointer (&op->peer_socket);

  g_clear_pointer (&op->peer_attempt, rndz_connect_attempt_free);

  if (error == NULL)
    {
      g_debug ("Connected to “%s”", op->peer_id);
      op_return_tcp (op, peer_socket);
      return;
    }

  /* The peer's SYN has not opened its NAT for us yet: again, soon */
  g_debug ("Connecting to “%s” failed, trying again: %s", op->peer_id, error->message);
  g_socket_close (peer_socket, NULL);
  op->peer_retry = rndz_timeout_add (op->context, op->peer_delay_ms, op_tcp_peer_retry_cb, op);
  op->peer_delay_ms = MIN (op->peer_delay_ms * 2, RNDZ_RETRY_MAX_MS);
}

static void
op_tcp_connect_peer (ConnectOp *op)
{
  g_autoptr(GError) error = NULL;

  op->peer_socket = rndz_client_bind (op->client, op->family, G_SOCKET_TYPE_STREAM,
                                      op->port, &error);
  if (op->peer_socket == NULL)
    {
      op_return_error (op, g_steal_pointer (&error));
      return;
    }

  op->peer_attempt = rndz_connect_attempt_new (op->peer_socket, &op->peer_addr, op->context,
                                               op_tcp_peer_connected_cb, op);
}

static void
server_tcp_message_cb (RndzChannel       *channel,
                       const RndzMessage *msg,
                       const GError      *error,
                       gpointer           user_data)
{
  Server *server = user_data;
  ConnectOp *op = server->op;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  if (msg == NULL)
    {
      server_set_status (server, SERVER_UNREACHABLE, error);
      return;
    }

  if (msg->tid != op->tid || op->have_peer)
    return;

  if (msg->type == RNDZ_MESSAGE_REDIRECT && g_str_equal (msg->id, op->peer_id))
    {
      char text[RNDZ_ADDR_STRLEN];

      g_debug ("“%s” is at %s", op->peer_id, rndz_addr_format (&msg->addr, text));
      op->have_peer = TRUE;
      op->peer_addr = msg->addr;
      op->peer_delay_ms = RNDZ_RETRY_INITIAL_MS / 4;
      op_tcp_connect_peer (op);
    }
  else if (msg->type == RNDZ_MESSAGE_ERROR)
    server_set_wire_error (server, msg->code);
}

static void
server_tcp_connected_cb (GSocket      *socket,
                         const GError *error,
                         gpointer      user_data)
{
  Server *server = user_data;
  ConnectOp *op = server->op;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);
  g_autoptr(GSocket) connected = g_steal_pointer (&server->connecting);
  g_autoptr(GError) send_error = NULL;
  RndzMessage isync;

  g_clear_pointer (&server->attempt, rndz_connect_attempt_free);

  if (error != NULL)
    {
      server_set_status (server, SERVER_UNREACHABLE, error);
      return;
    }

  server->channel = rndz_channel_new (connected, op->context, RNDZ_MESSAGE_DEFAULT_MAX_SIZE,
                                      server_tcp_message_cb, server);
  op_init_isync (op, &isync);
  if (!rndz_channel_send (server->channel, &isync, &send_error))
    server_set_status (server, SERVER_UNREACHABLE, send_error);
}

static void
op_tcp_start (ConnectOp *op)
{
  for (guint i = 0; i < op->servers->len && !op_is_done (op); i++)
    {
      Server *server = g_ptr_array_index (op->servers, i);
      g_autoptr(GError) error = NULL;

      server->connecting = rndz_client_bind (op->client, op->family, G_SOCKET_TYPE_STREAM,
                                             op->port, &error);
      if (server->connecting == NULL)
        {
          server_set_status (server, SERVER_UNREACHABLE, error);
          continue;
        }

      /* The first socket picks the port, the others share it */
      if (op->port == 0)
        {
          g_autoptr(GSocketAddress) local = g_socket_get_local_address (server->connecting, NULL);

          if (local != NULL)
            op->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
        }

      server->attempt = rndz_connect_attempt_new (server->connecting, &server->addr, op->context,
                                                  server_tcp_connected_cb, server);
    }
}

/* Starting */

static gboolean
op_timeout_cb (gpointer user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->timeout, g_source_unref);
  op_return_error (op, g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                    _("Timed out reaching peer “%s”"), op->peer_id));
  return G_SOURCE_REMOVE;
}

static gboolean
op_cancelled_cb (GCancellable *cancellable,
                 gpointer      user_data)
{
  ConnectOp *op = user_data;
  g_autoptr(GTask) hold G_GNUC_UNUSED = op_hold (op);

  g_clear_pointer (&op->cancel, g_source_unref);
  op_return_error (op, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                            _("Operation was cancelled")));
  return G_SOURCE_REMOVE;
}

static void
op_resolved_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ConnectOp *op = g_task_get_task_data (task);
  g_autoptr(GArray) addrs = NULL;
  g_autoptr(GError) error = NULL;

  addrs = rndz_resolve_servers_finish (RNDZ_CLIENT (source), result, &error);
  if (op_is_done (op))
    return;
  if (addrs == NULL)
    {
      op_return_error (op, g_steal_pointer (&error));
      return;
    }

  op->family = rndz_client_pick_family (op->client, addrs);
  for (guint i = 0; i < addrs->len; i++)
    {
      Server *server = g_new0 (Server, 1);

      server->op = op;
      server->addr = g_array_index (addrs, RndzAddr, i);
      g_ptr_array_add (op->servers, server);
    }

  if (op->transport == RNDZ_TRANSPORT_UDP)
    op_udp_start (op);
  else
    op_tcp_start (op);
}

void
rndz_connect_start (RndzClient    *client,
                    RndzTransport  transport,
                    const char    *peer_id,
                    GTask         *task)
{
  ConnectOp *op = g_new0 (ConnectOp, 1);
  GCancellable *cancellable = g_task_get_cancellable (task);

  op->task = task;
  op->client = client;
  op->context = g_main_context_ref (rndz_client_get_context (client));
  op->transport = transport;
  op->tid = rndz_client_new_tid ();
  op->servers = g_ptr_array_new_with_free_func ((GDestroyNotify) server_free);
  g_strlcpy (op->peer_id, peer_id, sizeof op->peer_id);
  g_task_set_task_data (task, op, (GDestroyNotify) op_free);

  op->timeout = rndz_timeout_add (op->context, rndz_client_get_timeout (client) * 1000,
                                  op_timeout_cb, op);
  if (cancellable != NULL)
    {
      op->cancel = g_cancellable_source_new (cancellable);
      g_source_set_callback (op->cancel, G_SOURCE_FUNC (op_cancelled_cb), op, NULL);
      g_source_attach (op->cancel, op->context);
    }

  rndz_resolve_servers_async (client, cancellable, op_resolved_cb, g_object_ref (task));
}
