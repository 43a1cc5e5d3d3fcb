/* rndz-server-link-private.h: a client's connection to one server
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "rndz-peer-context-private.h"
#include "rndz-types.h"

G_BEGIN_DECLS

/*
 * RndzServerLink:
 *
 * How a client talks to one rendezvous server, from its port P: over
 * UDP, a socket bound to P and connected to the server, so that the
 * kernel hands the server's datagrams to it and nothing else; over TCP,
 * a connection from P that carries framed messages. The listener and the
 * connect operation each keep one per server. It tells what happens
 * through one callback, in the peer context's GMainContext.
 */
typedef struct _RndzServerLink RndzServerLink;

typedef enum
{
  RNDZ_SERVER_LINK_MESSAGE,     /* @msg came from the server */
  RNDZ_SERVER_LINK_READY,       /* TCP: connected, messages can go */
  RNDZ_SERVER_LINK_FAILED,      /* @error: the link is closed (UDP: an
                                 * ICMP error or a read error, after which
                                 * it stays open) */
} RndzServerLinkEvent;

/* The callback may close or free @link */
typedef void (*RndzServerLinkFunc) (RndzServerLink      *link,
                                    RndzServerLinkEvent  event,
                                    const RndzMessage   *msg,
                                    const GError        *error,
                                    gpointer             user_data);

RndzServerLink *rndz_server_link_new        (RndzPeerContext     *peer,
                                             RndzTransport        transport,
                                             GSocketFamily        family,
                                             const RndzAddr      *server,
                                             RndzServerLinkFunc   func,
                                             gpointer             user_data);
gboolean        rndz_server_link_open       (RndzServerLink      *link,
                                             guint16              port,
                                             GError             **error);
gboolean        rndz_server_link_is_open    (RndzServerLink      *link);
gboolean        rndz_server_link_is_ready   (RndzServerLink      *link);
GSocket        *rndz_server_link_get_socket (RndzServerLink      *link);
guint16         rndz_server_link_get_port   (RndzServerLink      *link);
const RndzAddr *rndz_server_link_get_server (RndzServerLink      *link);
gboolean        rndz_server_link_send       (RndzServerLink      *link,
                                             const RndzMessage   *msg,
                                             GError             **error);
void            rndz_server_link_close      (RndzServerLink      *link);
void            rndz_server_link_abort      (RndzServerLink      *link);
gboolean        rndz_server_link_address_gone (RndzServerLink    *link);
void            rndz_server_link_free       (RndzServerLink      *link);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzServerLink, rndz_server_link_free)

G_END_DECLS
