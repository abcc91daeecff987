/* Fuzzes the configuration parser: config_from_text() (fcgi/config.c) on a
 * whole file and an environment, with the value checks of every key type
 * (sizes, modes, system call lists, egress_rule lines, listen and
 * allow_clients, module lists), then config_describe() of what was
 * accepted.
 *
 * Input: the file's text (any bytes), optionally followed by the marker
 * "\0ENV\n" and "NAME=value" lines: the environment (MAX_WORKERS,
 * ENABLE_NETWORK, ALLOWED_SYSCALLS, ...). API_KEY is always "fuzz-key", so
 * that the key is never empty and an api_key_file line is never read: the
 * parser must not open files the fuzzer names. Checked: 0 or -1; a failure
 * has a message (and leaves the configuration freed: ASan's leak check
 * sees it if not).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/config.h"

#define ENV_MARKER "\0ENV\n"
#define MAX_ENV 32

struct env {
	char *lines[MAX_ENV]; /* "NAME=value", malloc'd */
	size_t n;
};

static FILE *devnull;

static const char *fuzz_env(const char *name, void *ctx)
{
	const struct env *e = ctx;
	size_t len = strlen(name);

	if (!strcmp(name, "API_KEY"))
		return "fuzz-key";
	for (size_t i = 0; i < e->n; i++)
		if (!strncmp(e->lines[i], name, len) && e->lines[i][len] == '=')
			return e->lines[i] + len + 1;
	return NULL;
}

/* The environment part of the input into e; returns the length of the file part. */
static size_t split_env(const uint8_t *data, size_t size, struct env *e)
{
	const uint8_t *marker = memmem(data, size, ENV_MARKER, sizeof(ENV_MARKER) - 1);
	size_t pos, text_len;

	e->n = 0;
	if (!marker)
		return size;
	text_len = (size_t)(marker - data);
	pos = text_len + sizeof(ENV_MARKER) - 1;
	while (pos < size && e->n < MAX_ENV) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;

		e->lines[e->n] = strndup((const char *)data + pos, len);
		if (!e->lines[e->n])
			abort();
		e->n++;
		pos += len + 1;
	}
	return text_len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	devnull = fopen("/dev/null", "we");
	if (!devnull)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sandcell_config cfg;
	struct env env;
	char err[512] = "";
	size_t text_len = split_env(data, size, &env);
	int rc = config_from_text(&cfg, (const char *)data, text_len, "fuzz.conf", fuzz_env, &env,
				  err, sizeof(err));

	if (rc == 0) {
		config_describe(&cfg, devnull);
		config_free(&cfg);
	} else if (rc != -1 || !err[0]) {
		fprintf(stderr, "fuzz_config: config_from_text returned %d, message \"%s\"\n", rc, err);
		abort();
	}
	for (size_t i = 0; i < env.n; i++)
		free(env.lines[i]);
	return 0;
}
