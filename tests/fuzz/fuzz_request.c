/* Fuzzes the body parser of POST /v1/sandbox/run: run_request_parse()
 * (fcgi/request.c, yajl's callback parser with a depth limit).
 *
 * Input: the body as it comes, any bytes. Checked: a result of 0 or -1 and
 * nothing else; a failure always has a message, and the message never
 * quotes the input (it is one of the parser's fixed texts, so it never holds
 * a byte outside printable ASCII); a success has language and code, each
 * NUL-terminated at its length and valid UTF-8, and a non-empty code.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/request.h"
#include "fcgi/utf8.h"

static void check_field(const char *name, const char *s, size_t len, bool required)
{
	if (!s) {
		if (required) {
			fprintf(stderr, "fuzz_request: %s missing after a successful parse\n", name);
			abort();
		}
		return;
	}
	if (s[len] != '\0' || !utf8_is_valid(s, len)) {
		fprintf(stderr, "fuzz_request: %s not NUL-terminated or not UTF-8\n", name);
		abort();
	}
}

static void check_message(const char *message)
{
	if (!message || !*message) {
		fprintf(stderr, "fuzz_request: a failure without a message\n");
		abort();
	}
	for (const char *p = message; *p; p++) {
		if (*p < ' ' || *p > '~') {
			fprintf(stderr, "fuzz_request: the message holds a byte of the input\n");
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run_request req;
	const char *message = NULL;
	int rc = run_request_parse((const char *)data, size, &req, &message);

	if (rc == 0) {
		check_field("language", req.language, req.language_len, true);
		check_field("code", req.code, req.code_len, true);
		check_field("preload", req.preload, req.preload_len, false);
		if (req.code_len == 0) {
			fprintf(stderr, "fuzz_request: an empty code accepted\n");
			abort();
		}
	} else if (rc == -1) {
		check_message(message);
	} else {
		fprintf(stderr, "fuzz_request: run_request_parse returned %d\n", rc);
		abort();
	}
	run_request_free(&req);
	return 0;
}
