/* Configuration keys of the packaging and scale-out work: socket may be
 * empty when listen is set, listen and allow_clients are validated at
 * load time, api_key_file supplies the key when api_key is unset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "fcgi/config.h"

static const char *no_env(const char *name, void *ctx)
{
	return NULL;
}

static int load(struct sandcell_config *cfg, const char *text, char *err, size_t errlen)
{
	return config_from_text(cfg, text, strlen(text), "t.conf", no_env, NULL, err, errlen);
}

static void expect_error(const char *text, const char *message)
{
	struct sandcell_config cfg;
	char err[256] = "";

	assert_int_equal(load(&cfg, text, err, sizeof(err)), -1);
	assert_string_equal(err, message);
}

static void tcp_only_and_both(void **state)
{
	struct sandcell_config cfg;
	char err[256] = "";

	assert_int_equal(load(&cfg, "api_key = k\nsocket =\nlisten = [::1]:9000\n", err,
			      sizeof(err)), 0);
	assert_null(cfg.socket_path);
	assert_string_equal(cfg.listen, "[::1]:9000");
	assert_int_not_equal(cfg.listen_addrlen, 0);
	/* the default allowlist: loopback only */
	assert_string_equal(cfg.allow_clients, "127.0.0.1, ::1");
	assert_int_equal(cfg.n_client_nets, 2);
	config_free(&cfg);

	assert_int_equal(load(&cfg, "api_key = k\nlisten = 127.0.0.1:9000\n"
				    "allow_clients = 10.0.0.0/8, 127.0.0.1\n", err, sizeof(err)), 0);
	assert_string_equal(cfg.socket_path, "/run/sandcell/sandcell.sock");
	assert_int_equal(cfg.n_client_nets, 2);
	config_free(&cfg);

	/* no listen: no TCP */
	assert_int_equal(load(&cfg, "api_key = k\n", err, sizeof(err)), 0);
	assert_null(cfg.listen);
	assert_int_equal(cfg.listen_addrlen, 0);
	config_free(&cfg);
}

static void listener_errors(void **state)
{
	expect_error("api_key = k\nsocket =\n",
		     "neither socket nor listen is set: sandcelld would not be reachable");
	expect_error("api_key = k\nsocket = relative.sock\n",
		     "t.conf:2: socket: must be an absolute path (or empty for none)");
	expect_error("api_key = k\nlisten = localhost:9000\n",
		     "listen: not an IPv4 address (names are not accepted)");
	expect_error("api_key = k\nlisten = 127.0.0.1:9000\nallow_clients = 10.0.0.1/8\n",
		     "allow_clients: '10.0.0.1': address has bits set beyond the prefix length");
}

static void key_from_a_file(void **state)
{
	char path[] = "/tmp/sandcell-test-key-XXXXXX", text[256], err[256] = "";
	struct sandcell_config cfg;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "  0123abcd \nsecond line\n", 24), 24);
	close(fd);
	snprintf(text, sizeof(text), "api_key_file = %s\n", path);
	assert_int_equal(load(&cfg, text, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_key, "0123abcd");
	config_free(&cfg);

	/* api_key wins over the file */
	snprintf(text, sizeof(text), "api_key = direct\napi_key_file = %s\n", path);
	assert_int_equal(load(&cfg, text, err, sizeof(err)), 0);
	assert_string_equal(cfg.api_key, "direct");
	config_free(&cfg);

	/* an empty file is no key */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	snprintf(text, sizeof(text), "api_key_file = %s\n", path);
	assert_int_equal(load(&cfg, text, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the file is empty"));
	unlink(path);
	assert_int_equal(load(&cfg, text, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tcp_only_and_both),
		cmocka_unit_test(listener_errors),
		cmocka_unit_test(key_from_a_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
