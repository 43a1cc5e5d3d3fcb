/* rndz-udp-filter-private.h: which datagrams a UDP socket of the
 * library lets in
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The bytes every message rndz-glib writes starts with
 * (rndz_message_encode(): no whitespace, "v" then "type") */
#define RNDZ_CONTROL_PREFIX "{\"v\":1,\"type\":\""
#define RNDZ_CONTROL_PREFIX_LEN 15

/*
 * RndzUdpFilter:
 * @RNDZ_UDP_FILTER_CONTROL: only datagrams that start with
 *   %RNDZ_CONTROL_PREFIX: a socket that only the library reads
 * @RNDZ_UDP_FILTER_USE_AND_DATA: every datagram but those that start
 *   with the prefix, except a `use`: a requester's socket waiting for the
 *   answer to its use, which the peer's first datagrams may follow
 * @RNDZ_UDP_FILTER_APPLICATION: every datagram but those that start with
 *   the prefix: a socket that belongs to the application
 *
 * What the kernel queues on a socket (a classic BPF socket filter), so
 * that no protocol message reaches what the application reads, whatever
 * the application does.
 */
typedef enum
{
  RNDZ_UDP_FILTER_CONTROL,
  RNDZ_UDP_FILTER_USE_AND_DATA,
  RNDZ_UDP_FILTER_APPLICATION,
} RndzUdpFilter;

gboolean rndz_udp_is_control_datagram (const char    *buf,
                                       gsize          len);
gboolean rndz_udp_filter_set          (GSocket       *socket,
                                       RndzUdpFilter  filter,
                                       GError       **error);
guint    rndz_udp_drain               (GSocket       *socket);
guint    rndz_udp_discard             (GSocket       *socket);
gboolean rndz_udp_hand_over           (GSocket       *socket,
                                       gboolean       keep_data);

G_END_DECLS
