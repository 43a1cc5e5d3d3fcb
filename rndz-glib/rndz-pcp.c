/* rndz-pcp.c: the Port Control Protocol's MAP opcode (RFC 6887)
 *
 * SPDX-License-Identifier: MIT
 *
 * Only what a client behind one NAT needs: MAP requests without options
 * (create, renew, delete), and their responses. No packaged library
 * speaks PCP; the format is small enough to write out here, to the RFC:
 *
 *   request header (24 bytes)   version 2, R 0 | opcode, 2 reserved,
 *                               requested lifetime (4), client IP (16)
 *   response header (24 bytes)  version 2, R 1 | opcode, 1 reserved,
 *                               result code, lifetime (4), epoch (4),
 *                               12 reserved
 *   MAP payload (36 bytes)      nonce (12), protocol, 3 reserved,
 *                               internal port (2), external port (2),
 *                               external IP (16)
 *
 * Everything in network byte order; IPv4 addresses IPv4-mapped.
 */

#include "config.h"

#include <string.h>

#include "rndz-pcp-private.h"

#define HEADER_SIZE 24
#define RESPONSE_BIT 0x80

static void
put_u16 (guint8  *p,
         guint16  v)
{
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static void
put_u32 (guint8  *p,
         guint32  v)
{
  put_u16 (p, v >> 16);
  put_u16 (p + 2, v & 0xffff);
}

static guint16
get_u16 (const guint8 *p)
{
  return (guint16) (p[0] << 8 | p[1]);
}

static guint32
get_u32 (const guint8 *p)
{
  return (guint32) get_u16 (p) << 16 | get_u16 (p + 2);
}

/*
 * rndz_pcp_encode_map:
 * @client_ip: the client's address as the server sees the request come
 *   from (IPv4-mapped for IPv4): the server answers ADDRESS_MISMATCH
 *   when they differ, which tells of a NAT between
 *
 * Writes a MAP request for @map, without options.
 */
void
rndz_pcp_encode_map (const RndzPcpMap *map,
                     const guint8      client_ip[16],
                     guint8            buf[RNDZ_PCP_MAP_SIZE])
{
  guint8 *payload = buf + HEADER_SIZE;

  memset (buf, 0, RNDZ_PCP_MAP_SIZE);
  buf[0] = RNDZ_PCP_VERSION;
  buf[1] = RNDZ_PCP_OPCODE_MAP;
  put_u32 (buf + 4, map->lifetime);
  memcpy (buf + 8, client_ip, 16);

  memcpy (payload, map->nonce, RNDZ_PCP_NONCE_SIZE);
  payload[12] = map->protocol;
  put_u16 (payload + 16, map->internal_port);
  put_u16 (payload + 18, map->external_port);
  memcpy (payload + 20, map->external_ip, 16);
}

/*
 * rndz_pcp_decode_map:
 * @request: the request the response should answer
 *
 * Reads a datagram from the server. A response answers @request if it
 * is a MAP response of version 2 with @request's nonce, protocol and
 * internal port (RFC 6887, 11.3); options after the payload are
 * skipped, as none of ours asked for any. A datagram of version 0 is
 * NAT-PMP's: the server does not speak PCP (RFC 6887, 9).
 */
RndzPcpReply
rndz_pcp_decode_map (const guint8     *buf,
                     gsize             len,
                     const RndzPcpMap *request,
                     RndzPcpResponse  *response)
{
  const guint8 *payload = buf + HEADER_SIZE;
  RndzPcpMap *map = &response->map;

  if (len >= 2 && buf[0] == 0)
    return RNDZ_PCP_REPLY_OLD_VERSION;
  /* RFC 6887, 8.3: at least a header, at most 1100 bytes, whole words */
  if (len < HEADER_SIZE || len > RNDZ_PCP_MAX_SIZE || len % 4 != 0)
    return RNDZ_PCP_REPLY_INVALID;
  if (buf[0] != RNDZ_PCP_VERSION || buf[1] != (RESPONSE_BIT | RNDZ_PCP_OPCODE_MAP))
    return RNDZ_PCP_REPLY_INVALID;
  /* Even an error copies the request's payload, so that it can be told
   * apart from a forged one */
  if (len < RNDZ_PCP_MAP_SIZE)
    return RNDZ_PCP_REPLY_INVALID;

  memset (response, 0, sizeof *response);
  response->result = buf[3];
  response->epoch = get_u32 (buf + 8);
  map->lifetime = get_u32 (buf + 4);
  memcpy (map->nonce, payload, RNDZ_PCP_NONCE_SIZE);
  map->protocol = payload[12];
  map->internal_port = get_u16 (payload + 16);
  map->external_port = get_u16 (payload + 18);
  memcpy (map->external_ip, payload + 20, 16);

  if (memcmp (map->nonce, request->nonce, RNDZ_PCP_NONCE_SIZE) != 0 ||
      map->protocol != request->protocol ||
      map->internal_port != request->internal_port)
    return RNDZ_PCP_REPLY_INVALID;
  return RNDZ_PCP_REPLY_MAP;
}

const char *
rndz_pcp_result_to_string (guint8 result)
{
  static const char *const names[] = {
    "SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
    "UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION", "NETWORK_FAILURE",
    "NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA", "CANNOT_PROVIDE_EXTERNAL",
    "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS",
  };

  return result < G_N_ELEMENTS (names) ? names[result] : "unknown";
}
