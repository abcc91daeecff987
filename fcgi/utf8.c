/* UTF-8 validation and repair.
 *
 * The decoder follows Unicode's table of well-formed byte sequences
 * (Table 3-7): the range allowed for the second byte depends on the lead
 * byte, which is what excludes overlongs (E0 80.., F0 80..), surrogates
 * (ED A0..) and code points above U+10FFFF (F4 90..). A lead byte followed
 * by fewer good continuation bytes than it needs forms one "maximal
 * subpart" and becomes a single U+FFFD; a byte that can never start a
 * sequence becomes one U+FFFD on its own.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdlib.h>
#include <string.h>

#include "fcgi/utf8.h"

static const char replacement[3] = { (char)0xEF, (char)0xBF, (char)0xBD };

/* Looks at the sequence starting at p (avail bytes left). Returns its length
 * if it is well-formed, else 0 and sets *skip to the number of bytes that
 * one U+FFFD replaces. */
static size_t sequence_length(const unsigned char *p, size_t avail, size_t *skip)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t need, i;

	*skip = 1;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		need = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		need = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		need = 4;
	else
		return 0; /* 80..C1, F5..FF: never a lead byte */

	if (p[0] == 0xE0)
		lo = 0xA0;  /* no overlong 3-byte forms */
	else if (p[0] == 0xED)
		hi = 0x9F;  /* no surrogates */
	else if (p[0] == 0xF0)
		lo = 0x90;  /* no overlong 4-byte forms */
	else if (p[0] == 0xF4)
		hi = 0x8F;  /* nothing above U+10FFFF */

	for (i = 1; i < need; i++) {
		if (i >= avail || p[i] < lo || p[i] > hi) {
			*skip = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xBF;
	}
	return need;
}

bool utf8_is_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t pos = 0, skip;

	while (pos < len) {
		size_t n = sequence_length(p + pos, len - pos, &skip);

		if (!n)
			return false;
		pos += n;
	}
	return true;
}

/* Walks s once; with out == NULL only counts the output length. */
static size_t sanitize_into(const char *s, size_t len, char *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t pos = 0, w = 0, skip;

	while (pos < len) {
		size_t n = sequence_length(p + pos, len - pos, &skip);

		if (n) {
			if (out)
				memcpy(out + w, s + pos, n);
			w += n;
			pos += n;
		} else {
			if (out)
				memcpy(out + w, replacement, sizeof(replacement));
			w += sizeof(replacement);
			pos += skip;
		}
	}
	return w;
}

char *utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
	size_t n = sanitize_into(s, len, NULL);
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	sanitize_into(s, len, out);
	out[n] = '\0';
	*out_len = n;
	return out;
}
