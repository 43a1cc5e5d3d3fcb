/* rndz-message-decode.c: decoding messages
 *
 * SPDX-License-Identifier: MIT
 *
 * Bounds and a pre-scan before any parser, the json-glib path for what
 * the fast path (rndz-message-fast.c) does not take, and the validation
 * of the fields that either parser read.
 */

#include "config.h"

#include <json-glib/json-glib.h>
#include <string.h>

#include "rndz-message-codec-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

static gboolean
invalid_field (GError     **error,
               const char  *type,
               const char  *field)
{
  g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD,
               _("Invalid or missing field “%s” in a “%s” message"), field, type);
  return FALSE;
}

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
not_single_object (GError **error)
{
  g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                       _("Message is not a single JSON object"));
  return FALSE;
}

/* The end of the object is at @i: nothing but white space may follow */
static gboolean
only_space_after (const char  *data,
                  gsize        i,
                  gsize        len,
                  GError     **error)
{
  for (i++; i < len; i++)
    if (!g_ascii_isspace (data[i]))
      return not_single_object (error);
  return TRUE;
}

/* The pre-scan's state between two characters */
typedef struct
{
  gboolean in_string;
  int depth;
  gboolean done;          /* the object is closed */
} Prescan;

/* Looks at the character at @i outside a string; FALSE with @error set
 * if it makes the message unfit for json-glib */
static gboolean
prescan_char (Prescan     *scan,
              const char  *data,
              gsize        i,
              gsize        len,
              GError     **error)
{
  switch (data[i])
    {
    case '"':
      scan->in_string = TRUE;
      return TRUE;
    case '{':
    case '[':
      if (++scan->depth <= RNDZ_MESSAGE_MAX_DEPTH)
        return TRUE;
      g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_JSON,
                           _("Message is nested too deeply"));
      return FALSE;
    case '}':
    case ']':
      if (--scan->depth != 0)
        return TRUE;
      scan->done = TRUE;
      return only_space_after (data, i, len, error);
    case '\'':
    case '/':
      return not_single_object (error);
    default:
      return TRUE;
    }
}

/* json-glib 1.6 is more lenient than JSON, and hurts on some input: it
 * recurses once per nesting level without a limit, keeps the first of
 * several top-level values and leaks the others, turns \u0000 into a nul
 * that cuts a string short, and reads comments and single-quoted
 * strings, which could hide brackets from a scan that knows only JSON.
 * So before it sees anything, a message must be one object, with only
 * white space after it, no quote or slash outside double-quoted strings,
 * no \u0000, and at most RNDZ_MESSAGE_MAX_DEPTH levels. */
static gboolean
prescan_json (const char  *data,
              gsize        len,
              GError     **error)
{
  Prescan scan = { FALSE, 0, FALSE };
  gsize i = 0;

  while (i < len && g_ascii_isspace (data[i]))
    i++;
  if (i == len || data[i] != '{')
    return not_single_object (error);

  for (; i < len && !scan.done; i++)
    {
      char c = data[i];

      if (!scan.in_string)
        {
          if (!prescan_char (&scan, data, i, len, error))
            return FALSE;
        }
      else if (c == '"')
        scan.in_string = FALSE;
      else if (c == '\\' && !escape_is_json (data + i, len - i, error))
        return FALSE;
      else if (c == '\\')
        i++;
    }

  /* Closed, or unterminated: then json-glib says why */
  return TRUE;
}

/* Returns the integer member @key, or -1 if it is missing, not an
 * integer, or out of [0, max]. */
static gint64
get_uint (const RndzFields *fields,
          RndzKey           key,
          gint64            max)
{
  const RndzValue *value = &fields->values[key];

  if (value->kind != VALUE_INT || value->num < 0 || value->num > max)
    return -1;

  return value->num;
}

static const char *
get_string (const RndzFields *fields,
            RndzKey           key)
{
  const RndzValue *value = &fields->values[key];

  return value->kind == VALUE_STRING ? value->str : NULL;
}

static gboolean
decode_id (const RndzFields *fields,
           RndzKey           key,
           char              out[RNDZ_ID_MAX_LEN + 1])
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
  for (guint i = 1; i < G_N_ELEMENTS (rndz_wire_error_names); i++)
    if (g_str_equal (code, rndz_wire_error_names[i]))
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

/* The optional authentication fields: ts, nonce and mac all three or
 * none, and srv with them */
static gboolean
decode_auth (RndzMessage       *msg,
             const RndzFields  *fields,
             const char        *type_name,
             GError           **error)
{
  const RndzValue *auth = &fields->values[KEY_AUTH];
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
  /* Optional for the decoder: a MAC without it never verifies */
  if (fields->values[KEY_SRV].kind != VALUE_ABSENT)
    {
      const char *srv = get_string (fields, KEY_SRV);

      if (srv == NULL || !rndz_addr_parse (&msg->srv, srv, NULL))
        return invalid_field (error, type_name, "srv");
    }
  mac = get_string (fields, KEY_MAC);
  if (mac == NULL || !is_lower_hex (mac, RNDZ_MAC_HEX_LEN))
    return invalid_field (error, type_name, "mac");

  msg->ts = ts;
  g_strlcpy (msg->nonce, nonce, sizeof msg->nonce);
  g_strlcpy (msg->mac, mac, sizeof msg->mac);
  return TRUE;
}

/* The members every message has: "v", "type" and "tid". Sets
 * @type_name to the type's name for the errors that follow. */
static gboolean
decode_header (RndzMessage       *msg,
               const RndzFields  *fields,
               const char       **type_name,
               GError           **error)
{
  const char *name;
  gint64 version, tid;

  version = get_uint (fields, KEY_V, G_MAXINT32);
  if (version < 0)
    return invalid_field (error, "?", "v");
  if (version < RNDZ_PROTOCOL_VERSION)
    {
      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION,
                   _("Unsupported protocol version %ld"), (long) version);
      return FALSE;
    }

  name = get_string (fields, KEY_TYPE);
  if (name == NULL)
    return invalid_field (error, "?", "type");
  for (guint i = 1; i < G_N_ELEMENTS (rndz_message_type_names); i++)
    if (g_str_equal (name, rndz_message_type_names[i]))
      {
        msg->type = i;
        break;
      }
  if (msg->type == RNDZ_MESSAGE_INVALID)
    {
      g_autofree char *valid = g_utf8_make_valid (name, -1);

      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE,
                   _("Unknown message type “%s”"), valid);
      return FALSE;
    }
  *type_name = rndz_message_type_names[msg->type];

  tid = get_uint (fields, KEY_TID, G_MAXUINT32);
  if (tid < 0)
    return invalid_field (error, *type_name, "tid");
  msg->tid = (guint32) tid;
  return TRUE;
}

/* An error's "code", and its optional "retry" */
static gboolean
decode_code (RndzMessage       *msg,
             const RndzFields  *fields,
             const char        *type_name,
             GError           **error)
{
  const char *text = get_string (fields, KEY_CODE);

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

  return TRUE;
}

/* The relay's members: "token" and "port" */
static gboolean
decode_session (RndzMessage       *msg,
                const RndzFields  *fields,
                guint              members,
                const char        *type_name,
                GError           **error)
{
  if (members & FIELD_TOKEN)
    {
      const char *text = get_string (fields, KEY_TOKEN);

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

  return TRUE;
}

static gboolean
decode_fields (RndzMessage       *msg,
               const RndzFields  *fields,
               GError           **error)
{
  const char *type_name = NULL, *text;
  guint members;

  if (!decode_header (msg, fields, &type_name, error))
    return FALSE;

  members = rndz_message_type_fields[msg->type];

  if ((members & FIELD_ID) && !decode_id (fields, KEY_ID, msg->id))
    return invalid_field (error, type_name, "id");

  if ((members & FIELD_TARGET) && !decode_id (fields, KEY_TARGET, msg->target))
    return invalid_field (error, type_name, "target");

  if ((members & FIELD_ADDR) ||
      ((members & FIELD_ADDR_OPTIONAL) && fields->values[KEY_ADDR].kind != VALUE_ABSENT))
    {
      text = get_string (fields, KEY_ADDR);
      if (text == NULL || !rndz_addr_parse (&msg->addr, text, NULL))
        return invalid_field (error, type_name, "addr");
    }

  if ((members & FIELD_SEEN) && fields->values[KEY_SEEN].kind != VALUE_ABSENT)
    {
      text = get_string (fields, KEY_SEEN);
      if (text == NULL || !rndz_addr_parse (&msg->seen, text, NULL))
        return invalid_field (error, type_name, "seen");
    }

  if ((members & FIELD_CODE) && !decode_code (msg, fields, type_name, error))
    return FALSE;

  if ((members & FIELD_CAND) && fields->values[KEY_CAND].kind != VALUE_ABSENT &&
      !decode_cands (msg, get_string (fields, KEY_CAND)))
    return invalid_field (error, type_name, "cand");

  if ((members & FIELD_FP) && fields->values[KEY_FP].kind != VALUE_ABSENT)
    {
      text = get_string (fields, KEY_FP);
      if (text == NULL || !is_lower_hex (text, RNDZ_FP_LEN))
        return invalid_field (error, type_name, "fp");
      g_strlcpy (msg->fp, text, sizeof msg->fp);
    }

  if (!decode_session (msg, fields, members, type_name, error))
    return FALSE;

  return decode_auth (msg, fields, type_name, error);
}

/* Reads the known members of a parsed JsonObject. The strings stay owned
 * by the parser. */
static void
fields_from_object (RndzFields *fields,
                    JsonObject *object)
{
  memset (fields->values, 0, sizeof fields->values);

  for (guint k = 0; k < N_KEYS; k++)
    {
      JsonNode *node = json_object_get_member (object, rndz_message_key_names[k].name);
      RndzValue *value = &fields->values[k];

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

static gboolean
finish_decode (RndzMessage       *msg,
               const RndzFields  *fields,
               GError           **error)
{
  if (!decode_fields (msg, fields, error))
    {
      msg->type = RNDZ_MESSAGE_INVALID;
      return FALSE;
    }

  return TRUE;
}

/* What is checked before any parser sees the message */
static gboolean
check_bounds (const char  *data,
              gsize        len,
              gsize        max_size,
              GError     **error)
{
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

  return prescan_json (data, len, error);
}

/* The slow path, for what the fast one does not take. The fields point
 * into the parser's strings, so they are validated while it lives. */
static gboolean
decode_with_json_glib (RndzMessage  *msg,
                       const char   *data,
                       gsize         len,
                       GError      **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  g_autoptr(GError) local_error = NULL;
  JsonNode *root;
  RndzFields fields;

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
  RndzFields fields;

  memset (msg, 0, sizeof *msg);

  if (!check_bounds (data, len, max_size, error))
    return FALSE;

  if (rndz_message_fast_path && rndz_message_fields_from_flat_json (&fields, data, len))
    return finish_decode (msg, &fields, error);

  return decode_with_json_glib (msg, data, len, error);
}
