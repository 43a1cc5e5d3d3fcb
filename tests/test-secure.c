/* test-secure.c: secure connections through the rendezvous (issue 15)
 *
 * SPDX-License-Identifier: MIT
 *
 * Alice listens with an identity, bob reaches her with
 * rndz_client_connect_tls() or rndz_client_connect_dtls(), over a real
 * RndzServer on loopback, directly or through its relay. Each side must
 * see the other's fingerprint, data must cross both ways, and every
 * failure the API promises must come: a wrong pin, a listener without
 * an identity, a requester refused by its fingerprint. A server that
 * swaps fingerprints, and a relay that must carry ciphertext only, are
 * in test-secure-mitm.c (a proxy between the peers and the server).
 */

#include <gio/gio.h>
#include <string.h>

#include "rndz-test-util.h"
#include "rndz-test-channel.h"
#include "rndz-connect-private.h"
#include "rndz-message-private.h"
#include "rndz-secure-handshake-private.h"

#define WAIT_MS 8000

typedef struct
{
  RndzTransport transport;
  gboolean relayed;
} Params;

typedef struct
{
  const Params *params;
  RndzServer *server;
  char *address;
  RndzIdentity *alice_identity;
  RndzIdentity *bob_identity;
  RndzClient *alice;            /* listens */
  RndzClient *bob;              /* connects */
  GSocket *listening;           /* UDP: what listen_udp returned */
} Fixture;

static RndzClient *
client_new (Fixture    *f,
            const char *id,
            const char *server)
{
  const char *servers[2] = { server != NULL ? server : f->address, NULL };
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
  g_autoptr(GError) error = NULL;
  guint16 port;

  f->params = data;
  f->server = rndz_server_new ();
  if (f->params->relayed)
    rndz_server_set_relay_port (f->server, rndz_test_free_port ());
  port = rndz_test_server_listen (f->server, G_SOCKET_FAMILY_IPV4, 0);
  f->address = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, port);

  f->alice_identity = rndz_identity_new (&error);
  g_assert_no_error (error);
  f->bob_identity = rndz_identity_new (&error);
  g_assert_no_error (error);
  f->alice = client_new (f, "alice", NULL);
  f->bob = client_new (f, "bob", NULL);
  rndz_client_set_identity (f->bob, f->bob_identity);
  rndz_connect_try_direct = !f->params->relayed;
}

static void
fixture_teardown (Fixture       *f,
                  gconstpointer  data)
{
  rndz_connect_try_direct = TRUE;
  g_clear_object (&f->listening);
  g_clear_object (&f->bob);
  g_clear_object (&f->alice);
  g_clear_object (&f->bob_identity);
  g_clear_object (&f->alice_identity);
  g_clear_object (&f->server);
  g_clear_pointer (&f->address, g_free);
  rndz_test_drain (NULL);
}

static void
alice_listen (Fixture    *f,
              RndzClient *alice)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;

  if (f->params->transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_listen_udp_async (alice, NULL, rndz_test_async_cb, &result);
      f->listening = rndz_client_listen_udp_finish (alice, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                    &error);
      g_assert_no_error (error);
    }
  else
    {
      rndz_client_listen_tcp_async (alice, NULL, rndz_test_async_cb, &result);
      g_assert_true (rndz_client_listen_tcp_finish (alice, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                    &error));
      g_assert_no_error (error);
    }
}

/* Bob reaches alice (pinned to @pin if set): the channel, or NULL and
 * @error */
static GObject *
bob_connect (Fixture     *f,
             RndzClient  *bob,
             const char  *pin,
             GError     **error)
{
  g_autoptr(GAsyncResult) result = NULL;

  if (f->params->transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_connect_dtls_async (bob, "alice", pin, NULL, rndz_test_async_cb, &result);
      return (GObject *) rndz_client_connect_dtls_finish (bob, rndz_test_wait_async (NULL, &result, 2 * WAIT_MS),
                                                          error);
    }
  rndz_client_connect_tls_async (bob, "alice", pin, NULL, rndz_test_async_cb, &result);
  return (GObject *) rndz_client_connect_tls_finish (bob, rndz_test_wait_async (NULL, &result, 2 * WAIT_MS),
                                                     error);
}

/* Alice's accept, started before bob connects */
static void
alice_accept_async (Fixture       *f,
                    GCancellable  *cancellable,
                    GAsyncResult **result)
{
  if (f->params->transport == RNDZ_TRANSPORT_UDP)
    rndz_client_accept_dtls_async (f->alice, cancellable, rndz_test_async_cb, result);
  else
    rndz_client_accept_tls_async (f->alice, cancellable, rndz_test_async_cb, result);
}

/* An accept whose result nobody waits for: over TCP, it starts the
 * listener's handshakes */
static void
alice_accept_background (Fixture *f)
{
  if (f->params->transport == RNDZ_TRANSPORT_UDP)
    rndz_client_accept_dtls_async (f->alice, NULL, NULL, NULL);
  else
    rndz_client_accept_tls_async (f->alice, NULL, NULL, NULL);
}

static GObject *
alice_accept_finish (Fixture       *f,
                     GAsyncResult  *result,
                     char         **peer_id,
                     GError       **error)
{
  if (f->params->transport == RNDZ_TRANSPORT_UDP)
    return (GObject *) rndz_client_accept_dtls_finish (f->alice, result, peer_id, error);
  return (GObject *) rndz_client_accept_tls_finish (f->alice, result, peer_id, error);
}

static void
test_exchange (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GAsyncResult) accepted = NULL;
  g_autoptr(GObject) bob_channel = NULL;
  g_autoptr(GObject) alice_channel = NULL;
  g_autofree char *peer_id = NULL;
  g_autofree char *seen_by_bob = NULL;
  g_autofree char *seen_by_alice = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A secure connection through the rendezvous: each side sees the "
                  "other's fingerprint, and data crosses both ways");

  rndz_client_set_identity (f->alice, f->alice_identity);
  alice_listen (f, f->alice);
  alice_accept_async (f, NULL, &accepted);

  bob_channel = bob_connect (f, f->bob, NULL, &error);
  g_assert_no_error (error);
  alice_channel = alice_accept_finish (f, rndz_test_wait_async (NULL, &accepted, WAIT_MS), &peer_id,
                                       &error);
  g_assert_no_error (error);
  g_assert_cmpstr (peer_id, ==, "bob");

  seen_by_bob = rndz_test_peer_fingerprint (bob_channel);
  seen_by_alice = rndz_test_peer_fingerprint (alice_channel);
  g_assert_cmpstr (seen_by_bob, ==, rndz_identity_get_fingerprint (f->alice_identity));
  g_assert_cmpstr (seen_by_alice, ==, rndz_identity_get_fingerprint (f->bob_identity));

  rndz_test_channel_send (bob_channel, "hello alice");
  rndz_test_channel_expect (alice_channel, "hello alice", WAIT_MS);
  rndz_test_channel_send (alice_channel, "hello bob");
  rndz_test_channel_expect (bob_channel, "hello bob", WAIT_MS);
}

static void
test_pinned (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A connector that pins the listener's fingerprint reaches it");

  rndz_client_set_identity (f->alice, f->alice_identity);
  alice_listen (f, f->alice);
  alice_accept_background (f);

  channel = bob_connect (f, f->bob, rndz_identity_get_fingerprint (f->alice_identity), &error);
  g_assert_no_error (error);
  g_assert_nonnull (channel);
}

static void
test_wrong_pin (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  g_test_summary ("A connector that pins another fingerprint fails with "
                  "IDENTITY_MISMATCH, within 3 s");

  rndz_client_set_identity (f->alice, f->alice_identity);
  alice_listen (f, f->alice);

  start = g_get_monotonic_time ();
  channel = bob_connect (f, f->bob, rndz_identity_get_fingerprint (f->bob_identity), &error);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_null (channel);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 3 * G_USEC_PER_SEC);
}

static void
test_plain_listener (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A listener without an identity: a secure connector fails with NOT_SECURE");

  alice_listen (f, f->alice);
  channel = bob_connect (f, f->bob, NULL, &error);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_NOT_SECURE);
  g_assert_null (rndz_client_get_identity (f->alice));
}

static void
test_plain_connector (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GObject) path = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzClient) carol = client_new (f, "carol", NULL);

  g_test_summary ("A listener with an identity does not answer a plain connector");

  rndz_client_set_identity (f->alice, f->alice_identity);
  rndz_server_set_forward_timeout (f->server, 1000);
  alice_listen (f, f->alice);
  if (f->params->transport == RNDZ_TRANSPORT_UDP)
    {
      rndz_client_connect_udp_async (carol, "alice", NULL, rndz_test_async_cb, &result);
      path = (GObject *) rndz_client_connect_udp_finish (carol, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                         &error);
    }
  else
    {
      rndz_client_connect_tcp_async (carol, "alice", NULL, rndz_test_async_cb, &result);
      path = (GObject *) rndz_client_connect_tcp_finish (carol, rndz_test_wait_async (NULL, &result, WAIT_MS),
                                                         &error);
    }
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER);
}

static gboolean
refuse_bob_cb (RndzClient *client,
               const char *peer_id,
               const char *fingerprint,
               gpointer    user_data)
{
  guint *asked = user_data;

  (*asked)++;
  return !g_str_equal (peer_id, "bob");
}

static void
test_allowed (Fixture       *f,
              gconstpointer  data)
{
  const char *allowed[] = { NULL, NULL };
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzIdentity) other = rndz_identity_new (NULL);
  g_autoptr(RndzClient) carol = client_new (f, "carol", NULL);
  g_autofree char *upper = NULL;
  guint asked = 0;

  g_test_summary ("A listener lets in only the fingerprints it allows, and those its "
                  "authorize-fingerprint handler accepts");

  rndz_server_set_forward_timeout (f->server, 1000);
  rndz_client_set_identity (f->alice, f->alice_identity);
  /* Any form rndz_fingerprint_normalize() takes; stored in the text form */
  upper = g_ascii_strup (rndz_identity_get_fingerprint (other), -1);
  allowed[0] = upper;
  rndz_client_set_allowed_fingerprints (f->alice, allowed);
  g_assert_cmpstr (rndz_client_get_allowed_fingerprints (f->alice)[0], ==,
                   rndz_identity_get_fingerprint (other));
  alice_listen (f, f->alice);

  channel = bob_connect (f, f->bob, NULL, &error);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER);
  g_clear_error (&error);

  /* Allowed: bob's fingerprint, but the handler says no to bob */
  allowed[0] = rndz_identity_get_fingerprint (f->bob_identity);
  rndz_client_set_allowed_fingerprints (f->alice, allowed);
  g_signal_connect (f->alice, "authorize-fingerprint", G_CALLBACK (refuse_bob_cb), &asked);
  channel = bob_connect (f, f->bob, NULL, &error);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_PEER_NO_ANSWER);
  g_assert_cmpuint (asked, ==, 1);
  g_clear_error (&error);

  /* Carol with bob's identity: allowed, and the handler takes carol */
  rndz_client_set_identity (carol, f->bob_identity);
  alice_accept_background (f);
  channel = bob_connect (f, carol, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (asked, ==, 2);
}

static void
test_fresh_identity (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzClient) carol = client_new (f, "carol", NULL);
  g_autoptr(GAsyncResult) accepted = NULL;
  g_autoptr(GObject) alice_channel = NULL;
  g_autofree char *seen = NULL;

  g_test_summary ("A client without an identity gets a fresh one at its first secure "
                  "call, and peers see it");

  alice_listen (f, f->alice);
  alice_accept_async (f, NULL, &accepted);
  g_assert_nonnull (rndz_client_get_identity (f->alice));

  g_assert_null (rndz_client_get_identity (carol));
  channel = bob_connect (f, carol, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (rndz_client_get_identity (carol));
  alice_channel = alice_accept_finish (f, rndz_test_wait_async (NULL, &accepted, WAIT_MS), NULL,
                                       &error);
  g_assert_no_error (error);
  seen = rndz_test_peer_fingerprint (alice_channel);
  g_assert_cmpstr (seen, ==, rndz_identity_get_fingerprint (rndz_client_get_identity (carol)));
}

static void
test_invalid_pin (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("A pin that is not a fingerprint is refused at once");

  channel = bob_connect (f, f->bob, "not a fingerprint", &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
}

static void
test_handshake_timeout (void)
{
  g_autoptr(RndzIdentity) identity = rndz_identity_new (NULL);
  g_autoptr(GSocketListener) listener = g_socket_listener_new ();
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GSocketConnection) silent = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GObject) channel = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;
  guint16 port;

  g_test_summary ("A TLS handshake whose peer never answers fails with HANDSHAKE_FAILED "
                  "after its timeout");

  port = g_socket_listener_add_any_inet_port (listener, NULL, &error);
  g_assert_no_error (error);
  address = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);
  g_socket_client_set_enable_proxy (client, FALSE);
  connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, &error);
  g_assert_no_error (error);
  silent = g_socket_listener_accept (listener, NULL, NULL, &error);
  g_assert_no_error (error);

  start = g_get_monotonic_time ();
  rndz_secure_handshake_async (G_OBJECT (connection), FALSE, identity,
                               rndz_identity_get_fingerprint (identity), 300, NULL,
                               rndz_test_async_cb, &result);
  channel = rndz_secure_handshake_finish (rndz_test_wait_async (NULL, &result, WAIT_MS), &error);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
  g_assert_null (channel);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 300 * 1000);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 2 * G_USEC_PER_SEC);
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
  g_autofree char *path = g_strdup_printf ("/secure/%s%s/%s",
                                           params->transport == RNDZ_TRANSPORT_UDP ? "udp" : "tcp",
                                           params->relayed ? "-relayed" : "", name);

  g_test_add (path, Fixture, params, fixture_setup, func, fixture_teardown);
}

int
main (int   argc,
      char *argv[])
{
  const Params *both[] = { &udp, &tcp };

  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (both); i++)
    {
      add ("exchange", both[i], test_exchange);
      add ("pinned", both[i], test_pinned);
      add ("wrong-pin", both[i], test_wrong_pin);
      add ("plain-listener", both[i], test_plain_listener);
      add ("plain-connector", both[i], test_plain_connector);
      add ("allowed", both[i], test_allowed);
      add ("fresh-identity", both[i], test_fresh_identity);
      add ("invalid-pin", both[i], test_invalid_pin);
    }
  add ("exchange", &udp_relayed, test_exchange);
  g_test_add_func ("/secure/handshake-timeout", test_handshake_timeout);
  add ("exchange", &tcp_relayed, test_exchange);

  return g_test_run ();
}
