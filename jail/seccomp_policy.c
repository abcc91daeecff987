/* The system-call policy of a sandbox.
 *
 * Theory of operation
 *
 * The policy is an allowlist built with libseccomp for the native
 * architecture only and exported as classic BPF, once per language (and per
 * network mode); every sandbox of that kind loads the same program with
 * seccomp(2) just before exec. Anything not listed here fails:
 *
 *   - unknown system calls fail with EPERM in the kernel, so the program gets
 *     a readable PermissionError / EPERM instead of dying; with opt->notify
 *     they go to the supervisor instead (SECCOMP_RET_USER_NOTIF), which
 *     answers EPERM and records what was tried;
 *   - clone3 fails with ENOSYS: its flags live in memory that BPF cannot
 *     read, and glibc (and thus Python and Node) fall back to clone, whose
 *     flags we can check; with EPERM glibc would not fall back;
 *   - system calls of another ABI (i386 via int 0x80, x32 numbers with bit
 *     30 set) kill the whole process: they would bypass every rule here.
 *     libseccomp already sends x32 numbers on an x86_64 filter to the
 *     bad-architecture action, so no extra rule is needed (the unit test
 *     checks it).
 *
 * The list was taken from `strace -f -c` of /usr/bin/python3 (3.11) and
 * /usr/bin/node (20) running typical programs (json, re, datetime, zoneinfo,
 * threads, ssl, requests/httpx against a local server, jinja2; fs, http,
 * fetch, crypto, zlib, worker_threads, timers), plus the calls strace does not
 * count (exit, rt_sigreturn, restart_syscall), plus close relatives that
 * grant no new power (stat vs statx, dup vs dup3, ...) so that ordinary
 * library paths do not break. Whatever is not here is deliberately absent:
 * ptrace, process_vm_*, mount and the new mount API, pivot_root, chroot,
 * unshare, setns, bpf, perf_event_open, the key-ring calls, userfaultfd,
 * io_uring, kexec, modules, reboot, swap, acct, quotactl, file handles,
 * iopl/ioperm, lookup_dcookie, fanotify, kcmp, the set*id family, prctl.
 *
 * Exceptions carved out of an allowed call (setsockopt except UDP_ENCAP, ...) cannot
 * be written as "allow" plus "refuse these": libseccomp lets an unconditional
 * rule override every conditional one of the same call, refuses a rule whose
 * action is the default action, and cannot compare one argument twice. They
 * are written as allow rules over the complement instead (allow_all_but).
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jail/seccomp_policy.h"

/* The kernel reads int and unsigned int arguments as 32 bits: compare only
 * those, so that garbage in the upper half cannot slip past a rule. */
#define LOW32 0xffffffffULL

/* The type field of socket(2)'s second argument (SOCK_NONBLOCK and
 * SOCK_CLOEXEC live above it). */
#define SOCKET_TYPE_BITS 0xfULL

/* Every clone flag that creates a namespace. CLONE_NEWTIME (0x80) overlaps the
 * exit-signal byte of clone(2) and exists only for clone3/unshare. */
#define CLONE_NAMESPACE_FLAGS                                                           \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |  \
	 CLONE_NEWPID | CLONE_NEWNET)

/* Allowed without conditions, for both interpreters. */
static const char *const base_syscalls[] = {
	/* Process life: exec is the very next call after the filter is
	 * loaded; exit and signal return are needed by every program;
	 * restart_syscall resumes sleeps interrupted by a stop signal. */
	"execve", "exit", "exit_group", "rt_sigreturn", "restart_syscall",

	/* Memory. brk/mmap family for malloc and the loaders; mremap for
	 * growing lists and buffers; madvise for V8 and glibc trimming; msync
	 * for Python's mmap.flush; pkey_* because V8 uses memory protection
	 * keys where the CPU has them (own address space only). */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync",
	"pkey_alloc", "pkey_free", "pkey_mprotect",

	/* Threads and their synchronisation (Python threading, Node's worker
	 * pool and worker_threads). clone itself is filtered below. */
	"futex", "set_robust_list", "set_tid_address", "rseq", "gettid", "sched_yield",
	"sched_getaffinity", "arch_prctl",

	/* Signals: handlers, masks, waiting; kill/tgkill reach only this
	 * sandbox's own pid namespace (abort() and pthread_kill use tgkill). */
	"rt_sigprocmask", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigpending",
	"sigaltstack", "kill", "tgkill", "pause",

	/* Reaping: only ever the caller's own children. */
	"wait4", "waitid",

	/* Descriptors and plain I/O on what the sandbox already holds. */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "lseek",
	"close", "close_range", "dup", "dup2", "dup3", "fcntl", "pipe", "pipe2", "flock",
	"sendfile", "copy_file_range",

	/* Waiting for events (asyncio, libuv, Python's selectors). */
	"poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",

	/* The file system the sandbox sees: read-only interpreter files and
	 * its own /tmp. Permissions and the mount namespace decide what is
	 * reachable; these calls add no reach of their own. */
	"open", "openat", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
	"access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd",
	"chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat",
	"renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
	"truncate", "ftruncate", "fsync", "fdatasync", "utimensat", "umask",
	/* shutil.copystat lists extended attributes and only tolerates
	 * ENOTSUP/ENODATA, not EPERM: reading them is harmless. */
	"getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",

	/* Time and timers: the vDSO answers most clock reads, but CPU-time
	 * clocks (time.process_time) and fallbacks go to the kernel;
	 * alarm/setitimer are how Python code times itself out. */
	"clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
	"alarm", "setitimer", "getitimer",

	/* Identity and limits, read-only or lowering only (no capabilities:
	 * prlimit64 cannot raise a hard limit or touch another uid). */
	"getpid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid",
	"getresgid", "getpgrp", "getpgid", "getsid", "getrlimit", "prlimit64", "getrusage",
	"times", "capget",

	/* Host facts interpreters read at start-up: os.cpu_count fallbacks,
	 * Node's heap sizing (sysinfo), platform and uuid (uname), the
	 * entropy for hash seeds, crypto and uuid4 (getrandom). */
	"uname", "sysinfo", "getrandom",

	/* Sockets already created (socket() itself is filtered below). In a
	 * sandbox without network they reach only its own empty namespace;
	 * with network the BPF egress programs decide connect and sendmsg.
	 * bind stays: urllib3 binds ::1 to probe for IPv6 support.
	 * sendmmsg is glibc's resolver sending A and AAAA queries at once. */
	"connect", "bind", "getsockname", "getpeername", "getsockopt", "shutdown",
	"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
	NULL,
};

/* Only in sandboxes without network: accepting connections is harmless in
 * an empty namespace of its own, but in the host's it would open a port. */
static const char *const listen_syscalls[] = {"listen", "accept", "accept4", NULL};

/* Only with allow_processes: new processes (clone without CLONE_THREAD is
 * handled with the clone rules). */
static const char *const process_syscalls[] = {"fork", "vfork", "setsid", "setpgid", NULL};

/* Handled by rules of their own below; an unconditional allow from
 * ALLOWED_SYSCALLS would undo their argument checks, so such numbers are
 * skipped (the policy stays closed). */
static const char *const filtered_syscalls[] = {
	"clone", "clone3", "socket", "socketpair", "ioctl", "personality", "rt_sigaction",
	"setsockopt", NULL,
};

struct builder {
	scmp_filter_ctx ctx;
	char *err;
	size_t errlen;
};

static int add_rule(struct builder *b, uint32_t action, int nr, unsigned n,
		    const struct scmp_arg_cmp *cmp, const char *what)
{
	int rc = seccomp_rule_add_array(b->ctx, action, nr, n, cmp);
	if (rc < 0) {
		snprintf(b->err, b->errlen, "seccomp rule for %s (syscall %d): %s", what, nr,
			 strerror(-rc));
		return -1;
	}
	return 0;
}

static int allow_name(struct builder *b, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		snprintf(b->err, b->errlen, "seccomp: unknown system call name \"%s\"", name);
		return -1;
	}
	return add_rule(b, SCMP_ACT_ALLOW, nr, 0, NULL, name);
}

static int allow_names(struct builder *b, const char *const *names)
{
	for (size_t i = 0; names && names[i]; i++)
		if (allow_name(b, names[i]) < 0)
			return -1;
	return 0;
}

static bool is_filtered(int nr)
{
	for (size_t i = 0; filtered_syscalls[i]; i++)
		if (seccomp_syscall_resolve_name(filtered_syscalls[i]) == nr)
			return true;
	return false;
}

/* ALLOWED_SYSCALLS: plain numbers of the native architecture. */
static int allow_numbers(struct builder *b, const int *nrs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (nrs[i] < 0) {
			snprintf(b->err, b->errlen, "seccomp: bad system call number %d", nrs[i]);
			return -1;
		}
		if (is_filtered(nrs[i]))
			continue;
		if (add_rule(b, SCMP_ACT_ALLOW, nrs[i], 0, NULL, "ALLOWED_SYSCALLS") < 0)
			return -1;
	}
	return 0;
}

/* clone: threads always (CLONE_THREAD set, no namespace flag); other
 * children only with allow_processes, and never into new namespaces (a new
 * user namespace would hand the program a full set of capabilities there). */
static int add_clone_rules(struct builder *b, bool allow_processes)
{
	struct scmp_arg_cmp cmp;

	if (allow_processes)
		cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0);
	else
		cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS | CLONE_THREAD,
			      CLONE_THREAD);
	if (add_rule(b, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &cmp, "clone") < 0)
		return -1;
	/* clone3 hides its flags in memory: ENOSYS makes glibc use clone. */
	return add_rule(b, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL, "clone3");
}

/* socket(): unix, IPv4 and IPv6 only, stream and datagram only (plus
 * seqpacket for unix). No raw or packet sockets (SOCK_RAW, SOCK_PACKET), no
 * netlink, packet, vsock, alg, ... families. A network sandbox gets no
 * AF_UNIX socket() at all: in its own namespace there is nothing to reach,
 * but in the operator's `netns` it would reach the abstract sockets of
 * everything there, other sandboxes included (and a second wall costs
 * the runtimes nothing). */
static int add_socket_rules(struct builder *b, bool network)
{
	static const struct {
		int family;
		int type;
	} allowed[] = {
		{AF_UNIX, SOCK_STREAM}, {AF_UNIX, SOCK_DGRAM},  {AF_UNIX, SOCK_SEQPACKET},
		{AF_INET, SOCK_STREAM}, {AF_INET, SOCK_DGRAM},  {AF_INET6, SOCK_STREAM},
		{AF_INET6, SOCK_DGRAM},
	};

	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
		if (network && allowed[i].family == AF_UNIX)
			continue;
		struct scmp_arg_cmp cmp[2] = {
			SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (scmp_datum_t)allowed[i].family),
			SCMP_A1(SCMP_CMP_MASKED_EQ, SOCKET_TYPE_BITS, (scmp_datum_t)allowed[i].type),
		};
		if (add_rule(b, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, cmp, "socket") < 0)
			return -1;
	}
	/* socketpair only makes sense for AF_UNIX (asyncio and subprocess use a
	 * stream pair). A network sandbox in the operator's `netns` shares it,
	 * and with it the abstract unix socket names of everyone there: a datagram pair can be
	 * disconnected (connect AF_UNSPEC) and then send to and receive from any
	 * of them, so it gets stream pairs only, which stay connected to each
	 * other. (Such a socket can still bind an abstract name: it can never
	 * listen, but it holds the name.) */
	struct scmp_arg_cmp pair[2] = {
		SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_UNIX),
		SCMP_A1(SCMP_CMP_MASKED_EQ, SOCKET_TYPE_BITS, SOCK_STREAM),
	};
	return add_rule(b, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), network ? 2 : 1, pair,
			"socketpair");
}

/* Allows nr for every value of argument arg whose low 32 bits are not in
 * refused (ascending). The kernel reads the argument as 32 bits, so the upper
 * half is ignored here too. The complement is cut into aligned power-of-two
 * blocks, one masked comparison each (about 8 per refused value). */
static int allow_all_but_when(struct builder *b, int nr, const struct scmp_arg_cmp *when,
			      unsigned arg, const uint32_t *refused, size_t n, const char *what);

static int allow_all_but(struct builder *b, int nr, unsigned arg, const uint32_t *refused,
			 size_t n, const char *what)
{
	return allow_all_but_when(b, nr, NULL, arg, refused, n, what);
}

/* allow_all_but, for the calls that also match *when (if not NULL): one more
 * comparison, of another argument, in every rule. */
static int allow_all_but_when(struct builder *b, int nr, const struct scmp_arg_cmp *when,
			      unsigned arg, const uint32_t *refused, size_t n, const char *what)
{
	uint64_t lo = 0;

	for (size_t i = 0; i <= n; i++) {
		uint64_t end = i < n ? refused[i] : 1ULL << 32; /* exclusive */
		while (lo < end) {
			/* The largest aligned block at lo that stays below end. */
			unsigned k = lo ? (unsigned)__builtin_ctzll(lo) : 32;
			while (lo + (1ULL << k) > end)
				k--;
			struct scmp_arg_cmp cmp[2] = { {
				.arg = arg,
				.op = SCMP_CMP_MASKED_EQ,
				.datum_a = LOW32 & ~((1ULL << k) - 1),
				.datum_b = lo,
			} };
			if (when)
				cmp[1] = *when;
			if (add_rule(b, SCMP_ACT_ALLOW, nr, when ? 2 : 1, cmp, what) < 0)
				return -1;
			lo += 1ULL << k;
		}
		if (i < n)
			lo = (uint64_t)refused[i] + 1;
	}
	return 0;
}

/* ioctl: only what the runtimes were seen to use, traced under both of them
 * (stdlib, asyncio, threads, ssl, sqlite3, requests/httpx/jinja2; fs, http,
 * crypto, zlib, worker_threads): TCGETS (isatty), FIONBIO (libuv's
 * non-blocking), FIOCLEX (libuv, os.set_inheritable); plus their harmless
 * siblings FIONCLEX, FIONREAD (bytes waiting) and TIOCGWINSZ (terminal size:
 * ENOTTY on the pipes a sandbox has). Everything else, SIOCGIFCONF (the
 * host's interface addresses) and the terminal-injecting TIOCSTI among them,
 * is refused. */
static int add_ioctl_rules(struct builder *b)
{
	static const uint32_t allowed[] = {TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX};

	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
		struct scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, allowed[i]);
		if (add_rule(b, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &cmp, "ioctl") < 0)
			return -1;
	}
	return 0;
}

/* setsockopt: every option but those that reach rarely used kernel code with
 * a history of holes, which neither runtime sets: UDP encapsulation
 * (UDP_ENCAP: ESP-in-UDP, L2TP), TCP upper-layer protocols (TCP_ULP: kernel
 * TLS), IPsec policies (IP_/IPV6_XFRM_POLICY, *_IPSEC_POLICY), IPV6_ADDRFORM,
 * and socket filter programs (SO_ATTACH_*). Written as: any level but these
 * five, or one of them with any option but the refused ones. */
static int add_setsockopt_rules(struct builder *b)
{
	static const struct {
		uint32_t level;
		uint32_t options[4]; /* ascending */
		size_t n;
	} refused[] = { /* ascending levels */
		{ SOL_IP, { IP_IPSEC_POLICY, IP_XFRM_POLICY }, 2 },
		{ SOL_SOCKET, { SO_ATTACH_FILTER, SO_ATTACH_BPF, SO_ATTACH_REUSEPORT_CBPF,
				SO_ATTACH_REUSEPORT_EBPF }, 4 },
		{ SOL_TCP, { TCP_ULP }, 1 },
		{ SOL_UDP, { UDP_ENCAP }, 1 },
		{ SOL_IPV6, { IPV6_ADDRFORM, IPV6_IPSEC_POLICY, IPV6_XFRM_POLICY }, 3 },
	};
	uint32_t levels[sizeof(refused) / sizeof(refused[0])];
	size_t n = sizeof(refused) / sizeof(refused[0]);

	for (size_t i = 0; i < n; i++)
		levels[i] = refused[i].level;
	if (allow_all_but(b, SCMP_SYS(setsockopt), 1, levels, n, "setsockopt") < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct scmp_arg_cmp level = SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, refused[i].level);
		if (allow_all_but_when(b, SCMP_SYS(setsockopt), &level, 2, refused[i].options,
				       refused[i].n, "setsockopt") < 0)
			return -1;
	}
	return 0;
}

/* personality: querying (0xffffffff) and setting the default (PER_LINUX)
 * only; other personalities change address-space layout (ADDR_NO_RANDOMIZE,
 * READ_IMPLIES_EXEC, ...). */
static int add_personality_rules(struct builder *b)
{
	static const scmp_datum_t allowed[] = {PER_LINUX, 0xffffffffULL};

	for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
		struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, allowed[i]);
		if (add_rule(b, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1, &cmp, "personality") < 0)
			return -1;
	}
	return 0;
}

/* rt_sigaction: every signal but SIGXFSZ. CPython and Node set SIGXFSZ to
 * SIG_IGN at start-up, so a write past RLIMIT_FSIZE would only fail with
 * EFBIG and the run could not be told apart from any other error. With the
 * supervisor (notify), rt_sigaction(SIGXFSZ) goes to it: a call without an
 * old action (Node's) is answered as done without doing it, so the limit
 * ends the program with SIGXFSZ ("error: file size limit exceeded"); the
 * Python runner resets the signal itself. Without a supervisor the call is
 * simply allowed. */
static int add_sigaction_rules(struct builder *b, bool notify)
{
	static const uint32_t routed[] = {SIGXFSZ};

	if (allow_all_but(b, SCMP_SYS(rt_sigaction), 0, routed, 1, "rt_sigaction") < 0)
		return -1;
	if (notify)
		return 0;
	struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, SIGXFSZ);
	return add_rule(b, SCMP_ACT_ALLOW, SCMP_SYS(rt_sigaction), 1, &cmp, "rt_sigaction");
}

static int add_all_rules(struct builder *b, const struct policy_options *opt)
{
	if (add_sigaction_rules(b, opt->notify) < 0)
		return -1;
	if (add_ioctl_rules(b) < 0 || add_clone_rules(b, opt->allow_processes) < 0 ||
	    add_socket_rules(b, opt->network) < 0 || add_personality_rules(b) < 0 ||
	    add_setsockopt_rules(b) < 0)
		return -1;
	if (allow_names(b, base_syscalls) < 0)
		return -1;
	if (!opt->network && allow_names(b, listen_syscalls) < 0)
		return -1;
	if (opt->allow_processes && allow_names(b, process_syscalls) < 0)
		return -1;
	if (allow_names(b, opt->language_syscalls) < 0)
		return -1;
	return allow_numbers(b, opt->extra_syscalls, opt->n_extra_syscalls);
}

/* seccomp_export_bpf writes to a descriptor; a memfd keeps it in memory. */
static struct sock_fprog *export_program(struct builder *b)
{
	struct sock_fprog *prog = NULL;
	int fd = memfd_create("sandcell-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		snprintf(b->err, b->errlen, "memfd_create for the seccomp program: %m");
		return NULL;
	}
	int rc = seccomp_export_bpf(b->ctx, fd);
	if (rc < 0) {
		snprintf(b->err, b->errlen, "seccomp_export_bpf: %s", strerror(-rc));
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(b->err, b->errlen, "fstat of the seccomp memfd: %m");
		goto out;
	}
	size_t len = (size_t)st.st_size;
	if (len == 0 || len % sizeof(struct sock_filter) != 0 ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		snprintf(b->err, b->errlen, "seccomp program has a bad size (%zu bytes)", len);
		goto out;
	}
	prog = calloc(1, sizeof *prog);
	struct sock_filter *insns = malloc(len);
	if (!prog || !insns) {
		snprintf(b->err, b->errlen, "out of memory for the seccomp program");
		free(insns);
		free(prog);
		prog = NULL;
		goto out;
	}
	ssize_t got = pread(fd, insns, len, 0);
	if (got < 0 || (size_t)got != len) {
		snprintf(b->err, b->errlen, "reading the seccomp memfd: %s",
			 got < 0 ? strerror(errno) : "short read");
		free(insns);
		free(prog);
		prog = NULL;
		goto out;
	}
	prog->len = (unsigned short)(len / sizeof(struct sock_filter));
	prog->filter = insns;
out:
	close(fd);
	return prog;
}

struct sock_fprog *seccomp_policy_build(const struct policy_options *opt, char *err, size_t errlen)
{
	uint32_t default_action = opt->notify ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EPERM);
	struct builder b = {.ctx = seccomp_init(default_action), .err = err, .errlen = errlen};
	struct sock_fprog *prog = NULL;

	if (!b.ctx) {
		snprintf(err, errlen, "seccomp_init failed (libseccomp or kernel too old?)");
		return NULL;
	}
	/* Other ABIs (i386, x32) would see none of these rules: kill. */
	int rc = seccomp_attr_set(b.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp bad-architecture action: %s", strerror(-rc));
		goto out;
	}
	/* A binary tree of syscall numbers instead of a linear list: the
	 * allowlist is long and every system call of the sandbox runs it. */
	seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (add_all_rules(&b, opt) < 0)
		goto out;
	prog = export_program(&b);
out:
	seccomp_release(b.ctx);
	return prog;
}

void seccomp_policy_free(struct sock_fprog *prog)
{
	if (!prog)
		return;
	free(prog->filter);
	free(prog);
}
