/* The command line of `sandcell`, parsed without global state (testable). */
#ifndef SANDCELL_CLI_ARGS_H
#define SANDCELL_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

enum cli_command {
	CLI_HELP,
	CLI_RUN,
	CLI_CHECK,
	CLI_VERSION,
};

struct cli_options {
	enum cli_command command;
	const char *language;  /* --language; NULL: chosen from the file name */
	bool network;          /* --network */
	const char *config;    /* --config; NULL: the default path */
	const char *file;      /* the program; NULL or "-": standard input */
};

/* Parses argv[1..argc). Returns 0, or -1 with a message in err (a usage
 * error: exit status 2). Strings point into argv. */
int cli_parse(int argc, char *const argv[], struct cli_options *o, char *err, size_t errlen);

/* The language to run: the one asked for, else by the file's extension
 * (.js, .cjs: nodejs), else python3. */
const char *cli_language(const struct cli_options *o);

/* The usage text. */
extern const char cli_usage[];

#endif
