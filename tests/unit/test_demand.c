/* Unit tests of the warm pool's demand and memory rules (jail/demand.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "jail/demand.h"

#define T0 1000000LL /* an arbitrary monotonic time, ms */

/* n takes, each gap_ms after the previous, from at. */
static long long takes(struct demand *d, long long at, unsigned n, long long gap_ms)
{
	for (unsigned i = 0; i < n; i++, at += gap_ms)
		demand_note_take(d, at);
	return at - gap_ms;
}

static void test_idle_wants_none(void **state)
{
	struct demand d;

	(void)state;
	demand_init(&d);
	assert_int_equal(demand_wanted(&d, T0), 0);
}

static void test_a_burst_wants_its_size(void **state)
{
	struct demand d;

	(void)state;
	demand_init(&d);
	long long last = takes(&d, T0, 8, 1);
	assert_int_equal(demand_wanted(&d, last), 8);
}

/* A stream wants as many as arrive within one window. */
static void test_a_stream_wants_rate_times_window(void **state)
{
	struct demand d;

	(void)state;
	demand_init(&d);
	long long last = takes(&d, T0, 30, DEMAND_WINDOW_MS / 5); /* 5 per window */
	assert_int_equal(demand_wanted(&d, last), 5);
	demand_init(&d);
	last = takes(&d, T0, 10, DEMAND_WINDOW_MS); /* one at a time */
	assert_int_equal(demand_wanted(&d, last), 1);
}

static void test_peak_holds_then_halves(void **state)
{
	struct demand d;

	(void)state;
	demand_init(&d);
	long long last = takes(&d, T0, 8, 1);
	assert_int_equal(demand_wanted(&d, last + DEMAND_HALF_LIFE_MS - 1), 8);
	assert_int_equal(demand_wanted(&d, last + DEMAND_HALF_LIFE_MS), 4);
	assert_int_equal(demand_wanted(&d, last + 3 * DEMAND_HALF_LIFE_MS), 1);
	assert_int_equal(demand_wanted(&d, last + 4 * DEMAND_HALF_LIFE_MS), 0);
	assert_int_equal(demand_wanted(&d, last + 100 * DEMAND_HALF_LIFE_MS), 0);
}

/* A single take after a pause does not forget a recent, higher peak. */
static void test_a_lone_take_keeps_the_decayed_peak(void **state)
{
	struct demand d;

	(void)state;
	demand_init(&d);
	long long last = takes(&d, T0, 8, 1);
	demand_note_take(&d, last + DEMAND_HALF_LIFE_MS);
	assert_int_equal(demand_wanted(&d, last + DEMAND_HALF_LIFE_MS), 4);
}

static const char meminfo[] =
	"MemTotal:        8388608 kB\n"
	"MemFree:         1000000 kB\n"
	"MemAvailable:    5242880 kB\n"
	"Buffers:           10000 kB\n";

/* (available 5 GiB - headroom 1 GiB = MemTotal / 8) / 512 MiB = 8 */
static void test_memory_keeps_headroom(void **state)
{
	(void)state;
	assert_int_equal(demand_memory_affords_text(meminfo, 512ULL << 20), 8);
	assert_int_equal(demand_memory_affords_text(meminfo, 4ULL << 30), 1);
	assert_int_equal(demand_memory_affords_text(meminfo, 8ULL << 30), 0);
}

static void test_memory_unknown_affords_none(void **state)
{
	(void)state;
	assert_int_equal(demand_memory_affords_text("MemTotal: 8388608 kB\n", 1 << 20), 0);
	assert_int_equal(demand_memory_affords_text("", 1 << 20), 0);
	assert_int_equal(demand_memory_affords_text(meminfo, 0), 0);
	/* the real file answers something sane */
	assert_in_range(demand_memory_affords(1ULL << 40), 0, DEMAND_TAKES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_wants_none),
		cmocka_unit_test(test_a_burst_wants_its_size),
		cmocka_unit_test(test_a_stream_wants_rate_times_window),
		cmocka_unit_test(test_peak_holds_then_halves),
		cmocka_unit_test(test_a_lone_take_keeps_the_decayed_peak),
		cmocka_unit_test(test_memory_keeps_headroom),
		cmocka_unit_test(test_memory_unknown_affords_none),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
