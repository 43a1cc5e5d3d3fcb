/* rndz-addr.c: compact socket addresses
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "rndz-addr-private.h"
#include "rndz-types.h"
#include "rndz-i18n-private.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static const guint8 v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static gboolean
parse_port (const char *text,
            guint16    *port)
{
  guint64 value;

  if (!g_ascii_isdigit (text[0]) || strlen (text) > 5)
    return FALSE;
  if (!g_ascii_string_to_unsigned (text, 10, 1, G_MAXUINT16, &value, NULL))
    return FALSE;

  *port = (guint16) value;
  return TRUE;
}

/* The host part, "a.b.c.d" before ':' or "ipv6" between brackets: its
 * bytes into @addr; returns where the port begins, or %NULL */
static const char *
parse_host (RndzAddr   *addr,
            const char *text)
{
  char host[INET6_ADDRSTRLEN + 1];
  gboolean v6 = text[0] == '[';
  const char *start = v6 ? text + 1 : text;
  const char *end = strchr (start, v6 ? ']' : ':');
  gsize host_len;

  if (end == NULL || (v6 && end[1] != ':'))
    return NULL;
  host_len = end - start;
  if (host_len == 0 || host_len >= sizeof host)
    return NULL;
  memcpy (host, start, host_len);
  host[host_len] = '\0';
  if (inet_pton (v6 ? AF_INET6 : AF_INET, host, addr->bytes) != 1)
    return NULL;

  addr->family = v6 ? 6 : 4;
  return v6 ? end + 2 : end + 1;
}

/*
 * rndz_addr_parse:
 *
 * Parses "198.51.100.7:4000" or "[2001:db8::1]:4000". Host names are not
 * accepted: on the wire an address is always numeric, and the port must
 * not be 0.
 */
gboolean
rndz_addr_parse (RndzAddr    *addr,
                 const char  *text,
                 GError     **error)
{
  const char *port_text;

  memset (addr, 0, sizeof *addr);

  port_text = parse_host (addr, text);
  if (port_text == NULL || !parse_port (port_text, &addr->port))
    {
      memset (addr, 0, sizeof *addr);
      g_set_error (error, RNDZ_PROTOCOL_ERROR, RNDZ_PROTOCOL_ERROR_INVALID_FIELD,
                   _("Invalid address “%s”: expected ADDRESS:PORT or [IPV6-ADDRESS]:PORT"),
                   text);
      return FALSE;
    }

  /* A v4-mapped IPv6 address is the same peer as its IPv4 address */
  if (addr->family == 6 && memcmp (addr->bytes, v4_mapped_prefix, 12) == 0)
    {
      memmove (addr->bytes, addr->bytes + 12, 4);
      memset (addr->bytes + 4, 0, 12);
      addr->family = 4;
    }

  return TRUE;
}

/* Writes @value in decimal at @p; returns the end */
static char *
put_decimal (char  *p,
             guint  value)
{
  char digits[10];
  int n = 0;

  do
    digits[n++] = '0' + value % 10;
  while ((value /= 10) != 0);

  while (n > 0)
    *p++ = digits[--n];

  return p;
}

/* glibc's inet_ntop() goes through sprintf() for IPv4, which costs more
 * than the rest of answering a ping; IPv4 is written by hand. */
char *
rndz_addr_format (const RndzAddr *addr,
                  char            buf[RNDZ_ADDR_STRLEN])
{
  char *p = buf;

  switch (addr->family)
    {
    case 4:
      for (int i = 0; i < 4; i++)
        {
          p = put_decimal (p, addr->bytes[i]);
          *p++ = i < 3 ? '.' : ':';
        }
      break;
    case 6:
      *p++ = '[';
      inet_ntop (AF_INET6, addr->bytes, p, INET6_ADDRSTRLEN);
      p += strlen (p);
      *p++ = ']';
      *p++ = ':';
      break;
    default:
      g_strlcpy (buf, "(none)", RNDZ_ADDR_STRLEN);
      return buf;
    }

  p = put_decimal (p, addr->port);
  *p = '\0';
  return buf;
}

gboolean
rndz_addr_from_sockaddr (RndzAddr              *addr,
                         const struct sockaddr *sa,
                         gsize                  len)
{
  memset (addr, 0, sizeof *addr);

  if (sa->sa_family == AF_INET && len >= sizeof (struct sockaddr_in))
    {
      const struct sockaddr_in *sin = (const struct sockaddr_in *) sa;

      addr->family = 4;
      addr->port = ntohs (sin->sin_port);
      memcpy (addr->bytes, &sin->sin_addr, 4);
      return TRUE;
    }

  if (sa->sa_family == AF_INET6 && len >= sizeof (struct sockaddr_in6))
    {
      const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) sa;

      addr->port = ntohs (sin6->sin6_port);
      if (memcmp (&sin6->sin6_addr, v4_mapped_prefix, 12) == 0)
        {
          addr->family = 4;
          memcpy (addr->bytes, ((const guint8 *) &sin6->sin6_addr) + 12, 4);
        }
      else
        {
          addr->family = 6;
          memcpy (addr->bytes, &sin6->sin6_addr, 16);
        }
      return TRUE;
    }

  return FALSE;
}

/*
 * rndz_addr_to_sockaddr:
 * @socket_family: the family of the socket the address is for; an IPv4
 *   address sent from an IPv6 (dual-stack) socket is written v4-mapped
 *
 * Returns: the length of the address in @ss, or 0 if @addr cannot be
 *   reached from a socket of @socket_family
 */
gsize
rndz_addr_to_sockaddr (const RndzAddr          *addr,
                       GSocketFamily            socket_family,
                       struct sockaddr_storage *ss)
{
  memset (ss, 0, sizeof *ss);

  if (addr->family == 4 && socket_family == G_SOCKET_FAMILY_IPV4)
    {
      struct sockaddr_in *sin = (struct sockaddr_in *) ss;

      sin->sin_family = AF_INET;
      sin->sin_port = htons (addr->port);
      memcpy (&sin->sin_addr, addr->bytes, 4);
      return sizeof *sin;
    }

  if ((addr->family == 4 || addr->family == 6) &&
      socket_family == G_SOCKET_FAMILY_IPV6)
    {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
      guint8 *bytes = (guint8 *) &sin6->sin6_addr;

      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons (addr->port);
      if (addr->family == 4)
        {
          memcpy (bytes, v4_mapped_prefix, 12);
          memcpy (bytes + 12, addr->bytes, 4);
        }
      else
        memcpy (bytes, addr->bytes, 16);
      return sizeof *sin6;
    }

  return 0;
}

gboolean
rndz_addr_from_socket_address (RndzAddr       *addr,
                               GSocketAddress *address)
{
  struct sockaddr_storage ss;
  gssize len;

  memset (addr, 0, sizeof *addr);
  if (!G_IS_INET_SOCKET_ADDRESS (address))
    return FALSE;

  len = g_socket_address_get_native_size (address);
  if (len <= 0 || !g_socket_address_to_native (address, &ss, sizeof ss, NULL))
    return FALSE;

  return rndz_addr_from_sockaddr (addr, (struct sockaddr *) &ss, len);
}

/*
 * rndz_addr_to_socket_address:
 * @socket_family: the family of the socket the address is for, or
 *   %G_SOCKET_FAMILY_INVALID for the address's own family
 */
GSocketAddress *
rndz_addr_to_socket_address (const RndzAddr *addr,
                             GSocketFamily   socket_family)
{
  g_autoptr(GInetAddress) inet = NULL;
  guint8 mapped[16];

  if (socket_family == G_SOCKET_FAMILY_INVALID)
    socket_family = addr->family == 4 ? G_SOCKET_FAMILY_IPV4 : G_SOCKET_FAMILY_IPV6;

  /* Built from bytes: g_socket_address_new_from_native() would turn a
   * v4-mapped address back into IPv4, which an IPv6 socket cannot use */
  if (addr->family == 4 && socket_family == G_SOCKET_FAMILY_IPV4)
    inet = g_inet_address_new_from_bytes (addr->bytes, G_SOCKET_FAMILY_IPV4);
  else if (addr->family == 4 && socket_family == G_SOCKET_FAMILY_IPV6)
    {
      memcpy (mapped, v4_mapped_prefix, 12);
      memcpy (mapped + 12, addr->bytes, 4);
      inet = g_inet_address_new_from_bytes (mapped, G_SOCKET_FAMILY_IPV6);
    }
  else if (addr->family == 6 && socket_family == G_SOCKET_FAMILY_IPV6)
    inet = g_inet_address_new_from_bytes (addr->bytes, G_SOCKET_FAMILY_IPV6);
  else
    return NULL;

  return g_inet_socket_address_new (inet, addr->port);
}

/* An address no one reaches from the Internet: RFC 1918 for IPv4, unique
 * local (fc00::/7) for IPv6. A peer there shares a network with us. */
gboolean
rndz_addr_is_private (const RndzAddr *addr)
{
  const guint8 *b = addr->bytes;

  if (addr->family == 4)
    return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168);
  if (addr->family == 6)
    return (b[0] & 0xfe) == 0xfc;
  return FALSE;
}

/* The same address, whatever the ports */
gboolean
rndz_addr_same_host (const RndzAddr *a,
                     const RndzAddr *b)
{
  return a->family == b->family &&
         memcmp (a->bytes, b->bytes, a->family == 4 ? 4 : 16) == 0;
}

gboolean
rndz_addr_equal (const RndzAddr *a,
                 const RndzAddr *b)
{
  return a->port == b->port && rndz_addr_same_host (a, b);
}

guint
rndz_addr_hash (const RndzAddr *addr)
{
  guint h = addr->family * 65599u + addr->port;
  gsize n = addr->family == 4 ? 4 : 16;

  for (gsize i = 0; i < n; i++)
    h = h * 31u + addr->bytes[i];

  return h;
}
