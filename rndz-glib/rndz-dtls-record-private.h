/* rndz-dtls-record-private.h: the inside of a RndzDtlsChannel, shared by
 * its files
 *
 * SPDX-License-Identifier: MIT
 *
 * rndz-dtls-record.c moves records between the socket and GnuTLS, keeps
 * the path alive and closes the channel; rndz-dtls-handshake.c sets up
 * the GnuTLS session and runs the handshake; rndz-dtls-channel.c is the
 * GObject, its GDatagramBased interface and its GBytes helpers. Arrows
 * go one way: handshake → channel → record.
 *
 * Without GnuTLS (RNDZ_HAVE_TLS unset), rndz-dtls-channel-none.c takes
 * the place of the record and handshake files: the GObject is the same,
 * but no handshake succeeds, so no channel ever opens.
 *
 * Threads: none. Every source is attached to the context that was
 * thread-default when the channel was made (its handshake began), and
 * every callback runs there; the blocking calls (receive, wait) run the
 * same record and keepalive code themselves while they wait, so a
 * channel stays alive while its owner blocks in one.
 */

#pragma once

#include "rndz-dtls-channel-private.h"

G_BEGIN_DECLS

/* Phases of a channel: HANDSHAKE until the peer proved its identity
 * (nobody but the handshake sees the channel), OPEN while it carries
 * data, CLOSED for good (close_reason says why, NULL when the owner
 * closed it). */
typedef enum
{
  RNDZ_DTLS_PHASE_HANDSHAKE,
  RNDZ_DTLS_PHASE_OPEN,
  RNDZ_DTLS_PHASE_CLOSED,
} RndzDtlsPhase;

/* The first byte of every record's plaintext (doc/security.md, "What
 * DTLS guarantees"): what the rest is */
typedef enum
{
  RNDZ_DTLS_RECORD_DATA = 0,
  RNDZ_DTLS_RECORD_PING = 1,
  RNDZ_DTLS_RECORD_PONG = 2,
} RndzDtlsRecordType;

/* Room for any UDP datagram a peer may send us: bigger ones are cut, and
 * then fail to authenticate */
#define RNDZ_DTLS_DATAGRAM_MAX 2048
/* Authentic datagrams waiting for the application; more are dropped, as
 * a full socket buffer drops them */
#define RNDZ_DTLS_QUEUE_MAX 1024
#define RNDZ_DTLS_DEFAULT_KEEPALIVE_MS 15000
#define RNDZ_DTLS_MIN_KEEPALIVE_MS 100
/* Nothing authentic from the peer for this many keepalive intervals:
 * the path is dead */
#define RNDZ_DTLS_DEAD_INTERVALS 3

struct _RndzDtlsChannel
{
  GObject parent_instance;

  GSocket *socket;
  GMainContext *context;
  RndzDtlsPhase phase;
  gboolean server;             /* the DTLS server: the listener */
  /* A gnutls_session_t, by the name GnuTLS declares it with, so that
   * rndz-dtls-channel.c builds without GnuTLS's headers */
  struct gnutls_session_int *session;
  RndzIdentity *identity;      /* owns the session's credentials */

  /* The datagram just read, for GnuTLS's pull function */
  guint8 in_buf[RNDZ_DTLS_DATAGRAM_MAX];
  gsize in_len;
  gboolean in_full;

  GSource *read_source;
  GSource *timer;              /* retransmissions, then keepalives */

  /* Handshake */
  GTask *handshake;
  GSource *cancel_source;
  char *expected;
  gboolean mismatch;
  gint64 handshake_deadline;

  char *peer_fingerprint;
  gsize max_payload;

  /* Keepalive: monotonic times in µs */
  guint keepalive_ms;
  gint64 last_heard;
  gint64 last_sent;
  gint64 last_ping;

  GQueue incoming;             /* GBytes, oldest first */
  GQueue receivers;            /* GTasks of receive_bytes_async() */
  GError *close_reason;

  RndzDtlsStats stats;
};

/* rndz-dtls-record.c */
void     rndz_dtls_transport_init    (RndzDtlsChannel     *self);
gboolean rndz_dtls_read_datagram     (RndzDtlsChannel     *self);
void     rndz_dtls_open              (RndzDtlsChannel     *self);
void     rndz_dtls_pump              (RndzDtlsChannel     *self);
gboolean rndz_dtls_send_record       (RndzDtlsChannel     *self,
                                      RndzDtlsRecordType   type,
                                      const guint8        *data,
                                      gsize                len,
                                      GError             **error);
GIOCondition rndz_dtls_condition     (RndzDtlsChannel     *self);
gboolean rndz_dtls_wait              (RndzDtlsChannel     *self,
                                      GIOCondition         condition,
                                      gint64               timeout_us,
                                      GCancellable        *cancellable,
                                      GError             **error);
gboolean rndz_dtls_check_open        (RndzDtlsChannel     *self,
                                      GError             **error);
void     rndz_dtls_close             (RndzDtlsChannel     *self,
                                      GError              *reason);
void     rndz_dtls_reschedule        (RndzDtlsChannel     *self);
void     rndz_dtls_teardown          (RndzDtlsChannel     *self);
void     rndz_dtls_say_bye           (RndzDtlsChannel     *self);
void     rndz_dtls_free_session      (RndzDtlsChannel     *self);

G_END_DECLS
