/* rndz-addr-private.h: compact socket addresses
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>
#include <sys/socket.h>

G_BEGIN_DECLS

/* Longest text form: "[" + 45 + "]:" + 5 + NUL */
#define RNDZ_ADDR_STRLEN 56

/*
 * RndzAddr:
 *
 * An IPv4 or IPv6 address and port in 20 bytes: small enough to keep one
 * in every registry entry, and cheap to compare and hash. IPv4 is always
 * stored unmapped, even when it arrived on a dual-stack socket as
 * ::ffff:a.b.c.d, so a peer has one address whichever socket saw it.
 */
typedef struct
{
  guint8 family;      /* 0 (unset), 4 or 6 */
  guint8 pad;
  guint16 port;       /* host byte order */
  guint8 bytes[16];   /* IPv4 uses the first 4 */
} RndzAddr;

gboolean        rndz_addr_parse                 (RndzAddr              *addr,
                                                 const char            *text,
                                                 GError               **error);
char *          rndz_addr_format                (const RndzAddr        *addr,
                                                 char                   buf[RNDZ_ADDR_STRLEN]);
gboolean        rndz_addr_from_sockaddr         (RndzAddr              *addr,
                                                 const struct sockaddr *sa,
                                                 gsize                  len);
gsize           rndz_addr_to_sockaddr           (const RndzAddr        *addr,
                                                 GSocketFamily          socket_family,
                                                 struct sockaddr_storage *ss);
gboolean        rndz_addr_from_socket_address   (RndzAddr              *addr,
                                                 GSocketAddress        *address);
GSocketAddress *rndz_addr_to_socket_address     (const RndzAddr        *addr,
                                                 GSocketFamily          socket_family);
gboolean        rndz_addr_equal                 (const RndzAddr        *a,
                                                 const RndzAddr        *b);
gboolean        rndz_addr_same_host             (const RndzAddr        *a,
                                                 const RndzAddr        *b);
gboolean        rndz_addr_is_private            (const RndzAddr        *addr);
guint           rndz_addr_hash                  (const RndzAddr        *addr);

G_END_DECLS
