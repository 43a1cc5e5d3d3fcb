/* rndz-types.h: enumerations and error domains shared by client and server
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(__RNDZ_H_INSIDE__) && !defined(RNDZ_COMPILATION)
#error "Only <rndz-glib/rndz.h> can be included directly."
#endif

#include <glib.h>
#include <rndz-glib/rndz-version-macros.h>

G_BEGIN_DECLS

/**
 * RndzTransport:
 * @RNDZ_TRANSPORT_UDP: datagrams over UDP
 * @RNDZ_TRANSPORT_TCP: a stream over TCP
 *
 * The transport a peer uses to reach the rendezvous server and its peers.
 *
 * Since: 1.0
 */
typedef enum {
  RNDZ_TRANSPORT_UDP,
  RNDZ_TRANSPORT_TCP,
} RndzTransport;

/**
 * RndzPath:
 * @RNDZ_PATH_UNKNOWN: the socket was not made by rndz-glib
 * @RNDZ_PATH_DIRECT: straight to the peer, at the address the server
 *   observed for it (or one its NAT showed to us)
 * @RNDZ_PATH_LOCAL: straight to the peer, at one of the local addresses it
 *   announced, or at a private address (RFC 1918, IPv6 unique local): the
 *   two peers share a network
 * @RNDZ_PATH_RELAYED: through the rendezvous server's relay, because no
 *   direct path worked
 *
 * How a socket or connection made by [class@Rndz.Client] reaches its
 * peer; see [func@Rndz.socket_get_path].
 *
 * Since: 1.0
 */
typedef enum {
  RNDZ_PATH_UNKNOWN,
  RNDZ_PATH_DIRECT,
  RNDZ_PATH_LOCAL,
  RNDZ_PATH_RELAYED,
} RndzPath;

/**
 * RndzError:
 * @RNDZ_ERROR_FAILED: a generic failure
 * @RNDZ_ERROR_PEER_NOT_FOUND: no peer with the requested id is registered
 *   with any of the servers
 * @RNDZ_ERROR_PEER_NO_ANSWER: the peer is registered, but did not answer the
 *   connection request that the server forwarded to it
 * @RNDZ_ERROR_SERVER_UNREACHABLE: none of the rendezvous servers could be
 *   reached (the name did not resolve, or the server refused the connection)
 * @RNDZ_ERROR_SERVER_FULL: the server refused the registration because it
 *   serves as many peers as it may
 * @RNDZ_ERROR_BAD_REQUEST: the server did not accept a request
 * @RNDZ_ERROR_ADDRESS_FAMILY: the peer is registered over the other IP
 *   version (IPv4 or IPv6) than the one used to ask for it, so the two
 *   cannot reach each other
 * @RNDZ_ERROR_NO_PATH: the peer answered, but no direct path between the
 *   two peers works, and no server offers to relay them (or the client's
 *   [property@Rndz.Client:relay] is off). Since: 1.0
 * @RNDZ_ERROR_RATE_LIMITED: the server refused the request because its
 *   sender asked too often, or its target is asked too often; it may
 *   succeed later (the message says when). Since: 1.0
 * @RNDZ_ERROR_AUTH_REQUIRED: the server authenticates its peers, and the
 *   request was not signed: set a key on the client. Since: 1.0
 * @RNDZ_ERROR_SERVER_UNAVAILABLE: the server is one node of a cluster and
 *   cannot reach the registry it shares with the others, so it cannot
 *   tell where the peer is; another server, or a later try, may. Since: 1.0
 * @RNDZ_ERROR_IDENTITY_MISMATCH: the peer at the other end of a secure
 *   connection did not prove the identity expected of it: its certificate
 *   does not have the fingerprint that the rendezvous announced, or the
 *   one the application pinned. Since: 1.0
 * @RNDZ_ERROR_HANDSHAKE_FAILED: the TLS or DTLS handshake with the peer
 *   failed for another reason (no common parameters, a corrupted or
 *   missing message, no answer in time). Since: 1.0
 * @RNDZ_ERROR_PATH_DEAD: the path to the peer of a secure channel stopped
 *   carrying traffic: nothing came from the peer for three keepalive
 *   intervals (the peer is gone, or a network on the way changed).
 *   Since: 1.0
 * @RNDZ_ERROR_NOT_SECURE: a secure connection was asked for, but the
 *   other side did not offer an identity (it runs without one, or an
 *   older version). Since: 1.0
 *
 * Error codes for the %RNDZ_ERROR domain: rendezvous failures.
 *
 * Timeouts and cancellation are reported as %G_IO_ERROR_TIMED_OUT and
 * %G_IO_ERROR_CANCELLED in the %G_IO_ERROR domain.
 *
 * Since: 1.0
 */
typedef enum {
  RNDZ_ERROR_FAILED,
  RNDZ_ERROR_PEER_NOT_FOUND,
  RNDZ_ERROR_PEER_NO_ANSWER,
  RNDZ_ERROR_SERVER_UNREACHABLE,
  RNDZ_ERROR_SERVER_FULL,
  RNDZ_ERROR_BAD_REQUEST,
  RNDZ_ERROR_ADDRESS_FAMILY,
  RNDZ_ERROR_NO_PATH,
  RNDZ_ERROR_RATE_LIMITED,
  RNDZ_ERROR_AUTH_REQUIRED,
  RNDZ_ERROR_SERVER_UNAVAILABLE,
  RNDZ_ERROR_IDENTITY_MISMATCH,
  RNDZ_ERROR_HANDSHAKE_FAILED,
  RNDZ_ERROR_PATH_DEAD,
  RNDZ_ERROR_NOT_SECURE,
} RndzError;

/**
 * RNDZ_ERROR:
 *
 * Error domain for rendezvous failures. Errors in this domain are from the
 * [enum@Rndz.Error] enumeration.
 *
 * Since: 1.0
 */
#define RNDZ_ERROR (rndz_error_quark ())

RNDZ_AVAILABLE_IN_1_0
GQuark rndz_error_quark (void);

/**
 * RndzProtocolError:
 * @RNDZ_PROTOCOL_ERROR_TOO_LARGE: the message is larger than allowed
 * @RNDZ_PROTOCOL_ERROR_TRUNCATED: the message or frame is incomplete
 * @RNDZ_PROTOCOL_ERROR_INVALID_ENCODING: the message is not valid UTF-8
 * @RNDZ_PROTOCOL_ERROR_INVALID_JSON: the message is not a JSON object
 * @RNDZ_PROTOCOL_ERROR_INVALID_FIELD: a field is missing, has the wrong
 *   type or an invalid value
 * @RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE: the message type is not known
 * @RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION: the protocol version is not
 *   supported
 *
 * Error codes for the %RNDZ_PROTOCOL_ERROR domain: messages that do not
 * follow the rendezvous protocol.
 *
 * Since: 1.0
 */
typedef enum {
  RNDZ_PROTOCOL_ERROR_TOO_LARGE,
  RNDZ_PROTOCOL_ERROR_TRUNCATED,
  RNDZ_PROTOCOL_ERROR_INVALID_ENCODING,
  RNDZ_PROTOCOL_ERROR_INVALID_JSON,
  RNDZ_PROTOCOL_ERROR_INVALID_FIELD,
  RNDZ_PROTOCOL_ERROR_UNKNOWN_TYPE,
  RNDZ_PROTOCOL_ERROR_UNSUPPORTED_VERSION,
} RndzProtocolError;

/**
 * RNDZ_PROTOCOL_ERROR:
 *
 * Error domain for malformed protocol messages. Errors in this domain are
 * from the [enum@Rndz.ProtocolError] enumeration.
 *
 * Since: 1.0
 */
#define RNDZ_PROTOCOL_ERROR (rndz_protocol_error_quark ())

RNDZ_AVAILABLE_IN_1_0
GQuark rndz_protocol_error_quark (void);

RNDZ_AVAILABLE_IN_1_0
gboolean rndz_is_valid_id (const char *id);

G_END_DECLS
