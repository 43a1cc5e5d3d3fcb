/* test-auth.c: authenticated registration
 *
 * SPDX-License-Identifier: MIT
 */

#include <glib/gstdio.h>
#include <rndz-glib/rndz.h>
#include <string.h>

#include "rndz-message-private.h"
#include "rndz-server-private.h"
#include "rndz-test-util.h"

#define SECRET "correct horse battery staple"
/* The public address of the servers that run without sockets */
#define SERVER_NAME "198.51.100.7:8888"

static GBytes *
secret_bytes (void)
{
  return g_bytes_new_static (SECRET, strlen (SECRET));
}

static GBytes *
key_for (const char *id)
{
  g_autoptr(GBytes) secret = secret_bytes ();

  return rndz_derive_key (secret, id);
}

static const RndzAddr *
server_name (void)
{
  static RndzAddr addr;

  addr = rndz_test_addr (SERVER_NAME);
  return &addr;
}

/* Vectors computed independently, with Python's hmac module, from the
 * definition in doc/protocol.md (scripts/auth-vectors.py) */
static void
vector_init (RndzMessage     *msg,
             RndzMessageType  type,
             guint32          tid,
             const char      *target,
             const char      *mac)
{
  rndz_message_init (msg, type, tid);
  g_strlcpy (msg->id, "alice", sizeof msg->id);
  if (target != NULL)
    g_strlcpy (msg->target, target, sizeof msg->target);
  msg->ts = 1700000000000;
  g_strlcpy (msg->nonce, "0123456789abcdef", sizeof msg->nonce);
  msg->srv = rndz_test_addr ("127.0.0.1:8888");
  g_strlcpy (msg->mac, mac, sizeof msg->mac);
}

static void
test_vectors (void)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("secret", 6);
  g_autoptr(GBytes) key = rndz_derive_key (secret, "alice");
  g_autofree char *hex = rndz_key_to_hex (key);
  g_autoptr(GBytes) parsed = NULL;
  g_autoptr(GError) error = NULL;
  RndzMessage msg;

  g_test_summary ("Key derivation and the MAC input match the documented definition");

  g_assert_cmpstr (hex, ==, "4360c67bc81025114044578d7c4e8e0f02fd0cae99f22d603390e8f9dc9888f8");
  parsed = rndz_key_from_hex (hex, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (parsed, key));

  vector_init (&msg, RNDZ_MESSAGE_PING, 42, NULL,
               "a2cf33b26d036fb4d2f80449918a8b7dec78444ccf5f188b52a4dfc23fd3b320");
  g_assert_true (rndz_message_verify (&msg, key));

  vector_init (&msg, RNDZ_MESSAGE_ISYNC, 7, "bob",
               "2b271e198bb7e4f45c83bcb1381fb9e00af414407038ce5653b830f9ba9e3a2a");
  g_assert_true (rndz_message_verify (&msg, key));

  /* One bit of the target changed */
  g_strlcpy (msg.target, "boc", sizeof msg.target);
  g_assert_false (rndz_message_verify (&msg, key));

  g_assert_null (rndz_key_from_hex ("abc", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_clear_error (&error);
  g_assert_null (rndz_key_from_hex ("zz112233445566778899aabbccddeeff", &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
}

static void
test_vectors_server (void)
{
  g_autoptr(GBytes) secret = g_bytes_new_static ("secret", 6);
  g_autoptr(GBytes) key = rndz_derive_key (secret, "alice");
  RndzMessage msg;

  g_test_summary ("A MAC names the server: it does not verify for another port or "
                  "address; the version 1 MAC, which named none, and a MAC over an "
                  "empty server never verify");

  vector_init (&msg, RNDZ_MESSAGE_ISYNC, 7, "bob",
               "2b271e198bb7e4f45c83bcb1381fb9e00af414407038ce5653b830f9ba9e3a2a");
  msg.srv.port++;
  g_assert_false (rndz_message_verify (&msg, key));
  msg.srv = rndz_test_addr ("127.0.0.2:8888");
  g_assert_false (rndz_message_verify (&msg, key));
  /* Written as v4-mapped IPv6, it is the same server */
  g_assert_true (rndz_addr_parse (&msg.srv, "[::ffff:127.0.0.1]:8888", NULL));
  g_assert_true (rndz_message_verify (&msg, key));

  /* The ping's MAC of version 1, with srv and without */
  vector_init (&msg, RNDZ_MESSAGE_PING, 42, NULL,
               "0c8f0a8dc2b6d2ddae1d5fe17a01d500b2dadf4e099578d31770f387daf49494");
  g_assert_false (rndz_message_verify (&msg, key));
  memset (&msg.srv, 0, sizeof msg.srv);
  g_assert_false (rndz_message_verify (&msg, key));

  /* A MAC over an empty server, whoever made it */
  rndz_message_sign (&msg, &msg.srv, key, 1700000000000);
  g_assert_false (rndz_message_verify (&msg, key));
}

static void
test_signed_roundtrip (void)
{
  g_autoptr(GBytes) key = key_for ("alice");
  RndzMessage msg, decoded;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  g_test_summary ("A signed message survives encoding and decoding, with its MAC");

  rndz_message_init (&msg, RNDZ_MESSAGE_RSYNC, 9);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  g_strlcpy (msg.target, "b\"ob", sizeof msg.target);
  rndz_message_sign (&msg, server_name (), key, 1234567);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_nonnull (strstr (buf, ",\"srv\":\"" SERVER_NAME "\","));
  g_assert_true (rndz_message_decode (&decoded, buf, len, sizeof buf, NULL));
  g_assert_cmpint (decoded.ts, ==, 1234567);
  g_assert_cmpstr (decoded.nonce, ==, msg.nonce);
  g_assert_cmpstr (decoded.mac, ==, msg.mac);
  g_assert_true (rndz_addr_equal (&decoded.srv, server_name ()));
  g_assert_true (rndz_message_verify (&decoded, key));
}

/* The server, driven without sockets */

typedef struct
{
  RndzServer *server;
  GArray *sent;   /* RndzTestSent */
} Fixture;

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  user_data)
{
  g_autoptr(GBytes) secret = secret_bytes ();

  const char *names[] = { SERVER_NAME, NULL };

  fixture->server = rndz_server_new ();
  fixture->sent = rndz_test_capture_sent (fixture->server);
  rndz_server_set_secret (fixture->server, secret);
  /* It has no socket: the name peers sign for is this one */
  rndz_server_set_public_addresses (fixture->server, names);
  g_assert_true (rndz_server_get_auth_required (fixture->server));
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_clear_object (&fixture->server);
  g_array_unref (fixture->sent);
}

/* Encodes @msg (padded) into @buf and feeds it */
static gsize
feed (Fixture     *fixture,
      const char  *from,
      RndzMessage *msg,
      char        *buf,
      gsize        size)
{
  gsize len;

  msg->pad_to = rndz_message_max_reply_size (msg);
  len = rndz_message_encode (msg, buf, size);
  rndz_test_feed_datagram (fixture->server, from, buf, len);
  return len;
}

static RndzMessage
signed_ping (const char *id,
             GBytes     *key,
             gint64      now_ms)
{
  RndzMessage msg;

  rndz_message_init (&msg, RNDZ_MESSAGE_PING, g_random_int ());
  g_strlcpy (msg.id, id, sizeof msg.id);
  if (key != NULL)
    rndz_message_sign (&msg, server_name (), key, now_ms);
  return msg;
}

static guint
pongs (Fixture *fixture)
{
  return rndz_test_count_sent (fixture->sent, RNDZ_MESSAGE_PONG);
}

static gint64
now_ms (void)
{
  return g_get_real_time () / 1000;
}

static void
test_correct_key (Fixture       *fixture,
                  gconstpointer  user_data)
{
  g_autoptr(GBytes) key = key_for ("alice");
  RndzMessage msg = signed_ping ("alice", key, now_ms ());
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];

  g_test_summary ("A ping signed with the id's key registers it");

  feed (fixture, "192.0.2.1:1000", &msg, buf, sizeof buf);
  g_assert_cmpuint (pongs (fixture), ==, 1);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 1);
}

static void
assert_refused (Fixture     *fixture,
                const char  *from,
                RndzMessage *msg)
{
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzServerStats before, after;

  rndz_server_get_stats (fixture->server, &before);
  g_array_set_size (fixture->sent, 0);
  feed (fixture, from, msg, buf, sizeof buf);
  rndz_server_get_stats (fixture->server, &after);

  /* No answer of any kind, and counted */
  g_assert_cmpuint (fixture->sent->len, ==, 0);
  g_assert_cmpuint (after.auth_failed, ==, before.auth_failed + 1);
}

static void
test_wrong_and_missing_key (Fixture       *fixture,
                            gconstpointer  user_data)
{
  g_autoptr(GBytes) wrong = key_for ("mallory");
  RndzMessage unsigned_ping = signed_ping ("alice", NULL, 0);
  RndzMessage wrong_ping = signed_ping ("alice", wrong, now_ms ());

  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage *reply;

  g_test_summary ("A ping signed with another id's key gets no answer; one "
                  "without a MAC gets auth-required, once a second per address");

  assert_refused (fixture, "192.0.2.1:1000", &wrong_ping);

  g_array_set_size (fixture->sent, 0);
  feed (fixture, "192.0.2.2:1000", &unsigned_ping, buf, sizeof buf);
  g_assert_cmpuint (fixture->sent->len, ==, 1);
  reply = &g_array_index (fixture->sent, RndzTestSent, 0).msg;
  g_assert_cmpint (reply->type, ==, RNDZ_MESSAGE_ERROR);
  g_assert_cmpint (reply->code, ==, RNDZ_WIRE_ERROR_AUTH_REQUIRED);
  g_assert_cmpuint (reply->tid, ==, unsigned_ping.tid);
  assert_refused (fixture, "192.0.2.2:1000", &unsigned_ping);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 0);
}

static void
test_replay (Fixture       *fixture,
             gconstpointer  user_data)
{
  g_autoptr(GBytes) key = key_for ("alice");
  RndzMessage msg = signed_ping ("alice", key, now_ms ());
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzServerStats stats;
  gsize len;

  g_test_summary ("A captured message sent again is refused, from anywhere");

  len = feed (fixture, "192.0.2.1:1000", &msg, buf, sizeof buf);
  g_assert_cmpuint (pongs (fixture), ==, 1);

  g_array_set_size (fixture->sent, 0);
  rndz_test_feed_datagram (fixture->server, "192.0.2.1:1000", buf, len);
  rndz_test_feed_datagram (fixture->server, "203.0.113.66:1000", buf, len);
  g_assert_cmpuint (fixture->sent->len, ==, 0);
  rndz_server_get_stats (fixture->server, &stats);
  g_assert_cmpuint (stats.auth_failed, ==, 2);
}

static void
test_tampered (Fixture       *fixture,
               gconstpointer  user_data)
{
  g_autoptr(GBytes) key = key_for ("alice");
  RndzMessage msg;

  g_test_summary ("Changing any field of a signed message breaks its MAC");

  msg = signed_ping ("alice", key, now_ms ());
  msg.tid++;
  assert_refused (fixture, "192.0.2.1:1000", &msg);

  msg = signed_ping ("alice", key, now_ms ());
  msg.ts++;
  assert_refused (fixture, "192.0.2.1:1000", &msg);

  msg = signed_ping ("alice", key, now_ms ());
  msg.nonce[0] = msg.nonce[0] == 'a' ? 'b' : 'a';
  assert_refused (fixture, "192.0.2.1:1000", &msg);

  rndz_message_init (&msg, RNDZ_MESSAGE_ISYNC, 5);
  g_strlcpy (msg.id, "alice", sizeof msg.id);
  g_strlcpy (msg.target, "bob", sizeof msg.target);
  rndz_message_sign (&msg, server_name (), key, now_ms ());
  g_strlcpy (msg.target, "carol", sizeof msg.target);
  assert_refused (fixture, "192.0.2.1:1000", &msg);
}

static void
test_expired (Fixture       *fixture,
              gconstpointer  user_data)
{
  g_autoptr(GBytes) key = key_for ("alice");
  RndzMessage old = signed_ping ("alice", key, now_ms () - 120 * 1000);
  RndzMessage future = signed_ping ("alice", key, now_ms () + 120 * 1000);

  g_test_summary ("A timestamp more than a minute off is refused");

  assert_refused (fixture, "192.0.2.1:1000", &old);
  assert_refused (fixture, "192.0.2.1:1000", &future);
}

static void
test_hijack (Fixture       *fixture,
             gconstpointer  user_data)
{
  g_autoptr(GBytes) alice_key = key_for ("alice");
  g_autoptr(GBytes) mallory_key = key_for ("mallory");
  RndzMessage alice = signed_ping ("alice", alice_key, now_ms ());
  RndzMessage hijack = signed_ping ("alice", mallory_key, now_ms ());
  RndzMessage bye;
  RndzMessage isync;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  guint32 fsync_tid = 0;

  g_test_summary ("A peer with a key of its own cannot take over another id: "
                  "requests keep going to the real peer");

  feed (fixture, "192.0.2.1:1000", &alice, buf, sizeof buf);
  assert_refused (fixture, "203.0.113.66:6666", &hijack);

  rndz_message_init (&bye, RNDZ_MESSAGE_BYE, 1);
  g_strlcpy (bye.id, "alice", sizeof bye.id);
  rndz_message_sign (&bye, server_name (), mallory_key, now_ms ());
  assert_refused (fixture, "192.0.2.1:1000", &bye);
  g_assert_cmpuint (rndz_server_get_peer_count (fixture->server), ==, 1);

  /* Bob's request still goes to alice's own address */
  {
    g_autoptr(GBytes) bob_key = key_for ("bob");

    rndz_message_init (&isync, RNDZ_MESSAGE_ISYNC, 3);
    g_strlcpy (isync.id, "bob", sizeof isync.id);
    g_strlcpy (isync.target, "alice", sizeof isync.target);
    rndz_message_sign (&isync, server_name (), bob_key, now_ms ());
  }
  g_array_set_size (fixture->sent, 0);
  feed (fixture, "198.51.100.2:2000", &isync, buf, sizeof buf);
  g_assert_cmpuint (fixture->sent->len, ==, 1);
  g_assert_cmpint (g_array_index (fixture->sent, RndzTestSent, 0).msg.type, ==, RNDZ_MESSAGE_FSYNC);
  g_assert_true (g_array_index (fixture->sent, RndzTestSent, 0).msg.auth);
  fsync_tid = g_array_index (fixture->sent, RndzTestSent, 0).msg.tid;
  g_assert_cmpuint (fsync_tid, !=, 0);

  /* And mallory cannot answer it in alice's name */
  {
    RndzMessage rsync;

    rndz_message_init (&rsync, RNDZ_MESSAGE_RSYNC, fsync_tid);
    g_strlcpy (rsync.id, "alice", sizeof rsync.id);
    g_strlcpy (rsync.target, "bob", sizeof rsync.target);
    rndz_message_sign (&rsync, server_name (), mallory_key, now_ms ());
    assert_refused (fixture, "192.0.2.1:1000", &rsync);
  }
}

static void
test_replay_share (Fixture       *fixture,
                   gconstpointer  user_data)
{
  g_autoptr(GBytes) mallory_key = key_for ("mallory");
  g_autoptr(GBytes) alice_key = key_for ("alice");
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg;
  guint answered = 0;

  g_test_summary ("A peer with a valid key can fill only its own share of the replay "
                  "cache (4096 messages in two minutes); others keep being heard");

  for (guint i = 0; i < 4200; i++)
    {
      guint before = pongs (fixture);

      msg = signed_ping ("mallory", mallory_key, now_ms ());
      /* Many sources, so that no rate limit gets in the way */
      {
        g_autofree char *from = g_strdup_printf ("10.%u.%u.%u:1000", i >> 16, (i >> 8) & 255, i & 255);

        feed (fixture, from, &msg, buf, sizeof buf);
      }
      answered += pongs (fixture) - before;
    }
  g_assert_cmpuint (answered, ==, 4096);

  msg = signed_ping ("alice", alice_key, now_ms ());
  g_array_set_size (fixture->sent, 0);
  feed (fixture, "192.0.2.1:1000", &msg, buf, sizeof buf);
  g_assert_cmpuint (pongs (fixture), ==, 1);
}

static void
test_legit_under_attack (Fixture       *fixture,
                         gconstpointer  user_data)
{
  g_autoptr(GBytes) key = key_for ("alice");
  g_autoptr(GBytes) wrong = key_for ("mallory");
  RndzServerStats stats;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];

  g_test_summary ("The legitimate peer keeps working while an attacker floods the server "
                  "with forged messages; the attacker's source is soon not even heard");

  for (guint i = 0; i < 2000; i++)
    {
      RndzMessage forged = signed_ping ("alice", wrong, now_ms ());

      feed (fixture, "203.0.113.66:6666", &forged, buf, sizeof buf);
      if (i % 100 == 0)
        {
          RndzMessage real = signed_ping ("alice", key, now_ms ());
          guint before = pongs (fixture);

          feed (fixture, "192.0.2.1:1000", &real, buf, sizeof buf);
          g_assert_cmpuint (pongs (fixture), ==, before + 1);
        }
    }

  rndz_server_get_stats (fixture->server, &stats);
  g_assert_cmpuint (stats.auth_failed, ==, 2000);
  g_assert_cmpuint (pongs (fixture), ==, 20);
}

static void
test_keys_file (void)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autofree char *bad = NULL;
  g_autoptr(GBytes) key = key_for ("alice");
  g_autofree char *hex = rndz_key_to_hex (key);
  g_autofree char *contents = g_strdup_printf ("# keys\n\nalice %s\nbob\t%s\n", hex, hex);
  int fd;

  g_test_summary ("Keys load from a file of ID HEXKEY lines; a bad line is an error");

  fd = g_file_open_tmp ("rndz-keys-XXXXXX", &path, &error);
  g_assert_no_error (error);
  close (fd);
  g_assert_true (g_file_set_contents (path, contents, -1, &error));
  g_assert_false (rndz_server_get_auth_required (server));
  g_assert_true (rndz_server_load_keys (server, path, &error));
  g_assert_no_error (error);
  g_assert_true (rndz_server_get_auth_required (server));

  fd = g_file_open_tmp ("rndz-keys-XXXXXX", &bad, &error);
  close (fd);
  g_assert_true (g_file_set_contents (bad, "alice notakey\n", -1, &error));
  g_assert_false (rndz_server_load_keys (server, bad, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);

  g_unlink (path);
  g_unlink (bad);
}

/* End to end, with real sockets */

typedef struct
{
  gboolean done;
  GObject *object;
  GError *error;
  char *peer_id;
} Result;

static void
done_cb (GObject      *source,
         GAsyncResult *res,
         gpointer      user_data)
{
  Result *result = user_data;
  gpointer tag = g_task_get_source_tag (G_TASK (res));

  if (tag == rndz_client_listen_udp_async)
    result->object = (GObject *) rndz_client_listen_udp_finish (RNDZ_CLIENT (source), res, &result->error);
  else if (tag == rndz_client_listen_tcp_async)
    rndz_client_listen_tcp_finish (RNDZ_CLIENT (source), res, &result->error);
  else if (tag == rndz_client_connect_udp_async)
    result->object = (GObject *) rndz_client_connect_udp_finish (RNDZ_CLIENT (source), res, &result->error);
  else if (tag == rndz_client_connect_tcp_async)
    result->object = (GObject *) rndz_client_connect_tcp_finish (RNDZ_CLIENT (source), res, &result->error);
  else if (tag == rndz_client_accept_async)
    result->object = (GObject *) rndz_client_accept_finish (RNDZ_CLIENT (source), res,
                                                            &result->peer_id, &result->error);
  result->done = TRUE;
}

static void
result_clear (Result *result)
{
  g_clear_object (&result->object);
  g_clear_error (&result->error);
  g_clear_pointer (&result->peer_id, g_free);
  result->done = FALSE;
}

static RndzServer *
start_server (char **address)
{
  RndzServer *server = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, address);

  rndz_server_set_forward_timeout (server, 1000);
  return server;
}

static void
listen_on (RndzClient    *client,
           RndzTransport  transport,
           Result        *result)
{
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_listen_udp_async (client, NULL, done_cb, result);
  else
    rndz_client_listen_tcp_async (client, NULL, done_cb, result);
  rndz_test_wait_true (NULL, &result->done, 5000);
}

static void
connect_to (RndzClient    *client,
            RndzTransport  transport,
            const char    *peer,
            Result        *result)
{
  if (transport == RNDZ_TRANSPORT_UDP)
    rndz_client_connect_udp_async (client, peer, NULL, done_cb, result);
  else
    rndz_client_connect_tcp_async (client, peer, NULL, done_cb, result);
  rndz_test_wait_true (NULL, &result->done, 5000);
}

static void
test_end_to_end (gconstpointer user_data)
{
  RndzTransport transport = GPOINTER_TO_INT (user_data);
  g_autofree char *address = NULL;
  g_autoptr(RndzServer) server = start_server (&address);
  g_autoptr(GBytes) secret = secret_bytes ();
  g_autoptr(GBytes) alice_key = key_for ("alice");
  g_autoptr(GBytes) bob_key = key_for ("bob");
  const char *servers[] = { address, NULL };
  g_autoptr(RndzClient) alice = rndz_client_new ("alice", servers);
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  g_autoptr(RndzClient) mallory = rndz_client_new ("alice", servers);
  Result listened = { 0 }, connected = { 0 }, accepted = { 0 }, hijack = { 0 };

  g_test_summary ("With a server secret, peers with the right keys meet, a listener that "
                  "requires authentication learns the proven id, and a client without "
                  "the key cannot register");

  rndz_server_set_secret (server, secret);
  rndz_client_set_key (alice, alice_key);
  rndz_client_set_require_auth (alice, TRUE);
  rndz_client_set_key (bob, bob_key);

  listen_on (alice, transport, &listened);
  g_assert_no_error (listened.error);
  if (transport == RNDZ_TRANSPORT_TCP)
    rndz_client_accept_async (alice, NULL, done_cb, &accepted);

  connect_to (bob, transport, "alice", &connected);
  g_assert_no_error (connected.error);
  if (transport == RNDZ_TRANSPORT_TCP)
    {
      rndz_test_wait_true (NULL, &accepted.done, 5000);
      g_assert_no_error (accepted.error);
      g_assert_cmpstr (accepted.peer_id, ==, "bob");
    }

  /* Mallory, without alice's key, cannot register as alice */
  rndz_client_set_timeout (mallory, 1000);
  rndz_client_set_key (mallory, bob_key);
  listen_on (mallory, transport, &hijack);
  g_assert_error (hijack.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);

  result_clear (&listened);
  result_clear (&connected);
  result_clear (&accepted);
  result_clear (&hijack);
}

static void
test_require_auth (gconstpointer user_data)
{
  RndzTransport transport = GPOINTER_TO_INT (user_data);
  g_autofree char *address = NULL;
  g_autoptr(RndzServer) server = start_server (&address);
  const char *servers[] = { address, NULL };
  g_autoptr(RndzClient) alice = rndz_client_new ("alice", servers);
  g_autoptr(RndzClient) bob = rndz_client_new ("bob", servers);
  Result listened = { 0 }, connected = { 0 };

  g_test_summary ("A listener that requires authentication ignores requests the server "
                  "could not authenticate; the requester fails with PEER_NO_ANSWER");

  rndz_client_set_require_auth (alice, TRUE);
  listen_on (alice, transport, &listened);
  g_assert_no_error (listened.error);

  connect_to (bob, transport, "alice", &connected);
  g_assert_error (connected.error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER);

  result_clear (&listened);
  result_clear (&connected);
}


/* Which server a message is for (doc/protocol.md, "Authentication") */

/* A ping for alice, signed for @srv and padded, in @buf */
static gsize
ping_for (const char *srv,
          guint32     tid,
          char       *buf,
          gsize       size)
{
  g_autoptr(GBytes) key = key_for ("alice");
  RndzAddr server = rndz_test_addr (srv);
  RndzMessage ping;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, tid);
  g_strlcpy (ping.id, "alice", sizeof ping.id);
  rndz_message_sign (&ping, &server, key, now_ms ());
  ping.pad_to = rndz_message_max_reply_size (&ping);
  return rndz_message_encode (&ping, buf, size);
}

static char *
server_address (RndzServer *server)
{
  return g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (server));
}

static guint64
auth_failures (RndzServer *server)
{
  RndzServerStats stats;

  rndz_server_get_stats (server, &stats);
  return stats.auth_failed;
}

/* Sends the ping signed for @srv to @server from a new address: does it
 * register alice? */
static gboolean
ping_accepted (RndzServer *server,
               const char *srv)
{
  g_autoptr(RndzTestPeer) peer = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4,
                                                     rndz_server_get_port (server));
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  guint64 failures = auth_failures (server);
  gsize len = ping_for (srv, 9, buf, sizeof buf);

  rndz_test_peer_send_raw (peer, buf, len);
  if (!rndz_test_run_until_readable (NULL, peer->socket, 300))
    {
      /* Dropped, and counted as an authentication failure */
      g_assert_cmpuint (auth_failures (server), ==, failures + 1);
      g_assert_cmpuint (rndz_server_get_peer_count (server), ==, 0);
      return FALSE;
    }
  rndz_test_peer_expect (NULL, peer, RNDZ_MESSAGE_PONG, 9, NULL, RNDZ_TEST_TIMEOUT_MS);
  g_assert_cmpuint (rndz_server_get_peer_count (server), ==, 1);
  return TRUE;
}

static void
test_cross_server_replay (void)
{
  g_autoptr(GBytes) secret = secret_bytes ();
  g_autoptr(RndzServer) s1 = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, NULL);
  g_autoptr(RndzServer) s2 = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, NULL);
  g_autoptr(RndzTestPeer) alice = NULL;
  g_autoptr(RndzTestPeer) mallory = NULL;
  g_autofree char *s1_address = NULL;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;

  g_test_summary ("A ping signed for one server, captured and replayed to another "
                  "server with the same secret from another address, registers "
                  "nothing there and gets no pong");

  rndz_server_set_secret (s1, secret);
  rndz_server_set_secret (s2, secret);
  s1_address = server_address (s1);
  alice = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, rndz_server_get_port (s1));
  mallory = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4, rndz_server_get_port (s2));

  len = ping_for (s1_address, 7, buf, sizeof buf);
  rndz_test_peer_send_raw (alice, buf, len);
  rndz_test_peer_expect (NULL, alice, RNDZ_MESSAGE_PONG, 7, NULL, RNDZ_TEST_TIMEOUT_MS);
  g_assert_cmpuint (rndz_server_get_peer_count (s1), ==, 1);

  /* The same bytes, from mallory's address, to the other server */
  rndz_test_peer_send_raw (mallory, buf, len);
  rndz_test_peer_expect_silence (NULL, mallory, 300);
  g_assert_cmpuint (rndz_server_get_peer_count (s2), ==, 0);
  g_assert_cmpuint (auth_failures (s2), ==, 1);
}

static void
test_server_names (void)
{
  g_autoptr(GBytes) secret = secret_bytes ();
  g_autoptr(RndzServer) server = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, NULL);
  g_autofree char *address = server_address (server);
  g_autofree char *other_port = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (server) ^ 1);

  g_test_summary ("A server bound to 127.0.0.1 accepts messages signed for 127.0.0.1 and "
                  "its port only: not for another port, another address, or no server");

  rndz_server_set_secret (server, secret);
  g_assert_false (ping_accepted (server, other_port));
  g_assert_false (ping_accepted (server, "127.0.0.2:8888"));
  g_assert_false (ping_accepted (server, SERVER_NAME));

  /* No srv at all, with a MAC over an empty server: refused like a
   * wrong MAC, or it would be good for every server */
  {
    g_autoptr(RndzTestPeer) peer = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4,
                                                       rndz_server_get_port (server));
    g_autoptr(GBytes) key = key_for ("alice");
    RndzAddr none = { 0 };
    RndzMessage ping = signed_ping ("alice", NULL, 0);
    char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
    gsize len;

    rndz_message_sign (&ping, &none, key, now_ms ());
    ping.pad_to = rndz_message_max_reply_size (&ping);
    len = rndz_message_encode (&ping, buf, sizeof buf);
    g_assert_null (strstr (buf, "\"srv\""));
    rndz_test_peer_send_raw (peer, buf, len);
    rndz_test_peer_expect_silence (NULL, peer, 200);
    g_assert_cmpuint (auth_failures (server), ==, 4);
  }

  g_assert_true (ping_accepted (server, address));
}

/* Like ping_accepted(), from @family's loopback */
static gboolean
ping_accepted_from (RndzServer    *server,
                    GSocketFamily  family,
                    const char    *srv)
{
  g_autoptr(RndzTestPeer) peer = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, family,
                                                     rndz_server_get_port (server));
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len = ping_for (srv, 9, buf, sizeof buf);

  rndz_test_peer_send_raw (peer, buf, len);
  if (!rndz_test_run_until_readable (NULL, peer->socket, 300))
    return FALSE;
  rndz_test_peer_expect (NULL, peer, RNDZ_MESSAGE_PONG, 9, NULL, RNDZ_TEST_TIMEOUT_MS);
  return TRUE;
}

static void
test_server_names_wildcard (gconstpointer user_data)
{
  GSocketFamily family = GPOINTER_TO_INT (user_data);
  g_autoptr(GBytes) secret = secret_bytes ();
  g_autoptr(RndzServer) server = rndz_server_new ();
  g_autoptr(GInetAddress) any = g_inet_address_new_any (family);
  g_autoptr(GSocketAddress) listen_address = g_inet_socket_address_new (any, 0);
  g_autoptr(GError) error = NULL;
  g_autofree char *address = NULL;
  g_autofree char *other_port = NULL;

  g_test_summary ("A server bound to 0.0.0.0 (or ::, which serves IPv4 too) accepts "
                  "messages signed for any address of the host with its port, such as "
                  "127.0.0.1 (or ::1), and for no other port or address");

  if (family == G_SOCKET_FAMILY_IPV6 && !rndz_test_have_ipv6 ())
    {
      g_test_skip ("No IPv6 loopback");
      return;
    }

  g_assert_true (rndz_server_listen (server, listen_address, &error));
  g_assert_no_error (error);
  rndz_server_set_secret (server, secret);
  address = server_address (server);
  other_port = g_strdup_printf ("127.0.0.1:%u", rndz_server_get_port (server) ^ 1);

  g_assert_false (ping_accepted (server, other_port));
  /* Not an address of this host (a documentation prefix) */
  g_assert_false (ping_accepted (server, "203.0.113.1:8888"));
  g_assert_true (ping_accepted (server, address));

  if (family == G_SOCKET_FAMILY_IPV6)
    {
      g_autofree char *v6 = g_strdup_printf ("[::1]:%u", rndz_server_get_port (server));
      g_autofree char *v6_other = g_strdup_printf ("[::1]:%u", rndz_server_get_port (server) ^ 1);

      g_assert_false (ping_accepted_from (server, family, v6_other));
      g_assert_false (ping_accepted_from (server, family, "[2001:db8::7]:8888"));
      g_assert_true (ping_accepted_from (server, family, v6));
    }
}

static void
test_server_names_public (void)
{
  g_autoptr(GBytes) secret = secret_bytes ();
  g_autoptr(RndzServer) server = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, NULL);
  const char *names[] = { "[2001:db8::7]:8888", "[::ffff:198.51.100.7]:8888", NULL };
  const char * const *got;

  g_test_summary ("A server behind port forwarding accepts messages signed for the public "
                  "addresses it is given, in any form of them, and for no others");

  rndz_server_set_secret (server, secret);
  g_assert_false (ping_accepted (server, SERVER_NAME));

  rndz_server_set_public_addresses (server, names);
  got = rndz_server_get_public_addresses (server);
  g_assert_cmpstr (got[0], ==, "[2001:db8::7]:8888");
  g_assert_cmpstr (got[1], ==, SERVER_NAME);
  g_assert_null (got[2]);
  g_assert_false (ping_accepted (server, "198.51.100.7:8889"));
  g_assert_true (ping_accepted (server, SERVER_NAME));

  /* An invalid address is a programming error, and changes nothing */
  {
    const char *bad[] = { "198.51.100.8:8888", "example.org:8888", NULL };

    g_test_expect_message ("Rndz", G_LOG_LEVEL_CRITICAL, "*example.org:8888*");
    rndz_server_set_public_addresses (server, bad);
    g_test_assert_expected_messages ();
    g_assert_cmpstr (rndz_server_get_public_addresses (server)[1], ==, SERVER_NAME);
  }

  rndz_server_set_public_addresses (server, NULL);
  g_assert_null (rndz_server_get_public_addresses (server)[0]);
}

static void
count_message_cb (const char     *domain,
                  GLogLevelFlags  level,
                  const char     *message,
                  gpointer        user_data)
{
  GPtrArray *messages = user_data;

  g_ptr_array_add (messages, g_strdup (message));
}

static void
test_server_names_log (void)
{
  g_autoptr(GBytes) secret = secret_bytes ();
  g_autoptr(RndzServer) server = rndz_test_server_new (G_SOCKET_FAMILY_IPV4, NULL);
  g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(RndzTestPeer) peer = rndz_test_peer_new (RNDZ_TRANSPORT_UDP, G_SOCKET_FAMILY_IPV4,
                                                     rndz_server_get_port (server));
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  guint handler;

  g_test_summary ("A message signed for another name is logged, at most once a second, "
                  "with the name and the option that accepts it");

  rndz_server_set_secret (server, secret);
  handler = g_log_set_handler ("Rndz", G_LOG_LEVEL_MESSAGE, count_message_cb, messages);

  for (guint i = 0; i < 5; i++)
    {
      gsize len = ping_for (SERVER_NAME, i, buf, sizeof buf);

      rndz_test_peer_send_raw (peer, buf, len);
    }
  rndz_test_peer_expect_silence (NULL, peer, 300);
  g_assert_cmpuint (auth_failures (server), ==, 5);
  g_assert_cmpuint (messages->len, ==, 1);
  g_assert_nonnull (strstr (messages->pdata[0], "--public-address " SERVER_NAME));

  /* A second later, again */
  rndz_test_run_for (NULL, 1000);
  g_assert_false (ping_accepted (server, SERVER_NAME));
  g_assert_cmpuint (messages->len, ==, 2);

  g_log_remove_handler ("Rndz", handler);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/auth/vectors", test_vectors);
  g_test_add_func ("/auth/vectors-server", test_vectors_server);
  g_test_add_func ("/auth/signed-roundtrip", test_signed_roundtrip);
  g_test_add_func ("/auth/keys-file", test_keys_file);
  g_test_add ("/auth/server/correct-key", Fixture, NULL, fixture_setup, test_correct_key, fixture_teardown);
  g_test_add ("/auth/server/wrong-and-missing-key", Fixture, NULL, fixture_setup, test_wrong_and_missing_key, fixture_teardown);
  g_test_add ("/auth/server/replay", Fixture, NULL, fixture_setup, test_replay, fixture_teardown);
  g_test_add ("/auth/server/tampered", Fixture, NULL, fixture_setup, test_tampered, fixture_teardown);
  g_test_add ("/auth/server/expired", Fixture, NULL, fixture_setup, test_expired, fixture_teardown);
  g_test_add ("/auth/server/hijack", Fixture, NULL, fixture_setup, test_hijack, fixture_teardown);
  g_test_add ("/auth/server/legit-under-attack", Fixture, NULL, fixture_setup, test_legit_under_attack, fixture_teardown);
  g_test_add ("/auth/server/replay-share", Fixture, NULL, fixture_setup, test_replay_share, fixture_teardown);
  g_test_add_func ("/auth/udp/cross-server-replay", test_cross_server_replay);
  g_test_add_func ("/auth/udp/server-names", test_server_names);
  g_test_add_data_func ("/auth/udp/server-names-wildcard", GINT_TO_POINTER (G_SOCKET_FAMILY_IPV4),
                        test_server_names_wildcard);
  g_test_add_data_func ("/auth/udp/server-names-wildcard-v6", GINT_TO_POINTER (G_SOCKET_FAMILY_IPV6),
                        test_server_names_wildcard);
  g_test_add_func ("/auth/udp/server-names-public", test_server_names_public);
  g_test_add_func ("/auth/udp/server-names-log", test_server_names_log);
  g_test_add_data_func ("/auth/udp/end-to-end", GINT_TO_POINTER (RNDZ_TRANSPORT_UDP), test_end_to_end);
  g_test_add_data_func ("/auth/tcp/end-to-end", GINT_TO_POINTER (RNDZ_TRANSPORT_TCP), test_end_to_end);
  g_test_add_data_func ("/auth/udp/require-auth", GINT_TO_POINTER (RNDZ_TRANSPORT_UDP), test_require_auth);
  g_test_add_data_func ("/auth/tcp/require-auth", GINT_TO_POINTER (RNDZ_TRANSPORT_TCP), test_require_auth);

  return g_test_run ();
}
