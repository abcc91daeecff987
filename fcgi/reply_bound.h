/* Bounding a run's reply: what is sent, not only what was read. */
#ifndef SANDCELL_FCGI_REPLY_BOUND_H
#define SANDCELL_FCGI_REPLY_BOUND_H

#include <stddef.h>

#include "jail/jail.h"

/* Bytes s[0..len) take inside a JSON string as yajl writes it. */
size_t json_escaped_len(const char *s, size_t len);

/* Makes res's stdout and stderr valid UTF-8 (invalid bytes become U+FFFD)
 * and cuts them so that, escaped, stdout + stderr + the copy of stderr in
 * `error` take at most 2 × output_limit bytes; a cut adds JAIL_HIT_OUTPUT.
 * Returns 0, or -1 if memory ran out (res is then unchanged). */
int reply_bound_output(struct run_result *res, size_t output_limit);

#endif
