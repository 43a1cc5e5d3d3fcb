/* rndz-message.c: the protocol's messages: types, fields, ids, errors
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-message-codec-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

const char * const rndz_message_type_names[RNDZ_MESSAGE_LAST + 1] = {
  [RNDZ_MESSAGE_INVALID] = NULL,
  [RNDZ_MESSAGE_PING] = "ping",
  [RNDZ_MESSAGE_PONG] = "pong",
  [RNDZ_MESSAGE_ISYNC] = "isync",
  [RNDZ_MESSAGE_FSYNC] = "fsync",
  [RNDZ_MESSAGE_RSYNC] = "rsync",
  [RNDZ_MESSAGE_REDIRECT] = "redirect",
  [RNDZ_MESSAGE_BYE] = "bye",
  [RNDZ_MESSAGE_ERROR] = "error",
  [RNDZ_MESSAGE_CHECK] = "check",
  [RNDZ_MESSAGE_CONFIRM] = "confirm",
  [RNDZ_MESSAGE_USE] = "use",
  [RNDZ_MESSAGE_RELAY] = "relay",
  [RNDZ_MESSAGE_SESSION] = "session",
  [RNDZ_MESSAGE_HELLO] = "hello",
  [RNDZ_MESSAGE_WAIT] = "wait",
  [RNDZ_MESSAGE_READY] = "ready",
};

const char * const rndz_wire_error_names[RNDZ_WIRE_ERROR_LAST + 1] = {
  [RNDZ_WIRE_ERROR_UNKNOWN] = "failed",
  [RNDZ_WIRE_ERROR_PEER_NOT_FOUND] = "peer-not-found",
  [RNDZ_WIRE_ERROR_PEER_NO_ANSWER] = "peer-no-answer",
  [RNDZ_WIRE_ERROR_SERVER_FULL] = "server-full",
  [RNDZ_WIRE_ERROR_BAD_REQUEST] = "bad-request",
  [RNDZ_WIRE_ERROR_ADDRESS_FAMILY] = "address-family",
  [RNDZ_WIRE_ERROR_NO_RELAY] = "no-relay",
  [RNDZ_WIRE_ERROR_RATE_LIMITED] = "rate-limited",
  [RNDZ_WIRE_ERROR_AUTH_REQUIRED] = "auth-required",
  [RNDZ_WIRE_ERROR_UNAVAILABLE] = "unavailable",
};

const guint rndz_message_type_fields[RNDZ_MESSAGE_LAST + 1] = {
  [RNDZ_MESSAGE_INVALID] = 0,
  [RNDZ_MESSAGE_PING] = FIELD_ID | FIELD_CAND,
  [RNDZ_MESSAGE_PONG] = FIELD_ADDR,
  [RNDZ_MESSAGE_ISYNC] = FIELD_ID | FIELD_TARGET | FIELD_CAND | FIELD_FP,
  [RNDZ_MESSAGE_FSYNC] = FIELD_ID | FIELD_ADDR | FIELD_CAND | FIELD_FP,
  [RNDZ_MESSAGE_RSYNC] = FIELD_ID | FIELD_TARGET | FIELD_FP,
  [RNDZ_MESSAGE_REDIRECT] = FIELD_ID | FIELD_ADDR | FIELD_SEEN | FIELD_CAND | FIELD_FP,
  [RNDZ_MESSAGE_BYE] = FIELD_ID,
  [RNDZ_MESSAGE_ERROR] = FIELD_CODE,
  [RNDZ_MESSAGE_CHECK] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_CONFIRM] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_USE] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_RELAY] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_SESSION] = FIELD_ID | FIELD_ADDR_OPTIONAL | FIELD_TOKEN | FIELD_PORT,
  [RNDZ_MESSAGE_HELLO] = FIELD_ID | FIELD_TOKEN,
  [RNDZ_MESSAGE_WAIT] = 0,
  [RNDZ_MESSAGE_READY] = 0,
};

#define KEY_NAME(name) { name, sizeof name - 1 }

const RndzKeyName rndz_message_key_names[N_KEYS] = {
  KEY_NAME ("v"), KEY_NAME ("type"), KEY_NAME ("tid"), KEY_NAME ("id"), KEY_NAME ("target"),
  KEY_NAME ("addr"), KEY_NAME ("code"), KEY_NAME ("auth"), KEY_NAME ("ts"), KEY_NAME ("nonce"),
  KEY_NAME ("mac"), KEY_NAME ("cand"), KEY_NAME ("token"), KEY_NAME ("port"), KEY_NAME ("retry"),
  KEY_NAME ("srv"), KEY_NAME ("fp"), KEY_NAME ("seen"),
};

const char *
rndz_message_type_to_string (RndzMessageType type)
{
  if (type <= RNDZ_MESSAGE_INVALID || type > RNDZ_MESSAGE_LAST)
    return "invalid";
  return rndz_message_type_names[type];
}

/*
 * rndz_id_is_valid:
 * @len: the length of @id in bytes, or -1 if it is nul-terminated
 *
 * A peer id is 1 to 64 bytes of UTF-8 without control characters.
 */
gboolean
rndz_id_is_valid (const char *id,
                  gssize      len)
{
  const char *p;

  if (len < 0)
    len = strlen (id);
  if (len < 1 || len > RNDZ_ID_MAX_LEN)
    return FALSE;

  /* Printable ASCII, the usual id, needs no decoding */
  for (p = id; p < id + len && (guchar) *p >= 0x20 && (guchar) *p < 0x7f; p++)
    ;
  if (p == id + len)
    return TRUE;

  if (!g_utf8_validate_len (id, len, NULL))
    return FALSE;

  for (p = id; p < id + len; p = g_utf8_next_char (p))
    if (g_unichar_iscntrl (g_utf8_get_char (p)))
      return FALSE;

  return TRUE;
}

/**
 * rndz_is_valid_id:
 * @id: a peer id
 *
 * Checks whether @id can be a peer's id: 1 to 64 bytes of UTF-8 without
 * control characters.
 *
 * Returns: %TRUE if @id is valid
 *
 * Since: 1.0
 */
gboolean
rndz_is_valid_id (const char *id)
{
  g_return_val_if_fail (id != NULL, FALSE);

  return rndz_id_is_valid (id, -1);
}

void
rndz_message_init (RndzMessage     *msg,
                   RndzMessageType  type,
                   guint32          tid)
{
  memset (msg, 0, sizeof *msg);
  msg->type = type;
  msg->tid = tid;
}

/* The candidates as they are written on the wire */
char *
rndz_message_format_cands (const RndzMessage *msg,
                           char               out[RNDZ_MAX_CANDIDATES * RNDZ_ADDR_STRLEN])
{
  out[0] = '\0';
  for (guint i = 0; i < msg->n_cands && i < RNDZ_MAX_CANDIDATES; i++)
    {
      char addr[RNDZ_ADDR_STRLEN];

      if (i > 0)
        strcat (out, " ");
      strcat (out, rndz_addr_format (&msg->cands[i], addr));
    }
  return out;
}

/*
 * rndz_wire_error_to_gerror:
 *
 * Turns the code of an error message from the server into a #GError in
 * the %RNDZ_ERROR domain.
 */
GError *
rndz_wire_error_to_gerror (RndzWireError  code,
                           const char    *peer_id)
{
  switch (code)
    {
    case RNDZ_WIRE_ERROR_PEER_NOT_FOUND:
      return g_error_new (RNDZ_ERROR, RNDZ_ERROR_PEER_NOT_FOUND,
                          _("Peer “%s” is not registered with the server"), peer_id);
    case RNDZ_WIRE_ERROR_PEER_NO_ANSWER:
      return g_error_new (RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER,
                          _("Peer “%s” did not answer the connection request"), peer_id);
    case RNDZ_WIRE_ERROR_SERVER_FULL:
      return g_error_new_literal (RNDZ_ERROR, RNDZ_ERROR_SERVER_FULL,
                                  _("The server is full"));
    case RNDZ_WIRE_ERROR_BAD_REQUEST:
      return g_error_new_literal (RNDZ_ERROR, RNDZ_ERROR_BAD_REQUEST,
                                  _("The server did not accept the request"));
    case RNDZ_WIRE_ERROR_ADDRESS_FAMILY:
      return g_error_new (RNDZ_ERROR, RNDZ_ERROR_ADDRESS_FAMILY,
                          _("Peer “%s” is registered over the other IP version"), peer_id);
    case RNDZ_WIRE_ERROR_NO_RELAY:
      return g_error_new (RNDZ_ERROR, RNDZ_ERROR_NO_PATH,
                          _("No path to peer “%s” works, and the server does not relay"), peer_id);
    case RNDZ_WIRE_ERROR_RATE_LIMITED:
      return g_error_new_literal (RNDZ_ERROR, RNDZ_ERROR_RATE_LIMITED,
                                  _("The server limits requests; try again later"));
    case RNDZ_WIRE_ERROR_AUTH_REQUIRED:
      return g_error_new_literal (RNDZ_ERROR, RNDZ_ERROR_AUTH_REQUIRED,
                                  _("The server requires a key (authentication)"));
    case RNDZ_WIRE_ERROR_UNAVAILABLE:
      return g_error_new (RNDZ_ERROR, RNDZ_ERROR_SERVER_UNAVAILABLE,
                          _("The server cannot look up peer “%s” now (its cluster is unavailable)"),
                          peer_id);
    case RNDZ_WIRE_ERROR_UNKNOWN:
    default:
      return g_error_new_literal (RNDZ_ERROR, RNDZ_ERROR_FAILED,
                                  _("The server reported a failure"));
    }
}

/*
 * rndz_message_error_to_gerror:
 *
 * Like rndz_wire_error_to_gerror() for the error message @msg, with what
 * else it says: a rate-limited error tells when to try again.
 */
GError *
rndz_message_error_to_gerror (const RndzMessage *msg,
                              const char        *peer_id)
{
  if (msg->code == RNDZ_WIRE_ERROR_RATE_LIMITED && msg->retry_ms > 0)
    return g_error_new (RNDZ_ERROR, RNDZ_ERROR_RATE_LIMITED,
                        /* Translators: %u is a number of milliseconds */
                        _("The server limits requests; try again in %u ms"),
                        msg->retry_ms);

  return rndz_wire_error_to_gerror (msg->code, peer_id);
}
