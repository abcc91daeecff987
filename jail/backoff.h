/* Time in milliseconds, and the pause after failures in a row that the pool
 * (warm sandboxes) and the zygote keeper both use: a fault that lasts costs
 * a log line every half minute, not every second. */
#ifndef SANDCELL_BACKOFF_H
#define SANDCELL_BACKOFF_H

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 32000

struct backoff {
	unsigned failures;   /* in a row */
	long long retry_at;  /* monotonic ms; 0: now */
};

/* CLOCK_MONOTONIC in ms. */
long long monotonic_ms(void);

/* One more failure: the pause doubles with each in a row, from
 * BACKOFF_FIRST_MS up to BACKOFF_MAX_MS; returns it. */
long long backoff_failed(struct backoff *b);

/* It worked: no pause. */
void backoff_reset(struct backoff *b);

#endif
