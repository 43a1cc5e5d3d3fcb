/* rndz-message-encode.c: encoding messages and framing them for TCP
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-message-codec-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

/* Encoding
 *
 * Messages are small and flat, so they are written straight into the
 * caller's buffer rather than built as a JsonNode tree first: no
 * allocation on the server's hot path. decode() is the reference for
 * what is valid; the tests check that every encoded message decodes.
 */

typedef struct
{
  char *buf;
  gsize size;
  gsize len;
  gboolean overflow;
} Writer;

static void
put (Writer     *w,
     const char *text,
     gsize       len)
{
  if (w->overflow || w->len + len >= w->size)
    {
      w->overflow = TRUE;
      return;
    }
  memcpy (w->buf + w->len, text, len);
  w->len += len;
}

static void
put_str (Writer     *w,
         const char *text)
{
  put (w, text, strlen (text));
}

static void
put_json_string (Writer     *w,
                 const char *text)
{
  put (w, "\"", 1);
  for (const char *p = text; *p != '\0'; p++)
    {
      guchar c = *p;

      if (c == '"' || c == '\\')
        {
          char esc[2] = { '\\', c };
          put (w, esc, 2);
        }
      else if (c < 0x20 || c == 0x7f)
        {
          char esc[8];
          g_snprintf (esc, sizeof esc, "\\u%04x", c);
          put_str (w, esc);
        }
      else
        put (w, (const char *) &c, 1);
    }
  put (w, "\"", 1);
}

static void
put_number (Writer *w,
            guint64 value)
{
  char digits[20];
  int n = 0;

  do
    digits[n++] = '0' + value % 10;
  while ((value /= 10) != 0);

  while (n > 0 && !w->overflow)
    put (w, &digits[--n], 1);
}

static void
put_member (Writer     *w,
            const char *name,
            const char *value)
{
  put (w, ",\"", 2);
  put_str (w, name);
  put (w, "\":", 2);
  put_json_string (w, value);
}

/* The members that depend on the message's type */
static void
put_type_members (Writer            *w,
                  const RndzMessage *msg)
{
  guint fields = rndz_message_type_fields[msg->type];

  if (fields & FIELD_ID)
    put_member (w, "id", msg->id);
  if (fields & FIELD_TARGET)
    put_member (w, "target", msg->target);
  if ((fields & FIELD_ADDR) || ((fields & FIELD_ADDR_OPTIONAL) && msg->addr.family != 0))
    {
      char addr[RNDZ_ADDR_STRLEN];
      put_member (w, "addr", rndz_addr_format (&msg->addr, addr));
    }
  if ((fields & FIELD_SEEN) && msg->seen.family != 0)
    {
      char seen[RNDZ_ADDR_STRLEN];
      put_member (w, "seen", rndz_addr_format (&msg->seen, seen));
    }
  if (fields & FIELD_CODE)
    put_member (w, "code", rndz_wire_error_names[msg->code]);
  if ((fields & FIELD_CODE) && msg->retry_ms > 0)
    {
      put_str (w, ",\"retry\":");
      put_number (w, MIN (msg->retry_ms, RNDZ_WIRE_RETRY_MAX_MS));
    }
  if ((fields & FIELD_CAND) && msg->n_cands > 0)
    {
      char cands[RNDZ_MAX_CANDIDATES * RNDZ_ADDR_STRLEN];
      put_member (w, "cand", rndz_message_format_cands (msg, cands));
    }
  if ((fields & FIELD_FP) && msg->fp[0] != '\0')
    put_member (w, "fp", msg->fp);
  if (fields & FIELD_TOKEN)
    put_member (w, "token", msg->token);
  if (fields & FIELD_PORT)
    {
      put_str (w, ",\"port\":");
      put_number (w, msg->port);
    }
}

static void
put_auth (Writer            *w,
          const RndzMessage *msg)
{
  if ((msg->type == RNDZ_MESSAGE_FSYNC || msg->type == RNDZ_MESSAGE_SESSION) && msg->auth)
    put_str (w, ",\"auth\":true");
  if (msg->mac[0] != '\0')
    {
      put_str (w, ",\"ts\":");
      put_number (w, msg->ts);
      put_member (w, "nonce", msg->nonce);
      if (msg->srv.family != 0)
        {
          char srv[RNDZ_ADDR_STRLEN];
          put_member (w, "srv", rndz_addr_format (&msg->srv, srv));
        }
      put_member (w, "mac", msg->mac);
    }
}

/* Pads the message to msg->pad_to bytes, with the closing brace still to
 * come: ,"pad":"" is 9 bytes, then one byte per x */
static void
put_padding (Writer            *w,
             const RndzMessage *msg)
{
  gsize n;

  if (msg->pad_to <= w->len + 1)
    return;

  n = msg->pad_to > w->len + 1 + 9 ? msg->pad_to - w->len - 1 - 9 : 0;
  put_str (w, ",\"pad\":\"");
  for (gsize i = 0; i < n && !w->overflow; i++)
    put (w, "x", 1);
  put (w, "\"", 1);
}

/*
 * rndz_message_encode:
 *
 * Writes @msg as JSON into @buf, nul-terminated.
 *
 * Returns: the length written, without the nul, or 0 if it does not fit
 */
gsize
rndz_message_encode (const RndzMessage *msg,
                     char              *buf,
                     gsize              size)
{
  Writer w = { buf, size, 0, FALSE };

  g_return_val_if_fail (msg->type > RNDZ_MESSAGE_INVALID &&
                        msg->type <= RNDZ_MESSAGE_LAST, 0);

  put_str (&w, "{\"v\":");
  put_number (&w, RNDZ_PROTOCOL_VERSION);
  put_str (&w, ",\"type\":\"");
  put_str (&w, rndz_message_type_names[msg->type]);
  put_str (&w, "\",\"tid\":");
  put_number (&w, msg->tid);

  put_type_members (&w, msg);
  put_auth (&w, msg);
  put_padding (&w, msg);
  put (&w, "}", 1);

  if (w.overflow)
    return 0;

  buf[w.len] = '\0';
  return w.len;
}

/*
 * rndz_message_encode_frame:
 *
 * Writes @msg as a TCP frame: a two-byte big-endian length, then the JSON.
 *
 * Returns: the length of the whole frame, or 0 if it does not fit
 */
gsize
rndz_message_encode_frame (const RndzMessage *msg,
                           char              *buf,
                           gsize              size)
{
  gsize len;

  if (size <= RNDZ_FRAME_HEADER_SIZE)
    return 0;

  len = rndz_message_encode (msg, buf + RNDZ_FRAME_HEADER_SIZE,
                             MIN (size - RNDZ_FRAME_HEADER_SIZE, G_MAXUINT16 + 1));
  if (len == 0)
    return 0;

  buf[0] = (len >> 8) & 0xff;
  buf[1] = len & 0xff;
  return len + RNDZ_FRAME_HEADER_SIZE;
}

/*
 * rndz_frame_peek:
 * @buf: bytes received so far
 * @max_size: the largest payload accepted
 *
 * Returns: the payload length of the complete frame at the start of
 *   @buf; 0 if more bytes are needed; -1 with @error set if the frame
 *   is empty or announces more than @max_size bytes
 */
gssize
rndz_frame_peek (const guint8  *buf,
                 gsize          len,
                 gsize          max_size,
                 GError       **error)
{
  gsize payload;

  if (len < RNDZ_FRAME_HEADER_SIZE)
    return 0;

  payload = ((gsize) buf[0] << 8) | buf[1];
  if (payload == 0)
    {
      g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_TRUNCATED,
                           _("Empty frame"));
      return -1;
    }
  if (payload > max_size)
    {
      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_TOO_LARGE,
                   _("Frame of %lu bytes is larger than the limit of %lu bytes"),
                   (gulong) payload, (gulong) max_size);
      return -1;
    }

  if (len < RNDZ_FRAME_HEADER_SIZE + payload)
    return 0;

  return payload;
}


/* The two sessions a relay makes the server send: the answer to the
 * requester, naming the target, and the notice to the target, naming
 * the requester and perhaps carrying "auth" */
static gsize
relay_sessions_size (const RndzMessage *request)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage session;
  gsize to_target;

  rndz_message_init (&session, RNDZ_MESSAGE_SESSION, G_MAXUINT32);
  memset (session.token, 'f', RNDZ_TOKEN_LEN);
  session.port = G_MAXUINT16;
  g_strlcpy (session.id, request->id, sizeof session.id);
  session.auth = TRUE;
  /* A node of a cluster may name its relay to a target at another node */
  rndz_addr_parse (&session.addr, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", NULL);
  to_target = rndz_message_encode (&session, buf, sizeof buf);

  memset (&session.addr, 0, sizeof session.addr);
  g_strlcpy (session.id, request->target, sizeof session.id);
  session.auth = FALSE;
  return to_target + rndz_message_encode (&session, buf, sizeof buf);
}

/* The largest fsync a server may forward for @isync: the longest tid
 * and address, the isync's id and candidates, and "auth" */
static gsize
max_fsync_size (const RndzMessage *isync)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage fsync;

  rndz_message_init (&fsync, RNDZ_MESSAGE_FSYNC, G_MAXUINT32);
  g_strlcpy (fsync.id, isync->id, sizeof fsync.id);
  rndz_addr_parse (&fsync.addr, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", NULL);
  fsync.n_cands = isync->n_cands;
  memcpy (fsync.cands, isync->cands, sizeof fsync.cands);
  memcpy (fsync.fp, isync->fp, sizeof fsync.fp);
  fsync.auth = TRUE;
  return rndz_message_encode (&fsync, buf, sizeof buf);
}

/*
 * rndz_message_max_reply_size:
 *
 * The size of the largest message a server may send in answer to the
 * datagram @request: a UDP request is padded to at least this size,
 * since the server never answers a datagram with a larger one (it would
 * make it an amplifier for spoofed requests). For an isync that counts
 * the fsync it makes the server send its target too: the isync pays
 * for everything it causes.
 */
gsize
rndz_message_max_reply_size (const RndzMessage *request)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage reply;
  gsize size, caused = 0;

  /* The longest address and transaction id there are. (A rate-limited
   * or auth-required error, with the longest "retry", is shorter than
   * the answers to the requests that may get one: ping, isync, relay.) */
  rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, G_MAXUINT32);
  reply.code = RNDZ_WIRE_ERROR_PEER_NO_ANSWER;
  size = rndz_message_encode (&reply, buf, sizeof buf);

  rndz_addr_parse (&reply.addr, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", NULL);
  switch (request->type)
    {
    case RNDZ_MESSAGE_PING:
      reply.type = RNDZ_MESSAGE_PONG;
      break;
    case RNDZ_MESSAGE_ISYNC:
      reply.type = RNDZ_MESSAGE_REDIRECT;
      g_strlcpy (reply.id, request->target, sizeof reply.id);
      /* With as many of the longest candidates as there may be */
      reply.n_cands = RNDZ_MAX_CANDIDATES;
      for (guint i = 0; i < RNDZ_MAX_CANDIDATES; i++)
        reply.cands[i] = reply.addr;
      /* A secure requester gets the target's fingerprint back */
      if (request->fp[0] != '\0')
        memset (reply.fp, 'f', RNDZ_FP_LEN);
      caused = max_fsync_size (request);
      break;
    case RNDZ_MESSAGE_RELAY:
      /* It pays for both sessions it makes the server send */
      return MAX (size, relay_sessions_size (request));
    default:
      return size;
    }

  return MAX (size, rndz_message_encode (&reply, buf, sizeof buf)) + caused;
}

