/* test-metrics.c: `rndz server --metrics-addr`, scraped by a real HTTP client
 *
 * SPDX-License-Identifier: MIT
 *
 * The server and the peers are rndz processes; the client is curl, or
 * Python's urllib where curl is not installed.
 */

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rndz-test-program.h"
#include "rndz-test-util.h"

/* Reads the line that starts with @prefix, returns the rest */
static char *
read_after (RndzTestProgram *program,
            const char      *prefix)
{
  g_autofree char *line = rndz_test_program_read_line (program);

  if (!g_str_has_prefix (line, prefix))
    g_error ("Expected “%s…”, got “%s”", prefix, line);
  return g_strdup (line + strlen (prefix));
}

/* A server on free loopback ports; *address is its "127.0.0.1:PORT",
 * *url its metrics' */
static RndzTestProgram *
start_server (char **address,
              char **url)
{
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                         "--metrics-addr", "127.0.0.1:0", NULL };
  RndzTestProgram *server = rndz_test_program_start (argv, NULL, NULL, NULL);

  *address = read_after (server, "Listening on ");
  *url = read_after (server, "Metrics on ");
  g_assert_true (g_str_has_prefix (*url, "http://127.0.0.1:"));
  g_assert_true (g_str_has_suffix (*url, "/metrics"));
  return server;
}

/* HTTP GET with a real client: the status (0 if the client failed, as
 * when the connection closes without an answer), and the content type
 * and body of an answer */
static guint
http_get (const char  *url,
          char       **content_type,
          char       **body)
{
  g_autofree char *curl = g_find_program_in_path ("curl");
  g_autofree char *out = NULL, *err = NULL;
  g_auto(GStrv) parts = NULL;
  const char *curl_argv[] = { curl, "--silent", "--show-error", "--max-time", "10",
                              "--write-out", "\n%{http_code}\n%{content_type}", url, NULL };
  /* The same three parts as curl prints them */
  const char *python_argv[] = {
    "/usr/bin/python3", "-c",
    "import sys, urllib.request, urllib.error\n"
    "try:\n"
    "    r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
    "except urllib.error.HTTPError as e:\n"
    "    r = e\n"
    "sys.stdout.write(r.read().decode() + '\\n%d\\n%s' % (r.status, r.headers.get('Content-Type', '')))\n",
    url, NULL };

  if (rndz_test_run_program (curl != NULL ? curl_argv : python_argv, NULL, &out, &err) != 0)
    return 0;
  /* body \n status \n content type; the body has newlines of its own */
  parts = g_strsplit (out, "\n", -1);
  g_assert_cmpuint (g_strv_length (parts), >=, 3);
  if (content_type != NULL)
    *content_type = g_strdup (parts[g_strv_length (parts) - 1]);
  if (body != NULL)
    {
      char *end = g_strrstr_len (out, -1, "\n");

      *end = '\0';
      end = g_strrstr_len (out, -1, "\n");
      *body = g_strndup (out, end - out);
    }
  return atoi (parts[g_strv_length (parts) - 2]);
}

/* Checks that @text is Prometheus text exposition 0.0.4 (as far as rndz
 * uses it): every sample of a family with a TYPE before it, counters
 * named _total; returns the samples, "name{labels}" → value */
static GHashTable *
parse_exposition (const char *text)
{
  g_autoptr(GRegex) sample = g_regex_new ("^([a-zA-Z_:][a-zA-Z0-9_:]*)"
                                          "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\\\n]*\""
                                          "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\\\n]*\")*\\})?"
                                          " ([0-9]+(\\.[0-9]+)?)$", 0, 0, NULL);
  g_autoptr(GRegex) comment = g_regex_new ("^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$",
                                           0, 0, NULL);
  g_autoptr(GHashTable) types = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  GHashTable *samples = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);

  g_assert_true (g_str_has_suffix (text, "\n"));
  for (guint i = 0; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      g_autoptr(GMatchInfo) match = NULL, comment_match = NULL;
      g_autofree char *name = NULL, *labels = NULL, *value = NULL;
      const char *type;

      if (g_regex_match (comment, lines[i], 0, &comment_match))
        {
          g_autofree char *kind = g_match_info_fetch (comment_match, 1);

          if (g_str_equal (kind, "TYPE"))
            g_hash_table_insert (types, g_match_info_fetch (comment_match, 2),
                                 g_match_info_fetch (comment_match, 3));
          continue;
        }
      if (!g_regex_match (sample, lines[i], 0, &match))
        g_error ("Not a sample: “%s”", lines[i]);

      name = g_match_info_fetch (match, 1);
      labels = g_match_info_fetch (match, 2);
      value = g_match_info_fetch (match, 4);
      type = g_hash_table_lookup (types, name);
      if (type == NULL && (g_str_has_suffix (name, "_sum") || g_str_has_suffix (name, "_count")))
        {
          g_autofree char *family = g_strndup (name, strrchr (name, '_') - name);

          type = g_hash_table_lookup (types, family);
          g_assert_cmpstr (type, ==, "summary");
        }
      if (type == NULL)
        g_error ("No TYPE before “%s”", lines[i]);
      g_assert_cmpint (g_str_equal (type, "counter"), ==, g_str_has_suffix (name, "_total"));
      g_hash_table_insert (samples, g_strconcat (name, labels, NULL), g_steal_pointer (&value));
    }
  return samples;
}

static void
assert_sample (GHashTable *samples,
               const char *name,
               const char *value)
{
  const char *got = g_hash_table_lookup (samples, name);

  if (got == NULL)
    g_error ("No sample “%s”", name);
  g_assert_cmpstr (got, ==, value);
}

static void
test_scrape (void)
{
  g_autofree char *address = NULL, *url = NULL, *content_type = NULL, *body = NULL;
  g_autofree char *other = NULL, *out = NULL, *err = NULL;
  g_autoptr(RndzTestProgram) server = start_server (&address, &url);
  g_autoptr(RndzTestProgram) listener = NULL;
  g_autoptr(GHashTable) samples = NULL;
  const char *listener_argv[] = { rndz_test_tool_path (), "client", "--id", "alice",
                                  "--server-addr", address, NULL };
  const char *connector_argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                                   "--server-addr", address, "--remote-peer", "nobody", NULL };

  g_test_summary ("rndz server --metrics-addr serves Prometheus text exposition at "
                  "/metrics: it parses, counts the registered peer and the request "
                  "for an unknown one; other paths are 404");

  listener = rndz_test_program_start (listener_argv, NULL, NULL, NULL);
  g_free (read_after (listener, "Registered as alice on port "));
  /* A request for nobody: not found */
  g_assert_cmpint (rndz_test_run_program (connector_argv, NULL, &out, &err), ==, 1);

  g_assert_cmpuint (http_get (url, &content_type, &body), ==, 200);
  g_assert_cmpstr (content_type, ==, "text/plain; version=0.0.4; charset=utf-8");
  samples = parse_exposition (body);
  assert_sample (samples, "rndz_peers{transport=\"udp\"}", "1");
  assert_sample (samples, "rndz_peers{transport=\"tcp\"}", "0");
  assert_sample (samples, "rndz_not_found_total", "1");
  assert_sample (samples, "rndz_cluster_connected", "0");
  assert_sample (samples, "rndz_forward_across_latency_seconds_count", "0");

  other = g_strdup_printf ("%.*s/other", (int) (strlen (url) - strlen ("/metrics")), url);
  g_assert_cmpuint (http_get (other, NULL, NULL), ==, 404);

  /* The listener said bye: no peer left */
  g_assert_cmpint (rndz_test_program_stop (listener, SIGTERM), ==, 0);
  g_clear_pointer (&body, g_free);
  g_clear_pointer (&samples, g_hash_table_unref);
  g_assert_cmpuint (http_get (url, NULL, &body), ==, 200);
  samples = parse_exposition (body);
  assert_sample (samples, "rndz_peers{transport=\"udp\"}", "0");

  g_assert_cmpint (rndz_test_program_stop (server, SIGTERM), ==, 0);
}

#define MAX_CONNECTIONS 16

static void
test_connection_cap (void)
{
  g_autofree char *address = NULL, *url = NULL, *host = NULL;
  g_autoptr(RndzTestProgram) server = start_server (&address, &url);
  g_autoptr(GPtrArray) idle = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  guint status = 0;

  /* No proxy resolver: libproxy's C++ exceptions abort under ASan */
  g_socket_client_set_enable_proxy (client, FALSE);

  g_test_summary ("The metrics port holds at most 16 connections: more are closed when "
                  "accepted, and it serves again once some are gone");

  /* "http://127.0.0.1:PORT/metrics" → "127.0.0.1:PORT" */
  host = g_strndup (url + strlen ("http://"), strlen (url) - strlen ("http://") - strlen ("/metrics"));
  for (guint i = 0; i < MAX_CONNECTIONS; i++)
    {
      g_autoptr(GError) error = NULL;
      GSocketConnection *connection = g_socket_client_connect_to_host (client, host, 0, NULL, &error);

      g_assert_no_error (error);
      g_ptr_array_add (idle, connection);
    }
  /* Accepted after those, in order: closed without an answer */
  g_assert_cmpuint (http_get (url, NULL, NULL), ==, 0);

  g_ptr_array_set_size (idle, 0);
  for (guint i = 0; i < 100 && status != 200; i++)
    {
      status = http_get (url, NULL, NULL);
      if (status != 200)
        rndz_test_run_for (NULL, 50);
    }
  g_assert_cmpuint (status, ==, 200);

  g_assert_cmpint (rndz_test_program_stop (server, SIGTERM), ==, 0);
}

static void
test_bad_address (void)
{
  const char *argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                         "--metrics-addr", "localhost:9100", NULL };
  g_autofree char *out = NULL, *err = NULL;

  g_test_summary ("--metrics-addr takes a numeric ADDRESS:PORT, like --listen-addr");

  g_assert_cmpint (rndz_test_run_program (argv, NULL, &out, &err), ==, 1);
  g_assert_nonnull (strstr (err, "--metrics-addr"));
  g_assert_nonnull (strstr (err, "localhost:9100"));
}

/* What the dynamic loader said it opened, with LD_DEBUG=libs */
static const char * const ld_debug_env[] = { "LD_DEBUG", "libs", NULL };

static void
test_loaded_on_demand (void)
{
  g_autofree char *err_path = NULL, *loaded = NULL;
  g_autofree char *address = NULL, *url = NULL, *out = NULL, *err = NULL;
  const char *server_argv[] = { rndz_test_tool_path (), "server", "--listen-addr", "127.0.0.1:0",
                                "--metrics-addr", "127.0.0.1:0", NULL };
  /* [5]: the server's address */
  const char *connector_argv[] = { rndz_test_tool_path (), "client", "--id", "bob",
                                   "--server-addr", NULL, "--remote-peer", "nobody",
                                   "--insecure", NULL };
  g_autoptr(RndzTestProgram) server = NULL;
  g_autoptr(GError) error = NULL;
  int fd;

  g_test_summary ("rndz opens libsoup only for --metrics-addr: a connector does not load "
                  "it (nor SQLite, Kerberos and the rest that come with it)");

  fd = g_file_open_tmp ("rndz-metrics-XXXXXX.log", &err_path, &error);
  g_assert_no_error (error);
  close (fd);
  server = rndz_test_program_start (server_argv, ld_debug_env, err_path, NULL);
  address = read_after (server, "Listening on ");
  url = read_after (server, "Metrics on ");
  g_assert_cmpuint (http_get (url, NULL, NULL), ==, 200);
  g_assert_true (g_file_get_contents (err_path, &loaded, NULL, &error));
  g_assert_no_error (error);
  g_assert_nonnull (strstr (loaded, "libsoup-3.0.so"));

  connector_argv[5] = address;
  g_assert_cmpint (rndz_test_run_program (connector_argv, ld_debug_env, &out, &err), ==, 1);
  /* The loader did speak: this is not an empty log */
  g_assert_nonnull (strstr (err, "libglib-2.0.so"));
  g_assert_null (strstr (err, "libsoup"));

  g_assert_cmpint (rndz_test_program_stop (server, SIGTERM), ==, 0);
  g_unlink (err_path);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  if (!g_file_test (rndz_test_tool_path (), G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("RNDZ_TOOL does not name the rndz program");
      return g_test_run ();
    }

  g_test_add_func ("/metrics/scrape", test_scrape);
  g_test_add_func ("/metrics/connection-cap", test_connection_cap);
  g_test_add_func ("/metrics/bad-address", test_bad_address);
  g_test_add_func ("/metrics/loaded-on-demand", test_loaded_on_demand);

  return g_test_run ();
}
