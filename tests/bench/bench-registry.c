/* bench-registry.c: resident memory per registered UDP peer
 *
 * SPDX-License-Identifier: MIT
 *
 * Registers N peers (default 1,000,000) in a RndzServer through
 * rndz_server_receive_datagram(), the code path of a ping from the
 * server's socket, with a send hook that discards the pongs. Each peer has
 * its own id and its own source address (10.x.y.z:port). The figure is
 * the growth of VmRSS divided by N. A second pass pings every peer again
 * (a keepalive: a lookup, no allocation) and gives the server's own time
 * per ping, without sockets.
 *
 * The baseline, in the same run (in a child process, so that neither
 * reuses the other's freed memory): the same ids and addresses in a plain
 * GHashTable of g_strdup()ed ids to a 32-byte record (address and
 * last-seen time), the least a GLib registry of this shape takes.
 *
 *   bench-registry [-n PEERS] [--check]
 *
 * Target: under 400 bytes per peer.
 */

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench-util.h"
#include "rndz-message-private.h"
#include "rndz-server-private.h"

#define DEFAULT_PEERS 1000000

typedef struct
{
  guint64 pongs;
} Sink;

static void
discard_cb (const RndzAddr *to,
            const char     *data,
            gsize           len,
            gpointer        user_data)
{
  Sink *sink = user_data;

  sink->pongs++;
}

static void
peer_addr (guint     i,
           RndzAddr *addr)
{
  memset (addr, 0, sizeof *addr);
  addr->family = 4;
  addr->bytes[0] = 10;
  addr->bytes[1] = (i >> 16) & 0xff;
  addr->bytes[2] = (i >> 8) & 0xff;
  addr->bytes[3] = i & 0xff;
  addr->port = 1024 + (i % 60000);
}

static void
peer_id (guint  i,
         char   id[RNDZ_ID_MAX_LEN + 1])
{
  g_snprintf (id, RNDZ_ID_MAX_LEN + 1, "peer-%07u", i);
}

/* A ping as a peer sends it: padded to the size of the largest reply */
static gsize
encode_ping (guint  i,
             char  *buf,
             gsize  size)
{
  RndzMessage ping;

  rndz_message_init (&ping, RNDZ_MESSAGE_PING, i + 1);
  peer_id (i, ping.id);
  ping.pad_to = rndz_message_max_reply_size (&ping);
  return rndz_message_encode (&ping, buf, size);
}

/* Returns the time spent in rndz_server_receive_datagram(), in seconds */
static gdouble
ping_all (RndzServer *server,
          guint       n)
{
  gint64 spent = 0;

  for (guint i = 0; i < n; i++)
    {
      char buf[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
      gsize len = encode_ping (i, buf, sizeof buf);
      RndzAddr from;
      gint64 start;

      peer_addr (i, &from);
      start = bench_now_ns ();
      rndz_server_receive_datagram (server, &from, buf, len);
      spent += bench_now_ns () - start;
    }

  return spent / 1e9;
}

typedef struct
{
  RndzAddr addr;
  guint8 transport;
  gint64 last_seen;
} MinimalPeer;

/* Bytes per peer of the minimal registry */
static gdouble
baseline_bytes_per_peer (guint n)
{
  GHashTable *table = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  gsize before = bench_rss_bytes ();

  for (guint i = 0; i < n; i++)
    {
      MinimalPeer *peer = g_new0 (MinimalPeer, 1);
      char id[RNDZ_ID_MAX_LEN + 1];

      peer_id (i, id);
      peer_addr (i, &peer->addr);
      peer->last_seen = g_get_monotonic_time ();
      g_hash_table_insert (table, g_strdup (id), peer);
    }

  return (gdouble) (bench_rss_bytes () - before) / n;
}

static gdouble
baseline_in_child (guint n)
{
  int fds[2];
  pid_t pid;
  gdouble result = -1.0;

  if (pipe (fds) < 0)
    return -1.0;

  pid = fork ();
  if (pid == 0)
    {
      gdouble bytes = baseline_bytes_per_peer (n);

      (void) !write (fds[1], &bytes, sizeof bytes);
      _exit (0);
    }

  close (fds[1]);
  if (pid > 0 && read (fds[0], &result, sizeof result) != sizeof result)
    result = -1.0;
  close (fds[0]);
  if (pid > 0)
    waitpid (pid, NULL, 0);
  return result;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(RndzServer) server = NULL;
  RndzServerStats stats;
  Sink sink = { 0 };
  guint n;
  gsize before, after;
  gdouble fill_s, refresh_s, per_peer, baseline;

  bench_init (&argc, &argv, "Resident memory per registered UDP peer", NULL, 600);
  n = bench_iterations (DEFAULT_PEERS);

  bench_header ("5. Registry memory: resident memory per registered UDP peer");

  baseline = baseline_in_child (n);

  server = rndz_server_new ();
  rndz_server_set_max_peers (server, n);
  rndz_server_set_udp_sender (server, discard_cb, &sink);

  before = bench_rss_bytes ();
  fill_s = ping_all (server, n);
  after = bench_rss_bytes ();
  refresh_s = ping_all (server, n);

  rndz_server_get_stats (server, &stats);
  if (rndz_server_get_peer_count (server) != n || sink.pongs != 2 * (guint64) n)
    {
      g_printerr ("bench-registry: %u peers registered, %" G_GUINT64_FORMAT " pongs, "
                  "%" G_GUINT64_FORMAT " malformed, %" G_GUINT64_FORMAT " not sent (amplification)\n",
                  rndz_server_get_peer_count (server), sink.pongs, stats.malformed,
                  stats.amplification);
      return EXIT_FAILURE;
    }

  per_peer = (gdouble) (after - before) / n;
  bench_figure ("peers registered", "%u (ids like \"peer-0000042\", 10.x.y.z:port)", n);
  bench_figure ("VmRSS before / after", "%.1f MiB / %.1f MiB", before / 1048576.0, after / 1048576.0);
  bench_figure ("baseline: GHashTable id -> 32-byte record", "%.1f bytes per peer", baseline);
  bench_figure ("RndzServer registry", "%.1f bytes per peer (%.2fx the baseline)",
                per_peer, per_peer / baseline);
  bench_figure ("first ping (registration), in-process", "%.2f us per ping", fill_s * 1e6 / n);
  bench_figure ("keepalive ping (lookup), in-process", "%.2f us per ping", refresh_s * 1e6 / n);

  bench_target (per_peer < 400.0, "registry: %.1f bytes per peer < 400", per_peer);

  /* Freeing a million peers is not what this measures */
  _exit (bench_exit_status ());
}
