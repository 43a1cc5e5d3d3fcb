/* rndz-udp-batch.c: datagrams received and sent in batches
 *
 * SPDX-License-Identifier: MIT
 *
 * The server's hot path is a ping in, a pong out. At one recvfrom() and
 * one sendto() per ping, the system calls' entry and exit are a good part
 * of its cost; recvmmsg() and sendmmsg() pay them once per batch.
 * g_socket_receive_messages() would make a GSocketAddress for every
 * datagram: these work on the descriptor with plain sockaddrs instead.
 */

/* recvmmsg() and sendmmsg() */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <string.h>

#include "rndz-udp-batch-private.h"

struct _RndzRecvBatch
{
  guint size;
  gsize max_len;
  char *data;                   /* size slots of max_len bytes */
  struct mmsghdr *hdrs;
  struct iovec *iovs;
  struct sockaddr_storage *addrs;
};

struct _RndzSendBatch
{
  guint size;
  guint n;                      /* queued */
  char *data;                   /* size slots of RNDZ_SEND_BATCH_MAX_LEN bytes */
  struct mmsghdr *hdrs;
  struct iovec *iovs;
  struct sockaddr_storage *addrs;
};

/* Receiving */

/* @max_len: the largest datagram to read whole; a longer one is cut to
 * max_len bytes (make it one more than the largest accepted) */
RndzRecvBatch *
rndz_recv_batch_new (guint size,
                     gsize max_len)
{
  RndzRecvBatch *batch = g_new0 (RndzRecvBatch, 1);

  batch->size = size;
  batch->max_len = max_len;
  batch->data = g_malloc (size * max_len);
  batch->hdrs = g_new0 (struct mmsghdr, size);
  batch->iovs = g_new0 (struct iovec, size);
  batch->addrs = g_new0 (struct sockaddr_storage, size);
  for (guint i = 0; i < size; i++)
    {
      batch->iovs[i].iov_base = batch->data + i * max_len;
      batch->iovs[i].iov_len = max_len;
      batch->hdrs[i].msg_hdr.msg_iov = &batch->iovs[i];
      batch->hdrs[i].msg_hdr.msg_iovlen = 1;
    }
  return batch;
}

void
rndz_recv_batch_free (RndzRecvBatch *batch)
{
  g_free (batch->data);
  g_free (batch->hdrs);
  g_free (batch->iovs);
  g_free (batch->addrs);
  g_free (batch);
}

gsize
rndz_recv_batch_max_len (RndzRecvBatch *batch)
{
  return batch->max_len;
}

/*
 * rndz_recv_batch_read:
 *
 * Reads what is waiting, up to a batch, without blocking.
 *
 * Returns: the number of datagrams read, 0 if none was waiting, or -1
 *   with errno set (an ICMP error of an earlier send surfaces here:
 *   reading again goes on with the datagrams behind it)
 */
int
rndz_recv_batch_read (RndzRecvBatch *batch,
                      int            fd)
{
  int n;

  for (guint i = 0; i < batch->size; i++)
    {
      batch->hdrs[i].msg_hdr.msg_name = &batch->addrs[i];
      batch->hdrs[i].msg_hdr.msg_namelen = sizeof batch->addrs[i];
    }

  n = recvmmsg (fd, batch->hdrs, batch->size, MSG_DONTWAIT, NULL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return 0;
  return n;
}

/* The @i-th datagram of the last read */
const char *
rndz_recv_batch_get (RndzRecvBatch          *batch,
                     guint                   i,
                     gsize                  *len,
                     const struct sockaddr **from,
                     socklen_t              *from_len)
{
  *len = batch->hdrs[i].msg_len;
  *from = (const struct sockaddr *) &batch->addrs[i];
  *from_len = batch->hdrs[i].msg_hdr.msg_namelen;
  return batch->iovs[i].iov_base;
}

/* Sending */

RndzSendBatch *
rndz_send_batch_new (guint size)
{
  RndzSendBatch *batch = g_new0 (RndzSendBatch, 1);

  batch->size = size;
  batch->data = g_malloc (size * RNDZ_SEND_BATCH_MAX_LEN);
  batch->hdrs = g_new0 (struct mmsghdr, size);
  batch->iovs = g_new0 (struct iovec, size);
  batch->addrs = g_new0 (struct sockaddr_storage, size);
  for (guint i = 0; i < size; i++)
    {
      batch->iovs[i].iov_base = batch->data + i * RNDZ_SEND_BATCH_MAX_LEN;
      batch->hdrs[i].msg_hdr.msg_iov = &batch->iovs[i];
      batch->hdrs[i].msg_hdr.msg_iovlen = 1;
      batch->hdrs[i].msg_hdr.msg_name = &batch->addrs[i];
    }
  return batch;
}

void
rndz_send_batch_free (RndzSendBatch *batch)
{
  g_free (batch->data);
  g_free (batch->hdrs);
  g_free (batch->iovs);
  g_free (batch->addrs);
  g_free (batch);
}

/*
 * rndz_send_batch_queue:
 *
 * Queues a copy of a datagram, flushing the queue to @fd first if it is
 * full.
 *
 * Returns: %FALSE if the datagram is too long for the batch (send it
 *   yourself, after a flush if the order matters)
 */
gboolean
rndz_send_batch_queue (RndzSendBatch         *batch,
                       int                    fd,
                       const struct sockaddr *to,
                       socklen_t              to_len,
                       const char            *buf,
                       gsize                  len)
{
  guint i;

  if (len > RNDZ_SEND_BATCH_MAX_LEN || to_len > sizeof (struct sockaddr_storage))
    return FALSE;
  if (batch->n == batch->size)
    rndz_send_batch_flush (batch, fd);

  i = batch->n++;
  memcpy (batch->iovs[i].iov_base, buf, len);
  batch->iovs[i].iov_len = len;
  memcpy (&batch->addrs[i], to, to_len);
  batch->hdrs[i].msg_hdr.msg_namelen = to_len;
  return TRUE;
}

/*
 * rndz_send_batch_flush:
 *
 * Sends what is queued, best effort like UDP itself: a datagram the
 * kernel refuses (an unreachable destination) is skipped, and a full
 * socket buffer drops the rest, whose peers ask again.
 */
void
rndz_send_batch_flush (RndzSendBatch *batch,
                       int            fd)
{
  guint i = 0;

  while (i < batch->n)
    {
      int sent = sendmmsg (fd, batch->hdrs + i, batch->n - i, MSG_DONTWAIT);

      if (sent > 0)
        {
          i += sent;
          continue;
        }
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          g_debug ("UDP send buffer full: %u replies dropped", batch->n - i);
          break;
        }
      g_debug ("UDP send failed: %s", g_strerror (errno));
      i++;
    }
  batch->n = 0;
}

/* Forgets what is queued (the socket is going away) */
void
rndz_send_batch_clear (RndzSendBatch *batch)
{
  batch->n = 0;
}
