/* Network egress policy for sandboxes: the loader of the eBPF cgroup programs
 * (egress.bpf.c) and the API that fills their maps. bpf/ knows cgroups and
 * addresses, not requests.
 *
 * Life cycle (sandcelld):
 *
 *   egress_check()          at --check / start-up: can this host do it?
 *   egress_open(parent cgroup, pin dir)
 *                           once: load, attach to the parent cgroup of all
 *                           sandboxes, pin; or adopt the pins a previous
 *                           sandcelld left (its policies keep applying
 *                           throughout a restart)
 *   egress_set_policy(id, rules)       for each configured policy
 *   egress_assign(cgroup id, policy)   per network sandbox, before its code runs
 *   egress_unassign(cgroup id)         when the sandbox is gone
 *   egress_forget_blocked(cgroup id)   its blocked-attempt counters, too
 *   egress_poll_events()    from one thread: blocked attempts, for the log
 *   egress_close()          at exit: the pins keep enforcing
 *   egress_detach_and_unpin()          clean removal (tests, uninstall)
 *
 * Every cgroup below the parent that has no policy assigned is denied every
 * inet socket, connect, sendmsg and bind: the default is closed.
 *
 * Rules and how a destination is judged:
 *   A policy is an ordered list of rules. Addresses are IPv6; an IPv4 rule or
 *   destination is the IPv4-mapped address ::ffff:a.b.c.d with prefix length
 *   96 + its IPv4 length, so ::/0 covers both families and 0.0.0.0/0 all
 *   IPv4. IPv4-mapped destinations are therefore judged as the IPv4 address
 *   they carry, and so are NAT64 addresses of 64:ff9b::/96.
 *   For a destination the longest matching rule prefix is found; the rules
 *   of that prefix are checked in the order given, then those of the next
 *   shorter enclosing prefix, and so on up to the shortest: the first rule
 *   whose protocol and port range match decides. No match: denied. So
 *   "allow 10.1.2.3/32 tcp 5432" punches a hole in "deny 10.0.0.0/8", and a
 *   rule for 10.1.2.3/32 does not hide a broader rule for other ports.
 *   Among rules of the same prefix the order given counts: pass the
 *   operator's rules before egress_default_rules().
 *
 * Thread safety: all functions may be called from any thread;
 * egress_poll_events() from one thread at a time, and not while another
 * thread calls egress_close() or egress_detach_and_unpin().
 *
 * Not covered here (the seccomp policy's job): sock_create sees only
 * AF_INET/AF_INET6 sockets, so AF_UNIX (the host's abstract sockets),
 * AF_PACKET and AF_NETLINK must be refused by seccomp. Sockets a process
 * brought along from outside the parent cgroup are not judged at all: a
 * sandbox must start with no inherited sockets.
 */
#ifndef SANDCELL_EGRESS_H
#define SANDCELL_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/egress_maps.h" /* enum egress_hook, EGRESS_PROTO_* */

struct egress_rule {
	uint8_t addr[16];    /* IPv6 space; IPv4 as ::ffff:a.b.c.d */
	uint8_t prefixlen;   /* 0..128 in IPv6 space; an IPv4 /n is 96 + n */
	uint8_t protocols;   /* EGRESS_PROTO_TCP | EGRESS_PROTO_UDP */
	uint16_t port_lo;    /* inclusive; 0..65535 = every port */
	uint16_t port_hi;
	bool allow;
};

/* A blocked attempt. Events are sent when the count of one key reaches
 * 1, 2, 4, 8, ...; egress_blocked() reads the exact counts. */
struct egress_event {
	uint64_t cgroup_id;
	uint8_t addr[16];    /* destination (bind: local address); zero for sock_create */
	uint16_t port;       /* host order (bind: the port asked for) */
	uint8_t protocol;    /* IPPROTO_*, 0 if not known */
	uint8_t hook;        /* enum egress_hook */
	uint16_t family;     /* sock_create: the socket asked for */
	uint16_t type;
	uint64_t count;      /* attempts with this key so far */
};

typedef void (*egress_event_cb)(const struct egress_event *ev, void *ctx);

/* Loads the programs, attaches them to the v2 cgroup at cgroup_path and pins
 * links and maps under pin_dir (a directory on bpffs, e.g.
 * /sys/fs/bpf/sandcell; bpffs refuses names with a dot; bpffs is mounted at
 * /sys/fs/bpf if pin_dir is below it and nothing is mounted there). Existing pins are adopted: maps with their
 * contents, links with their programs replaced atomically by these. Pins of
 * another layout or another cgroup are refused (remove them with
 * egress_detach_and_unpin() of a matching build, or rm -r pin_dir with no
 * sandbox running). Returns 0, or -1 with a message in err. */
int egress_open(const char *cgroup_path, const char *pin_dir, char *err, size_t errlen);

/* Installs (or replaces) policy policy_id. Replacing a policy in use is not
 * atomic for the sandboxes assigned to it; for that install the new version
 * under a new id and egress_assign() them to it. Returns 0, or -1 with err. */
int egress_set_policy(uint32_t policy_id, const struct egress_rule *rules, size_t n,
		      char *err, size_t errlen);

/* Removes every prefix of policy_id. Returns 0 or -errno. */
int egress_delete_policy(uint32_t policy_id);

/* Gives (or changes) the policy of a cgroup; effective for its next
 * system call. Returns 0 or -errno. */
int egress_assign(uint64_t cgroup_id, uint32_t policy_id);

/* Takes the policy away: the cgroup is then denied everything. Its
 * blocked-attempt counters stay (egress_forget_blocked). Returns 0, or -errno
 * (-ENOENT: it had none). */
int egress_unassign(uint64_t cgroup_id);

/* Drops the blocked-attempt counters of cgroup_id: a slot's cgroup (and so
 * its id) serves run after run, and each run's attempts must count from 1
 * (events are sent at counts 1, 2, 4, ...). Call it once the cgroup is
 * empty. Returns the number of counters dropped, or -errno. */
int egress_forget_blocked(uint64_t cgroup_id);

/* Calls cb for each cgroup with a policy (e.g. to drop those of sandboxes a
 * previous sandcelld left). Returns the number of cgroups, or -errno. */
int egress_for_each_assigned(void (*cb)(uint64_t cgroup_id, uint32_t policy_id, void *ctx),
			     void *ctx);

/* Waits up to timeout_ms (0: do not wait, -1: forever) for blocked-attempt
 * events and calls cb for each. Returns the number handled, or -errno. */
int egress_poll_events(int timeout_ms, egress_event_cb cb, void *ctx);

/* Calls cb with the exact counters of cgroup_id (0: every cgroup); the
 * event's count is the total. Returns the number of keys, or -errno. */
int egress_blocked(uint64_t cgroup_id, egress_event_cb cb, void *ctx);

/* Can this host load and attach the programs? Tries it on a scratch child of
 * the v2 hierarchy. Writes a human-readable report (one finding per line).
 * Returns 0 if yes, -1 if not. Needs no egress_open(). */
int egress_check(char *report, size_t len);

/* Closes the descriptors; the pinned links keep enforcing. */
void egress_close(void);

/* Detaches the links of the open instance, removes its pins and pin
 * directory, and closes. Sandboxes below the cgroup are then unconfined. */
void egress_detach_and_unpin(void);

/* The cgroup id of a v2 cgroup directory (its inode number). 0 or -errno. */
int egress_cgroup_id(const char *cgroup_path, uint64_t *id);

/* Where the cgroup v2 hierarchy is mounted (from /proc/self/mountinfo).
 * 0, or -errno (-ENOENT: not mounted). */
int egress_cgroup2_mount(char *buf, size_t len);

/* Our own cgroup v2 path ("/system.slice/sandcell.service"; "/" at the top),
 * from /proc/self/cgroup. 0 or -ENAMETOOLONG. */
int egress_own_cgroup(char *buf, size_t len);

/* Parses one rule:
 *
 *   (allow|deny) ADDRESS[/LEN] [PROTOCOLS [PORTS]]
 *
 *   ADDRESS   IPv4 or IPv6; LEN defaults to the full length (32 or 128);
 *             an IPv4 /n is stored as ::ffff:a.b.c.d/(96+n)
 *   PROTOCOLS tcp, udp, tcp+udp or any (default any)
 *   PORTS     comma-separated ports or ranges: 443 | 80,443 | 8000-8100
 *             (default every port)
 *
 *   e.g. "allow 10.1.2.3/32 tcp 5432", "deny 169.254.0.0/16",
 *        "allow ::/0 tcp 80,443"
 *
 * A rule with several port ranges becomes several struct egress_rule, in
 * order: out has room for max rules. Host bits beyond LEN must be zero.
 * Returns the number of rules written, or -1 with a message in err. */
#define EGRESS_RULE_BLANKS " \t\r\n"  /* what separates the words of a rule */
int egress_parse_rule(const char *text, struct egress_rule *out, size_t max, char *err,
		      size_t errlen);

/* The SSRF-safe defaults: TCP 80 and 443 to public addresses of both
 * families; loopback, private, CGNAT, link-local, ULA, multicast, reserved,
 * documentation/benchmark and address-embedding (6to4, Teredo, ...) ranges
 * denied. DNS to the resolvers is the caller's to add. Sets *n. */
const struct egress_rule *egress_default_rules(size_t *n);

/* "connect4", "sock_create", ... for logs. */
const char *egress_hook_name(unsigned hook);

/* Formats a rule back as text (for logs and tests). */
void egress_rule_format(const struct egress_rule *r, char *buf, size_t len);

#endif
