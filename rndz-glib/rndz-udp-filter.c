/* rndz-udp-filter.c: which datagrams a UDP socket of the library lets in
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#ifdef __linux__
#include <linux/filter.h>
#endif

#include "rndz-udp-filter-private.h"
#include "rndz-i18n-private.h"

/* A UDP socket that the library hands to the application must never give
 * it a message of the protocol: a peer's late retransmissions (a check,
 * a use), a relay's answer to a hello still on its way, or anything a
 * stranger makes up. The library cannot read the application's socket
 * for it, so the kernel does it: a classic BPF filter on the socket drops
 * every datagram that starts the way rndz-glib writes every message
 * (RNDZ_CONTROL_PREFIX), before it is queued. A datagram of the
 * application that happens to start with those 15 bytes is dropped too;
 * doc/protocol.md says so.
 *
 * A socket becomes the application's before the datagram that lets the
 * peer send (the answer to a use) leaves: the filter goes on (one
 * setsockopt()), and what was queued before, the protocol's messages
 * and nothing the peer's application sent, is discarded. A socket that
 * becomes the application's only when the library reads the answer that
 * says so (a requester's, a relay join's) may have the peer's first data
 * queued behind that answer: until then its filter lets in data and
 * that answer only, so that what is queued behind the answer is data or
 * a repeated answer, and those at the head are drained. */

/* More datagrams than a socket's receive buffer holds: a peer that keeps
 * sending cannot keep a drain going */
#define MAX_QUEUED 4096

gboolean
rndz_udp_is_control_datagram (const char *buf,
                              gsize       len)
{
  return len >= RNDZ_CONTROL_PREFIX_LEN &&
         memcmp (buf, RNDZ_CONTROL_PREFIX, RNDZ_CONTROL_PREFIX_LEN) == 0;
}

#ifdef __linux__

/* The filter sees the UDP header first: the payload starts at byte 8 */
#define UDP_HEADER 8
#define KEEP 0xffffffffu

static guint32
prefix_word (guint offset,
             guint size)
{
  guint32 value = 0;

  for (guint i = 0; i < size; i++)
    value = (value << 8) | (guint8) RNDZ_CONTROL_PREFIX[offset + i];
  return value;
}

/* Compares the prefix, 4 + 4 + 4 + 2 + 1 bytes, jumping to @miss (an
 * instruction index) at the first difference. Returns the next index. */
static guint
put_prefix_match (struct sock_filter *code,
                  guint               pc,
                  guint               miss)
{
  static const guint sizes[] = { 4, 4, 4, 2, 1 };
  guint offset = 0;

  /* Too short to carry the prefix (loads past the end would drop it) */
  code[pc] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_LEN, 0);
  pc++;
  code[pc] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JGE | BPF_K,
                                            UDP_HEADER + RNDZ_CONTROL_PREFIX_LEN,
                                            0, miss - pc - 1);
  pc++;

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      guint16 width = sizes[i] == 4 ? BPF_W : sizes[i] == 2 ? BPF_H : BPF_B;

      code[pc] = (struct sock_filter) BPF_STMT (BPF_LD | width | BPF_ABS, UDP_HEADER + offset);
      pc++;
      code[pc] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K,
                                                prefix_word (offset, sizes[i]),
                                                0, miss - pc - 1);
      pc++;
      offset += sizes[i];
    }

  return pc;
}

#define TYPE_WORD(a, b, c, d) \
  (((guint32) (a) << 24) | ((guint32) (b) << 16) | ((guint32) (c) << 8) | (guint32) (d))

/* The messages @filter lets in: the first 4 bytes of their type, and
 * what follows the name when it is shorter */
static guint
filter_admits (RndzUdpFilter filter,
               guint32       words[2])
{
  switch (filter)
    {
    case RNDZ_UDP_FILTER_USE_AND_DATA:
      words[0] = TYPE_WORD ('u', 's', 'e', '"');
      return 1;
    case RNDZ_UDP_FILTER_ANSWERS_AND_DATA:
      words[0] = TYPE_WORD ('w', 'a', 'i', 't');
      words[1] = TYPE_WORD ('r', 'e', 'a', 'd');
      return 2;
    case RNDZ_UDP_FILTER_APPLICATION:
    default:
      return 0;
    }
}

/* The program: what does not start with the prefix is kept; what does
 * is dropped, unless the 4 bytes after it are one of those @filter
 * admits. The last instruction keeps, the one before drops. */
static guint
build_filter (RndzUdpFilter       filter,
              struct sock_filter  code[32])
{
  guint32 words[2];
  guint n_words = filter_admits (filter, words);
  guint n = 12 + (n_words > 0 ? 3 + n_words : 0) + 2;
  guint drop = n - 2, keep = n - 1;
  guint pc = put_prefix_match (code, 0, keep);

  if (n_words > 0)
    {
      code[pc] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_LEN, 0);
      pc++;
      code[pc] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JGE | BPF_K,
                                                UDP_HEADER + RNDZ_CONTROL_PREFIX_LEN + 4,
                                                0, drop - pc - 1);
      pc++;
      code[pc] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_ABS,
                                                UDP_HEADER + RNDZ_CONTROL_PREFIX_LEN);
      pc++;
      for (guint i = 0; i < n_words; i++, pc++)
        code[pc] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, words[i],
                                                  keep - pc - 1, 0);
    }

  code[drop] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, 0);
  code[keep] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, KEEP);
  return n;
}

/*
 * rndz_udp_filter_set:
 *
 * Attaches @filter to @socket, in place of the one it had: the kernel
 * applies it to every datagram from then on.
 */
gboolean
rndz_udp_filter_set (GSocket        *socket,
                     RndzUdpFilter   filter,
                     GError        **error)
{
  struct sock_filter code[32];
  struct sock_fprog prog;

  prog.len = build_filter (filter, code);
  prog.filter = code;
  if (setsockopt (g_socket_get_fd (socket), SOL_SOCKET, SO_ATTACH_FILTER,
                  &prog, sizeof prog) < 0)
    {
      int errsv = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Cannot filter the socket: %s"), g_strerror (errsv));
      return FALSE;
    }

  return TRUE;
}

#else

gboolean
rndz_udp_filter_set (GSocket        *socket,
                     RndzUdpFilter   filter,
                     GError        **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       _("Socket filters need Linux"));
  return FALSE;
}

#endif

/* An ICMP error is reported once, and the queue is still there */
static gboolean
is_icmp_errno (int errsv)
{
  return errsv == ECONNREFUSED || errsv == EHOSTUNREACH || errsv == ENETUNREACH;
}

/*
 * rndz_udp_drain:
 *
 * Discards the datagrams at the head of @socket's queue that start like
 * a protocol message, those the application filter would have dropped
 * had it been there when they came. The first that does not stays. Never
 * blocks.
 *
 * Returns: the number discarded
 */
guint
rndz_udp_drain (GSocket *socket)
{
  int fd = g_socket_get_fd (socket);
  guint n = 0;

  for (guint i = 0; i < MAX_QUEUED; i++)
    {
      char buf[RNDZ_CONTROL_PREFIX_LEN];
      gssize len = recv (fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);

      if (len < 0 && is_icmp_errno (errno))
        continue;
      /* MSG_TRUNC: the whole length, so that a short datagram is told
       * from a long one */
      if (len < 0 || !rndz_udp_is_control_datagram (buf, MIN ((gsize) len, sizeof buf)))
        return n;

      recv (fd, buf, sizeof buf, MSG_DONTWAIT);
      n++;
    }
  return n;
}

/*
 * rndz_udp_head_is_data:
 *
 * Whether the datagram at the head of @socket's queue is the peer's
 * application data (anything that does not start like a protocol
 * message), without reading it: the peer has what it waited for, and
 * the datagram stays for the application. Never blocks.
 *
 * Returns: %FALSE when the queue is empty or its head is a protocol
 *   message
 */
gboolean
rndz_udp_head_is_data (GSocket *socket)
{
  char buf[RNDZ_CONTROL_PREFIX_LEN];
  gssize len = recv (g_socket_get_fd (socket), buf, sizeof buf,
                     MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);

  return len >= 0 && !rndz_udp_is_control_datagram (buf, MIN ((gsize) len, sizeof buf));
}

/*
 * rndz_udp_discard:
 *
 * Discards every datagram queued on @socket. Never blocks.
 *
 * Returns: the number discarded
 */
guint
rndz_udp_discard (GSocket *socket)
{
  int fd = g_socket_get_fd (socket);
  guint n = 0;

  for (guint i = 0; i < MAX_QUEUED; i++)
    {
      char buf[1];

      if (recv (fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC) >= 0)
        n++;
      else if (!is_icmp_errno (errno))
        break;
    }
  return n;
}

/*
 * rndz_udp_hand_over:
 * @keep_data: whether the peer may have sent the application something
 *   already
 *
 * Makes @socket the application's: from now on the kernel drops the
 * protocol's messages. What was queued before goes: all of it if the peer
 * cannot have sent anything of its application yet (it waits for the
 * answer to its use, which must leave after this), else the protocol
 * messages at the head of the queue (behind which there are none when
 * the socket let in nothing but protocol messages, or nothing but `use`,
 * until now).
 *
 * Returns: %FALSE if the kernel would not filter it
 */
gboolean
rndz_udp_hand_over (GSocket  *socket,
                    gboolean  keep_data)
{
  g_autoptr(GError) error = NULL;
  gboolean filtered = rndz_udp_filter_set (socket, RNDZ_UDP_FILTER_APPLICATION, &error);

  if (!filtered)
    g_debug ("Handing a socket out unfiltered: %s", error->message);
  if (keep_data)
    rndz_udp_drain (socket);
  else
    rndz_udp_discard (socket);
  return filtered;
}
