/* A language is data: one table entry says which interpreter runs it, which
 * host files its jail needs (read-only), how the code reaches it (the runner
 * script) and which extra system calls it needs. Adding a language touches
 * only jail/languages.c and a runner script. */
#ifndef SANDCELL_LANGUAGES_H
#define SANDCELL_LANGUAGES_H

#include <stdint.h>

#include "jail/jail.h"

struct language {
	const char *name;
	/* the configured interpreter path, taken from the config */
	const char *(*interpreter)(const struct jail_config *cfg);
	/* argv after the interpreter; "@RUNNER@" is replaced by the runner
	 * script and "@HEAP_MB@" by a heap size derived from memory_limit */
	const char *const *args;
	const char *runner;
	/* host paths bound read-only at the same place in the jail; glob
	 * patterns allowed; paths that do not exist are skipped */
	const char *const *binds;
	/* environment; a placeholder ends its entry: "@THREADS@" becomes the
	 * CPU share in whole cores, "@MODULES@" the modules directory (entries
	 * with it are left out when there is none) */
	const char *const *env;
	const char *const *syscalls;          /* beyond the base allowlist */
	bool zygote;                          /* sandboxes fork from a zygote (zygote/) */
	/* the interpreter may be a venv's: its prefix is bound and the venv's
	 * path is the program's name (sys.prefix comes from pyvenv.cfg) */
	bool venv;
	/* the operator's modules directory, bound read-only (NULL or "": none) */
	const char *(*modules)(const struct jail_config *cfg);
};

extern const struct language *const languages[];

#endif
