/* fuzz-decode.c: libFuzzer harness for the frame and message codec
 *
 * SPDX-License-Identifier: MIT
 *
 * The input is arbitrary bytes, read two ways:
 *
 *  - as a UDP datagram: the whole input is one message;
 *  - as a TCP stream: rndz_frame_peek() finds the frames at its start,
 *    and each complete frame's payload is one message, as
 *    rndz-channel.c reads them.
 *
 * Every message is decoded twice, with the fast path and with json-glib
 * alone (rndz_message_fast_path = FALSE); both must give the same verdict,
 * the same error domain and code, and the same decoded struct. A message
 * that decodes must encode again, and the encoding must decode to the same
 * struct, both as a message and as a frame. A message that decodes may use
 * only JSON's own string escapes (json-glib 1.6 also reads octal ones,
 * "\0" among them, and drops the backslash of unknown ones), and every
 * error message must be UTF-8. Any difference aborts, and libFuzzer keeps
 * the input.
 *
 * RNDZ_FUZZ_SKIP=escapes,error-utf8 in the environment skips those two
 * checks, to look for other bugs while a reported one is open.
 *
 * Run it from a build configured with CC=clang -Dfuzzing=true (see
 * doc/security.md); `meson test --suite fuzz` runs it for a bounded time
 * over tests/fuzz/corpus/decode.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rndz-message-private.h"
#include "rndz-types.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gboolean skip_escapes;
static gboolean skip_error_utf8;

typedef struct
{
  gboolean ok;
  GQuark domain;
  int code;
  RndzMessage msg;
} Outcome;

static void
fail (const char    *what,
      const guint8  *data,
      gsize          len,
      const Outcome *fast,
      const Outcome *slow)
{
  g_autofree char *copy = g_strndup ((const char *) data, len);
  g_autofree char *escaped = g_strescape (copy, NULL);

  fprintf (stderr, "fuzz-decode: %s\n  input (%zu bytes, shown up to a NUL): \"%s\"\n",
           what, (size_t) len, escaped);
  if (fast != NULL && slow != NULL)
    fprintf (stderr,
             "  fast path: ok=%d domain=%s code=%d type=%d tid=%u id=\"%s\" target=\"%s\"\n"
             "  json-glib: ok=%d domain=%s code=%d type=%d tid=%u id=\"%s\" target=\"%s\"\n",
             fast->ok, fast->domain ? g_quark_to_string (fast->domain) : "-", fast->code,
             fast->msg.type, fast->msg.tid, fast->msg.id, fast->msg.target,
             slow->ok, slow->domain ? g_quark_to_string (slow->domain) : "-", slow->code,
             slow->msg.type, slow->msg.tid, slow->msg.id, slow->msg.target);
  abort ();
}

static Outcome
decode_with (gboolean      fast,
             const guint8 *data,
             gsize         len,
             gsize         max_size)
{
  g_autoptr(GError) error = NULL;
  Outcome outcome;

  /* The struct is compared whole, padding included */
  memset (&outcome, 0, sizeof outcome);
  rndz_message_fast_path = fast;
  outcome.ok = rndz_message_decode (&outcome.msg, (const char *) data, len, max_size, &error);
  rndz_message_fast_path = TRUE;

  if (outcome.ok != (error == NULL))
    fail ("decode() returned a verdict that disagrees with its error", data, len, NULL, NULL);
  if (error != NULL)
    {
      outcome.domain = error->domain;
      outcome.code = error->code;
      if (error->domain != RNDZ_PROTOCOL_ERROR)
        fail ("decode() failed outside the RNDZ_PROTOCOL_ERROR domain", data, len, NULL, NULL);
      if (error->message == NULL ||
          (!skip_error_utf8 && !g_utf8_validate (error->message, -1, NULL)))
        fail ("decode() wrote an error message that is not UTF-8", data, len, NULL, NULL);
    }
  else if (outcome.msg.type <= RNDZ_MESSAGE_INVALID || outcome.msg.type > RNDZ_MESSAGE_LAST)
    fail ("decode() accepted a message without a valid type", data, len, NULL, NULL);
  return outcome;
}

/* Whether every backslash in a string of @data starts one of JSON's own
 * escapes: \" \\ \/ \b \f \n \r \t or \u and four hex digits */
static gboolean
has_only_json_escapes (const guint8 *data,
                       gsize         len)
{
  gboolean in_string = FALSE;

  for (gsize i = 0; i < len; i++)
    {
      if (!in_string)
        {
          in_string = data[i] == '"';
          continue;
        }
      if (data[i] == '"')
        in_string = FALSE;
      else if (data[i] == '\\')
        {
          if (i + 1 >= len)
            return FALSE;
          if (data[i + 1] == 'u')
            {
              if (i + 5 >= len)
                return FALSE;
              for (gsize k = 2; k < 6; k++)
                if (!g_ascii_isxdigit (data[i + k]))
                  return FALSE;
              i += 5;
            }
          else if (strchr ("\"\\/bfnrt", data[i + 1]) == NULL || data[i + 1] == '\0')
            return FALSE;
          else
            i++;
        }
    }

  return TRUE;
}

/* The message as the encoder writes it decodes to itself */
static void
check_round_trip (const guint8      *data,
                  gsize              len,
                  const RndzMessage *msg)
{
  char buf[4096];
  RndzMessage again;
  gsize n;
  gssize payload;
  g_autoptr(GError) error = NULL;

  n = rndz_message_encode (msg, buf, sizeof buf);
  if (n == 0)
    fail ("a decoded message does not encode", data, len, NULL, NULL);
  if (n > RNDZ_MESSAGE_DEFAULT_MAX_SIZE)
    fail ("a decoded message encodes longer than the message size limit", data, len, NULL, NULL);
  if (!rndz_message_decode (&again, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, &error))
    {
      fprintf (stderr, "re-encoded: %s\nerror: %s\n", buf, error->message);
      fail ("a decoded message, encoded again, does not decode", data, len, NULL, NULL);
    }
  if (memcmp (&again, msg, sizeof again) != 0)
    {
      fprintf (stderr, "re-encoded: %s\n", buf);
      fail ("a decoded message, encoded and decoded again, differs", data, len, NULL, NULL);
    }

  /* The same as a frame */
  n = rndz_message_encode_frame (msg, buf, sizeof buf);
  payload = rndz_frame_peek ((const guint8 *) buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL);
  if (n == 0 || payload != (gssize) (n - RNDZ_FRAME_HEADER_SIZE))
    fail ("an encoded frame does not peek as one frame", data, len, NULL, NULL);
  /* A frame cut short is incomplete, never an error */
  if (rndz_frame_peek ((const guint8 *) buf, n - 1, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) != 0)
    fail ("a frame cut short does not peek as incomplete", data, len, NULL, NULL);
  if (!rndz_message_decode (&again, buf + RNDZ_FRAME_HEADER_SIZE, payload,
                            RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL) ||
      memcmp (&again, msg, sizeof again) != 0)
    fail ("an encoded frame does not decode to the message", data, len, NULL, NULL);
}

/* Decodes one message both ways and checks what both agree on */
static void
check_message (const guint8 *data,
               gsize         len,
               gsize         max_size)
{
  /* An exact-size copy: ASan sees any read past the end */
  g_autofree guint8 *copy = g_memdup2 (data, len);
  Outcome fast = decode_with (TRUE, copy, len, max_size);
  Outcome slow = decode_with (FALSE, copy, len, max_size);

  if (fast.ok != slow.ok || fast.domain != slow.domain || fast.code != slow.code ||
      memcmp (&fast.msg, &slow.msg, sizeof fast.msg) != 0)
    fail ("the fast path and json-glib disagree", data, len, &fast, &slow);

  if (fast.ok && !skip_escapes && !has_only_json_escapes (data, len))
    fail ("a message with an escape that JSON does not have decodes", data, len, &fast, &slow);

  if (fast.ok)
    check_round_trip (data, len, &fast.msg);
}

/* The frames at the start of @data, as a TCP receiver reads them */
static void
check_stream (const guint8 *data,
              gsize         len,
              gsize         max_size)
{
  gsize offset = 0;

  while (offset < len)
    {
      g_autoptr(GError) error = NULL;
      gsize available = len - offset;
      gssize payload = rndz_frame_peek (data + offset, available, max_size, &error);
      gsize announced = available >= 2 ? ((gsize) data[offset] << 8 | data[offset + 1]) : 0;

      if (payload < 0)
        {
          if (error == NULL || error->domain != RNDZ_PROTOCOL_ERROR ||
              (announced == 0) != (error->code == RNDZ_PROTOCOL_ERROR_TRUNCATED) ||
              (announced > max_size) != (error->code == RNDZ_PROTOCOL_ERROR_TOO_LARGE))
            fail ("frame_peek() refused a frame for the wrong reason", data, len, NULL, NULL);
          return;
        }
      if (error != NULL)
        fail ("frame_peek() set an error without refusing", data, len, NULL, NULL);
      if (payload == 0)
        {
          if (available >= 2 && available >= 2 + announced)
            fail ("frame_peek() wants more of a complete frame", data, len, NULL, NULL);
          return;
        }
      if ((gsize) payload != announced || announced > max_size || announced == 0)
        fail ("frame_peek() returned another length than the header's", data, len, NULL, NULL);

      check_message (data + offset + RNDZ_FRAME_HEADER_SIZE, payload, max_size);
      offset += RNDZ_FRAME_HEADER_SIZE + payload;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static gsize initialized;

  if (g_once_init_enter (&initialized))
    {
      const char *skip = g_getenv ("RNDZ_FUZZ_SKIP");

      skip_escapes = skip != NULL && strstr (skip, "escapes") != NULL;
      skip_error_utf8 = skip != NULL && strstr (skip, "error-utf8") != NULL;
      g_once_init_leave (&initialized, 1);
    }

  /* A datagram */
  check_message (data, size, RNDZ_MESSAGE_DEFAULT_MAX_SIZE);

  /* A stream of frames */
  check_stream (data, size, RNDZ_MESSAGE_DEFAULT_MAX_SIZE);
  return 0;
}
