/* Fuzzes the configuration parser: config_from_text() (fcgi/config.c) on a
 * whole file, with the value checks of every key type (sizes, modes,
 * system call lists, egress_rule lines, listen and allow_clients, module
 * lists), then config_describe() of what was accepted.
 *
 * Input: the file's text, any bytes. The environment gives API_KEY only, so
 * that an api_key_file line is never read: the parser must not open files
 * the fuzzer names. Checked: 0 or -1; a failure has a message (and leaves
 * the configuration freed: ASan's leak check sees it if not).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/config.h"

static FILE *devnull;

static const char *fuzz_env(const char *name, void *ctx)
{
	(void)ctx;
	return strcmp(name, "API_KEY") ? NULL : "fuzz-key";
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
	char err[512] = "";
	int rc = config_from_text(&cfg, (const char *)data, size, "fuzz.conf", fuzz_env, NULL, err,
				  sizeof(err));

	if (rc == 0) {
		config_describe(&cfg, devnull);
		config_free(&cfg);
	} else if (rc != -1 || !err[0]) {
		fprintf(stderr, "fuzz_config: config_from_text returned %d, message \"%s\"\n", rc, err);
		abort();
	}
	return 0;
}
