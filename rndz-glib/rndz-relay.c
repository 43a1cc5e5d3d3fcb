/* rndz-relay.c: the server's relay port
 *
 * SPDX-License-Identifier: MIT
 *
 * A session has two sides: the requester (0) and the target (1), known
 * by their ids. A peer joins its side with a `hello` carrying the
 * session's token and its own id:
 *
 *  - a side joins only from the host (IP address, port ignored) the
 *    server knows for it: the requester's relay request came from there,
 *    the target is registered there;
 *  - over UDP, the first such address that says hello for a side is that
 *    side's endpoint for good (no rebinding); the relay answers `wait`
 *    until the other side is there, then `ready`, and from then on
 *    forwards every datagram of one endpoint, unchanged, to the other;
 *  - over TCP, the relay reads exactly one hello frame from an accepted
 *    connection (never a byte more: what follows belongs to the peers),
 *    sends nothing while the other side is missing, then a `ready` frame
 *    to each, and splices the two connections.
 *
 * Forwarding is rate limited per session and direction by a token
 * bucket: a datagram over the rate is dropped, a TCP side over the rate
 * is not read until the bucket has refilled. Sessions that both peers
 * did not join within the join timeout, joined ones without traffic
 * for the idle timeout, and any at the maximum lifetime are closed. A
 * requester's address and network hold a bounded number of sessions.
 *
 * The parts: rndz-relay-session.c (sessions, tokens, rates, the timer),
 * rndz-relay-udp.c and rndz-relay-tcp.c (the transports, which call the
 * session core), and this file, which creates and frees the relay.
 *
 * The forwarding path allocates nothing: datagrams are read into one
 * buffer of the relay and sent on from there; each TCP side has one
 * buffer of fixed size, allocated when the session becomes ready.
 */

#include "config.h"

#include "rndz-relay-session-private.h"

/*
 * rndz_relay_new:
 * @udp_socket: a bound UDP socket
 * @tcp_socket: a listening TCP socket on the same port
 * @stats: where to count, the server's statistics
 *
 * Starts relaying on the two sockets, which the relay closes when it is
 * freed.
 */
RndzRelay *
rndz_relay_new (GMainContext    *context,
                GSocket         *udp_socket,
                GSocket         *tcp_socket,
                RndzServerStats *stats)
{
  RndzRelay *relay = g_new0 (RndzRelay, 1);

  relay->context = g_main_context_ref (context);
  relay->stats = stats;
  relay->udp_socket = g_object_ref (udp_socket);
  relay->tcp_socket = g_object_ref (tcp_socket);

  rndz_relay_udp_start (relay);
  rndz_relay_tcp_start (relay);
  rndz_relay_core_init (relay);
  return relay;
}

void
rndz_relay_free (RndzRelay *relay)
{
  rndz_relay_udp_stop (relay);
  /* The sessions first: closing one closes its TCP connections */
  rndz_relay_core_close_all (relay);
  rndz_relay_tcp_stop (relay);
  rndz_relay_core_clear (relay);

  g_socket_close (relay->udp_socket, NULL);
  g_socket_close (relay->tcp_socket, NULL);
  g_object_unref (relay->udp_socket);
  g_object_unref (relay->tcp_socket);
  g_main_context_unref (relay->context);
  g_free (relay);
}

guint16
rndz_relay_get_port (RndzRelay *relay)
{
  g_autoptr(GSocketAddress) address = g_socket_get_local_address (relay->udp_socket, NULL);

  if (address == NULL)
    return 0;
  return g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (address));
}
