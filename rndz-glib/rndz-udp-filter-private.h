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
 * @RNDZ_UDP_FILTER_APPLICATION: every datagram but those that start with
 *   the prefix: a socket that belongs to the application
 * @RNDZ_UDP_FILTER_USE_AND_DATA: the same, but a `use` is let in: a
 *   requester's socket waiting for the answer to its use, which the
 *   peer's first datagrams may follow
 * @RNDZ_UDP_FILTER_ANSWERS_AND_DATA: the same, but `wait` and `ready` are
 *   let in: a relay join's socket
 *
 * What the kernel queues on a socket (a classic BPF socket filter), so
 * that no protocol message reaches what the application reads, whatever
 * the application does.
 */
typedef enum
{
  RNDZ_UDP_FILTER_APPLICATION,
  RNDZ_UDP_FILTER_USE_AND_DATA,
  RNDZ_UDP_FILTER_ANSWERS_AND_DATA,
} RndzUdpFilter;

gboolean rndz_udp_is_control_datagram (const char    *buf,
                                       gsize          len);
gboolean rndz_udp_filter_set          (GSocket       *socket,
                                       RndzUdpFilter  filter,
                                       GError       **error);
guint    rndz_udp_drain               (GSocket       *socket);
gboolean rndz_udp_head_is_data        (GSocket       *socket);
guint    rndz_udp_discard             (GSocket       *socket);
gboolean rndz_udp_hand_over           (GSocket       *socket,
                                       gboolean       keep_data);

G_END_DECLS
