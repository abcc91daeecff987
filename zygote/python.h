/* The zygote's interpreter: embedded CPython. */
#ifndef SANDCELL_ZYGOTE_PYTHON_H
#define SANDCELL_ZYGOTE_PYTHON_H

#include <stddef.h>

/* Initialises Python as `program -I -B` would (program: the name it is run
 * by, a venv's path or the binary's; binary: the interpreter's real path,
 * which must be the Python this zygote embeds), runs the runner as a module,
 * imports the modules named in preload (space-separated; missing ones are
 * skipped), checks that no thread was started, and freezes the heap. */
int python_start(const char *program, const char *binary, const char *preload, char *err,
		 size_t errlen);

/* Around each fork, as os.fork() does. */
void python_before_fork(void);
void python_after_fork_parent(void);

/* In the jailed program: tells Python it was forked, then runs the runner,
 * which reads the code from stdin and exits. */
_Noreturn void python_run_child(void);

#endif
