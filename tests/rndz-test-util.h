/* rndz-test-util.h: what the C tests share
 *
 * SPDX-License-Identifier: MIT
 *
 * Every wait here runs a main context: it blocks in
 * g_main_context_iteration() until a source fires, with a timeout source
 * attached so that it always ends. A context argument of NULL means the
 * thread-default context, the one RndzClient and RndzServer attach their
 * sources to.
 */

#pragma once

#include <rndz-glib/rndz.h>

#include "rndz-message-private.h"
#ifdef RNDZ_HAVE_SERVER
#include "rndz-server-private.h"
#endif

G_BEGIN_DECLS

/* Generous bound for a wait that should end now: valgrind is slow */
#define RNDZ_TEST_TIMEOUT_MS 20000

/* Main context */

typedef gboolean (*RndzTestCond) (gpointer data);

gboolean rndz_test_run_until          (GMainContext   *context,
                                       RndzTestCond    cond,
                                       gpointer        data,
                                       guint           timeout_ms);
gboolean rndz_test_run_until_true     (GMainContext   *context,
                                       const gboolean *flag,
                                       guint           timeout_ms);
gboolean rndz_test_run_until_set      (GMainContext   *context,
                                       gpointer       *pointer,
                                       guint           timeout_ms);
gboolean rndz_test_run_until_readable (GMainContext   *context,
                                       GSocket        *socket,
                                       guint           timeout_ms);
gboolean rndz_test_poll_until         (RndzTestCond    cond,
                                       gpointer        data,
                                       guint           timeout_ms);
void     rndz_test_run_for            (GMainContext   *context,
                                       guint           ms);
void     rndz_test_drain              (GMainContext   *context);

/* Fails the test, saying what it waited for, unless @flag comes true */
#define rndz_test_wait_true(context, flag, timeout_ms) \
  G_STMT_START { \
    if (!rndz_test_run_until_true ((context), (flag), (timeout_ms))) \
      g_error ("Timed out after %u ms waiting for %s", (guint) (timeout_ms), #flag); \
  } G_STMT_END

/* Async results: pass rndz_test_async_cb with a GAsyncResult ** set to
 * NULL as user data; rndz_test_wait_async() runs the context until the
 * callback stored the result, and returns it for the _finish call */
void          rndz_test_async_cb   (GObject       *source,
                                    GAsyncResult  *result,
                                    gpointer       user_data);
GAsyncResult *rndz_test_wait_async (GMainContext  *context,
                                    GAsyncResult **result,
                                    guint          timeout_ms);

/* The environment */

gboolean rndz_test_under_valgrind (void);
gboolean rndz_test_have_ipv6      (void);
guint    rndz_test_count_entries  (const char *path);
gint64   rndz_test_listen_overflows (void);

/* Addresses and sockets on the loopback */

RndzAddr        rndz_test_addr               (const char    *text);
GSocketAddress *rndz_test_loopback_address   (GSocketFamily  family,
                                              guint16        port);
char           *rndz_test_loopback_string    (GSocketFamily  family,
                                              guint16        port);
GSocket        *rndz_test_socket_new         (GSocketFamily  family,
                                              GSocketType    type,
                                              RndzAddr      *local);
guint16         rndz_test_free_port          (void);
guint16         rndz_test_free_port_for      (GSocketFamily  family);
#ifdef RNDZ_HAVE_SERVER
guint16         rndz_test_server_listen      (RndzServer    *server,
                                              GSocketFamily  family,
                                              guint16        port);
RndzServer     *rndz_test_server_new         (GSocketFamily  family,
                                              char         **address);

/* A server without sockets: datagrams fed in, and what it sends
 * captured, decoded, in an array of RndzTestSent */

typedef struct
{
  RndzAddr to;
  gsize len;
  RndzMessage msg;
} RndzTestSent;

GArray *rndz_test_capture_sent  (RndzServer      *server);
guint   rndz_test_count_sent    (GArray          *sent,
                                 RndzMessageType  type);
void    rndz_test_feed_datagram (RndzServer      *server,
                                 const char      *from,
                                 const char      *data,
                                 gsize            len);
gsize   rndz_test_feed          (RndzServer      *server,
                                 const char      *from,
                                 RndzMessage     *msg,
                                 gboolean         pad);
#endif

/* Raw peers: a UDP socket that sends to a port of the server, or a TCP
 * connection to it, speaking the protocol without RndzClient */

typedef struct
{
  RndzTransport transport;
  GSocket *socket;
  GSocketAddress *to;           /* where it sends: the server's port */
  RndzAddr local;
  /* TCP: bytes received but not handed out as frames yet */
  guint8 in_buf[RNDZ_FRAME_HEADER_SIZE + RNDZ_MESSAGE_MAX_MAX_SIZE];
  gsize in_len;
} RndzTestPeer;

RndzTestPeer *rndz_test_peer_new            (RndzTransport      transport,
                                             GSocketFamily      family,
                                             guint16            port);
void          rndz_test_peer_free           (RndzTestPeer      *peer);
void          rndz_test_peer_send_raw       (RndzTestPeer      *peer,
                                             const void        *data,
                                             gsize              len);
void          rndz_test_peer_send_unpadded  (RndzTestPeer      *peer,
                                             const RndzMessage *msg);
void          rndz_test_peer_send           (RndzTestPeer      *peer,
                                             const RndzMessage *msg);
char         *rndz_test_peer_recv_payload   (GMainContext      *context,
                                             RndzTestPeer      *peer,
                                             gsize             *len_out,
                                             guint              timeout_ms,
                                             const char        *what);
void          rndz_test_peer_recv           (GMainContext      *context,
                                             RndzTestPeer      *peer,
                                             RndzMessage       *msg,
                                             guint              timeout_ms,
                                             const char        *what);
void          rndz_test_peer_expect         (GMainContext      *context,
                                             RndzTestPeer      *peer,
                                             RndzMessageType    type,
                                             guint32            tid,
                                             RndzMessage       *msg,
                                             guint              timeout_ms);
void          rndz_test_peer_expect_closed  (GMainContext      *context,
                                             RndzTestPeer      *peer,
                                             guint              timeout_ms);
void          rndz_test_peer_expect_silence (GMainContext      *context,
                                             RndzTestPeer      *peer,
                                             guint              quiet_ms);

void          rndz_test_wait_readable       (GMainContext      *context,
                                             GSocket           *socket,
                                             guint              timeout_ms,
                                             const char        *what);
gssize        rndz_test_receive_from        (GMainContext      *context,
                                             GSocket           *socket,
                                             GSocketAddress   **from,
                                             char              *buf,
                                             gsize              size,
                                             guint              timeout_ms);
void          rndz_test_read_exactly        (GMainContext      *context,
                                             GSocket           *socket,
                                             char              *buf,
                                             gsize              len,
                                             guint              timeout_ms);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzTestPeer, rndz_test_peer_free)

G_END_DECLS
