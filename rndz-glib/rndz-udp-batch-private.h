/* rndz-udp-batch-private.h: datagrams received and sent in batches
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>
#include <sys/socket.h>

G_BEGIN_DECLS

/*
 * RndzRecvBatch:
 *
 * Reads up to a batch of datagrams from a socket with one recvmmsg(), into
 * buffers allocated once: no memory is allocated per datagram, and one
 * system call serves many of them.
 */
typedef struct _RndzRecvBatch RndzRecvBatch;

RndzRecvBatch *rndz_recv_batch_new     (guint                   size,
                                        gsize                   max_len);
void           rndz_recv_batch_free    (RndzRecvBatch          *batch);
gsize          rndz_recv_batch_max_len (RndzRecvBatch          *batch);
int            rndz_recv_batch_read    (RndzRecvBatch          *batch,
                                        int                     fd);
const char    *rndz_recv_batch_get     (RndzRecvBatch          *batch,
                                        guint                   i,
                                        gsize                  *len,
                                        const struct sockaddr **from,
                                        socklen_t              *from_len);

/*
 * RndzSendBatch:
 *
 * Datagrams queued (copied) while a batch of requests is handled, and
 * sent with one sendmmsg() when it is flushed, or when the queue is full.
 */
typedef struct _RndzSendBatch RndzSendBatch;

/* The largest datagram a send batch holds; larger ones go on their own */
#define RNDZ_SEND_BATCH_MAX_LEN 1500

RndzSendBatch *rndz_send_batch_new     (guint                   size);
void           rndz_send_batch_free    (RndzSendBatch          *batch);
gboolean       rndz_send_batch_queue   (RndzSendBatch          *batch,
                                        int                     fd,
                                        const struct sockaddr  *to,
                                        socklen_t               to_len,
                                        const char             *buf,
                                        gsize                   len);
void           rndz_send_batch_flush   (RndzSendBatch          *batch,
                                        int                     fd);
void           rndz_send_batch_clear   (RndzSendBatch          *batch);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzRecvBatch, rndz_recv_batch_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzSendBatch, rndz_send_batch_free)

G_END_DECLS
