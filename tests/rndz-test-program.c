/* rndz-test-program.c: programs under test, each its own process
 *
 * SPDX-License-Identifier: MIT
 */

#include "rndz-test-program.h"
#include "rndz-test-util.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sys/prctl.h>

const char *
rndz_test_tool_path (void)
{
  const char *path = g_getenv ("RNDZ_TOOL");

  return path != NULL ? path : "rndz";
}

/* Children go when the test does, whatever ends it; then the caller's
 * own setup (limits, say) */
static void
child_setup_cb (gpointer user_data)
{
  GSpawnChildSetupFunc child_setup = (GSpawnChildSetupFunc) user_data;

  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (child_setup != NULL)
    child_setup (NULL);
}

/* A launcher with @flags, the variables of @env (name, value pairs, or
 * NULL) set, and @child_setup (or NULL) run in the child */
static GSubprocessLauncher *
launcher_new (GSubprocessFlags      flags,
              const char * const   *env,
              GSpawnChildSetupFunc  child_setup)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);

  for (guint i = 0; env != NULL && env[i] != NULL; i += 2)
    g_subprocess_launcher_setenv (launcher, env[i], env[i + 1], TRUE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup_cb, (gpointer) child_setup,
                                         NULL);
  return launcher;
}

/* Starts @argv with @env (name, value pairs, or NULL) set; its standard
 * error goes to the file @err_path, or nowhere if that is NULL;
 * @child_setup, if not NULL, runs in the child before it executes */
RndzTestProgram *
rndz_test_program_start (const char * const   *argv,
                         const char * const   *env,
                         const char           *err_path,
                         GSpawnChildSetupFunc  child_setup)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  RndzTestProgram *program = g_new0 (RndzTestProgram, 1);
  GSubprocessFlags flags = G_SUBPROCESS_FLAGS_STDOUT_PIPE;

  if (err_path == NULL)
    flags |= G_SUBPROCESS_FLAGS_STDERR_SILENCE;
  launcher = launcher_new (flags, env, child_setup);
  if (err_path != NULL)
    g_subprocess_launcher_set_stderr_file_path (launcher, err_path);
  program->process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  program->out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (program->process));
  program->name = g_strdup (argv[0]);
  program->err_path = g_strdup (err_path);
  return program;
}

/* The next line of the program's output, within 10 s, or %NULL at its
 * end */
char *
rndz_test_program_try_read_line (RndzTestProgram *program)
{
  g_autoptr(GAsyncResult) result = NULL;

  g_data_input_stream_read_line_async (program->out, G_PRIORITY_DEFAULT, NULL,
                                       rndz_test_async_cb, &result);
  rndz_test_wait_async (NULL, &result, 10000);
  return g_data_input_stream_read_line_finish_utf8 (program->out, result, NULL, NULL);
}

/* The next line the program prints, within 10 s; fails the test at its
 * end */
char *
rndz_test_program_read_line (RndzTestProgram *program)
{
  char *line = rndz_test_program_try_read_line (program);

  g_assert_nonnull (line);
  return line;
}

/* Sends @signum and waits, 5 s at most, for the program to exit.
 * Returns its exit status, or -1 if a signal ended it. */
int
rndz_test_program_stop (RndzTestProgram *program,
                        int              signum)
{
  g_autoptr(GAsyncResult) result = NULL;

  g_subprocess_send_signal (program->process, signum);
  g_subprocess_wait_async (program->process, NULL, rndz_test_async_cb, &result);
  if (!rndz_test_run_until_set (NULL, (gpointer *) &result, 5000))
    {
      g_subprocess_force_exit (program->process);
      g_error ("%s did not exit within 5 s of signal %d", program->name, signum);
    }
  g_subprocess_wait_finish (program->process, result, NULL);

  if (!g_subprocess_get_if_exited (program->process))
    return -1;
  return g_subprocess_get_exit_status (program->process);
}

/* Kills the program if it still runs, and removes its error file */
void
rndz_test_program_free (RndzTestProgram *program)
{
  if (g_subprocess_get_identifier (program->process) != NULL)
    rndz_test_program_stop (program, SIGKILL);
  g_object_unref (program->out);
  g_object_unref (program->process);
  if (program->err_path != NULL)
    g_unlink (program->err_path);
  g_free (program->err_path);
  g_free (program->name);
  g_free (program);
}

/* Runs a program to its end (it bounds its own time), with @env (name,
 * value pairs, or NULL) set; returns its exit status, and its output */
int
rndz_test_run_program (const char * const  *argv,
                       const char * const  *env,
                       char               **out,
                       char               **err)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;

  launcher = launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                           env, NULL);
  process = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (process, NULL, NULL, out, err, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (process));
  return g_subprocess_get_exit_status (process);
}
