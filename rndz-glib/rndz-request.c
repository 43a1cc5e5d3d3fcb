/* rndz-request.c: a connector's request for one peer, to every server
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-request-private.h"
#include "rndz-i18n-private.h"
#include "rndz-server-link-private.h"
#include "rndz-source-private.h"

/* A held request waits at least this long for its answer after a retry */
#define RATE_LIMIT_MARGIN_MS 500

typedef enum
{
  SERVER_PENDING,
  SERVER_NOT_FOUND,
  SERVER_NO_ANSWER,
  SERVER_UNREACHABLE,
  SERVER_FAILED,
} ServerStatus;

typedef struct
{
  RndzRequest *request;
  RndzServerLink *link;
  ServerStatus status;
  GError *error;
  GSource *held;                /* rate-limited: the request waits for this */
} Server;

struct _RndzRequest
{
  RndzPeerContext *peer;
  RndzTransport transport;
  GSocketFamily family;
  char peer_id[RNDZ_ID_MAX_LEN + 1];
  guint32 tid;
  gint64 deadline;              /* monotonic: the operation's end */
  const RndzRequestCallbacks *callbacks;
  gpointer user_data;
  gboolean freed;               /* by the operation; memory goes with the last reference */

  GPtrArray *servers;           /* Server */
  RndzAddr cands[RNDZ_MAX_CANDIDATES];
  guint n_cands;
  char fp[RNDZ_FP_LEN + 1];     /* ours, for a secure connection */
  Server *redirected;           /* the server whose redirect came first */
  gboolean found;               /* the peer is known: no more isyncs, errors do not count */
  gboolean relaying;
  GSource *retry;               /* UDP: the request again, with growing gaps */
  guint retry_ms;
};

static RndzRequest *
request_ref (RndzRequest *request)
{
  return g_rc_box_acquire (request);
}

static void
request_clear (RndzRequest *request)
{
  g_ptr_array_unref (request->servers);
  rndz_peer_context_unref (request->peer);
}

static void
request_unref (RndzRequest *request)
{
  g_rc_box_release_full (request, (GDestroyNotify) request_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzRequest, request_unref)

static void
server_free (Server *server)
{
  rndz_source_clear (&server->held);
  g_clear_pointer (&server->link, rndz_server_link_free);
  g_clear_error (&server->error);
  g_free (server);
}

/* Safe from within the request's own callbacks */
void
rndz_request_free (RndzRequest *request)
{
  request->freed = TRUE;
  request->redirected = NULL;
  rndz_source_clear (&request->retry);
  g_ptr_array_set_size (request->servers, 0);
  request_unref (request);
}

/* Messages */

static void
request_init_message (RndzRequest     *request,
                      RndzMessageType  type,
                      RndzMessage     *msg)
{
  rndz_message_init (msg, type, request->tid);
  g_strlcpy (msg->id, request->peer->id, sizeof msg->id);
  g_strlcpy (msg->target, request->peer_id, sizeof msg->target);
}

/* Padded over UDP: the server answers no datagram with a larger one.
 * Signed afresh for every copy: the server refuses a replayed MAC. */
static gboolean
server_send (Server       *server,
             RndzMessage  *msg,
             GError      **error)
{
  rndz_peer_context_sign (server->request->peer, rndz_server_link_get_server (server->link),
                          msg);
  if (server->request->transport == RNDZ_TRANSPORT_UDP)
    msg->pad_to = rndz_message_max_reply_size (msg);
  return rndz_server_link_send (server->link, msg, error);
}

/* Answers */

/* When every server has answered without the peer, the most telling
 * answer is the request's */
static GError *
request_answer (RndzRequest *request)
{
  gboolean no_answer = FALSE, not_found = FALSE;
  Server *failed = NULL, *unreachable = NULL;

  for (guint i = 0; i < request->servers->len; i++)
    {
      Server *server = g_ptr_array_index (request->servers, i);

      switch (server->status)
        {
        case SERVER_PENDING:
          return NULL;
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
    return rndz_wire_error_to_gerror (RNDZ_WIRE_ERROR_PEER_NO_ANSWER, request->peer_id);
  if (not_found)
    return rndz_wire_error_to_gerror (RNDZ_WIRE_ERROR_PEER_NOT_FOUND, request->peer_id);
  if (failed != NULL)
    return g_error_copy (failed->error);
  return g_error_new (RNDZ_ERROR, RNDZ_ERROR_SERVER_UNREACHABLE,
                      _("No rendezvous server could be reached: %s"),
                      unreachable->error->message);
}

static void
server_set_status (Server       *server,
                   ServerStatus  status,
                   const GError *error)
{
  RndzRequest *request = server->request;
  GError *answer;

  if (server->status != SERVER_PENDING)
    return;

  server->status = status;
  if (error != NULL)
    server->error = g_error_copy (error);
  rndz_source_clear (&server->held);
  rndz_server_link_close (server->link);

  if (!request->found && (answer = request_answer (request)) != NULL)
    request->callbacks->failed (request, answer, request->user_data);
}

static void
server_set_wire_error (Server            *server,
                       const RndzMessage *msg)
{
  g_autoptr(GError) error = rndz_message_error_to_gerror (msg, server->request->peer_id);

  switch (msg->code)
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

/* Asks @server for the peer */
static void
server_send_isync (Server *server)
{
  RndzRequest *request = server->request;
  g_autoptr(GError) error = NULL;
  RndzMessage isync;

  request_init_message (request, RNDZ_MESSAGE_ISYNC, &isync);
  isync.n_cands = request->n_cands;
  memcpy (isync.cands, request->cands, sizeof isync.cands);
  memcpy (isync.fp, request->fp, sizeof isync.fp);
  if (!server_send (server, &isync, &error))
    server_set_status (server, SERVER_UNREACHABLE, error);
}

static gboolean
server_held_cb (gpointer user_data)
{
  Server *server = user_data;
  g_autoptr(RndzRequest) request = request_ref (server->request);

  g_clear_pointer (&server->held, g_source_unref);
  if (!request->found)
    server_send_isync (server);
  return G_SOURCE_REMOVE;
}

/* The server limits requests and says when ours would pass: ask again
 * then if the answer can still come in time, else fail now with that.
 * Meanwhile nothing goes to that server (over UDP it would not answer
 * again within its window). */
static void
server_rate_limited (Server            *server,
                     const RndzMessage *msg)
{
  RndzRequest *request = server->request;
  gint64 left_ms = (request->deadline - g_get_monotonic_time ()) / 1000;

  if (msg->retry_ms == 0 || msg->retry_ms + RATE_LIMIT_MARGIN_MS > left_ms)
    {
      server_set_wire_error (server, msg);
      return;
    }

  g_debug ("The server limits requests: asking again in %u ms", msg->retry_ms);
  rndz_source_clear (&server->held);
  server->held = rndz_timeout_add (request->peer->context, msg->retry_ms, server_held_cb, server);
}

/* A message from a server: its redirect, its error, or its answer to
 * our relay request */
static void
server_handle (Server            *server,
               const RndzMessage *msg)
{
  RndzRequest *request = server->request;

  if (msg->tid != request->tid)
    return;

  if (request->relaying)
    {
      if (server == request->redirected)
        request->callbacks->relay_reply (request, msg, request->user_data);
    }
  else if (msg->type == RNDZ_MESSAGE_REDIRECT && g_str_equal (msg->id, request->peer_id))
    {
      /* A punch may have shown the peer first; the redirect still
       * brings its addresses */
      if (request->redirected != NULL)
        return;
      request->redirected = server;
      rndz_request_found (request);
      request->callbacks->redirect (request, msg, request->user_data);
    }
  else if (msg->type == RNDZ_MESSAGE_ERROR && !request->found)
    {
      if (msg->code == RNDZ_WIRE_ERROR_RATE_LIMITED)
        server_rate_limited (server, msg);
      else
        server_set_wire_error (server, msg);
    }
}

static void
server_link_cb (RndzServerLink      *link,
                RndzServerLinkEvent  event,
                const RndzMessage   *msg,
                const GError        *error,
                gpointer             user_data)
{
  Server *server = user_data;
  g_autoptr(RndzRequest) request = request_ref (server->request);

  if (request->freed)
    return;

  switch (event)
    {
    case RNDZ_SERVER_LINK_MESSAGE:
      server_handle (server, msg);
      break;
    case RNDZ_SERVER_LINK_READY:
      /* TCP: connected, ask */
      if (!request->found)
        server_send_isync (server);
      break;
    case RNDZ_SERVER_LINK_FAILED:
      /* Over TCP the relay's session comes on this connection */
      if (request->transport == RNDZ_TRANSPORT_TCP && request->relaying &&
          server == request->redirected)
        request->callbacks->failed (request, g_error_copy (error), request->user_data);
      else
        server_set_status (server, SERVER_UNREACHABLE, error);
      break;
    }
}

/* Sending, and sending again */

static void
request_send_relay (RndzRequest *request)
{
  Server *server = request->redirected;
  g_autoptr(GError) error = NULL;
  RndzMessage relay;

  request_init_message (request, RNDZ_MESSAGE_RELAY, &relay);
  if (rndz_server_link_is_ready (server->link) && server_send (server, &relay, &error))
    return;

  /* Over UDP lost datagrams are sent again, and a server gone shows at
   * the timeout; over TCP the connection was the way */
  if (request->transport == RNDZ_TRANSPORT_UDP)
    {
      g_debug ("Could not ask for the relay: %s", error != NULL ? error->message : "not ready");
      return;
    }
  request->callbacks->failed (request,
                              error != NULL ? g_steal_pointer (&error)
                                            : g_error_new (RNDZ_ERROR, RNDZ_ERROR_NO_PATH,
                                                           _("No direct path to peer “%s” works"),
                                                           request->peer_id),
                              request->user_data);
}

static void
request_send_isyncs (RndzRequest *request)
{
  for (guint i = 0; i < request->servers->len && !request->freed && !request->found; i++)
    {
      Server *server = g_ptr_array_index (request->servers, i);

      if (server->status == SERVER_PENDING && server->held == NULL &&
          rndz_server_link_is_ready (server->link))
        server_send_isync (server);
    }
}

static gboolean
request_retry_cb (gpointer user_data)
{
  g_autoptr(RndzRequest) request = request_ref (user_data);

  g_clear_pointer (&request->retry, g_source_unref);
  /* The isync until a redirect, then the relay request until its session */
  if (request->relaying)
    request_send_relay (request);
  else
    request_send_isyncs (request);
  if (request->freed || (request->found && !request->relaying))
    return G_SOURCE_REMOVE;

  request->retry_ms = MIN (request->retry_ms * 2, RNDZ_RETRY_MAX_MS);
  request->retry = rndz_timeout_add (request->peer->context, request->retry_ms,
                                     request_retry_cb, request);
  return G_SOURCE_REMOVE;
}

static void
request_start_retry (RndzRequest *request)
{
  rndz_source_clear (&request->retry);
  if (request->transport != RNDZ_TRANSPORT_UDP)
    return;

  request->retry_ms = RNDZ_RETRY_INITIAL_MS;
  request->retry = rndz_timeout_add (request->peer->context, request->retry_ms,
                                     request_retry_cb, request);
}

/* API */

RndzRequest *
rndz_request_new (RndzPeerContext            *peer,
                  RndzTransport               transport,
                  GSocketFamily               family,
                  GArray                     *servers,
                  const char                 *peer_id,
                  guint32                     tid,
                  gint64                      deadline,
                  const RndzRequestCallbacks *callbacks,
                  gpointer                    user_data)
{
  RndzRequest *request = g_rc_box_new0 (RndzRequest);

  request->peer = rndz_peer_context_ref (peer);
  request->transport = transport;
  request->family = family;
  g_strlcpy (request->peer_id, peer_id, sizeof request->peer_id);
  request->tid = tid;
  request->deadline = deadline;
  request->callbacks = callbacks;
  request->user_data = user_data;
  request->servers = g_ptr_array_new_with_free_func ((GDestroyNotify) server_free);

  for (guint i = 0; i < servers->len; i++)
    {
      Server *server = g_new0 (Server, 1);

      server->request = request;
      server->link = rndz_server_link_new (peer, transport, family,
                                           &g_array_index (servers, RndzAddr, i),
                                           server_link_cb, server);
      g_ptr_array_add (request->servers, server);
    }

  return request;
}

/*
 * rndz_request_open:
 * @port: our port, or 0 (TCP: the first connection picks it)
 *
 * Opens the link to every server from @port. A server that cannot be
 * reached from here has answered; when none can, the failed callback
 * runs before this returns.
 *
 * Returns: our port
 */
guint16
rndz_request_open (RndzRequest *request,
                   guint16      port)
{
  g_autoptr(RndzRequest) self G_GNUC_UNUSED = request_ref (request);

  for (guint i = 0; i < request->servers->len && !request->freed; i++)
    {
      Server *server = g_ptr_array_index (request->servers, i);
      g_autoptr(GError) error = NULL;

      if (!rndz_server_link_open (server->link, port, &error))
        server_set_status (server, SERVER_UNREACHABLE, error);
      else if (port == 0)
        port = rndz_server_link_get_port (server->link);
    }

  return port;
}

/* A secure connection: our fingerprint goes with the request */
void
rndz_request_set_fingerprint (RndzRequest *request,
                              const char  *fp)
{
  g_strlcpy (request->fp, fp, sizeof request->fp);
}

/* Asks: over UDP now and again until answered, over TCP as each
 * connection comes up. @cands: our local addresses, offered to the peer */
void
rndz_request_send (RndzRequest    *request,
                   const RndzAddr *cands,
                   guint           n_cands)
{
  g_autoptr(RndzRequest) self G_GNUC_UNUSED = request_ref (request);

  request->n_cands = MIN (n_cands, RNDZ_MAX_CANDIDATES);
  memcpy (request->cands, cands, request->n_cands * sizeof (RndzAddr));
  if (request->transport != RNDZ_TRANSPORT_UDP)
    return;

  request_start_retry (request);
  request_send_isyncs (request);
}

/* The peer is known (its redirect, or its punch): the isync is
 * answered. Relaying, the relay's session came: that is answered too. */
void
rndz_request_found (RndzRequest *request)
{
  request->found = TRUE;
  rndz_source_clear (&request->retry);
}

/* The server that redirected, or %NULL */
const RndzAddr *
rndz_request_get_server (RndzRequest *request)
{
  if (request->redirected == NULL)
    return NULL;
  return rndz_server_link_get_server (request->redirected->link);
}

/* Asks the server that redirected to relay us, under a new @tid: over
 * UDP again and again until its answer. Stops with the next
 * rndz_request_found(). */
void
rndz_request_relay (RndzRequest *request,
                    guint32      tid)
{
  g_autoptr(RndzRequest) self G_GNUC_UNUSED = request_ref (request);

  g_return_if_fail (request->redirected != NULL);

  request->relaying = TRUE;
  request->tid = tid;
  request_start_retry (request);
  request_send_relay (request);
}
