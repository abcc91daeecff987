/* The "error" text of a run, exactly as API.md describes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jail/jail.h"

static char *text_of(int exit_code, unsigned hits, const char *stderr_text, size_t *len)
{
	struct run_result res = { .exit_code = exit_code, .hits = hits,
				  .err = (char *)stderr_text, .err_len = stderr_text ? strlen(stderr_text) : 0 };
	char *text = run_result_error_text(&res, len);
	assert_non_null(text);
	return text;
}

static void success_is_empty_even_with_stderr(void **state)
{
	size_t len = 99;
	char *text = text_of(0, 0, "a warning\n", &len);
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);
}

static void failure_has_code_then_stderr(void **state)
{
	size_t len;
	char *text = text_of(255, 0, "Traceback\nValueError: x\n", &len);
	assert_string_equal(text, "process exited with code 255\nTraceback\nValueError: x\n");
	assert_int_equal(len, strlen(text));
	free(text);
}

static void killed_run_has_marker(void **state)
{
	size_t len;
	char *text = text_of(-1, JAIL_HIT_TIMEOUT, NULL, &len);
	assert_string_equal(text, "process exited with code -1\nerror: timeout\n");
	free(text);
}

static void hit_with_exit_zero_is_still_an_error(void **state)
{
	size_t len;
	char *text = text_of(0, JAIL_HIT_OUTPUT, "", &len);
	assert_string_equal(text, "process exited with code 0\nerror: output limit exceeded\n");
	free(text);
}

static void markers_in_fixed_order(void **state)
{
	size_t len;
	char *text = text_of(-1, JAIL_HIT_FSIZE | JAIL_HIT_PIDS | JAIL_HIT_MEMORY | JAIL_HIT_SECCOMP |
				     JAIL_HIT_TIMEOUT | JAIL_HIT_OUTPUT, "e", &len);
	assert_string_equal(text, "process exited with code -1\n"
				  "error: timeout\n"
				  "error: operation not permitted\n"
				  "error: memory limit exceeded\n"
				  "error: output limit exceeded\n"
				  "error: process limit exceeded\n"
				  "error: file size limit exceeded\n"
				  "e");
	free(text);
}

static void stderr_with_nul_keeps_its_length(void **state)
{
	struct run_result res = { .exit_code = 1, .err = "a\0b", .err_len = 3 };
	size_t len;
	char *text = run_result_error_text(&res, &len);
	assert_non_null(text);
	assert_int_equal(len, strlen("process exited with code 1\n") + 3);
	assert_memory_equal(text + len - 3, "a\0b", 3);
	free(text);
}

static void languages_are_known_by_name(void **state)
{
	assert_non_null(language_find("python3"));
	assert_non_null(language_find("nodejs"));
	assert_string_equal(language_name(language_find("nodejs")), "nodejs");
	assert_null(language_find("python"));
	assert_null(language_find(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(success_is_empty_even_with_stderr),
		cmocka_unit_test(failure_has_code_then_stderr),
		cmocka_unit_test(killed_run_has_marker),
		cmocka_unit_test(hit_with_exit_zero_is_still_an_error),
		cmocka_unit_test(markers_in_fixed_order),
		cmocka_unit_test(stderr_with_nul_keeps_its_length),
		cmocka_unit_test(languages_are_known_by_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
