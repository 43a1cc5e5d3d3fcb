/* test-fastpath.c: the codec's fast path against json-glib
 *
 * SPDX-License-Identifier: MIT
 */

#include <string.h>

#include "rndz-message-private.h"
#include "rndz-types.h"

typedef struct
{
  gboolean ok;
  GQuark domain;
  int code;
  RndzMessage msg;
} Outcome;

static Outcome
decode_with (gboolean    fast,
             const char *data,
             gsize       len)
{
  g_autoptr(GError) error = NULL;
  Outcome outcome = { 0 };

  rndz_message_fast_path = fast;
  outcome.ok = rndz_message_decode (&outcome.msg, data, len, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, &error);
  rndz_message_fast_path = TRUE;
  if (error != NULL)
    {
      outcome.domain = error->domain;
      outcome.code = error->code;
    }
  return outcome;
}

/* Both parsers must agree on the verdict, the error and every field */
static void
assert_same (const char *data,
             gsize       len)
{
  Outcome fast = decode_with (TRUE, data, len);
  Outcome slow = decode_with (FALSE, data, len);

  if (fast.ok != slow.ok || fast.domain != slow.domain || fast.code != slow.code ||
      memcmp (&fast.msg, &slow.msg, sizeof fast.msg) != 0)
    {
      g_autofree char *escaped = g_strescape (g_strndup (data, len), NULL);

      g_error ("The fast path disagrees with json-glib on “%s”: %d/%d vs %d/%d",
               escaped, fast.ok, fast.code, slow.ok, slow.code);
    }
}

static void
random_id (char *out)
{
  static const char *pieces[] = { "a", "bob", "é", "日本", "x-1", "\"", "\\", "[", "{", "}", " ", "z" };
  guint n = g_test_rand_int_range (0, 6);

  out[0] = '\0';
  for (guint i = 0; i < n; i++)
    g_strlcat (out, pieces[g_test_rand_int_range (0, G_N_ELEMENTS (pieces))], RNDZ_ID_MAX_LEN + 1);
  if (out[0] == '\0')
    g_strlcpy (out, "p", RNDZ_ID_MAX_LEN + 1);
}

static gsize
random_message (char  *buf,
                gsize  size)
{
  static const char *addrs[] = { "127.0.0.1:1", "[::1]:65535", "198.51.100.7:4000", "[2001:db8::1]:80" };
  RndzMessage msg;

  rndz_message_init (&msg, g_test_rand_int_range (RNDZ_MESSAGE_PING, RNDZ_MESSAGE_ERROR + 1),
                     g_test_rand_int ());
  random_id (msg.id);
  random_id (msg.target);
  rndz_addr_parse (&msg.addr, addrs[g_test_rand_int_range (0, G_N_ELEMENTS (addrs))], NULL);
  msg.code = g_test_rand_int_range (0, RNDZ_WIRE_ERROR_ADDRESS_FAMILY + 1);
  msg.auth = g_test_rand_bit ();
  if (g_test_rand_bit ())
    {
      g_autoptr(GBytes) key = g_bytes_new_static ("0123456789abcdef", 16);
      RndzAddr srv;

      rndz_addr_parse (&srv, addrs[g_test_rand_int_range (0, G_N_ELEMENTS (addrs))], NULL);
      rndz_message_sign (&msg, &srv, key, g_test_rand_int ());
    }
  if (g_test_rand_bit ())
    msg.pad_to = g_test_rand_int_range (0, 300);
  return rndz_message_encode (&msg, buf, size);
}

/* Edits that produce the odd JSON the fast path must leave to json-glib */
static const char *insertions[] = {
  " ", "\t", "\n", "\r", "\f", "\v", ",", ":", "\"", "\\", "\\u0041", "\\u0000", "\\n",
  "{", "}", "[", "]", "[]", "{}", "null", "true", "false", "1", "01", "-1", "1.5", "1e3",
  "0x10", "'", "/*x*/", "//", "\"v\":2,", "\"tid\":1,", "\"id\":\"dup\",", "\"x\":[1,{}],",
  "\xc3\xa9", "\x7f", "\x01", "99999999999999999999",
};

static void
test_equivalence (void)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  guint iterations = g_test_slow () ? 200000 : 20000;

  g_test_summary ("On valid messages and on random edits of them, the fast path and "
                  "json-glib give the same verdict, error and fields");

  for (guint i = 0; i < iterations; i++)
    {
      g_autoptr(GString) text = NULL;
      gsize len = random_message (buf, sizeof buf);
      guint edits = g_test_rand_int_range (0, 4);

      text = g_string_new_len (buf, len);
      assert_same (text->str, text->len);

      for (guint e = 0; e < edits; e++)
        {
          guint pos = g_test_rand_int_range (0, text->len + 1);

          switch (g_test_rand_int_range (0, 3))
            {
            case 0:
              g_string_insert (text, pos, insertions[g_test_rand_int_range (0, G_N_ELEMENTS (insertions))]);
              break;
            case 1:
              if (pos < text->len)
                {
                  gsize n = g_test_rand_int_range (1, 5);

                  g_string_erase (text, pos, MIN (text->len - pos, n));
                }
              break;
            default:
              if (pos < text->len)
                text->str[pos] = (char) g_test_rand_int_range (0x20, 0x7f);
              break;
            }
        }

      if (text->len <= RNDZ_MESSAGE_DEFAULT_MAX_SIZE)
        assert_same (text->str, text->len);
    }
}

static void
test_fast_path_taken (void)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg, decoded;
  gsize len;

  g_test_summary ("What the encoder writes decodes, escapes and all");

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 12);
  g_strlcpy (msg.id, "a\"b\\c", sizeof msg.id);
  g_strlcpy (msg.target, "日本", sizeof msg.target);
  msg.pad_to = 200;
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_true (rndz_message_decode (&decoded, buf, len, sizeof buf, NULL));
  g_assert_cmpstr (decoded.id, ==, "a\"b\\c");
  g_assert_cmpstr (decoded.target, ==, "日本");
  assert_same (buf, len);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fastpath/encoded", test_fast_path_taken);
  g_test_add_func ("/fastpath/equivalence", test_equivalence);

  return g_test_run ();
}
