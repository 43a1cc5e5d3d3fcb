/* rndz-message-codec-private.h: what only the message codec's files share
 *
 * SPDX-License-Identifier: MIT
 *
 * The codec is split by concern: rndz-message.c holds the tables below
 * and what every part needs; rndz-message-decode.c the checks before
 * parsing, json-glib and validation; rndz-message-fast.c the fast path
 * that decode calls; rndz-message-encode.c the encoder and framing;
 * rndz-message-auth.c the MAC. The arrows point to rndz-message.c (and
 * from decode to the fast path), never back. The rest of the library
 * includes rndz-message-private.h, not this.
 */

#pragma once

#include "rndz-message-private.h"

G_BEGIN_DECLS

extern const char * const rndz_message_type_names[RNDZ_MESSAGE_LAST + 1];
extern const char * const rndz_wire_error_names[RNDZ_WIRE_ERROR_LAST + 1];

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
  FIELD_ADDR_OPTIONAL = 1 << 7, /* addr, when set */
  FIELD_FP = 1 << 8,            /* optional */
  FIELD_SEEN = 1 << 9,          /* optional */
};

extern const guint rndz_message_type_fields[RNDZ_MESSAGE_LAST + 1];

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
  KEY_SRV,
  KEY_FP,
  KEY_SEEN,
  N_KEYS
} RndzKey;

/* With their lengths, which the fast path compares first */
typedef struct
{
  const char *name;
  gsize len;
} RndzKeyName;

extern const RndzKeyName rndz_message_key_names[N_KEYS];

typedef enum
{
  VALUE_ABSENT = 0,
  VALUE_OTHER,          /* null, a float, an array, an object */
  VALUE_STRING,
  VALUE_INT,
  VALUE_BOOL,
} RndzValueKind;

/* Longest string the fast path keeps for a known member: longer ones are
 * invalid anyway, and json-glib gets to say so. */
#define FAST_STRING_MAX 256

typedef struct
{
  RndzValueKind kind;
  const char *str;
  gint64 num;
} RndzValue;

typedef struct
{
  RndzValue values[N_KEYS];
  char scratch[N_KEYS][FAST_STRING_MAX + 1];
} RndzFields;

char     *rndz_message_format_cands          (const RndzMessage *msg,
                                              char               out[RNDZ_MAX_CANDIDATES * RNDZ_ADDR_STRLEN]);

/* Tries the fast path on @data; FALSE if json-glib must parse it */
gboolean  rndz_message_fields_from_flat_json (RndzFields            *fields,
                                              const char        *data,
                                              gsize              len);

G_END_DECLS
