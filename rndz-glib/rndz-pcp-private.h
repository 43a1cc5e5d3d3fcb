/* rndz-pcp-private.h: the Port Control Protocol's MAP opcode (RFC 6887)
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The server's port, PCP's and NAT-PMP's alike */
#define RNDZ_PCP_PORT 5351
#define RNDZ_PCP_VERSION 2
#define RNDZ_PCP_OPCODE_MAP 1
#define RNDZ_PCP_NONCE_SIZE 12
/* A MAP request without options: the common header and the opcode's */
#define RNDZ_PCP_MAP_SIZE 60
/* RFC 6887, 7: no message is longer */
#define RNDZ_PCP_MAX_SIZE 1100

/* IANA protocol numbers */
#define RNDZ_PCP_PROTO_TCP 6
#define RNDZ_PCP_PROTO_UDP 17

/* RFC 6887, 7.4 */
typedef enum
{
  RNDZ_PCP_SUCCESS = 0,
  RNDZ_PCP_UNSUPP_VERSION = 1,
  RNDZ_PCP_NOT_AUTHORIZED = 2,
  RNDZ_PCP_MALFORMED_REQUEST = 3,
  RNDZ_PCP_UNSUPP_OPCODE = 4,
  RNDZ_PCP_UNSUPP_OPTION = 5,
  RNDZ_PCP_MALFORMED_OPTION = 6,
  RNDZ_PCP_NETWORK_FAILURE = 7,
  RNDZ_PCP_NO_RESOURCES = 8,
  RNDZ_PCP_UNSUPP_PROTOCOL = 9,
  RNDZ_PCP_USER_EX_QUOTA = 10,
  RNDZ_PCP_CANNOT_PROVIDE_EXTERNAL = 11,
  RNDZ_PCP_ADDRESS_MISMATCH = 12,
  RNDZ_PCP_EXCESSIVE_REMOTE_PEERS = 13,
} RndzPcpResult;

/*
 * RndzPcpMap:
 * @nonce: the client's, the same for every request about one mapping
 * @protocol: RNDZ_PCP_PROTO_UDP or RNDZ_PCP_PROTO_TCP
 * @internal_port: the client's port
 * @external_port: suggested in a request (0: any), assigned in a response
 * @external_ip: IPv6, or IPv4 mapped (::ffff:a.b.c.d); all zero: any
 * @lifetime: seconds; a request with 0 deletes the mapping
 */
typedef struct
{
  guint8 nonce[RNDZ_PCP_NONCE_SIZE];
  guint8 protocol;
  guint16 internal_port;
  guint16 external_port;
  guint8 external_ip[16];
  guint32 lifetime;
} RndzPcpMap;

typedef enum
{
  RNDZ_PCP_REPLY_INVALID,       /* not a response to a MAP request of ours */
  RNDZ_PCP_REPLY_MAP,           /* a MAP response: see its result */
  RNDZ_PCP_REPLY_OLD_VERSION,   /* a NAT-PMP server (version 0) */
} RndzPcpReply;

/*
 * RndzPcpResponse:
 * @result: a RndzPcpResult
 * @epoch: the server's epoch time: a drop says it lost its mappings
 * @map: the mapping, lifetime included (for an error, how long the error
 *   holds)
 */
typedef struct
{
  guint8 result;
  guint32 epoch;
  RndzPcpMap map;
} RndzPcpResponse;

void          rndz_pcp_encode_map (const RndzPcpMap *map,
                                   const guint8      client_ip[16],
                                   guint8            buf[RNDZ_PCP_MAP_SIZE]);
RndzPcpReply  rndz_pcp_decode_map (const guint8     *buf,
                                   gsize             len,
                                   const RndzPcpMap *request,
                                   RndzPcpResponse  *response);
const char   *rndz_pcp_result_to_string (guint8 result);

G_END_DECLS
