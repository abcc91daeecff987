/* Unit tests of the /run body parser (fcgi/request.c), the log helpers that
 * read request headers (fcgi/log.c) and the key comparison (fcgi/router.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fcgi/log.h"
#include "fcgi/request.h"
#include "fcgi/router.h"

/* Parses s and returns the message (NULL on success); req stays filled. */
static const char *parse(const char *s, struct run_request *req)
{
	const char *msg = NULL;
	int rc = run_request_parse(s, strlen(s), req, &msg);

	assert_int_equal(rc, msg ? -1 : 0);
	return msg;
}

static void expect_error(const char *body, const char *message)
{
	struct run_request req;
	const char *msg = parse(body, &req);

	assert_non_null(msg);
	assert_string_equal(msg, message);
	run_request_free(&req);
}

static void test_minimal(void **state)
{
	struct run_request req;

	(void)state;
	assert_null(parse("{\"language\":\"python3\",\"code\":\"print(1)\"}", &req));
	assert_string_equal(req.language, "python3");
	assert_int_equal(req.language_len, 7);
	assert_string_equal(req.code, "print(1)");
	assert_int_equal(req.code_len, 8);
	assert_null(req.preload);
	assert_false(req.enable_network);
	run_request_free(&req);
}

static void test_all_fields_and_unknown_ones(void **state)
{
	struct run_request req;

	(void)state;
	assert_null(parse(" {\"x\":{\"a\":[1,2,{\"b\":null}],\"language\":5},\"language\":\"nodejs\","
			  "\"n\":-1.5e3,\"t\":true,\"z\":null,\"s\":\"str\",\"e\":[],"
			  "\"preload\":\"p=1\",\"code\":\"c\",\"enable_network\":true}\n", &req));
	assert_string_equal(req.language, "nodejs");
	assert_string_equal(req.code, "c");
	assert_non_null(req.preload);
	assert_string_equal(req.preload, "p=1");
	assert_int_equal(req.preload_len, 3);
	assert_true(req.enable_network);
	run_request_free(&req);
}

static void test_optional_nulls(void **state)
{
	struct run_request req;

	(void)state;
	assert_null(parse("{\"language\":\"python3\",\"code\":\"x\",\"preload\":null,"
			  "\"enable_network\":null}", &req));
	assert_null(req.preload);
	assert_false(req.enable_network);
	run_request_free(&req);
	assert_null(parse("{\"language\":\"python3\",\"code\":\"x\",\"enable_network\":false}", &req));
	assert_false(req.enable_network);
	run_request_free(&req);
}

static void test_not_json(void **state)
{
	(void)state;
	expect_error("nope", "request body is not valid JSON");
	expect_error("{", "request body is not valid JSON");
	expect_error("{\"language\":}", "request body is not valid JSON");
	expect_error("{'language':'python3'}", "request body is not valid JSON");
	expect_error("", "request body is empty");
	expect_error(" \r\n\t", "request body is empty");
}

static void test_not_object(void **state)
{
	(void)state;
	expect_error("[]", "request body must be a JSON object");
	expect_error("[{\"language\":\"python3\",\"code\":\"x\"}]", "request body must be a JSON object");
	expect_error("\"str\"", "request body must be a JSON object");
	expect_error("1", "request body must be a JSON object");
	expect_error("null", "request body must be a JSON object");
	expect_error("true", "request body must be a JSON object");
}

/* {"x": <levels-1 arrays>, "language":..., "code":...}: depth = levels */
static char *nested(unsigned levels)
{
	size_t n = levels - 1;
	char *s = malloc(2 * n + 100);
	size_t w = 0;

	w += (size_t)sprintf(s, "{\"x\":");
	memset(s + w, '[', n);
	w += n;
	memset(s + w, ']', n);
	w += n;
	strcpy(s + w, ",\"language\":\"python3\",\"code\":\"x\"}");
	return s;
}

static void test_depth_limit(void **state)
{
	struct run_request req;
	char *ok = nested(REQUEST_MAX_DEPTH), *deep = nested(REQUEST_MAX_DEPTH + 1);

	(void)state;
	assert_null(parse(ok, &req));
	run_request_free(&req);
	expect_error(deep, "request body is nested too deeply");
	free(ok);
	free(deep);
}

static void test_very_deep_does_not_crash(void **state)
{
	size_t n = 500000;
	char *s = malloc(n + 1);

	(void)state;
	memset(s, '[', n);
	s[n] = '\0';
	/* top level is an array: refused before any depth matters */
	expect_error(s, "request body must be a JSON object");
	s[0] = '{';
	memcpy(s + 1, "\"a\":", 4);
	expect_error(s, "request body is nested too deeply");
	free(s);
}

static void test_missing_and_wrong_types(void **state)
{
	(void)state;
	expect_error("{}", "language is required");
	expect_error("{\"code\":\"x\"}", "language is required");
	expect_error("{\"language\":\"python3\"}", "code is required");
	expect_error("{\"language\":1,\"code\":\"x\"}", "language must be a string");
	expect_error("{\"language\":null,\"code\":\"x\"}", "language must be a string");
	expect_error("{\"language\":[\"python3\"],\"code\":\"x\"}", "language must be a string");
	expect_error("{\"language\":{},\"code\":\"x\"}", "language must be a string");
	expect_error("{\"language\":\"python3\",\"code\":7}", "code must be a string");
	expect_error("{\"language\":\"python3\",\"code\":null}", "code must be a string");
	expect_error("{\"language\":\"python3\",\"code\":false}", "code must be a string");
	expect_error("{\"language\":\"python3\",\"code\":\"x\",\"preload\":1}", "preload must be a string");
	expect_error("{\"language\":\"python3\",\"code\":\"x\",\"enable_network\":\"true\"}",
		     "enable_network must be a boolean");
	expect_error("{\"language\":\"python3\",\"code\":\"x\",\"enable_network\":1}",
		     "enable_network must be a boolean");
	expect_error("{\"language\":\"python3\",\"code\":\"\"}", "code must not be empty");
	expect_error("{\"language\":\"python3\",\"code\":\"x\",\"code\":\"y\"}",
		     "request body has a duplicate field");
}

static void test_comments_and_trailing_garbage(void **state)
{
	(void)state;
	expect_error("{/*c*/\"language\":\"python3\",\"code\":\"x\"}", "request body is not valid JSON");
	expect_error("{\"language\":\"python3\",\"code\":\"x\"} // c", "request body is not valid JSON");
	expect_error("{\"language\":\"python3\",\"code\":\"x\"} x", "request body is not valid JSON");
	expect_error("{\"language\":\"python3\",\"code\":\"x\"}{}", "request body is not valid JSON");
}

static void test_nul_in_code_kept(void **state)
{
	static const char body[] = "{\"language\":\"python3\",\"code\":\"a\\u0000b\"}";
	struct run_request req;
	const char *msg;

	(void)state;
	assert_int_equal(run_request_parse(body, sizeof(body) - 1, &req, &msg), 0);
	assert_int_equal(req.code_len, 3);
	assert_memory_equal(req.code, "a\0b", 3);
	run_request_free(&req);
}

static void test_nul_in_language_kept(void **state)
{
	struct run_request req;

	(void)state;
	assert_null(parse("{\"language\":\"python3\\u0000x\",\"code\":\"x\"}", &req));
	assert_int_equal(req.language_len, 9);
	/* strlen differs from the length: the router refuses such a name */
	assert_int_equal(strlen(req.language), 7);
	run_request_free(&req);
}

static void test_raw_nul_byte_refused(void **state)
{
	static const char body[] = "{\"language\":\"python3\",\"code\":\"a\0b\"}";
	struct run_request req;
	const char *msg = NULL;

	(void)state;
	assert_int_equal(run_request_parse(body, sizeof(body) - 1, &req, &msg), -1);
	assert_string_equal(msg, "request body is not valid JSON");
	run_request_free(&req);
}

static void test_unicode_escapes(void **state)
{
	struct run_request req;

	(void)state;
	assert_null(parse("{\"language\":\"python3\",\"code\":\"\\u00e9\\ud83d\\ude00\\n\\\"\"}", &req));
	assert_int_equal(req.code_len, 2 + 4 + 1 + 1);
	assert_memory_equal(req.code, "\xc3\xa9\xf0\x9f\x98\x80\n\"", 8);
	run_request_free(&req);
	/* raw UTF-8 passes unchanged */
	assert_null(parse("{\"language\":\"python3\",\"code\":\"\xe2\x82\xac\"}", &req));
	assert_int_equal(req.code_len, 3);
	assert_memory_equal(req.code, "\xe2\x82\xac", 3);
	run_request_free(&req);
}

static void test_invalid_utf8_refused(void **state)
{
	(void)state;
	expect_error("{\"language\":\"python3\",\"code\":\"\xff\"}", "request body is not valid JSON");
}

static void test_huge_string(void **state)
{
	size_t n = 5u << 20;
	char *body = malloc(n + 64);
	struct run_request req;
	size_t w = (size_t)sprintf(body, "{\"language\":\"python3\",\"code\":\"");

	(void)state;
	memset(body + w, 'a', n);
	strcpy(body + w + n, "\"}");
	assert_null(parse(body, &req));
	assert_int_equal(req.code_len, n);
	assert_int_equal(req.code[0], 'a');
	assert_int_equal(req.code[n - 1], 'a');
	assert_int_equal(req.code[n], '\0');
	run_request_free(&req);
	free(body);
}

static void test_messages_never_echo_input(void **state)
{
	static const char *const bodies[] = {
		"SECRETMARK", "{\"SECRETMARK\"}", "[\"SECRETMARK\"]",
		"{\"language\":\"SECRETMARK\"}", "{\"code\":SECRETMARK}",
		"{\"language\":\"python3\",\"code\":\"x\"} SECRETMARK",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct run_request req;
		const char *msg = parse(bodies[i], &req);

		assert_non_null(msg);
		assert_null(strstr(msg, "SECRETMARK"));
		run_request_free(&req);
	}
}

static void test_trace_id(void **state)
{
	char id[33];

	(void)state;
	assert_true(log_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id));
	assert_string_equal(id, "4bf92f3577b34da6a3ce929d0e0e4736");
	assert_false(log_trace_id(NULL, id));
	assert_false(log_trace_id("", id));
	/* uppercase hex, wrong version, zero ids, wrong lengths, extra text */
	assert_false(log_trace_id("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", id));
	assert_false(log_trace_id("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id));
	assert_false(log_trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01", id));
	assert_false(log_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", id));
	assert_false(log_trace_id("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", id));
	assert_false(log_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", id));
	assert_false(log_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", id));
	assert_false(log_trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", id));
}

static void test_request_id(void **state)
{
	char a[65], b[65];

	(void)state;
	log_request_id("0123abcd-ef", a);
	assert_string_equal(a, "0123abcd-ef");
	log_request_id("bad id\"with=stuff", a);
	log_request_id(NULL, b);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	assert_string_not_equal(a, b);
	char longid[80];
	memset(longid, 'a', 79);
	longid[79] = '\0';
	log_request_id(longid, a);
	assert_int_equal(strlen(a), 32);
}

static void test_key_matches(void **state)
{
	(void)state;
	assert_true(router_key_matches("secret", "secret"));
	assert_false(router_key_matches("secreT", "secret"));
	assert_false(router_key_matches("secre", "secret"));
	assert_false(router_key_matches("secret2", "secret"));
	assert_false(router_key_matches("", "secret"));
	assert_false(router_key_matches(NULL, "secret"));
}

/* How many instructions router_key_matches(given, expected) takes, counted by
 * single-stepping a child between two stops (the same raise() code around it
 * each time, so only the comparison can make counts differ). No clock: the
 * count is the same on a loaded host. -1 if the child cannot be traced. */
static long steps_to_compare(const char *given, const char *expected)
{
	int status;
	long steps = 0;
	pid_t pid = fork();

	if (pid == 0) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		raise(SIGSTOP);
		bool r = router_key_matches(given, expected);
		raise(SIGSTOP);
		_exit(r);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status))
		return -1;
	for (;;) {
		if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) != 0 || waitpid(pid, &status, 0) != pid ||
		    !WIFSTOPPED(status)) {
			steps = -1;
			break;
		}
		if (WSTOPSIG(status) == SIGSTOP)
			break;
		steps++;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return steps;
}

/* The key comparison takes as many steps whatever the presented key of the
 * right length holds: it differs in the first byte, the last, or not at all
 * (an early exit, as in strcmp or memcmp, would take fewer steps the sooner
 * the keys differ, which leaks the key byte by byte). */
static void test_key_compare_takes_the_same_steps_wherever_it_differs(void **state)
{
	static const size_t at[] = { 0, 32, 63 }; /* first, middle, last byte */
	char expected[65], given[65];

	(void)state;
	memset(expected, 'k', 64);
	expected[64] = '\0';
	/* one buffer for every key presented: the same address each time, since
	 * a sanitizer's checks of a string cost steps by its alignment */
	memcpy(given, expected, 65);
	long right = steps_to_compare(given, expected);
	if (right < 0)
		skip(); /* no ptrace here (a seccomp'd or traced test runner) */
	assert_true(right > 64); /* the loop itself was stepped through */
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		memcpy(given, expected, 65);
		given[at[i]] = 'X';
		assert_int_equal(steps_to_compare(given, expected), right);
	}
}

/* Strings must be well-formed UTF-8, whatever yajl's laxer check lets through. */
static void test_strict_utf8(void **state)
{
	struct run_request req = { 0 };

	(void)state;
	expect_error("{\"language\":\"python3\",\"code\":\"\xc0\xaf\"}",
		     "code must be valid UTF-8"); /* overlong '/' */
	expect_error("{\"language\":\"python3\",\"code\":\"\xed\xa0\x80\"}",
		     "code must be valid UTF-8"); /* an encoded surrogate */
	expect_error("{\"language\":\"python3\",\"code\":\"\xf4\x90\x80\x80\"}",
		     "code must be valid UTF-8"); /* above U+10FFFF */
	expect_error("{\"language\":\"py\xe0\x80\xb3\",\"code\":\"1\"}",
		     "language must be valid UTF-8");
	expect_error("{\"language\":\"python3\",\"code\":\"1\",\"preload\":\"\xc1\xbf\"}",
		     "preload must be valid UTF-8");
	/* well-formed text, escaped pairs and NUL are fine */
	assert_null(parse("{\"language\":\"python3\",\"code\":\"\xe2\x82\xac \\ud83d\\ude00 "
			  "\\u0000\"}", &req));
	run_request_free(&req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_all_fields_and_unknown_ones),
		cmocka_unit_test(test_optional_nulls),
		cmocka_unit_test(test_not_json),
		cmocka_unit_test(test_not_object),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_very_deep_does_not_crash),
		cmocka_unit_test(test_missing_and_wrong_types),
		cmocka_unit_test(test_comments_and_trailing_garbage),
		cmocka_unit_test(test_nul_in_code_kept),
		cmocka_unit_test(test_nul_in_language_kept),
		cmocka_unit_test(test_raw_nul_byte_refused),
		cmocka_unit_test(test_unicode_escapes),
		cmocka_unit_test(test_invalid_utf8_refused),
		cmocka_unit_test(test_huge_string),
		cmocka_unit_test(test_messages_never_echo_input),
		cmocka_unit_test(test_trace_id),
		cmocka_unit_test(test_request_id),
		cmocka_unit_test(test_key_matches),
		cmocka_unit_test(test_key_compare_takes_the_same_steps_wherever_it_differs),
		cmocka_unit_test(test_strict_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
