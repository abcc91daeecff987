/* See backoff.h. */
#include <time.h>

#include "jail/backoff.h"

long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long backoff_failed(struct backoff *b)
{
	unsigned shift = b->failures < 5 ? b->failures : 5;
	long long pause = (long long)BACKOFF_FIRST_MS << shift;

	if (pause > BACKOFF_MAX_MS)
		pause = BACKOFF_MAX_MS;
	b->failures++;
	b->retry_at = monotonic_ms() + pause;
	return pause;
}

void backoff_reset(struct backoff *b)
{
	b->failures = 0;
	b->retry_at = 0;
}
