/* rndz-portmap-private.h: asking the home router for a port mapping
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-addr-private.h"

G_BEGIN_DECLS

/*
 * RndzPortmap:
 *
 * A mapping of one local port on the default gateway (IPv4), asked for
 * with PCP (RFC 6887) first, then NAT-PMP (RFC 6886), and with UPnP-IGD
 * alongside; the first protocol that maps the port wins. Every source
 * and callback runs in the #GMainContext given to rndz_portmap_new();
 * nothing runs in another thread.
 */
typedef struct _RndzPortmap RndzPortmap;

/* @mapped: the router's public address and port for ours, or %NULL when
 * the mapping went (its lease ran out unrenewed) */
typedef void (*RndzPortmapFunc) (const RndzAddr *mapped,
                                 gpointer        user_data);

RndzPortmap *rndz_portmap_new        (GMainContext    *context,
                                      gboolean         tcp,
                                      guint16          internal_port,
                                      RndzPortmapFunc  func,
                                      gpointer         user_data);
gboolean     rndz_portmap_get_mapped (RndzPortmap     *self,
                                      RndzAddr        *mapped);
const char  *rndz_portmap_get_method (RndzPortmap     *self);
void         rndz_portmap_free       (RndzPortmap     *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzPortmap, rndz_portmap_free)

G_END_DECLS
