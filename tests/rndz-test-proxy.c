/* rndz-test-proxy.c: a proxy between peers and a server, or its relay
 *
 * SPDX-License-Identifier: MIT
 *
 * See rndz-test-proxy.h. Its sockets are blocking: each is read only
 * when its source says it is readable, and what it writes (messages,
 * and the few bytes of a test's exchange) fits the kernel's buffers on
 * the loopback.
 */

#define _GNU_SOURCE /* memmem() */
#include "config.h"

#include <string.h>

#include "rndz-test-proxy.h"
#include "rndz-test-util.h"

#define BUF_SIZE 65536

typedef struct
{
  RndzTestProxy *proxy;
  GSocketAddress *peer;         /* the peer, as the proxy sees it */
  GSocket *down;                /* TCP: the peer's connection */
  GSocket *up;                  /* to the server: one per peer */
  GSource *down_source;
  GSource *up_source;
  GByteArray *pending;          /* TCP, messages: server bytes short of a frame */
  GByteArray *carried;          /* raw: every byte forwarded, both ways */
} Flow;

struct _RndzTestProxy
{
  RndzTransport transport;
  gboolean messages;
  GSocket *socket;              /* UDP: the peers' side; TCP: listening */
  GSource *source;
  GSocketAddress *upstream;
  GHashTable *flows;            /* UDP: the peer's "HOST:PORT" → Flow */
  GPtrArray *all_flows;         /* every Flow, closed ones too: what they carried */
  GHashTable *restore;          /* an up socket's "HOST:PORT" → the peer's RndzAddr */
  GPtrArray *held;              /* GSources of datagrams held back */
  RndzTestProxyRewrite rewrite;
  gpointer rewrite_data;
  guint16 relay_port;
};

static void
flow_close (Flow *flow)
{
  g_clear_pointer (&flow->down_source, g_source_destroy);
  g_clear_pointer (&flow->up_source, g_source_destroy);
  if (flow->down != NULL)
    g_socket_close (flow->down, NULL);
  if (flow->up != NULL)
    g_socket_close (flow->up, NULL);
}

static void
flow_free (Flow *flow)
{
  flow_close (flow);
  g_clear_object (&flow->peer);
  g_clear_object (&flow->down);
  g_clear_object (&flow->up);
  g_clear_pointer (&flow->pending, g_byte_array_unref);
  g_clear_pointer (&flow->carried, g_byte_array_unref);
  g_free (flow);
}

static char *
address_key (GSocketAddress *address)
{
  RndzAddr addr;
  char buf[RNDZ_ADDR_STRLEN];

  g_assert_true (rndz_addr_from_socket_address (&addr, address));
  return g_strdup (rndz_addr_format (&addr, buf));
}

static void
send_all (GSocket    *socket,
          const char *data,
          gsize       len)
{
  while (len > 0)
    {
      gssize sent = g_socket_send (socket, data, len, NULL, NULL);

      if (sent <= 0)
        return;
      data += sent;
      len -= sent;
    }
}

/* Messages from the server */

/* The server saw the proxy's socket where the peer is */
static void
restore_addr (RndzTestProxy *proxy,
              RndzAddr      *addr)
{
  char buf[RNDZ_ADDR_STRLEN];
  const RndzAddr *peer;

  if (addr->family == 0)
    return;
  peer = g_hash_table_lookup (proxy->restore, rndz_addr_format (addr, buf));
  if (peer != NULL)
    *addr = *peer;
}

/* @data rewritten into @out (at least BUF_SIZE bytes): returns its
 * length, and the delay in @delay_ms (-1: drop it) */
static gsize
rewrite_message (RndzTestProxy *proxy,
                 const char    *data,
                 gsize          len,
                 char          *out,
                 gint          *delay_ms)
{
  RndzMessage msg;

  *delay_ms = 0;
  if (!rndz_message_decode (&msg, data, len, RNDZ_MESSAGE_MAX_MAX_SIZE, NULL))
    {
      memcpy (out, data, len);
      return len;
    }
  restore_addr (proxy, &msg.addr);
  restore_addr (proxy, &msg.seen);
  if (msg.type == RNDZ_MESSAGE_SESSION && proxy->relay_port != 0)
    msg.port = proxy->relay_port;
  if (proxy->rewrite != NULL)
    *delay_ms = proxy->rewrite (&msg, proxy->rewrite_data);
  msg.pad_to = len;
  return rndz_message_encode (&msg, out, BUF_SIZE);
}

/* UDP */

typedef struct
{
  GSocket *socket;
  GSocketAddress *to;
  GBytes *datagram;
} Held;

static void
held_free (Held *held)
{
  g_object_unref (held->socket);
  g_object_unref (held->to);
  g_bytes_unref (held->datagram);
  g_free (held);
}

static gboolean
held_send_cb (gpointer user_data)
{
  Held *held = user_data;
  gsize len;
  const char *data = g_bytes_get_data (held->datagram, &len);

  g_socket_send_to (held->socket, held->to, data, len, NULL, NULL);
  return G_SOURCE_REMOVE;
}

static void
udp_send_down (RndzTestProxy *proxy,
               Flow          *flow,
               const char    *data,
               gsize          len,
               gint           delay_ms)
{
  Held *held;
  GSource *source;

  if (delay_ms < 0)
    return;
  if (delay_ms == 0)
    {
      g_socket_send_to (proxy->socket, flow->peer, data, len, NULL, NULL);
      return;
    }
  held = g_new0 (Held, 1);
  held->socket = g_object_ref (proxy->socket);
  held->to = g_object_ref (flow->peer);
  held->datagram = g_bytes_new (data, len);
  source = g_timeout_source_new (delay_ms);
  g_source_set_callback (source, held_send_cb, held, (GDestroyNotify) held_free);
  g_source_attach (source, g_main_context_get_thread_default ());
  g_ptr_array_add (proxy->held, source);
}

static gboolean
udp_up_cb (GSocket      *socket,
           GIOCondition  condition,
           gpointer      user_data)
{
  Flow *flow = user_data;
  RndzTestProxy *proxy = flow->proxy;
  g_autofree char *buf = g_malloc (BUF_SIZE);
  g_autofree char *out = NULL;
  gssize len = g_socket_receive (socket, buf, BUF_SIZE, NULL, NULL);
  gint delay_ms = 0;

  if (len <= 0)
    return G_SOURCE_CONTINUE;
  if (!proxy->messages)
    {
      g_byte_array_append (flow->carried, (guint8 *) buf, len);
      udp_send_down (proxy, flow, buf, len, 0);
      return G_SOURCE_CONTINUE;
    }
  out = g_malloc (BUF_SIZE);
  len = rewrite_message (proxy, buf, len, out, &delay_ms);
  udp_send_down (proxy, flow, out, len, delay_ms);
  return G_SOURCE_CONTINUE;
}

/* A peer's own socket to the server, with the peer remembered under its
 * address for restore_addr() */
static GSocket *
flow_connect_up (Flow *flow)
{
  RndzTestProxy *proxy = flow->proxy;
  GSocketType type = proxy->transport == RNDZ_TRANSPORT_UDP ? G_SOCKET_TYPE_DATAGRAM
                                                             : G_SOCKET_TYPE_STREAM;
  g_autoptr(GSocketAddress) any = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, 0);
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) up = g_socket_new (G_SOCKET_FAMILY_IPV4, type, 0, NULL);
  g_autoptr(GError) error = NULL;
  RndzAddr *peer = g_new0 (RndzAddr, 1);

  g_assert_nonnull (up);
  g_socket_bind (up, any, FALSE, &error);
  g_assert_no_error (error);
  g_socket_connect (up, proxy->upstream, NULL, &error);
  g_assert_no_error (error);
  local = g_socket_get_local_address (up, &error);
  g_assert_no_error (error);
  g_assert_true (rndz_addr_from_socket_address (peer, flow->peer));
  g_hash_table_insert (proxy->restore, address_key (local), peer);
  return g_steal_pointer (&up);
}

static GSource *
watch (GSocket         *socket,
       GSocketSourceFunc func,
       gpointer         data)
{
  GSource *source = g_socket_create_source (socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);

  g_source_set_callback (source, (GSourceFunc) (void (*) (void)) func, data, NULL);
  g_source_attach (source, g_main_context_get_thread_default ());
  g_source_unref (source);
  return source;
}

static Flow *
flow_new (RndzTestProxy  *proxy,
          GSocketAddress *peer)
{
  Flow *flow = g_new0 (Flow, 1);

  flow->proxy = proxy;
  flow->peer = g_object_ref (peer);
  flow->carried = g_byte_array_new ();
  flow->pending = g_byte_array_new ();
  flow->up = flow_connect_up (flow);
  g_ptr_array_add (proxy->all_flows, flow);
  return flow;
}

static gboolean
udp_down_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  RndzTestProxy *proxy = user_data;
  g_autofree char *buf = g_malloc (BUF_SIZE);
  g_autoptr(GSocketAddress) from = NULL;
  g_autofree char *key = NULL;
  gssize len = g_socket_receive_from (socket, &from, buf, BUF_SIZE, NULL, NULL);
  Flow *flow;

  if (len <= 0)
    return G_SOURCE_CONTINUE;
  key = address_key (from);
  flow = g_hash_table_lookup (proxy->flows, key);
  if (flow == NULL)
    {
      flow = flow_new (proxy, from);
      flow->up_source = watch (flow->up, udp_up_cb, flow);
      g_hash_table_insert (proxy->flows, g_steal_pointer (&key), flow);
    }
  if (!proxy->messages)
    g_byte_array_append (flow->carried, (guint8 *) buf, len);
  g_socket_send (flow->up, buf, len, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

/* TCP */

/* Whole frames of @flow->pending, rewritten, to the peer */
static void
tcp_send_frames (Flow *flow)
{
  g_autofree char *out = g_malloc (RNDZ_FRAME_HEADER_SIZE + BUF_SIZE);
  GByteArray *pending = flow->pending;

  while (pending->len >= RNDZ_FRAME_HEADER_SIZE)
    {
      gsize len = ((gsize) pending->data[0] << 8) | pending->data[1];
      gint delay_ms;
      gsize out_len;

      if (pending->len < RNDZ_FRAME_HEADER_SIZE + len)
        return;
      out_len = rewrite_message (flow->proxy, (char *) pending->data + RNDZ_FRAME_HEADER_SIZE,
                                 len, out + RNDZ_FRAME_HEADER_SIZE, &delay_ms);
      /* Held frames would hold the stream: TCP has none */
      g_assert_cmpint (delay_ms, ==, 0);
      out[0] = out_len >> 8;
      out[1] = out_len & 0xff;
      send_all (flow->down, out, RNDZ_FRAME_HEADER_SIZE + out_len);
      g_byte_array_remove_range (pending, 0, RNDZ_FRAME_HEADER_SIZE + len);
    }
}

static gboolean
tcp_up_cb (GSocket      *socket,
           GIOCondition  condition,
           gpointer      user_data)
{
  Flow *flow = user_data;
  g_autofree char *buf = g_malloc (BUF_SIZE);
  gssize len = g_socket_receive (socket, buf, BUF_SIZE, NULL, NULL);

  if (len <= 0)
    {
      flow->up_source = NULL;
      flow_close (flow);
      return G_SOURCE_REMOVE;
    }
  if (flow->proxy->messages)
    {
      g_byte_array_append (flow->pending, (guint8 *) buf, len);
      tcp_send_frames (flow);
      return G_SOURCE_CONTINUE;
    }
  g_byte_array_append (flow->carried, (guint8 *) buf, len);
  send_all (flow->down, buf, len);
  return G_SOURCE_CONTINUE;
}

static gboolean
tcp_down_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  Flow *flow = user_data;
  g_autofree char *buf = g_malloc (BUF_SIZE);
  gssize len = g_socket_receive (socket, buf, BUF_SIZE, NULL, NULL);

  if (len <= 0)
    {
      flow->down_source = NULL;
      flow_close (flow);
      return G_SOURCE_REMOVE;
    }
  if (!flow->proxy->messages)
    g_byte_array_append (flow->carried, (guint8 *) buf, len);
  send_all (flow->up, buf, len);
  return G_SOURCE_CONTINUE;
}

static gboolean
tcp_accept_cb (GSocket      *socket,
               GIOCondition  condition,
               gpointer      user_data)
{
  RndzTestProxy *proxy = user_data;
  g_autoptr(GSocket) down = g_socket_accept (socket, NULL, NULL);
  g_autoptr(GSocketAddress) peer = NULL;
  Flow *flow;

  if (down == NULL)
    return G_SOURCE_CONTINUE;
  g_socket_set_blocking (down, TRUE);
  peer = g_socket_get_remote_address (down, NULL);
  g_assert_nonnull (peer);
  flow = flow_new (proxy, peer);
  flow->down = g_steal_pointer (&down);
  flow->down_source = watch (flow->down, tcp_down_cb, flow);
  flow->up_source = watch (flow->up, tcp_up_cb, flow);
  return G_SOURCE_CONTINUE;
}

/* The proxy */

RndzTestProxy *
rndz_test_proxy_new (RndzTransport transport,
                     guint16       upstream_port,
                     gboolean      messages)
{
  RndzTestProxy *proxy = g_new0 (RndzTestProxy, 1);
  gboolean udp = transport == RNDZ_TRANSPORT_UDP;

  proxy->transport = transport;
  proxy->messages = messages;
  proxy->upstream = rndz_test_loopback_address (G_SOCKET_FAMILY_IPV4, upstream_port);
  proxy->flows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  proxy->all_flows = g_ptr_array_new_with_free_func ((GDestroyNotify) flow_free);
  proxy->restore = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  proxy->held = g_ptr_array_new_with_free_func ((GDestroyNotify) g_source_unref);
  proxy->socket = rndz_test_socket_new (G_SOCKET_FAMILY_IPV4,
                                        udp ? G_SOCKET_TYPE_DATAGRAM : G_SOCKET_TYPE_STREAM,
                                        NULL);
  g_socket_set_blocking (proxy->socket, TRUE);
  proxy->source = watch (proxy->socket, udp ? udp_down_cb : tcp_accept_cb, proxy);
  return proxy;
}

void
rndz_test_proxy_free (RndzTestProxy *proxy)
{
  g_source_destroy (proxy->source);
  for (guint i = 0; i < proxy->held->len; i++)
    g_source_destroy (proxy->held->pdata[i]);
  g_ptr_array_unref (proxy->held);
  g_hash_table_unref (proxy->flows);
  g_ptr_array_unref (proxy->all_flows);
  g_hash_table_unref (proxy->restore);
  g_socket_close (proxy->socket, NULL);
  g_object_unref (proxy->socket);
  g_object_unref (proxy->upstream);
  g_free (proxy);
}

guint16
rndz_test_proxy_get_port (RndzTestProxy *proxy)
{
  g_autoptr(GSocketAddress) local = g_socket_get_local_address (proxy->socket, NULL);

  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
}

/* "127.0.0.1:PORT", for rndz_client_new() */
char *
rndz_test_proxy_get_address (RndzTestProxy *proxy)
{
  return rndz_test_loopback_string (G_SOCKET_FAMILY_IPV4, rndz_test_proxy_get_port (proxy));
}

void
rndz_test_proxy_set_rewrite (RndzTestProxy        *proxy,
                             RndzTestProxyRewrite  rewrite,
                             gpointer              user_data)
{
  proxy->rewrite = rewrite;
  proxy->rewrite_data = user_data;
}

/* The port that sessions name instead of the server's relay port: that
 * of a raw proxy in front of the relay */
void
rndz_test_proxy_set_relay_port (RndzTestProxy *proxy,
                                guint16        port)
{
  proxy->relay_port = port;
}

/* Raw mode: how many bytes the proxy forwarded, both ways */
gsize
rndz_test_proxy_get_carried (RndzTestProxy *proxy)
{
  gsize total = 0;

  for (guint i = 0; i < proxy->all_flows->len; i++)
    total += ((Flow *) proxy->all_flows->pdata[i])->carried->len;
  return total;
}

/* Raw mode: whether @text appears in what the proxy forwarded on one
 * flow, both ways end to end: datagrams are searched joined up too, so
 * that a text split across two of them is found */
gboolean
rndz_test_proxy_has_carried (RndzTestProxy *proxy,
                             const char    *text)
{
  for (guint i = 0; i < proxy->all_flows->len; i++)
    {
      GByteArray *carried = ((Flow *) proxy->all_flows->pdata[i])->carried;

      if (memmem (carried->data, carried->len, text, strlen (text)) != NULL)
        return TRUE;
    }
  return FALSE;
}
