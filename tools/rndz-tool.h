/* rndz-tool.h: what the files of the rndz program share
 *
 * SPDX-License-Identifier: MIT
 *
 * The arrows go one way: rndz.c (main) chooses a mode and calls its
 * rndz_tool_*_main(); the modes (rndz-server-cmd.c, rndz-client-cmd.c,
 * rndz-key-cmd.c, rndz-fingerprint-cmd.c) call the helpers of
 * rndz-tool.c; rndz-tool.c calls nobody here.
 */

#pragma once

#include <gio/gio.h>

#include <rndz-glib/rndz.h>

G_BEGIN_DECLS

/* The modes, each with the arguments that follow its name */
int       rndz_tool_server_main         (int              argc,
                                         char           **argv);
int       rndz_tool_client_main         (int              argc,
                                         char           **argv);
int       rndz_tool_key_main            (int              argc,
                                         char           **argv);
int       rndz_tool_fingerprint_main    (int              argc,
                                         char           **argv);

/* Common helpers, rndz-tool.c */
void      rndz_tool_print_error         (const char      *format,
                                         ...) G_GNUC_PRINTF (1, 2);
void      rndz_tool_print_note          (const char      *format,
                                         ...) G_GNUC_PRINTF (1, 2);
void      rndz_tool_print_peer_fingerprint (const char   *peer_id,
                                         const char      *fingerprint);
void      rndz_tool_set_verbose         (gboolean         verbose);
void      rndz_tool_raise_descriptor_limit (void);

char     *rndz_tool_format_address      (GSocketAddress  *address);
const char *rndz_tool_path_name         (GSocket         *socket);
GSocket  *rndz_tool_stream_get_socket   (GIOStream       *stream);
void      rndz_tool_print_tls_peer      (const char      *peer_id,
                                         GTlsConnection  *connection);

GBytes   *rndz_tool_read_secret         (const char      *path,
                                         const char      *variable,
                                         GError         **error);
gboolean  rndz_tool_parse_uint_option   (const char      *option,
                                         const char      *text,
                                         GType            type,
                                         const char      *property,
                                         guint            scale,
                                         guint            fallback_max,
                                         guint           *value,
                                         GError         **error);

void      rndz_tool_add_quit_signals    (GSourceFunc      callback,
                                         gpointer         user_data,
                                         guint            ids[2]);
void      rndz_tool_remove_quit_signals (guint            ids[2]);

G_END_DECLS
