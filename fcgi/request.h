/* The body of POST /v1/sandbox/run, parsed. */
#ifndef SANDCELL_FCGI_REQUEST_H
#define SANDCELL_FCGI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

/* Deeper JSON than this is refused (the request itself needs depth 1). */
#define REQUEST_MAX_DEPTH 32

struct run_request {
	char *language;       /* NUL-terminated copy; language_len may be shorter
			       * than the buffer if the JSON held \u0000 */
	size_t language_len;
	char *code;           /* never NULL after a successful parse */
	size_t code_len;
	char *preload;        /* NULL if absent or null */
	size_t preload_len;
	bool enable_network;  /* false if absent or null */
};

/* Parses body[0..len). Returns 0 and fills req, or -1 with *message set to
 * a short static text that never contains any of the input. req must be
 * freed with run_request_free() either way. */
int run_request_parse(const char *body, size_t len, struct run_request *req,
		      const char **message);

void run_request_free(struct run_request *req);

#endif
