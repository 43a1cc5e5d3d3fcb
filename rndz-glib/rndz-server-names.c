/* rndz-server-names.c: the addresses a server answers to
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "rndz-server-names-private.h"

/* A server bound to a wildcard address is reached at any address of the
 * host: those are read with getifaddrs(), and read again on a miss, at
 * most once a second, so that an address added while the server runs is
 * soon accepted and a stream of misses costs one system call a second. */
#define INTERFACES_REFRESH_US G_USEC_PER_SEC

struct _RndzServerNames
{
  RndzAddr bound;              /* family 0 while the server does not listen */
  gboolean wildcard;           /* bound to 0.0.0.0 or :: */
  GArray *public;              /* RndzAddr: configured by the operator */
  GArray *interfaces;          /* RndzAddr: the host's, with the bound port */
  gint64 interfaces_time;      /* when they were read; 0 for never */
  gboolean interfaces_failed;  /* getifaddrs() failed, and we said so */
};

RndzServerNames *
rndz_server_names_new (void)
{
  RndzServerNames *names = g_new0 (RndzServerNames, 1);

  names->public = g_array_new (FALSE, FALSE, sizeof (RndzAddr));
  names->interfaces = g_array_new (FALSE, FALSE, sizeof (RndzAddr));
  return names;
}

void
rndz_server_names_free (RndzServerNames *names)
{
  g_array_unref (names->public);
  g_array_unref (names->interfaces);
  g_free (names);
}

static gboolean
addr_is_wildcard (const RndzAddr *addr)
{
  static const guint8 zeros[16] = { 0 };

  return memcmp (addr->bytes, zeros, addr->family == 4 ? 4 : 16) == 0;
}

/*
 * rndz_server_names_set_bound:
 * @bound: (nullable): the address the server's sockets are bound to, or
 *   %NULL when it stops listening
 */
void
rndz_server_names_set_bound (RndzServerNames *names,
                             const RndzAddr  *bound)
{
  memset (&names->bound, 0, sizeof names->bound);
  if (bound != NULL)
    names->bound = *bound;
  names->wildcard = bound != NULL && addr_is_wildcard (bound);
  g_array_set_size (names->interfaces, 0);
  names->interfaces_time = 0;
  names->interfaces_failed = FALSE;
}

void
rndz_server_names_set_public (RndzServerNames *names,
                              const RndzAddr  *addresses,
                              guint            n_addresses)
{
  g_array_set_size (names->public, 0);
  g_array_append_vals (names->public, addresses, n_addresses);
}

static gboolean
array_contains (GArray         *array,
                const RndzAddr *address)
{
  for (guint i = 0; i < array->len; i++)
    if (rndz_addr_equal (&g_array_index (array, RndzAddr, i), address))
      return TRUE;
  return FALSE;
}

/* The host's addresses, with the server's port. An IPv6 wildcard socket
 * is dual-stack (GLib makes it so): it is reached at IPv4 addresses too. */
static void
read_interfaces (RndzServerNames *names)
{
  struct ifaddrs *ifaddrs = NULL;

  g_array_set_size (names->interfaces, 0);
  if (getifaddrs (&ifaddrs) < 0)
    {
      int saved_errno = errno;

      /* getifaddrs() needs a netlink socket, which a sandbox may forbid
       * (systemd's RestrictAddressFamilies=): then no signed message
       * passes, and the operator must hear why, once */
      if (!names->interfaces_failed)
        g_message ("Cannot read the addresses of this host (getifaddrs: %s): messages "
                   "signed for them are refused. Listen on a specific address, or name "
                   "the addresses peers use with --public-address "
                   "(RndzServer:public-addresses).", g_strerror (saved_errno));
      names->interfaces_failed = TRUE;
      return;
    }

  for (struct ifaddrs *ifa = ifaddrs; ifa != NULL; ifa = ifa->ifa_next)
    {
      RndzAddr addr;
      gsize len;

      if (ifa->ifa_addr == NULL)
        continue;
      if (ifa->ifa_addr->sa_family == AF_INET)
        len = sizeof (struct sockaddr_in);
      else if (ifa->ifa_addr->sa_family == AF_INET6 && names->bound.family == 6)
        len = sizeof (struct sockaddr_in6);
      else
        continue;

      if (!rndz_addr_from_sockaddr (&addr, ifa->ifa_addr, len))
        continue;
      addr.port = names->bound.port;
      if (!array_contains (names->interfaces, &addr))
        g_array_append_val (names->interfaces, addr);
    }

  freeifaddrs (ifaddrs);
}

/* A wildcard server is at any of the host's addresses, with its port */
static gboolean
interfaces_contain (RndzServerNames *names,
                    const RndzAddr  *address,
                    gint64           now)
{
  if (address->port != names->bound.port ||
      (names->bound.family == 4 && address->family != 4))
    return FALSE;

  if (array_contains (names->interfaces, address))
    return TRUE;
  if (names->interfaces_time != 0 && now - names->interfaces_time < INTERFACES_REFRESH_US)
    return FALSE;

  read_interfaces (names);
  names->interfaces_time = MAX (now, 1);
  return array_contains (names->interfaces, address);
}

/*
 * rndz_server_names_get_advertised:
 *
 * The address under which peers elsewhere reach the server, to name it to
 * them: the first public address of the family it listens on, else the
 * address its sockets are bound to unless that is a wildcard.
 *
 * Returns: %FALSE if there is none to give
 */
gboolean
rndz_server_names_get_advertised (RndzServerNames *names,
                                  RndzAddr        *address)
{
  for (guint i = 0; i < names->public->len; i++)
    {
      const RndzAddr *public = &g_array_index (names->public, RndzAddr, i);

      if (public->family == names->bound.family)
        {
          *address = *public;
          return TRUE;
        }
    }

  if (names->bound.family == 0 || names->wildcard)
    return FALSE;
  *address = names->bound;
  return TRUE;
}

/*
 * rndz_server_names_contains:
 * @now: the monotonic time
 *
 * Whether @address is one under which peers may reach the server: a
 * public address the operator named, the address its sockets are bound
 * to, or, bound to a wildcard address, one of the host's addresses with
 * its port.
 */
gboolean
rndz_server_names_contains (RndzServerNames *names,
                            const RndzAddr  *address,
                            gint64           now)
{
  if (address->family == 0)
    return FALSE;
  if (array_contains (names->public, address))
    return TRUE;
  if (names->bound.family == 0)
    return FALSE;
  if (!names->wildcard)
    return rndz_addr_equal (address, &names->bound);
  return interfaces_contain (names, address, now);
}
