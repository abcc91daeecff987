/* Responses. Every JSON answer is the envelope
 *   {"code":N,"message":S,"data":...}
 * generated with yajl_gen with UTF-8 validation on; text that comes from a
 * program or from the host (stdout, stderr, error messages) is repaired to
 * valid UTF-8 first (fcgi/utf8.c), so generation fails only if memory does.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "fcgi/reply.h"
#include "fcgi/utf8.h"

static const char fallback_body[] =
	"{\"code\":-500,\"message\":\"out of memory\",\"data\":null}";

static void set_fallback(struct reply *r)
{
	reply_free(r);
	r->status = 500;
	r->code = -500;
	r->json = true;
	r->body = (char *)fallback_body;
	r->body_len = sizeof(fallback_body) - 1;
	r->body_static = true;
}

void reply_free(struct reply *r)
{
	if (!r->body_static)
		free(r->body);
	memset(r, 0, sizeof(*r));
}

int reply_empty(struct reply *r, int status)
{
	reply_free(r);
	r->status = status;
	return 0;
}

int reply_text(struct reply *r, int status, const char *content_type, char *body, size_t len)
{
	reply_free(r);
	r->status = status;
	r->content_type = content_type;
	r->body = body;
	r->body_len = len;
	return 0;
}

int reply_health(struct reply *r)
{
	static const char ok[] = "\"ok\"";

	reply_free(r);
	r->status = 200;
	r->json = true;
	r->body = (char *)ok;
	r->body_len = sizeof(ok) - 1;
	r->body_static = true;
	return 0;
}

/* ---- generation -------------------------------------------------------- */

static yajl_gen gen_new(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	if (g)
		yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	return g;
}

static yajl_gen_status gen_cstr(yajl_gen g, const char *s)
{
	return yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

/* Any bytes as a JSON string: repaired to UTF-8 if they are not. */
static yajl_gen_status gen_text(yajl_gen g, const char *s, size_t len)
{
	yajl_gen_status st;
	size_t n;
	char *fixed;

	if (utf8_is_valid(s, len))
		return yajl_gen_string(g, (const unsigned char *)s, len);
	fixed = utf8_sanitize(s, len, &n);
	if (!fixed)
		return yajl_gen_generation_complete; /* any error status will do */
	st = yajl_gen_string(g, (const unsigned char *)fixed, n);
	free(fixed);
	return st;
}

/* Opens the envelope up to "data": (the caller writes the data value). */
static yajl_gen_status gen_envelope_head(yajl_gen g, int code, const char *message)
{
	yajl_gen_status st = yajl_gen_map_open(g);

	if (st == yajl_gen_status_ok)
		st = gen_cstr(g, "code");
	if (st == yajl_gen_status_ok)
		st = yajl_gen_integer(g, code);
	if (st == yajl_gen_status_ok)
		st = gen_cstr(g, "message");
	if (st == yajl_gen_status_ok)
		st = gen_text(g, message, strlen(message));
	if (st == yajl_gen_status_ok)
		st = gen_cstr(g, "data");
	return st;
}

/* Closes the envelope, moves the bytes into r, frees g. */
static int gen_finish(struct reply *r, yajl_gen g, yajl_gen_status st, int status, int code)
{
	const unsigned char *buf;
	size_t len;

	reply_free(r);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_map_close(g);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_get_buf(g, &buf, &len);
	if (st == yajl_gen_status_ok) {
		r->body = malloc(len ? len : 1);
		if (r->body)
			memcpy(r->body, buf, len);
	}
	yajl_gen_free(g);
	if (st != yajl_gen_status_ok || !r->body) {
		set_fallback(r);
		return -1;
	}
	r->body_len = len;
	r->status = status;
	r->code = code;
	r->json = true;
	return 0;
}

int reply_error(struct reply *r, int status, int code, const char *message)
{
	yajl_gen g = gen_new();
	yajl_gen_status st;

	if (!g) {
		set_fallback(r);
		return -1;
	}
	st = gen_envelope_head(g, code, message);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_null(g);
	return gen_finish(r, g, st, status, code);
}

/* Our choice for a known path with the wrong method: 405 (API.md allows 404
 * too) with an envelope and an Allow header, so a client sees what it got
 * wrong instead of a missing endpoint. */
int reply_method_not_allowed(struct reply *r, const char *allow)
{
	int rc = reply_error(r, 405, -405, "method not allowed");

	if (rc == 0)
		r->allow = allow;
	return rc;
}

/* A success envelope with its data object opened; NULL (fallback set) if
 * out of memory. */
static yajl_gen gen_success_data(struct reply *r, yajl_gen_status *st)
{
	yajl_gen g = gen_new();

	if (!g) {
		set_fallback(r);
		return NULL;
	}
	*st = gen_envelope_head(g, 0, "success");
	if (*st == yajl_gen_status_ok)
		*st = yajl_gen_map_open(g);
	return g;
}

static yajl_gen_status gen_text_field(yajl_gen g, const char *key, const char *text, size_t len)
{
	yajl_gen_status st = gen_cstr(g, key);

	if (st == yajl_gen_status_ok)
		st = gen_text(g, text ? text : "", len);
	return st;
}

int reply_success_empty(struct reply *r)
{
	yajl_gen_status st;
	yajl_gen g = gen_success_data(r, &st);

	if (!g)
		return -1;
	if (st == yajl_gen_status_ok)
		st = yajl_gen_map_close(g);
	return gen_finish(r, g, st, 200, 0);
}

int reply_run_result(struct reply *r, const struct run_result *res,
		     const char *error_text, size_t error_len)
{
	yajl_gen_status st;
	yajl_gen g = gen_success_data(r, &st);

	if (!g)
		return -1;
	if (st == yajl_gen_status_ok)
		st = gen_text_field(g, "stdout", res->out, res->out_len);
	if (st == yajl_gen_status_ok)
		st = gen_text_field(g, "stderr", res->err, res->err_len);
	if (st == yajl_gen_status_ok)
		st = gen_text_field(g, "error", error_text, error_len);
	if (st == yajl_gen_status_ok)
		st = gen_cstr(g, "exit_code");
	if (st == yajl_gen_status_ok)
		st = yajl_gen_integer(g, res->exit_code);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_map_close(g);
	return gen_finish(r, g, st, 200, 0);
}

int reply_dependencies(struct reply *r, const struct dependency *deps, size_t n)
{
	yajl_gen_status st;
	yajl_gen g = gen_success_data(r, &st);

	if (!g)
		return -1;
	if (st == yajl_gen_status_ok)
		st = gen_cstr(g, "dependencies");
	if (st == yajl_gen_status_ok)
		st = yajl_gen_array_open(g);
	for (size_t i = 0; i < n && st == yajl_gen_status_ok; i++) {
		st = yajl_gen_map_open(g);
		if (st == yajl_gen_status_ok)
			st = gen_text_field(g, "name", deps[i].name, strlen(deps[i].name));
		if (st == yajl_gen_status_ok)
			st = gen_text_field(g, "version", deps[i].version, strlen(deps[i].version));
		if (st == yajl_gen_status_ok)
			st = yajl_gen_map_close(g);
	}
	if (st == yajl_gen_status_ok)
		st = yajl_gen_array_close(g);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_map_close(g);
	return gen_finish(r, g, st, 200, 0);
}

/* ---- output ------------------------------------------------------------ */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

size_t reply_format_head(const struct reply *r, char *buf, size_t buflen)
{
	int n = snprintf(buf, buflen, "Status: %d %s\r\n%s%s%s%s%s%s%sContent-Length: %llu\r\n\r\n",
			 r->status, reason_phrase(r->status),
			 r->json ? "Content-Type: application/json\r\n" : "",
			 !r->json && r->content_type ? "Content-Type: " : "",
			 !r->json && r->content_type ? r->content_type : "",
			 !r->json && r->content_type ? "\r\n" : "",
			 r->allow ? "Allow: " : "", r->allow ? r->allow : "",
			 r->allow ? "\r\n" : "", (unsigned long long)r->body_len);

	if (n < 0 || (size_t)n >= buflen)
		return 0;
	return (size_t)n;
}

/* libfcgi's FCGX_FPrintF mishandles %zu, so everything is formatted here
 * and written with FCGX_PutStr; large bodies go in chunks (the length is an
 * int there). */
int reply_send(const struct reply *r, FCGX_Stream *out)
{
	char head[256];
	size_t n = reply_format_head(r, head, sizeof(head)), off = 0;

	if (!n || FCGX_PutStr(head, (int)n, out) != (int)n)
		return -1;
	while (off < r->body_len) {
		size_t chunk = r->body_len - off;

		if (chunk > (1u << 20))
			chunk = 1u << 20;
		if (FCGX_PutStr(r->body + off, (int)chunk, out) != (int)chunk)
			return -1;
		off += chunk;
	}
	return 0;
}
