/* The executor as the fuzz harnesses see it (jail_stub.c): the functions of
 * jail/jail.h that fcgi/ calls, with no sandbox, cgroup or kernel object
 * behind them. A run "echoes": its stdout is the code (or, for the
 * dependency scan, the listing the harness set), its stderr the preload,
 * and its exit status, signal, hits and failure are what the harness
 * scripted for the current input; the import check's runs (tag
 * "import-check") answer check_output. The harnesses that link
 * fcgi/dependencies.c without fcgi/import_check.c link import_check_stub.c;
 * tests/valgrind/sandcelld-nojail links the real import check. */
#ifndef SANDCELL_TESTS_FUZZ_JAIL_STUB_H
#define SANDCELL_TESTS_FUZZ_JAIL_STUB_H

#include <stdbool.h>
#include <stddef.h>

struct jail_stub_script {
	bool fail;          /* jail_run() fails as a host fault would */
	int exit_code;
	int signal;
	unsigned hits;      /* enum jail_hit bits */
	const char *listing; /* stdout of the dependency scan (tag "dependencies") */
	size_t listing_len;
	const char *check_output; /* stdout of the import check's runs (tag "import-check") */
	size_t check_output_len;
	bool from_code;     /* a run's code "#stub exit=N signal=N hits=N fail" overrides
			     * these fields for that run (sandcelld-nojail) */
};

/* What the next runs do; a zeroed script runs clean (exit 0, no hit).
 * Also sets the count of runs back to 0. */
void jail_stub_set(const struct jail_stub_script *script);

/* How many times jail_run() was called since jail_stub_set(). */
unsigned jail_stub_runs(void);

#endif
