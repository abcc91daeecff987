/* Making program output valid UTF-8 before it goes into a JSON string. */
#ifndef SANDCELL_FCGI_UTF8_H
#define SANDCELL_FCGI_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). NUL bytes are valid. */
bool utf8_is_valid(const char *s, size_t len);

/* A malloc'd copy of s[0..len) in which every maximal ill-formed
 * subsequence is replaced by U+FFFD (EF BF BD), as Unicode recommends;
 * well-formed text is copied unchanged. Length in *out_len; the buffer is
 * NUL-terminated for convenience. NULL on allocation failure. */
char *utf8_sanitize(const char *s, size_t len, size_t *out_len);

#endif
