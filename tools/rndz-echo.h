/* rndz-echo.h: the echo service of `rndz client` when it listens
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include <rndz-glib/rndz.h>

G_BEGIN_DECLS

typedef struct _RndzToolEcho RndzToolEcho;

RndzToolEcho *rndz_tool_echo_new         (RndzClient    *client,
                                          gboolean       secure,
                                          guint          idle_timeout_s,
                                          GCancellable  *cancellable);
void          rndz_tool_echo_udp_start   (RndzToolEcho  *echo,
                                          GSocket       *socket);
void          rndz_tool_echo_tcp_start   (RndzToolEcho  *echo);
guint         rndz_tool_echo_get_pending (RndzToolEcho  *echo);
void          rndz_tool_echo_stop        (RndzToolEcho  *echo);
void          rndz_tool_echo_free        (RndzToolEcho  *echo);

G_END_DECLS
