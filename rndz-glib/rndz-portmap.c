/* rndz-portmap.c: asking the home router for a port mapping
 *
 * SPDX-License-Identifier: MIT
 *
 * A listener behind a NAT that gives each destination a port of its own
 * cannot be reached at the address the server sees; but the router may
 * map a public port to ours on request. Three protocols do it:
 *
 * - PCP (RFC 6887), MAP opcode, to the default gateway's port 5351
 *   (rndz-pcp.c): tried first, it says the most in one round trip;
 * - NAT-PMP (RFC 6886), PCP's predecessor on the same port, through
 *   libnatpmp: when the gateway answers PCP with version 0, or not at
 *   all;
 * - UPnP-IGD (SOAP over HTTP after an SSDP search), through
 *   GUPnPSimpleIgd: alongside the other two, started a little later so
 *   that a router that speaks PCP is not asked twice.
 *
 * Phases: no gateway → nothing, ever (no packet leaves) · PCP → NAT-PMP
 * (each bounded: PCP_TRIES sends over 1.75 s, NAT-PMP NATPMP_WAIT_MS) ·
 * UPnP from UPNP_DELAY_MS, for at most UPNP_WAIT_MS · mapped: the first
 * that maps wins, the others stop (a later UPnP mapping is removed) ·
 * renewal at half the lease (PCP and NAT-PMP; GUPnPSimpleIgd renews its
 * own); a renewal that gets no answer loses the mapping · freed: PCP and
 * NAT-PMP send a delete (lifetime 0) without waiting for the answer,
 * UPnP removes its mapping (a request that needs the context to run a
 * little longer).
 *
 * Tests set RNDZ_PORTMAP_GATEWAY: "none" (no gateway), or an IPv4
 * address (a fake PCP/NAT-PMP server on loopback), which also keeps
 * UPnP's multicast search off the network.
 */

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <glib-unix.h>

#ifdef HAVE_NATPMP
#include <natpmp.h>
#endif
#ifdef HAVE_GUPNP_IGD
#include <gmodule.h>
#include <libgupnp-igd/gupnp-simple-igd.h>
#endif

#include "rndz-pcp-private.h"
#include "rndz-portmap-private.h"
#include "rndz-source-private.h"

/* What we ask for: two hours, renewed after one */
#define LIFETIME_S 7200
/* PCP: sends at 0, 250 and 750 ms, given up at 1750 ms */
#define PCP_TRIES 3
#define PCP_FIRST_RETRY_MS 250
#define NATPMP_WAIT_MS 2000
#define UPNP_DELAY_MS 300
#define UPNP_WAIT_MS 10000
#define DESCRIPTION "rndz-glib"

typedef enum
{
  METHOD_NONE,
  METHOD_PCP,
  METHOD_NATPMP,
  METHOD_UPNP,
} Method;

struct _RndzPortmap
{
  GMainContext *context;
  gboolean tcp;
  guint16 internal_port;
  RndzPortmapFunc func;
  gpointer user_data;

  struct in_addr gateway;
  guint8 client_ip[16];         /* ours towards the gateway, IPv4-mapped */
  char local_ip[INET_ADDRSTRLEN];

  Method method;                /* whose mapping we hold */
  RndzAddr mapped;
  GSource *renew;

  /* PCP */
  GSocket *pcp_socket;
  GSource *pcp_source;
  GSource *pcp_timer;
  RndzPcpMap pcp_request;
  guint pcp_tries;
  gboolean pcp_sent;

  /* NAT-PMP */
#ifdef HAVE_NATPMP
  natpmp_t natpmp;
  gboolean natpmp_open;
  gboolean natpmp_sent;         /* a mapping request left */
  struct in_addr natpmp_public;
  GSource *natpmp_source;
  GSource *natpmp_timer;
  GSource *natpmp_deadline;
#endif

  /* UPnP-IGD */
#ifdef HAVE_GUPNP_IGD
  GUPnPSimpleIgd *igd;
  GSource *upnp_timer;
#endif
};

static void portmap_mapped     (RndzPortmap *self,
                                Method       method,
                                const guint8 ip[4],
                                guint16      port,
                                guint32      lifetime);
static void pcp_send           (RndzPortmap *self);
static void natpmp_start       (RndzPortmap *self);
static void natpmp_close       (RndzPortmap *self);
static void upnp_stop          (RndzPortmap *self);

/* The gateway */

/* The IPv4 default route's gateway, from /proc/net/route */
static gboolean
read_default_gateway (struct in_addr *gateway)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/net/route", &contents, NULL, NULL))
    return FALSE;

  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      char iface[64];
      unsigned int dest, gw, flags, mask;
      int refcnt, use, metric;

      /* Iface Destination Gateway Flags RefCnt Use Metric Mask: the
       * addresses as the kernel stores them, in network order */
      if (sscanf (lines[i], "%63s %x %x %x %d %d %d %x", iface, &dest, &gw, &flags,
                  &refcnt, &use, &metric, &mask) == 8 &&
          dest == 0 && mask == 0 && (flags & 0x3) == 0x3 && gw != 0)
        {
          gateway->s_addr = gw;
          return TRUE;
        }
    }
  return FALSE;
}

/* The gateway, and whether it is a test's */
static gboolean
find_gateway (struct in_addr *gateway,
              gboolean       *test)
{
  const char *forced = g_getenv ("RNDZ_PORTMAP_GATEWAY");

  *test = forced != NULL;
  if (forced != NULL)
    return inet_pton (AF_INET, forced, gateway) == 1;
  return read_default_gateway (gateway);
}

/* A socket connected to the gateway's port 5351: the kernel picks our
 * address towards it, which PCP and UPnP need to name */
static gboolean
portmap_open_socket (RndzPortmap  *self,
                     GError      **error)
{
  g_autoptr(GInetAddress) inet = g_inet_address_new_from_bytes ((guint8 *) &self->gateway,
                                                                G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) to = g_inet_socket_address_new (inet, RNDZ_PCP_PORT);
  g_autoptr(GSocketAddress) local = NULL;
  g_autoptr(GSocket) socket = NULL;
  const guint8 *bytes;

  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                         G_SOCKET_PROTOCOL_UDP, error);
  if (socket == NULL || !g_socket_connect (socket, to, NULL, error))
    return FALSE;
  local = g_socket_get_local_address (socket, error);
  if (local == NULL)
    return FALSE;

  g_socket_set_blocking (socket, FALSE);
  bytes = g_inet_address_to_bytes (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (local)));
  memset (self->client_ip, 0, 10);
  memset (self->client_ip + 10, 0xff, 2);
  memcpy (self->client_ip + 12, bytes, 4);
  inet_ntop (AF_INET, bytes, self->local_ip, sizeof self->local_ip);
  self->pcp_socket = g_steal_pointer (&socket);
  return TRUE;
}

/* PCP */

static void
pcp_close (RndzPortmap *self)
{
  rndz_source_clear (&self->pcp_source);
  rndz_source_clear (&self->pcp_timer);
}

/* No answer, a NAT-PMP server, or one that does not know version 2 */
static void
pcp_give_up (RndzPortmap *self,
             const char  *why)
{
  gboolean renewing = self->method == METHOD_PCP;

  g_debug ("PCP: %s", why);
  pcp_close (self);
  if (renewing)
    {
      /* The router forgot us, or went */
      self->method = METHOD_NONE;
      rndz_source_clear (&self->renew);
      self->func (NULL, self->user_data);
    }
  else if (self->method == METHOD_NONE)
    natpmp_start (self);
}

static gboolean
pcp_retry_cb (gpointer user_data)
{
  RndzPortmap *self = user_data;

  g_clear_pointer (&self->pcp_timer, g_source_unref);
  if (self->pcp_tries < PCP_TRIES)
    pcp_send (self);
  else
    pcp_give_up (self, "no answer from the gateway");
  return G_SOURCE_REMOVE;
}

static void
pcp_send (RndzPortmap *self)
{
  guint8 buf[RNDZ_PCP_MAP_SIZE];
  g_autoptr(GError) error = NULL;

  rndz_pcp_encode_map (&self->pcp_request, self->client_ip, buf);
  if (g_socket_send (self->pcp_socket, (const char *) buf, sizeof buf, NULL, &error) < 0)
    g_debug ("PCP: cannot send: %s", error->message);
  else
    self->pcp_sent = TRUE;

  self->pcp_timer = rndz_timeout_add (self->context, PCP_FIRST_RETRY_MS << self->pcp_tries,
                                      pcp_retry_cb, self);
  self->pcp_tries++;
}

static void
pcp_handle (RndzPortmap           *self,
            const RndzPcpResponse *response)
{
  const RndzPcpMap *map = &response->map;
  static const guint8 v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

  if (response->result == RNDZ_PCP_UNSUPP_VERSION)
    {
      self->pcp_sent = FALSE;   /* it mapped nothing: no delete */
      pcp_give_up (self, "the gateway does not speak version 2");
      return;
    }
  if (response->result != RNDZ_PCP_SUCCESS)
    {
      /* NAT-PMP would be refused the same: the same server */
      g_debug ("PCP: the gateway refused: %s", rndz_pcp_result_to_string (response->result));
      pcp_close (self);
      if (self->method == METHOD_PCP)
        pcp_give_up (self, "the mapping was not renewed");
      return;
    }
  if (memcmp (map->external_ip, v4_mapped, 12) != 0 || map->external_port == 0 ||
      map->lifetime == 0)
    {
      g_debug ("PCP: an answer without an IPv4 address and port");
      return;
    }

  /* Renewals suggest what we have (RFC 6887, 11.2.1) */
  self->pcp_request.external_port = map->external_port;
  memcpy (self->pcp_request.external_ip, map->external_ip, 16);
  pcp_close (self);
  portmap_mapped (self, METHOD_PCP, map->external_ip + 12, map->external_port, map->lifetime);
}

static gboolean
pcp_read_cb (GSocket      *socket,
             GIOCondition  condition,
             gpointer      user_data)
{
  RndzPortmap *self = user_data;
  guint8 buf[RNDZ_PCP_MAX_SIZE];
  g_autoptr(GError) error = NULL;
  RndzPcpResponse response;
  gssize len;

  len = g_socket_receive (socket, (char *) buf, sizeof buf, NULL, &error);
  if (len < 0)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return G_SOURCE_CONTINUE;
      /* An ICMP error: nothing listens on port 5351, NAT-PMP included;
       * while renewing, the mapping is lost */
      if (self->method == METHOD_PCP)
        pcp_give_up (self, error->message);
      else
        {
          g_debug ("PCP: %s", error->message);
          pcp_close (self);
        }
      return G_SOURCE_REMOVE;
    }

  switch (rndz_pcp_decode_map (buf, len, &self->pcp_request, &response))
    {
    case RNDZ_PCP_REPLY_OLD_VERSION:
      self->pcp_sent = FALSE;
      pcp_give_up (self, "the gateway speaks NAT-PMP");
      break;
    case RNDZ_PCP_REPLY_MAP:
      pcp_handle (self, &response);
      break;
    case RNDZ_PCP_REPLY_INVALID:
      break;
    }
  return self->pcp_source != NULL ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* The request, or a renewal (the same nonce), with its retries */
static void
pcp_start (RndzPortmap *self)
{
  pcp_close (self);
  self->pcp_request.lifetime = LIFETIME_S;
  self->pcp_tries = 0;
  self->pcp_source = rndz_socket_source_add (self->pcp_socket, self->context, pcp_read_cb,
                                             self, "[rndz] port mapping");
  pcp_send (self);
}

static void
pcp_init_request (RndzPortmap *self)
{
  RndzPcpMap *map = &self->pcp_request;

  for (guint i = 0; i < RNDZ_PCP_NONCE_SIZE; i += 4)
    {
      guint32 r = g_random_int ();

      memcpy (map->nonce + i, &r, 4);
    }
  map->protocol = self->tcp ? RNDZ_PCP_PROTO_TCP : RNDZ_PCP_PROTO_UDP;
  map->internal_port = self->internal_port;
  /* Routers that can keep the port do: easier to read in a log */
  map->external_port = self->internal_port;
}

/* Once, when freed: deleting needs no answer, and a lost one times out */
static void
pcp_delete (RndzPortmap *self)
{
  guint8 buf[RNDZ_PCP_MAP_SIZE];

  if (!self->pcp_sent || self->pcp_socket == NULL)
    return;

  self->pcp_request.lifetime = 0;
  rndz_pcp_encode_map (&self->pcp_request, self->client_ip, buf);
  g_socket_send (self->pcp_socket, (const char *) buf, sizeof buf, NULL, NULL);
}

/* NAT-PMP */

#ifdef HAVE_NATPMP

static void
natpmp_close (RndzPortmap *self)
{
  rndz_source_clear (&self->natpmp_source);
  rndz_source_clear (&self->natpmp_timer);
  rndz_source_clear (&self->natpmp_deadline);
}

static void
natpmp_fail (RndzPortmap *self,
             const char  *why)
{
  g_debug ("NAT-PMP: %s", why);
  natpmp_close (self);
  if (self->method == METHOD_NATPMP)
    {
      self->method = METHOD_NONE;
      rndz_source_clear (&self->renew);
      self->func (NULL, self->user_data);
    }
}

static gboolean natpmp_retry_cb (gpointer user_data);

/* libnatpmp resends by itself when read after its own timeout */
static void
natpmp_arm (RndzPortmap *self)
{
  struct timeval tv;
  guint ms = 250;

  if (getnatpmprequesttimeout (&self->natpmp, &tv) == 0)
    ms = CLAMP (tv.tv_sec * 1000 + tv.tv_usec / 1000, 10, 1000);
  rndz_source_clear (&self->natpmp_timer);
  self->natpmp_timer = rndz_timeout_add (self->context, ms, natpmp_retry_cb, self);
}

static void
natpmp_request_mapping (RndzPortmap *self,
                        guint16      public_port)
{
  int proto = self->tcp ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP;

  if (sendnewportmappingrequest (&self->natpmp, proto, self->internal_port, public_port,
                                 LIFETIME_S) < 0)
    natpmp_fail (self, "cannot send");
  else
    self->natpmp_sent = TRUE;
}

static void
natpmp_handle (RndzPortmap        *self,
               const natpmpresp_t *resp)
{
  if (resp->type == NATPMP_RESPTYPE_PUBLICADDRESS)
    {
      self->natpmp_public = resp->pnu.publicaddress.addr;
      natpmp_request_mapping (self, self->internal_port);
      natpmp_arm (self);
      return;
    }

  rndz_source_clear (&self->natpmp_timer);
  rndz_source_clear (&self->natpmp_deadline);
  if (resp->pnu.newportmapping.mappedpublicport == 0 || resp->pnu.newportmapping.lifetime == 0)
    {
      natpmp_fail (self, "an answer without a port or a lease");
      return;
    }
  portmap_mapped (self, METHOD_NATPMP, (const guint8 *) &self->natpmp_public,
                  resp->pnu.newportmapping.mappedpublicport,
                  resp->pnu.newportmapping.lifetime);
}

static void
natpmp_read (RndzPortmap *self)
{
  natpmpresp_t resp;
  int r = readnatpmpresponseorretry (&self->natpmp, &resp);

  if (r == NATPMP_TRYAGAIN)
    natpmp_arm (self);
  else if (r < 0)
    natpmp_fail (self, "no mapping");
  else
    natpmp_handle (self, &resp);
}

static gboolean
natpmp_retry_cb (gpointer user_data)
{
  RndzPortmap *self = user_data;

  g_clear_pointer (&self->natpmp_timer, g_source_unref);
  natpmp_read (self);
  return G_SOURCE_REMOVE;
}

static gboolean
natpmp_read_cb (int          fd,
                GIOCondition condition,
                gpointer     user_data)
{
  natpmp_read (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
natpmp_deadline_cb (gpointer user_data)
{
  RndzPortmap *self = user_data;

  g_clear_pointer (&self->natpmp_deadline, g_source_unref);
  natpmp_fail (self, "no answer from the gateway");
  return G_SOURCE_REMOVE;
}

/* A first request (the public address, then the mapping), or a renewal */
static void
natpmp_exchange (RndzPortmap *self,
                 gboolean     renew)
{
  natpmp_close (self);
  self->natpmp_source = g_unix_fd_source_new (self->natpmp.s, G_IO_IN);
  g_source_set_callback (self->natpmp_source, G_SOURCE_FUNC (natpmp_read_cb), self, NULL);
  g_source_set_static_name (self->natpmp_source, "[rndz] port mapping");
  g_source_attach (self->natpmp_source, self->context);
  self->natpmp_deadline = rndz_timeout_add (self->context, NATPMP_WAIT_MS,
                                            natpmp_deadline_cb, self);

  if (renew)
    natpmp_request_mapping (self, self->mapped.port);
  else if (sendpublicaddressrequest (&self->natpmp) < 0)
    natpmp_fail (self, "cannot send");
  if (self->natpmp_source != NULL)
    natpmp_arm (self);
}

static void
natpmp_start (RndzPortmap *self)
{
  if (!self->natpmp_open)
    {
      if (initnatpmp (&self->natpmp, 1, self->gateway.s_addr) < 0)
        {
          g_debug ("NAT-PMP: cannot open a socket");
          return;
        }
      self->natpmp_open = TRUE;
    }
  natpmp_exchange (self, FALSE);
}

static void
natpmp_delete (RndzPortmap *self)
{
  if (!self->natpmp_open)
    return;

  natpmp_close (self);
  if (self->natpmp_sent)
    sendnewportmappingrequest (&self->natpmp, self->tcp ? NATPMP_PROTOCOL_TCP : NATPMP_PROTOCOL_UDP,
                               self->internal_port, 0, 0);
  closenatpmp (&self->natpmp);
  self->natpmp_open = FALSE;
}

#else /* !HAVE_NATPMP */

static void
natpmp_start (RndzPortmap *self)
{
  g_debug ("NAT-PMP: not built in");
}

static void
natpmp_close (RndzPortmap *self)
{
}

static void
natpmp_delete (RndzPortmap *self)
{
}

#endif /* HAVE_NATPMP */

/* UPnP-IGD */

#ifdef HAVE_GUPNP_IGD

/* gupnp-igd is opened when first needed (see rndz-glib/meson.build: it
 * brings a dozen libraries whose loading would cost every program that
 * uses rndz-glib at start-up). The three calls it takes. */
typedef struct
{
  __typeof__ (gupnp_simple_igd_new) *new_igd;
  __typeof__ (gupnp_simple_igd_add_port) *add_port;
  __typeof__ (gupnp_simple_igd_remove_port_local) *remove_port_local;
} UpnpApi;

static const UpnpApi *
upnp_api (void)
{
  static gsize loaded = 0;
  static UpnpApi api;
  static gboolean available;

  if (g_once_init_enter (&loaded))
    {
      GModule *module = g_module_open (GUPNP_IGD_SONAME, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);

      available = module != NULL &&
                  g_module_symbol (module, "gupnp_simple_igd_new", (gpointer *) &api.new_igd) &&
                  g_module_symbol (module, "gupnp_simple_igd_add_port", (gpointer *) &api.add_port) &&
                  g_module_symbol (module, "gupnp_simple_igd_remove_port_local",
                                   (gpointer *) &api.remove_port_local);
      if (available)
        g_module_make_resident (module);
      else
        g_debug ("UPnP-IGD: cannot load %s: %s", GUPNP_IGD_SONAME, g_module_error ());
      g_once_init_leave (&loaded, 1);
    }
  return available ? &api : NULL;
}

static void
upnp_mapped_cb (GUPnPSimpleIgd *igd,
                const char     *proto,
                const char     *external_ip,
                const char     *replaces_external_ip,
                guint           external_port,
                const char     *local_ip,
                guint           local_port,
                const char     *description,
                gpointer        user_data)
{
  RndzPortmap *self = user_data;
  struct in_addr addr;

  if (self->method != METHOD_NONE && self->method != METHOD_UPNP)
    {
      /* PCP or NAT-PMP was quicker: one mapping is enough */
      upnp_stop (self);
      return;
    }
  if (inet_pton (AF_INET, external_ip, &addr) != 1 || external_port == 0 ||
      external_port > G_MAXUINT16)
    return;

  rndz_source_clear (&self->upnp_timer);
  /* 0: GUPnPSimpleIgd keeps renewing it */
  portmap_mapped (self, METHOD_UPNP, (const guint8 *) &addr, external_port, 0);
}

static void
upnp_error_cb (GUPnPSimpleIgd *igd,
               GError         *error,
               const char     *proto,
               guint           external_port,
               const char     *local_ip,
               guint           local_port,
               const char     *description,
               gpointer        user_data)
{
  /* Another IGD on the network may still map it, until the deadline */
  g_debug ("UPnP-IGD: %s", error != NULL ? error->message : "mapping failed");
}

static void
upnp_stop (RndzPortmap *self)
{
  rndz_source_clear (&self->upnp_timer);
  if (self->igd == NULL)
    return;

  g_signal_handlers_disconnect_by_data (self->igd, self);
  /* The deletion holds its own reference until the router answered */
  upnp_api ()->remove_port_local (self->igd, self->tcp ? "TCP" : "UDP",
                                  self->local_ip, self->internal_port);
  g_clear_object (&self->igd);
}

static gboolean
upnp_deadline_cb (gpointer user_data)
{
  RndzPortmap *self = user_data;

  g_clear_pointer (&self->upnp_timer, g_source_unref);
  g_debug ("UPnP-IGD: no mapping");
  upnp_stop (self);
  return G_SOURCE_REMOVE;
}

static gboolean
upnp_start_cb (gpointer user_data)
{
  RndzPortmap *self = user_data;
  const UpnpApi *api = upnp_api ();

  g_clear_pointer (&self->upnp_timer, g_source_unref);
  if (self->method != METHOD_NONE || api == NULL)
    return G_SOURCE_REMOVE;

  /* It takes the thread-default context for its own sources */
  g_main_context_push_thread_default (self->context);
  self->igd = api->new_igd ();
  g_main_context_pop_thread_default (self->context);

  g_signal_connect (self->igd, "mapped-external-port", G_CALLBACK (upnp_mapped_cb), self);
  g_signal_connect (self->igd, "error-mapping-port", G_CALLBACK (upnp_error_cb), self);
  api->add_port (self->igd, self->tcp ? "TCP" : "UDP", self->internal_port,
                 self->local_ip, self->internal_port, LIFETIME_S, DESCRIPTION);
  self->upnp_timer = rndz_timeout_add (self->context, UPNP_WAIT_MS, upnp_deadline_cb, self);
  return G_SOURCE_REMOVE;
}

static void
upnp_schedule (RndzPortmap *self)
{
  self->upnp_timer = rndz_timeout_add (self->context, UPNP_DELAY_MS, upnp_start_cb, self);
}

#else /* !HAVE_GUPNP_IGD */

static void
upnp_stop (RndzPortmap *self)
{
}

static void
upnp_schedule (RndzPortmap *self)
{
}

#endif /* HAVE_GUPNP_IGD */

/* Mapped */

static gboolean
renew_cb (gpointer user_data)
{
  RndzPortmap *self = user_data;

  g_clear_pointer (&self->renew, g_source_unref);
  if (self->method == METHOD_PCP)
    pcp_start (self);
#ifdef HAVE_NATPMP
  else if (self->method == METHOD_NATPMP)
    natpmp_exchange (self, TRUE);
#endif
  return G_SOURCE_REMOVE;
}

static const char *const method_names[] = { NULL, "PCP", "NAT-PMP", "UPnP-IGD" };

/* @lifetime: seconds, 0 if someone else renews it */
static void
portmap_mapped (RndzPortmap  *self,
                Method        method,
                const guint8  ip[4],
                guint16       port,
                guint32       lifetime)
{
  RndzAddr mapped = { .family = 4, .port = port };
  gboolean changed;
  char text[RNDZ_ADDR_STRLEN];

  memcpy (mapped.bytes, ip, 4);
  changed = self->method != method || !rndz_addr_equal (&mapped, &self->mapped);
  self->method = method;
  self->mapped = mapped;

  if (method != METHOD_UPNP)
    upnp_stop (self);
  if (method != METHOD_PCP)
    pcp_close (self);
  if (method != METHOD_NATPMP)
    natpmp_close (self);

  rndz_source_clear (&self->renew);
  if (lifetime > 0)
    self->renew = rndz_timeout_add (self->context, MAX (MIN (lifetime, 86400) * 500, 250),
                                    renew_cb, self);

  if (!changed)
    return;
  g_debug ("%s: the gateway maps %s for us, for %u s", method_names[method],
           rndz_addr_format (&mapped, text), lifetime);
  self->func (&self->mapped, self->user_data);
}

/*
 * rndz_portmap_new:
 * @context: where every source runs
 * @tcp: a TCP port, else UDP
 * @internal_port: our port
 * @func: told of the mapping, and of its loss; never from within this call
 *
 * Starts asking the default gateway for a mapping of @internal_port.
 *
 * Returns: (nullable): the attempt, or %NULL when there is no IPv4
 *   default gateway to ask (then nothing was sent)
 */
RndzPortmap *
rndz_portmap_new (GMainContext    *context,
                  gboolean         tcp,
                  guint16          internal_port,
                  RndzPortmapFunc  func,
                  gpointer         user_data)
{
  g_autoptr(RndzPortmap) self = g_new0 (RndzPortmap, 1);
  g_autoptr(GError) error = NULL;
  gboolean test = FALSE;

  self->context = g_main_context_ref (context);
  self->tcp = tcp;
  self->internal_port = internal_port;
  self->func = func;
  self->user_data = user_data;

  if (!find_gateway (&self->gateway, &test))
    return NULL;
  if (!portmap_open_socket (self, &error))
    {
      g_debug ("Port mapping: cannot reach the gateway: %s", error->message);
      return NULL;
    }

  pcp_init_request (self);
  pcp_start (self);
  if (!test)
    upnp_schedule (self);
  return g_steal_pointer (&self);
}

/* Whether a mapping is held, and its public address */
gboolean
rndz_portmap_get_mapped (RndzPortmap *self,
                         RndzAddr    *mapped)
{
  if (self == NULL || self->method == METHOD_NONE)
    return FALSE;
  if (mapped != NULL)
    *mapped = self->mapped;
  return TRUE;
}

/* "PCP", "NAT-PMP", "UPnP-IGD", or %NULL without a mapping */
const char *
rndz_portmap_get_method (RndzPortmap *self)
{
  return self != NULL ? method_names[self->method] : NULL;
}

/* Stops, and removes the mapping from the gateway */
void
rndz_portmap_free (RndzPortmap *self)
{
  if (self == NULL)
    return;

  rndz_source_clear (&self->renew);
  pcp_close (self);
  pcp_delete (self);
  natpmp_delete (self);
  upnp_stop (self);

  if (self->pcp_socket != NULL)
    g_socket_close (self->pcp_socket, NULL);
  g_clear_object (&self->pcp_socket);
  g_main_context_unref (self->context);
  g_free (self);
}
