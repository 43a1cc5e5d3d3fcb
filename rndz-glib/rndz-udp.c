/* rndz-udp.c: reading and sending the control datagrams of a client
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-udp-private.h"

/*
 * rndz_udp_read_messages:
 * @socket: a non-blocking UDP socket
 * @want_from: whether @func needs the sender's address
 * @func: called for each datagram that decodes as a message
 * @error: return location for the error that ended the round
 *
 * Reads what is waiting on @socket, at most %RNDZ_UDP_READ_BUDGET
 * datagrams; what does not decode is dropped. An error other than
 * %G_IO_ERROR_WOULD_BLOCK ends the round and is returned, whatever it
 * is, so that the caller decides: one that stays (a socket that poll
 * calls readable and that never reads) would otherwise keep the round
 * going for ever. An ICMP error on a connected socket reads as an error
 * once (rndz_udp_error_is_icmp()).
 *
 * Returns: %FALSE if @func stopped the reading or an error ended it
 *   (@error set); %TRUE when nothing more is waiting or the budget is
 *   spent (the socket's source fires again then)
 */
gboolean
rndz_udp_read_messages (GSocket          *socket,
                        gboolean          want_from,
                        RndzUdpReadFunc   func,
                        gpointer          user_data,
                        GError          **error)
{
  for (guint i = 0; i < RNDZ_UDP_READ_BUDGET; i++)
    {
      g_autoptr(GSocketAddress) from = NULL;
      g_autoptr(GError) local_error = NULL;
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE + 1];
      RndzMessage msg;
      RndzAddr addr;
      gssize n;

      n = g_socket_receive_from (socket, want_from ? &from : NULL, buf, sizeof buf,
                                 NULL, &local_error);
      if (n < 0 && g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return TRUE;
      if (n < 0)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }

      if (!rndz_message_decode (&msg, buf, n, RNDZ_MESSAGE_DEFAULT_MAX_SIZE, NULL))
        continue;
      if (want_from && (from == NULL || !rndz_addr_from_socket_address (&addr, from)))
        continue;

      if (!func (socket, want_from ? &addr : NULL, &msg, user_data))
        return FALSE;
    }

  return TRUE;
}

/* What an ICMP message turns into on a UDP socket: the datagram before
 * met nobody, which says nothing about the next one */
gboolean
rndz_udp_error_is_icmp (const GError *error)
{
  return g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED) ||
         g_error_matches (error, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE) ||
         g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE);
}

RndzUdpDropFunc rndz_udp_test_drop = NULL;

/*
 * rndz_udp_send:
 * @to: (nullable): the destination, %NULL for a connected socket
 * @what: what the datagram is, for the debug log
 *
 * Sends one control datagram. They are all sent again when they matter
 * (checks, pings, requests) or have a fallback (punches, probes), so a
 * failure is not fatal, but it is never silent: it goes to the debug
 * log, and the caller learns of it.
 *
 * Returns: %TRUE if the datagram left whole
 */
gboolean
rndz_udp_send (GSocket        *socket,
               GSocketAddress *to,
               const char     *buf,
               gsize           len,
               const char     *what)
{
  g_autoptr(GError) error = NULL;
  gssize n;

  if (rndz_udp_test_drop != NULL && rndz_udp_test_drop (buf, len, FALSE))
    return TRUE;

  n = to != NULL ? g_socket_send_to (socket, to, buf, len, NULL, &error)
                 : g_socket_send (socket, buf, len, NULL, &error);
  if (n == (gssize) len)
    return TRUE;

  if (n >= 0)
    g_debug ("Could not send the %s whole: %" G_GSSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes",
             what, n, len);
  else
    g_debug ("Could not send the %s: %s", what, error->message);
  return FALSE;
}
