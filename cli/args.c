/* sandcell's command line:
 *
 *   sandcell run [--language L] [--network] [--config FILE] [FILE|-]
 *   sandcell check [--config FILE]
 *   sandcell version
 *
 * Options may come before or after the file; "--" ends the options; a
 * lone "-" is standard input. Options take their value as the next word or
 * after "=" (--language=nodejs).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h"

const char cli_usage[] =
	"usage: sandcell run [--language python3|nodejs] [--network] [--config FILE] [FILE|-]\n"
	"       sandcell check [--config FILE]\n"
	"       sandcell version\n"
	"\n"
	"  run      run one program (from FILE, or standard input) in the same jail as\n"
	"           sandcelld, with the same configuration; print its stdout and stderr,\n"
	"           then the reasons it failed, if any; exit with its exit status\n"
	"  check    report what this host supports\n"
	"  version  print the version\n"
	"\n"
	"  -l, --language NAME  python3 or nodejs (default: from FILE's extension, else python3)\n"
	"  -n, --network        ask for network access, as a request with enable_network\n"
	"  -c, --config FILE    configuration file (default /etc/sandcell/sandcell.conf)\n";

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* "--name value", "--name=value" or "-x value"; *i moves past the value. */
static const char *option_value(int argc, char *const argv[], int *i, const char *lng,
				const char *shrt, bool *matched)
{
	const char *a = argv[*i];
	size_t n = strlen(lng);

	*matched = false;
	if (!strncmp(a, lng, n) && a[n] == '=') {
		*matched = true;
		return a + n + 1;
	}
	if (strcmp(a, lng) && strcmp(a, shrt))
		return NULL;
	*matched = true;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static enum cli_command command_named(const char *s)
{
	if (!strcmp(s, "run"))
		return CLI_RUN;
	if (!strcmp(s, "check"))
		return CLI_CHECK;
	if (!strcmp(s, "version") || !strcmp(s, "--version"))
		return CLI_VERSION;
	if (!strcmp(s, "help") || !strcmp(s, "--help") || !strcmp(s, "-h"))
		return CLI_HELP;
	return (enum cli_command)-1;
}

/* One option at argv[*i]; 1 if it was one, 0 if not, -1 on error. */
static int parse_option(int argc, char *const argv[], int *i, struct cli_options *o,
			char *err, size_t errlen)
{
	const char *a = argv[*i], *v;
	int name_len = (int)strcspn(a, "="); /* "--language=x" is named --language */
	bool matched;

	if (!strcmp(a, "--network") || !strcmp(a, "-n")) {
		if (o->command != CLI_RUN)
			return fail(err, errlen, "%s: only for `sandcell run`", a);
		o->network = true;
		return 1;
	}
	v = option_value(argc, argv, i, "--language", "-l", &matched);
	if (matched) {
		if (o->command != CLI_RUN)
			return fail(err, errlen, "%.*s: only for `sandcell run`", name_len, a);
		if (!v || !*v)
			return fail(err, errlen, "%.*s needs a language name", name_len, a);
		o->language = v;
		return 1;
	}
	v = option_value(argc, argv, i, "--config", "-c", &matched);
	if (matched) {
		if (o->command == CLI_VERSION)
			return fail(err, errlen, "%.*s: not for `sandcell version`", name_len, a);
		if (!v || !*v)
			return fail(err, errlen, "%.*s needs a file name", name_len, a);
		o->config = v;
		return 1;
	}
	return 0;
}

int cli_parse(int argc, char *const argv[], struct cli_options *o, char *err, size_t errlen)
{
	bool options_done = false;

	memset(o, 0, sizeof(*o));
	if (argc < 2)
		return fail(err, errlen, "%s", "a command is needed: run, check or version");
	o->command = command_named(argv[1]);
	if ((int)o->command < 0)
		return fail(err, errlen, "unknown command '%s'", argv[1]);
	if (o->command == CLI_HELP)
		return 0;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (!options_done && !strcmp(a, "--")) {
			options_done = true;
			continue;
		}
		if (!options_done && a[0] == '-' && a[1]) {
			int rc = parse_option(argc, argv, &i, o, err, errlen);

			if (rc < 0)
				return -1;
			if (rc == 0)
				return fail(err, errlen, "unknown option '%s'", a);
			continue;
		}
		if (o->command != CLI_RUN)
			return fail(err, errlen, "unexpected argument '%s'", a);
		if (o->file)
			return fail(err, errlen, "only one program at a time ('%s')", a);
		o->file = a;
	}
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcmp(s + n - m, suffix);
}

const char *cli_language(const struct cli_options *o)
{
	if (o->language)
		return o->language;
	if (o->file && (ends_with(o->file, ".js") || ends_with(o->file, ".cjs")))
		return "nodejs";
	return "python3";
}
