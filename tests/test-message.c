/* test-message.c: tests of the message, frame and address codec
 *
 * SPDX-License-Identifier: MIT
 *
 * The codec is what the server and the clients trust to keep untrusted
 * bytes away from json-glib and from the registry, so besides round trips
 * this checks every refusal with its precise error code, and runs seeded
 * random mutations of valid messages (rerun a failure with --seed).
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <gio/gio.h>

#include <rndz-glib/rndz.h>

#include "rndz-addr-private.h"
#include "rndz-message-private.h"
#include "rndz-test-util.h"
#include "rndz-types.h"

#define DEFAULT_MAX RNDZ_MESSAGE_DEFAULT_MAX_SIZE

/* Helpers */

static void
assert_messages_equal (const RndzMessage *a,
                       const RndzMessage *b)
{
  g_assert_cmpint (a->type, ==, b->type);
  g_assert_cmpuint (a->tid, ==, b->tid);
  g_assert_cmpint (a->code, ==, b->code);
  g_assert_cmpstr (a->id, ==, b->id);
  g_assert_cmpstr (a->target, ==, b->target);
  g_assert_cmpuint (a->addr.family, ==, b->addr.family);
  g_assert_cmpuint (a->addr.port, ==, b->addr.port);
  g_assert_cmpmem (a->addr.bytes, sizeof a->addr.bytes, b->addr.bytes, sizeof b->addr.bytes);
  g_assert_cmpuint (a->n_cands, ==, b->n_cands);
  for (guint i = 0; i < a->n_cands && i < RNDZ_MAX_CANDIDATES; i++)
    g_assert_true (rndz_addr_equal (&a->cands[i], &b->cands[i]));
  g_assert_cmpstr (a->token, ==, b->token);
  g_assert_cmpuint (a->port, ==, b->port);
  g_assert_cmpint (a->auth, ==, b->auth);
  g_assert_cmpstr (a->fp, ==, b->fp);
  g_assert_true (rndz_addr_equal (&a->seen, &b->seen) || (a->seen.family == 0 && b->seen.family == 0));
}

static void
decode_ok (RndzMessage *msg,
           const char  *json)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  ok = rndz_message_decode (msg, json, strlen (json), DEFAULT_MAX, &error);
  g_assert_no_error (error);
  g_assert_true (ok);
}

/* Decodes @data (@len bytes, or up to the nul if -1) and checks that it
 * fails with @code in the RNDZ_PROTOCOL_ERROR domain. */
static void
assert_decode_fails (const char *data,
                     gssize      len,
                     gsize       max_size,
                     int         code)
{
  g_autoptr(GError) error = NULL;
  RndzMessage msg;
  gboolean ok;

  if (len < 0)
    len = strlen (data);

  ok = rndz_message_decode (&msg, data, len, max_size, &error);
  g_assert_error (error, RNDZ_PROTOCOL_ERROR, code);
  g_assert_false (ok);
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_INVALID);
}

/* Sets the candidates of @msg from their wire form: addresses separated
 * by single spaces */
static void
set_cands (RndzMessage *msg,
           const char  *list)
{
  g_auto(GStrv) parts = g_strsplit (list, " ", -1);

  msg->n_cands = 0;
  for (guint i = 0; parts[i] != NULL; i++)
    {
      g_assert_cmpuint (msg->n_cands, <, RNDZ_MAX_CANDIDATES);
      msg->cands[msg->n_cands++] = rndz_test_addr (parts[i]);
    }
}

/* Decodes @json and checks that it fails with INVALID_FIELD naming
 * @field */
static void
assert_invalid_field (const char *json,
                      const char *field)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *quoted = g_strdup_printf ("“%s”", field);
  RndzMessage msg;
  gboolean ok;

  ok = rndz_message_decode (&msg, json, strlen (json), DEFAULT_MAX, &error);
  g_assert_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_assert_false (ok);
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_INVALID);
  if (strstr (error->message, quoted) == NULL)
    g_error ("“%s” failed on another field than %s: %s", json, quoted, error->message);
}

/* A string of @n copies of @unit */
static char *
repeat (const char *unit,
        guint       n)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < n; i++)
    g_string_append (s, unit);
  return g_string_free (s, FALSE);
}

/* Encoding and round trips
 *
 * Each case is encoded and compared with its exact JSON, and both the
 * encoder's output and the expected JSON must decode to the same message.
 */

typedef struct
{
  const char *name;
  RndzMessageType type;
  guint32 tid;
  const char *id;
  const char *target;
  const char *addr;
  RndzWireError code;
  const char *json;
  /* Fields of the candidates and the relay */
  const char *cand;    /* the wire form, or NULL for none */
  const char *token;
  guint16 port;
  gboolean auth;
  const char *fp;
} MessageCase;

#define TOKEN "5f1c0a9e3b7d42e8a6c4f0b2d9e8a7c1"
#define LONGEST_ADDR "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
#define LONGEST_CANDS LONGEST_ADDR " " LONGEST_ADDR " " LONGEST_ADDR " " LONGEST_ADDR
#define FP "3c1d0b9a8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b"

static const MessageCase message_cases[] = {
  /* The examples of doc/protocol.md */
  { "ping", RNDZ_MESSAGE_PING, 7, "alice", NULL, NULL, 0,
    "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}" },
  { "pong", RNDZ_MESSAGE_PONG, 7, NULL, NULL, "198.51.100.7:4000", 0,
    "{\"v\":1,\"type\":\"pong\",\"tid\":7,\"addr\":\"198.51.100.7:4000\"}" },
  { "isync", RNDZ_MESSAGE_ISYNC, 42, "bob", "alice", NULL, 0,
    "{\"v\":1,\"type\":\"isync\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\"}" },
  { "fsync", RNDZ_MESSAGE_FSYNC, 3141592653u, "bob", NULL, "203.0.113.9:51000", 0,
    "{\"v\":1,\"type\":\"fsync\",\"tid\":3141592653,\"id\":\"bob\",\"addr\":\"203.0.113.9:51000\"}" },
  { "rsync", RNDZ_MESSAGE_RSYNC, 3141592653u, "alice", "bob", NULL, 0,
    "{\"v\":1,\"type\":\"rsync\",\"tid\":3141592653,\"id\":\"alice\",\"target\":\"bob\"}" },
  { "redirect", RNDZ_MESSAGE_REDIRECT, 42, "alice", NULL, "198.51.100.7:4000", 0,
    "{\"v\":1,\"type\":\"redirect\",\"tid\":42,\"id\":\"alice\",\"addr\":\"198.51.100.7:4000\"}" },
  { "bye", RNDZ_MESSAGE_BYE, 8, "alice", NULL, NULL, 0,
    "{\"v\":1,\"type\":\"bye\",\"tid\":8,\"id\":\"alice\"}" },
  { "error", RNDZ_MESSAGE_ERROR, 42, NULL, NULL, NULL, RNDZ_WIRE_ERROR_PEER_NOT_FOUND,
    "{\"v\":1,\"type\":\"error\",\"tid\":42,\"code\":\"peer-not-found\"}" },

  /* Every error code */
  { "error-peer-no-answer", RNDZ_MESSAGE_ERROR, 43, NULL, NULL, NULL, RNDZ_WIRE_ERROR_PEER_NO_ANSWER,
    "{\"v\":1,\"type\":\"error\",\"tid\":43,\"code\":\"peer-no-answer\"}" },
  { "error-server-full", RNDZ_MESSAGE_ERROR, 44, NULL, NULL, NULL, RNDZ_WIRE_ERROR_SERVER_FULL,
    "{\"v\":1,\"type\":\"error\",\"tid\":44,\"code\":\"server-full\"}" },
  { "error-bad-request", RNDZ_MESSAGE_ERROR, 45, NULL, NULL, NULL, RNDZ_WIRE_ERROR_BAD_REQUEST,
    "{\"v\":1,\"type\":\"error\",\"tid\":45,\"code\":\"bad-request\"}" },
  { "error-unknown", RNDZ_MESSAGE_ERROR, 46, NULL, NULL, NULL, RNDZ_WIRE_ERROR_UNKNOWN,
    "{\"v\":1,\"type\":\"error\",\"tid\":46,\"code\":\"failed\"}" },

  /* Limits of tid and port, IPv6 */
  { "ping-tid-zero", RNDZ_MESSAGE_PING, 0, "a", NULL, NULL, 0,
    "{\"v\":1,\"type\":\"ping\",\"tid\":0,\"id\":\"a\"}" },
  { "bye-tid-max", RNDZ_MESSAGE_BYE, G_MAXUINT32, "a", NULL, NULL, 0,
    "{\"v\":1,\"type\":\"bye\",\"tid\":4294967295,\"id\":\"a\"}" },
  { "pong-ipv6", RNDZ_MESSAGE_PONG, 1, NULL, NULL, "[2001:db8::1]:4000", 0,
    "{\"v\":1,\"type\":\"pong\",\"tid\":1,\"addr\":\"[2001:db8::1]:4000\"}" },
  { "fsync-port-1", RNDZ_MESSAGE_FSYNC, 2, "bob", NULL, "192.0.2.1:1", 0,
    "{\"v\":1,\"type\":\"fsync\",\"tid\":2,\"id\":\"bob\",\"addr\":\"192.0.2.1:1\"}" },
  { "redirect-ipv6-longest", RNDZ_MESSAGE_REDIRECT, G_MAXUINT32, "alice", NULL,
    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", 0,
    "{\"v\":1,\"type\":\"redirect\",\"tid\":4294967295,\"id\":\"alice\","
    "\"addr\":\"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535\"}" },

  /* Escaping and non-ASCII ids */
  { "isync-escaped", RNDZ_MESSAGE_ISYNC, 9, "a\"b\\c", "\\\"", NULL, 0,
    "{\"v\":1,\"type\":\"isync\",\"tid\":9,\"id\":\"a\\\"b\\\\c\",\"target\":\"\\\\\\\"\"}" },
  { "rsync-escaped", RNDZ_MESSAGE_RSYNC, 10, "{\"v\":2}", "[x]/y", NULL, 0,
    "{\"v\":1,\"type\":\"rsync\",\"tid\":10,\"id\":\"{\\\"v\\\":2}\",\"target\":\"[x]/y\"}" },
  { "ping-non-ascii", RNDZ_MESSAGE_PING, 11, "zoë-日本語-😀", NULL, NULL, 0,
    "{\"v\":1,\"type\":\"ping\",\"tid\":11,\"id\":\"zoë-日本語-😀\"}" },
  { "fsync-non-ascii", RNDZ_MESSAGE_FSYNC, 12, "Ωmega peer", NULL, "[::1]:65535", 0,
    "{\"v\":1,\"type\":\"fsync\",\"tid\":12,\"id\":\"Ωmega peer\",\"addr\":\"[::1]:65535\"}" },
  { "isync-64-bytes", RNDZ_MESSAGE_ISYNC, 13,
    "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀",
    "0123456789012345678901234567890123456789012345678901234567890123", NULL, 0,
    "{\"v\":1,\"type\":\"isync\",\"tid\":13,\"id\":\"😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀\","
    "\"target\":\"0123456789012345678901234567890123456789012345678901234567890123\"}" },

  /* Candidates: the examples of doc/protocol.md, then the limits */
  { .name = "ping-cand", .type = RNDZ_MESSAGE_PING, .tid = 7, .id = "alice",
    .cand = "192.168.1.20:4000",
    .json = "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"cand\":\"192.168.1.20:4000\"}" },
  { .name = "isync-cand", .type = RNDZ_MESSAGE_ISYNC, .tid = 42, .id = "bob", .target = "alice",
    .cand = "192.168.1.30:51000",
    .json = "{\"v\":1,\"type\":\"isync\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\","
            "\"cand\":\"192.168.1.30:51000\"}" },
  { .name = "fsync-cand", .type = RNDZ_MESSAGE_FSYNC, .tid = 3141592653u, .id = "bob",
    .addr = "203.0.113.9:51000", .cand = "192.168.1.30:51000",
    .json = "{\"v\":1,\"type\":\"fsync\",\"tid\":3141592653,\"id\":\"bob\","
            "\"addr\":\"203.0.113.9:51000\",\"cand\":\"192.168.1.30:51000\"}" },
  { .name = "fsync-cand-auth", .type = RNDZ_MESSAGE_FSYNC, .tid = 3141592653u, .id = "bob",
    .addr = "203.0.113.9:51000", .cand = "192.168.1.30:51000", .auth = TRUE,
    .json = "{\"v\":1,\"type\":\"fsync\",\"tid\":3141592653,\"id\":\"bob\","
            "\"addr\":\"203.0.113.9:51000\",\"cand\":\"192.168.1.30:51000\",\"auth\":true}" },
  { .name = "redirect-cand", .type = RNDZ_MESSAGE_REDIRECT, .tid = 42, .id = "alice",
    .addr = "198.51.100.7:4000", .cand = "192.168.1.20:4000",
    .json = "{\"v\":1,\"type\":\"redirect\",\"tid\":42,\"id\":\"alice\","
            "\"addr\":\"198.51.100.7:4000\",\"cand\":\"192.168.1.20:4000\"}" },
  { .name = "ping-cand-ipv6", .type = RNDZ_MESSAGE_PING, .tid = 8, .id = "alice",
    .cand = "[2001:db8:1::20]:4000",
    .json = "{\"v\":1,\"type\":\"ping\",\"tid\":8,\"id\":\"alice\",\"cand\":\"[2001:db8:1::20]:4000\"}" },
  { .name = "ping-cand-4-ipv4", .type = RNDZ_MESSAGE_PING, .tid = 9, .id = "alice",
    .cand = "192.168.1.20:4000 10.0.0.5:4000 172.16.3.4:4000 100.64.0.9:4000",
    .json = "{\"v\":1,\"type\":\"ping\",\"tid\":9,\"id\":\"alice\","
            "\"cand\":\"192.168.1.20:4000 10.0.0.5:4000 172.16.3.4:4000 100.64.0.9:4000\"}" },
  { .name = "isync-cand-4-ipv6", .type = RNDZ_MESSAGE_ISYNC, .tid = 43, .id = "bob", .target = "alice",
    .cand = "[2001:db8:1::30]:1 [fd00::30]:51000 [2001:db8:2::1:30]:65535 [::1:2:3:4]:80",
    .json = "{\"v\":1,\"type\":\"isync\",\"tid\":43,\"id\":\"bob\",\"target\":\"alice\","
            "\"cand\":\"[2001:db8:1::30]:1 [fd00::30]:51000 [2001:db8:2::1:30]:65535 [::1:2:3:4]:80\"}" },
  { .name = "redirect-cand-4-longest", .type = RNDZ_MESSAGE_REDIRECT, .tid = G_MAXUINT32, .id = "alice",
    .addr = LONGEST_ADDR, .cand = LONGEST_CANDS,
    .json = "{\"v\":1,\"type\":\"redirect\",\"tid\":4294967295,\"id\":\"alice\","
            "\"addr\":\"" LONGEST_ADDR "\",\"cand\":\"" LONGEST_CANDS "\"}" },

  /* Connectivity checks */
  { .name = "check", .type = RNDZ_MESSAGE_CHECK, .tid = 42, .id = "bob", .target = "alice",
    .json = "{\"v\":1,\"type\":\"check\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\"}" },
  { .name = "confirm", .type = RNDZ_MESSAGE_CONFIRM, .tid = 42, .id = "alice", .target = "bob",
    .json = "{\"v\":1,\"type\":\"confirm\",\"tid\":42,\"id\":\"alice\",\"target\":\"bob\"}" },
  { .name = "use", .type = RNDZ_MESSAGE_USE, .tid = 42, .id = "bob", .target = "alice",
    .json = "{\"v\":1,\"type\":\"use\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\"}" },

  /* Fingerprints (secure connections) */
  { .name = "isync-fp", .type = RNDZ_MESSAGE_ISYNC, .tid = 42, .id = "bob", .target = "alice",
    .cand = "192.168.1.30:51000", .fp = FP,
    .json = "{\"v\":1,\"type\":\"isync\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\","
            "\"cand\":\"192.168.1.30:51000\",\"fp\":\"" FP "\"}" },
  { .name = "fsync-fp", .type = RNDZ_MESSAGE_FSYNC, .tid = 3141592653u, .id = "bob",
    .addr = "203.0.113.9:51000", .fp = FP, .auth = TRUE,
    .json = "{\"v\":1,\"type\":\"fsync\",\"tid\":3141592653,\"id\":\"bob\","
            "\"addr\":\"203.0.113.9:51000\",\"fp\":\"" FP "\",\"auth\":true}" },
  { .name = "rsync-fp", .type = RNDZ_MESSAGE_RSYNC, .tid = 3141592653u, .id = "alice",
    .target = "bob", .fp = FP,
    .json = "{\"v\":1,\"type\":\"rsync\",\"tid\":3141592653,\"id\":\"alice\","
            "\"target\":\"bob\",\"fp\":\"" FP "\"}" },
  { .name = "redirect-fp", .type = RNDZ_MESSAGE_REDIRECT, .tid = 42, .id = "alice",
    .addr = "198.51.100.7:4000", .fp = FP,
    .json = "{\"v\":1,\"type\":\"redirect\",\"tid\":42,\"id\":\"alice\","
            "\"addr\":\"198.51.100.7:4000\",\"fp\":\"" FP "\"}" },

  /* The relay */
  { .name = "relay", .type = RNDZ_MESSAGE_RELAY, .tid = 42, .id = "bob", .target = "alice",
    .json = "{\"v\":1,\"type\":\"relay\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\"}" },
  { .name = "session", .type = RNDZ_MESSAGE_SESSION, .tid = 42, .id = "alice", .token = TOKEN,
    .port = 8889,
    .json = "{\"v\":1,\"type\":\"session\",\"tid\":42,\"id\":\"alice\","
            "\"token\":\"" TOKEN "\",\"port\":8889}" },
  { .name = "session-auth", .type = RNDZ_MESSAGE_SESSION, .tid = 3141592654u, .id = "bob",
    .token = TOKEN, .port = 8889, .auth = TRUE,
    .json = "{\"v\":1,\"type\":\"session\",\"tid\":3141592654,\"id\":\"bob\","
            "\"token\":\"" TOKEN "\",\"port\":8889,\"auth\":true}" },
  { .name = "session-port-1", .type = RNDZ_MESSAGE_SESSION, .tid = 0, .id = "a",
    .token = "00000000000000000000000000000000", .port = 1,
    .json = "{\"v\":1,\"type\":\"session\",\"tid\":0,\"id\":\"a\","
            "\"token\":\"00000000000000000000000000000000\",\"port\":1}" },
  { .name = "session-longest", .type = RNDZ_MESSAGE_SESSION, .tid = G_MAXUINT32, .id = "a\"b",
    .token = "ffffffffffffffffffffffffffffffff", .port = 65535,
    .json = "{\"v\":1,\"type\":\"session\",\"tid\":4294967295,\"id\":\"a\\\"b\","
            "\"token\":\"ffffffffffffffffffffffffffffffff\",\"port\":65535}" },
  { .name = "hello", .type = RNDZ_MESSAGE_HELLO, .tid = 2718281828u, .id = "bob", .token = TOKEN,
    .json = "{\"v\":1,\"type\":\"hello\",\"tid\":2718281828,\"id\":\"bob\","
            "\"token\":\"" TOKEN "\"}" },
  { .name = "wait", .type = RNDZ_MESSAGE_WAIT, .tid = 2718281828u,
    .json = "{\"v\":1,\"type\":\"wait\",\"tid\":2718281828}" },
  { .name = "ready", .type = RNDZ_MESSAGE_READY, .tid = 2718281828u,
    .json = "{\"v\":1,\"type\":\"ready\",\"tid\":2718281828}" },
  { .name = "error-no-relay", .type = RNDZ_MESSAGE_ERROR, .tid = 42, .code = RNDZ_WIRE_ERROR_NO_RELAY,
    .json = "{\"v\":1,\"type\":\"error\",\"tid\":42,\"code\":\"no-relay\"}" },
  { .name = "error-address-family", .type = RNDZ_MESSAGE_ERROR, .tid = 42,
    .code = RNDZ_WIRE_ERROR_ADDRESS_FAMILY,
    .json = "{\"v\":1,\"type\":\"error\",\"tid\":42,\"code\":\"address-family\"}" },
  { .name = "error-rate-limited", .type = RNDZ_MESSAGE_ERROR, .tid = 42,
    .code = RNDZ_WIRE_ERROR_RATE_LIMITED,
    .json = "{\"v\":1,\"type\":\"error\",\"tid\":42,\"code\":\"rate-limited\"}" },
  { .name = "error-auth-required", .type = RNDZ_MESSAGE_ERROR, .tid = 42,
    .code = RNDZ_WIRE_ERROR_AUTH_REQUIRED,
    .json = "{\"v\":1,\"type\":\"error\",\"tid\":42,\"code\":\"auth-required\"}" },
};

static void
message_from_case (RndzMessage       *msg,
                   const MessageCase *c)
{
  rndz_message_init (msg, c->type, c->tid);
  if (c->id != NULL)
    g_strlcpy (msg->id, c->id, sizeof msg->id);
  if (c->target != NULL)
    g_strlcpy (msg->target, c->target, sizeof msg->target);
  if (c->addr != NULL)
    msg->addr = rndz_test_addr (c->addr);
  msg->code = c->code;
  if (c->cand != NULL)
    set_cands (msg, c->cand);
  if (c->token != NULL)
    g_strlcpy (msg->token, c->token, sizeof msg->token);
  msg->port = c->port;
  msg->auth = c->auth;
  if (c->fp != NULL)
    g_strlcpy (msg->fp, c->fp, sizeof msg->fp);
}

static void
test_encode (gconstpointer data)
{
  const MessageCase *c = data;
  char buf[DEFAULT_MAX];
  RndzMessage msg;
  gsize len;

  g_test_summary ("A message encodes to the exact JSON of doc/protocol.md: "
                  "fields in the order v, type, tid, id, target, addr, code, "
                  "cand, token, port, auth");

  message_from_case (&msg, c);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpstr (buf, ==, c->json);
  g_assert_cmpuint (len, ==, strlen (c->json));
}

static void
test_roundtrip (gconstpointer data)
{
  const MessageCase *c = data;
  char buf[DEFAULT_MAX];
  RndzMessage msg, decoded;
  gsize len;

  g_test_summary ("Decoding an encoded message gives back every field; the "
                  "documented JSON decodes to the same message");

  g_assert_true (rndz_id_is_valid (c->id != NULL ? c->id : "x", -1));
  g_assert_true (rndz_id_is_valid (c->target != NULL ? c->target : "x", -1));

  message_from_case (&msg, c);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpuint (len, >, 0);

  decode_ok (&decoded, buf);
  assert_messages_equal (&decoded, &msg);

  decode_ok (&decoded, c->json);
  assert_messages_equal (&decoded, &msg);
}

static void
test_encode_frame (void)
{
  char frame[RNDZ_FRAME_HEADER_SIZE + DEFAULT_MAX];
  char json[DEFAULT_MAX];
  g_autoptr(GError) error = NULL;
  RndzMessage msg, decoded;
  gsize len, json_len;
  gssize payload;

  g_test_summary ("A TCP frame is a two-byte big-endian length and the JSON");

  message_from_case (&msg, &message_cases[0]);
  json_len = rndz_message_encode (&msg, json, sizeof json);
  len = rndz_message_encode_frame (&msg, frame, sizeof frame);

  g_assert_cmpuint (len, ==, json_len + RNDZ_FRAME_HEADER_SIZE);
  g_assert_cmpuint ((guint8) frame[0], ==, json_len >> 8);
  g_assert_cmpuint ((guint8) frame[1], ==, json_len & 0xff);
  g_assert_cmpmem (frame + RNDZ_FRAME_HEADER_SIZE, json_len, json, json_len);

  payload = rndz_frame_peek ((const guint8 *) frame, len, DEFAULT_MAX, &error);
  g_assert_no_error (error);
  g_assert_cmpint (payload, ==, json_len);

  g_assert_true (rndz_message_decode (&decoded, frame + RNDZ_FRAME_HEADER_SIZE, payload,
                                      DEFAULT_MAX, &error));
  g_assert_no_error (error);
  assert_messages_equal (&decoded, &msg);

  /* Too small for header and message */
  g_assert_cmpuint (rndz_message_encode_frame (&msg, frame, 0), ==, 0);
  g_assert_cmpuint (rndz_message_encode_frame (&msg, frame, RNDZ_FRAME_HEADER_SIZE), ==, 0);
  g_assert_cmpuint (rndz_message_encode_frame (&msg, frame, len), ==, 0);
  g_assert_cmpuint (rndz_message_encode_frame (&msg, frame, len + 1), ==, len);
}

static void
test_encode_buffer_size (void)
{
  const char *json = message_cases[0].json;
  gsize json_len = strlen (json);
  char buf[DEFAULT_MAX];
  RndzMessage msg;

  g_test_summary ("The encoder needs room for the JSON and a nul, and "
                  "returns 0 rather than writing a partial message");

  message_from_case (&msg, &message_cases[0]);

  g_assert_cmpuint (rndz_message_encode (&msg, buf, json_len + 1), ==, json_len);
  g_assert_cmpstr (buf, ==, json);

  g_assert_cmpuint (rndz_message_encode (&msg, buf, json_len), ==, 0);
  g_assert_cmpuint (rndz_message_encode (&msg, buf, 10), ==, 0);
  g_assert_cmpuint (rndz_message_encode (&msg, buf, 1), ==, 0);
}

static void
test_encode_longest (void)
{
  g_autofree char *quotes = repeat ("\"", RNDZ_ID_MAX_LEN);
  g_autofree char *backslashes = repeat ("\\", RNDZ_ID_MAX_LEN);
  char buf[DEFAULT_MAX];
  RndzMessage msg, decoded;
  RndzMessageType types[] = {
    RNDZ_MESSAGE_PING, RNDZ_MESSAGE_PONG, RNDZ_MESSAGE_ISYNC, RNDZ_MESSAGE_FSYNC,
    RNDZ_MESSAGE_RSYNC, RNDZ_MESSAGE_REDIRECT, RNDZ_MESSAGE_BYE, RNDZ_MESSAGE_ERROR,
    RNDZ_MESSAGE_CHECK, RNDZ_MESSAGE_CONFIRM, RNDZ_MESSAGE_USE, RNDZ_MESSAGE_RELAY,
    RNDZ_MESSAGE_SESSION, RNDZ_MESSAGE_HELLO, RNDZ_MESSAGE_WAIT, RNDZ_MESSAGE_READY,
  };

  g_test_summary ("Every valid message without candidates, with ids of 64 bytes "
                  "that all need escaping, the longest address, token and port, "
                  "fits the smallest allowed message size limit");

  g_assert_true (rndz_id_is_valid (quotes, -1));
  g_assert_true (rndz_id_is_valid (backslashes, -1));

  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    {
      gsize len;

      rndz_message_init (&msg, types[i], G_MAXUINT32);
      g_strlcpy (msg.id, quotes, sizeof msg.id);
      g_strlcpy (msg.target, backslashes, sizeof msg.target);
      msg.addr = rndz_test_addr ("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
      msg.code = RNDZ_WIRE_ERROR_PEER_NO_ANSWER;
      g_strlcpy (msg.token, "ffffffffffffffffffffffffffffffff", sizeof msg.token);
      msg.port = 65535;
      msg.auth = TRUE;

      len = rndz_message_encode (&msg, buf, sizeof buf);
      g_test_message ("%s: %" G_GSIZE_FORMAT " bytes", rndz_message_type_to_string (types[i]), len);
      g_assert_cmpuint (len, >, 0);
      g_assert_cmpuint (len, <=, RNDZ_MESSAGE_MIN_MAX_SIZE);

      g_assert_true (rndz_message_decode (&decoded, buf, len, RNDZ_MESSAGE_MIN_MAX_SIZE, NULL));
      g_assert_cmpint (decoded.type, ==, types[i]);
    }
}

static void
test_encode_control_chars (void)
{
  char buf[DEFAULT_MAX];
  RndzMessage msg;
  gsize len;

  g_test_summary ("The encoder escapes control characters, so it never writes "
                  "invalid JSON, even for an id the decoder refuses");

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (msg.id, "a\x01\n\x1f\x7f", sizeof msg.id);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpuint (len, >, 0);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"ping\",\"tid\":1,"
                            "\"id\":\"a\\u0001\\u000a\\u001f\\u007f\"}");

  assert_decode_fails (buf, len, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
}

static void
test_encode_invalid_type (void)
{
  char buf[DEFAULT_MAX];
  RndzMessage msg;

  g_test_summary ("Encoding a message without a type is a programming error");

  rndz_message_init (&msg, RNDZ_MESSAGE_INVALID, 1);
  g_test_expect_message ("Rndz", G_LOG_LEVEL_CRITICAL, "*msg->type*");
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), ==, 0);
  g_test_assert_expected_messages ();

  rndz_message_init (&msg, RNDZ_MESSAGE_LAST + 1, 1);
  g_test_expect_message ("Rndz", G_LOG_LEVEL_CRITICAL, "*msg->type*");
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), ==, 0);
  g_test_assert_expected_messages ();
}

static void
test_encode_pad (void)
{
  const char *plain = message_cases[0].json;
  gsize plain_len = strlen (plain);
  char buf[DEFAULT_MAX];
  RndzMessage msg, decoded;
  gsize len;

  g_test_summary ("pad_to grows a message with a \"pad\" field of x's to "
                  "at least that size; receivers ignore it");

  message_from_case (&msg, &message_cases[0]);

  msg.pad_to = 95;
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpuint (len, ==, 95);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\","
                            "\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
  decode_ok (&decoded, buf);
  assert_messages_equal (&decoded, &msg);

  /* Exact from ten bytes over the plain size on; just over it, the
   * smallest pad ("pad":"") makes the message a little longer */
  for (gsize pad_to = plain_len + 1; pad_to < plain_len + 40; pad_to++)
    {
      msg.pad_to = pad_to;
      len = rndz_message_encode (&msg, buf, sizeof buf);
      if (pad_to >= plain_len + 10)
        g_assert_cmpuint (len, ==, pad_to);
      else
        g_assert_cmpuint (len, ==, plain_len + 9);
      decode_ok (&decoded, buf);
      assert_messages_equal (&decoded, &msg);
    }

  /* Already large enough: no pad */
  msg.pad_to = plain_len;
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), ==, plain_len);
  g_assert_cmpstr (buf, ==, plain);
  msg.pad_to = 1;
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), ==, plain_len);

  /* A pad that does not fit the buffer fails the encoding */
  msg.pad_to = sizeof buf;
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), ==, 0);
  msg.pad_to = sizeof buf - 1;
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), ==, sizeof buf - 1);
}

static void
test_max_reply_size (void)
{
  g_autofree char *quotes = repeat ("\"", RNDZ_ID_MAX_LEN);
  const char *targets[] = { "a", "alice", "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", quotes };
  char buf[DEFAULT_MAX];
  RndzMessage request, reply;
  gsize max, len;

  g_test_summary ("A UDP request padded to rndz_message_max_reply_size() is "
                  "at least as large as any reply the server may send, and an "
                  "isync as its reply and the fsync it causes together");

  /* ping: a pong with the longest address, or an error */
  rndz_message_init (&request, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (request.id, "a", sizeof request.id);
  max = rndz_message_max_reply_size (&request);
  g_assert_cmpuint (max, ==, 95);

  rndz_message_init (&reply, RNDZ_MESSAGE_PONG, G_MAXUINT32);
  reply.addr = rndz_test_addr ("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
  g_assert_cmpuint (rndz_message_encode (&reply, buf, sizeof buf), ==, max);
  for (RndzWireError code = RNDZ_WIRE_ERROR_UNKNOWN; code <= RNDZ_WIRE_ERROR_AUTH_REQUIRED; code++)
    {
      rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, G_MAXUINT32);
      reply.code = code;
      reply.retry_ms = RNDZ_WIRE_RETRY_MAX_MS;
      g_assert_cmpuint (rndz_message_encode (&reply, buf, sizeof buf), <=, max);
    }

  request.pad_to = max;
  len = rndz_message_encode (&request, buf, sizeof buf);
  g_assert_cmpuint (len, ==, max);

  /* isync: a redirect naming the target, or an error, and the fsync */
  for (guint i = 0; i < G_N_ELEMENTS (targets); i++)
    {
      gsize redirect_len, fsync_len;

      rndz_message_init (&request, RNDZ_MESSAGE_ISYNC, 1);
      g_strlcpy (request.id, "b", sizeof request.id);
      g_strlcpy (request.target, targets[i], sizeof request.target);
      max = rndz_message_max_reply_size (&request);

      rndz_message_init (&reply, RNDZ_MESSAGE_REDIRECT, G_MAXUINT32);
      g_strlcpy (reply.id, targets[i], sizeof reply.id);
      reply.addr = rndz_test_addr ("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
      /* with the target's candidates, as many and as long as can be */
      reply.n_cands = RNDZ_MAX_CANDIDATES;
      for (guint c = 0; c < RNDZ_MAX_CANDIDATES; c++)
        reply.cands[c] = reply.addr;
      redirect_len = rndz_message_encode (&reply, buf, sizeof buf);

      /* The longest fsync naming the requester, authenticated */
      rndz_message_init (&reply, RNDZ_MESSAGE_FSYNC, G_MAXUINT32);
      g_strlcpy (reply.id, "b", sizeof reply.id);
      reply.addr = rndz_test_addr ("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
      reply.auth = TRUE;
      fsync_len = rndz_message_encode (&reply, buf, sizeof buf);
      g_assert_cmpuint (redirect_len + fsync_len, ==, max);

      request.pad_to = max;
      len = rndz_message_encode (&request, buf, sizeof buf);
      g_assert_cmpuint (len, >=, max);
      g_assert_cmpuint (len, <=, DEFAULT_MAX);
    }

  /* Requests the server does not answer: the largest error */
  rndz_message_init (&request, RNDZ_MESSAGE_BYE, 1);
  g_strlcpy (request.id, "a", sizeof request.id);
  g_assert_cmpuint (rndz_message_max_reply_size (&request), ==, 63);
}

static void
test_type_names (void)
{
  g_test_summary ("Message types have their wire names");

  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_PING), ==, "ping");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_PONG), ==, "pong");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_ISYNC), ==, "isync");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_FSYNC), ==, "fsync");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_RSYNC), ==, "rsync");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_REDIRECT), ==, "redirect");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_BYE), ==, "bye");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_ERROR), ==, "error");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_CHECK), ==, "check");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_CONFIRM), ==, "confirm");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_USE), ==, "use");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_RELAY), ==, "relay");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_SESSION), ==, "session");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_HELLO), ==, "hello");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_WAIT), ==, "wait");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_READY), ==, "ready");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_INVALID), ==, "invalid");
  g_assert_cmpstr (rndz_message_type_to_string (RNDZ_MESSAGE_LAST + 1), ==, "invalid");
}

static void
test_wire_error (void)
{
  struct {
    RndzWireError wire;
    int code;
  } cases[] = {
    { RNDZ_WIRE_ERROR_PEER_NOT_FOUND, RNDZ_ERROR_PEER_NOT_FOUND },
    { RNDZ_WIRE_ERROR_PEER_NO_ANSWER, RNDZ_ERROR_PEER_NO_ANSWER },
    { RNDZ_WIRE_ERROR_SERVER_FULL, RNDZ_ERROR_SERVER_FULL },
    { RNDZ_WIRE_ERROR_BAD_REQUEST, RNDZ_ERROR_BAD_REQUEST },
    { RNDZ_WIRE_ERROR_ADDRESS_FAMILY, RNDZ_ERROR_ADDRESS_FAMILY },
    { RNDZ_WIRE_ERROR_NO_RELAY, RNDZ_ERROR_NO_PATH },
    { RNDZ_WIRE_ERROR_RATE_LIMITED, RNDZ_ERROR_RATE_LIMITED },
    { RNDZ_WIRE_ERROR_AUTH_REQUIRED, RNDZ_ERROR_AUTH_REQUIRED },
    { RNDZ_WIRE_ERROR_UNKNOWN, RNDZ_ERROR_FAILED },
  };

  g_test_summary ("Error codes from the server map to RNDZ_ERROR; unknown "
                  "ones are a generic failure");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = rndz_wire_error_to_gerror (cases[i].wire, "alice");

      g_assert_error (error, RNDZ_ERROR, cases[i].code);
      g_assert_nonnull (error->message);
    }
}

static void
test_error_retry (void)
{
  const char *json = "{\"v\":1,\"type\":\"error\",\"tid\":9,\"code\":\"rate-limited\",\"retry\":250}";
  g_autoptr(GError) error = NULL;
  char buf[DEFAULT_MAX];
  RndzMessage msg;
  gsize len;

  g_test_summary ("A rate-limited error carries “retry”, the milliseconds "
                  "until the request may succeed; both decoders read it, "
                  "and the GError says it");

  rndz_message_init (&msg, RNDZ_MESSAGE_ERROR, 9);
  msg.code = RNDZ_WIRE_ERROR_RATE_LIMITED;
  msg.retry_ms = 250;
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpuint (len, ==, strlen (json));
  g_assert_cmpmem (buf, len, json, len);

  for (guint fast = 0; fast < 2; fast++)
    {
      rndz_message_fast_path = fast;
      decode_ok (&msg, json);
      g_assert_cmpint (msg.code, ==, RNDZ_WIRE_ERROR_RATE_LIMITED);
      g_assert_cmpuint (msg.retry_ms, ==, 250);

      decode_ok (&msg, "{\"v\":1,\"type\":\"error\",\"tid\":9,\"code\":\"rate-limited\"}");
      g_assert_cmpuint (msg.retry_ms, ==, 0);

      /* Other messages ignore it, as any field they do not define */
      decode_ok (&msg, "{\"v\":1,\"type\":\"bye\",\"tid\":9,\"id\":\"a\",\"retry\":\"x\"}");
      g_assert_cmpuint (msg.retry_ms, ==, 0);
    }
  rndz_message_fast_path = TRUE;

  decode_ok (&msg, json);
  error = rndz_message_error_to_gerror (&msg, "alice");
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_RATE_LIMITED);
  g_assert_nonnull (strstr (error->message, "250"));
  g_clear_error (&error);

  msg.retry_ms = 0;
  error = rndz_message_error_to_gerror (&msg, "alice");
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_RATE_LIMITED);
}

static void
test_error_code_unknown (void)
{
  const char *codes[] = { "slow-down", "", "PEER-NOT-FOUND", "failed", "peer-not-found ", "rate-limited2" };
  RndzMessage msg;

  g_test_summary ("An error code the receiver does not know (from a later "
                  "version) decodes as a generic failure");

  for (guint i = 0; i < G_N_ELEMENTS (codes); i++)
    {
      g_autofree char *json = g_strdup_printf ("{\"v\":1,\"type\":\"error\",\"tid\":5,"
                                               "\"code\":\"%s\"}", codes[i]);

      decode_ok (&msg, json);
      g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_ERROR);
      g_assert_cmpuint (msg.tid, ==, 5);
      g_assert_cmpint (msg.code, ==, RNDZ_WIRE_ERROR_UNKNOWN);
    }
}

/* Decoding: what must be accepted */

static void
test_extra_fields (void)
{
  RndzMessage msg;

  g_test_summary ("Unknown fields, and fields the message type does not "
                  "define, are ignored whatever their value");

  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\","
                   "\"future\":{\"a\":[1,2.5,null,true,\"x\"]},\"addr\":\"nowhere\","
                   "\"target\":17,\"code\":[],\"\":\"\"}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_PING);
  g_assert_cmpuint (msg.tid, ==, 7);
  g_assert_cmpstr (msg.id, ==, "alice");
  g_assert_cmpstr (msg.target, ==, "");
  g_assert_cmpuint (msg.addr.family, ==, 0);

  decode_ok (&msg, "{\"zzz\":0,\"code\":\"bad-request\",\"tid\":1,\"type\":\"error\","
                   "\"id\":null,\"v\":1}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_ERROR);
  g_assert_cmpint (msg.code, ==, RNDZ_WIRE_ERROR_BAD_REQUEST);
  g_assert_cmpstr (msg.id, ==, "");

  /* Whitespace between tokens */
  decode_ok (&msg, " \r\n\t{ \"v\" : 1 ,\n \"type\" : \"bye\" , \"tid\" : 3 , \"id\" : \"b\" }\n ");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_BYE);
  g_assert_cmpstr (msg.id, ==, "b");
}

static void
test_version_later (void)
{
  RndzMessage msg;

  g_test_summary ("A receiver accepts any version from 1 on (up to 2^31 - 1): "
                  "later versions only add fields");

  decode_ok (&msg, "{\"v\":2,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"new\":true}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_PING);
  g_assert_cmpstr (msg.id, ==, "alice");

  decode_ok (&msg, "{\"v\":2147483647,\"type\":\"bye\",\"tid\":7,\"id\":\"alice\"}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_BYE);

  assert_decode_fails ("{\"v\":2147483648,\"type\":\"bye\",\"tid\":7,\"id\":\"alice\"}", -1,
                       DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
}

static void
test_json_escapes (void)
{
  RndzMessage msg;

  g_test_summary ("JSON escapes in ids decode to the characters they stand for");

  decode_ok (&msg, "{\"v\":1,\"type\":\"isync\",\"tid\":1,"
                   "\"id\":\"\\u0041\\u00e9\\u65e5\\ud83d\\ude00\\/\",\"target\":\"\\\"\\\\\"}");
  g_assert_cmpstr (msg.id, ==, "Aé日😀/");
  g_assert_cmpstr (msg.target, ==, "\"\\");

  /* Escaped control characters are still control characters */
  assert_decode_fails ("{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\\tb\"}", -1,
                       DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  assert_decode_fails ("{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\\u0001\"}", -1,
                       DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  assert_decode_fails ("{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\\u007f\"}", -1,
                       DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  assert_decode_fails ("{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\\u0085\"}", -1,
                       DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
}

static void
test_decode_resets (void)
{
  RndzMessage msg;

  g_test_summary ("Decoding overwrites every field of a message used before");

  decode_ok (&msg, message_cases[2].json);  /* isync */
  g_assert_cmpstr (msg.target, ==, "alice");
  decode_ok (&msg, message_cases[0].json);  /* ping */
  g_assert_cmpstr (msg.target, ==, "");
  decode_ok (&msg, message_cases[1].json);  /* pong */
  g_assert_cmpstr (msg.id, ==, "");

  /* Candidates, token, port and auth do not linger either */
  decode_ok (&msg, "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"a\",\"addr\":\"1.2.3.4:5\","
                   "\"cand\":\"10.0.0.1:1 10.0.0.2:2\"}");
  g_assert_cmpuint (msg.n_cands, ==, 2);
  decode_ok (&msg, "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"a\",\"addr\":\"1.2.3.4:5\"}");
  g_assert_cmpuint (msg.n_cands, ==, 0);
  decode_ok (&msg, "{\"v\":1,\"type\":\"session\",\"tid\":1,\"id\":\"a\",\"token\":\"" TOKEN "\","
                   "\"port\":9,\"auth\":true}");
  g_assert_true (msg.auth);
  decode_ok (&msg, "{\"v\":1,\"type\":\"session\",\"tid\":1,\"id\":\"a\",\"token\":\"" TOKEN "\","
                   "\"port\":9}");
  g_assert_false (msg.auth);
  decode_ok (&msg, message_cases[0].json);  /* ping */
  g_assert_cmpstr (msg.token, ==, "");
  g_assert_cmpuint (msg.port, ==, 0);

  /* A failure leaves no type behind */
  memset (&msg, 0xaa, sizeof msg);
  g_assert_false (rndz_message_decode (&msg, "{}", 2, DEFAULT_MAX, NULL));
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_INVALID);
  memset (&msg, 0xaa, sizeof msg);
  g_assert_false (rndz_message_decode (&msg, "{\"v\":1,\"type\":\"isync\",\"tid\":1,\"id\":\"b\"}",
                                       strlen ("{\"v\":1,\"type\":\"isync\",\"tid\":1,\"id\":\"b\"}"),
                                       DEFAULT_MAX, NULL));
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_INVALID);
}

/* Ids */

static void
test_id_length (void)
{
  g_autofree char *id64 = repeat ("x", 64);
  g_autofree char *id65 = repeat ("x", 65);

  g_test_summary ("An id is 1 to 64 bytes");

  g_assert_false (rndz_id_is_valid ("", -1));
  g_assert_false (rndz_id_is_valid ("abc", 0));
  g_assert_true (rndz_id_is_valid ("a", -1));
  g_assert_true (rndz_id_is_valid (id64, -1));
  g_assert_false (rndz_id_is_valid (id65, -1));
  g_assert_true (rndz_id_is_valid (id65, 64));
  g_assert_true (rndz_id_is_valid ("abc", 2));
  g_assert_true (rndz_id_is_valid ("peer one", -1));
}

static void
test_id_control (void)
{
  const char *refused[] = {
    "\x01", "a\tb", "a\nb", "\r", "\x1b[0m", "a\x7f", "\xc2\x80", "\xc2\x9f",
  };
  const char *accepted[] = {
    " ", "~", "a b", "\xc2\xa0", "\xe2\x80\x8b", "\xef\xbb\xbf", "\xe2\x80\xa8",
  };

  g_test_summary ("An id has no control characters (C0, DEL, C1); other "
                  "invisible characters are allowed");

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    g_assert_false (rndz_id_is_valid (refused[i], -1));
  for (guint i = 0; i < G_N_ELEMENTS (accepted); i++)
    g_assert_true (rndz_id_is_valid (accepted[i], -1));

  /* A nul inside the given length */
  g_assert_false (rndz_id_is_valid ("ab\0cd", 5));
}

static void
test_id_utf8 (void)
{
  const char *refused[] = {
    "\xff", "a\xfe", "\xc3", "a\xc3", "\xe2\x82", "\xc0\xaf", "\xe0\x80\xaf",
    "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80",
  };

  g_test_summary ("An id is valid UTF-8: no stray, truncated or overlong "
                  "sequences, no surrogates");

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    g_assert_false (rndz_id_is_valid (refused[i], -1));

  /* A length that cuts a character */
  g_assert_true (rndz_id_is_valid ("é", 2));
  g_assert_false (rndz_id_is_valid ("é", 1));
}

static void
test_id_multibyte_limit (void)
{
  g_autofree char *two32 = repeat ("é", 32);          /* 64 bytes */
  g_autofree char *three21 = repeat ("€", 21);        /* 63 bytes */
  g_autofree char *three22 = repeat ("€", 22);        /* 66 bytes */
  g_autofree char *four16 = repeat ("😀", 16);        /* 64 bytes */
  g_autofree char *a62 = repeat ("a", 62);
  g_autofree char *three21a = g_strconcat (three21, "a", NULL);    /* 64 */
  g_autofree char *three21ab = g_strconcat (three21, "ab", NULL);  /* 65 */
  g_autofree char *straddle = g_strconcat (a62, "😀", NULL);       /* 66 */

  g_test_summary ("The limit counts bytes, not characters");

  g_assert_cmpuint (strlen (two32), ==, 64);
  g_assert_true (rndz_id_is_valid (two32, -1));
  g_assert_true (rndz_id_is_valid (three21, -1));
  g_assert_true (rndz_id_is_valid (three21a, -1));
  g_assert_false (rndz_id_is_valid (three21ab, -1));
  g_assert_false (rndz_id_is_valid (three22, -1));
  g_assert_true (rndz_id_is_valid (four16, -1));
  g_assert_false (rndz_id_is_valid (straddle, -1));
}

static void
test_id_decode (void)
{
  g_autofree char *id64 = repeat ("x", 64);
  g_autofree char *id65 = repeat ("x", 65);
  g_autofree char *four16 = repeat ("😀", 16);
  g_autofree char *four16a = g_strconcat (four16, "a", NULL);
  g_autofree char *json = NULL;
  RndzMessage msg;

  g_test_summary ("The decoder applies the id rule to id and target");

  json = g_strdup_printf ("{\"v\":1,\"type\":\"isync\",\"tid\":1,\"id\":\"%s\",\"target\":\"%s\"}",
                          id64, four16);
  decode_ok (&msg, json);
  g_assert_cmpstr (msg.id, ==, id64);
  g_assert_cmpstr (msg.target, ==, four16);
  g_clear_pointer (&json, g_free);

  json = g_strdup_printf ("{\"v\":1,\"type\":\"isync\",\"tid\":1,\"id\":\"%s\",\"target\":\"b\"}", id65);
  assert_decode_fails (json, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_clear_pointer (&json, g_free);

  json = g_strdup_printf ("{\"v\":1,\"type\":\"isync\",\"tid\":1,\"id\":\"a\",\"target\":\"%s\"}", four16a);
  assert_decode_fails (json, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_clear_pointer (&json, g_free);

  /* The limit applies after unescaping: 64 escaped bytes are 64 bytes */
  {
    g_autofree char *a = repeat ("\\u0041", 16);
    g_autofree char *backslashes = repeat ("\\\\", 16);
    g_autofree char *quotes = repeat ("\\\"", 16);
    g_autofree char *slashes = repeat ("\\/", 16);

    json = g_strdup_printf ("{\"v\":1,\"type\":\"bye\",\"tid\":1,\"id\":\"%s%s%s%s\"}",
                            a, backslashes, quotes, slashes);
    decode_ok (&msg, json);
    g_assert_cmpuint (strlen (msg.id), ==, 64);
    g_clear_pointer (&json, g_free);

    json = g_strdup_printf ("{\"v\":1,\"type\":\"bye\",\"tid\":1,\"id\":\"%s%s%s%s\\u0041\"}",
                            a, backslashes, quotes, slashes);
    assert_decode_fails (json, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  }
}

/* Addresses */

static void
test_addr_parse_ipv4 (void)
{
  g_autoptr(GError) error = NULL;
  const guint8 expected[4] = { 198, 51, 100, 7 };
  char buf[RNDZ_ADDR_STRLEN];
  RndzAddr addr;

  g_test_summary ("IPv4 addresses are written 198.51.100.7:4000");

  g_assert_true (rndz_addr_parse (&addr, "198.51.100.7:4000", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (addr.family, ==, 4);
  g_assert_cmpuint (addr.port, ==, 4000);
  g_assert_cmpmem (addr.bytes, 4, expected, 4);
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "198.51.100.7:4000");

  addr = rndz_test_addr ("0.0.0.0:1");
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "0.0.0.0:1");
  addr = rndz_test_addr ("255.255.255.255:65535");
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "255.255.255.255:65535");
}

static void
test_addr_parse_ipv6 (void)
{
  g_autoptr(GError) error = NULL;
  const guint8 expected[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
  char buf[RNDZ_ADDR_STRLEN];
  RndzAddr addr;

  g_test_summary ("IPv6 addresses are written [2001:db8::1]:4000, and "
                  "formatted in the canonical form");

  g_assert_true (rndz_addr_parse (&addr, "[2001:db8::1]:4000", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (addr.family, ==, 6);
  g_assert_cmpuint (addr.port, ==, 4000);
  g_assert_cmpmem (addr.bytes, 16, expected, 16);
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "[2001:db8::1]:4000");

  addr = rndz_test_addr ("[2001:0DB8:0:0:0:0:0:1]:4000");
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "[2001:db8::1]:4000");
  addr = rndz_test_addr ("[::1]:1");
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "[::1]:1");
  addr = rndz_test_addr ("[::]:80");
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "[::]:80");
}

static void
test_addr_parse_v4_mapped (void)
{
  RndzAddr plain = rndz_test_addr ("198.51.100.7:4000");
  char buf[RNDZ_ADDR_STRLEN];
  RndzAddr addr;

  g_test_summary ("A v4-mapped IPv6 address is the IPv4 address: same "
                  "family, bytes, hash and text");

  addr = rndz_test_addr ("[::ffff:198.51.100.7]:4000");
  g_assert_cmpuint (addr.family, ==, 4);
  g_assert_cmpmem (&addr, sizeof addr, &plain, sizeof plain);
  g_assert_true (rndz_addr_equal (&addr, &plain));
  g_assert_cmpuint (rndz_addr_hash (&addr), ==, rndz_addr_hash (&plain));
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "198.51.100.7:4000");

  addr = rndz_test_addr ("[::FFFF:c633:6407]:4000");
  g_assert_true (rndz_addr_equal (&addr, &plain));

  /* Not mapped: IPv4-compatible and other embeddings stay IPv6 */
  addr = rndz_test_addr ("[::198.51.100.7]:4000");
  g_assert_cmpuint (addr.family, ==, 6);
  addr = rndz_test_addr ("[64:ff9b::198.51.100.7]:4000");
  g_assert_cmpuint (addr.family, ==, 6);
}

static void
test_addr_parse_port (void)
{
  RndzAddr addr;

  g_test_summary ("The port is decimal, 1 to 65535");

  addr = rndz_test_addr ("192.0.2.1:1");
  g_assert_cmpuint (addr.port, ==, 1);
  addr = rndz_test_addr ("192.0.2.1:65535");
  g_assert_cmpuint (addr.port, ==, 65535);
  addr = rndz_test_addr ("[::1]:65535");
  g_assert_cmpuint (addr.port, ==, 65535);
}

static void
test_addr_parse_bad (void)
{
  const char *bad[] = {
    "",
    "garbage",
    ":",
    "[",
    "]",
    "[]",
    "[]:80",
    /* No port, or an empty one */
    "198.51.100.7",
    "198.51.100.7:",
    "[2001:db8::1]",
    "[2001:db8::1]:",
    "[2001:db8::1]4000",
    ":4000",
    /* Port out of range or not plain decimal */
    "198.51.100.7:0",
    "[2001:db8::1]:0",
    "198.51.100.7:65536",
    "[::1]:65536",
    "198.51.100.7:99999",
    "198.51.100.7:100000",
    "198.51.100.7:000080",
    "198.51.100.7:-1",
    "198.51.100.7:+80",
    "198.51.100.7: 80",
    "198.51.100.7:80 ",
    "198.51.100.7:8 0",
    "198.51.100.7:0x50",
    "198.51.100.7:80a",
    "198.51.100.7:80:81",
    "[::1]:80:81",
    /* Host names */
    "localhost:4000",
    "example.com:80",
    "[localhost]:80",
    /* Brackets */
    "2001:db8::1:4000",
    "::1:4000",
    "[2001:db8::1:4000",
    "2001:db8::1]:4000",
    "[198.51.100.7]:4000",
    "[[::1]]:80",
    /* Malformed hosts */
    "198.51.100:4000",
    "198.51.100.7.1:4000",
    "256.1.1.1:80",
    "01.2.3.4:80",
    " 198.51.100.7:4000",
    "198.51.100.7 :4000",
    "[fe80::1%eth0]:80",
    "[2001:db8::1::2]:80",
    "[12345::1]:80",
    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:80",
    "[0000000000000000000000000000000000000000000000000000001]:80",
  };

  g_test_summary ("Anything but a numeric address and a port is refused with "
                  "INVALID_FIELD, and leaves the address unset");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      RndzAddr addr;

      g_test_message ("“%s”", bad[i]);
      memset (&addr, 0xaa, sizeof addr);
      g_assert_false (rndz_addr_parse (&addr, bad[i], &error));
      g_assert_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
      g_assert_cmpuint (addr.family, ==, 0);
      g_assert_cmpuint (addr.port, ==, 0);

      /* Without an error location */
      g_assert_false (rndz_addr_parse (&addr, bad[i], NULL));
    }
}

static void
test_addr_parse_long (void)
{
  g_autofree char *digits = repeat ("1", 1000);
  g_autofree char *v4 = g_strconcat (digits, ":80", NULL);
  g_autofree char *v6 = g_strconcat ("[", digits, "]:80", NULL);
  g_autofree char *port = g_strconcat ("1.2.3.4:", digits, NULL);
  g_autoptr(GError) error = NULL;
  RndzAddr addr;

  g_test_summary ("Long address strings are refused without overflowing");

  g_assert_false (rndz_addr_parse (&addr, v4, &error));
  g_assert_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_clear_error (&error);
  g_assert_false (rndz_addr_parse (&addr, v6, &error));
  g_assert_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_clear_error (&error);
  g_assert_false (rndz_addr_parse (&addr, port, &error));
  g_assert_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
}

static void
test_addr_format (void)
{
  const char *texts[] = {
    "198.51.100.7:4000", "[2001:db8::1]:4000", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
    "[fe80::1:2:3:4]:1", "10.0.0.1:65535",
  };
  char buf[RNDZ_ADDR_STRLEN];
  RndzAddr addr;

  g_test_summary ("Formatting gives the canonical text back; an unset "
                  "address formats as “(none)”");

  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      addr = rndz_test_addr (texts[i]);
      g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, texts[i]);
      g_assert_cmpuint (strlen (buf), <, RNDZ_ADDR_STRLEN);
    }

  memset (&addr, 0, sizeof addr);
  g_assert_cmpstr (rndz_addr_format (&addr, buf), ==, "(none)");
}

static void
test_addr_equal_hash (void)
{
  RndzAddr a = rndz_test_addr ("198.51.100.7:4000");
  RndzAddr b = rndz_test_addr ("198.51.100.7:4000");
  RndzAddr other_port = rndz_test_addr ("198.51.100.7:4001");
  RndzAddr other_host = rndz_test_addr ("198.51.100.8:4000");
  RndzAddr v6 = rndz_test_addr ("[2001:db8::1]:4000");
  RndzAddr v6b = rndz_test_addr ("[2001:db8:0::1]:4000");
  RndzAddr v6_other = rndz_test_addr ("[2001:db8::2]:4000");

  g_test_summary ("Addresses compare by family, bytes and port");

  g_assert_true (rndz_addr_equal (&a, &b));
  g_assert_cmpuint (rndz_addr_hash (&a), ==, rndz_addr_hash (&b));
  g_assert_false (rndz_addr_equal (&a, &other_port));
  g_assert_false (rndz_addr_equal (&a, &other_host));
  g_assert_false (rndz_addr_equal (&a, &v6));
  g_assert_true (rndz_addr_equal (&v6, &v6b));
  g_assert_cmpuint (rndz_addr_hash (&v6), ==, rndz_addr_hash (&v6b));
  g_assert_false (rndz_addr_equal (&v6, &v6_other));
}

static void
test_addr_sockaddr_ipv4 (void)
{
  RndzAddr addr = rndz_test_addr ("198.51.100.7:4000");
  struct sockaddr_storage ss;
  struct sockaddr_in *sin = (struct sockaddr_in *) &ss;
  RndzAddr back;
  gsize len;

  g_test_summary ("An IPv4 address converts to a sockaddr_in and back");

  len = rndz_addr_to_sockaddr (&addr, G_SOCKET_FAMILY_IPV4, &ss);
  g_assert_cmpuint (len, ==, sizeof (struct sockaddr_in));
  g_assert_cmpint (sin->sin_family, ==, AF_INET);
  g_assert_cmpuint (ntohs (sin->sin_port), ==, 4000);
  g_assert_cmpuint (ntohl (sin->sin_addr.s_addr), ==, 0xc6336407);

  g_assert_true (rndz_addr_from_sockaddr (&back, (struct sockaddr *) &ss, len));
  g_assert_cmpmem (&back, sizeof back, &addr, sizeof addr);
}

static void
test_addr_sockaddr_ipv6 (void)
{
  RndzAddr addr = rndz_test_addr ("[2001:db8::1]:4000");
  struct sockaddr_storage ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
  struct in6_addr expected;
  RndzAddr back;
  gsize len;

  g_test_summary ("An IPv6 address converts to a sockaddr_in6 and back, and "
                  "cannot be sent from an IPv4 socket");

  len = rndz_addr_to_sockaddr (&addr, G_SOCKET_FAMILY_IPV6, &ss);
  g_assert_cmpuint (len, ==, sizeof (struct sockaddr_in6));
  g_assert_cmpint (sin6->sin6_family, ==, AF_INET6);
  g_assert_cmpuint (ntohs (sin6->sin6_port), ==, 4000);
  g_assert_cmpint (inet_pton (AF_INET6, "2001:db8::1", &expected), ==, 1);
  g_assert_cmpmem (&sin6->sin6_addr, 16, &expected, 16);

  g_assert_true (rndz_addr_from_sockaddr (&back, (struct sockaddr *) &ss, len));
  g_assert_cmpmem (&back, sizeof back, &addr, sizeof addr);

  g_assert_cmpuint (rndz_addr_to_sockaddr (&addr, G_SOCKET_FAMILY_IPV4, &ss), ==, 0);
}

static void
test_addr_sockaddr_v4_on_ipv6 (void)
{
  RndzAddr addr = rndz_test_addr ("198.51.100.7:4000");
  struct sockaddr_storage ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &ss;
  struct in6_addr expected;
  RndzAddr back;
  gsize len;

  g_test_summary ("An IPv4 address sent from an IPv6 (dual-stack) socket is "
                  "written v4-mapped, and reads back as IPv4");

  len = rndz_addr_to_sockaddr (&addr, G_SOCKET_FAMILY_IPV6, &ss);
  g_assert_cmpuint (len, ==, sizeof (struct sockaddr_in6));
  g_assert_cmpint (sin6->sin6_family, ==, AF_INET6);
  g_assert_cmpuint (ntohs (sin6->sin6_port), ==, 4000);
  g_assert_cmpint (inet_pton (AF_INET6, "::ffff:198.51.100.7", &expected), ==, 1);
  g_assert_cmpmem (&sin6->sin6_addr, 16, &expected, 16);

  g_assert_true (rndz_addr_from_sockaddr (&back, (struct sockaddr *) &ss, len));
  g_assert_cmpuint (back.family, ==, 4);
  g_assert_cmpmem (&back, sizeof back, &addr, sizeof addr);
}

static void
test_addr_sockaddr_invalid (void)
{
  struct sockaddr_storage ss;
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  RndzAddr addr, unset;

  g_test_summary ("Short or non-IP socket addresses are refused");

  memset (&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  g_assert_false (rndz_addr_from_sockaddr (&addr, (struct sockaddr *) &sin, sizeof sin - 1));
  g_assert_cmpuint (addr.family, ==, 0);

  memset (&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  g_assert_false (rndz_addr_from_sockaddr (&addr, (struct sockaddr *) &sin6, sizeof sin - 1));
  g_assert_false (rndz_addr_from_sockaddr (&addr, (struct sockaddr *) &sin6, sizeof sin6 - 1));

  memset (&ss, 0, sizeof ss);
  ss.ss_family = AF_UNIX;
  g_assert_false (rndz_addr_from_sockaddr (&addr, (struct sockaddr *) &ss, sizeof ss));

  memset (&unset, 0, sizeof unset);
  g_assert_cmpuint (rndz_addr_to_sockaddr (&unset, G_SOCKET_FAMILY_IPV4, &ss), ==, 0);
  g_assert_cmpuint (rndz_addr_to_sockaddr (&unset, G_SOCKET_FAMILY_IPV6, &ss), ==, 0);
  g_assert_null (rndz_addr_to_socket_address (&unset, G_SOCKET_FAMILY_INVALID));
}

static void
test_addr_socket_address (void)
{
  const char *texts[] = { "198.51.100.7:4000", "[2001:db8::1]:4000" };
  g_autoptr(GSocketAddress) mapped = NULL;
  RndzAddr addr, back;

  g_test_summary ("Conversion to and from GInetSocketAddress, unmapping "
                  "v4-mapped addresses");

  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr(GSocketAddress) address = NULL;

      addr = rndz_test_addr (texts[i]);
      address = rndz_addr_to_socket_address (&addr, G_SOCKET_FAMILY_INVALID);
      g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
      g_assert_cmpuint (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address)), ==, 4000);
      g_assert_true (rndz_addr_from_socket_address (&back, address));
      g_assert_cmpmem (&back, sizeof back, &addr, sizeof addr);
    }

  mapped = g_inet_socket_address_new_from_string ("::ffff:198.51.100.7", 4000);
  g_assert_nonnull (mapped);
  g_assert_true (rndz_addr_from_socket_address (&back, mapped));
  addr = rndz_test_addr ("198.51.100.7:4000");
  g_assert_cmpmem (&back, sizeof back, &addr, sizeof addr);

  /* An IPv6 address cannot be reached from an IPv4 socket */
  addr = rndz_test_addr ("[2001:db8::1]:4000");
  g_assert_null (rndz_addr_to_socket_address (&addr, G_SOCKET_FAMILY_IPV4));
}

/* g_socket_address_new_from_native() turns a v4-mapped sockaddr_in6
 * back into an IPv4 GInetSocketAddress: if the mapping were lost that
 * way, a TCP connect() from an IPv6 socket to the address would fail
 * with EINVAL. */
static void
test_addr_socket_address_dual_stack (void)
{
  RndzAddr addr = rndz_test_addr ("198.51.100.7:4000");
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GInetAddress) expected = g_inet_address_new_from_string ("::ffff:198.51.100.7");
  RndzAddr back;

  g_test_summary ("For a dual-stack socket, an IPv4 peer is given as a "
                  "v4-mapped IPv6 address");

  address = rndz_addr_to_socket_address (&addr, G_SOCKET_FAMILY_IPV6);
  g_assert_true (G_IS_INET_SOCKET_ADDRESS (address));
  g_assert_true (rndz_addr_from_socket_address (&back, address));
  g_assert_cmpmem (&back, sizeof back, &addr, sizeof addr);

  g_assert_cmpint (g_socket_address_get_family (address), ==, G_SOCKET_FAMILY_IPV6);
  g_assert_true (g_inet_address_equal (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (address)),
                                       expected));
}

/* Frames */

static void
assert_peek (const guint8 *buf,
             gsize         len,
             gsize         max_size,
             gssize        expected)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (rndz_frame_peek (buf, len, max_size, &error), ==, expected);
  g_assert_no_error (error);
}

static void
assert_peek_fails (const guint8 *buf,
                   gsize         len,
                   gsize         max_size,
                   int           code)
{
  g_autoptr(GError) error = NULL;

  g_assert_cmpint (rndz_frame_peek (buf, len, max_size, &error), ==, -1);
  g_assert_error (error, RNDZ_PROTOCOL_ERROR, code);
}

static void
test_frame_incomplete (void)
{
  guint8 buf[2 + 10] = { 0, 10, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9' };

  g_test_summary ("An incomplete header or payload asks for more bytes");

  assert_peek (buf, 0, DEFAULT_MAX, 0);
  assert_peek (buf, 1, DEFAULT_MAX, 0);
  assert_peek (buf, 2, DEFAULT_MAX, 0);
  assert_peek (buf, 2 + 9, DEFAULT_MAX, 0);
  assert_peek (buf, 2 + 10, DEFAULT_MAX, 10);
}

static void
test_frame_big_endian (void)
{
  guint8 buf[2 + 0x0102 + 3] = { 0x01, 0x02 };

  g_test_summary ("The length is big-endian; bytes after the frame are the "
                  "next frame's");

  assert_peek (buf, 2 + 0x0101, DEFAULT_MAX, 0);
  assert_peek (buf, 2 + 0x0102, DEFAULT_MAX, 0x0102);
  assert_peek (buf, sizeof buf, DEFAULT_MAX, 0x0102);
}

static void
test_frame_zero_length (void)
{
  const guint8 buf[4] = { 0, 0, 0, 1 };

  g_test_summary ("A zero-length frame is invalid");

  assert_peek_fails (buf, 2, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_TRUNCATED);
  assert_peek_fails (buf, 4, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_TRUNCATED);
  g_assert_cmpint (rndz_frame_peek (buf, 2, DEFAULT_MAX, NULL), ==, -1);
}

static void
test_frame_oversize (void)
{
  const guint8 over[2] = { (DEFAULT_MAX + 1) >> 8, (DEFAULT_MAX + 1) & 0xff };
  const guint8 huge[2] = { 0xff, 0xff };

  g_test_summary ("A frame announcing more than the limit fails as soon as "
                  "its header arrives, before any payload is buffered");

  assert_peek_fails (over, 2, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
  assert_peek_fails (huge, 2, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
  assert_peek_fails (huge, 2, RNDZ_MESSAGE_MAX_MAX_SIZE - 1, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
  assert_peek (huge, 2, RNDZ_MESSAGE_MAX_MAX_SIZE, 0);
}

static void
test_frame_exact_max (void)
{
  g_autofree guint8 *buf = g_malloc0 (2 + DEFAULT_MAX);

  g_test_summary ("A frame of exactly the limit is accepted");

  buf[0] = DEFAULT_MAX >> 8;
  buf[1] = DEFAULT_MAX & 0xff;
  assert_peek (buf, 2, DEFAULT_MAX, 0);
  assert_peek (buf, 2 + DEFAULT_MAX - 1, DEFAULT_MAX, 0);
  assert_peek (buf, 2 + DEFAULT_MAX, DEFAULT_MAX, DEFAULT_MAX);
}

/* Splits a stream of frames the way RndzChannel does, fed @chunk bytes at
 * a time through a buffer of one frame of the largest size. */
static guint
read_stream (const guint8 *stream,
             gsize         len,
             gsize         chunk,
             RndzMessage  *out,
             guint         max_out)
{
  guint8 buf[RNDZ_FRAME_HEADER_SIZE + DEFAULT_MAX];
  gsize buffered = 0, fed = 0;
  guint n = 0;

  while (fed < len)
    {
      gsize take = MIN (MIN (chunk, len - fed), sizeof buf - buffered);
      gsize offset = 0;
      gssize payload;

      g_assert_cmpuint (take, >, 0);
      memcpy (buf + buffered, stream + fed, take);
      buffered += take;
      fed += take;

      while ((payload = rndz_frame_peek (buf + offset, buffered - offset, DEFAULT_MAX, NULL)) > 0)
        {
          g_autoptr(GError) error = NULL;

          g_assert_cmpuint (n, <, max_out);
          g_assert_true (rndz_message_decode (&out[n++], (const char *) buf + offset + 2,
                                              payload, DEFAULT_MAX, &error));
          g_assert_no_error (error);
          offset += RNDZ_FRAME_HEADER_SIZE + payload;
        }
      g_assert_cmpint (payload, ==, 0);

      memmove (buf, buf + offset, buffered - offset);
      buffered -= offset;
    }

  g_assert_cmpuint (buffered, ==, 0);
  return n;
}

static void
test_frame_stream (void)
{
  g_autoptr(GByteArray) stream = g_byte_array_new ();
  RndzMessage sent[G_N_ELEMENTS (message_cases)];
  RndzMessage received[G_N_ELEMENTS (message_cases)];
  const gsize chunks[] = { 1, 2, 3, 7, 64, 1402 };

  g_test_summary ("Frames of every message type, back to back in one "
                  "stream, split at every possible place");

  for (guint i = 0; i < G_N_ELEMENTS (message_cases); i++)
    {
      char frame[RNDZ_FRAME_HEADER_SIZE + DEFAULT_MAX];
      gsize len;

      message_from_case (&sent[i], &message_cases[i]);
      len = rndz_message_encode_frame (&sent[i], frame, sizeof frame);
      g_assert_cmpuint (len, >, 0);
      g_byte_array_append (stream, (const guint8 *) frame, len);
    }

  for (guint c = 0; c < G_N_ELEMENTS (chunks); c++)
    {
      guint n;

      memset (received, 0, sizeof received);
      n = read_stream (stream->data, stream->len, chunks[c], received, G_N_ELEMENTS (received));
      g_assert_cmpuint (n, ==, G_N_ELEMENTS (message_cases));
      for (guint i = 0; i < n; i++)
        assert_messages_equal (&received[i], &sent[i]);
    }
}

/* Malformed input
 *
 * Each case is one test, so a failure names the input. Unless said
 * otherwise the size limit is the default one.
 */

typedef struct
{
  const char *name;
  const char *data;
  gssize len;          /* -1: up to the nul */
  int code;
} MalformedCase;

#define PING_HEAD "{\"v\":1,\"type\":\"ping\",\"tid\":7"

static const MalformedCase malformed_cases[] = {
  /* Not JSON, or not an object */
  { "empty", "", 0, RNDZ_PROTOCOL_ERROR_TRUNCATED },
  { "whitespace", " \n\t ", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "truncated-object", PING_HEAD ",\"id\":\"alice\"", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "truncated-string", PING_HEAD ",\"id\":\"ali", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "truncated-member", PING_HEAD ",\"id\":", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "truncated-escape", PING_HEAD ",\"id\":\"a\\u00\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "open-brace", "{", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "close-brace", "}", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "trailing-comma", PING_HEAD ",\"id\":\"alice\",}", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "trailing-garbage", PING_HEAD ",\"id\":\"alice\"} x", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "unquoted-name", "{v:1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "missing-colon", "{\"v\" 1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "lone-surrogate", PING_HEAD ",\"id\":\"\\udc00\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "array", "[]", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "array-of-message", "[" PING_HEAD ",\"id\":\"alice\"}]", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "string", "\"ping\"", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "number", "42", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "null", "null", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "true", "true", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },

  /* Not UTF-8 */
  { "invalid-utf8", PING_HEAD ",\"id\":\"\xff\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "invalid-utf8-outside-string", PING_HEAD ",\"id\":\"a\"}\xff", -1, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "invalid-utf8-overlong", PING_HEAD ",\"id\":\"\xc0\xaf\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "invalid-utf8-surrogate", PING_HEAD ",\"id\":\"\xed\xa0\x80\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "invalid-utf8-truncated", PING_HEAD ",\"id\":\"\xe2\x82", -1, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "latin1", PING_HEAD ",\"id\":\"zo\xeb\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "nul-in-string", PING_HEAD ",\"id\":\"al\0ice\"}", sizeof (PING_HEAD ",\"id\":\"al\0ice\"}") - 1,
    RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "nul-after-object", PING_HEAD ",\"id\":\"alice\"}\0", sizeof (PING_HEAD ",\"id\":\"alice\"}\0") - 1,
    RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },
  { "nul-only", "\0", 1, RNDZ_PROTOCOL_ERROR_INVALID_ENCODING },

  /* v */
  { "v-missing", "{\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-string", "{\"v\":\"1\",\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-float", "{\"v\":1.0,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-exponent", "{\"v\":1e0,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-negative", "{\"v\":-1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-bool", "{\"v\":true,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-null", "{\"v\":null,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-array", "{\"v\":[1],\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-object", "{\"v\":{},\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "v-too-big", "{\"v\":2147483648,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "version-0", "{\"v\":0,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION },
  { "version-0-unknown-type", "{\"v\":0,\"type\":\"greet\"}", -1, RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION },
  { "empty-object", "{}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "unknown-type-without-v", "{\"type\":\"greet\",\"tid\":1}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },

  /* type */
  { "type-missing", "{\"v\":1,\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "type-number", "{\"v\":1,\"type\":1,\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "type-null", "{\"v\":1,\"type\":null,\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "type-array", "{\"v\":1,\"type\":[\"ping\"],\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "type-unknown", "{\"v\":1,\"type\":\"greet\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE },
  { "type-unknown-alone", "{\"v\":1,\"type\":\"greet\"}", -1, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE },
  { "type-uppercase", "{\"v\":1,\"type\":\"PING\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE },
  { "type-empty", "{\"v\":1,\"type\":\"\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE },
  { "type-invalid", "{\"v\":1,\"type\":\"invalid\",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE },
  { "type-space", "{\"v\":1,\"type\":\"ping \",\"tid\":7,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE },

  /* tid */
  { "tid-missing", "{\"v\":1,\"type\":\"ping\",\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-negative", "{\"v\":1,\"type\":\"ping\",\"tid\":-1,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-float", "{\"v\":1,\"type\":\"ping\",\"tid\":7.5,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-integral-float", "{\"v\":1,\"type\":\"ping\",\"tid\":7.0,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-too-big", "{\"v\":1,\"type\":\"ping\",\"tid\":4294967296,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-int64-max", "{\"v\":1,\"type\":\"ping\",\"tid\":9223372036854775807,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-beyond-int64", "{\"v\":1,\"type\":\"ping\",\"tid\":18446744073709551617,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-huge-exponent", "{\"v\":1,\"type\":\"ping\",\"tid\":1e300,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-string", "{\"v\":1,\"type\":\"ping\",\"tid\":\"7\",\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-null", "{\"v\":1,\"type\":\"ping\",\"tid\":null,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "tid-bool", "{\"v\":1,\"type\":\"ping\",\"tid\":false,\"id\":\"alice\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },

  /* id */
  { "id-number", PING_HEAD ",\"id\":7}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-null", PING_HEAD ",\"id\":null}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-array", PING_HEAD ",\"id\":[\"alice\"]}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-object", PING_HEAD ",\"id\":{\"alice\":1}}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-empty", PING_HEAD ",\"id\":\"\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-65-bytes", PING_HEAD ",\"id\":\"01234567890123456789012345678901234567890123456789012345678901234\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-control", PING_HEAD ",\"id\":\"a\\u001bb\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-raw-control", PING_HEAD ",\"id\":\"a\x01" "b\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-raw-newline", PING_HEAD ",\"id\":\"a\nb\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-c1-control", PING_HEAD ",\"id\":\"a\xc2\x85" "b\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "id-broken-surrogate", PING_HEAD ",\"id\":\"\\ud83dx\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },

  /* target */
  { "target-number", "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"bob\",\"target\":1}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "target-empty", "{\"v\":1,\"type\":\"rsync\",\"tid\":7,\"id\":\"bob\",\"target\":\"\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "target-control", "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"bob\",\"target\":\"\\n\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },

  /* addr */
  { "addr-number", "{\"v\":1,\"type\":\"pong\",\"tid\":7,\"addr\":4000}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-object", "{\"v\":1,\"type\":\"pong\",\"tid\":7,\"addr\":{\"ip\":\"198.51.100.7\"}}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-garbage", "{\"v\":1,\"type\":\"pong\",\"tid\":7,\"addr\":\"nowhere\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-empty", "{\"v\":1,\"type\":\"pong\",\"tid\":7,\"addr\":\"\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-no-port", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"id\":\"bob\",\"addr\":\"198.51.100.7\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-port-0", "{\"v\":1,\"type\":\"redirect\",\"tid\":7,\"id\":\"a\",\"addr\":\"198.51.100.7:0\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-port-65536", "{\"v\":1,\"type\":\"redirect\",\"tid\":7,\"id\":\"a\",\"addr\":\"[::1]:65536\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-hostname", "{\"v\":1,\"type\":\"redirect\",\"tid\":7,\"id\":\"a\",\"addr\":\"example.com:80\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "addr-no-brackets", "{\"v\":1,\"type\":\"redirect\",\"tid\":7,\"id\":\"a\",\"addr\":\"2001:db8::1:80\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },

  /* code */
  { "code-number", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":1}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "code-null", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":null}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "code-array", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":[\"bad-request\"]}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },

  /* Every field each type needs, missing in turn */
  { "ping-no-id", "{\"v\":1,\"type\":\"ping\",\"tid\":7}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "ping-no-tid", "{\"v\":1,\"type\":\"ping\",\"id\":\"a\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "pong-no-addr", "{\"v\":1,\"type\":\"pong\",\"tid\":7}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "pong-no-tid", "{\"v\":1,\"type\":\"pong\",\"addr\":\"192.0.2.1:9\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "isync-no-id", "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"target\":\"a\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "isync-no-target", "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"b\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "isync-no-tid", "{\"v\":1,\"type\":\"isync\",\"id\":\"b\",\"target\":\"a\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "fsync-no-id", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"addr\":\"192.0.2.1:9\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "fsync-no-addr", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"id\":\"b\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "fsync-no-tid", "{\"v\":1,\"type\":\"fsync\",\"id\":\"b\",\"addr\":\"192.0.2.1:9\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "rsync-no-id", "{\"v\":1,\"type\":\"rsync\",\"tid\":7,\"target\":\"b\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "rsync-no-target", "{\"v\":1,\"type\":\"rsync\",\"tid\":7,\"id\":\"a\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "rsync-no-tid", "{\"v\":1,\"type\":\"rsync\",\"id\":\"a\",\"target\":\"b\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "redirect-no-id", "{\"v\":1,\"type\":\"redirect\",\"tid\":7,\"addr\":\"192.0.2.1:9\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "redirect-no-addr", "{\"v\":1,\"type\":\"redirect\",\"tid\":7,\"id\":\"a\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "redirect-no-tid", "{\"v\":1,\"type\":\"redirect\",\"id\":\"a\",\"addr\":\"192.0.2.1:9\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "bye-no-id", "{\"v\":1,\"type\":\"bye\",\"tid\":7}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "bye-no-tid", "{\"v\":1,\"type\":\"bye\",\"id\":\"a\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "error-no-code", "{\"v\":1,\"type\":\"error\",\"tid\":7}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "error-no-tid", "{\"v\":1,\"type\":\"error\",\"code\":\"bad-request\"}", -1, RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  /* A field of another type does not stand in for a missing one */
  { "fsync-target-for-addr", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"id\":\"b\",\"target\":\"192.0.2.1:9\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },
  { "isync-addr-for-target", "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"b\",\"addr\":\"a\"}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_FIELD },

  /* Nesting beyond 8 levels, the message object included */
  { "nesting-9-arrays", PING_HEAD ",\"id\":\"a\",\"x\":[[[[[[[[1]]]]]]]]}", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "nesting-9-objects", PING_HEAD ",\"id\":\"a\",\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}", -1,
    RNDZ_PROTOCOL_ERROR_INVALID_JSON },
  { "nesting-9-unclosed", "[[[[[[[[[", -1, RNDZ_PROTOCOL_ERROR_INVALID_JSON },
};

static void
test_malformed (gconstpointer data)
{
  const MalformedCase *c = data;
  g_autofree char *summary = g_strdup_printf ("Malformed input “%s” fails with its error code", c->name);

  g_test_summary (summary);
  assert_decode_fails (c->data, c->len, DEFAULT_MAX, c->code);
}

static void
test_malformed_deep_nesting (void)
{
  gsize depth = 10000;
  g_autofree char *open = g_malloc (depth);
  g_autofree char *closed = g_malloc (2 * depth);
  g_autofree char *object = NULL;

  g_test_summary ("Very deep nesting within the size limit is refused before "
                  "json-glib, which would recurse once per level, sees it");

  memset (open, '[', depth);
  assert_decode_fails (open, depth, RNDZ_MESSAGE_MAX_MAX_SIZE, RNDZ_PROTOCOL_ERROR_INVALID_JSON);

  memset (closed, '[', depth);
  memset (closed + depth, ']', depth);
  assert_decode_fails (closed, 2 * depth, RNDZ_MESSAGE_MAX_MAX_SIZE, RNDZ_PROTOCOL_ERROR_INVALID_JSON);

  memset (open, '{', depth);
  assert_decode_fails (open, depth, RNDZ_MESSAGE_MAX_MAX_SIZE, RNDZ_PROTOCOL_ERROR_INVALID_JSON);

  /* Inside an otherwise valid message, at the default limit */
  {
    GString *s = g_string_new (PING_HEAD ",\"id\":\"a\",\"x\":");

    for (guint i = 0; i < 600; i++)
      g_string_append_c (s, '[');
    g_string_append_c (s, '1');
    for (guint i = 0; i < 600; i++)
      g_string_append_c (s, ']');
    g_string_append_c (s, '}');
    g_assert_cmpuint (s->len, <=, DEFAULT_MAX);
    object = g_string_free (s, FALSE);
  }
  assert_decode_fails (object, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_JSON);
}

static void
test_nesting_depth_8 (void)
{
  RndzMessage msg;

  g_test_summary ("Nesting of 8 levels, the message object included, is "
                  "accepted; brackets inside strings do not count");

  decode_ok (&msg, PING_HEAD ",\"id\":\"a\",\"x\":[[[[[[[1]]]]]]]}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_PING);
  decode_ok (&msg, PING_HEAD ",\"id\":\"a\",\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_PING);
  decode_ok (&msg, PING_HEAD ",\"id\":\"a\",\"x\":[[[[[[[]]]]]]],\"y\":[[[[[[[]]]]]]]}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_PING);

  decode_ok (&msg, PING_HEAD ",\"id\":\"[[[[[[[[[[{{{{{{{{{{\"}");
  g_assert_cmpstr (msg.id, ==, "[[[[[[[[[[{{{{{{{{{{");
  decode_ok (&msg, PING_HEAD ",\"id\":\"a\\\"[[[[[[[[[[\\\\\",\"pad\":\"\\\"[[[[[[[[[[[[\"}");
  g_assert_cmpstr (msg.id, ==, "a\"[[[[[[[[[[\\");
}

static void
test_nesting_in_long_string (void)
{
  g_autofree char *brackets = repeat ("[", 30000);
  g_autofree char *json = g_strdup_printf (PING_HEAD ",\"id\":\"a\",\"pad\":\"%s\"}", brackets);
  g_autoptr(GError) error = NULL;
  RndzMessage msg;

  g_test_summary ("Brackets in a long string are text, not nesting");

  g_assert_true (rndz_message_decode (&msg, json, strlen (json), RNDZ_MESSAGE_MAX_MAX_SIZE, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (msg.id, ==, "a");
}

/* json-glib 1.6 skips C comments and reads single-quoted strings: a
 * depth check that did not know them would let a '"' inside them hide
 * the rest of the input. */
static void
test_nesting_hidden (void)
{
  const char *prefixes[] = {
    "/*\"*/{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"a\",\"x\":",
    "{'q':'\"','v':1,'type':'ping','tid':7,'id':'a','x':",
  };
  g_test_summary ("Nesting hidden behind a '\"' in a comment or a "
                  "single-quoted string is still refused");

  for (guint i = 0; i < G_N_ELEMENTS (prefixes); i++)
    {
      g_autoptr(GError) error = NULL;
      GString *s = g_string_new (prefixes[i]);
      g_autofree char *json = NULL;
      RndzMessage msg;

      for (guint d = 0; d < 600; d++)
        g_string_append_c (s, '[');
      for (guint d = 0; d < 600; d++)
        g_string_append_c (s, ']');
      g_string_append_c (s, '}');
      g_assert_cmpuint (s->len, <=, DEFAULT_MAX);
      json = g_string_free (s, FALSE);

      g_assert_false (rndz_message_decode (&msg, json, strlen (json), DEFAULT_MAX, &error));
      g_assert_cmpuint (error->domain, ==, RNDZ_PROTOCOL_ERROR);
    }
}

/* json-glib decodes \u0000 into a nul that ends the C string: the
 * decoder must not see only what comes before it. */
static void
test_escaped_nul (void)
{
  const char *cases[] = {
    PING_HEAD ",\"id\":\"al\\u0000ice\"}",
    "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"bob\",\"target\":\"alice\\u0000x\"}",
    "{\"v\":1,\"type\":\"pong\",\"tid\":7,\"addr\":\"198.51.100.7:4000\\u0000junk\"}",
    "{\"v\":1,\"type\":\"ping\\u0000junk\",\"tid\":7,\"id\":\"alice\"}",
  };
  g_test_summary ("An escaped nul is a control character: a string holding "
                  "one is not cut short and accepted");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      RndzMessage msg;

      g_assert_false (rndz_message_decode (&msg, cases[i], strlen (cases[i]), DEFAULT_MAX, &error));
      g_assert_cmpuint (error->domain, ==, RNDZ_PROTOCOL_ERROR);
    }
}

/* Known bug: json-glib 1.6 parses every top-level value, keeps the first
 * as the root and leaks the others, so this is accepted as the first
 * message and leaks memory each time. */
static void
test_trailing_value (void)
{
  const char *cases[] = {
    PING_HEAD ",\"id\":\"alice\"}{}",
    PING_HEAD ",\"id\":\"alice\"}[1]",
    PING_HEAD ",\"id\":\"alice\"} " PING_HEAD ",\"id\":\"bob\"}",
    PING_HEAD ",\"id\":\"alice\"}[][][][][][][][][][][][][][][][]",
  };

  g_test_summary ("A message is one JSON object: values after it are refused before "
                  "json-glib sees them (json-glib 1.6 would leak them), also under "
                  "valgrind and LeakSanitizer");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_decode_fails (cases[i], -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_JSON);
}

static void
test_malformed_huge_strings (void)
{
  g_autofree char *big = repeat ("x", 1000);
  g_autofree char *json = NULL;
  RndzMessage msg;

  g_test_summary ("Strings of 1000 bytes are refused where an id or an "
                  "address is expected, without overflowing the message");

  json = g_strdup_printf (PING_HEAD ",\"id\":\"%s\"}", big);
  assert_decode_fails (json, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_clear_pointer (&json, g_free);

  json = g_strdup_printf ("{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"b\",\"target\":\"%s\"}", big);
  assert_decode_fails (json, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_clear_pointer (&json, g_free);

  json = g_strdup_printf ("{\"v\":1,\"type\":\"pong\",\"tid\":7,\"addr\":\"%s\"}", big);
  assert_decode_fails (json, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_INVALID_FIELD);
  g_clear_pointer (&json, g_free);

  json = g_strdup_printf ("{\"v\":1,\"type\":\"%s\",\"tid\":7}", big);
  assert_decode_fails (json, -1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE);
  g_clear_pointer (&json, g_free);

  /* A long unknown error code is just an unknown code */
  json = g_strdup_printf ("{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":\"%s\"}", big);
  decode_ok (&msg, json);
  g_assert_cmpint (msg.code, ==, RNDZ_WIRE_ERROR_UNKNOWN);
}

/* A ping padded with an extra field to exactly @len bytes */
static char *
padded_ping (gsize len)
{
  const char *head = PING_HEAD ",\"id\":\"alice\",\"pad\":\"";
  gsize fixed = strlen (head) + strlen ("\"}");
  GString *s = g_string_new (head);

  g_assert_cmpuint (len, >=, fixed);
  for (gsize i = fixed; i < len; i++)
    g_string_append_c (s, 'x');
  g_string_append (s, "\"}");
  g_assert_cmpuint (s->len, ==, len);
  return g_string_free (s, FALSE);
}

static void
test_size_limit (void)
{
  g_autofree char *exact = padded_ping (DEFAULT_MAX);
  g_autofree char *over = padded_ping (DEFAULT_MAX + 1);
  g_autofree char *garbage = g_malloc (DEFAULT_MAX + 1);
  const char *json = message_cases[0].json;
  gsize json_len = strlen (json);
  g_autoptr(GError) error = NULL;
  RndzMessage msg;

  g_test_summary ("A message of exactly the limit is accepted; one byte more "
                  "is TOO_LARGE, checked before anything else");

  g_assert_true (rndz_message_decode (&msg, exact, DEFAULT_MAX, DEFAULT_MAX, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (msg.id, ==, "alice");

  assert_decode_fails (over, DEFAULT_MAX + 1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_TOO_LARGE);

  memset (garbage, 0xff, DEFAULT_MAX + 1);
  assert_decode_fails (garbage, DEFAULT_MAX + 1, DEFAULT_MAX, RNDZ_PROTOCOL_ERROR_TOO_LARGE);

  /* The limit is the caller's */
  g_assert_true (rndz_message_decode (&msg, json, json_len, json_len, NULL));
  assert_decode_fails (json, json_len, json_len - 1, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
  assert_decode_fails (exact, DEFAULT_MAX, RNDZ_MESSAGE_MIN_MAX_SIZE, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
  assert_decode_fails (json, json_len, 0, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
  assert_decode_fails ("", 0, 0, RNDZ_PROTOCOL_ERROR_TRUNCATED);
}

/* Candidates, connectivity checks and the relay */

static void
test_cand_v4_mapped (void)
{
  char buf[DEFAULT_MAX];
  RndzMessage msg;

  g_test_summary ("A v4-mapped candidate is the IPv4 address and is written in the "
                  "IPv4 form; IPv6 candidates are written in the canonical form");

  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"cand\":"
                   "\"[::ffff:192.168.1.20]:4000 [2001:0DB8:0000:0000:0000:0000:0000:0020]:4000 "
                   "[::FFFF:c0a8:0115]:4001\"}");
  g_assert_cmpuint (msg.n_cands, ==, 3);
  g_assert_cmpuint (msg.cands[0].family, ==, 4);
  g_assert_cmpuint (msg.cands[1].family, ==, 6);
  g_assert_cmpuint (msg.cands[2].family, ==, 4);
  g_assert_true (rndz_addr_equal (&msg.cands[2], &(RndzAddr) { 0 }) == FALSE);
  {
    RndzAddr expected = rndz_test_addr ("192.168.1.21:4001");

    g_assert_true (rndz_addr_equal (&msg.cands[2], &expected));
  }

  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), >, 0);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"cand\":"
                            "\"192.168.1.20:4000 [2001:db8::20]:4000 192.168.1.21:4001\"}");
}

/* The longest text an address can have: a full, v4-mapped IPv6 form */
#define LONGEST_FORM "[0000:0000:0000:0000:0000:ffff:255.255.255.255]:65535"

static void
test_cand_longest_form (void)
{
  const char *json = "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"a\",\"addr\":\"" LONGEST_FORM "\","
                     "\"cand\":\"" LONGEST_FORM " " LONGEST_FORM " " LONGEST_FORM " " LONGEST_FORM "\"}";
  const char *five = "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"a\",\"addr\":\"1.2.3.4:5\","
                     "\"cand\":\"" LONGEST_FORM " " LONGEST_FORM " " LONGEST_FORM " " LONGEST_FORM
                     " " LONGEST_FORM "\"}";
  RndzAddr expected = rndz_test_addr ("255.255.255.255:65535");

  g_test_summary ("Four candidates in the longest form an address may take (215 bytes) "
                  "decode alike with the fast path and with json-glib; five are refused "
                  "by both");

  g_assert_cmpuint (strlen (LONGEST_FORM), ==, 53);

  for (int fast = 0; fast <= 1; fast++)
    {
      RndzMessage msg;

      rndz_message_fast_path = fast;
      decode_ok (&msg, json);
      assert_invalid_field (five, "cand");
      rndz_message_fast_path = TRUE;

      g_assert_cmpuint (msg.n_cands, ==, 4);
      for (guint i = 0; i < 4; i++)
        g_assert_true (rndz_addr_equal (&msg.cands[i], &expected));
      g_assert_true (rndz_addr_equal (&msg.addr, &expected));
    }
}

static void
test_cand_absent (void)
{
  char buf[DEFAULT_MAX];
  RndzMessage msg;

  g_test_summary ("cand is optional: without it there are no candidates, and an "
                  "encoder without candidates writes no cand field");

  decode_ok (&msg, "{\"v\":1,\"type\":\"isync\",\"tid\":1,\"id\":\"b\",\"target\":\"a\"}");
  g_assert_cmpuint (msg.n_cands, ==, 0);
  decode_ok (&msg, "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"a\",\"addr\":\"1.2.3.4:5\"}");
  g_assert_cmpuint (msg.n_cands, ==, 0);
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), >, 0);
  g_assert_null (strstr (buf, "cand"));
}

static void
test_cand_ignored (void)
{
  const char *bases[] = {
    "{\"v\":1,\"type\":\"pong\",\"tid\":1,\"addr\":\"1.2.3.4:5\"",
    "{\"v\":1,\"type\":\"rsync\",\"tid\":1,\"id\":\"a\",\"target\":\"b\"",
    "{\"v\":1,\"type\":\"bye\",\"tid\":1,\"id\":\"a\"",
    "{\"v\":1,\"type\":\"error\",\"tid\":1,\"code\":\"no-relay\"",
    "{\"v\":1,\"type\":\"check\",\"tid\":1,\"id\":\"b\",\"target\":\"a\"",
    "{\"v\":1,\"type\":\"confirm\",\"tid\":1,\"id\":\"a\",\"target\":\"b\"",
    "{\"v\":1,\"type\":\"use\",\"tid\":1,\"id\":\"b\",\"target\":\"a\"",
    "{\"v\":1,\"type\":\"relay\",\"tid\":1,\"id\":\"b\",\"target\":\"a\"",
    "{\"v\":1,\"type\":\"session\",\"tid\":1,\"id\":\"a\",\"token\":\"" TOKEN "\",\"port\":9",
    "{\"v\":1,\"type\":\"hello\",\"tid\":1,\"id\":\"a\",\"token\":\"" TOKEN "\"",
    "{\"v\":1,\"type\":\"wait\",\"tid\":1",
    "{\"v\":1,\"type\":\"ready\",\"tid\":1",
  };
  const char *cands[] = { "\"192.168.1.20:4000\"", "\"\"", "\"nowhere\"", "7", "null", "[\"1.2.3.4:5\"]" };
  g_autoptr(GBytes) key = g_bytes_new_static ("0123456789abcdef", 16);
  RndzAddr srv = rndz_test_addr ("198.51.100.7:8888");
  char buf[DEFAULT_MAX], plain[DEFAULT_MAX];
  RndzMessage msg;

  g_test_summary ("Types without candidates ignore a cand field, valid or not; the "
                  "encoder and the MAC ignore candidates set on them");

  for (guint i = 0; i < G_N_ELEMENTS (bases); i++)
    for (guint c = 0; c < G_N_ELEMENTS (cands); c++)
      {
        g_autofree char *json = g_strdup_printf ("%s,\"cand\":%s}", bases[i], cands[c]);

        decode_ok (&msg, json);
        g_assert_cmpuint (msg.n_cands, ==, 0);
      }

  for (RndzMessageType type = RNDZ_MESSAGE_PING; type <= RNDZ_MESSAGE_LAST; type++)
    {
      gboolean has_cand = type == RNDZ_MESSAGE_PING || type == RNDZ_MESSAGE_ISYNC ||
                          type == RNDZ_MESSAGE_FSYNC || type == RNDZ_MESSAGE_REDIRECT;
      g_autofree char *mac = NULL;

      rndz_message_init (&msg, type, 1);
      g_strlcpy (msg.id, "a", sizeof msg.id);
      g_strlcpy (msg.target, "b", sizeof msg.target);
      msg.addr = rndz_test_addr ("1.2.3.4:5");
      g_strlcpy (msg.token, TOKEN, sizeof msg.token);
      msg.port = 9;
      rndz_message_sign (&msg, &srv, key, 1700000000000);
      g_assert_cmpuint (rndz_message_encode (&msg, plain, sizeof plain), >, 0);
      mac = g_strdup (msg.mac);

      set_cands (&msg, "192.168.1.20:4000");
      g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), >, 0);
      g_assert_true (rndz_message_verify (&msg, key) != has_cand);
      if (has_cand)
        continue;
      g_assert_cmpstr (buf, ==, plain);
      g_assert_cmpstr (msg.mac, ==, mac);
    }
}

static void
test_fingerprint (void)
{
  g_autoptr(GBytes) key = g_bytes_new_static ("secret", 6);
  const char *bases[] = {
    "{\"v\":1,\"type\":\"isync\",\"tid\":1,\"id\":\"b\",\"target\":\"a\"",
    "{\"v\":1,\"type\":\"fsync\",\"tid\":1,\"id\":\"b\",\"addr\":\"1.2.3.4:5\"",
    "{\"v\":1,\"type\":\"rsync\",\"tid\":1,\"id\":\"a\",\"target\":\"b\"",
    "{\"v\":1,\"type\":\"redirect\",\"tid\":1,\"id\":\"a\",\"addr\":\"1.2.3.4:5\"",
  };
  g_autofree char *short_fp = g_strndup (FP, RNDZ_FP_LEN - 1);
  g_autofree char *upper_fp = g_ascii_strup (FP, -1);
  g_autofree char *long_fp = g_strconcat (FP, "0", NULL);
  const char *invalid[] = { "\"\"", "null", "42", "true", "[]", NULL, NULL, NULL,
                            "\"" FP "x\"" };
  g_autofree char *invalid_short = g_strdup_printf ("\"%s\"", short_fp);
  g_autofree char *invalid_upper = g_strdup_printf ("\"%s\"", upper_fp);
  g_autofree char *invalid_long = g_strdup_printf ("\"%s\"", long_fp);
  RndzAddr srv = rndz_test_addr ("127.0.0.1:8888");
  RndzMessage msg;
  char buf[DEFAULT_MAX];
  gsize plain, secure;

  g_test_summary ("A fingerprint is 64 lowercase hex digits in isync, fsync, rsync and "
                  "redirect, ignored elsewhere; the MAC covers it; a secure isync pays "
                  "for the fingerprints it causes the server to send");

  invalid[5] = invalid_short;
  invalid[6] = invalid_upper;
  invalid[7] = invalid_long;
  for (guint i = 0; i < G_N_ELEMENTS (bases); i++)
    for (guint v = 0; v < G_N_ELEMENTS (invalid); v++)
      {
        g_autofree char *json = g_strdup_printf ("%s,\"fp\":%s}", bases[i], invalid[v]);

        assert_invalid_field (json, "fp");
      }

  /* Other types ignore it, whatever its value */
  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\",\"fp\":42}");
  g_assert_cmpstr (msg.fp, ==, "");
  decode_ok (&msg, "{\"v\":1,\"type\":\"check\",\"tid\":1,\"id\":\"a\",\"target\":\"b\","
                   "\"fp\":\"" FP "\"}");
  g_assert_cmpstr (msg.fp, ==, "");
  rndz_message_init (&msg, RNDZ_MESSAGE_PING, 1);
  g_strlcpy (msg.id, "a", sizeof msg.id);
  g_strlcpy (msg.fp, FP, sizeof msg.fp);
  rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_null (strstr (buf, "fp"));

  /* The MAC covers it, and tells "no candidates, a fingerprint" from
   * "candidates, no fingerprint" */
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 1);
  g_strlcpy (msg.id, "b", sizeof msg.id);
  g_strlcpy (msg.target, "a", sizeof msg.target);
  g_strlcpy (msg.fp, FP, sizeof msg.fp);
  rndz_message_sign (&msg, &srv, key, 1700000000000);
  g_assert_true (rndz_message_verify (&msg, key));
  msg.fp[0] = '4';
  g_assert_false (rndz_message_verify (&msg, key));
  msg.fp[0] = '\0';
  g_assert_false (rndz_message_verify (&msg, key));
  set_cands (&msg, "192.168.1.20:4000");
  rndz_message_sign (&msg, &srv, key, 1700000000000);
  g_assert_true (rndz_message_verify (&msg, key));
  g_strlcpy (msg.fp, FP, sizeof msg.fp);
  g_assert_false (rndz_message_verify (&msg, key));

  /* Padding: the fsync carries the requester's fingerprint, the redirect
   * the target's */
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 1);
  g_strlcpy (msg.id, "b", sizeof msg.id);
  g_strlcpy (msg.target, "a", sizeof msg.target);
  plain = rndz_message_max_reply_size (&msg);
  g_strlcpy (msg.fp, FP, sizeof msg.fp);
  secure = rndz_message_max_reply_size (&msg);
  g_assert_cmpuint (secure, ==, plain + 2 * strlen (",\"fp\":\"" FP "\""));
}

static void
test_seen (void)
{
  const char *invalid[] = { "\"\"", "null", "42", "\"1.2.3.4\"", "\"host:5\"", "\"1.2.3.4:0\"" };
  RndzMessage msg, back;
  char buf[DEFAULT_MAX];
  gsize len;

  g_test_summary ("A redirect may name the requester as the server saw it (seen), an "
                  "address; other types ignore the field");

  rndz_message_init (&msg, RNDZ_MESSAGE_REDIRECT, 42);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  msg.addr = rndz_test_addr ("198.51.100.7:4000");
  msg.seen = rndz_test_addr ("203.0.113.9:51000");
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"redirect\",\"tid\":42,\"id\":\"alice\","
                            "\"addr\":\"198.51.100.7:4000\",\"seen\":\"203.0.113.9:51000\"}");
  g_assert_true (rndz_message_decode (&back, buf, len, DEFAULT_MAX, NULL));
  g_assert_true (rndz_addr_equal (&back.seen, &msg.seen));

  for (guint i = 0; i < G_N_ELEMENTS (invalid); i++)
    {
      g_autofree char *json = g_strdup_printf ("{\"v\":1,\"type\":\"redirect\",\"tid\":1,"
                                               "\"id\":\"a\",\"addr\":\"1.2.3.4:5\",\"seen\":%s}",
                                               invalid[i]);

      assert_invalid_field (json, "seen");
    }

  decode_ok (&msg, "{\"v\":1,\"type\":\"pong\",\"tid\":1,\"addr\":\"1.2.3.4:5\",\"seen\":42}");
  g_assert_cmpuint (msg.seen.family, ==, 0);
}

static void
test_fields_ignored (void)
{
  char buf[DEFAULT_MAX];
  RndzMessage msg;

  g_test_summary ("token, port and auth are ignored, whatever their value, on types "
                  "that do not define them, and never written there; srv without a MAC "
                  "is ignored too");

  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\",\"srv\":7}");
  g_assert_cmpuint (msg.srv.family, ==, 0);
  decode_ok (&msg, "{\"v\":1,\"type\":\"pong\",\"tid\":1,\"addr\":\"1.2.3.4:5\","
                   "\"srv\":\"1.2.3.4:6\"}");
  g_assert_cmpuint (msg.srv.family, ==, 0);

  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":1,\"id\":\"a\",\"token\":\"XYZ\","
                   "\"port\":0,\"auth\":\"yes\"}");
  g_assert_cmpstr (msg.token, ==, "");
  g_assert_cmpuint (msg.port, ==, 0);
  g_assert_false (msg.auth);

  decode_ok (&msg, "{\"v\":1,\"type\":\"hello\",\"tid\":1,\"id\":\"a\",\"token\":\"" TOKEN "\","
                   "\"port\":\"80\",\"auth\":true,\"target\":7,\"addr\":\"x\"}");
  g_assert_cmpuint (msg.port, ==, 0);
  g_assert_false (msg.auth);

  decode_ok (&msg, "{\"v\":1,\"type\":\"relay\",\"tid\":1,\"id\":\"b\",\"target\":\"a\","
                   "\"token\":1,\"port\":-1,\"auth\":null}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_RELAY);

  decode_ok (&msg, "{\"v\":1,\"type\":\"wait\",\"tid\":1,\"id\":\"\",\"target\":null,"
                   "\"token\":\"\",\"port\":0,\"auth\":0,\"code\":[]}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_WAIT);
  g_assert_cmpstr (msg.id, ==, "");

  decode_ok (&msg, "{\"v\":1,\"type\":\"ready\",\"tid\":1,\"id\":\"a\",\"token\":\"" TOKEN "\"}");
  g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_READY);
  g_assert_cmpstr (msg.id, ==, "");
  g_assert_cmpstr (msg.token, ==, "");

  /* Set on a hello, a relay or a wait, they stay out of the JSON */
  rndz_message_init (&msg, RNDZ_MESSAGE_HELLO, 5);
  g_strlcpy (msg.id, "a", sizeof msg.id);
  g_strlcpy (msg.token, TOKEN, sizeof msg.token);
  msg.port = 80;
  msg.auth = TRUE;
  rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"hello\",\"tid\":5,\"id\":\"a\",\"token\":\"" TOKEN "\"}");

  msg.type = RNDZ_MESSAGE_RELAY;
  g_strlcpy (msg.target, "b", sizeof msg.target);
  rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"relay\",\"tid\":5,\"id\":\"a\",\"target\":\"b\"}");

  msg.type = RNDZ_MESSAGE_WAIT;
  rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"wait\",\"tid\":5}");
}

static void
test_session_auth (void)
{
  RndzMessage msg;

  g_test_summary ("auth on a session is an optional boolean: true, false or absent");

  decode_ok (&msg, "{\"v\":1,\"type\":\"session\",\"tid\":1,\"id\":\"b\",\"token\":\"" TOKEN "\","
                   "\"port\":8889,\"auth\":true}");
  g_assert_true (msg.auth);
  decode_ok (&msg, "{\"v\":1,\"type\":\"session\",\"tid\":1,\"id\":\"b\",\"token\":\"" TOKEN "\","
                   "\"port\":8889,\"auth\":false}");
  g_assert_false (msg.auth);
  decode_ok (&msg, "{\"v\":1,\"type\":\"session\",\"tid\":1,\"id\":\"b\",\"token\":\"" TOKEN "\","
                   "\"port\":8889}");
  g_assert_false (msg.auth);
}

/* Vectors computed independently, with Python's hmac module, from the
 * definition in doc/protocol.md (section Authentication), by
 * scripts/auth-vectors.py */
#define SRV "\"srv\":\"198.51.100.7:8888\","

/* @json decodes, verifies under @key, and is exactly what the encoder
 * writes for what it decodes to */
static void
assert_vector (const char *json,
               GBytes     *key)
{
  char buf[DEFAULT_MAX];
  RndzMessage msg;

  decode_ok (&msg, json);
  g_assert_true (rndz_message_verify (&msg, key));
  g_assert_cmpuint (rndz_message_encode (&msg, buf, sizeof buf), ==, strlen (json));
  g_assert_cmpstr (buf, ==, json);
}

static void
test_mac_vectors (void)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("correct horse battery staple", 28);
  g_autoptr(GBytes) alice = rndz_derive_key (secret, "alice");
  g_autoptr(GBytes) bob = rndz_derive_key (secret, "bob");
  g_autofree char *alice_hex = rndz_key_to_hex (alice);
  g_autofree char *bob_hex = rndz_key_to_hex (bob);
  RndzMessage msg;

  g_test_summary ("The test vectors of doc/protocol.md (MAC input version 2, the server "
                  "and the candidates its ninth and tenth parts) verify and encode byte "
                  "for byte; for another server, or for none, they do not verify");

  g_assert_cmpstr (alice_hex, ==, "713bbae71e2e23ad88a645dfbffae4ac09cf3d856e0a776b3f4d037dad7395bb");
  g_assert_cmpstr (bob_hex, ==, "25c122bbbd27dc254cf7afead08bb1012dcf0a9c9a3f0bb6c2ba1758164743cf");

  /* The vectors of doc/protocol.md, byte for byte */
  assert_vector ("{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"ts\":1700000000000,"
                 "\"nonce\":\"0011223344556677\"," SRV
                 "\"mac\":\"08b3c9e9bc3de733eaa614c643498b24df00a0f54418c9bc54f9bfccf5c5d3d9\"}", alice);
  assert_vector ("{\"v\":1,\"type\":\"isync\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\","
                 "\"ts\":1700000000123,\"nonce\":\"8899aabbccddeeff\"," SRV
                 "\"mac\":\"b3301f817edf55fb0182f282c8ebb53fc5b474a654fae1cf96dfa3cec95c48b6\"}", bob);
  assert_vector ("{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\","
                 "\"cand\":\"192.168.1.20:4000 10.8.0.3:4000\",\"ts\":1700000000000,"
                 "\"nonce\":\"0011223344556677\"," SRV
                 "\"mac\":\"8ea0a88dc2a3f57a6ad02dc8092d0b294f706f200350bde6f7aa5703512190f0\"}", alice);
  assert_vector ("{\"v\":1,\"type\":\"isync\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\","
                 "\"cand\":\"192.168.1.30:51000\",\"ts\":1700000000123,"
                 "\"nonce\":\"8899aabbccddeeff\"," SRV
                 "\"mac\":\"9248c2f0c400fe45a792bff50468dba5bce824d1b13830950f7a065aa49dbbbd\"}", bob);
  assert_vector ("{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"ts\":1700000000000,"
                 "\"nonce\":\"0011223344556677\",\"srv\":\"[2001:db8::7]:8888\","
                 "\"mac\":\"4a5ccdf059107751195b0c40224f94912afd080327d179a643f164d900ae848c\"}", alice);
  /* Secure connections: the fingerprint is the eleventh part, after the
   * candidates' tenth (empty without them) */
  assert_vector ("{\"v\":1,\"type\":\"isync\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\","
                 "\"fp\":\"" FP "\",\"ts\":1700000000123,\"nonce\":\"8899aabbccddeeff\"," SRV
                 "\"mac\":\"dfdd3a4601c14bfa677b3c4b44d743f1d993036aeafe1d095b8957ad79f089eb\"}", bob);
  assert_vector ("{\"v\":1,\"type\":\"isync\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\","
                 "\"cand\":\"192.168.1.30:51000\",\"fp\":\"" FP "\",\"ts\":1700000000123,"
                 "\"nonce\":\"8899aabbccddeeff\"," SRV
                 "\"mac\":\"8b64cabc137c988586f71dedf848b4b636fb9dc5b08fc6b65f5b1ee00e69429d\"}", bob);
  assert_vector ("{\"v\":1,\"type\":\"rsync\",\"tid\":3141592653,\"id\":\"alice\",\"target\":\"bob\","
                 "\"fp\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
                 "\"ts\":1700000000456,\"nonce\":\"0011223344556688\"," SRV
                 "\"mac\":\"3ff661b036c4c84e3e3a2ddbf707e3b6e4f35a37907c76f0825d4d26e538ea3e\"}", alice);
  decode_ok (&msg, "{\"v\":1,\"type\":\"relay\",\"tid\":42,\"id\":\"bob\",\"target\":\"alice\","
                   "\"ts\":1700000005123,\"nonce\":\"8899aabbccddee00\"," SRV
                   "\"mac\":\"d47a4e8347144f43d0d2d0664dcd69aa00f742a27dc8af66eedb74ecdf028d82\"}");
  g_assert_true (rndz_message_verify (&msg, bob));
  /* A relay is not an isync: the type is part of the input */
  msg.type = RNDZ_MESSAGE_ISYNC;
  g_assert_false (rndz_message_verify (&msg, bob));

  /* The MAC of a ping without candidates does not cover one with them */
  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\","
                   "\"cand\":\"192.168.1.20:4000 10.8.0.3:4000\",\"ts\":1700000000000,"
                   "\"nonce\":\"0011223344556677\"," SRV
                   "\"mac\":\"08b3c9e9bc3de733eaa614c643498b24df00a0f54418c9bc54f9bfccf5c5d3d9\"}");
  g_assert_false (rndz_message_verify (&msg, alice));

  /* The server is part of the input: the same ping for another server,
   * or for none (the version 1 vector of before), does not verify */
  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"ts\":1700000000000,"
                   "\"nonce\":\"0011223344556677\",\"srv\":\"198.51.100.7:8889\","
                   "\"mac\":\"08b3c9e9bc3de733eaa614c643498b24df00a0f54418c9bc54f9bfccf5c5d3d9\"}");
  g_assert_false (rndz_message_verify (&msg, alice));
  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"ts\":1700000000000,"
                   "\"nonce\":\"0011223344556677\","
                   "\"mac\":\"f8fd06c0813ea5c1dc6e46e0b418620d4017fb8162c2d75385ce4292827fa41a\"}");
  g_assert_cmpuint (msg.srv.family, ==, 0);
  g_assert_false (rndz_message_verify (&msg, alice));

  /* The MAC covers the candidates and the server as rndz-glib writes
   * them, not as they were written on the wire */
  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\","
                   "\"cand\":\"[::ffff:192.168.1.20]:4000 [::FFFF:10.8.0.3]:4000\",\"ts\":1700000000000,"
                   "\"nonce\":\"0011223344556677\",\"srv\":\"[::ffff:198.51.100.7]:8888\","
                   "\"mac\":\"8ea0a88dc2a3f57a6ad02dc8092d0b294f706f200350bde6f7aa5703512190f0\"}");
  g_assert_true (rndz_message_verify (&msg, alice));
  decode_ok (&msg, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\",\"ts\":1700000000000,"
                   "\"nonce\":\"0011223344556677\",\"srv\":\"[2001:0DB8:0::7]:8888\","
                   "\"mac\":\"4a5ccdf059107751195b0c40224f94912afd080327d179a643f164d900ae848c\"}");
  g_assert_true (rndz_message_verify (&msg, alice));
}

static void
test_mac_candidates (void)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("correct horse battery staple", 28);
  g_autoptr(GBytes) alice = rndz_derive_key (secret, "alice");
  g_autoptr(GBytes) bob = rndz_derive_key (secret, "bob");
  char buf[DEFAULT_MAX];
  RndzMessage msg, decoded;
  RndzAddr srv = rndz_test_addr ("198.51.100.7:8888");
  gsize len;

  g_test_summary ("Changing the server, or changing, reordering, adding or removing a "
                  "candidate of a signed message breaks its MAC");

  /* Signed, sent, received, verified; then tampered with */
  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 99);
  g_strlcpy (msg.id, "bob", sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  set_cands (&msg, "[2001:db8::30]:51000 [fd00::30]:51000 [fd00::31]:51000");
  rndz_message_sign (&msg, &srv, bob, 1700000000000);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_true (rndz_message_decode (&decoded, buf, len, DEFAULT_MAX, NULL));
  g_assert_true (rndz_message_verify (&decoded, bob));
  g_assert_false (rndz_message_verify (&decoded, alice));

  msg = decoded;
  msg.cands[1].port++;
  g_assert_false (rndz_message_verify (&msg, bob));
  msg = decoded;
  msg.cands[2].bytes[15] ^= 1;
  g_assert_false (rndz_message_verify (&msg, bob));
  msg = decoded;
  msg.cands[0] = decoded.cands[1];
  msg.cands[1] = decoded.cands[0];
  g_assert_false (rndz_message_verify (&msg, bob));
  msg = decoded;
  msg.n_cands--;
  g_assert_false (rndz_message_verify (&msg, bob));
  msg = decoded;
  msg.cands[msg.n_cands++] = rndz_test_addr ("[fd00::32]:51000");
  g_assert_false (rndz_message_verify (&msg, bob));
  msg = decoded;
  msg.n_cands = 0;
  g_assert_false (rndz_message_verify (&msg, bob));
  msg = decoded;
  msg.srv.port++;
  g_assert_false (rndz_message_verify (&msg, bob));
}

static void
test_max_reply_size_relay (void)
{
  g_autofree char *quotes = repeat ("\"", RNDZ_ID_MAX_LEN);
  const char *targets[] = { "a", "alice", "😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", quotes };
  const gsize expected[] = { 281, 285, 344, 408 };
  char buf[DEFAULT_MAX];
  RndzMessage request, reply;

  g_test_summary ("A relay request padded to rndz_message_max_reply_size() is at "
                  "least as large as the two sessions it makes the server send, or "
                  "an error: 279 bytes plus the escaped ids of both peers (the "
                  "target's may name a cluster node's relay)");

  for (guint i = 0; i < G_N_ELEMENTS (targets); i++)
    {
      gsize max, len;

      rndz_message_init (&request, RNDZ_MESSAGE_RELAY, 1);
      g_strlcpy (request.id, "b", sizeof request.id);
      g_strlcpy (request.target, targets[i], sizeof request.target);
      max = rndz_message_max_reply_size (&request);
      g_assert_cmpuint (max, ==, expected[i]);

      /* The requester's session names the target, with the longest
       * token, port and tid; it carries no auth. The target's names the
       * requester, with auth, and may name the relay (a cluster's). */
      rndz_message_init (&reply, RNDZ_MESSAGE_SESSION, G_MAXUINT32);
      g_strlcpy (reply.id, targets[i], sizeof reply.id);
      g_strlcpy (reply.token, "ffffffffffffffffffffffffffffffff", sizeof reply.token);
      reply.port = 65535;
      len = rndz_message_encode (&reply, buf, sizeof buf);
      g_strlcpy (reply.id, "b", sizeof reply.id);
      reply.auth = TRUE;
      g_assert_true (rndz_addr_parse (&reply.addr, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                                      NULL));
      g_assert_cmpuint (len + rndz_message_encode (&reply, buf, sizeof buf), ==, max);

      for (RndzWireError code = RNDZ_WIRE_ERROR_UNKNOWN; code <= RNDZ_WIRE_ERROR_AUTH_REQUIRED; code++)
        {
          rndz_message_init (&reply, RNDZ_MESSAGE_ERROR, G_MAXUINT32);
          reply.code = code;
          reply.retry_ms = RNDZ_WIRE_RETRY_MAX_MS;
          g_assert_cmpuint (rndz_message_encode (&reply, buf, sizeof buf), <=, max);
        }

      request.pad_to = max;
      len = rndz_message_encode (&request, buf, sizeof buf);
      g_assert_cmpuint (len, ==, max);
    }

  /* The relay port's answers are never larger than a hello */
  rndz_message_init (&request, RNDZ_MESSAGE_HELLO, 0);
  g_strlcpy (request.id, "a", sizeof request.id);
  g_strlcpy (request.token, TOKEN, sizeof request.token);
  g_assert_cmpuint (rndz_message_encode (&request, buf, sizeof buf), ==, 82);
  rndz_message_init (&reply, RNDZ_MESSAGE_WAIT, G_MAXUINT32);
  g_assert_cmpuint (rndz_message_encode (&reply, buf, sizeof buf), ==, 38);
  rndz_message_init (&reply, RNDZ_MESSAGE_READY, G_MAXUINT32);
  g_assert_cmpuint (rndz_message_encode (&reply, buf, sizeof buf), ==, 39);
}

static void
test_max_reply_size_isync_cands (void)
{
  char buf[DEFAULT_MAX];
  RndzMessage request;
  gsize max, len;

  g_test_summary ("An isync must make room for a redirect with four of the longest "
                  "candidates (308 bytes plus the escaped target id) and for the "
                  "fsync it causes (116 bytes plus the escaped requester id, plus "
                  "its own candidates: the fsync carries them)");

  rndz_message_init (&request, RNDZ_MESSAGE_ISYNC, 42);
  g_strlcpy (request.id, "bob", sizeof request.id);
  g_strlcpy (request.target, "alice", sizeof request.target);
  max = rndz_message_max_reply_size (&request);
  g_assert_cmpuint (max, ==, 308 + 5 + 116 + 3);

  /* ,"cand":"…" is 10 bytes and the candidates */
  set_cands (&request, LONGEST_CANDS);
  g_assert_cmpuint (rndz_message_max_reply_size (&request), ==, max + 10 + strlen (LONGEST_CANDS));
  request.pad_to = rndz_message_max_reply_size (&request);
  len = rndz_message_encode (&request, buf, sizeof buf);
  g_assert_cmpuint (len, ==, request.pad_to);
  g_assert_nonnull (strstr (buf, "\"cand\":\"" LONGEST_CANDS "\",\"pad\":\"x"));

  /* The example of doc/protocol.md */
  set_cands (&request, "192.168.1.30:51000");
  request.pad_to = rndz_message_max_reply_size (&request);
  len = rndz_message_encode (&request, buf, sizeof buf);
  g_assert_cmpuint (len, ==, 460);
  g_test_message ("%s", buf);

  /* A ping with candidates is already larger than any pong */
  rndz_message_init (&request, RNDZ_MESSAGE_PING, 7);
  g_strlcpy (request.id, "alice", sizeof request.id);
  set_cands (&request, "192.168.1.20:4000");
  request.pad_to = rndz_message_max_reply_size (&request);
  g_assert_cmpuint (request.pad_to, ==, 95);
  len = rndz_message_encode (&request, buf, sizeof buf);
  g_assert_cmpuint (len, ==, 95);
  g_assert_cmpstr (buf, ==, "{\"v\":1,\"type\":\"ping\",\"tid\":7,\"id\":\"alice\","
                            "\"cand\":\"192.168.1.20:4000\",\"pad\":\"xxxxxxxxxxxxxxxxx\"}");
}

static void
test_encode_longest_cands (void)
{
  g_autofree char *quotes = repeat ("\"", RNDZ_ID_MAX_LEN);
  g_autofree char *backslashes = repeat ("\\", RNDZ_ID_MAX_LEN);
  g_autofree char *plain = repeat ("x", RNDZ_ID_MAX_LEN);
  g_autoptr(GBytes) key = g_bytes_new_static ("0123456789abcdef", 16);
  char buf[DEFAULT_MAX];
  struct {
    RndzMessageType type;
    gboolean escaped;
    gsize expected;
  } cases[] = {
    { RNDZ_MESSAGE_PING, FALSE, 486 },
    { RNDZ_MESSAGE_PING, TRUE, 550 },
    { RNDZ_MESSAGE_FSYNC, TRUE, 445 },
    { RNDZ_MESSAGE_REDIRECT, TRUE, 436 },
    { RNDZ_MESSAGE_RELAY, TRUE, 535 },
    { RNDZ_MESSAGE_SESSION, TRUE, 302 },
    { RNDZ_MESSAGE_ISYNC, FALSE, 753 },
    { RNDZ_MESSAGE_ISYNC, TRUE, 881 },
  };
  RndzAddr srv = rndz_test_addr (LONGEST_ADDR);

  g_test_summary ("With four of the longest IPv6 candidates, signed for the longest "
                  "server address and padded, every message fits 512 bytes but an "
                  "isync, padded for its redirect and its fsync (753 bytes, 881 with "
                  "ids that need escaping), and a signed ping whose id needs escaping "
                  "(550) (doc/protocol.md, Size limits)");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      RndzMessage msg, decoded;
      gsize len;

      rndz_message_init (&msg, cases[i].type, G_MAXUINT32);
      g_strlcpy (msg.id, cases[i].escaped ? quotes : plain, sizeof msg.id);
      g_strlcpy (msg.target, cases[i].escaped ? backslashes : plain, sizeof msg.target);
      msg.addr = rndz_test_addr (LONGEST_ADDR);
      set_cands (&msg, LONGEST_CANDS);
      g_strlcpy (msg.token, "ffffffffffffffffffffffffffffffff", sizeof msg.token);
      msg.port = 65535;
      msg.auth = TRUE;
      msg.pad_to = rndz_message_max_reply_size (&msg);
      /* Peers sign their requests; the server signs nothing */
      if (cases[i].type == RNDZ_MESSAGE_PING || cases[i].type == RNDZ_MESSAGE_ISYNC ||
          cases[i].type == RNDZ_MESSAGE_RELAY)
        rndz_message_sign (&msg, &srv, key, 1700000000000);

      len = rndz_message_encode (&msg, buf, sizeof buf);
      g_test_message ("%s: %" G_GSIZE_FORMAT " bytes", rndz_message_type_to_string (cases[i].type), len);
      g_assert_cmpuint (len, ==, cases[i].expected);
      g_assert_true (rndz_message_decode (&decoded, buf, len, DEFAULT_MAX, NULL));
      g_assert_cmpint (decoded.type, ==, cases[i].type);
      /* What was decoded encodes to the same bytes */
      {
        char again[DEFAULT_MAX];

        decoded.pad_to = msg.pad_to;
        g_assert_cmpuint (rndz_message_encode (&decoded, again, sizeof again), ==, len);
        g_assert_cmpstr (again, ==, buf);
      }
      if (len <= RNDZ_MESSAGE_MIN_MAX_SIZE)
        g_assert_true (rndz_message_decode (&decoded, buf, len, RNDZ_MESSAGE_MIN_MAX_SIZE, NULL));
      else
        assert_decode_fails (buf, len, RNDZ_MESSAGE_MIN_MAX_SIZE, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
    }
}

/* Invalid or missing fields of the new types, each with the field the
 * error names */

typedef struct
{
  const char *name;
  const char *json;
  const char *field;
} FieldErrorCase;

#define SESSION_HEAD "{\"v\":1,\"type\":\"session\",\"tid\":7,\"id\":\"alice\""
#define HELLO_HEAD "{\"v\":1,\"type\":\"hello\",\"tid\":7,\"id\":\"bob\""

static const FieldErrorCase field_error_cases[] = {
  /* cand, on each type that has it */
  { "cand-empty", PING_HEAD ",\"id\":\"alice\",\"cand\":\"\"}", "cand" },
  { "cand-space", PING_HEAD ",\"id\":\"alice\",\"cand\":\" \"}", "cand" },
  { "cand-5", PING_HEAD ",\"id\":\"alice\",\"cand\":\"10.0.0.1:1 10.0.0.2:2 10.0.0.3:3 10.0.0.4:4 10.0.0.5:5\"}", "cand" },
  { "cand-5-ipv6", "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"b\",\"target\":\"a\","
    "\"cand\":\"[fd00::1]:1 [fd00::2]:2 [fd00::3]:3 [fd00::4]:4 [fd00::5]:5\"}", "cand" },
  { "cand-double-space", PING_HEAD ",\"id\":\"alice\",\"cand\":\"10.0.0.1:1  10.0.0.2:2\"}", "cand" },
  { "cand-leading-space", PING_HEAD ",\"id\":\"alice\",\"cand\":\" 10.0.0.1:1\"}", "cand" },
  { "cand-trailing-space", PING_HEAD ",\"id\":\"alice\",\"cand\":\"10.0.0.1:1 \"}", "cand" },
  { "cand-tab", PING_HEAD ",\"id\":\"alice\",\"cand\":\"10.0.0.1:1\\t10.0.0.2:2\"}", "cand" },
  { "cand-comma", PING_HEAD ",\"id\":\"alice\",\"cand\":\"10.0.0.1:1,10.0.0.2:2\"}", "cand" },
  { "cand-hostname", PING_HEAD ",\"id\":\"alice\",\"cand\":\"localhost:4000\"}", "cand" },
  { "cand-hostname-second", "{\"v\":1,\"type\":\"isync\",\"tid\":7,\"id\":\"b\",\"target\":\"a\","
    "\"cand\":\"192.168.1.20:4000 example.com:4000\"}", "cand" },
  { "cand-port-0", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"id\":\"b\",\"addr\":\"1.2.3.4:5\","
    "\"cand\":\"192.168.1.20:0\"}", "cand" },
  { "cand-port-65536", "{\"v\":1,\"type\":\"redirect\",\"tid\":7,\"id\":\"a\",\"addr\":\"1.2.3.4:5\","
    "\"cand\":\"[fd00::1]:65536\"}", "cand" },
  { "cand-no-port", PING_HEAD ",\"id\":\"alice\",\"cand\":\"192.168.1.20\"}", "cand" },
  { "cand-no-brackets", PING_HEAD ",\"id\":\"alice\",\"cand\":\"fd00::20:4000\"}", "cand" },
  { "cand-zone", PING_HEAD ",\"id\":\"alice\",\"cand\":\"[fe80::1%eth0]:4000\"}", "cand" },
  { "cand-number", PING_HEAD ",\"id\":\"alice\",\"cand\":4000}", "cand" },
  { "cand-null", PING_HEAD ",\"id\":\"alice\",\"cand\":null}", "cand" },
  { "cand-array", PING_HEAD ",\"id\":\"alice\",\"cand\":[\"10.0.0.1:1\"]}", "cand" },
  { "cand-bool", PING_HEAD ",\"id\":\"alice\",\"cand\":true}", "cand" },

  /* retry */
  { "retry-0", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":\"rate-limited\",\"retry\":0}", "retry" },
  { "retry-60001", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":\"rate-limited\",\"retry\":60001}", "retry" },
  { "retry-negative", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":\"rate-limited\",\"retry\":-5}", "retry" },
  { "retry-float", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":\"rate-limited\",\"retry\":1.5}", "retry" },
  { "retry-string", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":\"rate-limited\",\"retry\":\"5\"}", "retry" },
  { "retry-null", "{\"v\":1,\"type\":\"error\",\"tid\":7,\"code\":\"failed\",\"retry\":null}", "retry" },

  /* token */
  { "token-31", HELLO_HEAD ",\"token\":\"5f1c0a9e3b7d42e8a6c4f0b2d9e8a7c\"}", "token" },
  { "token-33", HELLO_HEAD ",\"token\":\"5f1c0a9e3b7d42e8a6c4f0b2d9e8a7c10\"}", "token" },
  { "token-uppercase", HELLO_HEAD ",\"token\":\"5F1C0A9E3B7D42E8A6C4F0B2D9E8A7C1\"}", "token" },
  { "token-one-uppercase", SESSION_HEAD ",\"token\":\"5f1c0a9e3b7d42e8a6c4f0b2d9e8a7cA\",\"port\":9}", "token" },
  { "token-non-hex", HELLO_HEAD ",\"token\":\"5f1c0a9e3b7d42e8a6c4f0b2d9e8a7cg\"}", "token" },
  { "token-space", HELLO_HEAD ",\"token\":\"5f1c0a9e3b7d42e8 6c4f0b2d9e8a7c1\"}", "token" },
  { "token-empty", HELLO_HEAD ",\"token\":\"\"}", "token" },
  { "token-number", HELLO_HEAD ",\"token\":12345678901234567890123456789012}", "token" },
  { "token-null", SESSION_HEAD ",\"token\":null,\"port\":9}", "token" },
  { "token-missing", HELLO_HEAD "}", "token" },
  { "session-no-token", SESSION_HEAD ",\"port\":9}", "token" },

  /* port */
  { "port-0", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":0}", "port" },
  { "port-65536", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":65536}", "port" },
  { "port-string", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":\"80\"}", "port" },
  { "port-float", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":80.0}", "port" },
  { "port-exponent", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":8e1}", "port" },
  { "port-negative", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":-80}", "port" },
  { "port-huge", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":18446744073709551697}", "port" },
  { "port-null", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":null}", "port" },
  { "port-bool", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":true}", "port" },
  { "session-no-port", SESSION_HEAD ",\"token\":\"" TOKEN "\"}", "port" },

  /* auth, on the two types that have it */
  { "session-auth-string", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":9,\"auth\":\"true\"}", "auth" },
  { "session-auth-number", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":9,\"auth\":1}", "auth" },
  { "session-auth-null", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":9,\"auth\":null}", "auth" },
  { "fsync-auth-number", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"id\":\"b\",\"addr\":\"1.2.3.4:5\",\"auth\":1}", "auth" },

  /* Every field each new type needs, missing or invalid in turn */
  { "check-no-id", "{\"v\":1,\"type\":\"check\",\"tid\":7,\"target\":\"a\"}", "id" },
  { "check-no-target", "{\"v\":1,\"type\":\"check\",\"tid\":7,\"id\":\"b\"}", "target" },
  { "check-no-tid", "{\"v\":1,\"type\":\"check\",\"id\":\"b\",\"target\":\"a\"}", "tid" },
  { "confirm-no-id", "{\"v\":1,\"type\":\"confirm\",\"tid\":7,\"target\":\"b\"}", "id" },
  { "confirm-no-target", "{\"v\":1,\"type\":\"confirm\",\"tid\":7,\"id\":\"a\"}", "target" },
  { "use-no-id", "{\"v\":1,\"type\":\"use\",\"tid\":7,\"target\":\"a\"}", "id" },
  { "use-empty-target", "{\"v\":1,\"type\":\"use\",\"tid\":7,\"id\":\"b\",\"target\":\"\"}", "target" },
  { "relay-no-id", "{\"v\":1,\"type\":\"relay\",\"tid\":7,\"target\":\"a\"}", "id" },
  { "relay-no-target", "{\"v\":1,\"type\":\"relay\",\"tid\":7,\"id\":\"b\"}", "target" },
  { "relay-target-control", "{\"v\":1,\"type\":\"relay\",\"tid\":7,\"id\":\"b\",\"target\":\"a\\n\"}", "target" },
  { "session-no-id", "{\"v\":1,\"type\":\"session\",\"tid\":7,\"token\":\"" TOKEN "\",\"port\":9}", "id" },
  { "hello-no-id", "{\"v\":1,\"type\":\"hello\",\"tid\":7,\"token\":\"" TOKEN "\"}", "id" },
  { "hello-no-tid", "{\"v\":1,\"type\":\"hello\",\"id\":\"b\",\"token\":\"" TOKEN "\"}", "tid" },
  { "wait-no-tid", "{\"v\":1,\"type\":\"wait\"}", "tid" },
  { "ready-no-tid", "{\"v\":1,\"type\":\"ready\",\"id\":\"a\"}", "tid" },
  { "ready-tid-string", "{\"v\":1,\"type\":\"ready\",\"tid\":\"1\"}", "tid" },

  /* srv, with a MAC: a valid address or nothing */
#define SIGNED_PING PING_HEAD ",\"id\":\"a\",\"ts\":1,\"nonce\":\"0011223344556677\",\"mac\":\"" TOKEN TOKEN "\""
  { "srv-host-name", SIGNED_PING ",\"srv\":\"rndz.example:8888\"}", "srv" },
  { "srv-no-port", SIGNED_PING ",\"srv\":\"198.51.100.7\"}", "srv" },
  { "srv-port-0", SIGNED_PING ",\"srv\":\"198.51.100.7:0\"}", "srv" },
  { "srv-v6-no-brackets", SIGNED_PING ",\"srv\":\"2001:db8::7:8888\"}", "srv" },
  { "srv-empty", SIGNED_PING ",\"srv\":\"\"}", "srv" },
  { "srv-number", SIGNED_PING ",\"srv\":8888}", "srv" },
  { "srv-null", SIGNED_PING ",\"srv\":null}", "srv" },
  { "srv-array", SIGNED_PING ",\"srv\":[\"198.51.100.7:8888\"]}", "srv" },

  /* The order of the checks: id, target, addr, code, cand, token, port,
   * auth, then ts, nonce, srv, mac */
  { "order-id-before-token", "{\"v\":1,\"type\":\"session\",\"tid\":7,\"id\":\"\",\"token\":\"x\",\"port\":0}", "id" },
  { "order-token-before-port", SESSION_HEAD ",\"token\":\"x\",\"port\":0,\"auth\":7}", "token" },
  { "order-port-before-auth", SESSION_HEAD ",\"token\":\"" TOKEN "\",\"port\":0,\"auth\":7}", "port" },
  { "order-addr-before-cand", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"id\":\"b\",\"addr\":\"x\",\"cand\":\"y\"}", "addr" },
  { "order-cand-before-auth", "{\"v\":1,\"type\":\"fsync\",\"tid\":7,\"id\":\"b\",\"addr\":\"1.2.3.4:5\","
    "\"cand\":\"y\",\"auth\":7}", "cand" },
  { "order-cand-before-mac", PING_HEAD ",\"id\":\"alice\",\"cand\":\"y\",\"mac\":\"z\"}", "cand" },
  { "order-target-before-mac", "{\"v\":1,\"type\":\"relay\",\"tid\":7,\"id\":\"b\",\"mac\":\"z\"}", "target" },
  { "relay-bad-nonce", "{\"v\":1,\"type\":\"relay\",\"tid\":7,\"id\":\"b\",\"target\":\"a\",\"ts\":1,"
    "\"nonce\":\"0011\",\"mac\":\"" TOKEN TOKEN "\"}", "nonce" },
  { "order-nonce-before-srv", PING_HEAD ",\"id\":\"a\",\"ts\":1,\"nonce\":\"0011\",\"srv\":\"x\","
    "\"mac\":\"" TOKEN TOKEN "\"}", "nonce" },
  { "order-srv-before-mac", PING_HEAD ",\"id\":\"a\",\"ts\":1,\"nonce\":\"0011223344556677\","
    "\"srv\":\"x\",\"mac\":\"z\"}", "srv" },
};

static void
test_field_error (gconstpointer data)
{
  const FieldErrorCase *c = data;
  g_autofree char *summary = g_strdup_printf ("“%s” fails with INVALID_FIELD naming “%s”",
                                              c->name, c->field);

  g_test_summary (summary);
  assert_invalid_field (c->json, c->field);
}

/* Random input */

static gboolean
decode_checked (const char *data,
                gsize       len,
                gsize       max_size)
{
  g_autoptr(GError) error = NULL;
  RndzMessage msg, again;
  char buf[DEFAULT_MAX];
  gsize enc_len;

  if (!rndz_message_decode (&msg, data, len, max_size, &error))
    {
      g_assert_nonnull (error);
      g_assert_cmpuint (error->domain, ==, RNDZ_PROTOCOL_ERROR);
      g_assert_cmpint (error->code, >=, RNDZ_PROTOCOL_ERROR_TOO_LARGE);
      g_assert_cmpint (error->code, <=, RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION);
      g_assert_cmpint (msg.type, ==, RNDZ_MESSAGE_INVALID);
      return FALSE;
    }

  /* Whatever was accepted is a valid message that survives a round trip */
  g_assert_no_error (error);
  g_assert_cmpint (msg.type, >, RNDZ_MESSAGE_INVALID);
  g_assert_cmpint (msg.type, <=, RNDZ_MESSAGE_LAST);
  g_assert_true (msg.id[0] == '\0' || rndz_id_is_valid (msg.id, -1));
  g_assert_true (msg.target[0] == '\0' || rndz_id_is_valid (msg.target, -1));
  g_assert_true (msg.addr.family == 0 || msg.addr.port != 0);
  g_assert_cmpuint (msg.n_cands, <=, RNDZ_MAX_CANDIDATES);
  for (guint i = 0; i < msg.n_cands; i++)
    g_assert_cmpuint (msg.cands[i].port, !=, 0);
  g_assert_true (msg.token[0] == '\0' || strlen (msg.token) == RNDZ_TOKEN_LEN);

  enc_len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpuint (enc_len, >, 0);
  g_assert_true (rndz_message_decode (&again, buf, enc_len, DEFAULT_MAX, &error));
  g_assert_no_error (error);
  assert_messages_equal (&again, &msg);
  return TRUE;
}

static const char interesting[] = "{}[]\":,\\/*'0123456789-+.eEtfnu \n\x00\x7f\x80\xbf\xc3\xed\xff";

static guint8
random_byte (void)
{
  if (g_test_rand_bit ())
    return g_test_rand_int_range (0, 256);
  return interesting[g_test_rand_int_range (0, sizeof interesting - 1)];
}

/* Applies one random mutation to @buf, of @len bytes and room for @size */
static gsize
mutate (guint8 *buf,
        gsize   len,
        gsize   size)
{
  gsize pos = len > 0 ? (gsize) g_test_rand_int_range (0, len) : 0;

  switch (g_test_rand_int_range (0, 7))
    {
    case 0:   /* flip a bit */
      if (len > 0)
        buf[pos] ^= 1 << g_test_rand_int_range (0, 8);
      break;
    case 1:   /* overwrite a byte */
      if (len > 0)
        buf[pos] = random_byte ();
      break;
    case 2:   /* insert a byte */
      if (len < size)
        {
          memmove (buf + pos + 1, buf + pos, len - pos);
          buf[pos] = random_byte ();
          len++;
        }
      break;
    case 3:   /* delete a byte */
      if (len > 0)
        {
          memmove (buf + pos, buf + pos + 1, len - pos - 1);
          len--;
        }
      break;
    case 4:   /* truncate */
      len = pos;
      break;
    case 5:   /* duplicate a slice somewhere else */
      if (len > 0)
        {
          gsize from = g_test_rand_int_range (0, len);
          gsize n = MIN ((gsize) g_test_rand_int_range (1, 33), len - from);
          gsize to = g_test_rand_int_range (0, len + 1);
          guint8 slice[32];

          n = MIN (n, size - len);
          memcpy (slice, buf + from, n);
          memmove (buf + to + n, buf + to, len - to);
          memcpy (buf + to, slice, n);
          len += n;
        }
      break;
    default:  /* swap two bytes */
      if (len > 1)
        {
          gsize other = g_test_rand_int_range (0, len);
          guint8 tmp = buf[pos];

          buf[pos] = buf[other];
          buf[other] = tmp;
        }
      break;
    }

  return len;
}

static void
test_fuzz_mutations (void)
{
  g_autoptr(GPtrArray) corpus = g_ptr_array_new_with_free_func (g_free);
  guint iterations = g_test_thorough () ? 200000 : 20000;
  guint accepted = 0, refused = 0;
  guint8 buf[DEFAULT_MAX + 64];

  g_test_summary ("Random mutations of valid messages never crash the "
                  "decoder: each either decodes to a valid message or fails "
                  "in the RNDZ_PROTOCOL_ERROR domain");

  for (guint i = 0; i < G_N_ELEMENTS (message_cases); i++)
    g_ptr_array_add (corpus, g_strdup (message_cases[i].json));
  g_ptr_array_add (corpus, g_strdup (PING_HEAD ",\"id\":\"a\",\"x\":[[[[[[[1]]]]]]],\"y\":{\"z\":\"[\\\"\"}}"));
  g_ptr_array_add (corpus, g_strdup ("{\"v\":2,\"type\":\"fsync\",\"tid\":1,\"id\":\"b\\u00e9\","
                                     "\"addr\":\"[::ffff:10.0.0.1]:9\",\"extra\":[1.5,-2,true,null]}"));
  g_ptr_array_add (corpus, g_strdup ("{\"v\":1,\"type\":\"redirect\",\"tid\":5,\"id\":\"a\","
                                     "\"addr\":\"[::ffff:10.0.0.1]:9\",\"cand\":\"[::ffff:10.0.0.2]:9 "
                                     "[2001:DB8:0:0::1]:9 10.0.0.3:9\",\"auth\":true}"));
  g_ptr_array_add (corpus, g_strdup ("{\"v\":1,\"type\":\"session\",\"tid\":5,\"id\":\"a\","
                                     "\"token\":\"" TOKEN "\",\"port\":65535,\"auth\":false,"
                                     "\"cand\":\"x\"}"));

  for (guint i = 0; i < iterations; i++)
    {
      const char *seed = g_ptr_array_index (corpus, g_test_rand_int_range (0, corpus->len));
      gsize len = strlen (seed);
      guint rounds = g_test_rand_int_range (1, 5);
      gsize max_size = g_test_rand_bit () ? DEFAULT_MAX : (gsize) g_test_rand_int_range (1, 200);

      memcpy (buf, seed, len);
      for (guint r = 0; r < rounds; r++)
        len = mutate (buf, len, sizeof buf);

      /* An exact-size copy, so valgrind sees any read past the end */
      {
        g_autofree char *copy = g_memdup2 (buf, len);

        if (decode_checked (copy, len, max_size))
          accepted++;
        else
          refused++;
      }
    }

  g_test_message ("%u mutations: %u accepted, %u refused", iterations, accepted, refused);
  g_assert_cmpuint (accepted, >, 0);
  g_assert_cmpuint (refused, >, 0);
}

/* Messages assembled from valid and invalid field values, decoded against
 * a model of what doc/protocol.md says: the checks run in the order v,
 * type, tid, then the fields of the type. */

typedef struct
{
  const char *json;    /* NULL: leave the field out */
  gboolean valid;
} FieldValue;

static const FieldValue v_values[] = {
  { NULL, FALSE }, { "1", TRUE }, { "2", TRUE }, { "0", FALSE }, { "-1", FALSE },
  { "\"1\"", FALSE }, { "1.0", FALSE }, { "null", FALSE },
};
static const FieldValue tid_values[] = {
  { NULL, FALSE }, { "0", TRUE }, { "7", TRUE }, { "4294967295", TRUE }, { "4294967296", FALSE },
  { "-7", FALSE }, { "7.5", FALSE }, { "\"7\"", FALSE }, { "[]", FALSE },
};
static const FieldValue id_values[] = {
  { NULL, FALSE }, { "\"alice\"", TRUE }, { "\"zoë 😀\"", TRUE }, { "\"a\\\"b\"", TRUE },
  { "\"\"", FALSE }, { "\"a\\nb\"", FALSE }, { "7", FALSE }, { "null", FALSE },
  { "\"0123456789012345678901234567890123456789012345678901234567890123\"", TRUE },
  { "\"01234567890123456789012345678901234567890123456789012345678901234\"", FALSE },
};
static const FieldValue addr_values[] = {
  { NULL, FALSE }, { "\"198.51.100.7:4000\"", TRUE }, { "\"[2001:db8::1]:1\"", TRUE },
  { "\"[::ffff:1.2.3.4]:5\"", TRUE }, { "\"198.51.100.7\"", FALSE }, { "\"1.2.3.4:0\"", FALSE },
  { "\"host:80\"", FALSE }, { "80", FALSE },
};
static const FieldValue code_values[] = {
  { NULL, FALSE }, { "\"peer-not-found\"", TRUE }, { "\"server-full\"", TRUE },
  { "\"whatever\"", TRUE }, { "\"\"", TRUE }, { "3", FALSE }, { "null", FALSE },
};

static const FieldValue cand_values[] = {
  { NULL, TRUE }, { "\"192.168.1.20:4000\"", TRUE }, { "\"[fd00::20]:4000 10.0.0.1:1\"", TRUE },
  { "\"" LONGEST_CANDS "\"", TRUE }, { "\"[::ffff:1.2.3.4]:5 1.2.3.4:5\"", TRUE },
  { "\"\"", FALSE }, { "\"1.2.3.4:5 \"", FALSE }, { "\"1.2.3.4:5  1.2.3.4:6\"", FALSE },
  { "\"1.2.3.4:1 1.2.3.4:2 1.2.3.4:3 1.2.3.4:4 1.2.3.4:5\"", FALSE }, { "\"host:80\"", FALSE },
  { "\"1.2.3.4:0\"", FALSE }, { "7", FALSE }, { "null", FALSE },
};
static const FieldValue token_values[] = {
  { NULL, FALSE }, { "\"" TOKEN "\"", TRUE }, { "\"00000000000000000000000000000000\"", TRUE },
  { "\"5F1C0A9E3B7D42E8A6C4F0B2D9E8A7C1\"", FALSE }, { "\"5f1c0a9e3b7d42e8a6c4f0b2d9e8a7c\"", FALSE },
  { "\"\"", FALSE }, { "1", FALSE },
};
static const FieldValue port_values[] = {
  { NULL, FALSE }, { "1", TRUE }, { "8889", TRUE }, { "65535", TRUE }, { "0", FALSE },
  { "65536", FALSE }, { "\"80\"", FALSE }, { "80.0", FALSE }, { "-1", FALSE },
};
static const FieldValue auth_values[] = {
  { NULL, TRUE }, { "true", TRUE }, { "false", TRUE }, { "\"true\"", FALSE }, { "1", FALSE },
  { "null", FALSE },
};

/* Every type, then a missing type, an unknown one, and one that is not a
 * string */
static const struct {
  const char *json;
  RndzMessageType type;
} type_values[] = {
  { "\"ping\"", RNDZ_MESSAGE_PING }, { "\"pong\"", RNDZ_MESSAGE_PONG },
  { "\"isync\"", RNDZ_MESSAGE_ISYNC }, { "\"fsync\"", RNDZ_MESSAGE_FSYNC },
  { "\"rsync\"", RNDZ_MESSAGE_RSYNC }, { "\"redirect\"", RNDZ_MESSAGE_REDIRECT },
  { "\"bye\"", RNDZ_MESSAGE_BYE }, { "\"error\"", RNDZ_MESSAGE_ERROR },
  { "\"check\"", RNDZ_MESSAGE_CHECK }, { "\"confirm\"", RNDZ_MESSAGE_CONFIRM },
  { "\"use\"", RNDZ_MESSAGE_USE }, { "\"relay\"", RNDZ_MESSAGE_RELAY },
  { "\"session\"", RNDZ_MESSAGE_SESSION }, { "\"hello\"", RNDZ_MESSAGE_HELLO },
  { "\"wait\"", RNDZ_MESSAGE_WAIT }, { "\"ready\"", RNDZ_MESSAGE_READY },
  { NULL, RNDZ_MESSAGE_INVALID }, { "\"greet\"", RNDZ_MESSAGE_INVALID },
  { "7", RNDZ_MESSAGE_INVALID },
};

/* The fields of each type, as the table of doc/protocol.md lists them */
enum
{
  HAS_ID = 1 << 0,
  HAS_TARGET = 1 << 1,
  HAS_ADDR = 1 << 2,
  HAS_CODE = 1 << 3,
  HAS_CAND = 1 << 4,
  HAS_TOKEN = 1 << 5,
  HAS_PORT = 1 << 6,
  HAS_AUTH = 1 << 7,
  HAS_ADDR_OPTIONAL = 1 << 8,   /* addr, checked when present */
};

static guint
model_fields (RndzMessageType type)
{
  switch (type)
    {
    case RNDZ_MESSAGE_PING:
      return HAS_ID | HAS_CAND;
    case RNDZ_MESSAGE_PONG:
      return HAS_ADDR;
    case RNDZ_MESSAGE_ISYNC:
      return HAS_ID | HAS_TARGET | HAS_CAND;
    case RNDZ_MESSAGE_FSYNC:
      return HAS_ID | HAS_ADDR | HAS_CAND | HAS_AUTH;
    case RNDZ_MESSAGE_REDIRECT:
      return HAS_ID | HAS_ADDR | HAS_CAND;
    case RNDZ_MESSAGE_BYE:
      return HAS_ID;
    case RNDZ_MESSAGE_ERROR:
      return HAS_CODE;
    case RNDZ_MESSAGE_RSYNC:
    case RNDZ_MESSAGE_CHECK:
    case RNDZ_MESSAGE_CONFIRM:
    case RNDZ_MESSAGE_USE:
    case RNDZ_MESSAGE_RELAY:
      return HAS_ID | HAS_TARGET;
    case RNDZ_MESSAGE_SESSION:
      return HAS_ID | HAS_ADDR_OPTIONAL | HAS_TOKEN | HAS_PORT | HAS_AUTH;
    case RNDZ_MESSAGE_HELLO:
      return HAS_ID | HAS_TOKEN;
    case RNDZ_MESSAGE_WAIT:
    case RNDZ_MESSAGE_READY:
    case RNDZ_MESSAGE_INVALID:
    default:
      return 0;
    }
}

/* Any value, or half of the time a valid one, so that messages with
 * many fields still decode now and then */
static const FieldValue *
pick (const FieldValue *values,
      guint             n)
{
  const FieldValue *value;
  gboolean want_valid = g_test_rand_bit ();

  do
    value = &values[g_test_rand_int_range (0, n)];
  while (want_valid && !value->valid);
  return value;
}

#define N_FUZZ_MEMBERS 12

static void
test_fuzz_fields (void)
{
  guint iterations = g_test_thorough () ? 200000 : 20000;
  guint counts[RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION + 2] = { 0 };
  guint decoded_types[RNDZ_MESSAGE_LAST + 1] = { 0 };

  g_test_summary ("Messages built from random valid and invalid fields fail "
                  "with the error, and name the field, that the protocol "
                  "description predicts");

  for (guint i = 0; i < iterations; i++)
    {
      const FieldValue *fields[] = {
        pick (v_values, G_N_ELEMENTS (v_values)),
        NULL,
        pick (tid_values, G_N_ELEMENTS (tid_values)),
        pick (id_values, G_N_ELEMENTS (id_values)),
        pick (id_values, G_N_ELEMENTS (id_values)),
        pick (addr_values, G_N_ELEMENTS (addr_values)),
        pick (code_values, G_N_ELEMENTS (code_values)),
        pick (cand_values, G_N_ELEMENTS (cand_values)),
        pick (token_values, G_N_ELEMENTS (token_values)),
        pick (port_values, G_N_ELEMENTS (port_values)),
        pick (auth_values, G_N_ELEMENTS (auth_values)),
      };
      /* The order in which the decoder checks them */
      const char *names[N_FUZZ_MEMBERS] = {
        "v", "type", "tid", "id", "target", "addr", "code", "cand", "token", "port", "auth", "extra"
      };
      const guint needed[N_FUZZ_MEMBERS] = {
        0, 0, 0, HAS_ID, HAS_TARGET, HAS_ADDR, HAS_CODE, HAS_CAND, HAS_TOKEN, HAS_PORT, HAS_AUTH, 0
      };
      guint type_index = g_test_rand_int_range (0, G_N_ELEMENTS (type_values));
      RndzMessageType type = type_values[type_index].type;
      guint members = model_fields (type);
      const char *values[N_FUZZ_MEMBERS];
      guint order[N_FUZZ_MEMBERS];
      g_autoptr(GString) json = g_string_new ("{");
      g_autoptr(GError) error = NULL;
      const char *expected_field = NULL;
      int expected = -1;   /* -1: success */
      RndzMessage msg;
      gboolean ok;

      for (guint k = 0; k < N_FUZZ_MEMBERS; k++)
        {
          order[k] = k;
          values[k] = k < G_N_ELEMENTS (fields) && fields[k] != NULL ? fields[k]->json : NULL;
        }
      values[1] = type_values[type_index].json;
      values[N_FUZZ_MEMBERS - 1] = g_test_rand_bit () ? "{\"nested\":[1,2,{\"x\":null}]}" : NULL;

      /* Members in random order */
      for (guint k = N_FUZZ_MEMBERS - 1; k > 0; k--)
        {
          guint j = g_test_rand_int_range (0, k + 1);
          guint tmp = order[k];

          order[k] = order[j];
          order[j] = tmp;
        }
      for (guint k = 0; k < N_FUZZ_MEMBERS; k++)
        if (values[order[k]] != NULL)
          g_string_append_printf (json, "%s\"%s\":%s", json->len > 1 ? "," : "",
                                  names[order[k]], values[order[k]]);
      g_string_append_c (json, '}');

      /* The model: v, type, tid, then the fields of the type in order */
      if (!fields[0]->valid)
        {
          if (fields[0]->json != NULL && g_str_equal (fields[0]->json, "0"))
            expected = RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION;
          else
            expected = RNDZ_PROTOCOL_ERROR_INVALID_FIELD, expected_field = "v";
        }
      else if (type == RNDZ_MESSAGE_INVALID)
        {
          if (values[1] != NULL && g_str_equal (values[1], "\"greet\""))
            expected = RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE;
          else
            expected = RNDZ_PROTOCOL_ERROR_INVALID_FIELD, expected_field = "type";
        }
      else if (!fields[2]->valid)
        expected = RNDZ_PROTOCOL_ERROR_INVALID_FIELD, expected_field = "tid";
      else
        for (guint k = 3; k < G_N_ELEMENTS (fields); k++)
          if (((members & needed[k]) ||
               (k == 5 && (members & HAS_ADDR_OPTIONAL) && fields[k]->json != NULL)) &&
              !fields[k]->valid)
            {
              expected = RNDZ_PROTOCOL_ERROR_INVALID_FIELD;
              expected_field = names[k];
              break;
            }

      ok = rndz_message_decode (&msg, json->str, json->len, DEFAULT_MAX, &error);
      if (expected < 0)
        {
          if (!ok)
            g_test_message ("%s", json->str);
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpint (msg.type, ==, type);
          g_assert_true ((members & HAS_CAND) || msg.n_cands == 0);
          g_assert_true ((members & HAS_TOKEN) || msg.token[0] == '\0');
          g_assert_true ((members & HAS_PORT) || msg.port == 0);
          g_assert_true ((members & HAS_AUTH) || !msg.auth);
          counts[G_N_ELEMENTS (counts) - 1]++;
          decoded_types[type]++;
        }
      else
        {
          if (ok)
            g_test_message ("%s", json->str);
          g_assert_error (error, RNDZ_PROTOCOL_ERROR, expected);
          g_assert_false (ok);
          if (expected_field != NULL)
            {
              g_autofree char *quoted = g_strdup_printf ("“%s”", expected_field);

              if (strstr (error->message, quoted) == NULL)
                g_error ("%s: expected an error on %s, got: %s", json->str, quoted, error->message);
            }
          counts[expected]++;
        }
    }

  g_test_message ("%u messages: %u decoded, %u invalid field, %u unknown type, "
                  "%u unsupported version", iterations, counts[G_N_ELEMENTS (counts) - 1],
                  counts[RNDZ_PROTOCOL_ERROR_INVALID_FIELD], counts[RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE],
                  counts[RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION]);
  for (RndzMessageType type = RNDZ_MESSAGE_PING; type <= RNDZ_MESSAGE_LAST; type++)
    g_test_message ("%s: %u decoded", rndz_message_type_to_string (type), decoded_types[type]);
  g_assert_cmpuint (counts[G_N_ELEMENTS (counts) - 1], >, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (message_cases); i++)
    {
      g_autofree char *encode = g_strdup_printf ("/message/encode/%s", message_cases[i].name);
      g_autofree char *roundtrip = g_strdup_printf ("/message/roundtrip/%s", message_cases[i].name);

      g_test_add_data_func (encode, &message_cases[i], test_encode);
      g_test_add_data_func (roundtrip, &message_cases[i], test_roundtrip);
    }
  g_test_add_func ("/message/encode/frame", test_encode_frame);
  g_test_add_func ("/message/fingerprint", test_fingerprint);
  g_test_add_func ("/message/seen", test_seen);
  g_test_add_func ("/message/encode/buffer-size", test_encode_buffer_size);
  g_test_add_func ("/message/encode/longest", test_encode_longest);
  g_test_add_func ("/message/encode/control-chars", test_encode_control_chars);
  g_test_add_func ("/message/encode/invalid-type", test_encode_invalid_type);
  g_test_add_func ("/message/encode/pad", test_encode_pad);
  g_test_add_func ("/message/max-reply-size", test_max_reply_size);
  g_test_add_func ("/message/type-names", test_type_names);
  g_test_add_func ("/message/wire-error", test_wire_error);

  g_test_add_func ("/message/decode/error-code-unknown", test_error_code_unknown);
  g_test_add_func ("/message/decode/error-retry", test_error_retry);
  g_test_add_func ("/message/decode/extra-fields", test_extra_fields);
  g_test_add_func ("/message/decode/version-later", test_version_later);
  g_test_add_func ("/message/decode/json-escapes", test_json_escapes);
  g_test_add_func ("/message/decode/resets", test_decode_resets);
  g_test_add_func ("/message/decode/nesting-depth-8", test_nesting_depth_8);
  g_test_add_func ("/message/decode/nesting-in-long-string", test_nesting_in_long_string);
  g_test_add_func ("/message/decode/size-limit", test_size_limit);

  g_test_add_func ("/message/id/length", test_id_length);
  g_test_add_func ("/message/id/control", test_id_control);
  g_test_add_func ("/message/id/utf8", test_id_utf8);
  g_test_add_func ("/message/id/multibyte-limit", test_id_multibyte_limit);
  g_test_add_func ("/message/id/decode", test_id_decode);

  g_test_add_func ("/message/frame/incomplete", test_frame_incomplete);
  g_test_add_func ("/message/frame/big-endian", test_frame_big_endian);
  g_test_add_func ("/message/frame/zero-length", test_frame_zero_length);
  g_test_add_func ("/message/frame/oversize", test_frame_oversize);
  g_test_add_func ("/message/frame/exact-max", test_frame_exact_max);
  g_test_add_func ("/message/frame/stream", test_frame_stream);

  for (guint i = 0; i < G_N_ELEMENTS (malformed_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/message/malformed/%s", malformed_cases[i].name);

      g_test_add_data_func (path, &malformed_cases[i], test_malformed);
    }
  g_test_add_func ("/message/malformed/deep-nesting", test_malformed_deep_nesting);
  g_test_add_func ("/message/malformed/huge-strings", test_malformed_huge_strings);
  g_test_add_func ("/message/malformed/nesting-hidden", test_nesting_hidden);
  g_test_add_func ("/message/malformed/escaped-nul", test_escaped_nul);
  g_test_add_func ("/message/malformed/trailing-value", test_trailing_value);

  g_test_add_func ("/message/cand/v4-mapped", test_cand_v4_mapped);
  g_test_add_func ("/message/cand/longest-form", test_cand_longest_form);
  g_test_add_func ("/message/cand/absent", test_cand_absent);
  g_test_add_func ("/message/cand/ignored", test_cand_ignored);
  g_test_add_func ("/message/auth/vectors", test_mac_vectors);
  g_test_add_func ("/message/cand/mac", test_mac_candidates);
  g_test_add_func ("/message/cand/longest", test_encode_longest_cands);
  g_test_add_func ("/message/max-reply-size/relay", test_max_reply_size_relay);
  g_test_add_func ("/message/max-reply-size/isync-cands", test_max_reply_size_isync_cands);
  g_test_add_func ("/message/decode/fields-ignored", test_fields_ignored);
  g_test_add_func ("/message/decode/session-auth", test_session_auth);
  for (guint i = 0; i < G_N_ELEMENTS (field_error_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/message/invalid-field/%s", field_error_cases[i].name);

      g_test_add_data_func (path, &field_error_cases[i], test_field_error);
    }

  g_test_add_func ("/message/fuzz/mutations", test_fuzz_mutations);
  g_test_add_func ("/message/fuzz/fields", test_fuzz_fields);

  g_test_add_func ("/addr/parse/ipv4", test_addr_parse_ipv4);
  g_test_add_func ("/addr/parse/ipv6", test_addr_parse_ipv6);
  g_test_add_func ("/addr/parse/v4-mapped", test_addr_parse_v4_mapped);
  g_test_add_func ("/addr/parse/port", test_addr_parse_port);
  g_test_add_func ("/addr/parse/bad", test_addr_parse_bad);
  g_test_add_func ("/addr/parse/long", test_addr_parse_long);
  g_test_add_func ("/addr/format", test_addr_format);
  g_test_add_func ("/addr/equal-hash", test_addr_equal_hash);
  g_test_add_func ("/addr/sockaddr/ipv4", test_addr_sockaddr_ipv4);
  g_test_add_func ("/addr/sockaddr/ipv6", test_addr_sockaddr_ipv6);
  g_test_add_func ("/addr/sockaddr/v4-on-ipv6", test_addr_sockaddr_v4_on_ipv6);
  g_test_add_func ("/addr/sockaddr/invalid", test_addr_sockaddr_invalid);
  g_test_add_func ("/addr/socket-address", test_addr_socket_address);
  g_test_add_func ("/addr/socket-address/dual-stack", test_addr_socket_address_dual_stack);

  return g_test_run ();
}
