/* The cost of giving a sandbox its egress policy and taking it away:
 * egress_assign() and egress_unassign() (one BPF map update / delete each),
 * timed one by one, on a scratch cgroup with the programs attached.
 *
 *   bench_egress PARENT_CGROUP PIN_DIR [N]
 *
 * Built and run by bench/bench_network.py (it creates and removes the
 * cgroup and the pins). Prints one JSON line: medians and p90 in µs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bpf/egress.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[(int)(p * (n - 1))];
}

int main(int argc, char **argv)
{
	char err[512], child[4096];
	size_t n_defaults;
	uint64_t id;
	int n = argc > 3 ? atoi(argv[3]) : 20000;

	if (argc < 3 || n <= 0) {
		fprintf(stderr, "usage: bench_egress PARENT_CGROUP PIN_DIR [N]\n");
		return 2;
	}
	snprintf(child, sizeof(child), "%s/sandbox", argv[1]);
	if (mkdir(child, 0755) != 0 && access(child, F_OK) != 0) {
		perror(child);
		return 1;
	}
	if (egress_open(argv[1], argv[2], err, sizeof(err)) != 0) {
		fprintf(stderr, "egress_open: %s\n", err);
		rmdir(child);
		return 1;
	}
	const struct egress_rule *rules = egress_default_rules(&n_defaults);
	int rc = 1;
	double *assign = calloc((size_t)n, sizeof(double)), *unassign = calloc((size_t)n, sizeof(double));
	if (!assign || !unassign || egress_set_policy(1, rules, n_defaults, err, sizeof(err)) != 0 ||
	    egress_cgroup_id(child, &id) != 0) {
		fprintf(stderr, "set-up failed: %s\n", err);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		if (egress_assign(id, 1) != 0)
			goto out;
		double t1 = now_us();
		if (egress_unassign(id) != 0)
			goto out;
		double t2 = now_us();
		assign[i] = t1 - t0;
		unassign[i] = t2 - t1;
	}
	printf("{\"n\": %d, \"assign_median_us\": %.2f, \"assign_p90_us\": %.2f, "
	       "\"unassign_median_us\": %.2f, \"unassign_p90_us\": %.2f}\n", n,
	       pct(assign, n, 0.5), pct(assign, n, 0.9), pct(unassign, n, 0.5),
	       pct(unassign, n, 0.9));
	rc = 0;
out:
	free(assign);
	free(unassign);
	egress_detach_and_unpin();
	rmdir(child);
	return rc;
}
