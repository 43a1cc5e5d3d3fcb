/* rndz-message-fast.c: decoding flat messages without json-glib
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-message-codec-private.h"

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
scan_value (Scanner   *sc,
            RndzValue *value,
            char      *scratch)
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

/* Member names that are not one of the keys: they must still be unique */
#define MAX_MEMBERS 32

typedef struct
{
  struct { const char *name; gsize len; } names[MAX_MEMBERS];
  guint n_names;
} UnknownNames;

static guint
find_key (const char *name,
          gsize       name_len)
{
  guint k;

  for (k = 0; k < N_KEYS; k++)
    if (rndz_message_key_names[k].len == name_len &&
        memcmp (rndz_message_key_names[k].name, name, name_len) == 0)
      break;
  return k;
}

static gboolean
add_unknown (UnknownNames *unknown,
             const char   *name,
             gsize         name_len)
{
  for (guint i = 0; i < unknown->n_names; i++)
    if (unknown->names[i].len == name_len &&
        memcmp (unknown->names[i].name, name, name_len) == 0)
      return FALSE;
  unknown->names[unknown->n_names].name = name;
  unknown->names[unknown->n_names].len = name_len;
  unknown->n_names++;
  return TRUE;
}

/* One "name": value pair, with the white space around the colon and
 * after the value */
static gboolean
scan_member (Scanner      *sc,
             RndzFields   *fields,
             UnknownNames *unknown)
{
  const char *name;
  gsize name_len;
  RndzValue other = { 0 };
  RndzValue *value = &other;
  char *scratch = NULL;
  guint k;

  if (!scan_string (sc, &name, &name_len) || name_len == 0)
    return FALSE;

  k = find_key (name, name_len);
  if (k < N_KEYS)
    {
      /* json-glib keeps the last of duplicate members; let it */
      if (fields->values[k].kind != VALUE_ABSENT)
        return FALSE;
      value = &fields->values[k];
      scratch = fields->scratch[k];
    }
  else if (!add_unknown (unknown, name, name_len))
    return FALSE;

  skip_ws (sc);
  if (sc->p >= sc->end || *sc->p++ != ':')
    return FALSE;
  skip_ws (sc);
  if (!scan_value (sc, value, scratch))
    return FALSE;
  skip_ws (sc);
  return TRUE;
}

/* The members of a non-empty object, up to its closing brace */
static gboolean
scan_members (Scanner    *sc,
              RndzFields *fields)
{
  UnknownNames unknown;
  guint members = 0;

  unknown.n_names = 0;
  for (;;)
    {
      if (++members > MAX_MEMBERS || !scan_member (sc, fields, &unknown))
        return FALSE;

      if (sc->p < sc->end && *sc->p == ',')
        {
          sc->p++;
          skip_ws (sc);
          continue;
        }
      if (sc->p < sc->end && *sc->p == '}')
        {
          sc->p++;
          return TRUE;
        }
      return FALSE;
    }
}

gboolean
rndz_message_fields_from_flat_json (RndzFields *fields,
                                    const char *data,
                                    gsize       len)
{
  Scanner sc = { data, data + len };

  memset (fields->values, 0, sizeof fields->values);

  skip_ws (&sc);
  if (sc.p >= sc.end || *sc.p++ != '{')
    return FALSE;
  skip_ws (&sc);

  if (sc.p < sc.end && *sc.p == '}')
    sc.p++;
  else if (!scan_members (&sc, fields))
    return FALSE;

  skip_ws (&sc);
  return sc.p == sc.end;
}

/* Tests turn the fast path off to compare it with json-glib */
gboolean rndz_message_fast_path = TRUE;

