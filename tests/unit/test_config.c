/* Unit tests of the configuration parser (fcgi/config.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fcgi/config.h"

/* A fake environment: NULL-terminated name, value pairs. */
static const char *table_env(const char *name, void *ctx)
{
	const char *const *kv = ctx;

	for (; kv && kv[0]; kv += 2)
		if (!strcmp(kv[0], name))
			return kv[1];
	return NULL;
}

static const char *const key_only[] = { "API_KEY", "k", NULL };

static int load(struct sandcell_config *cfg, const char *text, const char *const *env,
		char *err, size_t errlen)
{
	err[0] = '\0';
	return config_from_text(cfg, text, text ? strlen(text) : 0, "test.conf", table_env,
				(void *)env, err, errlen);
}

static void expect_error(const char *text, const char *const *env, const char *message)
{
	struct sandcell_config cfg;
	char err[256];

	assert_int_equal(load(&cfg, text, env, err, sizeof(err)), -1);
	assert_string_equal(err, message);
}

static void test_defaults(void **state)
{
	struct sandcell_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(load(&cfg, NULL, key_only, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_key, "k");
	assert_string_equal(cfg.socket_path, "/run/sandcell/sandcell.sock");
	assert_int_equal(cfg.socket_mode, 0660);
	assert_null(cfg.socket_group);
	assert_int_equal(cfg.max_workers, 4);
	assert_int_equal(cfg.max_requests, 50);
	assert_int_equal(cfg.max_body_size, 10 << 20);
	assert_true(cfg.enable_network);
	assert_false(cfg.enable_preload);
	assert_int_equal(cfg.drain_timeout, 20);
	/* the executor's view */
	assert_int_equal(cfg.jail.timeout_ms, 15000);
	assert_int_equal(cfg.jail.output_limit, 8 << 20);
	assert_int_equal(cfg.jail.memory_limit, 512ULL << 20);
	assert_int_equal(cfg.jail.pids_limit, 64);
	assert_int_equal(cfg.jail.cpu_percent, 100);
	assert_int_equal(cfg.jail.tmp_size, 64 << 20);
	assert_int_equal(cfg.jail.file_size_limit, 32 << 20);
	assert_int_equal(cfg.jail.max_sandboxes, 4);
	assert_int_equal(cfg.jail.uid_base, 1900000);
	assert_string_equal(cfg.jail.python_path, "/usr/bin/python3");
	assert_string_equal(cfg.jail.nodejs_path, "/usr/bin/node");
	assert_string_equal(cfg.jail.run_dir, "/run/sandcell");
	assert_string_equal(cfg.jail.cgroup_name, "sandcell");
	assert_int_equal(cfg.jail.n_extra_syscalls, 0);
	assert_false(cfg.jail.allow_processes);
	assert_null(cfg.jail.http_proxy);
	assert_string_equal(cfg.jail.zygote_path, PKGLIBEXECDIR "/sandcell-zygote");
	assert_string_equal(cfg.jail.python_preload, "json base64 jinja2 requests httpx");
	config_free(&cfg);
}

static void test_python_preload(void **state)
{
	struct sandcell_config cfg;
	char err[256];
	(void)state;

	assert_int_equal(load(&cfg, "python_preload = numpy, os.path\tjson\nzygote_path =\n",
			      key_only, err, sizeof(err)), 0);
	assert_string_equal(cfg.jail.python_preload, "numpy os.path json");
	assert_null(cfg.jail.zygote_path);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "python_preload =\n", key_only, err, sizeof(err)), 0);
	assert_string_equal(cfg.jail.python_preload, "");
	config_free(&cfg);
	const char *bad[] = { "os;rm", "a..b", ".a", "a.", "9lives", "x-y", "c/d" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "python_preload = %s\n", bad[i]);
		expect_error(text, key_only, "test.conf:1: python_preload: must be Python module names "
			     "(like json, jinja2, os.path)");
	}
}

static void test_file_format(void **state)
{
	static const char text[] =
		"# a comment\n"
		"\n"
		"   api_key = \"a # not a comment \\\"q\\\"\"   # but this is\n"
		"socket=/tmp/x.sock\r\n"
		"socket_mode = 0640\n"
		"socket_group = www-data\n"
		"max_workers = 8 # trailing comment\n"
		"max_body_size = 2k\n"
		"output_limit = 3M\n"
		"memory_limit = 1g\n"
		"tmp_size = 12345\n"
		"enable_network = off\n"
		"enable_preload = YES\n"
		"allow_processes = 1\n"
		"worker_timeout = 30\n"
		"allowed_syscalls = 1, 2,3\n"
		"http_proxy = http://127.0.0.1:3128\n"
		"cgroup_name = sc-test.1\n"
		"drain_timeout = 0";
	struct sandcell_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(load(&cfg, text, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_key, "a # not a comment \"q\"");
	assert_string_equal(cfg.socket_path, "/tmp/x.sock");
	assert_int_equal(cfg.socket_mode, 0640);
	assert_string_equal(cfg.socket_group, "www-data");
	assert_int_equal(cfg.max_workers, 8);
	assert_int_equal(cfg.jail.max_sandboxes, 8);
	assert_int_equal(cfg.max_body_size, 2048);
	assert_int_equal(cfg.jail.output_limit, 3 << 20);
	assert_int_equal(cfg.jail.memory_limit, 1ULL << 30);
	assert_int_equal(cfg.jail.tmp_size, 12345);
	assert_false(cfg.enable_network);
	assert_true(cfg.enable_preload);
	assert_true(cfg.jail.allow_processes);
	assert_int_equal(cfg.jail.timeout_ms, 30000);
	assert_int_equal(cfg.jail.n_extra_syscalls, 3);
	assert_int_equal(cfg.jail.extra_syscalls[0], 1);
	assert_int_equal(cfg.jail.extra_syscalls[1], 2);
	assert_int_equal(cfg.jail.extra_syscalls[2], 3);
	assert_string_equal(cfg.jail.http_proxy, "http://127.0.0.1:3128");
	assert_null(cfg.jail.https_proxy);
	assert_string_equal(cfg.jail.cgroup_name, "sc-test.1");
	assert_int_equal(cfg.drain_timeout, 0);
	config_free(&cfg);
}

static void test_file_errors(void **state)
{
	(void)state;
	expect_error("api_key = k\n\nbogus = 1\n", NULL, "test.conf:3: unknown key 'bogus'");
	expect_error("api_key = k\nmax_workers\n", NULL, "test.conf:2: expected `key = value`");
	expect_error("api_key = k\n= 3\n", NULL, "test.conf:2: expected `key = value`");
	expect_error("api_key = k\nMax_Workers = 3\n", NULL, "test.conf:2: expected `key = value`");
	expect_error("max_workers = many\n", key_only, "test.conf:1: max_workers: not a number");
	expect_error("max_workers = -1\n", key_only, "test.conf:1: max_workers: not a number");
	expect_error("max_workers = 0\n", key_only,
		     "test.conf:1: max_workers: must be between 1 and 256");
	expect_error("max_workers =\n", key_only, "test.conf:1: max_workers: missing value");
	expect_error("max_workers = 99999999999999999999999\n", key_only,
		     "test.conf:1: max_workers: number too large");
	expect_error("enable_network = maybe\n", key_only,
		     "test.conf:1: enable_network: not a boolean (true/false, yes/no, on/off, 1/0)");
	expect_error("output_limit = 5t\n", key_only,
		     "test.conf:1: output_limit: not a size (a number with an optional k, m or g suffix)");
	expect_error("output_limit = 99999999999g\n", key_only,
		     "test.conf:1: output_limit: size too large");
	expect_error("socket_mode = 0999\n", key_only,
		     "test.conf:1: socket_mode: not an octal mode (e.g. 0660)");
	expect_error("socket_mode = 01777\n", key_only,
		     "test.conf:1: socket_mode: must be between 0 and 511");
	expect_error("python_path = python3\n", key_only,
		     "test.conf:1: python_path: must be an absolute path");
	expect_error("cgroup_name = ../up\n", key_only,
		     "test.conf:1: cgroup_name: must be a plain name (letters, digits, '.', '_', '-')");
	expect_error("api_key = \"open\n", NULL, "test.conf:1: api_key: unterminated quoted value");
	expect_error("api_key = \"a\" b\n", NULL,
		     "test.conf:1: api_key: unexpected text after the quoted value");
	expect_error("max_workers = 2\nmax_workers = 3\n", key_only,
		     "test.conf:2: duplicate key 'max_workers'");
	expect_error("allowed_syscalls = 1,-2\n", key_only,
		     "test.conf:1: allowed_syscalls: expected a comma list of non-negative numbers");
	expect_error("allowed_syscalls = 1,\n", key_only,
		     "test.conf:1: allowed_syscalls: trailing comma");
	expect_error("allowed_syscalls = read\n", key_only,
		     "test.conf:1: allowed_syscalls: expected a comma list of non-negative numbers");
}

static void test_nul_in_file(void **state)
{
	static const char text[] = "api_key = k\0\n";
	struct sandcell_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(config_from_text(&cfg, text, sizeof(text) - 1, "test.conf", NULL, NULL,
					  err, sizeof(err)), -1);
	assert_string_equal(err, "test.conf: contains a NUL byte");
}

static void test_api_key_required(void **state)
{
	static const char msg[] = "api_key is not set: set it in test.conf or in the API_KEY "
				  "environment variable (an empty key is refused, not \"no auth\")";
	static const char *const empty_env[] = { "API_KEY", "", NULL };

	(void)state;
	expect_error(NULL, NULL, msg);
	expect_error("max_workers = 2\n", NULL, msg);
	expect_error("api_key = \"\"\n", NULL, msg);
	expect_error("api_key =\n", empty_env, msg);
}

static void test_env_overrides_file(void **state)
{
	static const char *const env[] = {
		"API_KEY", "from-env", "MAX_WORKERS", "7", "MAX_REQUESTS", "9",
		"WORKER_TIMEOUT", "3", "ENABLE_NETWORK", "false", "ENABLE_PRELOAD", "true",
		"PYTHON_PATH", "/opt/py", "NODEJS_PATH", "/opt/node", "HTTP_PROXY", "http://p:1",
		"HTTPS_PROXY", "http://p:2", "ALLOWED_SYSCALLS", "39,  102", "SANDCELL_SOCKET",
		"/tmp/env.sock", "SANDCELL_CGROUP", "envcg",
		"MAX_BODY_SIZE", "1", /* no such override: ignored */
		NULL,
	};
	struct sandcell_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(load(&cfg, "api_key = file\nmax_workers = 2\nallowed_syscalls = 5\n"
			      "enable_network = true\n", env, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_key, "from-env");
	assert_int_equal(cfg.max_workers, 7);
	assert_int_equal(cfg.jail.max_sandboxes, 7);
	assert_int_equal(cfg.max_requests, 9);
	assert_int_equal(cfg.jail.timeout_ms, 3000);
	assert_false(cfg.enable_network);
	assert_true(cfg.enable_preload);
	assert_string_equal(cfg.jail.python_path, "/opt/py");
	assert_string_equal(cfg.jail.nodejs_path, "/opt/node");
	assert_string_equal(cfg.jail.http_proxy, "http://p:1");
	assert_string_equal(cfg.jail.https_proxy, "http://p:2");
	assert_string_equal(cfg.socket_path, "/tmp/env.sock");
	assert_string_equal(cfg.jail.cgroup_name, "envcg");
	assert_int_equal(cfg.max_body_size, 10 << 20);
	/* the environment's list replaces the file's; both add to the defaults */
	assert_int_equal(cfg.jail.n_extra_syscalls, 2);
	assert_int_equal(cfg.jail.extra_syscalls[0], 39);
	assert_int_equal(cfg.jail.extra_syscalls[1], 102);
	config_free(&cfg);
}

static void test_empty_env_is_unset(void **state)
{
	static const char *const env[] = { "API_KEY", "k", "MAX_WORKERS", "", NULL };
	struct sandcell_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(load(&cfg, "max_workers = 3\n", env, err, sizeof(err)), 0);
	assert_int_equal(cfg.max_workers, 3);
	config_free(&cfg);
}

static void test_env_errors(void **state)
{
	static const char *const bad_workers[] = { "API_KEY", "k", "MAX_WORKERS", "four", NULL };
	static const char *const bad_bool[] = { "API_KEY", "k", "ENABLE_NETWORK", "sometimes", NULL };
	static const char *const bad_calls[] = { "API_KEY", "k", "ALLOWED_SYSCALLS", "1;2", NULL };

	(void)state;
	expect_error(NULL, bad_workers, "environment variable MAX_WORKERS: not a number");
	expect_error(NULL, bad_bool, "environment variable ENABLE_NETWORK: not a boolean "
		     "(true/false, yes/no, on/off, 1/0)");
	expect_error(NULL, bad_calls, "environment variable ALLOWED_SYSCALLS: "
		     "expected a comma list of non-negative numbers");
}

static void test_load_files(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX";
	struct sandcell_config cfg;
	char err[256];
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "api_key = filekey\nmax_requests = 12\n", 36), 36);
	close(fd);
	unsetenv("API_KEY");
	unsetenv("MAX_REQUESTS");
	assert_int_equal(config_load(&cfg, path, true, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_key, "filekey");
	assert_int_equal(cfg.max_requests, 12);
	config_free(&cfg);

	/* the process environment wins */
	setenv("MAX_REQUESTS", "13", 1);
	assert_int_equal(config_load(&cfg, path, true, err, sizeof(err)), 0);
	assert_int_equal(cfg.max_requests, 13);
	config_free(&cfg);
	unsetenv("MAX_REQUESTS");
	unlink(path);

	/* a missing default file: defaults + environment; an explicit one: error */
	setenv("API_KEY", "envkey", 1);
	assert_int_equal(config_load(&cfg, path, false, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_key, "envkey");
	config_free(&cfg);
	assert_int_equal(config_load(&cfg, path, true, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	unsetenv("API_KEY");
}

/* warm_sandboxes is the floor of each kind's warm pool, warm_sandboxes_max its
 * ceiling: the floor unless set (a fixed pool), never below the floor. */
static void test_warm_pool_bounds(void **state)
{
	struct sandcell_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(load(&cfg, NULL, key_only, err, sizeof(err)), 0);
	assert_int_equal(cfg.jail.warm_sandboxes, 2);
	assert_int_equal(cfg.jail.warm_sandboxes_max, 2);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "warm_sandboxes = 12\n", key_only, err, sizeof(err)), 0);
	assert_int_equal(cfg.jail.warm_sandboxes_max, 12);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "warm_sandboxes = 0\n", key_only, err, sizeof(err)), 0);
	assert_int_equal(cfg.jail.warm_sandboxes_max, 0);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "warm_sandboxes = 1\nwarm_sandboxes_max = 8\n", key_only, err,
			      sizeof(err)), 0);
	assert_int_equal(cfg.jail.warm_sandboxes, 1);
	assert_int_equal(cfg.jail.warm_sandboxes_max, 8);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "warm_sandboxes = 0\nwarm_sandboxes_max = 0\n", key_only, err,
			      sizeof(err)), 0);
	assert_int_equal(cfg.jail.warm_sandboxes, 0);
	assert_int_equal(cfg.jail.warm_sandboxes_max, 0);
	config_free(&cfg);
	assert_int_equal(load(&cfg, "warm_sandboxes = 3\nwarm_sandboxes_max = 3\n", key_only, err,
			      sizeof(err)), 0);
	assert_int_equal(cfg.jail.warm_sandboxes_max, 3);
	config_free(&cfg);
	expect_error("warm_sandboxes = 4\nwarm_sandboxes_max = 2\n", key_only,
		     "warm_sandboxes_max (2) is below warm_sandboxes (4): the most warm sandboxes "
		     "per kind cannot be fewer than the least");
	expect_error("warm_sandboxes_max = 1\n", key_only,
		     "warm_sandboxes_max (1) is below warm_sandboxes (2): the most warm sandboxes "
		     "per kind cannot be fewer than the least");
	expect_error("warm_sandboxes_max = 65\n", key_only,
		     "test.conf:1: warm_sandboxes_max: must be between 0 and 64");
}

static void test_describe_hides_key(void **state)
{
	struct sandcell_config cfg;
	char err[256], *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	(void)state;
	assert_int_equal(load(&cfg, "api_key = topsecret\nsocket_mode = 0600\n", NULL, err,
			      sizeof(err)), 0);
	config_describe(&cfg, out);
	fclose(out);
	assert_null(strstr(buf, "topsecret"));
	assert_non_null(strstr(buf, "api_key = (set, not shown)\n"));
	assert_non_null(strstr(buf, "socket_mode = 0600\n"));
	assert_non_null(strstr(buf, "max_workers = 4\n"));
	free(buf);
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_file_format),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_nul_in_file),
		cmocka_unit_test(test_api_key_required),
		cmocka_unit_test(test_env_overrides_file),
		cmocka_unit_test(test_empty_env_is_unset),
		cmocka_unit_test(test_env_errors),
		cmocka_unit_test(test_load_files),
		cmocka_unit_test(test_warm_pool_bounds),
		cmocka_unit_test(test_describe_hides_key),
		cmocka_unit_test(test_python_preload),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
