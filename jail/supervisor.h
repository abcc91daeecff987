/* The seccomp supervisor: one thread answers the system calls that the
 * sandboxes' policies send to user space (SECCOMP_RET_USER_NOTIF). */
#ifndef SANDCELL_SUPERVISOR_H
#define SANDCELL_SUPERVISOR_H

#include <stddef.h>

int supervisor_start(unsigned nslots, char *err, size_t errlen);
void supervisor_stop(void);

/* Takes over notify_fd, the listener of the sandbox in slot, and resets the
 * slot's count of refused calls. Returns 0, or -1 with err (fd closed). */
int supervisor_watch(unsigned slot, int notify_fd, char *err, size_t errlen);

/* Stops watching slot and closes its listener. */
void supervisor_forget(unsigned slot);

/* System calls of the sandbox in slot refused so far. */
unsigned long supervisor_refused(unsigned slot);

#endif
