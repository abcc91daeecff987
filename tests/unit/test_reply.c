/* Unit tests of the responses (fcgi/reply.c) and the UTF-8 repair
 * (fcgi/utf8.c) they rely on. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "fcgi/reply.h"
#include "fcgi/reply_bound.h"
#include "fcgi/utf8.h"

#define FFFD "\xef\xbf\xbd"

static void assert_body(const struct reply *r, const char *expected)
{
	assert_int_equal(r->body_len, strlen(expected));
	assert_memory_equal(r->body, expected, r->body_len);
}

static void assert_head(const struct reply *r, const char *expected)
{
	char head[256];
	size_t n = reply_format_head(r, head, sizeof(head));

	assert_int_equal(n, strlen(expected));
	assert_memory_equal(head, expected, n);
}

static void test_health(void **state)
{
	struct reply r = { 0 };

	(void)state;
	assert_int_equal(reply_health(&r), 0);
	assert_body(&r, "\"ok\"");
	assert_head(&r, "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n");
	reply_free(&r);
}

static void test_empty(void **state)
{
	struct reply r = { 0 };

	(void)state;
	reply_empty(&r, 401);
	assert_int_equal(r.body_len, 0);
	assert_head(&r, "Status: 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
	reply_empty(&r, 404);
	assert_head(&r, "Status: 404 Not Found\r\nContent-Length: 0\r\n\r\n");
	reply_free(&r);
}

static void test_errors(void **state)
{
	struct reply r = { 0 };

	(void)state;
	assert_int_equal(reply_error(&r, 400, -400, "unsupported language"), 0);
	assert_int_equal(r.status, 400);
	assert_int_equal(r.code, -400);
	assert_body(&r, "{\"code\":-400,\"message\":\"unsupported language\",\"data\":null}");
	assert_head(&r, "Status: 400 Bad Request\r\nContent-Type: application/json\r\n"
			"Content-Length: 58\r\n\r\n");
	reply_error(&r, 503, -503, "Too many requests");
	assert_body(&r, "{\"code\":-503,\"message\":\"Too many requests\",\"data\":null}");
	reply_error(&r, 200, -400, "network is disabled, please enable it in the configuration");
	assert_int_equal(r.status, 200);
	assert_body(&r, "{\"code\":-400,\"message\":\"network is disabled, please enable it in the "
			"configuration\",\"data\":null}");
	/* a host message with quotes, a newline and a bad byte stays valid JSON */
	reply_error(&r, 500, -500, "cgroup \"x\"\nfailed \xff");
	assert_body(&r, "{\"code\":-500,\"message\":\"cgroup \\\"x\\\"\\nfailed " FFFD "\",\"data\":null}");
	reply_free(&r);
}

static void test_method_not_allowed(void **state)
{
	struct reply r = { 0 };

	(void)state;
	reply_method_not_allowed(&r, "POST");
	assert_int_equal(r.status, 405);
	assert_body(&r, "{\"code\":-405,\"message\":\"method not allowed\",\"data\":null}");
	assert_head(&r, "Status: 405 Method Not Allowed\r\nContent-Type: application/json\r\n"
			"Allow: POST\r\nContent-Length: 56\r\n\r\n");
	reply_free(&r);
}

static void test_success_empty(void **state)
{
	struct reply r = { 0 };

	(void)state;
	reply_success_empty(&r);
	assert_body(&r, "{\"code\":0,\"message\":\"success\",\"data\":{}}");
	reply_free(&r);
}

static void test_run_result(void **state)
{
	static char out[] = "a\0b\"\\\x01\xff\xf0\x9f\x98\x80\n";
	static char err[] = "warn\n";
	static const char error_text[] = "process exited with code 1\nwarn\n";
	struct run_result res = {
		.out = out, .out_len = sizeof(out) - 1,
		.err = err, .err_len = sizeof(err) - 1,
		.exit_code = 1,
	};
	struct reply r = { 0 };

	(void)state;
	assert_int_equal(reply_run_result(&r, &res, error_text, sizeof(error_text) - 1), 0);
	assert_int_equal(r.status, 200);
	assert_body(&r, "{\"code\":0,\"message\":\"success\",\"data\":{"
			"\"stdout\":\"a\\u0000b\\\"\\\\\\u0001" FFFD "\xf0\x9f\x98\x80\\n\","
			"\"stderr\":\"warn\\n\","
			"\"error\":\"process exited with code 1\\nwarn\\n\","
			"\"exit_code\":1}}");
	reply_free(&r);
}

static void test_run_result_empty_and_killed(void **state)
{
	struct run_result res = { .exit_code = -1 };
	struct reply r = { 0 };

	(void)state;
	reply_run_result(&r, &res, "", 0);
	assert_body(&r, "{\"code\":0,\"message\":\"success\",\"data\":{\"stdout\":\"\","
			"\"stderr\":\"\",\"error\":\"\",\"exit_code\":-1}}");
	reply_free(&r);
}

static void test_dependencies(void **state)
{
	struct dependency deps[] = {
		{ "httpx", "0.23.3" },
		{ "requests", "2.28.1" },
	};
	struct reply r = { 0 };

	(void)state;
	reply_dependencies(&r, deps, 2);
	assert_body(&r, "{\"code\":0,\"message\":\"success\",\"data\":{\"dependencies\":["
			"{\"name\":\"httpx\",\"version\":\"0.23.3\"},"
			"{\"name\":\"requests\",\"version\":\"2.28.1\"}]}}");
	reply_dependencies(&r, NULL, 0);
	assert_body(&r, "{\"code\":0,\"message\":\"success\",\"data\":{\"dependencies\":[]}}");
	reply_free(&r);
}

static void test_head_buffer_too_small(void **state)
{
	struct reply r = { 0 };
	char head[16];

	(void)state;
	reply_health(&r);
	assert_int_equal(reply_format_head(&r, head, sizeof(head)), 0);
	reply_free(&r);
}

/* ---- UTF-8 ------------------------------------------------------------- */

static void expect_sanitized(const char *in, size_t len, const char *expected)
{
	size_t n = 0;
	char *out = utf8_sanitize(in, len, &n);

	assert_non_null(out);
	assert_int_equal(n, strlen(expected));
	assert_memory_equal(out, expected, n);
	assert_int_equal(out[n], '\0');
	assert_true(utf8_is_valid(out, n));
	free(out);
}

#define SANITIZE(lit, expected) expect_sanitized(lit, sizeof(lit) - 1, expected)

static void test_utf8_valid_unchanged(void **state)
{
	static const char text[] = "plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf "
				   "\xed\x9f\xbf \xee\x80\x80";
	size_t n;
	char *out;

	(void)state;
	assert_true(utf8_is_valid(text, sizeof(text) - 1));
	out = utf8_sanitize(text, sizeof(text) - 1, &n);
	assert_int_equal(n, sizeof(text) - 1);
	assert_memory_equal(out, text, n);
	free(out);
	/* NUL is a valid character */
	assert_true(utf8_is_valid("a\0b", 3));
	assert_true(utf8_is_valid("", 0));
	SANITIZE("", "");
}

static void test_utf8_invalid_bytes(void **state)
{
	(void)state;
	SANITIZE("a\xff" "b", "a" FFFD "b");
	SANITIZE("\x80", FFFD);
	SANITIZE("\xf5\x80", FFFD FFFD);
	/* overlongs: C0/C1 never lead; E0 80 and F0 80 are not allowed starts */
	SANITIZE("\xc0\xaf", FFFD FFFD);
	SANITIZE("\xe0\x80\xaf", FFFD FFFD FFFD);
	SANITIZE("\xf0\x80\x80\xaf", FFFD FFFD FFFD FFFD);
	/* surrogates D800..DFFF */
	SANITIZE("\xed\xa0\x80", FFFD FFFD FFFD);
	SANITIZE("\xed\xbf\xbf", FFFD FFFD FFFD);
	/* above U+10FFFF */
	SANITIZE("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD);
	assert_false(utf8_is_valid("\xed\xa0\x80", 3));
	assert_false(utf8_is_valid("\xc0\x80", 2));
	assert_false(utf8_is_valid("\xf4\x90\x80\x80", 4));
}

static void test_utf8_truncated_sequences(void **state)
{
	(void)state;
	/* a good prefix cut short is one maximal subpart: one U+FFFD */
	SANITIZE("\xe2\x82", FFFD);
	SANITIZE("x\xf0\x9f\x98", "x" FFFD);
	SANITIZE("\xf0\x9f\x98" "A", FFFD "A");
	SANITIZE("\xc3", FFFD);
	/* Unicode's own example (chapter 3, U+FFFD substitution) */
	SANITIZE("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
		 "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
}

static char *filled(size_t n, char c)
{
	char *s = malloc(n);

	assert_non_null(s);
	memset(s, c, n);
	return s;
}

static void test_json_escaped_len(void **state)
{
	(void)state;
	assert_int_equal(json_escaped_len("ab", 2), 2);
	assert_int_equal(json_escaped_len("\"\\\n\t", 4), 8);
	assert_int_equal(json_escaped_len("\x01\x1f", 2), 12);
	assert_int_equal(json_escaped_len("\xc3\xa9/", 3), 3);
}

/* The reply generated from a bounded result is itself within the bound. */
static size_t reply_len(struct run_result *res)
{
	struct reply r = { 0 };
	size_t len, n;
	char *error_text = run_result_error_text(res, &len);

	assert_non_null(error_text);
	assert_int_equal(reply_run_result(&r, res, error_text, len), 0);
	n = r.body_len;
	free(error_text);
	reply_free(&r);
	return n;
}

static void test_bound_control_bytes(void **state)
{
	const size_t limit = 4096;
	struct run_result res = { .out = filled(limit, 1), .out_len = limit,
				  .err = filled(limit, 2), .err_len = limit, .exit_code = 0 };

	(void)state;
	assert_int_equal(reply_bound_output(&res, limit), 0);
	assert_true(res.hits & JAIL_HIT_OUTPUT);
	assert_true(json_escaped_len(res.out, res.out_len) +
		    2 * json_escaped_len(res.err, res.err_len) <= 2 * limit);
	/* both streams keep a share */
	assert_true(res.err_len >= 2 * limit / 4 / 6 - 1 && res.out_len > 0);
	assert_true(reply_len(&res) <= 2 * limit + 1024);
	run_result_free(&res);
}

static void test_bound_leaves_plain_output(void **state)
{
	const size_t limit = 4096;
	struct run_result res = { .out = filled(limit, 'o'), .out_len = limit,
				  .err = filled(limit / 2, 'e'), .err_len = limit / 2 };

	(void)state;
	assert_int_equal(reply_bound_output(&res, limit), 0);
	assert_int_equal(res.out_len, limit);
	assert_int_equal(res.err_len, limit / 2);
	assert_int_equal(res.hits, 0);
	run_result_free(&res);
}

static void test_bound_small_stdout_leaves_stderr_room(void **state)
{
	const size_t limit = 4096;
	struct run_result res = { .out = filled(10, 'o'), .out_len = 10,
				  .err = filled(limit, '\n'), .err_len = limit };

	(void)state;
	assert_int_equal(reply_bound_output(&res, limit), 0);
	assert_int_equal(res.out_len, 10);
	assert_true(res.hits & JAIL_HIT_OUTPUT);
	/* stderr escaped twice fills what stdout left: (2 * 4096 - 10) / 2 escaped bytes */
	assert_int_equal(res.err_len, (2 * limit - 10) / 2 / 2);
	run_result_free(&res);
}

static void test_bound_cuts_on_a_character_boundary(void **state)
{
	const size_t limit = 64;
	char *out = malloc(3 * limit);
	struct run_result res = { .out = out, .out_len = 3 * limit };

	(void)state;
	for (size_t i = 0; i < limit; i++)
		memcpy(out + 3 * i, "\xe2\x82\xac", 3); /* the euro sign, 3 bytes */
	assert_int_equal(reply_bound_output(&res, limit), 0);
	assert_true(res.hits & JAIL_HIT_OUTPUT);
	assert_int_equal(res.out_len % 3, 0);
	assert_true(res.out_len <= 2 * limit);
	assert_true(utf8_is_valid(res.out, res.out_len));
	run_result_free(&res);
}

static void test_bound_repairs_invalid_bytes(void **state)
{
	struct run_result res = { .out = filled(4, (char)0xff), .out_len = 4 };

	(void)state;
	assert_int_equal(reply_bound_output(&res, 1024), 0);
	assert_int_equal(res.out_len, 12); /* four U+FFFD */
	assert_true(utf8_is_valid(res.out, res.out_len));
	run_result_free(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_success_empty),
		cmocka_unit_test(test_run_result),
		cmocka_unit_test(test_run_result_empty_and_killed),
		cmocka_unit_test(test_dependencies),
		cmocka_unit_test(test_head_buffer_too_small),
		cmocka_unit_test(test_utf8_valid_unchanged),
		cmocka_unit_test(test_utf8_invalid_bytes),
		cmocka_unit_test(test_utf8_truncated_sequences),
		cmocka_unit_test(test_json_escaped_len),
		cmocka_unit_test(test_bound_control_bytes),
		cmocka_unit_test(test_bound_leaves_plain_output),
		cmocka_unit_test(test_bound_small_stdout_leaves_stderr_room),
		cmocka_unit_test(test_bound_cuts_on_a_character_boundary),
		cmocka_unit_test(test_bound_repairs_invalid_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
