/* rndz-test-program.h: programs under test, each its own process
 *
 * SPDX-License-Identifier: MIT
 *
 * The rndz tool (or any program) started as a subprocess, its output
 * read line by line while the thread-default main context runs, and
 * stopped within a bound. Every child dies with the test
 * (PR_SET_PDEATHSIG), however the test ends.
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The rndz program the build made ($RNDZ_TOOL), or "rndz" */
const char *rndz_test_tool_path (void);

/* A program under test, with its output read line by line; its
 * standard error in the file @err_path, or silenced */
typedef struct
{
  GSubprocess *process;
  GDataInputStream *out;
  char *name;                   /* argv[0], for messages */
  char *err_path;               /* removed when the program is freed */
} RndzTestProgram;

RndzTestProgram *rndz_test_program_start         (const char * const   *argv,
                                                  const char * const   *env,
                                                  const char           *err_path,
                                                  GSpawnChildSetupFunc  child_setup);
char            *rndz_test_program_try_read_line (RndzTestProgram      *program);
char            *rndz_test_program_read_line     (RndzTestProgram      *program);
int              rndz_test_program_stop          (RndzTestProgram      *program,
                                                  int                   signum);
void             rndz_test_program_free          (RndzTestProgram      *program);

int              rndz_test_run_program           (const char * const   *argv,
                                                  const char * const   *env,
                                                  char                **out,
                                                  char                **err);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (RndzTestProgram, rndz_test_program_free)

G_END_DECLS
