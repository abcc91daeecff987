/* Routing: one table row per endpoint of API.md.
 *
 * The order of checks for a request is fixed: path known? -> key (for every
 * path under /v1/sandbox/, known or not) -> method -> the handler. The run
 * handler then checks the declared body size (413 before reading anything
 * into memory; unwanted bodies are read and dropped, never stored), admits the request (503), reads the body (bounded), parses
 * it (400), checks language and network, waits for a worker slot and runs.
 *
 * Every request ends in exactly one log line, which carries sizes, times
 * and outcomes but never code, output or the key.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fcgi/admission.h"
#include "fcgi/dependencies.h"
#include "fcgi/log.h"
#include "fcgi/metrics.h"
#include "fcgi/reply.h"
#include "fcgi/reply_bound.h"
#include "fcgi/request.h"
#include "fcgi/router.h"
#include "jail/jail.h"

#define SANDBOX_PREFIX "/v1/sandbox/"
#define READ_CHUNK (64 * 1024)
/* At most this much of a body we do not want (too large, unauthorised,
 * refused) is read and thrown away before answering. */
#define MAX_DISCARD (64ULL * 1024 * 1024)

static const struct sandcell_config *config;

struct exchange {
	FCGX_Request *fcgi;
	const char *method;
	char path[512];
	struct reply reply;
	/* for the log line */
	char id[65];
	const char *language;
	size_t body_bytes;
	long long out_bytes, err_bytes, exit_code; /* -2: not applicable */
	double run_ms;
	const char *outcome;
	const char *reason;
	bool no_answer;     /* the client left: nothing is sent */
};

void router_init(const struct sandcell_config *cfg)
{
	config = cfg;
}

bool router_key_matches(const char *given, const char *expected)
{
	size_t gl, el = strlen(expected);
	volatile unsigned char diff;

	if (!given)
		return false;
	gl = strlen(given);
	diff = gl != el;
	/* always el steps whatever the presented key, no early exit */
	for (size_t i = 0; i < el; i++)
		diff |= (unsigned char)expected[i] ^ (unsigned char)(i < gl ? given[i] : 0);
	return diff == 0;
}

static const char *param(struct exchange *x, const char *name)
{
	return FCGX_GetParam(name, x->fcgi->envp);
}

/* Sets an error answer and the log's outcome and reason at once. */
static void fail(struct exchange *x, int status, const char *outcome, const char *message)
{
	reply_error(&x->reply, status, -status, message);
	x->outcome = outcome;
	x->reason = message;
}

/* Nobody reads the answer (nginx closed the connection): none is made, the
 * log line says so. */
static void client_gone(struct exchange *x, const char *reason)
{
	x->reply.status = 499; /* for the log: nginx's "client closed request" */
	x->outcome = "client_gone";
	x->reason = reason;
	x->no_answer = true;
}

/* ---- the body ---------------------------------------------------------- */

enum body_status { BODY_OK, BODY_TOO_LARGE, BODY_BAD_LENGTH, BODY_SHORT, BODY_NO_MEMORY };

/* CONTENT_LENGTH: -1 if absent or empty, -2 if malformed, else the value. */
static long long declared_length(const char *s)
{
	long long v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s) || v > (1LL << 50))
			return -2;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static void discard_input(FCGX_Stream *in)
{
	char buf[READ_CHUNK];
	unsigned long long total = 0;
	int n;

	while (total < MAX_DISCARD && (n = FCGX_GetStr(buf, sizeof(buf), in)) > 0)
		total += (unsigned)n;
}

/* Reads up to max bytes of input; *len is what came, and more is set if
 * there was input beyond max. */
static enum body_status read_bounded(FCGX_Stream *in, size_t want, size_t max,
				     char **out, size_t *len, bool *more)
{
	size_t cap = want < max ? want : max, got = 0;
	char *buf = malloc(cap + 1);

	*more = false;
	if (!buf)
		return BODY_NO_MEMORY;
	while (got < cap) {
		size_t chunk = cap - got < READ_CHUNK ? cap - got : READ_CHUNK;
		int n = FCGX_GetStr(buf + got, (int)chunk, in);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == max && want > max) {
		char probe;

		*more = FCGX_GetStr(&probe, 1, in) == 1;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return BODY_OK;
}

static enum body_status read_body(struct exchange *x, char **body, size_t *len)
{
	long long declared = declared_length(param(x, "CONTENT_LENGTH"));
	size_t max = (size_t)config->max_body_size;
	enum body_status st;
	bool more;

	*body = NULL;
	if (declared == -2)
		return BODY_BAD_LENGTH;
	/* without a declared length, read to the end, but never past max */
	st = read_bounded(x->fcgi->in, declared >= 0 ? (size_t)declared : max + 1, max,
			  body, len, &more);
	if (st != BODY_OK)
		return st;
	if (more)
		return BODY_TOO_LARGE;
	if (declared >= 0 && *len < (size_t)declared)
		return BODY_SHORT;
	return BODY_OK;
}

/* ---- handlers ---------------------------------------------------------- */

static void handle_health(struct exchange *x)
{
	reply_health(&x->reply);
}

static const char *outcome_of(const struct run_result *res, size_t error_len)
{
	static const struct { unsigned bit; const char *name; } hits[] = {
		{ JAIL_HIT_TIMEOUT, "timeout" },
		{ JAIL_HIT_SECCOMP, "seccomp" },
		{ JAIL_HIT_MEMORY, "memory_limit" },
		{ JAIL_HIT_OUTPUT, "output_limit" },
		{ JAIL_HIT_PIDS, "pids_limit" },
		{ JAIL_HIT_FSIZE, "file_size_limit" },
	};

	for (size_t i = 0; i < sizeof(hits) / sizeof(hits[0]); i++)
		if (res->hits & hits[i].bit)
			return hits[i].name;
	return error_len ? "error" : "ok";
}

static void run_admitted(struct exchange *x, const struct run_request *rq,
			 const struct language *lang)
{
	struct run_result res = { 0 };
	char err[512] = "";
	bool preload = config->enable_preload && rq->preload;
	char *error_text;
	size_t error_len = 0;
	int rc;

	switch (admission_start(x->fcgi->ipcFd)) {
	case ADMISSION_STARTED:
		break;
	case ADMISSION_TIMED_OUT:
		fail(x, 503, "queue_timeout", "Too many requests");
		return;
	case ADMISSION_CLIENT_GONE:
		client_gone(x, "the client left while the run was queued");
		return;
	}
	rc = jail_run(lang, rq->enable_network, x->id, preload ? rq->preload : NULL,
		      preload ? rq->preload_len : 0, rq->code, rq->code_len, x->fcgi->ipcFd,
		      &res, err, sizeof(err));
	admission_finish();
	if (rc != 0) {
		/* err is the executor's text for the operator; copy it before err dies */
		reply_error(&x->reply, 500, -500, err[0] ? err : "could not set up a sandbox");
		x->outcome = "host_fault";
		x->reason = "sandbox setup failed";
		log_event(LOG_LEVEL_ERROR, "sandbox setup failed", "id", x->id, "error", err, NULL);
		return;
	}
	/* before the error text and the metrics: a cut is an output limit hit */
	if (reply_bound_output(&res, config->output_limit) < 0) {
		fail(x, 500, "host_fault", "out of memory");
		run_result_free(&res);
		return;
	}
	metrics_observe_run(lang, res.duration_ms, res.hits);
	if (res.client_gone) {
		client_gone(x, "the client left during the run: it was killed");
		x->exit_code = res.exit_code;
		x->run_ms = res.duration_ms;
		run_result_free(&res);
		return;
	}
	error_text = run_result_error_text(&res, &error_len);
	if (!error_text) {
		fail(x, 500, "host_fault", "out of memory");
	} else {
		reply_run_result(&x->reply, &res, error_text, error_len);
		x->outcome = outcome_of(&res, error_len);
	}
	x->out_bytes = (long long)res.out_len;
	x->err_bytes = (long long)res.err_len;
	x->exit_code = res.exit_code;
	x->run_ms = res.duration_ms;
	free(error_text);
	run_result_free(&res);
}

static void run_parsed(struct exchange *x, const struct run_request *rq)
{
	const struct language *lang = NULL;

	/* a name with an embedded NUL would otherwise match its prefix */
	if (strlen(rq->language) == rq->language_len)
		lang = language_find(rq->language);
	if (!lang) {
		fail(x, 400, "unsupported_language", "unsupported language");
		return;
	}
	x->language = language_name(lang);
	if (rq->enable_network && !config->enable_network) {
		/* DifySandbox answers this with HTTP 200 and code -400 */
		reply_error(&x->reply, 200, -400,
			    "network is disabled, please enable it in the configuration");
		x->outcome = "network_disabled";
		return;
	}
	run_admitted(x, rq, lang);
}

static void handle_run(struct exchange *x)
{
	struct run_request rq;
	const char *message;
	char *body;
	size_t len = 0;
	long long declared = declared_length(param(x, "CONTENT_LENGTH"));

	if (declared > (long long)config->max_body_size) {
		fail(x, 413, "too_large", "request body too large");
		return;
	}
	if (!admission_enter()) {
		fail(x, 503, "busy", "Too many requests");
		return;
	}
	enum body_status got = read_body(x, &body, &len);

	x->body_bytes = len;
	switch (got) {
	case BODY_OK:
		break;
	case BODY_TOO_LARGE:
		fail(x, 413, "too_large", "request body too large");
		goto out;
	case BODY_BAD_LENGTH:
		fail(x, 400, "bad_request", "invalid Content-Length");
		goto out;
	case BODY_SHORT:
		fail(x, 400, "bad_request", "request body shorter than its Content-Length");
		goto out;
	case BODY_NO_MEMORY:
		fail(x, 500, "host_fault", "out of memory");
		goto out;
	}
	if (run_request_parse(body, len, &rq, &message) == 0)
		run_parsed(x, &rq);
	else
		fail(x, 400, "bad_request", message);
	run_request_free(&rq);
out:
	free(body);
	admission_leave();
}

/* The value of name in a query string, percent-decoded, into out. */
static bool query_value(const char *query, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);

	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		size_t w = 0;

		if (strncmp(p, name, nl) || p[nl] != '=')
			continue;
		for (p += nl + 1; *p && *p != '&'; p++) {
			char c = *p;

			if (c == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
				char hex[3] = { p[1], p[2], 0 };

				c = (char)strtol(hex, NULL, 16);
				p += 2;
			} else if (c == '+') {
				c = ' ';
			}
			if (w + 1 >= outlen)
				return false;
			out[w++] = c;
		}
		out[w] = '\0';
		return true;
	}
	return false;
}

/* The dependency endpoints know only python3. */
static bool wants_python(struct exchange *x)
{
	char lang[32];

	if (!query_value(param(x, "QUERY_STRING"), "language", lang, sizeof(lang)) ||
	    strcmp(lang, "python3")) {
		fail(x, 400, "unsupported_language", "unsupported language");
		return false;
	}
	x->language = "python3";
	return true;
}

static void handle_dependencies(struct exchange *x)
{
	if (wants_python(x))
		x->outcome = dependencies_list(&x->reply, false);
}

static void handle_dependencies_refresh(struct exchange *x)
{
	if (wants_python(x))
		x->outcome = dependencies_list(&x->reply, true);
}

static void handle_dependencies_update(struct exchange *x)
{
	x->outcome = dependencies_update(&x->reply);
}

/* No key: nginx decides who may scrape (the snippet allows localhost only). */
static void handle_metrics(struct exchange *x)
{
	struct metrics_gauges g = {
		.max_workers = (unsigned)config->max_workers,
		.max_requests = (unsigned)config->max_requests,
	};
	size_t len = 0;
	char *text;

	admission_snapshot(&g.in_flight, &g.queued, &g.busy);
	for (size_t i = 0; i < METRICS_MAX_LANGUAGES && language_at(i); i++) {
		g.warm[i] = executor_warm(language_at(i));
		g.zygotes[i] = executor_zygotes(language_at(i), &g.zygote_forks[i]);
	}
	text = metrics_render(&g, &len);
	if (!text) {
		fail(x, 500, "host_fault", "out of memory");
		return;
	}
	reply_text(&x->reply, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* ---- the table --------------------------------------------------------- */

struct route {
	const char *path;
	const char *method;
	const char *alt_method;   /* also accepted (HEAD for /health), or NULL */
	const char *allow;        /* the Allow header of a 405 */
	void (*handle)(struct exchange *x);
};

static const struct route routes[] = {
	{ "/health", "GET", "HEAD", "GET, HEAD", handle_health },
	{ "/metrics", "GET", "HEAD", "GET, HEAD", handle_metrics },
	{ "/v1/sandbox/run", "POST", NULL, "POST", handle_run },
	{ "/v1/sandbox/dependencies", "GET", NULL, "GET", handle_dependencies },
	{ "/v1/sandbox/dependencies/update", "POST", NULL, "POST", handle_dependencies_update },
	{ "/v1/sandbox/dependencies/refresh", "GET", NULL, "GET", handle_dependencies_refresh },
};

static const struct route *find_route(const char *path)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(routes[i].path, path))
			return &routes[i];
	return NULL;
}

static void route(struct exchange *x)
{
	const struct route *r = find_route(x->path);

	if (!strncmp(x->path, SANDBOX_PREFIX, strlen(SANDBOX_PREFIX)) &&
	    !router_key_matches(param(x, "HTTP_X_API_KEY"), config->api_key)) {
		reply_empty(&x->reply, 401);
		x->outcome = "unauthorized";
		return;
	}
	if (!r) {
		reply_empty(&x->reply, 404);
		x->outcome = "not_found";
		return;
	}
	if (strcmp(x->method, r->method) && (!r->alt_method || strcmp(x->method, r->alt_method))) {
		reply_method_not_allowed(&x->reply, r->allow);
		x->outcome = "method_not_allowed";
		return;
	}
	x->outcome = "ok";
	r->handle(x);
}

/* DOCUMENT_URI (nginx), else REQUEST_URI without its query string. */
static void request_path(struct exchange *x)
{
	const char *p = param(x, "DOCUMENT_URI");
	size_t n;

	if (!p || !*p) {
		p = param(x, "REQUEST_URI");
		if (!p)
			p = "";
	}
	n = strcspn(p, "?");
	if (n >= sizeof(x->path))
		n = sizeof(x->path) - 1; /* too long for any route: stays unknown */
	memcpy(x->path, p, n);
	x->path[n] = '\0';
}

static double ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

static void log_request(struct exchange *x, double ms, bool sent)
{
	struct log_line l;
	char trace[33];
	enum log_level level = LOG_LEVEL_INFO;

	if (x->reply.status == 503)
		level = LOG_LEVEL_WARN;   /* overload, not a fault */
	else if (x->reply.status >= 500)
		level = LOG_LEVEL_ERROR;
	log_begin(&l, level, "request");
	log_str(&l, "id", x->id);
	log_str(&l, "method", x->method);
	log_str(&l, "path", x->path);
	log_int(&l, "status", x->reply.status);
	if (x->reply.code)
		log_int(&l, "code", x->reply.code);
	log_str(&l, "language", x->language);
	log_int(&l, "body_bytes", (long long)x->body_bytes);
	if (x->exit_code != -2) {
		log_int(&l, "stdout_bytes", x->out_bytes);
		log_int(&l, "stderr_bytes", x->err_bytes);
		log_int(&l, "exit_code", x->exit_code);
		log_ms(&l, "run_ms", x->run_ms);
	}
	log_ms(&l, "duration_ms", ms);
	log_str(&l, "outcome", x->outcome);
	log_str(&l, "reason", x->reason);
	if (!sent)
		log_str(&l, "send", "failed");
	if (log_trace_id(param(x, "HTTP_TRACEPARENT"), trace))
		log_str(&l, "trace_id", trace);
	log_end(&l);
}

void router_handle(FCGX_Request *req)
{
	struct exchange x = { .fcgi = req, .exit_code = -2, .outcome = "ok" };
	struct timespec start;
	bool sent;

	clock_gettime(CLOCK_MONOTONIC, &start);
	log_request_id(FCGX_GetParam("REQUEST_ID", req->envp), x.id);
	x.method = param(&x, "REQUEST_METHOD");
	if (!x.method)
		x.method = "";
	request_path(&x);
	route(&x);
	metrics_count_request(x.outcome);
	/* whatever the answer, take in the rest of the body first: nginx still
	 * writing it to a closed connection would turn our answer into a 502 */
	discard_input(req->in);
	sent = x.no_answer || reply_send(&x.reply, req->out) == 0;
	log_request(&x, ms_since(&start), sent);
	reply_free(&x.reply);
}
