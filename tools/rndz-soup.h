/* rndz-soup.h: libsoup 3, opened when `rndz server --metrics-addr` first
 * needs it
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

/* The calls of libsoup that rndz-metrics.c makes */
typedef struct
{
  __typeof__ (soup_server_new) *server_new;
  __typeof__ (soup_server_add_handler) *server_add_handler;
  __typeof__ (soup_server_accept_iostream) *server_accept_iostream;
  __typeof__ (soup_server_disconnect) *server_disconnect;
  __typeof__ (soup_server_message_get_method) *server_message_get_method;
  __typeof__ (soup_server_message_get_response_headers) *server_message_get_response_headers;
  __typeof__ (soup_server_message_set_status) *server_message_set_status;
  __typeof__ (soup_server_message_set_response) *server_message_set_response;
  __typeof__ (soup_message_headers_replace) *message_headers_replace;
  __typeof__ (soup_message_headers_append) *message_headers_append;
} RndzSoupApi;

const RndzSoupApi *rndz_soup_api (GError **error);

G_END_DECLS
