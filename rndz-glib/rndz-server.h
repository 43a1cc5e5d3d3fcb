/* rndz-server.h: the rendezvous server
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(__RNDZ_H_INSIDE__) && !defined(RNDZ_COMPILATION)
#error "Only <rndz-glib/rndz.h> can be included directly."
#endif

#include <gio/gio.h>
#include <rndz-glib/rndz-types.h>

G_BEGIN_DECLS

#define RNDZ_TYPE_SERVER (rndz_server_get_type ())

RNDZ_AVAILABLE_IN_1_0
G_DECLARE_FINAL_TYPE (RndzServer, rndz_server, RNDZ, SERVER, GObject)

RNDZ_AVAILABLE_IN_1_0
RndzServer     *rndz_server_new                  (void);

RNDZ_AVAILABLE_IN_1_0
gboolean        rndz_server_listen               (RndzServer      *server,
                                                  GSocketAddress  *address,
                                                  GError         **error);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_stop                 (RndzServer      *server);

RNDZ_AVAILABLE_IN_1_0
GSocketAddress *rndz_server_get_local_address    (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
guint16         rndz_server_get_port             (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_peer_count       (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
GVariant       *rndz_server_get_statistics       (RndzServer      *server);

RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_peer_timeout     (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_peer_timeout     (RndzServer      *server,
                                                  guint            milliseconds);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_forward_timeout  (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_forward_timeout  (RndzServer      *server,
                                                  guint            milliseconds);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_register_timeout (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_register_timeout (RndzServer      *server,
                                                  guint            milliseconds);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_max_peers        (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_max_peers        (RndzServer      *server,
                                                  guint            max_peers);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_max_peers_per_address (RndzServer *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_max_peers_per_address (RndzServer *server,
                                                       guint       max_peers);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_max_peers_per_network (RndzServer *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_max_peers_per_network (RndzServer *server,
                                                       guint       max_peers);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_max_connections  (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_max_connections  (RndzServer      *server,
                                                  guint            max_connections);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_max_message_size (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_max_message_size (RndzServer      *server,
                                                  guint            size);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_secret           (RndzServer      *server,
                                                  GBytes          *secret);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_add_key              (RndzServer      *server,
                                                  const char      *id,
                                                  GBytes          *key);
RNDZ_AVAILABLE_IN_1_0
gboolean        rndz_server_load_keys            (RndzServer      *server,
                                                  const char      *path,
                                                  GError         **error);
RNDZ_AVAILABLE_IN_1_0
gboolean        rndz_server_get_auth_required    (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
const char * const *rndz_server_get_public_addresses (RndzServer  *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_public_addresses (RndzServer      *server,
                                                  const char * const *addresses);

RNDZ_AVAILABLE_IN_1_0
const char     *rndz_server_get_cluster          (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_cluster          (RndzServer      *server,
                                                  const char      *url);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_cluster_secret   (RndzServer      *server,
                                                  GBytes          *secret);
RNDZ_AVAILABLE_IN_1_0
gboolean        rndz_server_get_cluster_connected (RndzServer     *server);
RNDZ_AVAILABLE_IN_1_0
const char     *rndz_server_get_cluster_node     (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
gboolean        rndz_server_get_reuse_port       (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_reuse_port       (RndzServer      *server,
                                                  gboolean         reuse_port);

RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_request_rate     (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_request_rate     (RndzServer      *server,
                                                  guint            per_second);

RNDZ_AVAILABLE_IN_1_0
guint16         rndz_server_get_relay_port       (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_relay_port       (RndzServer      *server,
                                                  guint16          port);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_relay_max_sessions (RndzServer    *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_relay_max_sessions (RndzServer    *server,
                                                    guint          max_sessions);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_relay_rate       (RndzServer      *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_relay_rate       (RndzServer      *server,
                                                  guint            bytes_per_second);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_relay_idle_timeout (RndzServer    *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_relay_idle_timeout (RndzServer    *server,
                                                    guint          milliseconds);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_relay_max_sessions_per_address (RndzServer *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_relay_max_sessions_per_address (RndzServer *server,
                                                                guint       max_sessions);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_relay_max_sessions_per_network (RndzServer *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_relay_max_sessions_per_network (RndzServer *server,
                                                                guint       max_sessions);
RNDZ_AVAILABLE_IN_1_0
guint           rndz_server_get_relay_max_lifetime (RndzServer    *server);
RNDZ_AVAILABLE_IN_1_0
void            rndz_server_set_relay_max_lifetime (RndzServer    *server,
                                                    guint          milliseconds);

G_END_DECLS
