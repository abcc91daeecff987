/* The capabilities sandcelld needs to build jails. */
#ifndef SANDCELL_JAIL_CAPABILITIES_H
#define SANDCELL_JAIL_CAPABILITIES_H

#include <stdbool.h>
#include <stddef.h>

struct jail_capability {
	int bit;            /* CAP_* */
	const char *name;   /* "cap_sys_admin", as systemd and capsh write it */
	const char *use;    /* what it is needed for */
	bool required;      /* no jail at all without it */
};

/* The table (debian/sandcell.service's CapabilityBoundingSet is these); *n entries. */
const struct jail_capability *jail_capabilities(size_t *n);

/* Is bit in this process's effective set? */
bool jail_has_capability(int bit);

/* 0 if every required capability is effective; else -1 with err naming the
 * first one missing and what it is for. */
int jail_check_capabilities(char *err, size_t errlen);

#endif
