/* rndz-metrics.h: `rndz server --metrics-addr`, Prometheus metrics over HTTP
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <rndz-glib/rndz.h>

G_BEGIN_DECLS

typedef struct _RndzMetrics RndzMetrics;

RndzMetrics    *rndz_metrics_new               (RndzServer      *server,
                                                GSocketAddress  *address,
                                                GError         **error);
void            rndz_metrics_free              (RndzMetrics     *metrics);
GSocketAddress *rndz_metrics_get_local_address (RndzMetrics     *metrics);

char           *rndz_metrics_format            (RndzServer      *server);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzMetrics, rndz_metrics_free)

G_END_DECLS
