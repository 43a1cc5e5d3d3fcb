/* rndz-message-auth.c: signing and verifying messages (HMAC-SHA256)
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "rndz-message-codec-private.h"

/* Authentication
 *
 * The MAC covers the message's meaning, not its JSON: the fields joined
 * with NUL bytes (which no field can contain), in a fixed order, absent
 * ones empty. doc/protocol.md gives the same definition for other
 * implementations. Version 2 of the input ("rndz2") names the server the
 * message is for, so that a message one server accepted cannot be
 * replayed to another that shares its keys; there is no version 1 any
 * more.
 */
#define MAC_INPUT_VERSION "rndz2"

static char *
compute_mac (const RndzMessage *msg,
             GBytes            *key)
{
  g_autoptr(GHmac) hmac = NULL;
  char tid[16], ts[32];
  char addr[RNDZ_ADDR_STRLEN] = "";
  char srv[RNDZ_ADDR_STRLEN] = "";
  guint fields = rndz_message_type_fields[msg->type];
  const char *parts[9];
  gsize key_len;
  const guint8 *key_data = g_bytes_get_data (key, &key_len);

  if (fields & FIELD_ADDR)
    rndz_addr_format (&msg->addr, addr);
  if (msg->srv.family != 0)
    rndz_addr_format (&msg->srv, srv);
  g_snprintf (tid, sizeof tid, "%u", msg->tid);
  g_snprintf (ts, sizeof ts, "%" G_GINT64_FORMAT, msg->ts);

  parts[0] = MAC_INPUT_VERSION;
  parts[1] = rndz_message_type_names[msg->type];
  parts[2] = tid;
  parts[3] = (fields & FIELD_ID) ? msg->id : "";
  parts[4] = (fields & FIELD_TARGET) ? msg->target : "";
  parts[5] = addr;
  parts[6] = ts;
  parts[7] = msg->nonce;
  parts[8] = srv;

  hmac = g_hmac_new (G_CHECKSUM_SHA256, key_data, key_len);
  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      if (i > 0)
        g_hmac_update (hmac, (const guchar *) "", 1);
      g_hmac_update (hmac, (const guchar *) parts[i], strlen (parts[i]));
    }

  /* Candidates, when there are, are a tenth part; a fingerprint, when
   * there is one, an eleventh (after the tenth, empty if need be) */
  if (((fields & FIELD_CAND) && msg->n_cands > 0) || ((fields & FIELD_FP) && msg->fp[0] != '\0'))
    {
      char cands[RNDZ_MAX_CANDIDATES * RNDZ_ADDR_STRLEN] = "";

      g_hmac_update (hmac, (const guchar *) "", 1);
      if ((fields & FIELD_CAND) && msg->n_cands > 0)
        rndz_message_format_cands (msg, cands);
      g_hmac_update (hmac, (const guchar *) cands, strlen (cands));
    }
  if ((fields & FIELD_FP) && msg->fp[0] != '\0')
    {
      g_hmac_update (hmac, (const guchar *) "", 1);
      g_hmac_update (hmac, (const guchar *) msg->fp, RNDZ_FP_LEN);
    }

  return g_strdup (g_hmac_get_string (hmac));
}

/*
 * rndz_message_sign:
 * @server: the server @msg is for, as the sender addresses it
 * @now_ms: the time, in milliseconds since the epoch
 *
 * Names @server in @msg and adds a timestamp, a fresh nonce and the MAC
 * under @key.
 */
void
rndz_message_sign (RndzMessage    *msg,
                   const RndzAddr *server,
                   GBytes         *key,
                   gint64          now_ms)
{
  g_autofree char *mac = NULL;

  msg->srv = *server;
  msg->ts = now_ms;
  g_snprintf (msg->nonce, sizeof msg->nonce, "%08x%08x", g_random_int (), g_random_int ());
  mac = compute_mac (msg, key);
  g_strlcpy (msg->mac, mac, sizeof msg->mac);
}

/*
 * rndz_message_verify:
 *
 * Checks the MAC of @msg under @key, in time independent of where they
 * differ. A message without `srv` never verifies. Freshness (timestamp,
 * replays) and whether `srv` names the receiver are the caller's to
 * check.
 */
gboolean
rndz_message_verify (const RndzMessage *msg,
                     GBytes            *key)
{
  g_autofree char *expected = NULL;
  guint8 diff = 0;

  /* A message that names no server could be replayed to any */
  if (msg->mac[0] == '\0' || msg->srv.family == 0)
    return FALSE;

  expected = compute_mac (msg, key);
  for (gsize i = 0; i < RNDZ_MAC_HEX_LEN; i++)
    diff |= expected[i] ^ msg->mac[i];

  return diff == 0;
}
