/* Fuzzes one FastCGI request end to end: router_handle() (fcgi/router.c)
 * with the parameters nginx sends (REQUEST_METHOD, DOCUMENT_URI,
 * REQUEST_URI, QUERY_STRING, CONTENT_LENGTH, HTTP_X_API_KEY, REQUEST_ID,
 * HTTP_TRACEPARENT, ...) and the request body, through to the bytes of the
 * answer: routing, the key check, the bounded body read, the /run parser,
 * the reply builders and the log line.
 *
 * No socket: FCGX_Request and FCGX_Stream are public structures of libfcgi,
 * so the request's envp is a plain array and its streams are memory buffers
 * (the body handed out in record-sized pieces, the answer collected). The
 * executor is tests/fuzz/jail_stub.c: a run echoes its code as stdout.
 *
 * Input: "NAME=value" lines up to the first empty line, then the body.
 * Pseudo-parameters (router.c ignores parameters it does not know):
 * FUZZ_RUN="fail exit_code signal hits" scripts the run; FUZZ_OFFLINE (any
 * value) serves the request with network and preload off. For the
 * dependency endpoints the body doubles as the scan's listing
 * ("name<TAB>version").
 *
 * Checked on every answer: a CGI head ("Status: NNN ...\r\n ... \r\n\r\n")
 * whose Content-Length is the body's; a JSON body that yajl parses and that
 * is valid UTF-8; never the out-of-memory fallback (memory does not run out
 * here, so it would mean the reply could not be generated); a run's answer
 * within the output bound of fcgi/reply_bound.c; no run (code or scan)
 * without the right HTTP_X_API_KEY; an empty 401.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcgiapp.h>
#include <yajl/yajl_tree.h>

#include "fcgi/admission.h"
#include "fcgi/config.h"
#include "fcgi/dependencies.h"
#include "fcgi/log.h"
#include "fcgi/router.h"
#include "fcgi/utf8.h"
#include "tests/fuzz/jail_stub.h"

#define MAX_PARAMS 64
#define RECORD 1000      /* body bytes per fill of the input stream */
#define OUT_BUF 512      /* the output stream's buffer, flushed into the sink */
#define OUTPUT_LIMIT 64  /* small, so that the output bound cuts often */
#define STR(x) STR_(x)
#define STR_(x) #x

/* A small body limit and output limit: every branch of the run handler is
 * reachable with inputs of a few kilobytes. */
#define CONFIG_TEXT(network) \
	"api_key = fuzz-key\n" \
	"socket = /nonexistent/sandcell.sock\n" \
	"max_body_size = 2k\n" \
	"output_limit = " STR(OUTPUT_LIMIT) "\n" \
	"enable_network = " network "\n" \
	"enable_preload = " network "\n"

static struct sandcell_config online, offline;

struct body_source {
	unsigned char *pos, *end;
};

struct sink {
	char *buf;
	size_t len, cap;
	unsigned char chunk[OUT_BUF];
};

/* The next record of the body; at the end the stream reports EOF. */
static void fill_input(FCGX_Stream *in)
{
	struct body_source *src = in->data;
	size_t n = (size_t)(src->end - src->pos);

	if (n == 0) {
		in->isClosed = 1;
		return;
	}
	if (n > RECORD)
		n = RECORD;
	in->rdNext = in->stopUnget = src->pos;
	in->stop = src->pos + n;
	src->pos += n;
}

static void sink_append(struct sink *s, const void *p, size_t n)
{
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n)
			cap *= 2;
		s->buf = realloc(s->buf, cap);
		if (!s->buf)
			abort();
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void empty_output(FCGX_Stream *out, int do_close)
{
	struct sink *s = out->data;

	sink_append(s, s->chunk, (size_t)(out->wrNext - s->chunk));
	out->wrNext = s->chunk;
	out->stop = s->chunk + sizeof(s->chunk);
	if (do_close)
		out->isClosed = 1;
}

/* Splits the input: parameter lines into envp (malloc'd strings), the rest
 * into the body. Returns the number of parameters. */
static size_t split_input(const uint8_t *data, size_t size, char **envp, const uint8_t **body,
			  size_t *body_len)
{
	size_t pos = 0, n = 0;

	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;

		if (len == 0) {
			pos++;
			break;
		}
		/* libfcgi keeps "NAME=value" as C strings: a NUL ends the value */
		if (n < MAX_PARAMS && memchr(data + pos, '=', len))
			envp[n++] = strndup((const char *)data + pos, len);
		pos += len + (nl ? 1 : 0);
	}
	envp[n] = NULL;
	*body = data + pos;
	*body_len = size - pos;
	return n;
}

static void script_run(char **envp, const uint8_t *body, size_t body_len)
{
	struct jail_stub_script s = { .listing = (const char *)body, .listing_len = body_len };
	const char *run = FCGX_GetParam("FUZZ_RUN", envp);
	int fail = 0;

	if (run)
		sscanf(run, "%d %d %d %u", &fail, &s.exit_code, &s.signal, &s.hits);
	s.fail = fail != 0;
	jail_stub_set(&s);
}

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_fcgi_params: %s\n", what);
	abort();
}

static const char *find(const char *s, size_t len, const char *what)
{
	size_t n = strlen(what);

	for (size_t i = 0; i + n <= len; i++)
		if (!memcmp(s + i, what, n))
			return s + i;
	return NULL;
}

static void check_json(const char *body, size_t len)
{
	char *text = strndup(body, len), err[128];
	yajl_val v;

	if (!text)
		abort();
	if (!utf8_is_valid(body, len) || strlen(text) != len)
		fail("JSON answer not UTF-8 or with a NUL");
	v = yajl_tree_parse(text, err, sizeof(err));
	if (!v) {
		fprintf(stderr, "fuzz_fcgi_params: the answer is not JSON: %s\n", err);
		abort();
	}
	yajl_tree_free(v);
	free(text);
}

/* The length of the CGI head of the answer, checked against its body. */
static size_t check_head(const struct sink *s)
{
	const char *end = find(s->buf, s->len, "\r\n\r\n"), *cl;
	unsigned long long declared;
	size_t head_len;

	if (s->len < 8 || memcmp(s->buf, "Status: ", 8) || !end)
		fail("no CGI head in the answer");
	head_len = (size_t)(end - s->buf) + 4;
	cl = find(s->buf, head_len, "Content-Length: ");
	if (!cl || sscanf(cl + 16, "%llu", &declared) != 1 || declared != s->len - head_len)
		fail("Content-Length is not the body's length");
	return head_len;
}

static void check_answer(const struct sink *s, bool key_given)
{
	size_t head_len = check_head(s), body_len = s->len - head_len;
	const char *body = s->buf + head_len;

	/* quotes in program text are escaped: these keys come from the generator only */
	if (find(body, body_len, "\"message\":\"out of memory\""))
		fail("the out-of-memory fallback was sent");
	if (!key_given && jail_stub_runs() > 0)
		fail("a run without the key");
	if (!memcmp(s->buf, "Status: 401", 11) && body_len != 0)
		fail("a 401 with a body");
	if (find(s->buf, head_len, "Content-Type: application/json"))
		check_json(body, body_len);
	/* the envelope, the exit line and every marker take about 310 bytes */
	if (!memcmp(s->buf, "Status: 200", 11) && find(body, body_len, "\"data\":{\"stdout\":") &&
	    body_len > 2 * OUTPUT_LIMIT + 512)
		fail("a run's answer beyond the output bound");
}

static void load_config(struct sandcell_config *cfg, const char *text)
{
	char err[512];

	if (config_from_text(cfg, text, strlen(text), "fuzz.conf", NULL, NULL, err,
			     sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_fcgi_params: %s\n", err);
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	load_config(&online, CONFIG_TEXT("true"));
	load_config(&offline, CONFIG_TEXT("false"));
	admission_init(2, 1, 1);
	/* every line is still built (and so fuzzed), none written: above every level */
	log_set_min_level(LOG_LEVEL_ERROR + 1);
	return 0;
}

/* in hands out body[0..len) record by record (then EOF), out fills sink. */
static void open_streams(FCGX_Stream *in, FCGX_Stream *out, struct body_source *src,
			 struct sink *sink, unsigned char *body, size_t len)
{
	src->pos = body;
	src->end = body + len;
	*in = (FCGX_Stream){ .isReader = 1, .fillBuffProc = fill_input, .data = src,
			     .rdNext = body, .stop = body, .stopUnget = body };
	*out = (FCGX_Stream){ .emptyBuffProc = empty_output, .data = sink,
			      .wrNext = sink->chunk, .stop = sink->chunk + sizeof(sink->chunk) };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *envp[MAX_PARAMS + 1];
	const uint8_t *body;
	size_t body_len, n = split_input(data, size, envp, &body, &body_len);
	/* copies of exactly their size: a read past the end is an ASan report */
	unsigned char *body_copy = malloc(body_len ? body_len : 1);
	struct sink *sink = calloc(1, sizeof(*sink));
	const char *key = FCGX_GetParam("HTTP_X_API_KEY", envp);
	struct body_source src;
	FCGX_Stream in, out;
	FCGX_Request req = { .in = &in, .out = &out, .envp = envp };

	if (!body_copy || !sink)
		abort();
	memcpy(body_copy, body, body_len);
	open_streams(&in, &out, &src, sink, body_copy, body_len);
	script_run(envp, body_copy, body_len);
	router_init(FCGX_GetParam("FUZZ_OFFLINE", envp) ? &offline : &online);

	router_handle(&req);
	empty_output(&out, 1);
	check_answer(sink, key && !strcmp(key, online.api_key));

	dependencies_clear(); /* the scan's cache would carry over to the next input */
	free(sink->buf);
	free(sink);
	free(body_copy);
	for (size_t i = 0; i < n; i++)
		free(envp[i]);
	return 0;
}
