/* See script_run.h. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <stdio.h>

#include "fcgi/admission.h"
#include "fcgi/script_run.h"
#include "jail/languages.h"

enum script_run script_run(const char *tag, const char *preload, size_t preload_len,
			   const char *script, size_t script_len, struct run_result *res,
			   char *err, size_t errlen)
{
	const struct language *python = language_find("python3");

	if (!python) {
		snprintf(err, errlen, "python3 is not available");
		return SCRIPT_NO_SANDBOX;
	}
	if (!admission_enter())
		return SCRIPT_BUSY;
	if (admission_start(-1) != ADMISSION_STARTED) {
		admission_leave();
		return SCRIPT_BUSY;
	}
	int rc = jail_run(python, false, tag, preload, preload_len, script, script_len, -1, res,
			  err, errlen);
	admission_finish();
	admission_leave();
	return rc == 0 ? SCRIPT_RAN : SCRIPT_NO_SANDBOX;
}
