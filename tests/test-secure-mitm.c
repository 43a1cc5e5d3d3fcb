/* test-secure-mitm.c: secure connections through a hostile server and relay
 *
 * SPDX-License-Identifier: MIT
 *
 * Alice listens with an identity and bob reaches her, as in
 * test-secure.c, but both know the server only through a proxy
 * (rndz-test-proxy.c) that can rewrite, hold back or watch what passes:
 *
 *   - a server that puts a third identity's fingerprint (mallory's) in
 *     the redirect or the fsync gets a failed handshake, with
 *     IDENTITY_MISMATCH on the side that checks it, and no data;
 *   - a relay (a raw proxy in front of the server's relay port) carries
 *     ciphertext only: the plaintext that crosses it never appears in
 *     its bytes, while a plain connection's does;
 *   - over UDP, a direct path that works before the redirect comes (the
 *     redirect held back 300 ms) waits for the redirect's fingerprint,
 *     and a pin that the redirect contradicts still fails.
 */

#include <gio/gio.h>
#include <string.h>

#include "rndz-test-util.h"
#include "rndz-test-channel.h"
#include "rndz-test-proxy.h"
#include "rndz-connect-private.h"

#define WAIT_MS 8000
/* How long a listener is watched for a channel that must not come */
#define QUIET_MS 1000
#define SECRET "plaintext-secret-7f3a9c-the-relay-must-not-see-this"

typedef struct
{
  RndzTransport transport;
  gboolean relayed;
} Params;

typedef struct
{
  const Params *params;
  RndzServer *server;
  RndzTestProxy *proxy;         /* the server, as the peers know it */
  RndzTestProxy *relay;         /* relayed: the relay port, as the peers know it */
  RndzIdentity *alice_identity;
  RndzIdentity *bob_identity;
  RndzIdentity *mallory_identity;
  RndzClient *alice;
  RndzClient *bob;
  GSocket *listening;
  RndzMessageType swap;         /* the message whose fp the proxy swaps */
  guint hold_ms;                /* how long the proxy holds redirects back */
  GPtrArray *logged;            /* the library's messages, debug ones too */
  GAsyncResult *accepted;       /* alice's accept, once it has ended */
} Fixture;

static Fixture *current;

/* The library's debug messages say what became of a listener's
 * handshakes and of a held path: they are kept for the tests to read */
static void
log_cb (const char     *domain,
        GLogLevelFlags  level,
        const char     *message,
        gpointer        user_data)
{
  if (current != NULL)
    g_ptr_array_add (current->logged, g_strdup (message));
  g_log_default_handler (domain, level, message, user_data);
}

static gboolean
logged (Fixture    *f,
        const char *start,
        const char *part)
{
  for (guint i = 0; i < f->logged->len; i++)
    {
      const char *message = f->logged->pdata[i];

      if (g_str_has_prefix (message, start) && (part == NULL || strstr (message, part) != NULL))
        return TRUE;
    }
  return FALSE;
}

typedef struct
{
  Fixture *f;
  const char *start;
  const char *part;
} LogWait;

static gboolean
logged_cb (gpointer data)
{
  LogWait *wait = data;

  return logged (wait->f, wait->start, wait->part);
}

static void
wait_logged (Fixture    *f,
             const char *start,
             const char *part)
{
  LogWait wait = { f, start, part };

  if (!rndz_test_run_until (NULL, logged_cb, &wait, WAIT_MS))
    g_error ("No message “%s…” with %s within %u ms", start, part, WAIT_MS);
}

static gint
rewrite_cb (RndzMessage *msg,
            gpointer     user_data)
{
  Fixture *f = user_data;

  if (msg->type == f->swap && msg->fp[0] != '\0')
    g_strlcpy (msg->fp, rndz_identity_get_fingerprint (f->mallory_identity), sizeof msg->fp);
  if (msg->type == RNDZ_MESSAGE_REDIRECT)
    return f->hold_ms;
  return 0;
}

static RndzClient *
client_new (Fixture    *f,
            const char *id)
{
  g_autofree char *address = rndz_test_proxy_get_address (f->proxy);
  const char *servers[2] = { address, NULL };
  RndzClient *client = rndz_client_new (id, servers);

  rndz_client_set_timeout (client, 5000);
  if (f->params->relayed)
    rndz_client_set_direct_timeout (client, 200);
  return client;
}

static void
fixture_setup (Fixture       *f,
               gconstpointer  data)
{
  guint16 relay_port = 0;
  guint16 port;

  f->params = data;
  f->logged = g_ptr_array_new_with_free_func (g_free);
  current = f;
  f->server = rndz_server_new ();
  if (f->params->relayed)
    {
      relay_port = rndz_test_free_port ();
      rndz_server_set_relay_port (f->server, relay_port);
    }
  port = rndz_test_server_listen (f->server, G_SOCKET_FAMILY_IPV4, 0);
  f->proxy = rndz_test_proxy_new (f->params->transport, port, TRUE);
  rndz_test_proxy_set_rewrite (f->proxy, rewrite_cb, f);
  if (f->params->relayed)
    {
      f->relay = rndz_test_proxy_new (f->params->transport, relay_port, FALSE);
      rndz_test_proxy_set_relay_port (f->proxy, rndz_test_proxy_get_port (f->relay));
    }

  f->alice_identity = rndz_identity_new (NULL);
  f->bob_identity = rndz_identity_new (NULL);
  f->mallory_identity = rndz_identity_new (NULL);
  g_assert_nonnull (f->mallory_identity);
  f->alice = client_new (f, "alice");
  f->bob = client_new (f, "bob");
  rndz_client_set_identity (f->alice, f->alice_identity);
  rndz_client_set_identity (f->bob, f->bob_identity);
  rndz_connect_try_direct = !f->params->relayed;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  rndz_connect_try_direct = TRUE;
  /* An accept still under way ends now, into the fixture */
  rndz_client_stop (f->alice);
  rndz_test_drain (NULL);
  g_clear_object (&f->accepted);
  g_clear_object (&f->listening);
  g_clear_object (&f->bob);
  g_clear_object (&f->alice);
  rndz_test_drain (NULL);
  g_clear_pointer (&f->relay, rndz_test_proxy_free);
  g_clear_pointer (&f->proxy, rndz_test_proxy_free);
  g_clear_object (&f->server);
  g_clear_object (&f->mallory_identity);
  g_clear_object (&f->bob_identity);
  g_clear_object (&f->alice_identity);
  rndz_test_drain (NULL);
  current = NULL;
  g_ptr_array_unref (f->logged);
}

static gboolean
is_udp (Fixture *f)
{
  return f->params->transport == RNDZ_TRANSPORT_UDP;
}

static void
alice_listen (Fixture *f)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  if (is_udp (f))
    {
      rndz_client_listen_udp_async (f->alice, NULL, rndz_test_async_cb, &result);
      f->listening = rndz_client_listen_udp_finish (f->alice, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                    &error);
    }
  else
    {
      rndz_client_listen_tcp_async (f->alice, NULL, rndz_test_async_cb, &result);
      rndz_client_listen_tcp_finish (f->alice, rndz_test_wait_async (NULL, &result, WAIT_MS), &error);
    }
  g_assert_no_error (error);
}

/* Into f->accepted, which the teardown waits for */
static void
alice_accept_async (Fixture *f)
{
  if (is_udp (f))
    rndz_client_accept_dtls_async (f->alice, NULL, rndz_test_async_cb, &f->accepted);
  else
    rndz_client_accept_tls_async (f->alice, NULL, rndz_test_async_cb, &f->accepted);
}

static GObject *
alice_accept_finish (Fixture  *f,
                     GError  **error)
{
  g_autoptr(GAsyncResult) result = rndz_test_wait_async (NULL, &f->accepted, WAIT_MS);

  f->accepted = NULL;
  if (is_udp (f))
    return (GObject *) rndz_client_accept_dtls_finish (f->alice, result, NULL, error);
  return (GObject *) rndz_client_accept_tls_finish (f->alice, result, NULL, error);
}

static GObject *
bob_connect (Fixture     *f,
             const char  *pin,
             GError     **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  if (is_udp (f))
    {
      rndz_client_connect_dtls_async (f->bob, "alice", pin, NULL, rndz_test_async_cb, &result);
      return (GObject *) rndz_client_connect_dtls_finish (f->bob, rndz_test_wait_async (NULL, &result, 2 * WAIT_MS),
                                                          error);
    }
  rndz_client_connect_tls_async (f->bob, "alice", pin, NULL, rndz_test_async_cb, &result);
  return (GObject *) rndz_client_connect_tls_finish (f->bob, rndz_test_wait_async (NULL, &result, 2 * WAIT_MS),
                                                     error);
}

/* Alice's accept gives no channel for a while: it may fail, not succeed */
static void
assert_no_channel (Fixture *f)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;

  if (!rndz_test_run_until_set (NULL, (gpointer *) &f->accepted, QUIET_MS))
    return;
  channel = alice_accept_finish (f, &error);
  g_assert_null (channel);
  g_assert_nonnull (error);
}

/* A server that swaps fingerprints */

static void
test_redirect_swapped (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A server that gives the connector another fingerprint in the redirect: "
                  "the connector's handshake fails with IDENTITY_MISMATCH, and the "
                  "listener gets no channel");

  f->swap = RNDZ_MESSAGE_REDIRECT;
  alice_listen (f);
  alice_accept_async (f);

  channel = bob_connect (f, NULL, &error);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_null (channel);
  /* The handshake saw alice's certificate and refused it */
  g_assert_nonnull (strstr (error->message, rndz_identity_get_fingerprint (f->alice_identity)));
  assert_no_channel (f);
}

/* Bob's side of a handshake that alice refused. Over DTLS 1.2 alice's
 * alert ends bob's handshake: HANDSHAKE_FAILED. Over TLS 1.3 the client
 * is done before the server judges its certificate (rndz-tls.c): bob
 * gets a channel, and learns it at his first read (or write), while
 * what he wrote reaches nobody. */
static void
assert_connector_refused (Fixture *f,
                          GObject *channel,
                          GError  *error)
{
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) read_error = NULL;

  g_test_message ("The connector: %s", channel != NULL ? "a channel, dead at its first read"
                                                      : error->message);
  if (is_udp (f))
    {
      g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
      g_assert_null (channel);
      return;
    }
  g_assert_no_error (error);
  g_assert_nonnull (channel);
  /* Alice may have closed the path already: the write may fail too */
  g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (channel)), SECRET,
                             strlen (SECRET), NULL, NULL, NULL);
  bytes = rndz_test_channel_receive (channel, 64, WAIT_MS, &read_error);
  g_assert_nonnull (read_error);
  g_assert_null (bytes);
}

static void
test_fsync_swapped (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A server that gives the listener another fingerprint in the fsync: "
                  "the listener's handshake fails with IDENTITY_MISMATCH, no channel "
                  "comes to it, and the connector fails or gets a dead channel");

  f->swap = RNDZ_MESSAGE_FSYNC;
  alice_listen (f);
  alice_accept_async (f);

  channel = bob_connect (f, NULL, &error);
  assert_connector_refused (f, channel, error);
  assert_no_channel (f);
  /* Alice's handshake, as the server, refused bob's certificate: the
   * message names what she expected (mallory) and what came (bob) */
  wait_logged (f, "No secure channel with “bob”", rndz_identity_get_fingerprint (f->bob_identity));
  g_assert_true (logged (f, "No secure channel with “bob”",
                         rndz_identity_get_fingerprint (f->mallory_identity)));
}

/* The relay carries ciphertext only */

static void
test_relay_ciphertext (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GObject) bob_channel = NULL;
  g_autoptr(GObject) alice_channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Through the relay, a secure exchange crosses both ways, and its "
                  "plaintext never appears in what the relay carried");

  alice_listen (f);
  alice_accept_async (f);
  bob_channel = bob_connect (f, NULL, &error);
  g_assert_no_error (error);
  alice_channel = alice_accept_finish (f, &error);
  g_assert_no_error (error);

  rndz_test_channel_send (bob_channel, SECRET " from bob");
  rndz_test_channel_expect (alice_channel, SECRET " from bob", WAIT_MS);
  rndz_test_channel_send (alice_channel, SECRET " from alice");
  rndz_test_channel_expect (bob_channel, SECRET " from alice", WAIT_MS);

  /* The relay carried the handshake and both records, at least */
  g_assert_cmpuint (rndz_test_proxy_get_carried (f->relay), >, 2 * strlen (SECRET));
  g_assert_false (rndz_test_proxy_has_carried (f->relay, SECRET));
  g_assert_false (rndz_test_proxy_has_carried (f->relay, "plaintext-secret"));
}

static gboolean
relay_has_secret_cb (gpointer data)
{
  return rndz_test_proxy_has_carried (data, SECRET);
}

static void
test_relay_plain (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("The control of relay-ciphertext: the plaintext of a plain "
                  "connection through the same relay is seen in what it carried");

  rndz_client_set_identity (f->alice, NULL);
  alice_listen (f);
  if (is_udp (f))
    {
      g_autoptr(GSocket) socket = NULL;

      rndz_client_connect_udp_async (f->bob, "alice", NULL, rndz_test_async_cb, &result);
      socket = rndz_client_connect_udp_finish (f->bob, rndz_test_wait_async (NULL, &result, 2 * WAIT_MS),
                                               &error);
      g_assert_no_error (error);
      g_assert_cmpint (g_socket_send (socket, SECRET, strlen (SECRET), NULL, &error), ==,
                       strlen (SECRET));
    }
  else
    {
      g_autoptr(GSocketConnection) connection = NULL;
      GOutputStream *out;

      rndz_client_accept_async (f->alice, NULL, rndz_test_async_cb, &f->accepted);
      rndz_client_connect_tcp_async (f->bob, "alice", NULL, rndz_test_async_cb, &result);
      connection = rndz_client_connect_tcp_finish (f->bob, rndz_test_wait_async (NULL, &result, 2 * WAIT_MS),
                                                   &error);
      g_assert_no_error (error);
      out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
      g_assert_true (g_output_stream_write_all (out, SECRET, strlen (SECRET), NULL, NULL, &error));
    }
  g_assert_no_error (error);
  g_assert_true (rndz_test_run_until (NULL, relay_has_secret_cb, f->relay, WAIT_MS));
}

/* Over UDP: a path before the redirect */

static void
test_held (Fixture       *f,
           gconstpointer  data)
{
  g_autoptr(GObject) bob_channel = NULL;
  g_autoptr(GObject) alice_channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A direct path that works before the redirect comes (held back "
                  "300 ms) waits for the redirect's fingerprint, then the channel is up");

  f->hold_ms = 300;
  alice_listen (f);
  alice_accept_async (f);
  bob_channel = bob_connect (f, rndz_identity_get_fingerprint (f->alice_identity), &error);
  g_assert_no_error (error);
  alice_channel = alice_accept_finish (f, &error);
  g_assert_no_error (error);
  /* The path was held: alice's punch came first */
  g_assert_true (logged (f, "A path to “alice” works; waiting for its fingerprint", NULL));
  g_assert_cmpstr (rndz_dtls_channel_get_peer_fingerprint (RNDZ_DTLS_CHANNEL (bob_channel)), ==,
                   rndz_identity_get_fingerprint (f->alice_identity));

  rndz_test_channel_send (bob_channel, "hello alice");
  rndz_test_channel_expect (alice_channel, "hello alice", WAIT_MS);
}

static void
test_held_swapped (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A path held for the redirect, whose fingerprint is not the pin: "
                  "IDENTITY_MISMATCH, and no channel on either side");

  f->hold_ms = 300;
  f->swap = RNDZ_MESSAGE_REDIRECT;
  alice_listen (f);
  alice_accept_async (f);
  channel = bob_connect (f, rndz_identity_get_fingerprint (f->alice_identity), &error);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_null (channel);
  /* The rendezvous refused it, before any handshake */
  g_assert_nonnull (strstr (error->message, "is not the one expected"));
  g_assert_nonnull (strstr (error->message, rndz_identity_get_fingerprint (f->mallory_identity)));
  g_assert_true (logged (f, "A path to “alice” works; waiting for its fingerprint", NULL));
  assert_no_channel (f);
}

static const Params udp = { RNDZ_TRANSPORT_UDP, FALSE };
static const Params tcp = { RNDZ_TRANSPORT_TCP, FALSE };
static const Params udp_relayed = { RNDZ_TRANSPORT_UDP, TRUE };
static const Params tcp_relayed = { RNDZ_TRANSPORT_TCP, TRUE };

static void
add (const char     *name,
     const Params   *params,
     void          (*func) (Fixture *, gconstpointer))
{
  g_autofree char *path = g_strdup_printf ("/secure-mitm/%s%s/%s",
                                           params->transport == RNDZ_TRANSPORT_UDP ? "udp" : "tcp",
                                           params->relayed ? "-relayed" : "", name);

  g_test_add (path, Fixture, params, fixture_setup, func, fixture_teardown);
}

int
main (int   argc,
      char *argv[])
{
  const Params *direct[] = { &udp, &tcp };
  const Params *relayed[] = { &udp_relayed, &tcp_relayed };

  g_test_init (&argc, &argv, NULL);
  g_log_set_handler ("Rndz", G_LOG_LEVEL_MASK, log_cb, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (direct); i++)
    {
      add ("redirect-swapped", direct[i], test_redirect_swapped);
      add ("fsync-swapped", direct[i], test_fsync_swapped);
      add ("redirect-swapped", relayed[i], test_redirect_swapped);
      add ("fsync-swapped", relayed[i], test_fsync_swapped);
      add ("relay-ciphertext", relayed[i], test_relay_ciphertext);
      add ("relay-plain", relayed[i], test_relay_plain);
    }

  add ("held", &udp, test_held);
  add ("held-swapped", &udp, test_held_swapped);

  return g_test_run ();
}
