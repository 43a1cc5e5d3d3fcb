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
 * implementations.
 */
static char *
compute_mac (const RndzMessage *msg,
             GBytes            *key)
{
  g_autoptr(GHmac) hmac = NULL;
  char number[32];
  char addr[RNDZ_ADDR_STRLEN] = "";
  guint fields = rndz_message_type_fields[msg->type];
  const char *parts[8];
  gsize key_len;
  const guint8 *key_data = g_bytes_get_data (key, &key_len);

  if (fields & FIELD_ADDR)
    rndz_addr_format (&msg->addr, addr);

  hmac = g_hmac_new (G_CHECKSUM_SHA256, key_data, key_len);
  parts[0] = "rndz1";
  parts[1] = rndz_message_type_names[msg->type];
  parts[2] = NULL;                            /* tid */
  parts[3] = (fields & FIELD_ID) ? msg->id : "";
  parts[4] = (fields & FIELD_TARGET) ? msg->target : "";
  parts[5] = addr;
  parts[6] = NULL;                            /* ts */
  parts[7] = msg->nonce;

  for (guint i = 0; i < G_N_ELEMENTS (parts); i++)
    {
      const char *part = parts[i];

      if (i == 2)
        part = (g_snprintf (number, sizeof number, "%u", msg->tid), number);
      else if (i == 6)
        part = (g_snprintf (number, sizeof number, "%" G_GINT64_FORMAT, msg->ts), number);
      if (i > 0)
        g_hmac_update (hmac, (const guchar *) "", 1);
      g_hmac_update (hmac, (const guchar *) part, strlen (part));
    }

  /* Candidates, when there are, are a ninth part */
  if ((fields & FIELD_CAND) && msg->n_cands > 0)
    {
      char cands[RNDZ_MAX_CANDIDATES * RNDZ_ADDR_STRLEN];

      g_hmac_update (hmac, (const guchar *) "", 1);
      rndz_message_format_cands (msg, cands);
      g_hmac_update (hmac, (const guchar *) cands, strlen (cands));
    }

  return g_strdup (g_hmac_get_string (hmac));
}

/*
 * rndz_message_sign:
 * @now_ms: the time, in milliseconds since the epoch
 *
 * Adds a timestamp, a fresh nonce and the MAC under @key.
 */
void
rndz_message_sign (RndzMessage *msg,
                   GBytes      *key,
                   gint64       now_ms)
{
  g_autofree char *mac = NULL;

  msg->ts = now_ms;
  g_snprintf (msg->nonce, sizeof msg->nonce, "%08x%08x", g_random_int (), g_random_int ());
  mac = compute_mac (msg, key);
  g_strlcpy (msg->mac, mac, sizeof msg->mac);
}

/*
 * rndz_message_verify:
 *
 * Checks the MAC of @msg under @key, in time independent of where they
 * differ. Freshness (timestamp, replays) is the caller's to check.
 */
gboolean
rndz_message_verify (const RndzMessage *msg,
                     GBytes            *key)
{
  g_autofree char *expected = NULL;
  guint8 diff = 0;

  if (msg->mac[0] == '\0')
    return FALSE;

  expected = compute_mac (msg, key);
  for (gsize i = 0; i < RNDZ_MAC_HEX_LEN; i++)
    diff |= expected[i] ^ msg->mac[i];

  return diff == 0;
}
