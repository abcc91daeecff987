/* The command line of `sandcell`: commands, options in any order, values
 * with and without "=", stdin, and the language chosen from a file name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/args.h"

#define PARSE(o, ...)                                                              \
	({                                                                         \
		char *argv_[] = { "sandcell", __VA_ARGS__, NULL };                 \
		char err_[256] = "";                                               \
		int rc_ = cli_parse((int)(sizeof(argv_) / sizeof(argv_[0])) - 1,   \
				    argv_, (o), err_, sizeof(err_));               \
		if (rc_ == 0)                                                      \
			assert_string_equal(err_, "");                             \
		rc_;                                                               \
	})

static void run_with_everything(void **state)
{
	struct cli_options o;

	assert_int_equal(PARSE(&o, "run", "--language", "nodejs", "--network", "--config",
			       "/x.conf", "prog.py"), 0);
	assert_int_equal(o.command, CLI_RUN);
	assert_string_equal(o.language, "nodejs");
	assert_true(o.network);
	assert_string_equal(o.config, "/x.conf");
	assert_string_equal(o.file, "prog.py");
	/* the explicit language wins over the extension */
	assert_string_equal(cli_language(&o), "nodejs");
}

static void options_after_the_file_and_with_equals(void **state)
{
	struct cli_options o;

	assert_int_equal(PARSE(&o, "run", "a.js", "--config=/etc/x", "-n"), 0);
	assert_string_equal(o.file, "a.js");
	assert_string_equal(o.config, "/etc/x");
	assert_true(o.network);
	assert_null(o.language);
	assert_string_equal(cli_language(&o), "nodejs");
	assert_int_equal(PARSE(&o, "run", "-l", "python3", "-c", "/c"), 0);
	assert_string_equal(o.language, "python3");
	assert_string_equal(o.config, "/c");
	assert_null(o.file);
}

static void stdin_and_defaults(void **state)
{
	struct cli_options o;

	assert_int_equal(PARSE(&o, "run"), 0);
	assert_null(o.file);
	assert_false(o.network);
	assert_string_equal(cli_language(&o), "python3");
	assert_int_equal(PARSE(&o, "run", "-"), 0);
	assert_string_equal(o.file, "-");
	assert_string_equal(cli_language(&o), "python3");
	/* after "--" a name starting with '-' is a file */
	assert_int_equal(PARSE(&o, "run", "--", "-odd.cjs"), 0);
	assert_string_equal(o.file, "-odd.cjs");
	assert_string_equal(cli_language(&o), "nodejs");
	/* no extension, or another one: python3 */
	assert_int_equal(PARSE(&o, "run", "script"), 0);
	assert_string_equal(cli_language(&o), "python3");
	assert_int_equal(PARSE(&o, "run", ".js"), 0);
	assert_string_equal(cli_language(&o), "python3");
}

static void other_commands(void **state)
{
	struct cli_options o;

	assert_int_equal(PARSE(&o, "check"), 0);
	assert_int_equal(o.command, CLI_CHECK);
	assert_int_equal(PARSE(&o, "check", "--config", "/c"), 0);
	assert_string_equal(o.config, "/c");
	assert_int_equal(PARSE(&o, "version"), 0);
	assert_int_equal(o.command, CLI_VERSION);
	assert_int_equal(PARSE(&o, "--version"), 0);
	assert_int_equal(o.command, CLI_VERSION);
	assert_int_equal(PARSE(&o, "--help"), 0);
	assert_int_equal(o.command, CLI_HELP);
}

static void expect_usage_error(int argc, char **argv, const char *message)
{
	struct cli_options o;
	char err[256] = "";

	assert_int_equal(cli_parse(argc, argv, &o, err, sizeof(err)), -1);
	assert_string_equal(err, message);
}

#define EXPECT_ERROR(message, ...)                                                 \
	do {                                                                       \
		char *argv_[] = { "sandcell", __VA_ARGS__, NULL };                 \
		expect_usage_error((int)(sizeof(argv_) / sizeof(argv_[0])) - 1,    \
				   argv_, message);                                \
	} while (0)

static void usage_errors(void **state)
{
	char *only[] = { "sandcell", NULL };

	expect_usage_error(1, only, "a command is needed: run, check or version");
	EXPECT_ERROR("unknown command 'exec'", "exec");
	EXPECT_ERROR("unknown option '--lang'", "run", "--lang", "x");
	EXPECT_ERROR("--language needs a language name", "run", "--language");
	EXPECT_ERROR("--language needs a language name", "run", "--language=");
	EXPECT_ERROR("-c needs a file name", "run", "-c");
	EXPECT_ERROR("only one program at a time ('b.py')", "run", "a.py", "b.py");
	EXPECT_ERROR("--network: only for `sandcell run`", "check", "--network");
	EXPECT_ERROR("unexpected argument 'x'", "check", "x");
	EXPECT_ERROR("--config: not for `sandcell version`", "version", "--config", "/c");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(run_with_everything),
		cmocka_unit_test(options_after_the_file_and_with_equals),
		cmocka_unit_test(stdin_and_defaults),
		cmocka_unit_test(other_commands),
		cmocka_unit_test(usage_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
