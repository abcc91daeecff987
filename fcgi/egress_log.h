/* Blocked network attempts of sandboxes, for the operator: one log line per
 * blocked attempt (rate-limited per request) and the metric
 * sandcell_network_blocked_total{hook=...}. */
#ifndef SANDCELL_FCGI_EGRESS_LOG_H
#define SANDCELL_FCGI_EGRESS_LOG_H

#include <stdint.h>

struct egress_event;

#define EGRESS_LOG_LINES_PER_REQUEST 8  /* logged in full; then summaries only */

/* Registers with the executor (executor_on_blocked) and makes the metric appear. */
void egress_log_start(void);

/* What the executor's callback does with one event; tag is the request id
 * (NULL if the sandbox is gone). Exposed for unit tests. */
void egress_log_event(const char *tag, const char *language, const struct egress_event *ev);

#endif
