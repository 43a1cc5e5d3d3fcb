/* test-dtls.c: secure channels (DTLS 1.2) over loopback UDP
 *
 * SPDX-License-Identifier: MIT
 *
 * Two peers, A (the DTLS client, the connector) and B (the server, the
 * listener), on connected UDP sockets of 127.0.0.1; no rendezvous. Some
 * tests put a man in the middle: a forwarder with a socket connected to
 * each peer, which can drop, corrupt, inject and count datagrams.
 */

#include <rndz-glib/rndz.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-dtls-channel-private.h"
#include "rndz-source-private.h"
#include "rndz-test-util.h"

#define HANDSHAKE_MS 10000

static RndzIdentity *
test_identity_new (void)
{
  g_autoptr(GError) error = NULL;
  RndzIdentity *identity = rndz_identity_new (&error);

  g_assert_no_error (error);
  return identity;
}

#define FP(identity) rndz_identity_get_fingerprint (identity)

/* Sockets */

static GSocket *
bound_socket (guint16 *port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) any = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  g_autoptr(GSocketAddress) local = NULL;
  GSocket *socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                  G_SOCKET_PROTOCOL_UDP, &error);

  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  g_assert_true (g_socket_bind (socket, any, FALSE, &error));
  g_assert_no_error (error);
  local = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  *port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
  return socket;
}

static void
connect_to (GSocket *socket,
            guint16  port)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) to = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, port);

  g_assert_true (g_socket_connect (socket, to, NULL, &error));
  g_assert_no_error (error);
}

/* The man in the middle */

enum { TO_B, TO_A };

typedef struct
{
  GSocket *side[2];             /* [TO_B] connected to A: what A sends comes here */
  GSource *source[2];
  gboolean stopped;             /* drops everything */
  guint loss_percent;           /* drops at random, both ways */
  GRand *rand;
  guint tamper[2];              /* datagrams still to corrupt */
  guint forwarded[2];
  guint small[2];               /* forwarded datagrams of up to 64 bytes: keepalives */
  guint lost[2];
} Forwarder;

static void
forward_one (Forwarder *fwd,
             guint      way,
             guint8    *buf,
             gssize     len)
{
  if (fwd->stopped || (fwd->loss_percent > 0 &&
                       (guint) g_rand_int_range (fwd->rand, 0, 100) < fwd->loss_percent))
    {
      fwd->lost[way]++;
      return;
    }
  if (fwd->tamper[way] > 0 && len > 0)
    {
      fwd->tamper[way]--;
      buf[len - 20 > 0 ? len - 20 : 0] ^= 0x40;
    }
  g_socket_send (fwd->side[1 - way], (char *) buf, len, NULL, NULL);
  fwd->forwarded[way]++;
  if (len <= 64)
    fwd->small[way]++;
}

static gboolean
forwarder_readable (GSocket      *socket,
                    GIOCondition  condition,
                    gpointer      user_data)
{
  Forwarder *fwd = user_data;
  guint way = socket == fwd->side[TO_B] ? TO_B : TO_A;
  guint8 buf[4096];
  gssize len;

  while ((len = g_socket_receive (socket, (char *) buf, sizeof buf, NULL, NULL)) >= 0)
    forward_one (fwd, way, buf, len);
  return G_SOURCE_CONTINUE;
}

/* Injects @len bytes to the peer on @way, as if from the other peer */
static void
forwarder_inject (Forwarder    *fwd,
                  guint         way,
                  const guint8 *data,
                  gsize         len)
{
  g_assert_cmpint (g_socket_send (fwd->side[1 - way], (const char *) data, len, NULL, NULL),
                   ==, (gssize) len);
}

static void
forwarder_free (Forwarder *fwd)
{
  for (guint i = 0; i < 2; i++)
    {
      g_source_destroy (fwd->source[i]);
      g_source_unref (fwd->source[i]);
      g_object_unref (fwd->side[i]);
    }
  g_rand_free (fwd->rand);
  g_free (fwd);
}

/* Fixture */

typedef struct
{
  RndzIdentity *id_a;
  RndzIdentity *id_b;
  GSocket *socket_a;
  GSocket *socket_b;
  Forwarder *fwd;
  RndzDtlsChannel *a;
  RndzDtlsChannel *b;
  GError *error_a;
  GError *error_b;
  guint32 loss_seed;            /* for the forwarder's losses; 0: any */
} Fixture;

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  f->id_a = test_identity_new ();
  f->id_b = test_identity_new ();
}

static void clear_pair (Fixture *f);

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  clear_pair (f);
  g_clear_object (&f->id_a);
  g_clear_object (&f->id_b);
}

/* A and B, straight or through a forwarder */
static void
make_sockets (Fixture  *f,
              gboolean  forwarder)
{
  guint16 port_a, port_b, port_fa, port_fb;

  f->socket_a = bound_socket (&port_a);
  f->socket_b = bound_socket (&port_b);
  if (!forwarder)
    {
      connect_to (f->socket_a, port_b);
      connect_to (f->socket_b, port_a);
      return;
    }
  f->fwd = g_new0 (Forwarder, 1);
  f->fwd->rand = g_rand_new_with_seed (f->loss_seed != 0 ? f->loss_seed : (guint32) g_test_rand_int ());
  f->fwd->side[TO_B] = bound_socket (&port_fa);
  f->fwd->side[TO_A] = bound_socket (&port_fb);
  connect_to (f->socket_a, port_fa);
  connect_to (f->fwd->side[TO_B], port_a);
  connect_to (f->fwd->side[TO_A], port_b);
  connect_to (f->socket_b, port_fb);
  for (guint i = 0; i < 2; i++)
    f->fwd->source[i] = rndz_socket_source_add (f->fwd->side[i], NULL, forwarder_readable,
                                                f->fwd, "test forwarder");
}

static void
start_handshake (GSocket       *socket,
                 gboolean       server,
                 RndzIdentity  *id,
                 const char    *expected,
                 guint          timeout_ms,
                 GCancellable  *cancellable,
                 GAsyncResult **result)
{
  rndz_dtls_channel_handshake_async (socket, server, id, expected, timeout_ms, cancellable,
                                     rndz_test_async_cb, result);
}

/* Both handshakes, each side expecting the other's identity unless
 * told otherwise; the channels (or errors) land in @f */
static void
handshake_expecting (Fixture    *f,
                     const char *a_expects,
                     const char *b_expects,
                     guint       timeout_ms)
{
  GAsyncResult *result_a = NULL;
  GAsyncResult *result_b = NULL;

  start_handshake (f->socket_b, TRUE, f->id_b, b_expects, timeout_ms, NULL, &result_b);
  start_handshake (f->socket_a, FALSE, f->id_a, a_expects, timeout_ms, NULL, &result_a);
  rndz_test_wait_async (NULL, &result_a, timeout_ms + 5000);
  rndz_test_wait_async (NULL, &result_b, timeout_ms + 5000);
  f->a = rndz_dtls_channel_handshake_finish (result_a, &f->error_a);
  f->b = rndz_dtls_channel_handshake_finish (result_b, &f->error_b);
  g_object_unref (result_a);
  g_object_unref (result_b);
}

static void
handshake (Fixture *f)
{
  handshake_expecting (f, FP (f->id_b), FP (f->id_a), HANDSHAKE_MS);
  g_assert_no_error (f->error_a);
  g_assert_no_error (f->error_b);
  g_assert_nonnull (f->a);
  g_assert_nonnull (f->b);
}

static void
send_text (RndzDtlsChannel *channel,
           const char      *text)
{
  g_autoptr(GBytes) bytes = g_bytes_new (text, strlen (text));
  g_autoptr(GError) error = NULL;

  g_assert_true (rndz_dtls_channel_send_bytes (channel, bytes, NULL, &error));
  g_assert_no_error (error);
}

/* The next datagram @channel receives, within the bound */
static char *
receive_text (RndzDtlsChannel *channel)
{
  GAsyncResult *result = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;

  rndz_dtls_channel_receive_bytes_async (channel, NULL, rndz_test_async_cb, &result);
  rndz_test_wait_async (NULL, &result, RNDZ_TEST_TIMEOUT_MS);
  bytes = rndz_dtls_channel_receive_bytes_finish (channel, result, &error);
  g_object_unref (result);
  g_assert_no_error (error);
  return g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
}

/* Nothing comes to @channel for @ms */
static void
expect_nothing (RndzDtlsChannel *channel,
                guint            ms)
{
  rndz_test_run_for (NULL, ms);
  g_assert_cmpint (g_datagram_based_condition_check (G_DATAGRAM_BASED (channel), G_IO_IN),
                   ==, 0);
}

static void
test_handshake_bytes (Fixture       *f,
                      gconstpointer  data)
{
  g_autofree char *at_b = NULL;
  g_autofree char *at_a = NULL;
  g_autoptr(GBytes) sync_bytes = NULL;
  g_autoptr(GError) error = NULL;

  g_test_summary ("Handshake with both certificates checked, then data both ways (GBytes)");
  make_sockets (f, FALSE);
  handshake (f);

  g_assert_cmpstr (rndz_dtls_channel_get_peer_fingerprint (f->a), ==, FP (f->id_b));
  g_assert_cmpstr (rndz_dtls_channel_get_peer_fingerprint (f->b), ==, FP (f->id_a));
  g_assert_true (rndz_dtls_channel_get_socket (f->a) == f->socket_a);
  g_assert_false (rndz_dtls_channel_is_closed (f->a));

  send_text (f->a, "hello from A");
  at_b = receive_text (f->b);
  g_assert_cmpstr (at_b, ==, "hello from A");
  send_text (f->b, "hello from B");
  at_a = receive_text (f->a);
  g_assert_cmpstr (at_a, ==, "hello from B");

  /* The blocking receive */
  send_text (f->a, "sync");
  sync_bytes = rndz_dtls_channel_receive_bytes (f->b, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (sync_bytes, NULL), g_bytes_get_size (sync_bytes), "sync", 4);
}

static gboolean
datagram_ready (GDatagramBased *datagram_based,
                GIOCondition    condition,
                gpointer        user_data)
{
  *(GIOCondition *) user_data = condition;
  return G_SOURCE_REMOVE;
}

static void
test_datagram_based (Fixture       *f,
                     gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSource) source = NULL;
  GDatagramBased *a, *b;
  GIOCondition ready = 0;
  char first[] = "first", second[] = "second part", small_buf[4], big_buf[64];
  GOutputVector vectors[2] = { { first, 5 }, { second, 11 } };
  GOutputMessage out[2] = { { NULL, vectors, 2, 0, NULL, 0 }, { NULL, vectors, 1, 0, NULL, 0 } };
  GInputVector in_vectors[2] = { { small_buf, sizeof small_buf }, { big_buf, sizeof big_buf } };
  GInputMessage in[2] = { { NULL, &in_vectors[0], 1, 0, 0, NULL, NULL },
                          { NULL, &in_vectors[1], 1, 0, 0, NULL, NULL } };
  gint n;

  g_test_summary ("GDatagramBased: messages, vectors, sources, conditions, timeouts");
  make_sockets (f, FALSE);
  handshake (f);
  a = G_DATAGRAM_BASED (f->a);
  b = G_DATAGRAM_BASED (f->b);

  /* Nothing yet: would block, or times out */
  n = g_datagram_based_receive_messages (b, in, 2, 0, 0, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_assert_cmpint (n, ==, -1);
  g_clear_error (&error);
  g_assert_false (g_datagram_based_condition_wait (b, G_IO_IN, 50000, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&error);
  g_assert_cmpint (g_datagram_based_condition_check (a, G_IO_OUT), ==, G_IO_OUT);

  source = g_datagram_based_create_source (b, G_IO_IN, NULL);
  g_source_set_callback (source, G_SOURCE_FUNC (datagram_ready), &ready, NULL);
  g_source_attach (source, NULL);

  n = g_datagram_based_send_messages (a, out, 2, 0, -1, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, ==, 2);
  g_assert_cmpuint (out[0].bytes_sent, ==, 16);
  g_assert_cmpuint (out[1].bytes_sent, ==, 5);

  g_assert_true (rndz_test_run_until (NULL, (RndzTestCond) g_source_is_destroyed, source,
                                      RNDZ_TEST_TIMEOUT_MS));
  g_assert_cmpint (ready, ==, G_IO_IN);
  g_assert_true (g_datagram_based_condition_wait (b, G_IO_IN, G_USEC_PER_SEC, NULL, &error));
  g_assert_no_error (error);
  /* Both may not have come yet: take what there is, then the rest */
  n = g_datagram_based_receive_messages (b, in, 2, 0, G_USEC_PER_SEC, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (n, >=, 1);
  g_assert_cmpuint (in[0].bytes_received, ==, sizeof small_buf);
  g_assert_cmpint (in[0].flags & MSG_TRUNC, !=, 0);
  g_assert_cmpmem (small_buf, 4, "firs", 4);
  if (n == 1)
    {
      n = g_datagram_based_receive_messages (b, &in[1], 1, 0, G_USEC_PER_SEC, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n, ==, 1);
    }
  g_assert_cmpmem (big_buf, in[1].bytes_received, "first", 5);
  g_assert_cmpint (in[1].flags, ==, 0);
}

static void
test_too_large (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) largest = NULL;
  g_autoptr(GBytes) too_large = NULL;
  g_autoptr(GBytes) got = NULL;
  gsize max;
  guint8 *payload;

  g_test_summary ("The largest payload fits the 1400-byte path; one byte more is refused");
  make_sockets (f, FALSE);
  handshake (f);

  max = rndz_dtls_channel_get_max_payload_size (f->a);
  g_test_message ("Largest payload: %" G_GSIZE_FORMAT " bytes", max);
  g_assert_cmpuint (max, >=, 1400 - 37 - 1);
  g_assert_cmpuint (max, <=, 1400 - 29 - 1);
  payload = g_malloc0 (max + 1);
  largest = g_bytes_new (payload, max);
  too_large = g_bytes_new_take (payload, max + 1);

  g_assert_false (rndz_dtls_channel_send_bytes (f->a, too_large, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
  g_clear_error (&error);
  g_assert_true (rndz_dtls_channel_send_bytes (f->a, largest, NULL, &error));
  g_assert_no_error (error);
  got = rndz_dtls_channel_receive_bytes (f->b, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (got), ==, max);
}

static void
test_identity_mismatch (Fixture       *f,
                        gconstpointer  data)
{
  gboolean server_pins = GPOINTER_TO_INT (data);
  g_autoptr(RndzIdentity) other = NULL;
  GError *pinning, *pinned;

  g_test_summary ("A peer whose certificate is not the expected one fails the handshake "
                  "with IDENTITY_MISMATCH, and the other side fails too: no channel, no data");
  make_sockets (f, TRUE);
  other = test_identity_new ();
  if (server_pins)
    handshake_expecting (f, FP (f->id_b), FP (other), 5000);
  else
    handshake_expecting (f, FP (other), FP (f->id_a), 5000);

  g_assert_null (f->a);
  g_assert_null (f->b);
  pinning = server_pins ? f->error_b : f->error_a;
  pinned = server_pins ? f->error_a : f->error_b;
  g_assert_error (pinning, RNDZ_ERROR, RNDZ_ERROR_IDENTITY_MISMATCH);
  g_assert_error (pinned, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
  g_test_message ("%s / %s", f->error_a->message, f->error_b->message);
}

static guint64
dropped (RndzDtlsChannel *channel)
{
  RndzDtlsStats stats;

  rndz_dtls_channel_get_stats (channel, &stats);
  return stats.dropped;
}

static void
test_tampered (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *got = NULL;
  g_autofree char *got_a = NULL;

  g_test_summary ("A datagram with one bit flipped on the way is dropped, counted, and "
                  "those after it still arrive");
  make_sockets (f, TRUE);
  handshake (f);

  f->fwd->tamper[TO_B] = 1;
  send_text (f->a, "tampered");
  send_text (f->a, "intact");
  got = receive_text (f->b);
  g_assert_cmpstr (got, ==, "intact");
  g_assert_cmpuint (dropped (f->b), ==, 1);
  g_assert_cmpuint (f->fwd->tamper[TO_B], ==, 0);

  f->fwd->tamper[TO_A] = 1;
  send_text (f->b, "tampered");
  send_text (f->b, "intact too");
  got_a = receive_text (f->a);
  g_assert_cmpstr (got_a, ==, "intact too");
  g_assert_cmpuint (dropped (f->a), ==, 1);
  expect_nothing (f->b, 100);
}

static void
test_injected (Fixture       *f,
               gconstpointer  data)
{
  /* A DTLS 1.2 application data header, epoch 1, sequence 1000, 32 bytes */
  static const guint8 forged_header[] = { 23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0x03, 0xe8, 0, 32 };
  guint8 forged[13 + 32];
  g_autofree char *got = NULL;
  RndzDtlsStats stats;
  guint injected = 0;

  g_test_summary ("Plaintext, random bytes and forged records from the peer's address never "
                  "reach the application");
  make_sockets (f, TRUE);
  handshake (f);

  forwarder_inject (f->fwd, TO_B, (const guint8 *) "plain text", 10), injected++;
  forwarder_inject (f->fwd, TO_B, (const guint8 *) "", 0), injected++;
  for (guint i = 0; i < 50; i++, injected++)
    {
      guint8 junk[1400];
      gsize len = g_test_rand_int_range (1, sizeof junk);

      for (gsize j = 0; j < len; j++)
        junk[j] = g_test_rand_int_range (0, 256);
      /* Half of them look like records of the current epoch */
      if (i % 2 == 0 && len > sizeof forged_header)
        memcpy (junk, forged_header, sizeof forged_header);
      forwarder_inject (f->fwd, TO_B, junk, len);
    }
  memcpy (forged, forged_header, sizeof forged_header);
  memset (forged + sizeof forged_header, 0x41, 32);
  forwarder_inject (f->fwd, TO_B, forged, sizeof forged), injected++;

  expect_nothing (f->b, 200);
  rndz_dtls_channel_get_stats (f->b, &stats);
  g_test_message ("%u injected, %" G_GUINT64_FORMAT " read, %" G_GUINT64_FORMAT " dropped",
                  injected, stats.datagrams_in, stats.dropped);
  g_assert_cmpuint (stats.datagrams_in, >=, injected);
  g_assert_false (rndz_dtls_channel_is_closed (f->b));

  send_text (f->a, "genuine");
  got = receive_text (f->b);
  g_assert_cmpstr (got, ==, "genuine");
  expect_nothing (f->b, 50);
}

/* Back to no channels and no sockets, for another pair */
static void
clear_pair (Fixture *f)
{
  g_clear_object (&f->a);
  g_clear_object (&f->b);
  g_clear_error (&f->error_a);
  g_clear_error (&f->error_b);
  g_clear_pointer (&f->fwd, forwarder_free);
  g_clear_object (&f->socket_a);
  g_clear_object (&f->socket_b);
  rndz_test_drain (NULL);
}

static void
test_handshake_loss (Fixture       *f,
                     gconstpointer  data)
{
  /* A series of losses after which the client retransmits its last
   * flight once the server is open: the datagram after it was lost */
  static const guint32 seeds[] = { 901128158, 0, 0, 0, 0 };

  g_test_summary ("Handshakes complete when the path loses 20% of the datagrams, and the "
                  "data after them flows");

  for (guint round = 0; round < G_N_ELEMENTS (seeds); round++)
    {
      g_autofree char *got = NULL;
      gint64 start;

      f->loss_seed = seeds[round];
      make_sockets (f, TRUE);
      f->fwd->loss_percent = 20;
      start = g_get_monotonic_time ();
      /* GnuTLS sends each handshake message in a datagram of its own,
       * retransmits a flight whole, after 400 ms, 800 ms, 1.6 s...: an
       * unlucky series takes long */
      handshake_expecting (f, FP (f->id_b), FP (f->id_a), 60000);
      g_assert_no_error (f->error_a);
      g_assert_no_error (f->error_b);
      g_test_message ("Handshake in %" G_GINT64_FORMAT " ms; lost %u of %u and %u of %u datagrams",
                      (g_get_monotonic_time () - start) / 1000,
                      f->fwd->lost[TO_B], f->fwd->lost[TO_B] + f->fwd->forwarded[TO_B],
                      f->fwd->lost[TO_A], f->fwd->lost[TO_A] + f->fwd->forwarded[TO_A]);

      /* Data flows (sent on a lossless path: no retransmission for it) */
      f->fwd->loss_percent = 0;
      send_text (f->a, "after the handshake");
      got = receive_text (f->b);
      g_assert_cmpstr (got, ==, "after the handshake");
      clear_pair (f);
    }
}

typedef struct
{
  GError *reason;
  guint emitted;
  gint64 when;
} Closed;

static void
on_closed (RndzDtlsChannel *channel,
           GError          *reason,
           gpointer         user_data)
{
  Closed *closed = user_data;

  closed->emitted++;
  closed->when = g_get_monotonic_time ();
  g_clear_error (&closed->reason);
  closed->reason = reason != NULL ? g_error_copy (reason) : NULL;
}

static gboolean
both_closed (gpointer data)
{
  Closed *closed = data;

  return closed[0].emitted > 0 && closed[1].emitted > 0;
}

static void
test_keepalive (Fixture       *f,
                gconstpointer  data)
{
  Closed closed[2] = { { 0 } };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = g_bytes_new_static ("late", 4);
  RndzDtlsStats stats_a, stats_b;
  guint keepalives;
  gint64 stop;

  g_test_summary ("An idle channel pings every interval, and closes with PATH_DEAD within "
                  "three intervals once nothing comes back");
  make_sockets (f, TRUE);
  handshake (f);
  g_signal_connect (f->a, "closed", G_CALLBACK (on_closed), &closed[0]);
  g_signal_connect (f->b, "closed", G_CALLBACK (on_closed), &closed[1]);
  rndz_dtls_channel_set_keepalive_interval (f->a, 200);
  rndz_dtls_channel_set_keepalive_interval (f->b, 200);
  f->fwd->small[TO_A] = f->fwd->small[TO_B] = 0;

  rndz_test_run_for (NULL, 1100);
  rndz_dtls_channel_get_stats (f->a, &stats_a);
  rndz_dtls_channel_get_stats (f->b, &stats_b);
  keepalives = f->fwd->small[TO_A] + f->fwd->small[TO_B];
  g_test_message ("In 1.1 s: %u keepalives on the path; A %" G_GUINT64_FORMAT " pings, %"
                  G_GUINT64_FORMAT " pongs; B %" G_GUINT64_FORMAT " pings, %" G_GUINT64_FORMAT " pongs",
                  keepalives, stats_a.pings_sent, stats_a.pongs_sent,
                  stats_b.pings_sent, stats_b.pongs_sent);
  /* Five intervals: a ping and a pong each; the client pings, the
   * server, which waits a little longer, only answers */
  g_assert_cmpuint (keepalives, >=, 8);
  g_assert_cmpuint (keepalives, <=, 14);
  g_assert_cmpuint (stats_a.pings_sent, >=, 4);
  g_assert_cmpuint (stats_b.pings_sent, <=, 1);
  g_assert_cmpuint (stats_b.pongs_sent, >=, 4);
  g_assert_cmpuint (closed[0].emitted + closed[1].emitted, ==, 0);

  f->fwd->stopped = TRUE;
  stop = g_get_monotonic_time ();
  g_assert_true (rndz_test_run_until (NULL, both_closed, closed, 5000));
  for (guint i = 0; i < 2; i++)
    {
      gint64 ms = (closed[i].when - stop) / 1000;

      g_test_message ("%c closed after %" G_GINT64_FORMAT " ms", 'A' + i, ms);
      g_assert_error (closed[i].reason, RNDZ_ERROR, RNDZ_ERROR_PATH_DEAD);
      g_assert_cmpint (closed[i].emitted, ==, 1);
      /* Three intervals from the last sign of life, before the stop */
      g_assert_cmpint (ms, >=, 350);
      g_assert_cmpint (ms, <=, 600 + 150);
      g_clear_error (&closed[i].reason);
    }
  g_assert_true (rndz_dtls_channel_is_closed (f->a));
  g_assert_false (rndz_dtls_channel_send_bytes (f->a, bytes, NULL, &error));
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_PATH_DEAD);
}

static void
test_keepalive_server (Fixture       *f,
                       gconstpointer  data)
{
  RndzDtlsStats stats_a, stats_b;

  g_test_summary ("The server pings when the client's interval is the longer one");
  make_sockets (f, TRUE);
  handshake (f);
  rndz_dtls_channel_set_keepalive_interval (f->b, 200);

  rndz_test_run_for (NULL, 1100);
  rndz_dtls_channel_get_stats (f->a, &stats_a);
  rndz_dtls_channel_get_stats (f->b, &stats_b);
  g_test_message ("In 1.1 s: B %" G_GUINT64_FORMAT " pings, A %" G_GUINT64_FORMAT " pongs",
                  stats_b.pings_sent, stats_a.pongs_sent);
  g_assert_cmpuint (stats_b.pings_sent, >=, 3);
  g_assert_cmpuint (stats_a.pongs_sent, >=, 3);
  g_assert_cmpuint (stats_a.pings_sent, ==, 0);
  g_assert_false (rndz_dtls_channel_is_closed (f->a));
  g_assert_false (rndz_dtls_channel_is_closed (f->b));
}

typedef struct
{
  RndzDtlsChannel *channel;
  GMainContext *context;
  GBytes *got;
  GError *error;
} Receiver;

static gpointer
receive_in_thread (gpointer data)
{
  Receiver *receiver = data;

  g_main_context_push_thread_default (receiver->context);
  receiver->got = rndz_dtls_channel_receive_bytes (receiver->channel, NULL, &receiver->error);
  g_main_context_pop_thread_default (receiver->context);
  return NULL;
}

static void
test_sync_receive_keepalive (Fixture       *f,
                             gconstpointer  data)
{
  g_autoptr(GMainContext) context_b = g_main_context_new ();
  GAsyncResult *result_a = NULL;
  GAsyncResult *result_b = NULL;
  Receiver receiver = { NULL };
  Closed closed_a = { 0 };
  RndzDtlsStats stats;
  GThread *thread;

  g_test_summary ("A peer blocked in a synchronous receive still answers keepalives: the "
                  "other side does not find the path dead");
  make_sockets (f, FALSE);
  /* B lives in a context of its own, which only its receive runs */
  g_main_context_push_thread_default (context_b);
  start_handshake (f->socket_b, TRUE, f->id_b, FP (f->id_a), HANDSHAKE_MS, NULL, &result_b);
  g_main_context_pop_thread_default (context_b);
  start_handshake (f->socket_a, FALSE, f->id_a, FP (f->id_b), HANDSHAKE_MS, NULL, &result_a);
  while (result_a == NULL || result_b == NULL)
    {
      g_main_context_iteration (context_b, FALSE);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  f->a = rndz_dtls_channel_handshake_finish (result_a, &f->error_a);
  f->b = rndz_dtls_channel_handshake_finish (result_b, &f->error_b);
  g_clear_object (&result_a);
  g_clear_object (&result_b);
  g_assert_no_error (f->error_a);
  g_assert_no_error (f->error_b);
  rndz_dtls_channel_set_keepalive_interval (f->a, 200);
  g_signal_connect (f->a, "closed", G_CALLBACK (on_closed), &closed_a);

  receiver.channel = f->b;
  receiver.context = context_b;
  thread = g_thread_new ("receiver", receive_in_thread, &receiver);
  /* Seven intervals of A: without answers, A would close after three */
  rndz_test_run_for (NULL, 1400);
  g_assert_cmpuint (closed_a.emitted, ==, 0);
  send_text (f->a, "wake up");
  g_thread_join (thread);

  g_assert_no_error (receiver.error);
  g_assert_cmpmem (g_bytes_get_data (receiver.got, NULL), g_bytes_get_size (receiver.got),
                   "wake up", 7);
  g_bytes_unref (receiver.got);
  rndz_dtls_channel_get_stats (f->b, &stats);
  g_test_message ("B answered %" G_GUINT64_FORMAT " pings while it blocked", stats.pongs_sent);
  g_assert_cmpuint (stats.pongs_sent, >=, 4);
  g_clear_object (&f->b);
  while (g_main_context_iteration (context_b, FALSE))
    ;
}

static void
test_handshake_timeout (Fixture       *f,
                        gconstpointer  data)
{
  GAsyncResult *result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzDtlsChannel) channel = NULL;
  gint64 start = g_get_monotonic_time ();
  gint64 ms;

  g_test_summary ("A handshake with nobody at the other end fails at its deadline");
  make_sockets (f, FALSE);
  start_handshake (f->socket_a, FALSE, f->id_a, FP (f->id_b), 700, NULL, &result);
  rndz_test_wait_async (NULL, &result, RNDZ_TEST_TIMEOUT_MS);
  channel = rndz_dtls_channel_handshake_finish (result, &error);
  g_object_unref (result);
  ms = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("Failed after %" G_GINT64_FORMAT " ms: %s", ms, error->message);
  g_assert_error (error, RNDZ_ERROR, RNDZ_ERROR_HANDSHAKE_FAILED);
  g_assert_null (channel);
  g_assert_cmpint (ms, >=, 650);
  g_assert_cmpint (ms, <, 2000);
}

static void
test_cancel (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) receive_cancellable = g_cancellable_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(RndzDtlsChannel) channel = NULL;
  g_autoptr(GBytes) bytes = NULL;
  GAsyncResult *result = NULL;
  g_autofree char *got = NULL;

  g_test_summary ("Cancelling a handshake, an asynchronous and a synchronous receive");
  make_sockets (f, FALSE);
  start_handshake (f->socket_a, FALSE, f->id_a, FP (f->id_b), HANDSHAKE_MS,
                   cancellable, &result);
  rndz_test_run_for (NULL, 50);
  g_cancellable_cancel (cancellable);
  rndz_test_wait_async (NULL, &result, 1000);
  channel = rndz_dtls_channel_handshake_finish (result, &error);
  g_clear_object (&result);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (channel);
  g_clear_error (&error);
  clear_pair (f);

  make_sockets (f, FALSE);
  handshake (f);
  rndz_dtls_channel_receive_bytes_async (f->b, receive_cancellable, rndz_test_async_cb, &result);
  rndz_test_run_for (NULL, 20);
  g_assert_null (result);
  g_cancellable_cancel (receive_cancellable);
  rndz_test_wait_async (NULL, &result, 1000);
  bytes = rndz_dtls_channel_receive_bytes_finish (f->b, result, &error);
  g_clear_object (&result);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (bytes);
  g_clear_error (&error);

  g_assert_null (rndz_dtls_channel_receive_bytes (f->b, receive_cancellable, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  /* What comes next goes to the next receive, not the cancelled one */
  send_text (f->a, "next");
  got = receive_text (f->b);
  g_assert_cmpstr (got, ==, "next");
}

static void
test_close (Fixture       *f,
            gconstpointer  data)
{
  Closed closed[2] = { { 0 } };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = g_bytes_new_static ("x", 1);
  g_autoptr(GBytes) got = NULL;
  GAsyncResult *result = NULL;

  g_test_summary ("Closing tells the peer: its pending receive fails with CONNECTION_CLOSED");
  make_sockets (f, FALSE);
  handshake (f);
  g_signal_connect (f->a, "closed", G_CALLBACK (on_closed), &closed[0]);
  g_signal_connect (f->b, "closed", G_CALLBACK (on_closed), &closed[1]);
  rndz_dtls_channel_receive_bytes_async (f->b, NULL, rndz_test_async_cb, &result);

  rndz_dtls_channel_close (f->a);
  rndz_dtls_channel_close (f->a);
  g_assert_cmpuint (closed[0].emitted, ==, 1);
  g_assert_null (closed[0].reason);
  g_assert_true (rndz_dtls_channel_is_closed (f->a));
  g_assert_false (rndz_dtls_channel_send_bytes (f->a, bytes, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
  g_clear_error (&error);

  rndz_test_wait_async (NULL, &result, RNDZ_TEST_TIMEOUT_MS);
  got = rndz_dtls_channel_receive_bytes_finish (f->b, result, &error);
  g_clear_object (&result);
  g_assert_null (got);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&error);
  g_assert_cmpuint (closed[1].emitted, ==, 1);
  g_assert_error (closed[1].reason, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
  g_clear_error (&closed[1].reason);
  g_assert_null (rndz_dtls_channel_receive_bytes (f->b, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED);
}

static void
on_notify (GObject    *object,
           GParamSpec *pspec,
           gpointer    user_data)
{
  (*(guint *) user_data)++;
}

static void
test_gobject (Fixture       *f,
              gconstpointer  data)
{
  guint notified = 0;
  guint interval = 0;
  gboolean closed = TRUE;
  g_autofree char *fingerprint = NULL;
  g_autoptr(GSocket) socket = NULL;

  g_test_summary ("Properties, their defaults and notifications; the interface");
  make_sockets (f, FALSE);
  handshake (f);

  g_assert_true (G_IS_DATAGRAM_BASED (f->a));
  g_object_get (f->a, "keepalive-interval", &interval, "closed", &closed,
                "peer-fingerprint", &fingerprint, "socket", &socket, NULL);
  g_assert_cmpuint (interval, ==, 15000);
  g_assert_false (closed);
  g_assert_cmpstr (fingerprint, ==, FP (f->id_b));
  g_assert_true (socket == f->socket_a);

  g_signal_connect (f->a, "notify::keepalive-interval", G_CALLBACK (on_notify), &notified);
  g_object_set (f->a, "keepalive-interval", 100, NULL);
  g_object_set (f->a, "keepalive-interval", 100, NULL);
  g_assert_cmpuint (notified, ==, 1);
  g_assert_cmpuint (rndz_dtls_channel_get_keepalive_interval (f->a), ==, 100);

  notified = 0;
  g_signal_connect (f->a, "notify::closed", G_CALLBACK (on_notify), &notified);
  rndz_dtls_channel_close (f->a);
  g_assert_cmpuint (notified, ==, 1);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) \
  g_test_add (path, Fixture, data, fixture_set_up, func, fixture_tear_down)
  ADD ("/dtls/handshake/bytes", test_handshake_bytes, NULL);
  ADD ("/dtls/datagram-based", test_datagram_based, NULL);
  ADD ("/dtls/too-large", test_too_large, NULL);
  ADD ("/dtls/identity/client-pins", test_identity_mismatch, GINT_TO_POINTER (FALSE));
  ADD ("/dtls/identity/server-pins", test_identity_mismatch, GINT_TO_POINTER (TRUE));
  ADD ("/dtls/tampered", test_tampered, NULL);
  ADD ("/dtls/injected", test_injected, NULL);
  ADD ("/dtls/handshake/loss", test_handshake_loss, NULL);
  ADD ("/dtls/handshake/timeout", test_handshake_timeout, NULL);
  ADD ("/dtls/keepalive/dead-path", test_keepalive, NULL);
  ADD ("/dtls/keepalive/server-pings", test_keepalive_server, NULL);
  ADD ("/dtls/keepalive/sync-receive", test_sync_receive_keepalive, NULL);
  ADD ("/dtls/cancel", test_cancel, NULL);
  ADD ("/dtls/close", test_close, NULL);
  ADD ("/dtls/gobject", test_gobject, NULL);
#undef ADD

  return g_test_run ();
}
