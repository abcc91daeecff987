/* The Python distributions importable inside the sandbox, found by running
 * a fixed trusted script in a sandbox and cached until the next re-scan. */
#ifndef SANDCELL_FCGI_DEPENDENCIES_H
#define SANDCELL_FCGI_DEPENDENCIES_H

#include <stdbool.h>

#include "fcgi/reply.h"

/* Fills r with the dependencies answer, scanning first if rescan is set
 * or nothing is cached yet. Returns the outcome for the log: "ok", "busy"
 * (503), "host_fault" (500) or "scan_failed" (500). */
const char *dependencies_list(struct reply *r, bool rescan);

/* Re-scans; fills r with {"code":0,"message":"success","data":{}} or the
 * error. Returns the outcome as above. */
const char *dependencies_update(struct reply *r);

/* Frees the cache (at shutdown). */
void dependencies_clear(void);

#endif
