/* rndz-server-names-private.h: the addresses a server answers to
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

#include "rndz-addr-private.h"

G_BEGIN_DECLS

/*
 * RndzServerNames:
 *
 * The addresses under which peers may reach a server, against which the
 * `srv` of a signed message is checked (doc/protocol.md,
 * "Authentication"): the address its sockets are bound to, or, bound to
 * a wildcard address, those of the host's interfaces with its port; and
 * the public addresses an operator names for a server behind DNAT or
 * port forwarding. A leaf: it calls nothing of the server.
 */
typedef struct _RndzServerNames RndzServerNames;

RndzServerNames *rndz_server_names_new        (void);
void             rndz_server_names_free       (RndzServerNames  *names);
void             rndz_server_names_set_bound  (RndzServerNames  *names,
                                               const RndzAddr   *bound);
void             rndz_server_names_set_public (RndzServerNames  *names,
                                               const RndzAddr   *addresses,
                                               guint             n_addresses);
gboolean         rndz_server_names_get_advertised (RndzServerNames *names,
                                                   RndzAddr        *address);
gboolean         rndz_server_names_contains   (RndzServerNames  *names,
                                               const RndzAddr   *address,
                                               gint64            now);

G_END_DECLS
