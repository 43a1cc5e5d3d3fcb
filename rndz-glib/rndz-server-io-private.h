/* rndz-server-io-private.h: the sockets and connections of RndzServer
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-message-private.h"
#include "rndz-server-types-private.h"
#include "rndz-types.h"

G_BEGIN_DECLS

/*
 * RndzServerIo:
 *
 * The server's UDP and TCP sockets, its TCP connections and its one timer:
 * what reads, accepts, sends and closes. It knows nothing of peers or
 * requests: what it reads goes up through #RndzServerIoCallbacks, and the
 * parts above tell it what to send. Every source is attached to the main
 * context given to rndz_server_io_new(), and every callback runs there.
 */
typedef struct _RndzServerIo RndzServerIo;

/* A TCP connection accepted by the server */
typedef struct _RndzServerConn RndzServerConn;

/* Where a message came from: what a reply needs */
typedef struct
{
  RndzTransport transport;
  RndzAddr from;
  RndzServerConn *conn;  /* TCP */
  gsize len;             /* the request's size: a UDP reply may not exceed it */
} RndzServerSource;

/*
 * RndzServerIoCallbacks:
 * @enter: before anything that comes from the main loop (a datagram, a
 *   frame, an accepted or closed connection, the timer) ...
 * @leave: ... and after it, when nothing of it is used any more: the
 *   owner may then run code that stops the server or frees it
 * @message: a valid message arrived
 * @conn_closed: a connection is closing; what refers to it must let go
 * @expire: the timer is due
 */
typedef struct
{
  void (*enter)       (gpointer                owner);
  void (*leave)       (gpointer                owner);
  void (*message)     (gpointer                owner,
                       const RndzServerSource *src,
                       const RndzMessage      *msg);
  void (*conn_closed) (gpointer                owner,
                       RndzServerConn         *conn);
  void (*expire)      (gpointer                owner);
} RndzServerIoCallbacks;

RndzServerIo   *rndz_server_io_new             (GMainContext                *context,
                                                const RndzServerConfig      *config,
                                                RndzServerStats             *stats,
                                                const RndzServerIoCallbacks *callbacks,
                                                gpointer                     owner);
void            rndz_server_io_free            (RndzServerIo                *io);

gboolean        rndz_server_bind_sockets       (GSocketAddress   *address,
                                                gboolean          reuse_port,
                                                GSocket         **tcp_out,
                                                GSocket         **udp_out,
                                                GError          **error);
void            rndz_server_io_start           (RndzServerIo     *io,
                                                GSocket          *tcp,
                                                GSocket          *udp);
void            rndz_server_io_stop            (RndzServerIo     *io);
void            rndz_server_io_fit_descriptors (RndzServerIo     *io,
                                                guint             reserved);
gboolean        rndz_server_io_is_listening    (RndzServerIo     *io);
GSocketAddress *rndz_server_io_get_local_address (RndzServerIo   *io);

void            rndz_server_io_set_sender      (RndzServerIo       *io,
                                                RndzServerSendFunc  func,
                                                gpointer            user_data);
void            rndz_server_io_receive_datagram (RndzServerIo    *io,
                                                 const RndzAddr  *from,
                                                 const char      *data,
                                                 gsize            len);
void            rndz_server_io_add_connection  (RndzServerIo     *io,
                                                GSocket          *socket,
                                                const RndzAddr   *remote);
gboolean        rndz_server_io_has_conn        (RndzServerIo     *io,
                                                RndzServerConn   *conn,
                                                const RndzAddr   *remote);
void            rndz_server_io_close           (RndzServerIo     *io,
                                                RndzServerConn   *conn);
gpointer        rndz_server_conn_get_registration (RndzServerConn *conn);
void            rndz_server_io_set_registration (RndzServerIo    *io,
                                                 RndzServerConn  *conn,
                                                 gpointer         registration);
void            rndz_server_io_expire_unregistered (RndzServerIo *io,
                                                    gint64        now);

void            rndz_server_io_schedule        (RndzServerIo     *io,
                                                gint64            deadline);
void            rndz_server_io_reschedule      (RndzServerIo     *io);

void            rndz_server_io_send_udp        (RndzServerIo      *io,
                                                const RndzAddr    *to,
                                                const RndzMessage *msg,
                                                gsize              limit);
void            rndz_server_io_send_tcp        (RndzServerIo      *io,
                                                RndzServerConn    *conn,
                                                const RndzMessage *msg);
gboolean        rndz_server_io_reply_fits      (RndzServerIo           *io,
                                                const RndzServerSource *src,
                                                const RndzMessage      *reply);
void            rndz_server_io_reply           (RndzServerIo           *io,
                                                const RndzServerSource *src,
                                                const RndzMessage      *msg);
void            rndz_server_io_reply_encoded   (RndzServerIo           *io,
                                                const RndzServerSource *src,
                                                const char             *buf,
                                                gsize                   len);
void            rndz_server_io_reply_error     (RndzServerIo           *io,
                                                const RndzServerSource *src,
                                                guint32                 tid,
                                                RndzWireError           code);
void            rndz_server_io_refuse          (RndzServerIo           *io,
                                                const RndzServerSource *src,
                                                guint32                 tid,
                                                RndzWireError           code,
                                                guint                   retry_ms);

G_END_DECLS
