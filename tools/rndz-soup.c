/* rndz-soup.c: libsoup 3, opened when `rndz server --metrics-addr` first
 * needs it
 *
 * SPDX-License-Identifier: MIT
 *
 * libsoup brings SQLite, libpsl, Brotli, Kerberos and nghttp2 with it:
 * linked into `rndz`, they cost every run of the program, `rndz client`
 * included, about 0.6 ms at start-up (tools/meson.build has the figures)
 * for an HTTP server that only `rndz server --metrics-addr` starts. So
 * the program is built against libsoup's headers but not linked with it,
 * and opens it by its soname (SOUP_SONAME, found by meson) with GModule
 * the first time metrics are asked for, as the library does with
 * gupnp-igd (rndz-glib/rndz-portmap.c).
 */

#include <gmodule.h>
#include <glib/gi18n.h>

#include "rndz-soup.h"

/* Each call, by name, and where rndz_soup_api() puts its address */
static const struct
{
  const char *symbol;
  gsize offset;
} soup_calls[] = {
  { "soup_server_new", G_STRUCT_OFFSET (RndzSoupApi, server_new) },
  { "soup_server_add_handler", G_STRUCT_OFFSET (RndzSoupApi, server_add_handler) },
  { "soup_server_accept_iostream", G_STRUCT_OFFSET (RndzSoupApi, server_accept_iostream) },
  { "soup_server_disconnect", G_STRUCT_OFFSET (RndzSoupApi, server_disconnect) },
  { "soup_server_message_get_method", G_STRUCT_OFFSET (RndzSoupApi, server_message_get_method) },
  { "soup_server_message_get_response_headers",
    G_STRUCT_OFFSET (RndzSoupApi, server_message_get_response_headers) },
  { "soup_server_message_set_status", G_STRUCT_OFFSET (RndzSoupApi, server_message_set_status) },
  { "soup_server_message_set_response",
    G_STRUCT_OFFSET (RndzSoupApi, server_message_set_response) },
  { "soup_message_headers_replace", G_STRUCT_OFFSET (RndzSoupApi, message_headers_replace) },
  { "soup_message_headers_append", G_STRUCT_OFFSET (RndzSoupApi, message_headers_append) },
};

static gboolean
soup_load (RndzSoupApi  *api,
           char        **error_message)
{
  GModule *module = g_module_open (SOUP_SONAME, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);

  if (module == NULL)
    {
      *error_message = g_strdup (g_module_error ());
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (soup_calls); i++)
    if (!g_module_symbol (module, soup_calls[i].symbol,
                          &G_STRUCT_MEMBER (gpointer, api, soup_calls[i].offset)))
      {
        *error_message = g_strdup (g_module_error ());
        g_module_close (module);
        return FALSE;
      }

  /* Its GTypes stay registered: it must stay */
  g_module_make_resident (module);
  return TRUE;
}

/*
 * rndz_soup_api:
 *
 * Opens libsoup the first time; later calls answer as the first did.
 *
 * Returns: (transfer none): its calls, or %NULL with @error set when it
 *   cannot be opened
 */
const RndzSoupApi *
rndz_soup_api (GError **error)
{
  static gsize loaded = 0;
  static RndzSoupApi api;
  static char *error_message = NULL;

  if (g_once_init_enter (&loaded))
    {
      if (!soup_load (&api, &error_message))
        g_debug ("Metrics: cannot open %s: %s", SOUP_SONAME, error_message);
      g_once_init_leave (&loaded, 1);
    }
  if (error_message != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Metrics need libsoup 3 (%s), which cannot be opened: %s"),
                   SOUP_SONAME, error_message);
      return NULL;
    }
  return &api;
}
