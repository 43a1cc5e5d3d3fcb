/* rndz-message.c: the rendezvous protocol's messages and frames
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "rndz-message-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

static const char * const type_names[] = {
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

static const char * const wire_error_names[] = {
  [RNDZ_WIRE_ERROR_UNKNOWN] = "failed",
  [RNDZ_WIRE_ERROR_PEER_NOT_FOUND] = "peer-not-found",
  [RNDZ_WIRE_ERROR_PEER_NO_ANSWER] = "peer-no-answer",
  [RNDZ_WIRE_ERROR_SERVER_FULL] = "server-full",
  [RNDZ_WIRE_ERROR_BAD_REQUEST] = "bad-request",
  [RNDZ_WIRE_ERROR_ADDRESS_FAMILY] = "address-family",
  [RNDZ_WIRE_ERROR_NO_RELAY] = "no-relay",
  [RNDZ_WIRE_ERROR_RATE_LIMITED] = "rate-limited",
  [RNDZ_WIRE_ERROR_AUTH_REQUIRED] = "auth-required",
};

/* Which fields each message type carries */
enum
{
  FIELD_ID = 1 << 0,
  FIELD_TARGET = 1 << 1,
  FIELD_ADDR = 1 << 2,
  FIELD_CODE = 1 << 3,
  FIELD_CAND = 1 << 4,          /* optional */
  FIELD_TOKEN = 1 << 5,
  FIELD_PORT = 1 << 6,
};

static const guint type_fields[] = {
  [RNDZ_MESSAGE_INVALID] = 0,
  [RNDZ_MESSAGE_PING] = FIELD_ID | FIELD_CAND,
  [RNDZ_MESSAGE_PONG] = FIELD_ADDR,
  [RNDZ_MESSAGE_ISYNC] = FIELD_ID | FIELD_TARGET | FIELD_CAND,
  [RNDZ_MESSAGE_FSYNC] = FIELD_ID | FIELD_ADDR | FIELD_CAND,
  [RNDZ_MESSAGE_RSYNC] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_REDIRECT] = FIELD_ID | FIELD_ADDR | FIELD_CAND,
  [RNDZ_MESSAGE_BYE] = FIELD_ID,
  [RNDZ_MESSAGE_ERROR] = FIELD_CODE,
  [RNDZ_MESSAGE_CHECK] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_CONFIRM] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_USE] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_RELAY] = FIELD_ID | FIELD_TARGET,
  [RNDZ_MESSAGE_SESSION] = FIELD_ID | FIELD_TOKEN | FIELD_PORT,
  [RNDZ_MESSAGE_HELLO] = FIELD_ID | FIELD_TOKEN,
  [RNDZ_MESSAGE_WAIT] = 0,
  [RNDZ_MESSAGE_READY] = 0,
};

const char *
rndz_message_type_to_string (RndzMessageType type)
{
  if (type <= RNDZ_MESSAGE_INVALID || type > RNDZ_MESSAGE_LAST)
    return "invalid";
  return type_names[type];
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

/* Decoding */

static gboolean
invalid_field (GError     **error,
               const char  *type,
               const char  *field)
{
  g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD,
               _("Invalid or missing field “%s” in a “%s” message"), field, type);
  return FALSE;
}

/* json-glib 1.6 is more lenient than JSON, and hurts on some input: it
 * recurses once per nesting level without a limit, keeps the first of
 * several top-level values and leaks the others, turns \u0000 into a nul
 * that cuts a string short, and reads comments and single-quoted
 * strings, which could hide brackets from a scan that knows only JSON.
 * So before it sees anything, a message must be one object, with only
 * white space after it, no quote or slash outside double-quoted strings,
 * no \u0000, and at most RNDZ_MESSAGE_MAX_DEPTH levels. */
/* json-glib 1.6 reads escapes JSON does not have: octal ones (\0 cuts a
 * string short), and unknown ones like \q. Only JSON's escapes pass, and
 * not \u0000. @p points at the backslash. */
static gboolean
escape_is_json (const char  *p,
                gsize        left,
                GError     **error)
{
  if (left >= 2 && strchr ("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0')
    return TRUE;

  if (left >= 6 && p[1] == 'u' && g_ascii_isxdigit (p[2]) && g_ascii_isxdigit (p[3]) &&
      g_ascii_isxdigit (p[4]) && g_ascii_isxdigit (p[5]))
    {
      if (memcmp (p + 2, "0000", 4) != 0)
        return TRUE;

      g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                           _("Message contains a nul character"));
      return FALSE;
    }

  g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                       _("Message contains an invalid escape"));
  return FALSE;
}

static gboolean
prescan_json (const char  *data,
              gsize        len,
              GError     **error)
{
  gboolean in_string = FALSE;
  int depth = 0;
  gsize i = 0;

  while (i < len && g_ascii_isspace (data[i]))
    i++;
  if (i == len || data[i] != '{')
    goto not_object;

  for (; i < len; i++)
    {
      char c = data[i];

      if (in_string)
        {
          if (c == '"')
            in_string = FALSE;
          else if (c == '\\' && !escape_is_json (data + i, len - i, error))
            return FALSE;
          else if (c == '\\')
            i++;
          continue;
        }

      switch (c)
        {
        case '"':
          in_string = TRUE;
          break;
        case '{':
        case '[':
          if (++depth > RNDZ_MESSAGE_MAX_DEPTH)
            {
              g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                                   _("Message is nested too deeply"));
              return FALSE;
            }
          break;
        case '}':
        case ']':
          if (--depth == 0)
            {
              /* The end of the object: nothing but white space may follow */
              for (i++; i < len; i++)
                if (!g_ascii_isspace (data[i]))
                  goto not_object;
              return TRUE;
            }
          break;
        case '\'':
        case '/':
          goto not_object;
        default:
          break;
        }
    }

  /* Unterminated: json-glib says why */
  return TRUE;

not_object:
  g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                       _("Message is not a single JSON object"));
  return FALSE;
}

/* The members a message may have, read into one table from either
 * parser, so that validation is written once. */
typedef enum
{
  KEY_V,
  KEY_TYPE,
  KEY_TID,
  KEY_ID,
  KEY_TARGET,
  KEY_ADDR,
  KEY_CODE,
  KEY_AUTH,
  KEY_TS,
  KEY_NONCE,
  KEY_MAC,
  KEY_CAND,
  KEY_TOKEN,
  KEY_PORT,
  KEY_RETRY,
  N_KEYS
} Key;

static const char * const key_names[N_KEYS] = {
  "v", "type", "tid", "id", "target", "addr", "code", "auth", "ts", "nonce", "mac",
  "cand", "token", "port", "retry",
};

typedef enum
{
  VALUE_ABSENT = 0,
  VALUE_OTHER,          /* null, a float, an array, an object */
  VALUE_STRING,
  VALUE_INT,
  VALUE_BOOL,
} ValueKind;

/* Longest string the fast path keeps for a known member: longer ones are
 * invalid anyway, and json-glib gets to say so. */
#define FAST_STRING_MAX 256

typedef struct
{
  ValueKind kind;
  const char *str;
  gint64 num;
} Value;

typedef struct
{
  Value values[N_KEYS];
  char scratch[N_KEYS][FAST_STRING_MAX + 1];
} Fields;

/* Returns the integer member @key, or -1 if it is missing, not an
 * integer, or out of [0, max]. */
static gint64
get_uint (const Fields *fields,
          Key           key,
          gint64        max)
{
  const Value *value = &fields->values[key];

  if (value->kind != VALUE_INT || value->num < 0 || value->num > max)
    return -1;

  return value->num;
}

static const char *
get_string (const Fields *fields,
            Key           key)
{
  const Value *value = &fields->values[key];

  return value->kind == VALUE_STRING ? value->str : NULL;
}

static gboolean
decode_id (const Fields *fields,
           Key           key,
           char          out[RNDZ_ID_MAX_LEN + 1])
{
  const char *value = get_string (fields, key);

  if (value == NULL || !rndz_id_is_valid (value, -1))
    return FALSE;

  g_strlcpy (out, value, RNDZ_ID_MAX_LEN + 1);
  return TRUE;
}

static RndzWireError
wire_error_from_string (const char *code)
{
  for (guint i = 1; i < G_N_ELEMENTS (wire_error_names); i++)
    if (g_str_equal (code, wire_error_names[i]))
      return i;

  /* A code from a later version of the protocol */
  return RNDZ_WIRE_ERROR_UNKNOWN;
}

static gboolean
is_lower_hex (const char *text,
              gsize       len)
{
  if (strlen (text) != len)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isxdigit (text[i]) || g_ascii_isupper (text[i]))
      return FALSE;
  return TRUE;
}

/* Candidates: one to RNDZ_MAX_CANDIDATES addresses, separated by single
 * spaces */
static gboolean
decode_cands (RndzMessage *msg,
              const char  *text)
{
  const char *p = text;

  if (text == NULL)
    return FALSE;

  for (;;)
    {
      const char *end = strchr (p, ' ');
      char addr[RNDZ_ADDR_STRLEN];
      gsize len = end != NULL ? (gsize) (end - p) : strlen (p);

      if (msg->n_cands == RNDZ_MAX_CANDIDATES || len == 0 || len >= sizeof addr)
        return FALSE;
      memcpy (addr, p, len);
      addr[len] = '\0';
      if (!rndz_addr_parse (&msg->cands[msg->n_cands], addr, NULL))
        return FALSE;
      msg->n_cands++;

      if (end == NULL)
        return TRUE;
      p = end + 1;
    }
}

/* The candidates as they are written on the wire */
static char *
format_cands (const RndzMessage *msg,
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

/* The optional authentication fields: all three or none */
static gboolean
decode_auth (RndzMessage   *msg,
             const Fields  *fields,
             const char    *type_name,
             GError       **error)
{
  const Value *auth = &fields->values[KEY_AUTH];
  const char *nonce, *mac;
  gint64 ts;

  if ((msg->type == RNDZ_MESSAGE_FSYNC || msg->type == RNDZ_MESSAGE_SESSION) &&
      auth->kind != VALUE_ABSENT)
    {
      if (auth->kind != VALUE_BOOL)
        return invalid_field (error, type_name, "auth");
      msg->auth = auth->num != 0;
    }

  if (fields->values[KEY_MAC].kind == VALUE_ABSENT)
    return TRUE;

  ts = get_uint (fields, KEY_TS, G_MAXINT64);
  if (ts < 0)
    return invalid_field (error, type_name, "ts");
  nonce = get_string (fields, KEY_NONCE);
  if (nonce == NULL || !is_lower_hex (nonce, RNDZ_NONCE_LEN))
    return invalid_field (error, type_name, "nonce");
  mac = get_string (fields, KEY_MAC);
  if (mac == NULL || !is_lower_hex (mac, RNDZ_MAC_HEX_LEN))
    return invalid_field (error, type_name, "mac");

  msg->ts = ts;
  g_strlcpy (msg->nonce, nonce, sizeof msg->nonce);
  g_strlcpy (msg->mac, mac, sizeof msg->mac);
  return TRUE;
}

static gboolean
decode_fields (RndzMessage   *msg,
               const Fields  *fields,
               GError       **error)
{
  const char *type_name, *text;
  gint64 version, tid;
  guint members;

  version = get_uint (fields, KEY_V, G_MAXINT32);
  if (version < 0)
    return invalid_field (error, "?", "v");
  if (version < RNDZ_PROTOCOL_VERSION)
    {
      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION,
                   _("Unsupported protocol version %ld"), (long) version);
      return FALSE;
    }

  type_name = get_string (fields, KEY_TYPE);
  if (type_name == NULL)
    return invalid_field (error, "?", "type");
  for (guint i = 1; i < G_N_ELEMENTS (type_names); i++)
    if (g_str_equal (type_name, type_names[i]))
      msg->type = i;
  if (msg->type == RNDZ_MESSAGE_INVALID)
    {
      g_autofree char *valid = g_utf8_make_valid (type_name, -1);

      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE,
                   _("Unknown message type “%s”"), valid);
      return FALSE;
    }
  type_name = type_names[msg->type];

  tid = get_uint (fields, KEY_TID, G_MAXUINT32);
  if (tid < 0)
    return invalid_field (error, type_name, "tid");
  msg->tid = (guint32) tid;

  members = type_fields[msg->type];

  if ((members & FIELD_ID) && !decode_id (fields, KEY_ID, msg->id))
    return invalid_field (error, type_name, "id");

  if ((members & FIELD_TARGET) && !decode_id (fields, KEY_TARGET, msg->target))
    return invalid_field (error, type_name, "target");

  if (members & FIELD_ADDR)
    {
      text = get_string (fields, KEY_ADDR);
      if (text == NULL || !rndz_addr_parse (&msg->addr, text, NULL))
        return invalid_field (error, type_name, "addr");
    }

  if (members & FIELD_CODE)
    {
      text = get_string (fields, KEY_CODE);
      if (text == NULL)
        return invalid_field (error, type_name, "code");
      msg->code = wire_error_from_string (text);

      /* Optional; whoever does not know it waits as it always did */
      if (fields->values[KEY_RETRY].kind != VALUE_ABSENT)
        {
          gint64 retry = get_uint (fields, KEY_RETRY, RNDZ_WIRE_RETRY_MAX_MS);

          if (retry < RNDZ_WIRE_RETRY_MIN_MS)
            return invalid_field (error, type_name, "retry");
          msg->retry_ms = retry;
        }
    }

  if ((members & FIELD_CAND) && fields->values[KEY_CAND].kind != VALUE_ABSENT &&
      !decode_cands (msg, get_string (fields, KEY_CAND)))
    return invalid_field (error, type_name, "cand");

  if (members & FIELD_TOKEN)
    {
      text = get_string (fields, KEY_TOKEN);
      if (text == NULL || !is_lower_hex (text, RNDZ_TOKEN_LEN))
        return invalid_field (error, type_name, "token");
      g_strlcpy (msg->token, text, sizeof msg->token);
    }

  if (members & FIELD_PORT)
    {
      gint64 port = get_uint (fields, KEY_PORT, G_MAXUINT16);

      if (port <= 0)
        return invalid_field (error, type_name, "port");
      msg->port = port;
    }

  return decode_auth (msg, fields, type_name, error);
}

/* Reads the known members of a parsed JsonObject. The strings stay owned
 * by the parser. */
static void
fields_from_object (Fields     *fields,
                    JsonObject *object)
{
  memset (fields->values, 0, sizeof fields->values);

  for (guint k = 0; k < N_KEYS; k++)
    {
      JsonNode *node = json_object_get_member (object, key_names[k]);
      Value *value = &fields->values[k];

      if (node == NULL)
        continue;

      value->kind = VALUE_OTHER;
      if (!JSON_NODE_HOLDS_VALUE (node))
        continue;

      switch (json_node_get_value_type (node))
        {
        case G_TYPE_STRING:
          value->kind = VALUE_STRING;
          value->str = json_node_get_string (node);
          break;
        case G_TYPE_INT64:
          value->kind = VALUE_INT;
          value->num = json_node_get_int (node);
          break;
        case G_TYPE_BOOLEAN:
          value->kind = VALUE_BOOL;
          value->num = json_node_get_boolean (node);
          break;
        default:
          break;
        }
    }
}

/* The fast path
 *
 * json-glib's parser costs some 30,000 instructions a message, more than
 * everything else the server does with a ping together. Peers send flat
 * objects of plain strings, integers and booleans, and those are read
 * here directly. This reader is deliberately narrow: on anything
 * unusual (an escape in a string, a float, a nested value, a duplicate
 * member, odd white space...) it gives up and json-glib parses the
 * message, so it never accepts what json-glib would refuse. The tests
 * compare both on random input.
 */

typedef struct
{
  const char *p;
  const char *end;
} Scanner;

static void
skip_ws (Scanner *sc)
{
  while (sc->p < sc->end &&
         (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
    sc->p++;
}

/* A string without escapes or control characters; @start/@len point into
 * the input */
static gboolean
scan_string (Scanner     *sc,
             const char **start,
             gsize       *len)
{
  const char *p;

  if (sc->p >= sc->end || *sc->p != '"')
    return FALSE;

  for (p = sc->p + 1; p < sc->end; p++)
    {
      guchar c = *p;

      if (c == '"')
        {
          *start = sc->p + 1;
          *len = p - sc->p - 1;
          sc->p = p + 1;
          return TRUE;
        }
      if (c == '\\' || c < 0x20 || c == 0x7f)
        return FALSE;
    }

  return FALSE;
}

static gboolean
is_delimiter (Scanner *sc)
{
  return sc->p < sc->end &&
         (*sc->p == ',' || *sc->p == '}' || *sc->p == ' ' ||
          *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r');
}

static gboolean
scan_literal (Scanner    *sc,
              const char *word)
{
  gsize n = strlen (word);

  if ((gsize) (sc->end - sc->p) < n || memcmp (sc->p, word, n) != 0)
    return FALSE;
  sc->p += n;
  return is_delimiter (sc);
}

/* A plain integer: no sign, no leading zero, at most 18 digits */
static gboolean
scan_integer (Scanner *sc,
              gint64  *out)
{
  gint64 value = 0;
  guint digits = 0;

  if (sc->p < sc->end && *sc->p == '0' && sc->p + 1 < sc->end &&
      g_ascii_isdigit (sc->p[1]))
    return FALSE;

  while (sc->p < sc->end && g_ascii_isdigit (*sc->p))
    {
      if (++digits > 18)
        return FALSE;
      value = value * 10 + (*sc->p++ - '0');
    }

  *out = value;
  return digits > 0 && is_delimiter (sc);
}

static gboolean
scan_value (Scanner *sc,
            Value   *value,
            char    *scratch)
{
  const char *start;
  gsize len;

  if (sc->p >= sc->end)
    return FALSE;

  switch (*sc->p)
    {
    case '"':
      if (!scan_string (sc, &start, &len))
        return FALSE;
      if (scratch != NULL)
        {
          if (len > FAST_STRING_MAX || memchr (start, '\0', len) != NULL)
            return FALSE;
          memcpy (scratch, start, len);
          scratch[len] = '\0';
          value->str = scratch;
        }
      value->kind = VALUE_STRING;
      return TRUE;
    case 't':
      value->kind = VALUE_BOOL;
      value->num = TRUE;
      return scan_literal (sc, "true");
    case 'f':
      value->kind = VALUE_BOOL;
      value->num = FALSE;
      return scan_literal (sc, "false");
    case 'n':
      value->kind = VALUE_OTHER;
      return scan_literal (sc, "null");
    default:
      value->kind = VALUE_INT;
      return scan_integer (sc, &value->num);
    }
}

static gboolean
fields_from_flat_json (Fields     *fields,
                       const char *data,
                       gsize       len)
{
  Scanner sc = { data, data + len };
  struct { const char *name; gsize len; } unknown_names[32];
  guint n_unknown = 0;
  guint members = 0;

  memset (fields->values, 0, sizeof fields->values);

  skip_ws (&sc);
  if (sc.p >= sc.end || *sc.p++ != '{')
    return FALSE;
  skip_ws (&sc);

  if (sc.p < sc.end && *sc.p == '}')
    sc.p++;
  else
    for (;;)
      {
        const char *name;
        gsize name_len;
        Value unknown = { 0 };
        Value *value = &unknown;
        char *scratch = NULL;
        guint k;

        if (++members > 32 || !scan_string (&sc, &name, &name_len) || name_len == 0)
          return FALSE;

        for (k = 0; k < N_KEYS; k++)
          if (strlen (key_names[k]) == name_len && memcmp (key_names[k], name, name_len) == 0)
            break;

        if (k < N_KEYS)
          {
            /* json-glib keeps the last of duplicate members; let it */
            if (fields->values[k].kind != VALUE_ABSENT)
              return FALSE;
            value = &fields->values[k];
            scratch = fields->scratch[k];
          }
        else
          {
            /* Unknown members must still be unique */
            for (guint i = 0; i < n_unknown; i++)
              if (unknown_names[i].len == name_len &&
                  memcmp (unknown_names[i].name, name, name_len) == 0)
                return FALSE;
            unknown_names[n_unknown].name = name;
            unknown_names[n_unknown].len = name_len;
            n_unknown++;
          }

        skip_ws (&sc);
        if (sc.p >= sc.end || *sc.p++ != ':')
          return FALSE;
        skip_ws (&sc);
        if (!scan_value (&sc, value, scratch))
          return FALSE;
        skip_ws (&sc);

        if (sc.p < sc.end && *sc.p == ',')
          {
            sc.p++;
            skip_ws (&sc);
            continue;
          }
        if (sc.p < sc.end && *sc.p == '}')
          {
            sc.p++;
            break;
          }
        return FALSE;
      }

  skip_ws (&sc);
  return sc.p == sc.end;
}

/* Tests turn the fast path off to compare it with json-glib */
gboolean rndz_message_fast_path = TRUE;

static gboolean
finish_decode (RndzMessage   *msg,
               const Fields  *fields,
               GError       **error)
{
  if (!decode_fields (msg, fields, error))
    {
      msg->type = RNDZ_MESSAGE_INVALID;
      return FALSE;
    }

  return TRUE;
}

/*
 * rndz_message_decode:
 * @max_size: the largest message accepted, in bytes
 *
 * Decodes one message: the payload of a TCP frame or a UDP datagram. All
 * bounds are checked before json-glib parses anything. Fields that the
 * message type does not define are ignored.
 */
gboolean
rndz_message_decode (RndzMessage  *msg,
                     const char   *data,
                     gsize         len,
                     gsize         max_size,
                     GError      **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local_error = NULL;
  JsonNode *root;
  Fields fields;

  memset (msg, 0, sizeof *msg);

  if (len > max_size)
    {
      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_TOO_LARGE,
                   /* Not G_GSIZE_FORMAT: xgettext would cut the string short */
                   _("Message of %lu bytes is larger than the limit of %lu bytes"),
                   (gulong) len, (gulong) max_size);
      return FALSE;
    }

  if (len == 0)
    {
      g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_TRUNCATED,
                           _("Empty message"));
      return FALSE;
    }

  if (!g_utf8_validate_len (data, len, NULL))
    {
      g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING,
                           _("Message is not valid UTF-8"));
      return FALSE;
    }

  if (!prescan_json (data, len, error))
    return FALSE;

  if (rndz_message_fast_path && fields_from_flat_json (&fields, data, len))
    return finish_decode (msg, &fields, error);

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, len, &local_error))
    {
      /* json-glib may quote the input in its message: keep it UTF-8 */
      g_autofree char *reason = g_utf8_make_valid (local_error->message, -1);

      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                   _("Message is not valid JSON: %s"), reason);
      return FALSE;
    }

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                           _("Message is not a JSON object"));
      return FALSE;
    }

  fields_from_object (&fields, json_node_get_object (root));
  return finish_decode (msg, &fields, error);
}

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
  guint fields;

  g_return_val_if_fail (msg->type > RNDZ_MESSAGE_INVALID &&
                        msg->type <= RNDZ_MESSAGE_LAST, 0);

  fields = type_fields[msg->type];

  put_str (&w, "{\"v\":");
  put_number (&w, RNDZ_PROTOCOL_VERSION);
  put_str (&w, ",\"type\":\"");
  put_str (&w, type_names[msg->type]);
  put_str (&w, "\",\"tid\":");
  put_number (&w, msg->tid);

  if (fields & FIELD_ID)
    put_member (&w, "id", msg->id);
  if (fields & FIELD_TARGET)
    put_member (&w, "target", msg->target);
  if (fields & FIELD_ADDR)
    {
      char addr[RNDZ_ADDR_STRLEN];
      put_member (&w, "addr", rndz_addr_format (&msg->addr, addr));
    }
  if (fields & FIELD_CODE)
    put_member (&w, "code", wire_error_names[msg->code]);
  if ((fields & FIELD_CODE) && msg->retry_ms > 0)
    {
      put_str (&w, ",\"retry\":");
      put_number (&w, MIN (msg->retry_ms, RNDZ_WIRE_RETRY_MAX_MS));
    }
  if ((fields & FIELD_CAND) && msg->n_cands > 0)
    {
      char cands[RNDZ_MAX_CANDIDATES * RNDZ_ADDR_STRLEN];
      put_member (&w, "cand", format_cands (msg, cands));
    }
  if (fields & FIELD_TOKEN)
    put_member (&w, "token", msg->token);
  if (fields & FIELD_PORT)
    {
      put_str (&w, ",\"port\":");
      put_number (&w, msg->port);
    }
  if ((msg->type == RNDZ_MESSAGE_FSYNC || msg->type == RNDZ_MESSAGE_SESSION) && msg->auth)
    put_str (&w, ",\"auth\":true");
  if (msg->mac[0] != '\0')
    {
      put_str (&w, ",\"ts\":");
      put_number (&w, msg->ts);
      put_member (&w, "nonce", msg->nonce);
      put_member (&w, "mac", msg->mac);
    }

  /* ,"pad":"" is 9 bytes, then one byte per x, then the closing brace */
  if (msg->pad_to > w.len + 1)
    {
      gsize n = msg->pad_to > w.len + 1 + 9 ? msg->pad_to - w.len - 1 - 9 : 0;

      put_str (&w, ",\"pad\":\"");
      for (gsize i = 0; i < n && !w.overflow; i++)
        put (&w, "x", 1);
      put (&w, "\"", 1);
    }

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

/* Authentication
 *
 * The MAC covers the message's meaning, not its JSON: the fields joined
 * with NUL bytes (which no field can contain), in a fixed order, absent
 * ones empty. doc/protocol.md gives the same definition for other
 * implementations.
 */
static char *
compute_mac (const RndzMessage *msg,
             GBytes            *key)
{
  g_autoptr(GHmac) hmac = NULL;
  char number[32];
  char addr[RNDZ_ADDR_STRLEN] = "";
  guint fields = type_fields[msg->type];
  const char *parts[8];
  gsize key_len;
  const guint8 *key_data = g_bytes_get_data (key, &key_len);

  if (fields & FIELD_ADDR)
    rndz_addr_format (&msg->addr, addr);

  hmac = g_hmac_new (G_CHECKSUM_SHA256, key_data, key_len);
  parts[0] = "rndz1";
  parts[1] = type_names[msg->type];
  parts[2] = NULL;                            /* tid */
  parts[3] = (fields & FIELD_ID) ? msg->id : "";
  parts[4] = (fields & FIELD_TARGET) ? msg->target : "";
  parts[5] = addr;
  parts[6] = NULL;                            /* ts */
  parts[7] = msg->nonce;

  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      const char *part = parts[i];

      if (i == 2)
        part = (g_snprintf (number, sizeof number, "%u", msg->tid), number);
      else if (i == 6)
        part = (g_snprintf (number, sizeof number, "%" G_GINT64_FORMAT, msg->ts), number);
      if (i > 0)
        g_hmac_update (hmac, (const guchar *) "", 1);
      g_hmac_update (hmac, (const guchar *) part, strlen (part));
    }

  /* Candidates, when there are, are a ninth part */
  if ((fields & FIELD_CAND) && msg->n_cands > 0)
    {
      char cands[RNDZ_MAX_CANDIDATES * RNDZ_ADDR_STRLEN];

      g_hmac_update (hmac, (const guchar *) "", 1);
      format_cands (msg, cands);
      g_hmac_update (hmac, (const guchar *) cands, strlen (cands));
    }

  return g_strdup (g_hmac_get_string (hmac));
}

/*
 * rndz_message_sign:
 * @now_ms: the time, in milliseconds since the epoch
 *
 * Adds a timestamp, a fresh nonce and the MAC under @key.
 */
void
rndz_message_sign (RndzMessage *msg,
                   GBytes      *key,
                   gint64       now_ms)
{
  g_autofree char *mac = NULL;

  msg->ts = now_ms;
  g_snprintf (msg->nonce, sizeof msg->nonce, "%08x%08x", g_random_int (), g_random_int ());
  mac = compute_mac (msg, key);
  g_strlcpy (msg->mac, mac, sizeof msg->mac);
}

/*
 * rndz_message_verify:
 *
 * Checks the MAC of @msg under @key, in time independent of where they
 * differ. Freshness (timestamp, replays) is the caller's to check.
 */
gboolean
rndz_message_verify (const RndzMessage *msg,
                     GBytes            *key)
{
  g_autofree char *expected = NULL;
  guint8 diff = 0;

  if (msg->mac[0] == '\0')
    return FALSE;

  expected = compute_mac (msg, key);
  for (gsize i = 0; i < RNDZ_MAC_HEX_LEN; i++)
    diff |= expected[i] ^ msg->mac[i];

  return diff == 0;
}

/*
 * rndz_message_max_reply_size:
 *
 * The size of the largest message a server may send in answer to the
 * datagram @request: a UDP request is padded to at least this size,
 * since the server never answers a datagram with a larger one (it would
 * make it an amplifier for spoofed requests).
 */
gsize
rndz_message_max_reply_size (const RndzMessage *request)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage reply;
  gsize size;

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
      break;
    case RNDZ_MESSAGE_RELAY:
      reply.type = RNDZ_MESSAGE_SESSION;
      g_strlcpy (reply.id, request->target, sizeof reply.id);
      memset (reply.token, 'f', RNDZ_TOKEN_LEN);
      reply.port = G_MAXUINT16;
      break;
    default:
      return size;
    }

  return MAX (size, rndz_message_encode (&reply, buf, sizeof buf));
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
