/* Unit tests of the executor's error paths (jail/mounts.c, jail/prepare.c):
 * what a failed jail step reports stays valid after the step returns, and a
 * language prepared while memory runs out fails cleanly and leaks nothing.
 *
 * strdup, asprintf, vasprintf and free are wrapped at link time (-Wl,--wrap): the
 * k-th allocation through them fails, and every string they handed out is
 * counted until it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "jail/languages.h"
#include "jail/mounts.h"
#include "jail/prepare.h"

/* ---- allocation failures ------------------------------------------------------------ */

#define MAX_TRACKED 4096
static void *tracked[MAX_TRACKED];
static int fail_at, calls;

char *__real_strdup(const char *s);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
void __real_free(void *p);

static void track(void *p)
{
	for (int i = 0; p && i < MAX_TRACKED; i++)
		if (!tracked[i]) {
			tracked[i] = p;
			return;
		}
}

static int outstanding(void)
{
	int n = 0;
	for (int i = 0; i < MAX_TRACKED; i++)
		n += tracked[i] != NULL;
	return n;
}

static bool must_fail(void)
{
	return fail_at && ++calls == fail_at;
}

char *__wrap_strdup(const char *s)
{
	char *p;

	if (must_fail())
		return NULL;
	p = __real_strdup(s);
	track(p);
	return p;
}

int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	int rc;

	if (must_fail())
		return -1;
	rc = __real_vasprintf(out, fmt, ap);
	if (rc >= 0)
		track(*out);
	return rc;
}

/* jail/mounts.c's join(): without it, a failed strdup next to a made path went unseen
 * (LeakSanitizer found that leak: ./dev sanitize) */
int __wrap_asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = __wrap_vasprintf(out, fmt, ap);
	va_end(ap);
	return rc;
}

void __wrap_free(void *p)
{
	for (int i = 0; p && i < MAX_TRACKED; i++)
		if (tracked[i] == p)
			tracked[i] = NULL;
	__real_free(p);
}

static const struct jail_config cfg = {
	.python_path = "/usr/bin/python3", .nodejs_path = "/usr/bin/node", .run_dir = "/run/x",
	.cgroup_name = "x", .timeout_ms = 5000, .output_limit = 1 << 20,
	.memory_limit = 256 << 20, .pids_limit = 32, .tmp_size = 1 << 20,
	.file_size_limit = 1 << 20, .http_proxy = "http://proxy:3128",
	.https_proxy = "http://proxy:3128",
};

/* Fails the 1st, 2nd, ... string allocation of a language's preparation in turn. */
static void test_prepare_out_of_memory(void **state)
{
	static struct lang_state ls;
	char err[512];
	int rc = 0, k;

	(void)state;
	for (k = 1; rc == 0 || k < 400; k++) {
		fail_at = k;
		calls = 0;
		rc = prepare_language(&ls, languages[0], &cfg, "/run/x/root", -1, -1, err, sizeof(err));
		forget_language(&ls);
		fail_at = 0;
		assert_int_equal(outstanding(), 0);
		if (calls < k)
			break; /* fewer allocations than k: this round could not fail */
		assert_int_equal(rc, -1);
	}
	assert_true(k > 10); /* it did allocate, and each failure was survived */
	assert_int_equal(rc, 0);
}

/* ---- what a failed mount step reports ----------------------------------------------- */

static int clobber_stack(int n)
{
	volatile char junk[8192];

	memset((char *)junk, 'X', sizeof(junk));
	return n > 0 ? clobber_stack(n - 1) + junk[n] : junk[0];
}

/* In a child with a mount namespace of its own: /dev/urandom is hidden under an
 * empty tmpfs, so the jail's /dev step fails there. What it names must still be
 * readable after the step's stack frame is gone. */
static void test_failed_dev_step_names_the_device(void **state)
{
	char dir[] = "/tmp/sandcell-test-mounts.XXXXXX";
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static struct mount_plan plan;
		const char *what = NULL;
		char err[256];

		if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
			_exit(2);
		if (mount_plan_build(&plan, dir, "/usr/bin/python3", NULL, NULL, 1 << 20, err,
				     sizeof(err)) != 0)
			_exit(3);
		if (mount("tmpfs", "/dev", "tmpfs", 0, "size=64k") != 0 ||
		    close(open("/dev/null", O_CREAT | O_WRONLY, 0666)) != 0 ||
		    close(open("/dev/zero", O_CREAT | O_WRONLY, 0666)) != 0 ||
		    close(open("/dev/random", O_CREAT | O_WRONLY, 0666)) != 0)
			_exit(4);
		if (mount_plan_apply(&plan, &what) == 0)
			_exit(5);
		clobber_stack(4);
		_exit(what && !strcmp(what, "/dev/urandom") ? 0 : 6);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	rmdir(dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prepare_out_of_memory),
		cmocka_unit_test(test_failed_dev_step_names_the_device),
	};

	return cmocka_run_group_tests_name("jail errors", tests, NULL, NULL);
}
