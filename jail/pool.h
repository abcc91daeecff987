/* Warm sandboxes and the background work of the executor. */
#ifndef SANDCELL_POOL_H
#define SANDCELL_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct sandbox;

/* Starts the executor's background threads (one per core). They keep
 * sandboxes of each kind k started and waiting for code, as many as recent
 * demand calls for within executor_kind_warm_range(k), and destroy retired
 * sandboxes, so that neither costs a request its latency. Returns 0, or -1
 * with err. */
int pool_start(char *err, size_t errlen);

/* The bounds of warm sandboxes may have changed: look again. */
void pool_wake(void);

/* Stops the threads; destroys the warm sandboxes and those still retiring. */
void pool_stop(void);

/* A warm sandbox of kind k (see executor_kinds), or NULL. */
struct sandbox *pool_take(size_t k);

/* Warm sandboxes of kind k ready now. */
unsigned pool_ready(size_t k);

/* Hands a used sandbox over for destruction in the background. */
void pool_retire(struct sandbox *sb);

#endif
