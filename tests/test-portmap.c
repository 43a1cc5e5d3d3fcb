/* test-portmap.c: port mapping on the home router (PCP, NAT-PMP)
 *
 * SPDX-License-Identifier: MIT
 *
 * The PCP codec against packets written out by hand from RFC 6887; then
 * RndzPortmap against a fake gateway on a loopback address of its own
 * (127.x.y.z, port 5351, named by RNDZ_PORTMAP_GATEWAY) that speaks PCP,
 * NAT-PMP, or nothing: the mapping is asked for, renewed at half its
 * lease and deleted when freed; a silent gateway is given up on in
 * bounded time; without a gateway nothing is sent. Last, a listening
 * RndzClient with a fake rendezvous server (a raw socket answering
 * pings): the mapped address joins its pings at once, and its first
 * registration does not wait for the gateway; and with a real RndzServer,
 * a requester's check through the mapped UDP port from a port the server
 * never saw is confirmed, and its use hands the application a socket,
 * while a stranger's is not. Every wait is bounded.
 */

#include "config.h"

#include <string.h>
#include <arpa/inet.h>

#include <rndz-glib/rndz.h>

#include "rndz-pcp-private.h"
#include "rndz-portmap-private.h"
#include "rndz-message-private.h"
#include "rndz-test-util.h"

#define WAIT_MS 3000
#define PUBLIC_IP "192.0.2.77"
#define NATPMP_PUBLIC_IP "198.51.100.9"

/* The PCP codec */

static const guint8 test_nonce[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
static const guint8 test_client_ip[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                                           192, 168, 1, 20 };

static void
init_test_map (RndzPcpMap *map)
{
  memset (map, 0, sizeof *map);
  memcpy (map->nonce, test_nonce, sizeof test_nonce);
  map->protocol = RNDZ_PCP_PROTO_UDP;
  map->internal_port = 4000;
  map->external_port = 4000;
  map->lifetime = 7200;
}

static void
test_pcp_encode (void)
{
  static const guint8 expected[RNDZ_PCP_MAP_SIZE] = {
    /* version 2, MAP request, reserved, lifetime 7200 */
    2, 1, 0, 0, 0x00, 0x00, 0x1c, 0x20,
    /* client IP ::ffff:192.168.1.20 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20,
    /* nonce */
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    /* UDP, reserved, internal port 4000, suggested external port 4000 */
    17, 0, 0, 0, 0x0f, 0xa0, 0x0f, 0xa0,
    /* suggested external IP: any */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  };
  RndzPcpMap map;
  guint8 buf[RNDZ_PCP_MAP_SIZE];

  init_test_map (&map);
  rndz_pcp_encode_map (&map, test_client_ip, buf);
  g_assert_cmpmem (buf, sizeof buf, expected, sizeof expected);

  /* Deleting: the same, with lifetime 0 */
  map.lifetime = 0;
  rndz_pcp_encode_map (&map, test_client_ip, buf);
  g_assert_cmpmem (buf + 4, 4, "\0\0\0\0", 4);
  g_assert_cmpmem (buf + 8, RNDZ_PCP_MAP_SIZE - 8, expected + 8, RNDZ_PCP_MAP_SIZE - 8);
}

/* A MAP response from a gateway that maps UDP 4000 to 203.0.113.5:61000
 * for 3600 s, epoch 1234 */
static const guint8 test_response[RNDZ_PCP_MAP_SIZE] = {
  2, 0x81, 0, 0, 0x00, 0x00, 0x0e, 0x10,
  0x00, 0x00, 0x04, 0xd2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
  17, 0, 0, 0, 0x0f, 0xa0, 0xee, 0x48,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5,
};

static void
test_pcp_decode (void)
{
  static const guint8 v4_mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                                        203, 0, 113, 5 };
  RndzPcpResponse response;
  RndzPcpMap request;
  guint8 buf[RNDZ_PCP_MAP_SIZE + 8];

  init_test_map (&request);
  g_assert_cmpint (rndz_pcp_decode_map (test_response, sizeof test_response, &request, &response),
                   ==, RNDZ_PCP_REPLY_MAP);
  g_assert_cmpuint (response.result, ==, RNDZ_PCP_SUCCESS);
  g_assert_cmpuint (response.epoch, ==, 1234);
  g_assert_cmpuint (response.map.lifetime, ==, 3600);
  g_assert_cmpuint (response.map.internal_port, ==, 4000);
  g_assert_cmpuint (response.map.external_port, ==, 61000);
  g_assert_cmpmem (response.map.external_ip, 16, v4_mapped, 16);

  /* An option after the payload is skipped */
  memcpy (buf, test_response, sizeof test_response);
  memset (buf + RNDZ_PCP_MAP_SIZE, 0, 8);
  buf[RNDZ_PCP_MAP_SIZE] = 0x80;
  buf[RNDZ_PCP_MAP_SIZE + 3] = 4;
  g_assert_cmpint (rndz_pcp_decode_map (buf, sizeof buf, &request, &response),
                   ==, RNDZ_PCP_REPLY_MAP);

  /* An error copies the request's payload: told apart from a forgery */
  memcpy (buf, test_response, sizeof test_response);
  buf[3] = RNDZ_PCP_NOT_AUTHORIZED;
  g_assert_cmpint (rndz_pcp_decode_map (buf, RNDZ_PCP_MAP_SIZE, &request, &response),
                   ==, RNDZ_PCP_REPLY_MAP);
  g_assert_cmpuint (response.result, ==, RNDZ_PCP_NOT_AUTHORIZED);
  g_assert_cmpstr (rndz_pcp_result_to_string (response.result), ==, "NOT_AUTHORIZED");
}

/* What is not an answer to our request */
static void
test_pcp_decode_invalid (void)
{
  RndzPcpResponse response;
  RndzPcpMap request;
  guint8 buf[RNDZ_PCP_MAX_SIZE + 4];
  struct
  {
    guint offset;
    guint8 value;
  } changes[] = {
    { 0, 1 },          /* version 1 */
    { 0, 3 },          /* version 3 */
    { 1, 0x01 },       /* a request, not a response */
    { 1, 0x82 },       /* PEER, not MAP */
    { 24, 0xff },      /* another nonce */
    { 35, 0xff },      /* another nonce */
    { 36, 6 },         /* TCP */
    { 41, 0xa1 },      /* another internal port */
  };

  init_test_map (&request);
  for (guint i = 0; i < G_N_ELEMENTS (changes); i++)
    {
      memcpy (buf, test_response, sizeof test_response);
      buf[changes[i].offset] = changes[i].value;
      g_assert_cmpint (rndz_pcp_decode_map (buf, sizeof test_response, &request, &response),
                       ==, RNDZ_PCP_REPLY_INVALID);
    }

  /* Too short, not whole words, too long */
  memcpy (buf, test_response, sizeof test_response);
  g_assert_cmpint (rndz_pcp_decode_map (buf, 24, &request, &response), ==, RNDZ_PCP_REPLY_INVALID);
  g_assert_cmpint (rndz_pcp_decode_map (buf, 20, &request, &response), ==, RNDZ_PCP_REPLY_INVALID);
  g_assert_cmpint (rndz_pcp_decode_map (buf, 1, &request, &response), ==, RNDZ_PCP_REPLY_INVALID);
  g_assert_cmpint (rndz_pcp_decode_map (buf, 0, &request, &response), ==, RNDZ_PCP_REPLY_INVALID);
  memset (buf + RNDZ_PCP_MAP_SIZE, 0, sizeof buf - RNDZ_PCP_MAP_SIZE);
  g_assert_cmpint (rndz_pcp_decode_map (buf, RNDZ_PCP_MAP_SIZE + 2, &request, &response),
                   ==, RNDZ_PCP_REPLY_INVALID);
  g_assert_cmpint (rndz_pcp_decode_map (buf, RNDZ_PCP_MAX_SIZE + 4, &request, &response),
                   ==, RNDZ_PCP_REPLY_INVALID);

  /* NAT-PMP's "unsupported version": the gateway speaks version 0 */
  memcpy (buf, "\x00\x81\x00\x01\x00\x00\x00\x10", 8);
  g_assert_cmpint (rndz_pcp_decode_map (buf, 8, &request, &response),
                   ==, RNDZ_PCP_REPLY_OLD_VERSION);
}

/* The fake gateway */

typedef enum
{
  GATEWAY_PCP,
  GATEWAY_NATPMP,
  GATEWAY_SILENT,
} GatewayMode;

typedef struct
{
  GMainContext *context;
  GatewayMode mode;
  guint32 lifetime;             /* what it grants */
  GSocket *socket;
  GSource *source;
  char *address;                /* for RNDZ_PORTMAP_GATEWAY */
  GPtrArray *received;          /* GBytes */
} Gateway;

static void
put_u16 (guint8 *p, guint16 v)
{
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static void
put_u32 (guint8 *p, guint32 v)
{
  put_u16 (p, v >> 16);
  put_u16 (p + 2, v & 0xffff);
}

static guint16
get_u16 (const guint8 *p)
{
  return (guint16) (p[0] << 8 | p[1]);
}

static guint32
get_u32 (const guint8 *p)
{
  return (guint32) get_u16 (p) << 16 | get_u16 (p + 2);
}

/* A MAP response: the request's payload, the external address set */
static gsize
gateway_answer_pcp (Gateway      *gateway,
                    const guint8 *req,
                    gsize         len,
                    guint8       *out)
{
  if (gateway->mode == GATEWAY_NATPMP)
    {
      /* NAT-PMP: version 0, opcode 128 + 1, UNSUPPORTED_VERSION */
      memset (out, 0, 8);
      out[1] = 129;
      out[3] = 1;
      return 8;
    }

  memcpy (out, req, RNDZ_PCP_MAP_SIZE);
  memset (out + 2, 0, 22);
  out[1] = 0x81;
  put_u32 (out + 4, get_u32 (req + 4) == 0 ? 0 : gateway->lifetime);
  put_u32 (out + 8, 1000);
  memset (out + 44, 0, 10);
  memset (out + 54, 0xff, 2);
  inet_pton (AF_INET, PUBLIC_IP, out + 56);
  return RNDZ_PCP_MAP_SIZE;
}

static gsize
gateway_answer_natpmp (Gateway      *gateway,
                       const guint8 *req,
                       gsize         len,
                       guint8       *out)
{
  memset (out, 0, 16);
  out[1] = 128 + req[1];
  put_u32 (out + 4, 1000);
  if (req[1] == 0)
    {
      inet_pton (AF_INET, NATPMP_PUBLIC_IP, out + 8);
      return 12;
    }
  if (len < 12)
    return 0;
  memcpy (out + 8, req + 4, 2);
  /* The suggested public port, or the private one */
  memcpy (out + 10, get_u16 (req + 6) != 0 ? req + 6 : req + 4, 2);
  put_u32 (out + 12, get_u32 (req + 8) == 0 ? 0 : gateway->lifetime);
  return 16;
}

static gboolean
gateway_read_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  Gateway *gateway = user_data;
  g_autoptr(GSocketAddress) from = NULL;
  guint8 buf[2048], out[RNDZ_PCP_MAX_SIZE];
  gssize len;
  gsize n = 0;

  len = g_socket_receive_from (socket, &from, (char *) buf, sizeof buf, NULL, NULL);
  if (len <= 0)
    return G_SOURCE_CONTINUE;
  g_ptr_array_add (gateway->received, g_bytes_new (buf, len));

  if (gateway->mode == GATEWAY_SILENT)
    return G_SOURCE_CONTINUE;
  if (buf[0] == RNDZ_PCP_VERSION && len == RNDZ_PCP_MAP_SIZE)
    n = gateway_answer_pcp (gateway, buf, len, out);
  else if (buf[0] == 0 && len >= 2 && gateway->mode == GATEWAY_NATPMP)
    n = gateway_answer_natpmp (gateway, buf, len, out);
  if (n > 0)
    g_socket_send_to (socket, from, (const char *) out, n, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

/* On a loopback address of its own, port 5351 (NAT-PMP's is fixed) */
static Gateway *
gateway_new (GatewayMode mode,
             guint32     lifetime)
{
  Gateway *gateway = g_new0 (Gateway, 1);
  g_autoptr(GInetAddress) inet = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  gateway->context = g_main_context_ref_thread_default ();
  gateway->mode = mode;
  gateway->lifetime = lifetime;
  gateway->received = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  gateway->address = g_strdup_printf ("127.%d.%d.%d", g_random_int_range (100, 250),
                                      g_random_int_range (1, 250), g_random_int_range (1, 250));
  inet = g_inet_address_new_from_string (gateway->address);
  address = g_inet_socket_address_new (inet, RNDZ_PCP_PORT);
  gateway->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                  G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_socket_bind (gateway->socket, address, FALSE, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (gateway->socket, FALSE);
  gateway->source = g_socket_create_source (gateway->socket, G_IO_IN, NULL);
  g_source_set_callback (gateway->source, G_SOURCE_FUNC (gateway_read_cb), gateway, NULL);
  g_source_attach (gateway->source, gateway->context);

  g_setenv ("RNDZ_PORTMAP_GATEWAY", gateway->address, TRUE);
  return gateway;
}

static void
gateway_free (Gateway *gateway)
{
  g_setenv ("RNDZ_PORTMAP_GATEWAY", "none", TRUE);
  g_source_destroy (gateway->source);
  g_source_unref (gateway->source);
  g_socket_close (gateway->socket, NULL);
  g_object_unref (gateway->socket);
  g_ptr_array_unref (gateway->received);
  g_main_context_unref (gateway->context);
  g_free (gateway->address);
  g_free (gateway);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Gateway, gateway_free)

static const guint8 *
gateway_get (Gateway *gateway,
             guint    i,
             gsize   *len)
{
  return g_bytes_get_data (g_ptr_array_index (gateway->received, i), len);
}

typedef struct
{
  Gateway *gateway;
  guint n;
} Count;

static gboolean
received_at_least (gpointer data)
{
  Count *count = data;

  return count->gateway->received->len >= count->n;
}

static void
gateway_wait (Gateway *gateway,
              guint    n,
              guint    timeout_ms)
{
  Count count = { gateway, n };

  if (!rndz_test_run_until (gateway->context, received_at_least, &count, timeout_ms))
    g_error ("The gateway got %u datagrams, not %u", gateway->received->len, n);
}

/* RndzPortmap */

typedef struct
{
  RndzAddr mapped;
  guint calls;
  gboolean lost;
} Mapped;

static void
mapped_cb (const RndzAddr *mapped,
           gpointer        user_data)
{
  Mapped *state = user_data;

  state->calls++;
  if (mapped != NULL)
    state->mapped = *mapped;
  else
    state->lost = TRUE;
}

static gboolean
mapped_once (gpointer data)
{
  return ((Mapped *) data)->calls > 0;
}

static void
assert_mapped_to (const Mapped *state,
                  const char   *expected)
{
  char text[RNDZ_ADDR_STRLEN];

  g_assert_cmpuint (state->calls, ==, 1);
  g_assert_cmpstr (rndz_addr_format (&state->mapped, text), ==, expected);
}

static void
test_portmap_pcp (void)
{
  g_autoptr(Gateway) gateway = gateway_new (GATEWAY_PCP, 2);
  g_autoptr(RndzPortmap) portmap = NULL;
  Mapped state = { 0 };
  const guint8 *first, *req;
  gsize len;
  gint64 start = g_get_monotonic_time ();
  gint64 renewed;

  g_test_summary ("PCP: the mapping is asked for, renewed at half its lease, deleted");
  portmap = rndz_portmap_new (gateway->context, FALSE, 4242, mapped_cb, &state);
  g_assert_nonnull (portmap);
  g_assert_true (rndz_test_run_until (gateway->context, mapped_once, &state, WAIT_MS));
  assert_mapped_to (&state, PUBLIC_IP ":4242");
  g_assert_cmpstr (rndz_portmap_get_method (portmap), ==, "PCP");

  /* The request: version 2, MAP, two hours, from us, UDP 4242 */
  first = gateway_get (gateway, 0, &len);
  g_assert_cmpuint (len, ==, RNDZ_PCP_MAP_SIZE);
  g_assert_cmpuint (first[0], ==, 2);
  g_assert_cmpuint (first[1], ==, 1);
  g_assert_cmpuint (get_u32 (first + 4), ==, 7200);
  g_assert_cmpmem (first + 8, 16, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x7f\0\0\x01", 16);
  g_assert_cmpuint (first[36], ==, RNDZ_PCP_PROTO_UDP);
  g_assert_cmpuint (get_u16 (first + 40), ==, 4242);

  /* Renewed after half of the 2 s lease, with the same nonce */
  gateway_wait (gateway, 2, WAIT_MS);
  renewed = (g_get_monotonic_time () - start) / 1000;
  g_test_message ("renewed after %" G_GINT64_FORMAT " ms", renewed);
  g_assert_cmpint (renewed, >=, 900);
  req = gateway_get (gateway, 1, &len);
  g_assert_cmpmem (req + 24, 12, first + 24, 12);
  g_assert_cmpuint (get_u32 (req + 4), ==, 7200);
  rndz_test_run_for (gateway->context, 100);
  g_assert_cmpuint (state.calls, ==, 1);

  /* Freed: deleted (lifetime 0, the same nonce), at once */
  g_clear_pointer (&portmap, rndz_portmap_free);
  gateway_wait (gateway, 3, WAIT_MS);
  req = gateway_get (gateway, 2, &len);
  g_assert_cmpuint (get_u32 (req + 4), ==, 0);
  g_assert_cmpmem (req + 24, 16 + 2, first + 24, 16 + 2);
}

static void
test_portmap_natpmp (void)
{
  g_autoptr(Gateway) gateway = gateway_new (GATEWAY_NATPMP, 3600);
  g_autoptr(RndzPortmap) portmap = NULL;
  Mapped state = { 0 };
  const guint8 *req;
  gsize len;
  guint n;

  g_test_summary ("NAT-PMP when the gateway answers PCP with version 0: mapped, deleted");
#ifndef HAVE_NATPMP
  g_test_skip ("built without libnatpmp");
  return;
#endif
  portmap = rndz_portmap_new (gateway->context, TRUE, 4243, mapped_cb, &state);
  g_assert_nonnull (portmap);
  g_assert_true (rndz_test_run_until (gateway->context, mapped_once, &state, WAIT_MS));
  assert_mapped_to (&state, NATPMP_PUBLIC_IP ":4243");
  g_assert_cmpstr (rndz_portmap_get_method (portmap), ==, "NAT-PMP");

  /* PCP, then NAT-PMP's public address and TCP mapping requests */
  g_assert_cmpuint (gateway->received->len, ==, 3);
  req = gateway_get (gateway, 0, &len);
  g_assert_cmpuint (req[0], ==, 2);
  req = gateway_get (gateway, 1, &len);
  g_assert_cmpmem (req, len, "\0\0", 2);
  req = gateway_get (gateway, 2, &len);
  g_assert_cmpuint (len, ==, 12);
  g_assert_cmpuint (req[1], ==, 2);
  g_assert_cmpuint (get_u16 (req + 4), ==, 4243);
  g_assert_cmpuint (get_u32 (req + 8), ==, 7200);

  /* Freed: a mapping request with lifetime 0 */
  n = gateway->received->len;
  g_clear_pointer (&portmap, rndz_portmap_free);
  gateway_wait (gateway, n + 1, WAIT_MS);
  req = gateway_get (gateway, gateway->received->len - 1, &len);
  g_assert_cmpuint (len, ==, 12);
  g_assert_cmpuint (get_u16 (req + 4), ==, 4243);
  g_assert_cmpuint (get_u32 (req + 8), ==, 0);
}

/* A gateway that stops answering: the renewal fails, the mapping is
 * told lost, and nothing more is sent but the delete */
static void
test_portmap_lost (void)
{
  g_autoptr(Gateway) gateway = gateway_new (GATEWAY_PCP, 2);
  g_autoptr(RndzPortmap) portmap = NULL;
  Mapped state = { 0 };
  guint n;

  g_test_summary ("PCP: a renewal without an answer loses the mapping, in bounded time");
  portmap = rndz_portmap_new (gateway->context, FALSE, 4246, mapped_cb, &state);
  g_assert_true (rndz_test_run_until (gateway->context, mapped_once, &state, WAIT_MS));
  gateway->mode = GATEWAY_SILENT;

  /* Renewal at 1 s, three tries, given up 1.75 s later */
  g_assert_true (rndz_test_run_until_true (gateway->context, &state.lost, 4000));
  g_assert_cmpuint (state.calls, ==, 2);
  g_assert_false (rndz_portmap_get_mapped (portmap, NULL));
  g_assert_cmpuint (gateway->received->len, ==, 1 + 3);

  n = gateway->received->len;
  rndz_test_run_for (gateway->context, 500);
  g_assert_cmpuint (gateway->received->len, ==, n);
}

/* A gateway that never answers: PCP, then NAT-PMP, then quiet */
static void
test_portmap_silent (void)
{
  g_autoptr(Gateway) gateway = gateway_new (GATEWAY_SILENT, 0);
  g_autoptr(RndzPortmap) portmap = NULL;
  Mapped state = { 0 };
  guint pcp = 0, natpmp = 0, n;

  g_test_summary ("A silent gateway is given up on within 4 s; nothing more is sent");
  portmap = rndz_portmap_new (gateway->context, FALSE, 4244, mapped_cb, &state);
  g_assert_nonnull (portmap);
  rndz_test_run_for (gateway->context, 4000);
  n = gateway->received->len;
  for (guint i = 0; i < n; i++)
    {
      gsize len;
      const guint8 *req = gateway_get (gateway, i, &len);

      if (req[0] == 2)
        pcp++;
      else
        natpmp++;
    }
  g_test_message ("%u PCP and %u NAT-PMP requests", pcp, natpmp);
  g_assert_cmpuint (pcp, ==, 3);
  g_assert_cmpuint (natpmp, >=, 1);
  g_assert_cmpuint (natpmp, <=, 6);

  rndz_test_run_for (gateway->context, 1500);
  g_assert_cmpuint (gateway->received->len, ==, n);
  g_assert_cmpuint (state.calls, ==, 0);
  g_assert_false (rndz_portmap_get_mapped (portmap, NULL));
}

static void
test_portmap_no_gateway (void)
{
  Mapped state = { 0 };

  g_test_summary ("Without a gateway nothing is sent, nothing is kept");
  g_setenv ("RNDZ_PORTMAP_GATEWAY", "none", TRUE);
  g_assert_null (rndz_portmap_new (g_main_context_default (), FALSE, 4245,
                                   mapped_cb, &state));
}

/* A listening client, with a fake rendezvous server: a raw socket that
 * answers each ping with a pong, and keeps the latest ping */

typedef struct
{
  GSocket *socket;
  GSource *source;
  char *address;
  RndzMessage last_ping;
  guint pings;
} FakeServer;

static gboolean
fake_server_read_cb (GSocket      *socket,
                     GIOCondition  condition,
                     gpointer      user_data)
{
  FakeServer *server = user_data;
  g_autoptr(GSocketAddress) from = NULL;
  char buf[2048];
  RndzMessage ping, pong;
  gssize len;

  len = g_socket_receive_from (socket, &from, buf, sizeof buf, NULL, NULL);
  if (len <= 0 || !rndz_message_decode (&ping, buf, len, sizeof buf, NULL) ||
      ping.type != RNDZ_MESSAGE_PING)
    return G_SOURCE_CONTINUE;

  server->last_ping = ping;
  server->pings++;
  rndz_message_init (&pong, RNDZ_MESSAGE_PONG, ping.tid);
  rndz_addr_from_socket_address (&pong.addr, from);
  len = rndz_message_encode (&pong, buf, sizeof buf);
  g_socket_send_to (socket, from, buf, len, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

static FakeServer *
fake_server_new (void)
{
  FakeServer *server = g_new0 (FakeServer, 1);
  guint16 port = rndz_test_free_port ();
  g_autoptr(GInetAddress) inet = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, port);
  g_autoptr(GError) error = NULL;

  server->socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                 G_SOCKET_PROTOCOL_UDP, &error);
  g_assert_no_error (error);
  g_socket_bind (server->socket, address, FALSE, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (server->socket, FALSE);
  server->source = g_socket_create_source (server->socket, G_IO_IN, NULL);
  g_source_set_callback (server->source, G_SOURCE_FUNC (fake_server_read_cb), server, NULL);
  g_source_attach (server->source, NULL);
  server->address = g_strdup_printf ("127.0.0.1:%u", port);
  return server;
}

static void
fake_server_free (FakeServer *server)
{
  g_source_destroy (server->source);
  g_source_unref (server->source);
  g_socket_close (server->socket, NULL);
  g_object_unref (server->socket);
  g_free (server->address);
  g_free (server);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeServer, fake_server_free)

static gboolean
ping_has_cand (gpointer data)
{
  FakeServer *server = data;
  RndzAddr want;

  rndz_addr_parse (&want, PUBLIC_IP ":1", NULL);
  for (guint i = 0; i < server->last_ping.n_cands; i++)
    if (rndz_addr_same_host (&server->last_ping.cands[i], &want))
      return TRUE;
  return FALSE;
}

/* Listens; returns how long the listen took, in µs */
static gint64
listen_udp (RndzClient *client,
            GSocket   **socket)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();

  rndz_client_listen_udp_async (client, NULL, rndz_test_async_cb, &result);
  *socket = rndz_client_listen_udp_finish (client,
                                           rndz_test_wait_async (NULL, &result, WAIT_MS),
                                           &error);
  g_assert_no_error (error);
  return g_get_monotonic_time () - start;
}

static void
test_client_mapped_candidate (void)
{
  g_autoptr(FakeServer) server = fake_server_new ();
  g_autoptr(Gateway) gateway = gateway_new (GATEWAY_PCP, 3600);
  const char *servers[] = { server->address, NULL };
  g_autoptr(RndzClient) client = rndz_client_new ("alice", servers);
  g_autoptr(GSocket) socket = NULL;
  const guint8 *req;
  guint16 local_port, mapped_port;
  gsize len;
  char text[RNDZ_ADDR_STRLEN];

  g_test_summary ("A listener's mapped address joins its pings at once; deleted on stop");
  {
    gboolean on = FALSE;

    g_object_get (client, "port-mapping", &on, NULL);
    g_assert_true (on);
  }
  rndz_client_set_keepalive_interval (client, 60000);
  listen_udp (client, &socket);
  local_port = rndz_client_get_local_port (client);

  /* The PCP request maps a UDP port of its own (M), not P */
  gateway_wait (gateway, 1, WAIT_MS);
  req = gateway_get (gateway, 0, &len);
  mapped_port = get_u16 (req + 40);
  g_assert_cmpuint (req[36], ==, RNDZ_PCP_PROTO_UDP);
  g_assert_cmpuint (mapped_port, !=, local_port);

  /* Then a ping at once, not after the keepalive interval */
  g_assert_true (rndz_test_run_until (NULL, ping_has_cand, server, WAIT_MS));
  for (guint i = 0; i < server->last_ping.n_cands; i++)
    if (server->last_ping.cands[i].port == mapped_port)
      g_test_message ("candidate %s", rndz_addr_format (&server->last_ping.cands[i], text));
  g_assert_cmpuint (server->pings, >=, 2);

  /* Stopped: the mapping is deleted */
  rndz_client_stop (client);
  gateway_wait (gateway, 2, WAIT_MS);
  req = gateway_get (gateway, 1, &len);
  g_assert_cmpuint (get_u32 (req + 4), ==, 0);
  g_assert_cmpuint (get_u16 (req + 40), ==, mapped_port);
}

/* A silent gateway does not hold up the first registration; with
 * port-mapping off, nothing goes to it */
static void
test_client_no_delay (void)
{
  g_autoptr(FakeServer) server = fake_server_new ();
  g_autoptr(Gateway) gateway = gateway_new (GATEWAY_SILENT, 0);
  const char *servers[] = { server->address, NULL };
  gint64 us[2];

  g_test_summary ("Registration takes as long with port mapping on as off; off sends nothing");
  for (guint on = 0; on < 2; on++)
    {
      g_autoptr(RndzClient) client = rndz_client_new ("alice", servers);
      g_autoptr(GSocket) socket = NULL;

      g_object_set (client, "port-mapping", on, NULL);
      us[on] = listen_udp (client, &socket);
      rndz_test_run_for (NULL, 300);
      if (on)
        g_assert_cmpuint (gateway->received->len, >=, 1);
      else
        g_assert_cmpuint (gateway->received->len, ==, 0);
      rndz_client_stop (client);
    }

  g_test_message ("registered in %.2f ms with port mapping on, %.2f ms off",
                  us[1] / 1000.0, us[0] / 1000.0);
  g_assert_cmpint (us[1], <, us[0] + 100 * 1000);
}

/* A UDP check through the mapping: a requester behind a NAT that gives
 * each destination a port of its own, faked on loopback. The server
 * sees bob at 127.0.0.3:Q; his check to alice's mapped port M comes from
 * 127.0.0.3:Q2, which nobody has seen. */

typedef struct
{
  char *peer_id;
  GSocket *socket;
} PeerSocket;

static void
peer_socket_cb (RndzClient *client,
                const char *peer_id,
                GSocket    *socket,
                gpointer    user_data)
{
  PeerSocket *got = user_data;

  g_free (got->peer_id);
  got->peer_id = g_strdup (peer_id);
  g_set_object (&got->socket, socket);
}

static GSocket *
udp_on (const char *host,
        RndzAddr   *local)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_string (host);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (inet, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, &error);
  g_assert_no_error (error);
  g_socket_bind (socket, address, FALSE, &error);
  g_assert_no_error (error);
  g_socket_set_blocking (socket, FALSE);
  bound = g_socket_get_local_address (socket, &error);
  g_assert_no_error (error);
  if (local != NULL)
    g_assert_true (rndz_addr_from_socket_address (local, bound));
  return g_steal_pointer (&socket);
}

static void
send_msg (GSocket         *socket,
          const RndzAddr  *to,
          RndzMessageType  type,
          guint32          tid,
          gboolean         padded)
{
  g_autoptr(GSocketAddress) address = rndz_addr_to_socket_address (to, G_SOCKET_FAMILY_IPV4);
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  RndzMessage msg;
  gsize len;

  rndz_message_init (&msg, type, tid);
  g_strlcpy (msg.id, "bob", sizeof msg.id);
  g_strlcpy (msg.target, "alice", sizeof msg.target);
  if (padded)
    msg.pad_to = rndz_message_max_reply_size (&msg);
  len = rndz_message_encode (&msg, buf, sizeof buf);
  g_assert_cmpint (g_socket_send_to (socket, address, buf, len, NULL, NULL), ==, len);
}

/* The next message of @type on @socket, within @timeout_ms */
static gboolean
recv_msg (GSocket         *socket,
          RndzMessageType  type,
          RndzAddr        *from,
          RndzMessage     *msg,
          guint            timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      g_autoptr(GSocketAddress) address = NULL;
      char buf[RNDZ_MESSAGE_MAX_MAX_SIZE];
      gint64 left;
      gssize n;

      n = g_socket_receive_from (socket, &address, buf, sizeof buf, NULL, NULL);
      if (n > 0 && rndz_message_decode (msg, buf, n, sizeof buf, NULL) && msg->type == type)
        {
          g_assert_true (rndz_addr_from_socket_address (from, address));
          return TRUE;
        }
      if (n > 0)
        continue;
      left = deadline - g_get_monotonic_time ();
      if (left <= 0 || !rndz_test_run_until_readable (NULL, socket, left / 1000 + 1))
        return FALSE;
    }
}

static void
test_client_check_through_mapping (void)
{
  g_autoptr(RndzServer) server = rndz_server_new ();
  guint16 server_port = rndz_test_server_listen (server, G_SOCKET_FAMILY_IPV4, 0);
  g_autofree char *server_string = rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4,
                                                              server_port);
  RndzAddr server_addr = rndz_test_addr (server_string);
  g_autoptr(Gateway) gateway = gateway_new (GATEWAY_PCP, 3600);
  const char *servers[] = { server_string, NULL };
  g_autoptr(RndzClient) client = rndz_client_new ("alice", servers);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocket) bob = NULL;
  g_autoptr(GSocket) bob_other = NULL;
  g_autoptr(GSocket) evil = NULL;
  g_autoptr(GSocketAddress) remote = NULL;
  PeerSocket got = { NULL, NULL };
  RndzAddr mapped, from, alice_m, other;
  RndzMessage msg;
  guint32 tid = g_random_int ();
  gboolean offered = FALSE;
  gsize len;

  g_test_summary ("UDP: a check through the mapped port from a port nobody saw gets in");
  g_signal_connect (client, "peer-socket", G_CALLBACK (peer_socket_cb), &got);
  listen_udp (client, &socket);
  gateway_wait (gateway, 1, WAIT_MS);
  alice_m = rndz_test_addr ("127.0.0.1:1");
  alice_m.port = get_u16 ((const guint8 *) gateway_get (gateway, 0, &len) + 40);
  mapped = rndz_test_addr (PUBLIC_IP ":1");
  mapped.port = alice_m.port;

  /* bob asks the server for alice; the redirect offers the mapping
   * (once alice's ping with it has reached the server) */
  bob = udp_on ("127.0.0.3", NULL);
  for (guint i = 0; i < 20 && !offered; i++)
    {
      send_msg (bob, &server_addr, RNDZ_MESSAGE_ISYNC, tid, TRUE);
      g_assert_true (recv_msg (bob, RNDZ_MESSAGE_REDIRECT, &from, &msg, WAIT_MS));
      for (guint c = 0; c < msg.n_cands; c++)
        offered |= rndz_addr_equal (&msg.cands[c], &mapped);
      if (!offered)
        rndz_test_run_for (NULL, 50);
    }
  g_assert_true (offered);

  /* A stranger's check on M, with bob's id: not answered */
  evil = udp_on ("127.0.0.2", NULL);
  send_msg (evil, &alice_m, RNDZ_MESSAGE_CHECK, tid, FALSE);
  g_assert_false (recv_msg (evil, RNDZ_MESSAGE_CONFIRM, &from, &msg, 300));

  /* bob's check on M from another port: confirmed from M */
  bob_other = udp_on ("127.0.0.3", &other);
  send_msg (bob_other, &alice_m, RNDZ_MESSAGE_CHECK, tid, FALSE);
  g_assert_true (recv_msg (bob_other, RNDZ_MESSAGE_CONFIRM, &from, &msg, WAIT_MS));
  g_assert_true (rndz_addr_equal (&from, &alice_m));
  g_assert_cmpuint (msg.tid, ==, tid);

  /* and his use: answered from M, on the socket the application gets */
  send_msg (bob_other, &alice_m, RNDZ_MESSAGE_USE, tid, FALSE);
  g_assert_true (recv_msg (bob_other, RNDZ_MESSAGE_USE, &from, &msg, WAIT_MS));
  g_assert_true (rndz_addr_equal (&from, &alice_m));
  g_assert_true (rndz_test_run_until_set (NULL, (gpointer *) &got.socket, WAIT_MS));
  g_assert_cmpstr (got.peer_id, ==, "bob");
  remote = g_socket_get_remote_address (got.socket, NULL);
  g_assert_true (rndz_addr_from_socket_address (&from, remote));
  g_assert_true (rndz_addr_equal (&from, &other));

  rndz_client_stop (client);
  g_socket_close (got.socket, NULL);
  g_clear_object (&got.socket);
  g_free (got.peer_id);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/portmap/pcp/encode", test_pcp_encode);
  g_test_add_func ("/portmap/pcp/decode", test_pcp_decode);
  g_test_add_func ("/portmap/pcp/decode-invalid", test_pcp_decode_invalid);
  g_test_add_func ("/portmap/gateway/pcp", test_portmap_pcp);
  g_test_add_func ("/portmap/gateway/natpmp", test_portmap_natpmp);
  g_test_add_func ("/portmap/gateway/lost", test_portmap_lost);
  g_test_add_func ("/portmap/gateway/silent", test_portmap_silent);
  g_test_add_func ("/portmap/gateway/none", test_portmap_no_gateway);
  g_test_add_func ("/portmap/client/mapped-candidate", test_client_mapped_candidate);
  g_test_add_func ("/portmap/client/no-delay", test_client_no_delay);
  g_test_add_func ("/portmap/client/check-through-mapping", test_client_check_through_mapping);

  return g_test_run ();
}
