/* Metrics for GET /metrics, in Prometheus' text exposition format 0.0.4.
 *
 * Counters are lock-free atomics bumped on the request path; gauges are read
 * at scrape time from their owners (admission, executor) and handed to
 * metrics_render() in struct metrics_gauges, which keeps rendering testable.
 */
#ifndef SANDCELL_FCGI_METRICS_H
#define SANDCELL_FCGI_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jail/jail.h"

#define METRICS_MAX_LANGUAGES 8

/* Counts one answered request by its outcome (the log's outcome= value;
 * unknown names count as "other"). */
void metrics_count_request(const char *outcome);

/* Records a finished run: its duration for the language's histogram and one
 * count per limit it hit (enum jail_hit bits). */
void metrics_observe_run(const struct language *lang, double duration_ms, unsigned hits);

/* The hook for the eBPF egress filter: a function that reads the total of
 * blocked network attempts (0 on success). Until one is registered the
 * metric is not exported at all (absent, not a misleading 0). */
typedef int (*metrics_blocked_fn)(uint64_t *total, void *ctx);
void metrics_set_blocked_source(metrics_blocked_fn fn, void *ctx);

/* Counts n blocked network attempts at an eBPF hook ("connect4", ...;
 * unknown names count as "other"). The first call (n may be 0, hook NULL)
 * makes sandcell_network_blocked_total{hook=...} appear, one series per
 * hook; it then replaces the unlabelled total of a blocked source. */
void metrics_count_blocked(const char *hook, uint64_t n);

struct metrics_gauges {
	unsigned in_flight;     /* requests admitted, running or waiting */
	unsigned queued;        /* waiting for a worker */
	unsigned busy;          /* workers running a program */
	unsigned max_workers;
	unsigned max_requests;
	unsigned warm[METRICS_MAX_LANGUAGES]; /* per language_at(i) */
	unsigned zygotes[METRICS_MAX_LANGUAGES];             /* running, per language */
	unsigned long long zygote_forks[METRICS_MAX_LANGUAGES]; /* sandboxes they made */
};

/* The whole exposition as a malloc'd, NUL-terminated text (length in
 * *len); NULL if memory ran out. */
char *metrics_render(const struct metrics_gauges *g, size_t *len);

/* Zeroes every counter (unit tests). */
void metrics_reset(void);

#endif
