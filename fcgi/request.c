/* The /run body, parsed with yajl's callback parser.
 *
 * Not yajl_tree: it truncates strings at \u0000 and recurses without limit.
 * Here every event passes through a small state machine that knows only the
 * nesting depth and which top-level key the next value belongs to. Values
 * of unknown keys are skipped whatever their type (containers included, up
 * to the depth limit). yajl's own error messages quote the input, so they
 * are never used: a failure is one of the fixed texts below.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "fcgi/request.h"
#include "fcgi/utf8.h"

enum field {
	FIELD_OTHER,
	FIELD_LANGUAGE,
	FIELD_CODE,
	FIELD_PRELOAD,
	FIELD_ENABLE_NETWORK,
};

static const char *const field_names[] = {
	[FIELD_LANGUAGE] = "language",
	[FIELD_CODE] = "code",
	[FIELD_PRELOAD] = "preload",
	[FIELD_ENABLE_NETWORK] = "enable_network",
};

struct parse_state {
	struct run_request *req;
	unsigned depth;        /* 0 outside the top object, 1 directly inside it */
	enum field field;      /* the key of the value that comes next at depth 1 */
	unsigned seen;         /* bit per known field */
	const char *error;     /* set when a callback stops the parse */
};

#define MSG_NOT_JSON "request body is not valid JSON"
#define MSG_NOT_OBJECT "request body must be a JSON object"
#define MSG_TOO_DEEP "request body is nested too deeply"

static int fail(struct parse_state *st, const char *message)
{
	st->error = message;
	return 0; /* makes yajl stop with yajl_status_client_canceled */
}

static const char *wrong_type(enum field f)
{
	switch (f) {
	case FIELD_LANGUAGE: return "language must be a string";
	case FIELD_CODE: return "code must be a string";
	case FIELD_PRELOAD: return "preload must be a string";
	case FIELD_ENABLE_NETWORK: return "enable_network must be a boolean";
	case FIELD_OTHER: break;
	}
	return MSG_NOT_JSON;
}

/* Common checks for a scalar value. Returns 1 if the value belongs to a
 * known top-level field (and marks it seen), 0 if it is to be ignored, -1
 * if the parse must stop. */
static int scalar_target(struct parse_state *st)
{
	if (st->depth == 0) {
		fail(st, MSG_NOT_OBJECT);
		return -1;
	}
	if (st->depth > 1 || st->field == FIELD_OTHER)
		return 0;
	return 1;
}

static int on_null(void *ctx)
{
	struct parse_state *st = ctx;
	int t = scalar_target(st);

	if (t <= 0)
		return t == 0;
	/* null for an optional field means "absent", as with Go's encoding/json */
	if (st->field == FIELD_LANGUAGE || st->field == FIELD_CODE)
		return fail(st, wrong_type(st->field));
	return 1;
}

static int on_boolean(void *ctx, int value)
{
	struct parse_state *st = ctx;
	int t = scalar_target(st);

	if (t <= 0)
		return t == 0;
	if (st->field != FIELD_ENABLE_NETWORK)
		return fail(st, wrong_type(st->field));
	st->req->enable_network = value != 0;
	return 1;
}

static int on_number(void *ctx, const char *text, size_t len)
{
	struct parse_state *st = ctx;
	int t = scalar_target(st);

	(void)text;
	(void)len;
	if (t <= 0)
		return t == 0;
	return fail(st, wrong_type(st->field));
}

static const char *not_utf8(enum field f)
{
	switch (f) {
	case FIELD_LANGUAGE: return "language must be valid UTF-8";
	case FIELD_CODE: return "code must be valid UTF-8";
	case FIELD_PRELOAD: return "preload must be valid UTF-8";
	default: return MSG_NOT_JSON;
	}
}

static int copy_string(char **slot, size_t *slot_len, const unsigned char *s, size_t len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return -1;
	memcpy(copy, s, len);
	copy[len] = '\0';
	free(*slot);
	*slot = copy;
	*slot_len = len;
	return 0;
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
	struct parse_state *st = ctx;
	struct run_request *req = st->req;
	int t = scalar_target(st), rc = 0;

	if (t <= 0)
		return t == 0;
	/* yajl's own check lets overlong forms, surrogates (raw or as \u escapes)
	 * and code points above U+10FFFF through */
	if (st->field != FIELD_ENABLE_NETWORK && !utf8_is_valid((const char *)s, len))
		return fail(st, not_utf8(st->field));
	switch (st->field) {
	case FIELD_LANGUAGE:
		rc = copy_string(&req->language, &req->language_len, s, len);
		break;
	case FIELD_CODE:
		rc = copy_string(&req->code, &req->code_len, s, len);
		break;
	case FIELD_PRELOAD:
		rc = copy_string(&req->preload, &req->preload_len, s, len);
		break;
	default:
		return fail(st, wrong_type(st->field));
	}
	if (rc)
		return fail(st, "out of memory");
	return 1;
}

static enum field field_of(const unsigned char *key, size_t len)
{
	for (size_t f = FIELD_LANGUAGE; f <= FIELD_ENABLE_NETWORK; f++)
		if (strlen(field_names[f]) == len && !memcmp(field_names[f], key, len))
			return (enum field)f;
	return FIELD_OTHER;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len)
{
	struct parse_state *st = ctx;

	if (st->depth != 1)
		return 1;
	st->field = field_of(key, len);
	if (st->field == FIELD_OTHER)
		return 1;
	if (st->seen & (1u << st->field))
		return fail(st, "request body has a duplicate field");
	st->seen |= 1u << st->field;
	return 1;
}

static int on_start(struct parse_state *st, bool is_map)
{
	if (st->depth == 0 && !is_map)
		return fail(st, MSG_NOT_OBJECT);
	if (st->depth == 1 && st->field != FIELD_OTHER)
		return fail(st, wrong_type(st->field));
	if (st->depth >= REQUEST_MAX_DEPTH)
		return fail(st, MSG_TOO_DEEP);
	st->depth++;
	return 1;
}

static int on_start_map(void *ctx)
{
	return on_start(ctx, true);
}

static int on_start_array(void *ctx)
{
	return on_start(ctx, false);
}

static int on_end(void *ctx)
{
	struct parse_state *st = ctx;

	st->depth--;
	/* back at depth 1 a new key comes next; until then nothing is targeted */
	st->field = FIELD_OTHER;
	return 1;
}

static const yajl_callbacks callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_number = on_number, /* raw text: no overflow errors, nothing converted */
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_map_key,
	.yajl_end_map = on_end,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end,
};

static bool is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

static const char *check_required(const struct run_request *req, unsigned seen)
{
	if (!(seen & (1u << FIELD_LANGUAGE)) || !req->language)
		return "language is required";
	if (!(seen & (1u << FIELD_CODE)) || !req->code)
		return "code is required";
	if (req->code_len == 0)
		return "code must not be empty";
	return NULL;
}

int run_request_parse(const char *body, size_t len, struct run_request *req,
		      const char **message)
{
	struct parse_state st = { .req = req };
	yajl_handle h;
	yajl_status status;

	memset(req, 0, sizeof(*req));
	if (is_blank(body, len)) {
		*message = "request body is empty";
		return -1;
	}
	h = yajl_alloc(&callbacks, NULL, &st);
	if (!h) {
		*message = "out of memory";
		return -1;
	}
	yajl_config(h, yajl_allow_comments, 0);
	yajl_config(h, yajl_allow_trailing_garbage, 0);
	yajl_config(h, yajl_allow_multiple_values, 0);
	yajl_config(h, yajl_allow_partial_values, 0);
	status = yajl_parse(h, (const unsigned char *)body, len);
	if (status == yajl_status_ok)
		status = yajl_complete_parse(h);
	yajl_free(h);
	if (status != yajl_status_ok) {
		*message = st.error ? st.error : MSG_NOT_JSON;
		return -1;
	}
	*message = check_required(req, st.seen);
	return *message ? -1 : 0;
}

void run_request_free(struct run_request *req)
{
	free(req->language);
	free(req->code);
	free(req->preload);
	memset(req, 0, sizeof(*req));
}
