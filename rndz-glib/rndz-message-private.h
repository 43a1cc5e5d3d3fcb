/* rndz-message-private.h: the rendezvous protocol's messages and frames
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "rndz-addr-private.h"

G_BEGIN_DECLS

#define RNDZ_PROTOCOL_VERSION 1

/* Limits of doc/protocol.md */
#define RNDZ_ID_MAX_LEN 64
#define RNDZ_MESSAGE_DEFAULT_MAX_SIZE 1400
#define RNDZ_MESSAGE_MIN_MAX_SIZE 512
#define RNDZ_MESSAGE_MAX_MAX_SIZE G_MAXUINT16
#define RNDZ_FRAME_HEADER_SIZE 2
#define RNDZ_MESSAGE_MAX_DEPTH 8
#define RNDZ_NONCE_LEN 16
#define RNDZ_MAC_HEX_LEN 64
#define RNDZ_KEY_MAX_LEN 1024
/* Local addresses a peer offers besides the one the server observes */
#define RNDZ_MAX_CANDIDATES 4
/* A relay session's token: 128 random bits in lowercase hex */
#define RNDZ_TOKEN_LEN 32
/* A peer's fingerprint: the SHA-256 of its certificate, in lowercase hex */
#define RNDZ_FP_LEN 64

typedef enum
{
  RNDZ_MESSAGE_INVALID = 0,
  RNDZ_MESSAGE_PING,
  RNDZ_MESSAGE_PONG,
  RNDZ_MESSAGE_ISYNC,
  RNDZ_MESSAGE_FSYNC,
  RNDZ_MESSAGE_RSYNC,
  RNDZ_MESSAGE_REDIRECT,
  RNDZ_MESSAGE_BYE,
  RNDZ_MESSAGE_ERROR,
  RNDZ_MESSAGE_CHECK,
  RNDZ_MESSAGE_CONFIRM,
  RNDZ_MESSAGE_USE,
  RNDZ_MESSAGE_RELAY,
  RNDZ_MESSAGE_SESSION,
  RNDZ_MESSAGE_HELLO,
  RNDZ_MESSAGE_WAIT,
  RNDZ_MESSAGE_READY,
} RndzMessageType;

#define RNDZ_MESSAGE_LAST RNDZ_MESSAGE_READY

/* The "code" of an error message */
typedef enum
{
  RNDZ_WIRE_ERROR_UNKNOWN = 0,
  RNDZ_WIRE_ERROR_PEER_NOT_FOUND,
  RNDZ_WIRE_ERROR_PEER_NO_ANSWER,
  RNDZ_WIRE_ERROR_SERVER_FULL,
  RNDZ_WIRE_ERROR_BAD_REQUEST,
  RNDZ_WIRE_ERROR_ADDRESS_FAMILY,
  RNDZ_WIRE_ERROR_NO_RELAY,
  RNDZ_WIRE_ERROR_RATE_LIMITED,
  RNDZ_WIRE_ERROR_AUTH_REQUIRED,
  RNDZ_WIRE_ERROR_UNAVAILABLE,
} RndzWireError;

#define RNDZ_WIRE_ERROR_LAST RNDZ_WIRE_ERROR_UNAVAILABLE

/* The range of an error's "retry": milliseconds after which the request
 * may succeed */
#define RNDZ_WIRE_RETRY_MIN_MS 1
#define RNDZ_WIRE_RETRY_MAX_MS 60000

/*
 * RndzMessage:
 *
 * One decoded message. It lives on the stack and owns no memory; which
 * fields are set depends on @type (see doc/protocol.md):
 *
 *   ping      id, cands (optional)
 *   pong      addr (the sender as the server sees it)
 *   isync     id (requester), target, cands (optional), fp (optional:
 *             the requester's fingerprint, for a secure connection)
 *   fsync     id (requester), addr (the requester as the server sees it),
 *             cands (optional: the requester's), fp (optional: the isync's)
 *   rsync     id (answering peer), target (requester), fp (optional: the
 *             answering peer's)
 *   redirect  id (target), addr (the target as the server sees it),
 *             seen (optional: the requester as the server sees it),
 *             cands (optional: the target's), fp (optional: the rsync's)
 *   bye       id
 *   error     code, retry_ms (optional: rate-limited)
 *
 * Connectivity checks, peer to peer (doc/protocol.md, "Paths"):
 *
 *   check     id (requester), target
 *   confirm   id (target), target (requester)
 *   use       id (requester), target: TCP, the connection chosen
 *
 * The relay:
 *
 *   relay     id (requester), target: requester → server
 *   session   id (the other peer), token, port: server → both peers
 *   hello     id, token: peer → the relay port
 *   wait      (nothing): the relay waits for the other peer
 *   ready     (nothing): both peers are there, the relay forwards
 */
typedef struct
{
  RndzMessageType type;
  guint32 tid;
  RndzWireError code;
  guint32 retry_ms;            /* error: 0, or RNDZ_WIRE_RETRY_MIN_MS..RNDZ_WIRE_RETRY_MAX_MS */
  char id[RNDZ_ID_MAX_LEN + 1];
  char target[RNDZ_ID_MAX_LEN + 1];
  RndzAddr addr;
  RndzAddr seen;               /* redirect: unset (family 0) if absent */
  RndzAddr cands[RNDZ_MAX_CANDIDATES];
  guint n_cands;
  char token[RNDZ_TOKEN_LEN + 1];
  guint16 port;
  char fp[RNDZ_FP_LEN + 1];     /* empty if absent */

  /* Authentication (doc/protocol.md): set by rndz_message_sign() */
  gint64 ts;                   /* milliseconds since the epoch */
  char nonce[RNDZ_NONCE_LEN + 1];
  RndzAddr srv;                /* the server the message is for; unset if absent */
  char mac[RNDZ_MAC_HEX_LEN + 1];
  gboolean auth;               /* fsync, session: the server authenticated the requester */

  /* Encoding only: pad the message to at least this many bytes */
  gsize pad_to;
} RndzMessage;

extern gboolean rndz_message_fast_path;

const char *rndz_message_type_to_string (RndzMessageType type);

gboolean    rndz_id_is_valid            (const char        *id,
                                         gssize             len);

void        rndz_message_init           (RndzMessage       *msg,
                                         RndzMessageType    type,
                                         guint32            tid);
gboolean    rndz_message_decode         (RndzMessage       *msg,
                                         const char        *data,
                                         gsize              len,
                                         gsize              max_size,
                                         GError           **error);
gsize       rndz_message_encode         (const RndzMessage *msg,
                                         char              *buf,
                                         gsize              size);
gsize       rndz_message_encode_frame   (const RndzMessage *msg,
                                         char              *buf,
                                         gsize              size);
gssize      rndz_frame_peek             (const guint8      *buf,
                                         gsize              len,
                                         gsize              max_size,
                                         GError           **error);
gsize       rndz_message_max_reply_size (const RndzMessage *request);
void        rndz_message_sign           (RndzMessage       *msg,
                                         const RndzAddr    *server,
                                         GBytes            *key,
                                         gint64             now_ms);
gboolean    rndz_message_verify         (const RndzMessage *msg,
                                         GBytes            *key);
GError *    rndz_wire_error_to_gerror   (RndzWireError      code,
                                         const char        *peer_id);
GError *    rndz_message_error_to_gerror (const RndzMessage *msg,
                                          const char        *peer_id);

G_END_DECLS
