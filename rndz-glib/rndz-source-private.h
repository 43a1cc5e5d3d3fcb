/* rndz-source-private.h: main-context sources the library shares
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

GSource *rndz_timeout_add             (GMainContext    *context,
                                       guint            ms,
                                       GSourceFunc      func,
                                       gpointer         user_data);
void     rndz_source_clear            (GSource        **source);
GSource *rndz_socket_source_add       (GSocket         *socket,
                                       GMainContext    *context,
                                       GSocketSourceFunc func,
                                       gpointer         user_data,
                                       const char      *name);
GSource *rndz_deadline_source_new     (GMainContext    *context,
                                       const char      *name,
                                       GSourceFunc      func,
                                       gpointer         user_data);
void     rndz_deadline_source_arm     (GSource         *source,
                                       gint64           deadline);

G_END_DECLS
