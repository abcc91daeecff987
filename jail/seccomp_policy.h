/* The system-call policy of a sandbox, built once per language with
 * libseccomp and exported as a classic BPF program that every sandbox of that
 * language loads with seccomp(2) just before exec. */
#ifndef SANDCELL_SECCOMP_POLICY_H
#define SANDCELL_SECCOMP_POLICY_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>

struct policy_options {
	const char *const *language_syscalls; /* names the language needs beyond the base list; NULL-terminated, may be NULL */
	const int *extra_syscalls;            /* ALLOWED_SYSCALLS numbers, added */
	size_t n_extra_syscalls;
	bool allow_processes;                 /* fork/vfork/clone without CLONE_THREAD */
	bool network;                         /* network sandbox: socket(AF_UNIX) refused too */
	bool notify;                          /* denied calls go to the supervisor (SECCOMP_RET_USER_NOTIF)
					       * instead of failing with EPERM in the kernel */
};

/* Builds the policy. Returns a malloc'd program (free with
 * seccomp_policy_free), or NULL with a message in err. */
struct sock_fprog *seccomp_policy_build(const struct policy_options *opt, char *err, size_t errlen);
void seccomp_policy_free(struct sock_fprog *prog);

#endif
