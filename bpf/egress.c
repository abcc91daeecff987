/* The user-space side of the egress programs: load, attach, pin, fill maps.
 *
 * Theory of operation. egress_open() loads egress.bpf.o from the generated
 * skeleton. Before loading, every map gets a pin path under pin_dir, so
 * libbpf reuses a map pinned by an earlier sandcelld (contents included) or
 * creates and pins a new one. Each program is then attached to the parent
 * cgroup through a bpf_link pinned as pin_dir/link_<program>; if that pin
 * exists, the link is kept and its program is replaced atomically by the one
 * just loaded (BPF_LINK_UPDATE), so there is no moment in which a sandbox
 * runs without its hooks, not during a restart, not after a crash: the pins
 * hold links and maps while no sandcelld runs. Only egress_detach_and_unpin()
 * detaches.
 *
 * Policies are written to the LPM trie "rules" already flattened (see
 * flatten_prefix()): the kernel does one lookup and walks one short list.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/egress.h"
#include "bpf/egress.skel.h"

#define BPFFS_ROOT "/sys/fs/bpf"
#define N_PROGS 9

struct egress_state {
	pthread_mutex_t lock;        /* guards everything below but the ring */
	struct egress_bpf *skel;
	struct bpf_link *links[N_PROGS];
	bool attached[N_PROGS];      /* links[i] was attached by this open, not adopted */
	struct ring_buffer *ring;
	egress_event_cb cb;          /* of the current egress_poll_events() */
	void *cb_ctx;
	char pin_dir[PATH_MAX];
};

static struct egress_state st = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- libbpf's messages: keep the last warning for our error texts ------- */

static __thread char libbpf_last[256];

static int keep_libbpf_warning(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[sizeof(libbpf_last)];
	size_t n;

	if (level != LIBBPF_WARN)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = '\0';
	/* The verifier log comes line by line; its first line says most. */
	if (n)
		memcpy(libbpf_last, line, n + 1);
	return 0;
}

static void libbpf_quiet(void)
{
	libbpf_last[0] = '\0';
	libbpf_set_print(keep_libbpf_warning);
}

/* ---- the programs, in one table for attach, adopt and detach ------------ */

static struct bpf_program *prog_at(struct egress_bpf *skel, int i)
{
	struct bpf_program *progs[N_PROGS] = {
		skel->progs.egress_connect4, skel->progs.egress_connect6,
		skel->progs.egress_sendmsg4, skel->progs.egress_sendmsg6,
		skel->progs.egress_bind4,    skel->progs.egress_bind6,
		skel->progs.egress_sock_create, skel->progs.egress_skb,
		skel->progs.egress_skb_ingress,
	};

	return progs[i];
}

static struct bpf_map *map_at(struct egress_bpf *skel, int i)
{
	struct bpf_map *maps[] = {
		skel->maps.sandboxes, skel->maps.rules, skel->maps.counters, skel->maps.events, NULL,
	};

	return maps[i];
}

static int pin_path(char *buf, size_t len, const char *dir, const char *prefix, const char *name)
{
	int n = snprintf(buf, len, "%s/%s%s", dir, prefix, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- bpffs and the pin directory --------------------------------------- */

static bool is_bpffs(const char *path)
{
	struct statfs sfs;

	return statfs(path, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static bool below_bpffs_root(const char *path)
{
	size_t n = strlen(BPFFS_ROOT);

	return strncmp(path, BPFFS_ROOT, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return false;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	return empty;
}

/* *fresh: the directory holds no pins of an earlier sandcelld. */
static int prepare_pin_dir(const char *pin_dir, bool *fresh, char *err, size_t errlen)
{
	int rc;

	if (below_bpffs_root(pin_dir) && !is_bpffs(BPFFS_ROOT) &&
	    mount("bpf", BPFFS_ROOT, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0) {
		set_err(err, errlen, "mount bpffs on %s: %s", BPFFS_ROOT, strerror(errno));
		return -1;
	}
	rc = mkdir_p(pin_dir, 0700);
	if (rc < 0) {
		set_err(err, errlen, "mkdir %s: %s", pin_dir, strerror(-rc));
		return -1;
	}
	if (!is_bpffs(pin_dir)) {
		set_err(err, errlen, "%s is not on a bpf filesystem (mount -t bpf)", pin_dir);
		return -1;
	}
	*fresh = dir_is_empty(pin_dir);
	return 0;
}

/* ---- loading ------------------------------------------------------------ */

static int set_map_pins(struct egress_bpf *skel, const char *pin_dir, char *err, size_t errlen)
{
	char path[PATH_MAX];

	for (int i = 0; map_at(skel, i); i++) {
		struct bpf_map *map = map_at(skel, i);

		if (pin_path(path, sizeof(path), pin_dir, "", bpf_map__name(map)) < 0 ||
		    bpf_map__set_pin_path(map, path) < 0) {
			set_err(err, errlen, "pin path for map %s under %s", bpf_map__name(map),
				pin_dir);
			return -1;
		}
	}
	return 0;
}

static struct egress_bpf *load_programs(const char *pin_dir, char *err, size_t errlen)
{
	struct egress_bpf *skel = egress_bpf__open();
	int rc;

	if (!skel) {
		set_err(err, errlen, "open BPF object: %s", strerror(errno));
		return NULL;
	}
	if (pin_dir && set_map_pins(skel, pin_dir, err, errlen) < 0)
		goto fail;
	rc = egress_bpf__load(skel);
	if (rc < 0) {
		set_err(err, errlen, "load BPF programs: %s%s%s%s", strerror(-rc),
			libbpf_last[0] ? " (" : "", libbpf_last, libbpf_last[0] ? ")" : "");
		if (pin_dir && rc == -EINVAL)
			set_err(err + strlen(err), errlen - strlen(err),
				"; maps pinned in %s may be of another version", pin_dir);
		goto fail;
	}
	return skel;
fail:
	egress_bpf__destroy(skel);
	return NULL;
}

/* ---- links: adopt a pinned one or attach and pin ------------------------ */

static uint64_t link_cgroup_id(struct bpf_link *link)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len) < 0)
		return 0;
	return info.cgroup.cgroup_id;
}

/* The pinned link at path, with prog now in it; NULL with errno ENOENT if
 * there is none (or only a link whose cgroup is gone: its pin is removed). */
static struct bpf_link *adopt_link(const char *path, struct bpf_program *prog, uint64_t cgid,
				   char *err, size_t errlen)
{
	struct bpf_link *link = bpf_link__open(path);
	uint64_t linked;
	int rc;

	if (!link) {
		if (errno != ENOENT)
			set_err(err, errlen, "open pinned link %s: %s", path, strerror(errno));
		return NULL;
	}
	linked = link_cgroup_id(link);
	if (linked == 0) {
		bpf_link__destroy(link);
		unlink(path);
		errno = ENOENT;
		return NULL;
	}
	if (linked != cgid) {
		set_err(err, errlen, "pinned link %s is attached to cgroup id %llu, not %llu",
			path, (unsigned long long)linked, (unsigned long long)cgid);
		goto fail;
	}
	rc = bpf_link__update_program(link, prog);
	if (rc < 0) {
		set_err(err, errlen, "replace program of pinned link %s: %s", path, strerror(-rc));
		goto fail;
	}
	return link;
fail:
	bpf_link__destroy(link);
	errno = EEXIST;
	return NULL;
}

static struct bpf_link *attach_and_pin(const char *path, struct bpf_program *prog, int cg_fd,
				       char *err, size_t errlen)
{
	struct bpf_link *link = bpf_program__attach_cgroup(prog, cg_fd);
	int rc;

	if (!link) {
		set_err(err, errlen, "attach %s: %s", bpf_program__name(prog), strerror(errno));
		return NULL;
	}
	rc = bpf_link__pin(link, path);
	if (rc < 0) {
		set_err(err, errlen, "pin link %s: %s", path, strerror(-rc));
		bpf_link__destroy(link); /* detaches: only a pinned link may stay */
		return NULL;
	}
	return link;
}

static int link_programs(struct egress_state *s, const char *cgroup_path, char *err,
			 size_t errlen)
{
	char path[PATH_MAX];
	uint64_t cgid = 0;
	int cg_fd, rc = 0;

	if (egress_cgroup_id(cgroup_path, &cgid) < 0) {
		set_err(err, errlen, "cgroup %s: %s", cgroup_path, strerror(errno));
		return -1;
	}
	cg_fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		set_err(err, errlen, "open cgroup %s: %s", cgroup_path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < N_PROGS && rc == 0; i++) {
		struct bpf_program *prog = prog_at(s->skel, i);

		if (pin_path(path, sizeof(path), s->pin_dir, "link_", bpf_program__name(prog)) < 0) {
			set_err(err, errlen, "pin directory name too long: %s", s->pin_dir);
			rc = -1;
			break;
		}
		s->links[i] = adopt_link(path, prog, cgid, err, errlen);
		if (!s->links[i] && errno == ENOENT) {
			s->links[i] = attach_and_pin(path, prog, cg_fd, err, errlen);
			s->attached[i] = s->links[i] != NULL;
		}
		if (!s->links[i])
			rc = -1;
	}
	close(cg_fd);
	return rc;
}

/* ---- events ------------------------------------------------------------- */

static void event_from_record(struct egress_event *ev, const struct egress_block_key *k,
			      uint64_t count)
{
	ev->cgroup_id = k->cgroup_id;
	memcpy(ev->addr, k->addr, sizeof(ev->addr));
	ev->port = k->port;
	ev->protocol = k->protocol;
	ev->hook = k->hook;
	ev->family = k->family;
	ev->type = k->type;
	ev->count = count;
}

static int handle_record(void *ctx, void *data, size_t size)
{
	struct egress_state *s = ctx;
	const struct egress_block_record *r = data;
	struct egress_event ev;

	if (size < sizeof(*r))
		return 0;
	event_from_record(&ev, &r->key, r->count);
	if (s->cb)
		s->cb(&ev, s->cb_ctx);
	return 0;
}

/* ---- open and close ----------------------------------------------------- */

static void close_locked(struct egress_state *s)
{
	ring_buffer__free(s->ring);
	s->ring = NULL;
	for (int i = 0; i < N_PROGS; i++) {
		bpf_link__destroy(s->links[i]); /* closes the fd; the pin stays */
		s->links[i] = NULL;
		s->attached[i] = false;
	}
	egress_bpf__destroy(s->skel);
	s->skel = NULL;
}

/* Detaches link i and removes its pin. */
static void detach_and_unpin_link(struct egress_state *s, int i)
{
	char path[PATH_MAX];

	if (pin_path(path, sizeof(path), s->pin_dir, "link_",
		     bpf_program__name(prog_at(s->skel, i))) == 0)
		unlink(path);
	bpf_link__detach(s->links[i]);
}

static void unpin_all_locked(struct egress_state *s)
{
	for (int i = 0; s->skel && i < N_PROGS; i++)
		if (s->links[i])
			detach_and_unpin_link(s, i);
	for (int i = 0; s->skel && map_at(s->skel, i); i++)
		bpf_map__unpin(map_at(s->skel, i), NULL);
	rmdir(s->pin_dir); /* only if empty */
}

/* A failed open leaves no pin of its own: on a first start (fresh) nothing,
 * otherwise the pins an earlier sandcelld left, which may still guard its
 * sandboxes, and none of the links this open attached. */
static void undo_open_locked(struct egress_state *s, bool fresh)
{
	if (fresh) {
		unpin_all_locked(s);
		return;
	}
	for (int i = 0; s->skel && i < N_PROGS; i++)
		if (s->attached[i])
			detach_and_unpin_link(s, i);
}

static int open_locked(struct egress_state *s, const char *cgroup_path, const char *pin_dir,
		       char *err, size_t errlen)
{
	bool fresh = false;

	if (s->skel) {
		set_err(err, errlen, "egress programs already open");
		return -1;
	}
	if (snprintf(s->pin_dir, sizeof(s->pin_dir), "%s", pin_dir) >= (int)sizeof(s->pin_dir)) {
		set_err(err, errlen, "pin directory name too long: %s", pin_dir);
		return -1;
	}
	libbpf_quiet();
	if (prepare_pin_dir(pin_dir, &fresh, err, errlen) < 0)
		goto fail;
	s->skel = load_programs(pin_dir, err, errlen);
	if (!s->skel)
		goto fail;
	if (link_programs(s, cgroup_path, err, errlen) < 0)
		goto fail;
	s->ring = ring_buffer__new(bpf_map__fd(s->skel->maps.events), handle_record, s, NULL);
	if (!s->ring) {
		set_err(err, errlen, "ring buffer: %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	undo_open_locked(s, fresh);
	close_locked(s);
	return -1;
}

int egress_open(const char *cgroup_path, const char *pin_dir, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&st.lock);
	rc = open_locked(&st, cgroup_path, pin_dir, err, errlen);
	pthread_mutex_unlock(&st.lock);
	return rc;
}

void egress_close(void)
{
	pthread_mutex_lock(&st.lock);
	close_locked(&st);
	pthread_mutex_unlock(&st.lock);
}

void egress_detach_and_unpin(void)
{
	pthread_mutex_lock(&st.lock);
	if (st.skel)
		unpin_all_locked(&st);
	close_locked(&st);
	pthread_mutex_unlock(&st.lock);
}

/* ---- sandboxes ---------------------------------------------------------- */

static int map_fd(struct bpf_map *(*pick)(struct egress_bpf *))
{
	int fd;

	pthread_mutex_lock(&st.lock);
	fd = st.skel ? bpf_map__fd(pick(st.skel)) : -EBADF;
	pthread_mutex_unlock(&st.lock);
	return fd;
}

static struct bpf_map *sandboxes_map(struct egress_bpf *skel) { return skel->maps.sandboxes; }
static struct bpf_map *rules_map(struct egress_bpf *skel) { return skel->maps.rules; }
static struct bpf_map *counters_map(struct egress_bpf *skel) { return skel->maps.counters; }

int egress_assign(uint64_t cgroup_id, uint32_t policy_id)
{
	int fd = map_fd(sandboxes_map);

	if (fd < 0)
		return fd;
	return bpf_map_update_elem(fd, &cgroup_id, &policy_id, BPF_ANY) < 0 ? -errno : 0;
}

int egress_unassign(uint64_t cgroup_id)
{
	int fd = map_fd(sandboxes_map);

	if (fd < 0)
		return fd;
	return bpf_map_delete_elem(fd, &cgroup_id) < 0 ? -errno : 0;
}

int egress_for_each_assigned(void (*cb)(uint64_t cgroup_id, uint32_t policy_id, void *ctx),
			     void *ctx)
{
	int fd = map_fd(sandboxes_map), n = 0;
	uint64_t key, next;
	uint32_t policy;
	void *prev = NULL;

	if (fd < 0)
		return fd;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &policy) < 0)
			continue; /* removed meanwhile */
		cb(key, policy, ctx);
		n++;
	}
	return errno == ENOENT ? n : -errno;
}

/* ---- policies ----------------------------------------------------------- */

static bool prefix_encloses(const struct egress_rule *outer, const struct egress_rule *inner)
{
	unsigned full = outer->prefixlen / 8, rest = outer->prefixlen % 8;

	if (outer->prefixlen > inner->prefixlen)
		return false;
	if (memcmp(outer->addr, inner->addr, full) != 0)
		return false;
	return rest == 0 || ((outer->addr[full] ^ inner->addr[full]) & (0xff00 >> rest) & 0xff) == 0;
}

static bool same_prefix(const struct egress_rule *a, const struct egress_rule *b)
{
	return a->prefixlen == b->prefixlen && prefix_encloses(a, b);
}

static bool matches_everything(const struct egress_rule *r)
{
	return r->protocols == (EGRESS_PROTO_TCP | EGRESS_PROTO_UDP) && r->port_lo == 0 &&
	       r->port_hi == 65535;
}

/* The value for the prefix of rules[at]: the rules of that prefix in the
 * given order, then those of each enclosing prefix, longest first. Entries
 * after one that matches everything could never decide and are left out.
 * Returns 0, or -1 with err if the list does not fit. */
static int flatten_prefix(const struct egress_rule *rules, size_t n, size_t at,
			  struct egress_rule_value *v, char *err, size_t errlen)
{
	const struct egress_rule *p = &rules[at];

	memset(v, 0, sizeof(*v));
	for (int len = p->prefixlen; len >= 0; len--) {
		for (size_t i = 0; i < n; i++) {
			const struct egress_rule *r = &rules[i];
			struct egress_rule_entry *e;

			if (r->prefixlen != len || !prefix_encloses(r, p))
				continue;
			if (v->n == EGRESS_MAX_ENTRIES) {
				char text[96];

				egress_rule_format(p, text, sizeof(text));
				set_err(err, errlen, "more than %d rules apply to the prefix of \"%s\"",
					EGRESS_MAX_ENTRIES, text);
				return -1;
			}
			e = &v->e[v->n++];
			e->protocols = r->protocols;
			e->action = r->allow ? EGRESS_ACTION_ALLOW : EGRESS_ACTION_DENY;
			e->port_lo = r->port_lo;
			e->port_hi = r->port_hi;
			if (matches_everything(r))
				return 0;
		}
	}
	return 0;
}

static void rule_key(struct egress_rule_key *k, uint32_t policy_id, const struct egress_rule *r)
{
	memset(k, 0, sizeof(*k));
	k->prefixlen = 32 + r->prefixlen;
	k->policy_id = policy_id;
	memcpy(k->addr, r->addr, sizeof(k->addr));
}

static bool first_of_prefix(const struct egress_rule *rules, size_t at)
{
	for (size_t i = 0; i < at; i++)
		if (same_prefix(&rules[i], &rules[at]))
			return false;
	return true;
}

static int check_rules(const struct egress_rule *rules, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const struct egress_rule *r = &rules[i];

		if (r->prefixlen > 128 || r->port_lo > r->port_hi || !r->protocols ||
		    (r->protocols & ~(EGRESS_PROTO_TCP | EGRESS_PROTO_UDP))) {
			set_err(err, errlen, "rule %zu is malformed", i);
			return -1;
		}
	}
	return 0;
}

static int write_prefixes(int fd, uint32_t policy_id, const struct egress_rule *rules, size_t n,
			  char *err, size_t errlen)
{
	struct egress_rule_value v;
	struct egress_rule_key k;

	for (size_t i = 0; i < n; i++) {
		if (!first_of_prefix(rules, i))
			continue;
		if (flatten_prefix(rules, n, i, &v, err, errlen) < 0)
			return -1;
		rule_key(&k, policy_id, &rules[i]);
		if (bpf_map_update_elem(fd, &k, &v, BPF_ANY) < 0) {
			set_err(err, errlen, "write policy %u: %s", policy_id, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static bool key_in_rules(const struct egress_rule_key *k, const struct egress_rule *rules,
			 size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (k->prefixlen == 32u + rules[i].prefixlen &&
		    memcmp(k->addr, rules[i].addr, sizeof(k->addr)) == 0)
			return true;
	return false;
}

/* Deletes the prefixes of policy_id that are not in rules (all if n == 0).
 * Keys are collected first: deleting while walking would skip some. */
static int delete_stale_prefixes(int fd, uint32_t policy_id, const struct egress_rule *rules,
				 size_t n)
{
	struct egress_rule_key *stale = NULL, key, next, *grown;
	size_t n_stale = 0, cap = 0;
	void *prev = NULL;
	int rc = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (key.policy_id != policy_id || key_in_rules(&key, rules, n))
			continue;
		if (n_stale == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(stale, cap * sizeof(*stale));
			if (!grown) {
				rc = -ENOMEM;
				goto out;
			}
			stale = grown;
		}
		stale[n_stale++] = key;
	}
	for (size_t i = 0; i < n_stale; i++)
		if (bpf_map_delete_elem(fd, &stale[i]) < 0 && errno != ENOENT)
			rc = -errno;
out:
	free(stale);
	return rc;
}

int egress_set_policy(uint32_t policy_id, const struct egress_rule *rules, size_t n,
		      char *err, size_t errlen)
{
	int rc = -1, fd;

	if (check_rules(rules, n, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&st.lock);
	if (!st.skel) {
		set_err(err, errlen, "egress programs not open");
		goto out;
	}
	fd = bpf_map__fd(st.skel->maps.rules);
	if (write_prefixes(fd, policy_id, rules, n, err, errlen) < 0)
		goto out;
	rc = delete_stale_prefixes(fd, policy_id, rules, n);
	if (rc < 0)
		set_err(err, errlen, "remove old prefixes of policy %u: %s", policy_id,
			strerror(-rc));
out:
	pthread_mutex_unlock(&st.lock);
	return rc < 0 ? -1 : 0;
}

int egress_delete_policy(uint32_t policy_id)
{
	int rc = -EBADF;

	pthread_mutex_lock(&st.lock);
	if (st.skel)
		rc = delete_stale_prefixes(bpf_map__fd(rules_map(st.skel)), policy_id, NULL, 0);
	pthread_mutex_unlock(&st.lock);
	return rc;
}

/* ---- visibility --------------------------------------------------------- */

int egress_poll_events(int timeout_ms, egress_event_cb cb, void *ctx)
{
	struct ring_buffer *ring;

	pthread_mutex_lock(&st.lock);
	ring = st.ring;
	st.cb = cb;
	st.cb_ctx = ctx;
	pthread_mutex_unlock(&st.lock);
	if (!ring)
		return -EBADF;
	return ring_buffer__poll(ring, timeout_ms);
}

int egress_blocked(uint64_t cgroup_id, egress_event_cb cb, void *ctx)
{
	int fd = map_fd(counters_map), n = 0;
	struct egress_block_key key, next;
	struct egress_event ev;
	void *prev = NULL;
	uint64_t count;

	if (fd < 0)
		return fd;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		key = next;
		prev = &key;
		if (cgroup_id && key.cgroup_id != cgroup_id)
			continue;
		if (bpf_map_lookup_elem(fd, &key, &count) < 0)
			continue;
		event_from_record(&ev, &key, count);
		cb(&ev, ctx);
		n++;
	}
	return errno == ENOENT ? n : -errno;
}

int egress_forget_blocked(uint64_t cgroup_id)
{
	int fd = map_fd(counters_map), n = 0;
	struct egress_block_key key, next;
	bool more;

	if (fd < 0)
		return fd;
	/* the next key is taken before this one is deleted: a deleted key would
	 * restart the walk */
	more = bpf_map_get_next_key(fd, NULL, &next) == 0;
	while (more) {
		key = next;
		more = bpf_map_get_next_key(fd, &key, &next) == 0;
		if (key.cgroup_id == cgroup_id && bpf_map_delete_elem(fd, &key) == 0)
			n++;
	}
	return errno == ENOENT ? n : -errno;
}

/* ---- host support ------------------------------------------------------- */

int egress_cgroup_id(const char *cgroup_path, uint64_t *id)
{
	struct stat sb;

	if (stat(cgroup_path, &sb) < 0)
		return -errno;
	*id = sb.st_ino; /* cgroup v2: the inode number is the cgroup id (64-bit hosts) */
	return 0;
}

int egress_cgroup2_mount(char *buf, size_t len)
{
	char line[4096], mnt[PATH_MAX], *sep;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (rc == -ENOENT && fgets(line, sizeof(line), f)) {
		/* "id parent maj:min root mountpoint opts [optional...] - fstype ..." */
		sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		rc = snprintf(buf, len, "%s", mnt) >= (int)len ? -ENAMETOOLONG : 0;
	}
	fclose(f);
	return rc;
}

static void report_line(char **p, size_t *left, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report_line(char **p, size_t *left, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*left == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(*p, *left, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= *left)
		n = (int)*left - 1;
	*p += n;
	*left -= (size_t)n;
}

int egress_own_cgroup(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[PATH_MAX];
	int rc = snprintf(buf, len, "/") >= (int)len ? -ENAMETOOLONG : 0;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			rc = snprintf(buf, len, "%s", line + 3) >= (int)len ? -ENAMETOOLONG : 0;
			break;
		}
	if (f)
		fclose(f);
	return rc;
}

/* <v2><our own cgroup>: where a probe may make a scratch cgroup (on a pure v2
 * host nothing may be made at the top, and a service only owns its own). */
static int own_cgroup2_dir(const char *v2, char *out, size_t len)
{
	char own[PATH_MAX];

	if (egress_own_cgroup(own, sizeof(own)) < 0)
		return -1;
	int n = snprintf(out, len, "%s%s", v2, strcmp(own, "/") ? own : "");
	return n >= 0 && (size_t)n < len ? 0 : -1;
}

/* Attaches every program to a scratch cgroup below our own and detaches again. */
static int try_attach(const char *v2, char **p, size_t *left)
{
	struct egress_bpf *skel;
	struct bpf_link *links[N_PROGS] = { 0 };
	char err[512], own[PATH_MAX], scratch[PATH_MAX + 64];
	int cg_fd = -1, rc = -1;

	skel = load_programs(NULL, err, sizeof(err));
	if (!skel) {
		report_line(p, left, "bpf: cannot load the egress programs: %s\n", err);
		return -1;
	}
	report_line(p, left, "bpf: egress programs load\n");
	if (own_cgroup2_dir(v2, own, sizeof(own)) < 0 ||
	    snprintf(scratch, sizeof(scratch), "%s/sandcell-egress-check.%d", own, (int)getpid()) >=
	    (int)sizeof(scratch)) {
		report_line(p, left, "bpf: cgroup v2 path too long: %s\n", own);
		egress_bpf__destroy(skel);
		return -1;
	}
	if (mkdir(scratch, 0700) < 0 && errno != EEXIST) {
		report_line(p, left, "bpf: cannot create a cgroup under %s: %s\n", own, strerror(errno));
		goto out;
	}
	cg_fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; cg_fd >= 0 && i < N_PROGS; i++) {
		links[i] = bpf_program__attach_cgroup(prog_at(skel, i), cg_fd);
		if (!links[i]) {
			report_line(p, left, "bpf: cannot attach %s to a cgroup: %s\n",
				    bpf_program__name(prog_at(skel, i)), strerror(errno));
			goto out;
		}
	}
	if (cg_fd >= 0) {
		report_line(p, left, "bpf: egress programs attach to cgroups\n");
		rc = 0;
	}
out:
	for (int i = 0; i < N_PROGS; i++)
		bpf_link__destroy(links[i]);
	if (cg_fd >= 0)
		close(cg_fd);
	rmdir(scratch);
	egress_bpf__destroy(skel);
	return rc;
}

int egress_check(char *report, size_t len)
{
	char v2[PATH_MAX], *p = report;
	size_t left = len;
	int rc;

	if (len)
		report[0] = '\0';
	libbpf_quiet();
	rc = egress_cgroup2_mount(v2, sizeof(v2));
	if (rc < 0) {
		report_line(&p, &left, "cgroup2: no cgroup v2 hierarchy mounted: %s\n",
			    strerror(-rc));
		return -1;
	}
	report_line(&p, &left, "cgroup2: mounted at %s\n", v2);
	report_line(&p, &left, "bpffs: %s\n", is_bpffs(BPFFS_ROOT) ? "mounted at " BPFFS_ROOT
				: "not mounted at " BPFFS_ROOT " (egress_open mounts it)");
	return try_attach(v2, &p, &left);
}
