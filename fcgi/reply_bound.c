/* Bounding a run's reply; see reply_bound.h.
 *
 * The output limit caps what sandcelld reads of stdout and of stderr, but a
 * reply carries stderr twice (as `stderr` and at the end of `error`), and
 * JSON escaping makes a control byte six bytes: 8 MiB of each stream could
 * become a reply of about 18 × output_limit. So the budget is applied to the
 * escaped text: at most 2 × output_limit for stdout + 2 × stderr together.
 * Within it, stdout keeps what it needs if stderr is small, and stderr keeps
 * at least a quarter of the budget (twice) when both are large. The rest of
 * the reply (envelope, exit line, markers) is under 1 KiB.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>

#include "fcgi/reply_bound.h"
#include "fcgi/utf8.h"

/* What yajl_gen_string writes for one byte (escape_solidus off). */
static size_t escaped_byte_len(unsigned char c)
{
	switch (c) {
	case '"': case '\\': case '\b': case '\f': case '\n': case '\r': case '\t':
		return 2;
	default:
		return c < 0x20 ? 6 : 1;
	}
}

size_t json_escaped_len(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += escaped_byte_len((unsigned char)s[i]);
	return n;
}

/* The longest prefix of valid UTF-8 s whose escaped length is at most cap,
 * ending on a character boundary. */
static size_t prefix_within(const char *s, size_t len, size_t cap)
{
	size_t i = 0, used = 0, end = 0;

	while (i < len) {
		used += escaped_byte_len((unsigned char)s[i]);
		if (used > cap)
			break;
		i++;
		if (i == len || ((unsigned char)s[i] & 0xC0) != 0x80)
			end = i; /* the next byte starts a character */
	}
	return i == len ? len : end;
}

/* Replaces *text with its UTF-8-repaired copy (only if it needs one). */
static int repair(char **text, size_t *len)
{
	size_t n;
	char *fixed;

	if (!*len || utf8_is_valid(*text, *len))
		return 0;
	fixed = utf8_sanitize(*text, *len, &n);
	if (!fixed)
		return -1;
	free(*text);
	*text = fixed;
	*len = n;
	return 0;
}

int reply_bound_output(struct run_result *res, size_t output_limit)
{
	size_t budget = 2 * output_limit, e_out, e_err, cap_out, cap_err;

	if (repair(&res->out, &res->out_len) < 0 || repair(&res->err, &res->err_len) < 0)
		return -1;
	e_out = json_escaped_len(res->out, res->out_len);
	e_err = json_escaped_len(res->err, res->err_len);
	if (e_out + 2 * e_err <= budget)
		return 0;
	cap_err = e_out < budget / 2 ? (budget - e_out) / 2 : budget / 4;
	if (cap_err > e_err)
		cap_err = e_err;
	cap_out = budget - 2 * cap_err;
	res->out_len = prefix_within(res->out, res->out_len, cap_out);
	res->err_len = prefix_within(res->err, res->err_len, cap_err);
	res->hits |= JAIL_HIT_OUTPUT;
	return 0;
}
