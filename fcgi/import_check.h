/* The import check: every Python module the sandbox can see is imported once
 * in a sandbox, and each one that cannot be imported there is logged with
 * the reason, so that an operator sees a package the jail breaks before a
 * user does. Runs in the background: at start-up (check_imports) and after
 * each /v1/sandbox/dependencies/update. */
#ifndef SANDCELL_FCGI_IMPORT_CHECK_H
#define SANDCELL_FCGI_IMPORT_CHECK_H

/* Starts a check in the background, unless one is still running. Only after
 * admission_init and executor_init. */
void import_check_start(void);

/* Waits for a running check to end (its sandbox ends by its timeout, or when
 * the executor kills every sandbox). Before executor_shutdown. */
void import_check_stop(void);

#endif
