/* rndz-identity-file.c: an identity kept in a file
 *
 * SPDX-License-Identifier: MIT
 *
 * The file is made whole or not at all, and only once: the PEM text is
 * written to a temporary file of mode 0600 in the same directory (so that
 * it is on the same file system), synced, and then linked to its name,
 * which fails if the name exists. A process that loses the race to
 * create the file throws its own keys away and loads the winner's, so
 * that every process ends with the same identity; and no process ever
 * reads a half-written file.
 */

#define _GNU_SOURCE /* renameat2() */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "rndz-identity-keys-private.h"
#include "rndz-i18n-private.h"

/* A key and a certificate take about 1 KiB */
#define MAX_FILE_SIZE (64 * 1024)

static void
set_errno_error (GError     **error,
                 int          saved_errno,
                 const char  *what,
                 const char  *path)
{
  g_autofree char *display = g_filename_display_name (path);

  /* TRANSLATORS: "Could not read identity file", the file, why */
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               _("%s “%s”: %s"), what, display, g_strerror (saved_errno));
}

static gboolean
check_file (int          fd,
            const char  *path,
            GError     **error)
{
  g_autofree char *display = g_filename_display_name (path);
  struct stat st;

  if (fstat (fd, &st) != 0)
    {
      set_errno_error (error, errno, _("Could not read identity file"), path);
      return FALSE;
    }
  if (!S_ISREG (st.st_mode) || st.st_size > MAX_FILE_SIZE)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("“%s” is not an identity file: not a regular file of at most %d bytes"),
                   display, MAX_FILE_SIZE);
      return FALSE;
    }
  /* As ssh does: a key that others could read is no longer ours alone */
  if ((st.st_mode & 077) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   _("Identity file “%s” is open to others (mode %04o): "
                     "make it private with “chmod 600”"),
                   display, (guint) (st.st_mode & 07777));
      return FALSE;
    }
  return TRUE;
}

/* Reads the whole file, at most MAX_FILE_SIZE bytes (checked before) */
static gssize
read_all (int   fd,
          char *buffer)
{
  gsize len = 0;

  while (len <= MAX_FILE_SIZE)
    {
      gssize n = read (fd, buffer + len, MAX_FILE_SIZE + 1 - len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -1;
      if (n == 0)
        break;
      len += n;
    }
  return len;
}

static RndzIdentityKeys *
load_fd (int          fd,
         const char  *path,
         GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *display = g_filename_display_name (path);
  char *buffer;
  RndzIdentityKeys *keys;
  gssize n;

  if (!check_file (fd, path, error))
    return NULL;
  buffer = g_malloc (MAX_FILE_SIZE + 1);
  n = read_all (fd, buffer);
  if (n < 0)
    {
      set_errno_error (error, errno, _("Could not read identity file"), path);
      g_free (buffer);
      return NULL;
    }
  keys = rndz_identity_keys_from_pem (buffer, n, &local_error);
  memset (buffer, 0, n);
  g_free (buffer);
  if (keys == NULL)
    g_set_error (error, local_error->domain, local_error->code,
                 _("“%s” is not an identity file: %s"), display, local_error->message);
  return keys;
}

static gboolean
write_all (int          fd,
           const char  *text,
           const char  *path,
           GError     **error)
{
  gsize len = strlen (text);

  while (len > 0)
    {
      gssize n = write (fd, text, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          set_errno_error (error, errno, _("Could not write identity file"), path);
          return FALSE;
        }
      text += n;
      len -= n;
    }
  if (fsync (fd) != 0)
    {
      set_errno_error (error, errno, _("Could not write identity file"), path);
      return FALSE;
    }
  return TRUE;
}

/* Puts @tmp at @path unless @path exists (then *raced, no error). link()
 * where the file system has hard links, renameat2() where it has not
 * (FAT, some FUSE file systems): neither replaces an existing @path. */
static gboolean
place (const char  *tmp,
       const char  *path,
       gboolean    *raced,
       GError     **error)
{
  int ret = link (tmp, path);

  if (ret != 0 && (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS || errno == EMLINK))
    ret = renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
  if (ret == 0)
    return TRUE;
  if (errno == EEXIST)
    *raced = TRUE;
  else
    set_errno_error (error, errno, _("Could not create identity file"), path);
  return FALSE;
}

/* The new file's name is in its directory only once the directory is
 * synced: without that, a crash could leave no file, and a new identity
 * next time */
static void
sync_directory (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

  if (fd < 0)
    return;
  if (fsync (fd) != 0)
    g_debug ("Could not sync directory %s: %s", dir, g_strerror (errno));
  close (fd);
}

/* Makes keys and stores them at @path; NULL without error if another
 * process created @path first (*raced) */
static RndzIdentityKeys *
create (const char  *path,
        gboolean    *raced,
        GError     **error)
{
  g_autoptr(RndzIdentityKeys) keys = NULL;
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *name = g_strdup_printf (".%s.XXXXXX", base);
  g_autofree char *tmp = g_build_filename (dir, name, NULL);
  gboolean ok;
  int fd;

  keys = rndz_identity_keys_generate (error);
  if (keys == NULL)
    return NULL;
  fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      set_errno_error (error, errno, _("Could not create identity file"), path);
      return NULL;
    }
  ok = write_all (fd, rndz_identity_keys_get_pem (keys), path, error);
  close (fd);
  ok = ok && place (tmp, path, raced, error);
  /* Gone already if renameat2() moved it */
  g_unlink (tmp);
  if (!ok)
    return NULL;
  sync_directory (path);
  return g_steal_pointer (&keys);
}

RndzIdentityKeys *
rndz_identity_keys_load_or_create (const char  *path,
                                   GError     **error)
{
  /* Twice at most: once to create, once to load what another created;
   * a third round would mean someone deletes the file as fast */
  for (int round = 0; round < 3; round++)
    {
      RndzIdentityKeys *keys;
      gboolean raced = FALSE;
      /* O_NONBLOCK: a FIFO there must not hang us (check_file() refuses it) */
      int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

      if (fd >= 0)
        {
          keys = load_fd (fd, path, error);
          close (fd);
          return keys;
        }
      if (errno != ENOENT)
        {
          set_errno_error (error, errno, _("Could not read identity file"), path);
          return NULL;
        }
      keys = create (path, &raced, error);
      if (keys != NULL || !raced)
        return keys;
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
               _("Identity file “%s” keeps appearing and disappearing"), path);
  return NULL;
}
