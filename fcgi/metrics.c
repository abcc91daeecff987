/* Prometheus metrics: relaxed atomic counters, rendered on demand.
 *
 * The request path only does atomic increments (no lock): one per answered
 * request, and per run one bucket, the duration sum and one per limit hit.
 * A histogram keeps one counter per bucket (not cumulative); the render
 * adds them up, and the +Inf bucket and _count are that same sum, so a
 * scrape never shows a count lower than a bucket even while runs finish.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/metrics.h"

/* The outcomes the router and the dependency endpoints log. */
static const char *const outcomes[] = {
	"ok", "error", "timeout", "seccomp", "memory_limit", "output_limit", "pids_limit",
	"file_size_limit", "unauthorized", "not_found", "method_not_allowed", "busy",
	"too_large", "bad_request", "unsupported_language", "network_disabled",
	"host_fault", "scan_failed", "client_gone", "other",
};
#define N_OUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))

/* One kind per marker line of the API's "error" text. */
static const struct {
	unsigned bit;
	const char *kind;
} limit_kinds[] = {
	{ JAIL_HIT_TIMEOUT, "timeout" },
	{ JAIL_HIT_SECCOMP, "operation_not_permitted" },
	{ JAIL_HIT_MEMORY, "memory_limit" },
	{ JAIL_HIT_OUTPUT, "output_limit" },
	{ JAIL_HIT_PIDS, "process_limit" },
	{ JAIL_HIT_FSIZE, "file_size_limit" },
};
#define N_KINDS (sizeof(limit_kinds) / sizeof(limit_kinds[0]))

/* Upper bounds in milliseconds; the text shows seconds. */
static const unsigned bucket_ms[] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
				      30000, 60000 };
#define N_BUCKETS (sizeof(bucket_ms) / sizeof(bucket_ms[0]))

struct histogram {
	atomic_uint_fast64_t bucket[N_BUCKETS + 1]; /* the last one: above every bound */
	atomic_uint_fast64_t sum_us;
};

static atomic_uint_fast64_t requests[N_OUTCOMES];
static atomic_uint_fast64_t limit_hits[N_KINDS];
static struct histogram durations[METRICS_MAX_LANGUAGES];

/* The eBPF programs' hooks (bpf/egress.c's names), and "other". */
static const char *const hooks[] = {
	"connect4", "connect6", "sendmsg4", "sendmsg6", "bind4", "bind6", "sock_create",
	"skb_egress", "skb_ingress_listen", "other",
};
#define N_HOOKS (sizeof(hooks) / sizeof(hooks[0]))

static atomic_uint_fast64_t blocked_by_hook[N_HOOKS];
static atomic_bool blocked_by_hook_on;
static _Atomic(metrics_blocked_fn) blocked_fn;
static void *_Atomic blocked_ctx;

static void bump(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_count_request(const char *outcome)
{
	size_t i;

	for (i = 0; i < N_OUTCOMES - 1; i++)
		if (outcome && !strcmp(outcome, outcomes[i]))
			break;
	bump(&requests[i], 1);
}

static int language_index(const struct language *lang)
{
	for (size_t i = 0; i < METRICS_MAX_LANGUAGES; i++) {
		const struct language *l = language_at(i);

		if (!l)
			break;
		if (l == lang)
			return (int)i;
	}
	return -1;
}

void metrics_observe_run(const struct language *lang, double duration_ms, unsigned hits)
{
	int li = language_index(lang);

	for (size_t k = 0; k < N_KINDS; k++)
		if (hits & limit_kinds[k].bit)
			bump(&limit_hits[k], 1);
	if (li < 0)
		return;
	if (duration_ms < 0)
		duration_ms = 0;
	size_t b = 0;

	while (b < N_BUCKETS && duration_ms > bucket_ms[b])
		b++;
	bump(&durations[li].bucket[b], 1);
	bump(&durations[li].sum_us, (uint64_t)(duration_ms * 1000.0));
}

void metrics_set_blocked_source(metrics_blocked_fn fn, void *ctx)
{
	atomic_store(&blocked_ctx, ctx);
	atomic_store(&blocked_fn, fn);
}

void metrics_count_blocked(const char *hook, uint64_t n)
{
	size_t i;

	atomic_store(&blocked_by_hook_on, true);
	if (!hook)
		return;
	for (i = 0; i < N_HOOKS - 1; i++)
		if (!strcmp(hook, hooks[i]))
			break;
	bump(&blocked_by_hook[i], n);
}

void metrics_reset(void)
{
	for (size_t i = 0; i < N_OUTCOMES; i++)
		atomic_store(&requests[i], 0);
	for (size_t i = 0; i < N_KINDS; i++)
		atomic_store(&limit_hits[i], 0);
	for (size_t l = 0; l < METRICS_MAX_LANGUAGES; l++) {
		for (size_t b = 0; b <= N_BUCKETS; b++)
			atomic_store(&durations[l].bucket[b], 0);
		atomic_store(&durations[l].sum_us, 0);
	}
	for (size_t i = 0; i < N_HOOKS; i++)
		atomic_store(&blocked_by_hook[i], 0);
	atomic_store(&blocked_by_hook_on, false);
	metrics_set_blocked_source(NULL, NULL);
}

/* ---- rendering ----------------------------------------------------------- */

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_requests(FILE *f)
{
	head(f, "sandcell_requests_total", "counter",
	     "Requests answered by sandcelld, by outcome (the outcome= of its log line).");
	for (size_t i = 0; i < N_OUTCOMES; i++)
		fprintf(f, "sandcell_requests_total{outcome=\"%s\"} %llu\n", outcomes[i],
			(unsigned long long)get(&requests[i]));
}

static void render_histogram(FILE *f, const char *lang, struct histogram *h)
{
	uint64_t cumulative = 0;

	for (size_t b = 0; b < N_BUCKETS; b++) {
		cumulative += get(&h->bucket[b]);
		fprintf(f, "sandcell_run_duration_seconds_bucket{language=\"%s\",le=\"%g\"} %llu\n",
			lang, bucket_ms[b] / 1000.0, (unsigned long long)cumulative);
	}
	cumulative += get(&h->bucket[N_BUCKETS]);
	fprintf(f, "sandcell_run_duration_seconds_bucket{language=\"%s\",le=\"+Inf\"} %llu\n",
		lang, (unsigned long long)cumulative);
	fprintf(f, "sandcell_run_duration_seconds_sum{language=\"%s\"} %.6f\n", lang,
		(double)get(&h->sum_us) / 1e6);
	fprintf(f, "sandcell_run_duration_seconds_count{language=\"%s\"} %llu\n", lang,
		(unsigned long long)cumulative);
}

static void render_durations(FILE *f)
{
	head(f, "sandcell_run_duration_seconds", "histogram",
	     "Run time of programs from receiving the code to their end, per language.");
	for (size_t i = 0; i < METRICS_MAX_LANGUAGES && language_at(i); i++)
		render_histogram(f, language_name(language_at(i)), &durations[i]);
}

static void gauge(FILE *f, const char *name, const char *help, unsigned value)
{
	head(f, name, "gauge", help);
	fprintf(f, "%s %u\n", name, value);
}

static void render_gauges(FILE *f, const struct metrics_gauges *g)
{
	gauge(f, "sandcell_requests_in_flight",
	      "Run requests admitted and not yet answered (running or waiting).", g->in_flight);
	gauge(f, "sandcell_queue_depth", "Run requests waiting for a free worker.", g->queued);
	gauge(f, "sandcell_workers_busy", "Workers running a program now.", g->busy);
	gauge(f, "sandcell_workers_max", "Configured max_workers.", g->max_workers);
	gauge(f, "sandcell_requests_max", "Configured max_requests.", g->max_requests);
	head(f, "sandcell_warm_sandboxes", "gauge",
	     "Pre-started sandboxes ready to take a program, per language.");
	for (size_t i = 0; i < METRICS_MAX_LANGUAGES && language_at(i); i++)
		fprintf(f, "sandcell_warm_sandboxes{language=\"%s\"} %u\n",
			language_name(language_at(i)), g->warm[i]);
	head(f, "sandcell_zygotes_running", "gauge",
	     "Zygotes running, per language (one per network mode; 0: sandboxes start cold).");
	for (size_t i = 0; i < METRICS_MAX_LANGUAGES && language_at(i); i++)
		fprintf(f, "sandcell_zygotes_running{language=\"%s\"} %u\n",
			language_name(language_at(i)), g->zygotes[i]);
	head(f, "sandcell_zygote_forks_total", "counter",
	     "Sandboxes forked from a zygote, per language.");
	for (size_t i = 0; i < METRICS_MAX_LANGUAGES && language_at(i); i++)
		fprintf(f, "sandcell_zygote_forks_total{language=\"%s\"} %llu\n",
			language_name(language_at(i)), g->zygote_forks[i]);
}

static void render_limits(FILE *f)
{
	head(f, "sandcell_limit_hits_total", "counter",
	     "Runs that hit a limit, by kind (one per marker line \"error: ...\" of a run).");
	for (size_t k = 0; k < N_KINDS; k++)
		fprintf(f, "sandcell_limit_hits_total{kind=\"%s\"} %llu\n", limit_kinds[k].kind,
			(unsigned long long)get(&limit_hits[k]));
}

static void render_blocked(FILE *f)
{
	metrics_blocked_fn fn = atomic_load(&blocked_fn);
	uint64_t total = 0;

	if (atomic_load(&blocked_by_hook_on)) {
		head(f, "sandcell_network_blocked_total", "counter",
		     "Network attempts of sandboxes refused by the egress policy, by eBPF hook.");
		for (size_t i = 0; i < N_HOOKS; i++)
			fprintf(f, "sandcell_network_blocked_total{hook=\"%s\"} %llu\n", hooks[i],
				(unsigned long long)get(&blocked_by_hook[i]));
		return;
	}
	if (!fn || fn(&total, atomic_load(&blocked_ctx)) != 0)
		return;
	head(f, "sandcell_network_blocked_total", "counter",
	     "Network attempts of sandboxes refused by the egress policy.");
	fprintf(f, "sandcell_network_blocked_total %llu\n", (unsigned long long)total);
}

char *metrics_render(const struct metrics_gauges *g, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (!f)
		return NULL;
	render_requests(f);
	render_durations(f);
	render_gauges(f, g);
	render_limits(f);
	render_blocked(f);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}
