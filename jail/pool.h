/* Warm sandboxes and the background work of the executor. */
#ifndef SANDCELL_POOL_H
#define SANDCELL_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct sandbox;

/* Starts the executor's background thread. It keeps `warm` sandboxes of each
 * language started and waiting for code, and destroys retired sandboxes, so
 * that neither costs a request its latency. Returns 0, or -1 with err. */
int pool_start(unsigned warm, char *err, size_t errlen);

/* Stops the thread; destroys the warm sandboxes and those still retiring. */
void pool_stop(void);

/* A warm sandbox of language `lang` (an index of executor_language), or NULL. */
struct sandbox *pool_take(size_t lang);

/* Warm sandboxes of language `lang` ready now. */
unsigned pool_ready(size_t lang);

/* Hands a used sandbox over for destruction in the background. */
void pool_retire(struct sandbox *sb);

#endif
