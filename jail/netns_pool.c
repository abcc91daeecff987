/* Private network namespaces for network sandboxes; see netns_pool.h.
 *
 * Theory of operation
 *
 * A network sandbox must not share a network namespace with the host or
 * with another run: there it would see the host's sockets in /proc/net,
 * reach abstract unix names, and meet other tenants. So every network
 * sandbox joins a namespace of its own, lent from this pool for the life
 * of the sandbox, never to two live sandboxes at once.
 *
 * A namespace is made on first need and kept for later runs, because
 * connecting one costs far more than a run (~110 ms of CPU, ~30 MB): a
 * holder process is cloned into a new network namespace, sets its sysctls
 * (no TIME_WAIT sockets are kept), drops every capability and waits: it
 * keeps the namespace and lets us read its /proc/net. pasta (Debian's passt package) then joins it through a path its
 * AppArmor profile allows (see show_namespace_to_pasta), gives
 * it a copy of the host's address and routes, and carries its TCP, UDP and
 * ICMP as ordinary sockets of its own on the host: nothing is added to the
 * host's interfaces, routes or firewall, and nothing is forwarded into the
 * namespace (-t/-u/-T/-U none). pasta confines itself (own mount namespace,
 * its own seccomp filter, no_new_privs). Both processes die with sandcelld
 * (PR_SET_PDEATHSIG), so nothing outlives it.
 *
 * The eBPF egress policy still judges every connect, sendmsg and bind of
 * the sandbox: its cgroup programs run in whatever namespace the socket is.
 *
 * A namespace comes back when its sandbox's processes are all gone. If any
 * socket is still listed in it then (a TCP connection closing, a unix
 * socket in flight), the next run would see it: the namespace is dropped
 * instead and a new one made when needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jail/netns_pool.h"

#define HOLDER_TIMEOUT_MS 2000
#define PASTA_TIMEOUT_MS 5000

enum netns_state { NS_NONE, NS_IDLE, NS_LENT };

struct netns {
	enum netns_state state;
	pid_t holder, pasta;
	int ctl;    /* our end of the holder's socket: closing it ends the holder */
	int fd;     /* the namespace */
};

static struct {
	pthread_mutex_t lock;
	struct netns *ns;
	unsigned capacity;
	char pasta[4096];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- the holder: a process that keeps the namespace and lets us look in ---- */

static int write_file(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

static int drop_all_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Runs in a raw clone of a threaded process: system calls only. */
static _Noreturn void holder_main(int ctl)
{
	char status = 0, c;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		status = 1;
	/* /proc/sys/net is this namespace's: a closed connection leaves no
	 * TIME_WAIT socket (with its peer's address) for the next tenant */
	if (write_file("/proc/sys/net/ipv4/tcp_max_tw_buckets", "0") != 0)
		status = 3;
	if (drop_all_capabilities() != 0)
		status = 2;
	if (dup2(ctl, 0) != 0)
		_exit(1);
	syscall(SYS_close_range, 3, ~0U, 0);
	if (write(0, &status, 1) != 1 || status)
		_exit(1);
	while (read(0, &c, 1) > 0)
		;
	_exit(0);
}

static int wait_byte(int fd, int timeout_ms, char *b)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	return read(fd, b, 1) == 1 ? 0 : -1;
}

static void reap(pid_t pid)
{
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

static int start_holder(struct netns *n, char *err, size_t errlen)
{
	int sv[2];
	char status;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0)
		holder_main(sv[1]);
	close(sv[1]);
	if (pid < 0) {
		snprintf(err, errlen, "clone a network namespace: %s", strerror(errno));
		close(sv[0]);
		return -1;
	}
	n->holder = pid;
	n->ctl = sv[0];
	if (wait_byte(n->ctl, HOLDER_TIMEOUT_MS, &status) != 0 || status != 0) {
		static const char *const step[] = { "start", "set its parent-death signal",
						    "drop its capabilities", "set tcp_max_tw_buckets" };
		snprintf(err, errlen, "the namespace's holder could not %s",
			 step[status >= 1 && status <= 3 ? status : 0]);
		return -1;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	n->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (n->fd < 0) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- pasta ------------------------------------------------------------------ */

/* Debian's AppArmor profile for pasta lets it open a namespace at
 * /run/user/<uid>/netns/<name>, or /proc/<pid>/ns/net only of a process it
 * may ptrace (none: the profile has no ptrace rule). So pasta's child makes
 * that path in a mount namespace of its own, nothing of it visible on the
 * host: a tmpfs on /run, and the holder's namespace bound there. Runs in a
 * raw clone: system calls only. */
#define PASTA_NETNS_PATH "/run/user/0/netns/sandbox"
static int show_namespace_to_pasta(const char *proc_ns)
{
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0755") != 0 ||
	    mkdir("/run/user", 0755) != 0 || mkdir("/run/user/0", 0700) != 0 ||
	    mkdir("/run/user/0/netns", 0700) != 0)
		return -1;
	int fd = open(PASTA_NETNS_PATH, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	return mount(proc_ns, PASTA_NETNS_PATH, NULL, MS_BIND, NULL);
}

static pid_t exec_pasta(pid_t holder)
{
	char nspath[64];
	snprintf(nspath, sizeof(nspath), "/proc/%d/ns/net", (int)holder);
	/* root, but pasta keeps only CAP_SYS_ADMIN: as "nobody" it could not
	 * join a namespace of root's */
	char *const argv[] = { pool.pasta, "--quiet", "--foreground", "--runas", "0:0",
			       "--config-net", "--no-map-gw", "--no-dhcp", "--no-dhcpv6",
			       "-t", "none", "-u", "none", "-T", "none", "-U", "none",
			       "--netns", PASTA_NETNS_PATH, NULL };
	char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return -1;
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid == 0) {
		/* stderr stays: pasta's errors go to sandcelld's log */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || dup2(devnull, 0) != 0 ||
		    dup2(devnull, 1) != 1)
			_exit(126);
		syscall(SYS_close_range, 3, ~0U, 0);
		if (show_namespace_to_pasta(nspath) != 0)
			_exit(125);
		/* an ignored SIGPIPE survives exec, and pasta takes it for a
		 * failure to set its own handlers */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(devnull);
	return pid;
}

/* A default route's line of /proc/net/route ("<iface>\t00000000\t...") or
 * /proc/net/ipv6_route (destination ::/0 first, the interface last), but
 * not lo's (the kernel's unreachable route). */
static bool is_default_route(const char *line, bool v6)
{
	if (v6)
		return !strncmp(line, "00000000000000000000000000000000 00 ", 36) &&
		       strcmp(line + strlen(line) - 3, " lo") != 0;
	const char *tab = strchr(line, '\t');
	return tab && !strncmp(tab, "\t00000000\t", 10);
}

/* pasta has configured the namespace once it has a default route. */
static bool has_default_route(pid_t holder)
{
	char path[64], buf[16384];
	for (int v6 = 0; v6 <= 1; v6++) {
		snprintf(path, sizeof(path), "/proc/%d/net/%s", (int)holder, v6 ? "ipv6_route" : "route");
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[len > 0 ? len : 0] = 0;
		for (char *line = buf, *next; *line; line = next) {
			next = strchrnul(line, '\n');
			if (*next)
				*next++ = 0;
			if (is_default_route(line, v6))
				return true;
		}
	}
	return false;
}

static int start_pasta(struct netns *n, char *err, size_t errlen)
{
	n->pasta = exec_pasta(n->holder);
	if (n->pasta < 0) {
		snprintf(err, errlen, "start %s: %s", pool.pasta, strerror(errno));
		return -1;
	}
	for (int waited = 0; waited < PASTA_TIMEOUT_MS; waited += 2) {
		int status;
		if (waitpid(n->pasta, &status, WNOHANG) == n->pasta) {
			n->pasta = -1;
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			if (code >= 125)
				snprintf(err, errlen, "%s: %s", pool.pasta,
					 code == 127 ? "cannot be executed" :
					 code == 126 ? "could not set up its descriptors" :
					 "could not be shown the namespace (its own mount namespace)");
			else
				snprintf(err, errlen,
					 "%s exited (%s %d) before the namespace was connected; its "
					 "message is in this log",
					 pool.pasta, WIFEXITED(status) ? "status" : "signal",
					 WIFEXITED(status) ? code : WTERMSIG(status));
			return -1;
		}
		if (has_default_route(n->holder))
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
	}
	snprintf(err, errlen, "%s did not connect the namespace within %d ms", pool.pasta,
		 PASTA_TIMEOUT_MS);
	return -1;
}

/* ---- one namespace ----------------------------------------------------------- */

static void drop(struct netns *n)
{
	if (n->pasta > 0)
		kill(n->pasta, SIGKILL);
	reap(n->pasta);
	if (n->ctl >= 0)
		close(n->ctl); /* the holder reads EOF and exits */
	if (n->holder > 0)
		kill(n->holder, SIGKILL);
	reap(n->holder);
	if (n->fd >= 0)
		close(n->fd);
	*n = (struct netns){ .state = NS_NONE, .holder = -1, .pasta = -1, .ctl = -1, .fd = -1 };
}

static int make(struct netns *n, char *err, size_t errlen)
{
	*n = (struct netns){ .state = NS_NONE, .holder = -1, .pasta = -1, .ctl = -1, .fd = -1 };
	if (start_holder(n, err, errlen) != 0 || start_pasta(n, err, errlen) != 0) {
		drop(n);
		return -1;
	}
	return 0;
}

/* Reaps (and forgets) a holder or pasta that died, so no pid is reused. */
static bool alive(struct netns *n)
{
	if (waitpid(n->holder, NULL, WNOHANG) != 0)
		n->holder = -1;
	if (waitpid(n->pasta, NULL, WNOHANG) != 0)
		n->pasta = -1;
	return n->holder > 0 && n->pasta > 0;
}

/* True if any socket of any kind is listed in the namespace. */
static bool holds_sockets(const struct netns *n)
{
	static const char *const kinds[] = { "tcp", "tcp6", "udp", "udp6", "raw", "raw6",
					     "icmp", "icmp6", "unix", "udplite", "udplite6" };
	char path[64], buf[512];

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(path, sizeof(path), "/proc/%d/net/%s", (int)n->holder, kinds[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf));
		close(fd);
		/* the header line only: nothing in it */
		char *nl = len > 0 ? memchr(buf, '\n', (size_t)len) : NULL;
		if (nl && nl + 1 < buf + len)
			return true;
	}
	return false;
}

/* ---- the pool ----------------------------------------------------------------- */

int netns_pool_init(unsigned capacity, const char *pasta, char *err, size_t errlen)
{
	if (access(pasta, X_OK) != 0) {
		snprintf(err, errlen,
			 "%s: %s (network sandboxes get their own network namespace through pasta, "
			 "from Debian's passt package)",
			 pasta, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&pool.lock);
	pool.ns = calloc(capacity, sizeof(*pool.ns));
	pool.capacity = pool.ns ? capacity : 0;
	snprintf(pool.pasta, sizeof(pool.pasta), "%s", pasta);
	for (unsigned i = 0; i < pool.capacity; i++)
		pool.ns[i] = (struct netns){ .holder = -1, .pasta = -1, .ctl = -1, .fd = -1 };
	pthread_mutex_unlock(&pool.lock);
	if (!pool.ns) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

void netns_pool_shutdown(void)
{
	pthread_mutex_lock(&pool.lock);
	for (unsigned i = 0; i < pool.capacity; i++)
		if (pool.ns[i].state != NS_NONE)
			drop(&pool.ns[i]);
	free(pool.ns);
	pool.ns = NULL;
	pool.capacity = 0;
	pthread_mutex_unlock(&pool.lock);
}

int netns_lease(int *fd, char *err, size_t errlen)
{
	int index = -1, fresh = -1;

	pthread_mutex_lock(&pool.lock);
	for (unsigned i = 0; i < pool.capacity && index < 0; i++) {
		struct netns *n = &pool.ns[i];
		if (n->state == NS_IDLE && !alive(n))
			drop(n); /* pasta died (or was killed): make it again */
		if (n->state == NS_IDLE)
			index = (int)i;
		else if (n->state == NS_NONE && fresh < 0)
			fresh = (int)i;
	}
	if (index < 0 && fresh >= 0) {
		/* made under the lock: one at a time, on a pool that rarely grows */
		if (make(&pool.ns[fresh], err, errlen) == 0)
			index = fresh;
	} else if (index < 0) {
		snprintf(err, errlen, "every private network namespace is in use");
	}
	if (index >= 0) {
		pool.ns[index].state = NS_LENT;
		*fd = pool.ns[index].fd;
	}
	pthread_mutex_unlock(&pool.lock);
	return index;
}

void netns_return(int index)
{
	pthread_mutex_lock(&pool.lock);
	if (index >= 0 && (unsigned)index < pool.capacity && pool.ns[index].state == NS_LENT) {
		struct netns *n = &pool.ns[index];
		if (holds_sockets(n) || !alive(n))
			drop(n);
		else
			n->state = NS_IDLE;
	}
	pthread_mutex_unlock(&pool.lock);
}
