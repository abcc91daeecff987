/* The jail's init (pid 1 of a sandbox's pid namespace), as a fresh image of
 * the daemon's own binary: see init_main in jail/spawn.c. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jail/jail.h"
#include "jail/spawn.h"

_Noreturn void jail_init_loop(pid_t program, int status_fd)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, 0); /* orphans come here too */
		if (pid == program) {
			(void)!write(status_fd, &status, sizeof(status));
			_exit(0);
		}
		if (pid < 0 && errno != EINTR)
			_exit(1);
	}
}

bool jail_init_dispatch(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[0], JAIL_INIT_NAME) != 0)
		return false;
	/* exec made it dumpable again: the program must not read or trace it */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	jail_init_loop((pid_t)atoi(argv[1]), atoi(argv[2]));
}
