/* rndz-cluster-message.c: the signed envelope of messages between nodes
 *
 * SPDX-License-Identifier: MIT
 *
 * A message between the nodes of a cluster is a line of text, then a
 * protocol message as the codec writes it:
 *
 *   rndz-cluster1 ORIGIN TRANSPORT TARGET TS NONCE MAC\n{"v":1,"type":"fsync",...}
 *
 * ORIGIN the sending node's id, TRANSPORT `udp` or `tcp`, TARGET the id a
 * forward names (`-` in an answer), TS the sender's clock in milliseconds
 * since the epoch, NONCE 16 random hexadecimal digits, MAC the
 * HMAC-SHA256, under the cluster key, of everything else: the line
 * without " MAC", a newline, and the message. Whoever can publish on
 * Redis can send to a node: it acts only on what the cluster key signed,
 * within a minute of its time (the node also drops a nonce it has seen).
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include "rndz-cluster-private.h"
#include "rndz-message-codec-private.h"

#define MAGIC "rndz-cluster1"
#define MAX_SKEW_MS 30000
#define NONCE_LEN 16
#define MAC_LEN 64

static char *
envelope_mac (GBytes     *key,
              const char *head,
              gsize       head_len,
              const char *body,
              gsize       body_len)
{
  g_autoptr(GHmac) hmac = NULL;
  gsize key_len;
  const guint8 *key_data = g_bytes_get_data (key, &key_len);

  hmac = g_hmac_new (G_CHECKSUM_SHA256, key_data, key_len);
  g_hmac_update (hmac, (const guchar *) head, head_len);
  g_hmac_update (hmac, (const guchar *) "\n", 1);
  g_hmac_update (hmac, (const guchar *) body, body_len);
  return g_strdup (g_hmac_get_string (hmac));
}

char *
rndz_cluster_message_seal (const RndzClusterMessage *message,
                           GBytes                   *key,
                           gint64                    now_ms,
                           gsize                    *len)
{
  char body[RNDZ_MESSAGE_DEFAULT_MAX_SIZE];
  g_autofree char *head = NULL;
  g_autofree char *mac = NULL;
  gsize body_len;

  body_len = rndz_message_encode (&message->msg, body, sizeof body);
  if (body_len == 0)
    return NULL;

  head = g_strdup_printf (MAGIC " %s %s %s %" G_GINT64_FORMAT " %08x%08x", message->origin,
                          message->transport == RNDZ_TRANSPORT_TCP ? "tcp" : "udp",
                          message->target[0] != '\0' ? message->target : "-",
                          now_ms, g_random_int (), g_random_int ());
  mac = envelope_mac (key, head, strlen (head), body, body_len);
  *len = strlen (head) + 1 + MAC_LEN + 1 + body_len;
  return g_strdup_printf ("%s %s\n%.*s", head, mac, (int) body_len, body);
}

static gboolean
invalid (GError    **error,
         const char *why)
{
  g_set_error_literal (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD, why);
  return FALSE;
}

/* Splits "MAGIC ORIGIN TRANSPORT TARGET TS NONCE" into @message */
static gboolean
parse_head (RndzClusterMessage  *message,
            const char          *head,
            gint64              *ts,
            GError             **error)
{
  g_auto(GStrv) fields = g_strsplit (head, " ", -1);
  char *end;

  if (g_strv_length (fields) != 6 || !g_str_equal (fields[0], MAGIC))
    return invalid (error, "not a cluster message");
  if (strlen (fields[1]) != RNDZ_CLUSTER_NODE_LEN || strlen (fields[5]) != NONCE_LEN)
    return invalid (error, "bad node id or nonce");
  g_strlcpy (message->origin, fields[1], sizeof message->origin);

  if (g_str_equal (fields[2], "udp"))
    message->transport = RNDZ_TRANSPORT_UDP;
  else if (g_str_equal (fields[2], "tcp"))
    message->transport = RNDZ_TRANSPORT_TCP;
  else
    return invalid (error, "bad transport");

  if (g_str_equal (fields[3], "-"))
    message->target[0] = '\0';
  else if (rndz_id_is_valid (fields[3], -1))
    g_strlcpy (message->target, fields[3], sizeof message->target);
  else
    return invalid (error, "bad target");

  *ts = g_ascii_strtoll (fields[4], &end, 10);
  if (*end != '\0' || end == fields[4])
    return invalid (error, "bad timestamp");
  return TRUE;
}

/*
 * rndz_cluster_message_open:
 *
 * Checks the envelope's MAC and age, then decodes the message inside.
 * The nonce (the last 16 characters of the head) is for the caller to
 * check against replays.
 */
gboolean
rndz_cluster_message_open (RndzClusterMessage  *message,
                           const char          *data,
                           gsize                len,
                           GBytes              *key,
                           gint64               now_ms,
                           GError             **error)
{
  const char *newline = memchr (data, '\n', len);
  g_autofree char *head = NULL;
  g_autofree char *mac = NULL;
  const char *body;
  gsize head_len;
  gint64 ts;

  memset (message, 0, sizeof *message);
  if (newline == NULL || newline - data < MAC_LEN + 2 || newline - data > 256)
    return invalid (error, "no envelope");

  head_len = newline - data - MAC_LEN - 1;
  if (data[head_len] != ' ')
    return invalid (error, "no MAC");
  body = newline + 1;

  mac = envelope_mac (key, data, head_len, body, len - (body - data));
  /* Compared whole, whatever differs first: no timing to learn from */
  {
    guint diff = 0;

    for (guint i = 0; i < MAC_LEN; i++)
      diff |= (guchar) mac[i] ^ (guchar) data[head_len + 1 + i];
    if (diff != 0)
      return invalid (error, "wrong MAC");
  }

  head = g_strndup (data, head_len);
  if (!parse_head (message, head, &ts, error))
    return FALSE;
  if (ts < now_ms - MAX_SKEW_MS || ts > now_ms + MAX_SKEW_MS)
    return invalid (error, "too old or from the future");

  return rndz_message_decode (&message->msg, body, len - (body - data),
                              RNDZ_MESSAGE_DEFAULT_MAX_SIZE, error);
}
