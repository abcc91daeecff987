/* /metrics: the Prometheus text exposition format (0.0.4) and the counts. */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fcgi/metrics.h"

static char *render(void)
{
	struct metrics_gauges g = { .in_flight = 3, .queued = 1, .busy = 2, .max_workers = 4,
				    .max_requests = 50, .warm = { 5, 6 } };
	size_t len = 0;
	char *text = metrics_render(&g, &len);

	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

static void has_line(const char *text, const char *line)
{
	char *want;
	size_t n = strlen(line);
	const char *p = text;

	for (; (p = strstr(p, line)); p += n)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	want = strdup(line);
	fail_msg("missing line: %s\n--- in ---\n%s", want, text);
}

/* Every line is a comment (# HELP / # TYPE) or `name{labels} value`, every
 * metric has HELP and TYPE before its first sample, the text ends with \n. */
static void well_formed(void **state)
{
	regex_t sample, help, type;
	char *text, *save = NULL, *line, last_typed[128] = "";

	metrics_reset();
	text = render();
	assert_int_equal(regcomp(&sample,
				 "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\\n]*\""
				 "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"\\\\\n]*\")*\\})? [0-9.e+-]+$",
				 REG_EXTENDED), 0);
	assert_int_equal(regcomp(&help, "^# HELP [a-z_]+ [^\n]+$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type, "^# TYPE ([a-z_]+) (counter|gauge|histogram)$",
				 REG_EXTENDED), 0);
	assert_true(text[strlen(text) - 1] == '\n');
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		regmatch_t m[2];

		if (!regexec(&help, line, 0, NULL, 0))
			continue;
		if (!regexec(&type, line, 2, m, 0)) {
			snprintf(last_typed, sizeof(last_typed), "%.*s",
				 (int)(m[1].rm_eo - m[1].rm_so), line + m[1].rm_so);
			continue;
		}
		if (regexec(&sample, line, 2, m, 0))
			fail_msg("not a sample line: '%s'", line);
		/* a histogram's samples carry _bucket/_sum/_count after its name */
		if (strncmp(line, last_typed, strlen(last_typed)))
			fail_msg("sample before its # TYPE: '%s' (last TYPE %s)", line, last_typed);
	}
	regfree(&sample);
	regfree(&help);
	regfree(&type);
	free(text);
}

static void counts_requests_runs_and_hits(void **state)
{
	const struct language *py = language_find("python3"), *js = language_find("nodejs");
	char *text;

	assert_non_null(py);
	assert_non_null(js);
	metrics_reset();
	metrics_count_request("ok");
	metrics_count_request("ok");
	metrics_count_request("unauthorized");
	metrics_count_request("something new");
	metrics_count_request(NULL);
	metrics_observe_run(py, 3.0, 0);              /* <= 5 ms */
	metrics_observe_run(py, 5.0, 0);              /* the bound itself is in le="0.005" */
	metrics_observe_run(py, 70000.0, JAIL_HIT_TIMEOUT | JAIL_HIT_OUTPUT); /* above 60 s */
	metrics_observe_run(js, 120.0, JAIL_HIT_SECCOMP);
	text = render();
	has_line(text, "sandcell_requests_total{outcome=\"ok\"} 2");
	has_line(text, "sandcell_requests_total{outcome=\"unauthorized\"} 1");
	has_line(text, "sandcell_requests_total{outcome=\"other\"} 2");
	has_line(text, "sandcell_requests_total{outcome=\"busy\"} 0");
	has_line(text, "sandcell_run_duration_seconds_bucket{language=\"python3\",le=\"0.005\"} 2");
	has_line(text, "sandcell_run_duration_seconds_bucket{language=\"python3\",le=\"60\"} 2");
	has_line(text, "sandcell_run_duration_seconds_bucket{language=\"python3\",le=\"+Inf\"} 3");
	has_line(text, "sandcell_run_duration_seconds_count{language=\"python3\"} 3");
	has_line(text, "sandcell_run_duration_seconds_sum{language=\"python3\"} 70.008000");
	has_line(text, "sandcell_run_duration_seconds_bucket{language=\"nodejs\",le=\"0.1\"} 0");
	has_line(text, "sandcell_run_duration_seconds_bucket{language=\"nodejs\",le=\"0.25\"} 1");
	has_line(text, "sandcell_run_duration_seconds_count{language=\"nodejs\"} 1");
	has_line(text, "sandcell_limit_hits_total{kind=\"timeout\"} 1");
	has_line(text, "sandcell_limit_hits_total{kind=\"output_limit\"} 1");
	has_line(text, "sandcell_limit_hits_total{kind=\"operation_not_permitted\"} 1");
	has_line(text, "sandcell_limit_hits_total{kind=\"memory_limit\"} 0");
	has_line(text, "sandcell_requests_in_flight 3");
	has_line(text, "sandcell_queue_depth 1");
	has_line(text, "sandcell_workers_busy 2");
	has_line(text, "sandcell_workers_max 4");
	has_line(text, "sandcell_requests_max 50");
	has_line(text, "sandcell_warm_sandboxes{language=\"python3\"} 5");
	has_line(text, "sandcell_warm_sandboxes{language=\"nodejs\"} 6");
	has_line(text, "# TYPE sandcell_run_duration_seconds histogram");
	has_line(text, "# TYPE sandcell_requests_total counter");
	free(text);
}

static int blocked_source(uint64_t *total, void *ctx)
{
	*total = *(uint64_t *)ctx;
	return 0;
}

static int failing_source(uint64_t *total, void *ctx)
{
	return -1;
}

static void blocked_attempts_only_with_a_source(void **state)
{
	static uint64_t blocked = 17;
	char *text;

	metrics_reset();
	text = render();
	assert_null(strstr(text, "sandcell_network_blocked_total"));
	free(text);
	metrics_set_blocked_source(blocked_source, &blocked);
	text = render();
	has_line(text, "# TYPE sandcell_network_blocked_total counter");
	has_line(text, "sandcell_network_blocked_total 17");
	free(text);
	/* a source that cannot read leaves the metric out rather than lying */
	metrics_set_blocked_source(failing_source, NULL);
	text = render();
	assert_null(strstr(text, "sandcell_network_blocked_total"));
	free(text);
	metrics_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(well_formed),
		cmocka_unit_test(counts_requests_runs_and_hits),
		cmocka_unit_test(blocked_attempts_only_with_a_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
