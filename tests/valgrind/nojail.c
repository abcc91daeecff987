/* The rest of what sandcelld-nojail links in place of jail/'s executor and
 * bpf/'s loader: sandcelld's request path (fcgi/) under valgrind, which
 * cannot run the real ones (Debian 12's valgrind 3.19 does not implement
 * seccomp(2): libseccomp reports API level 1, without the user notification
 * the executor's supervisor needs, and a jail's filter would be loaded into
 * valgrind's own process). tests/fuzz/jail_stub.c answers the runs: no
 * program ever runs, nothing is jailed. Never installed; see README.md,
 * "Sanitizers", and tests/valgrind/test_requests.py.
 *
 * What a client sees: a run answers stdout = its code, stderr = its
 * preload, exit code 0, unless its code begins with a line
 * "#stub exit=N signal=N hits=N fail" (any of them), which sets that run's
 * exit code, signal, enum jail_hit bits, or makes it fail as a sandbox that
 * cannot be set up; the dependency scan answers LISTING; the import check
 * answers CHECK_OUTPUT (one module that imports, one that fails, also
 * alone: it is logged). */
#include <stdio.h>
#include <string.h>

#include "bpf/egress.h"
#include "jail/jail.h"
#include "tests/fuzz/jail_stub.h"

#define LISTING "numpy\t1.24.2\nrequests\t2.28.1\n"
#define CHECK_OUTPUT "try\tnumpy\tnumpy\nok\ntry\tbroken\tbroken\nfail\tImportError: stub\ndone\n"

bool jail_init_dispatch(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return false;
}

int executor_init(const struct jail_config *cfg, char *err, size_t errlen)
{
	static const struct jail_stub_script script = {
		.listing = LISTING,
		.listing_len = sizeof(LISTING) - 1,
		.check_output = CHECK_OUTPUT,
		.check_output_len = sizeof(CHECK_OUTPUT) - 1,
		.from_code = true,
	};

	(void)cfg;
	(void)err;
	(void)errlen;
	jail_stub_set(&script);
	return 0;
}

void executor_shutdown(void)
{
}

void executor_kill_all(void)
{
}

void executor_on_blocked(executor_blocked_fn fn, void *ctx)
{
	(void)fn;
	(void)ctx;
}

/* No eBPF here: sandcelld --check says so; the test keeps enable_network off. */
int egress_check(char *report, size_t len)
{
	snprintf(report, len, "sandcelld-nojail has no egress programs");
	return -1;
}
