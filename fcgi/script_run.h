/* Runs a fixed script of ours (never user input) in an ordinary Python
 * sandbox, through admission like any run: so that what it sees is exactly
 * what sandboxed code sees. Used by the dependency scan and the import check. */
#ifndef SANDCELL_FCGI_SCRIPT_RUN_H
#define SANDCELL_FCGI_SCRIPT_RUN_H

#include <stddef.h>

#include "jail/jail.h"

enum script_run {
	SCRIPT_RAN,      /* res is filled (whatever the script's exit status) */
	SCRIPT_BUSY,     /* no room: max_requests in flight, or no worker within queue_timeout */
	SCRIPT_NO_SANDBOX, /* no python3, or no sandbox could be set up: err says why */
};

enum script_run script_run(const char *tag, const char *preload, size_t preload_len,
			   const char *script, size_t script_len, struct run_result *res,
			   char *err, size_t errlen);

#endif
