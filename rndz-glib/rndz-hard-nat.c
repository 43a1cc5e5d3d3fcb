/* rndz-hard-nat.c: through NATs that give each destination a new port
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-channel-private.h"
#include "rndz-peer-context-private.h"
#include "rndz-hard-nat-private.h"
#include "rndz-udp-private.h"
#include "rndz-source-private.h"

/* A NAT that maps each destination to a new port ("symmetric", or
 * endpoint-dependent mapping) shows the server one port and the peer
 * another, so the peer cannot know where to answer. When the other side's
 * NAT keeps one mapping for every destination, the pair can still meet
 * (doc/protocol.md, "Hard NATs (UDP)"):
 *
 * - the hard side opens many sockets (RndzSpray), each sending to the
 *   friendly side's observed address: each opens a mapping of its own,
 *   on a port the friendly side cannot know;
 * - the friendly side probes the hard side's public address at random
 *   ports, from its usual port: a probe that hits one of the mappings
 *   gets in, and its answer gets back through the friendly side's NAT,
 *   which the probe opened for it.
 *
 * With 256 mappings among the 64512 ports a NAT picks from, every probe
 * hits with a chance of 1 in 252: 1000 probes find one with a chance of
 * 98%. It is the birthday problem, which the two sides solve together. */

/* Which side is hard is a guess: a NAT that changed the port of the
 * peer's socket (its candidates carry the port it bound) most likely
 * picks a new one for every destination. NATs that keep ports when they
 * can, as Linux does and most home routers do, do not change it. */
gboolean
rndz_nat_rewrites_port (const RndzAddr *observed,
                        const RndzAddr *cands,
                        guint           n_cands)
{
  if (n_cands == 0)
    return FALSE;

  for (guint i = 0; i < n_cands; i++)
    if (cands[i].port == observed->port)
      return FALSE;

  return TRUE;
}

/* One probe, if the budget has one left: @now is monotonic time */
gboolean
rndz_probe_budget_take (RndzProbeBudget *budget,
                        gint64           now)
{
  if (budget->window == 0 || now - budget->window >= RNDZ_PROBE_WINDOW_US)
    {
      budget->window = now;
      budget->left = RNDZ_PROBE_BUDGET;
    }

  if (budget->left == 0)
    return FALSE;

  budget->left--;
  return TRUE;
}

/* NATs pick from the ports above the privileged ones */
guint16
rndz_probe_port (void)
{
  return g_random_int_range (1024, 65536);
}

/* RndzProber */

struct _RndzProber
{
  RndzAddr host;
  char peer_id[RNDZ_ID_MAX_LEN + 1];   /* whom we probe, for the log */
  char data[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;
  RndzProbeFunc func;
  gpointer user_data;
  GSource *timer;               /* NULL once done */
  guint count;
  /* The ports probed: an answer from any other port of the host is not
   * one (a bit per port, 8 kB) */
  guint32 probed[65536 / 32];
};

static void
prober_stop (RndzProber *prober)
{
  g_debug ("Sent %u probes to “%s”", prober->count, prober->peer_id);
  rndz_source_clear (&prober->timer);
}

static gboolean
prober_tick_cb (gpointer user_data)
{
  RndzProber *prober = user_data;
  guint tries = 0;

  /* Skipped ports are tried again, a few times over */
  for (guint sent = 0; sent < RNDZ_PROBES_PER_INTERVAL && tries < 4 * RNDZ_PROBES_PER_INTERVAL;
       tries++)
    {
      RndzAddr to = prober->host;

      if (prober->count >= RNDZ_PROBES_MAX)
        break;

      to.port = rndz_probe_port ();
      switch (prober->func (&to, prober->data, prober->len, prober->user_data))
        {
        case RNDZ_PROBE_SENT:
          prober->probed[to.port / 32] |= 1u << (to.port % 32);
          prober->count++;
          sent++;
          break;
        case RNDZ_PROBE_SKIPPED:
          break;
        case RNDZ_PROBE_WAIT:
          return G_SOURCE_CONTINUE;
        case RNDZ_PROBE_STOP:
          prober_stop (prober);
          return G_SOURCE_CONTINUE;
        }
    }

  if (prober->count >= RNDZ_PROBES_MAX)
    prober_stop (prober);
  return G_SOURCE_CONTINUE;
}

/* @probe: its target is the peer we probe */
RndzProber *
rndz_prober_new (GMainContext      *context,
                 const RndzAddr    *host,
                 const RndzMessage *probe,
                 RndzProbeFunc      func,
                 gpointer           user_data)
{
  RndzProber *prober = g_new0 (RndzProber, 1);

  prober->host = *host;
  g_strlcpy (prober->peer_id, probe->target, sizeof prober->peer_id);
  prober->len = rndz_message_encode (probe, prober->data, sizeof prober->data);
  prober->func = func;
  prober->user_data = user_data;
  prober->timer = rndz_timeout_add (context, RNDZ_PROBE_INTERVAL_MS, prober_tick_cb, prober);
  return prober;
}

guint
rndz_prober_get_count (RndzProber *prober)
{
  return prober->count;
}

/* Whether a probe went to @port of the host */
gboolean
rndz_prober_has_probed (RndzProber *prober,
                        guint16     port)
{
  return (prober->probed[port / 32] >> (port % 32)) & 1;
}

gboolean
rndz_prober_is_done (RndzProber *prober)
{
  return prober->timer == NULL;
}

void
rndz_prober_free (RndzProber *prober)
{
  rndz_source_clear (&prober->timer);
  g_free (prober);
}

/* RndzSpray */

typedef struct
{
  RndzSpray *spray;
  GSocket *socket;
  GSource *source;
} SprayPort;

struct _RndzSpray
{
  GMainContext *context;
  GPtrArray *ports;             /* SprayPort; the sockets closed, or taken */
  GSocketAddress *to;
  char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  gsize len;
  RndzSprayFunc func;
  gpointer user_data;

  /* The callback may free the spray: it is released when the last
   * dispatch returns */
  guint dispatching;
  gboolean freed;
};

static void
spray_port_close (SprayPort *port)
{
  rndz_source_clear (&port->source);
  if (port->socket != NULL)
    g_socket_close (port->socket, NULL);
  g_clear_object (&port->socket);
}

static void
spray_port_free (SprayPort *port)
{
  spray_port_close (port);
  g_free (port);
}

static void
spray_send (RndzSpray *spray)
{
  if (spray->to == NULL)
    return;

  for (guint i = 0; i < spray->ports->len; i++)
    {
      SprayPort *port = g_ptr_array_index (spray->ports, i);

      /* A socket that cannot send opens no mapping: it goes */
      if (port->socket != NULL &&
          !rndz_udp_send (port->socket, spray->to, spray->buf, spray->len, "spray"))
        spray_port_close (port);
    }
}

static void
spray_release (RndzSpray *spray)
{
  g_ptr_array_unref (spray->ports);
  g_clear_object (&spray->to);
  g_main_context_unref (spray->context);
  g_free (spray);
}

static gboolean
spray_port_read_one (GSocket           *socket,
                     const RndzAddr    *from,
                     const RndzMessage *msg,
                     gpointer           user_data)
{
  SprayPort *port = user_data;
  RndzSpray *spray = port->spray;

  spray->func (spray, socket, from, msg, spray->user_data);
  return !spray->freed && port->socket != NULL;
}

static gboolean
spray_port_read_cb (GSocket      *socket,
                    GIOCondition  condition,
                    gpointer      user_data)
{
  SprayPort *port = user_data;
  RndzSpray *spray = port->spray;
  g_autoptr(GError) error = NULL;

  spray->dispatching++;
  /* An ICMP error says that our datagram met nobody: the mapping may
   * still be found. Anything else: the socket is of no use. */
  if (!rndz_udp_read_messages (socket, TRUE, spray_port_read_one, port, &error) &&
      error != NULL && !rndz_udp_error_is_icmp (error) && !spray->freed)
    {
      g_debug ("A spray socket failed: %s", error->message);
      spray_port_close (port);
    }
  spray->dispatching--;

  if (spray->freed && spray->dispatching == 0)
    spray_release (spray);
  return G_SOURCE_CONTINUE;
}

/*
 * rndz_spray_new:
 * @to: where every socket sends @msg
 *
 * Opens RNDZ_SPRAY_SOCKETS sockets, or as many as can be opened, on the
 * client's local address, and sends @msg once from each. @func gets the
 * datagrams that arrive on them.
 *
 * Once only: the mappings last far longer than the phase, and the other
 * side's NAT may let in what comes from a port it probed a while ago,
 * after the probe's socket is gone: what else came would reach the
 * application's socket.
 */
RndzSpray *
rndz_spray_new (RndzPeerContext   *peer,
                GSocketFamily      family,
                const RndzAddr    *to,
                const RndzMessage *msg,
                GMainContext      *context,
                RndzSprayFunc      func,
                gpointer           user_data)
{
  RndzSpray *spray = g_new0 (RndzSpray, 1);

  spray->context = g_main_context_ref (context);
  spray->ports = g_ptr_array_new_with_free_func ((GDestroyNotify) spray_port_free);
  spray->to = rndz_addr_to_socket_address (to, family);
  spray->len = rndz_message_encode (msg, spray->buf, sizeof spray->buf);
  spray->func = func;
  spray->user_data = user_data;
  if (spray->to == NULL)
    return spray;

  for (guint i = 0; i < RNDZ_SPRAY_SOCKETS; i++)
    {
      g_autoptr(GError) error = NULL;
      GSocket *socket;
      SprayPort *port;

      socket = rndz_peer_context_bind_own_port (peer, family, G_SOCKET_TYPE_DATAGRAM, &error);
      if (socket == NULL)
        {
          /* Out of descriptors, most likely: fewer mappings will do */
          g_debug ("Opened %u sockets of %u: %s", i, RNDZ_SPRAY_SOCKETS, error->message);
          break;
        }

      port = g_new0 (SprayPort, 1);
      port->spray = spray;
      port->socket = socket;
      port->source = rndz_socket_source_add (socket, context, spray_port_read_cb, port,
                                            "[rndz] spray");
      g_ptr_array_add (spray->ports, port);
    }

  spray_send (spray);
  return spray;
}

/* The number of sockets still open */
guint
rndz_spray_get_size (RndzSpray *spray)
{
  guint n = 0;

  for (guint i = 0; i < spray->ports->len; i++)
    n += ((SprayPort *) g_ptr_array_index (spray->ports, i))->socket != NULL;
  return n;
}

/*
 * rndz_spray_take:
 * @socket: one of the spray's sockets
 *
 * Takes @socket out of the spray: it is no longer watched, nor sent
 * from, nor closed with the spray.
 *
 * Returns: (transfer full): @socket
 */
GSocket *
rndz_spray_take (RndzSpray *spray,
                 GSocket   *socket)
{
  for (guint i = 0; i < spray->ports->len; i++)
    {
      SprayPort *port = g_ptr_array_index (spray->ports, i);

      if (port->socket == socket)
        {
          rndz_source_clear (&port->source);
          return g_steal_pointer (&port->socket);
        }
    }

  g_return_val_if_reached (NULL);
}

void
rndz_spray_free (RndzSpray *spray)
{
  if (spray == NULL)
    return;

  for (guint i = 0; i < spray->ports->len; i++)
    spray_port_close (g_ptr_array_index (spray->ports, i));

  spray->freed = TRUE;
  if (spray->dispatching == 0)
    spray_release (spray);
}
