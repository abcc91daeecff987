/* Configuration: `key = value` lines, `#` comments, optional "quotes",
 * k/m/g sizes, the usual boolean words.
 *
 * Every key is one row of the table below: its type, where it lands in
 * struct sandcell_config, its allowed range and its environment override.
 * Loading is four steps: defaults, the file, the environment (which wins),
 * then config_finish() validates what needs more than one key and fills the
 * executor's struct jail_config.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include "fcgi/config.h"
#include "fcgi/egress_policy.h"

#define MAX_CONFIG_FILE (1 << 20)
#define MAX_EXTRA_SYSCALLS 1024
#define MAX_EGRESS_RULES 256
#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)
#define NOT_SET UINT64_MAX     /* a number key with a default that depends on others */

enum key_type {
	KEY_SECRET,     /* a string never printed */
	KEY_STRING,     /* a string; empty means unset (NULL) */
	KEY_PATH,       /* an absolute path */
	KEY_OPT_PATH,   /* an absolute path, or empty for none (NULL) */
	KEY_NAME,       /* a plain name: letters, digits, '.', '_', '-' */
	KEY_UINT,       /* a decimal number */
	KEY_SIZE,       /* bytes, with an optional k/m/g suffix */
	KEY_MODE,       /* an octal file mode */
	KEY_BOOL,
	KEY_SYSCALLS,   /* a comma list of system call numbers */
	KEY_RULE,       /* an egress rule; the key may repeat, the lines keep their order */
	KEY_ADDRS,      /* a list of IP addresses (comma or blank separated); empty: unset */
	KEY_MODULES,    /* Python module names (comma or blank separated), kept blank separated */
};

struct key_spec {
	const char *name;
	enum key_type type;
	size_t offset;
	const char *env;       /* DifySandbox-style override, or NULL */
	uint64_t min, max;     /* for numbers and sizes */
};

#define FIELD(f) offsetof(struct sandcell_config, f)

static const struct key_spec keys[] = {
	{ "api_key", KEY_SECRET, FIELD(api_key), "API_KEY", 0, 0 },
	{ "api_key_file", KEY_OPT_PATH, FIELD(api_key_file), NULL, 0, 0 },
	{ "socket", KEY_OPT_PATH, FIELD(socket_path), "SANDCELL_SOCKET", 0, 0 },
	{ "listen", KEY_STRING, FIELD(listen), NULL, 0, 0 },
	{ "allow_clients", KEY_STRING, FIELD(allow_clients), NULL, 0, 0 },
	{ "socket_mode", KEY_MODE, FIELD(socket_mode), NULL, 0, 0777 },
	{ "socket_group", KEY_NAME, FIELD(socket_group), NULL, 0, 0 },
	{ "max_workers", KEY_UINT, FIELD(max_workers), "MAX_WORKERS", 1, 256 },
	{ "max_requests", KEY_UINT, FIELD(max_requests), "MAX_REQUESTS", 1, 4096 },
	{ "warm_sandboxes", KEY_UINT, FIELD(warm_sandboxes), NULL, 0, 64 },
	{ "warm_sandboxes_max", KEY_UINT, FIELD(warm_sandboxes_max), NULL, 0, 64 },
	{ "worker_timeout", KEY_UINT, FIELD(worker_timeout), "WORKER_TIMEOUT", 1, 86400 },
	{ "queue_timeout", KEY_UINT, FIELD(queue_timeout), NULL, 1, 86400 },
	{ "max_body_size", KEY_SIZE, FIELD(max_body_size), NULL, 1, GIB },
	{ "output_limit", KEY_SIZE, FIELD(output_limit), NULL, 1, GIB },
	{ "memory_limit", KEY_SIZE, FIELD(memory_limit), NULL, MIB, TIB },
	{ "pids_limit", KEY_UINT, FIELD(pids_limit), NULL, 1, 1000000 },
	{ "cpu_percent", KEY_UINT, FIELD(cpu_percent), NULL, 1, 100000 },
	{ "tmp_size", KEY_SIZE, FIELD(tmp_size), NULL, KIB, TIB },
	{ "file_size_limit", KEY_SIZE, FIELD(file_size_limit), NULL, 1, TIB },
	{ "uid_base", KEY_UINT, FIELD(uid_base), NULL, 1, 4000000000ULL },
	{ "enable_network", KEY_BOOL, FIELD(enable_network), "ENABLE_NETWORK", 0, 0 },
	{ "enable_preload", KEY_BOOL, FIELD(enable_preload), "ENABLE_PRELOAD", 0, 0 },
	{ "allow_processes", KEY_BOOL, FIELD(allow_processes), NULL, 0, 0 },
	{ "python_path", KEY_PATH, FIELD(python_path), "PYTHON_PATH", 0, 0 },
	{ "nodejs_path", KEY_PATH, FIELD(nodejs_path), "NODEJS_PATH", 0, 0 },
	{ "nodejs_modules", KEY_OPT_PATH, FIELD(nodejs_modules), NULL, 0, 0 },
	{ "http_proxy", KEY_STRING, FIELD(http_proxy), "HTTP_PROXY", 0, 0 },
	{ "https_proxy", KEY_STRING, FIELD(https_proxy), "HTTPS_PROXY", 0, 0 },
	{ "allowed_syscalls", KEY_SYSCALLS, 0, "ALLOWED_SYSCALLS", 0, 0 },
	{ "run_dir", KEY_PATH, FIELD(run_dir), NULL, 0, 0 },
	{ "cgroup_name", KEY_NAME, FIELD(cgroup_name), "SANDCELL_CGROUP", 0, 0 },
	{ "drain_timeout", KEY_UINT, FIELD(drain_timeout), NULL, 0, 86400 },
	{ "egress_rule", KEY_RULE, 0, NULL, 0, 0 },
	{ "dns_servers", KEY_ADDRS, FIELD(dns_servers), NULL, 0, 0 },
	{ "egress_proxy_only", KEY_BOOL, FIELD(egress_proxy_only), NULL, 0, 0 },
	{ "netns", KEY_OPT_PATH, FIELD(netns), NULL, 0, 0 },
	{ "pasta_path", KEY_PATH, FIELD(pasta_path), NULL, 0, 0 },
	{ "zygote_path", KEY_OPT_PATH, FIELD(zygote_path), NULL, 0, 0 },
	{ "python_preload", KEY_MODULES, FIELD(python_preload), NULL, 0, 0 },
	{ "check_imports", KEY_BOOL, FIELD(check_imports), NULL, 0, 0 },
	{ "egress_pin_dir", KEY_OPT_PATH, FIELD(egress_pin_dir), NULL, 0, 0 },
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

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

static int set_default_string(char **slot, const char *value)
{
	*slot = strdup(value);
	return *slot ? 0 : -1;
}

static int config_defaults(struct sandcell_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->socket_mode = 0660;
	cfg->max_workers = 4;
	cfg->max_requests = 50;
	cfg->warm_sandboxes = 2;
	cfg->warm_sandboxes_max = NOT_SET;
	cfg->worker_timeout = 15;
	cfg->queue_timeout = 30;
	cfg->max_body_size = 10 * MIB;
	cfg->output_limit = 8 * MIB;
	cfg->memory_limit = 512 * MIB;
	cfg->pids_limit = 64;
	cfg->cpu_percent = 100;
	cfg->tmp_size = 64 * MIB;
	cfg->file_size_limit = 32 * MIB;
	cfg->uid_base = 1900000;
	cfg->enable_network = true;
	cfg->enable_preload = false;
	cfg->allow_processes = false;
	cfg->check_imports = true;
	cfg->drain_timeout = 20;
	if (set_default_string(&cfg->socket_path, "/run/sandcell/sandcell.sock") ||
	    set_default_string(&cfg->python_path, "/usr/bin/python3") ||
	    set_default_string(&cfg->pasta_path, "/usr/bin/pasta") ||
	    set_default_string(&cfg->zygote_path, PKGLIBEXECDIR "/sandcell-zygote") ||
	    set_default_string(&cfg->python_preload, "json base64 jinja2 requests httpx") ||
	    set_default_string(&cfg->nodejs_path, "/usr/bin/node") ||
	    set_default_string(&cfg->run_dir, "/run/sandcell") ||
	    set_default_string(&cfg->allow_clients, "127.0.0.1, ::1") ||
	    set_default_string(&cfg->cgroup_name, "sandcell"))
		return -1;
	return 0;
}

void config_free(struct sandcell_config *cfg)
{
	free(cfg->api_key);
	free(cfg->api_key_file);
	free(cfg->socket_path);
	free(cfg->listen);
	free(cfg->allow_clients);
	free(cfg->socket_group);
	free(cfg->python_path);
	free(cfg->nodejs_path);
	free(cfg->nodejs_modules);
	free(cfg->http_proxy);
	free(cfg->https_proxy);
	free(cfg->run_dir);
	free(cfg->cgroup_name);
	free(cfg->extra_syscalls);
	for (size_t i = 0; i < cfg->n_egress_rules; i++)
		free(cfg->egress_rules[i]);
	free(cfg->egress_rules);
	free(cfg->dns_servers);
	free(cfg->netns);
	free(cfg->pasta_path);
	free(cfg->zygote_path);
	free(cfg->python_preload);
	free(cfg->egress_pin_dir);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- values ------------------------------------------------------------ */

static const char *parse_number(const char *s, uint64_t *out, int base)
{
	char *end;
	unsigned long long v;

	if (!*s)
		return "missing value";
	if (!isdigit((unsigned char)*s))
		return "not a number";
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno == ERANGE)
		return "number too large";
	if (*end)
		return "not a number";
	*out = v;
	return NULL;
}

static const char *parse_size(const char *s, uint64_t *out)
{
	char digits[32];
	size_t n = strlen(s);
	uint64_t mult = 1, v;
	const char *msg;

	if (n == 0)
		return "missing value";
	switch (tolower((unsigned char)s[n - 1])) {
	case 'k': mult = KIB; n--; break;
	case 'm': mult = MIB; n--; break;
	case 'g': mult = GIB; n--; break;
	default: break;
	}
	if (n == 0 || n >= sizeof(digits))
		return "not a size (a number with an optional k, m or g suffix)";
	memcpy(digits, s, n);
	digits[n] = '\0';
	msg = parse_number(digits, &v, 10);
	if (msg)
		return "not a size (a number with an optional k, m or g suffix)";
	if (v > UINT64_MAX / mult)
		return "size too large";
	*out = v * mult;
	return NULL;
}

static const char *parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "1", "on" };
	static const char *const no[] = { "false", "no", "0", "off" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return NULL;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return NULL;
		}
	}
	return "not a boolean (true/false, yes/no, on/off, 1/0)";
}

static bool is_plain_name(const char *s)
{
	if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

/* "1, 2,3" -> {1,2,3}; an empty value means no extra system calls. */
static const char *parse_syscalls(const char *s, struct sandcell_config *cfg)
{
	int *list = NULL;
	size_t n = 0;
	const char *p = s;

	while (*p == ' ' || *p == '\t')
		p++;
	while (*p) {
		char *end;
		long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!isdigit((unsigned char)*p)) {
			free(list);
			return "expected a comma list of non-negative numbers";
		}
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno || v > INT_MAX) {
			free(list);
			return "number too large";
		}
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != ',') {
			free(list);
			return "expected a comma list of non-negative numbers";
		}
		if (*p == ',' && !p[1]) {
			free(list);
			return "trailing comma";
		}
		if (*p == ',')
			p++;
		if (n == MAX_EXTRA_SYSCALLS) {
			free(list);
			return "too many entries";
		}
		int *grown = realloc(list, (n + 1) * sizeof(*list));
		if (!grown) {
			free(list);
			return "out of memory";
		}
		list = grown;
		list[n++] = (int)v;
	}
	free(cfg->extra_syscalls);
	cfg->extra_syscalls = list;
	cfg->n_extra_syscalls = n;
	return NULL;
}

/* One more egress_rule line (checked now, resolved later). */
static const char *append_rule(struct sandcell_config *cfg, const char *value, char *msg,
			       size_t msglen)
{
	const char *bad = egress_policy_check_line(value, msg, msglen);

	if (bad)
		return bad;
	if (cfg->n_egress_rules == MAX_EGRESS_RULES)
		return "too many egress_rule lines";
	char **grown = realloc(cfg->egress_rules, (cfg->n_egress_rules + 1) * sizeof(*grown));
	if (!grown)
		return "out of memory";
	cfg->egress_rules = grown;
	grown[cfg->n_egress_rules] = strdup(value);
	if (!grown[cfg->n_egress_rules])
		return "out of memory";
	cfg->n_egress_rules++;
	return NULL;
}

/* "1.1.1.1, 2606:4700::1111" (blanks or commas between addresses). */
static const char *check_addresses(const char *value)
{
	char buf[1024], *save = NULL;
	size_t n = 0;

	if (strlen(value) >= sizeof(buf))
		return "too long";
	strcpy(buf, value);
	for (char *t = strtok_r(buf, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		unsigned char a[16];

		if (inet_pton(AF_INET, t, a) != 1 && inet_pton(AF_INET6, t, a) != 1)
			return "expected IP addresses separated by commas or blanks";
		if (++n > EGRESS_POLICY_MAX_DNS)
			return "too many addresses";
	}
	return NULL;
}

/* A dotted Python name: a.b_c.d */
static bool is_module_name(const char *s, size_t n)
{
	bool start = true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' && !start) {
			start = true;
			continue;
		}
		if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (!start && c >= '0' && c <= '9')))
			return false;
		start = false;
	}
	return n > 0 && !start;
}

/* "a, b c" -> "a b c"; every name checked. */
static const char *parse_modules(const char *value, char **slot)
{
	size_t len = strlen(value);
	char *out = calloc(1, len + 1), *o = out;
	if (!out)
		return "out of memory";
	for (const char *p = value; *p;) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (!n)
			break;
		if (!is_module_name(p, n)) {
			free(out);
			return "must be Python module names (like json, jinja2, os.path)";
		}
		if (o != out)
			*o++ = ' ';
		memcpy(o, p, n);
		o += n;
		p += n;
	}
	if (len >= 1000) {
		free(out);
		return "too long (at most 1000 characters)";
	}
	free(*slot);
	*slot = out;
	return NULL;
}

static const char *store_string(char **slot, const char *value)
{
	char *copy = NULL;

	if (*value) {
		copy = strdup(value);
		if (!copy)
			return "out of memory";
	}
	free(*slot);
	*slot = copy;
	return NULL;
}

/* Sets one key from its textual value; returns NULL or what is wrong. */
static const char *set_value(struct sandcell_config *cfg, const struct key_spec *k,
			     const char *value, char *msg, size_t msglen)
{
	void *field = (char *)cfg + k->offset;
	uint64_t v = 0;
	const char *bad = NULL;

	switch (k->type) {
	case KEY_SECRET:
	case KEY_STRING:
		return store_string(field, value);
	case KEY_PATH:
		if (value[0] != '/')
			return "must be an absolute path";
		return store_string(field, value);
	case KEY_OPT_PATH:
		if (value[0] && value[0] != '/')
			return "must be an absolute path (or empty for none)";
		return store_string(field, value);
	case KEY_NAME:
		if (*value && !is_plain_name(value))
			return "must be a plain name (letters, digits, '.', '_', '-')";
		return store_string(field, value);
	case KEY_BOOL:
		return parse_bool(value, field);
	case KEY_SYSCALLS:
		return parse_syscalls(value, cfg);
	case KEY_MODULES:
		return parse_modules(value, field);
	case KEY_RULE:
		return append_rule(cfg, value, msg, msglen);
	case KEY_ADDRS:
		bad = check_addresses(value);
		return bad ? bad : store_string(field, value);
	case KEY_UINT:
		bad = parse_number(value, &v, 10);
		break;
	case KEY_SIZE:
		bad = parse_size(value, &v);
		break;
	case KEY_MODE:
		bad = parse_number(value, &v, 8);
		if (bad)
			bad = "not an octal mode (e.g. 0660)";
		break;
	}
	if (bad)
		return bad;
	if (v < k->min || v > k->max) {
		snprintf(msg, msglen, "must be between %llu and %llu",
			 (unsigned long long)k->min, (unsigned long long)k->max);
		return msg;
	}
	*(uint64_t *)field = v;
	return NULL;
}

static const struct key_spec *find_key(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

/* ---- the file ---------------------------------------------------------- */

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* Takes the value part of a line in place: a quoted string (with \" and \\)
 * or bare text up to a " #" comment. Returns NULL or what is wrong. */
static const char *take_value(char *s, char **out)
{
	if (*s == '"') {
		char *r = s + 1, *w = s;

		while (*r && *r != '"') {
			if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
				r++;
			*w++ = *r++;
		}
		if (*r != '"')
			return "unterminated quoted value";
		*w = '\0';
		r = trim(r + 1);
		if (*r && *r != '#')
			return "unexpected text after the quoted value";
		*out = s;
		return NULL;
	}
	for (char *p = s; *p; p++) {
		if (*p == '#' && (p == s || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	*out = trim(s);
	return NULL;
}

static bool is_key_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

static int parse_line(struct sandcell_config *cfg, char *line, bool *seen,
		      const char *filename, unsigned lineno, char *err, size_t errlen)
{
	char msgbuf[256];
	char *s = trim(line), *eq, *name, *value;
	const struct key_spec *k;
	const char *bad;
	size_t n;

	if (!*s || *s == '#')
		return 0;
	eq = strchr(s, '=');
	name = s;
	n = eq ? (size_t)(eq - s) : 0;
	while (n && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	if (!eq || !is_key_name(name, n)) {
		set_err(err, errlen, "%s:%u: expected `key = value`", filename, lineno);
		return -1;
	}
	name[n] = '\0';
	k = find_key(name);
	if (!k) {
		set_err(err, errlen, "%s:%u: unknown key '%s'", filename, lineno, name);
		return -1;
	}
	if (seen[k - keys] && k->type != KEY_RULE) {
		set_err(err, errlen, "%s:%u: duplicate key '%s'", filename, lineno, name);
		return -1;
	}
	seen[k - keys] = true;
	bad = take_value(trim(eq + 1), &value);
	if (!bad)
		bad = set_value(cfg, k, value, msgbuf, sizeof(msgbuf));
	if (bad) {
		set_err(err, errlen, "%s:%u: %s: %s", filename, lineno, name, bad);
		return -1;
	}
	return 0;
}

static int parse_text(struct sandcell_config *cfg, const char *text, size_t len,
		      const char *filename, char *err, size_t errlen)
{
	bool seen[N_KEYS] = { false };
	unsigned lineno = 0;
	size_t pos = 0;

	if (memchr(text, '\0', len)) {
		set_err(err, errlen, "%s: contains a NUL byte", filename);
		return -1;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *line = strndup(text + pos, n);
		int rc;

		lineno++;
		if (!line) {
			set_err(err, errlen, "%s: out of memory", filename);
			return -1;
		}
		rc = parse_line(cfg, line, seen, filename, lineno, err, errlen);
		free(line);
		if (rc)
			return -1;
		pos += n + 1;
	}
	return 0;
}

/* ---- environment, validation ------------------------------------------- */

static int apply_env(struct sandcell_config *cfg, config_env_fn env, void *ctx,
		     char *err, size_t errlen)
{
	char msgbuf[256];

	for (size_t i = 0; i < N_KEYS; i++) {
		const char *value, *bad;
		char *copy;

		if (!keys[i].env)
			continue;
		value = env(keys[i].env, ctx);
		/* Empty means unset, as in DifySandbox (compose files often pass VAR=). */
		if (!value || !*value)
			continue;
		copy = strdup(value);
		if (!copy) {
			set_err(err, errlen, "out of memory");
			return -1;
		}
		bad = set_value(cfg, &keys[i], trim(copy), msgbuf, sizeof(msgbuf));
		free(copy);
		if (bad) {
			set_err(err, errlen, "environment variable %s: %s", keys[i].env, bad);
			return -1;
		}
	}
	return 0;
}

static char *read_file(const char *path, size_t *len, int *errnum);

/* The key is the file's first line, without surrounding blanks. The
 * package generates it (/etc/sandcell/api_key, 0640) so that the conffile
 * itself never holds a secret and never needs rewriting. */
static int read_key_file(struct sandcell_config *cfg, char *err, size_t errlen)
{
	size_t len = 0;
	int errnum = 0;
	char *text = read_file(cfg->api_key_file, &len, &errnum), *line;

	if (!text) {
		set_err(err, errlen, "api_key_file %s: %s", cfg->api_key_file, strerror(errnum));
		return -1;
	}
	text[len] = '\0';
	text[strcspn(text, "\n")] = '\0';
	line = trim(text);
	bool empty = !*line;

	free(cfg->api_key);
	cfg->api_key = empty ? NULL : strdup(line);
	free(text);
	if (!cfg->api_key) {
		set_err(err, errlen, "api_key_file %s: %s", cfg->api_key_file,
			empty ? "the file is empty" : "out of memory");
		return -1;
	}
	return 0;
}

/* At least one of socket and listen; listen and allow_clients parsed. */
static int check_listeners(struct sandcell_config *cfg, char *err, size_t errlen)
{
	char msg[160];
	const char *bad;

	if (!cfg->socket_path && !cfg->listen) {
		set_err(err, errlen, "neither socket nor listen is set: sandcelld would not be reachable");
		return -1;
	}
	cfg->listen_addrlen = 0;
	if (cfg->listen) {
		bad = netaddr_parse_listen(cfg->listen, &cfg->listen_addr, &cfg->listen_addrlen);
		if (bad) {
			set_err(err, errlen, "listen: %s", bad);
			return -1;
		}
	}
	bad = netaddr_parse_nets(cfg->allow_clients ? cfg->allow_clients : "", cfg->client_nets,
				 NETADDR_MAX_NETS, &cfg->n_client_nets, msg, sizeof(msg));
	if (bad) {
		set_err(err, errlen, "allow_clients: %s", bad);
		return -1;
	}
	return 0;
}

/* The warm pool's bounds: without a ceiling the pool is fixed at the floor
 * (warm_sandboxes = 0 still means every run starts cold); a ceiling is never
 * below the floor. */
static int check_warm(struct sandcell_config *cfg, char *err, size_t errlen)
{
	if (cfg->warm_sandboxes_max == NOT_SET)
		cfg->warm_sandboxes_max = cfg->warm_sandboxes;
	if (cfg->warm_sandboxes_max < cfg->warm_sandboxes) {
		set_err(err, errlen, "warm_sandboxes_max (%llu) is below warm_sandboxes (%llu): the "
			"most warm sandboxes per kind cannot be fewer than the least",
			(unsigned long long)cfg->warm_sandboxes_max,
			(unsigned long long)cfg->warm_sandboxes);
		return -1;
	}
	return 0;
}

/* The egress keys that depend on others; derives egress_pin_dir. */
static int check_egress(struct sandcell_config *cfg, char *err, size_t errlen)
{
	if (cfg->egress_proxy_only && !cfg->http_proxy && !cfg->https_proxy) {
		set_err(err, errlen, "egress_proxy_only is set but neither http_proxy nor "
			"https_proxy is: sandboxes could reach nothing");
		return -1;
	}
	if (cfg->egress_proxy_only && cfg->n_egress_rules) {
		set_err(err, errlen, "egress_rule cannot be combined with egress_proxy_only "
			"(the proxy is then the only reachable destination)");
		return -1;
	}
	if (cfg->egress_pin_dir)
		return 0;
	/* bpffs refuses names with a dot; one pin directory per daemon instance */
	if (asprintf(&cfg->egress_pin_dir, "/sys/fs/bpf/%s", cfg->cgroup_name) < 0) {
		cfg->egress_pin_dir = NULL;
		set_err(err, errlen, "out of memory");
		return -1;
	}
	for (char *c = cfg->egress_pin_dir + strlen("/sys/fs/bpf/"); *c; c++)
		if (*c == '.')
			*c = '_';
	return 0;
}

static int config_finish(struct sandcell_config *cfg, const char *filename,
			 char *err, size_t errlen)
{
	struct jail_config *j = &cfg->jail;

	if ((!cfg->api_key || !*cfg->api_key) && cfg->api_key_file &&
	    read_key_file(cfg, err, errlen) != 0)
		return -1;
	if (!cfg->api_key || !*cfg->api_key) {
		set_err(err, errlen, "api_key is not set: set it in %s or in the API_KEY "
			"environment variable (an empty key is refused, not \"no auth\")",
			filename ? filename : CONFIG_DEFAULT_PATH);
		return -1;
	}
	if (check_listeners(cfg, err, errlen) != 0)
		return -1;
	if (cfg->socket_path &&
	    strlen(cfg->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		set_err(err, errlen, "socket: path longer than %zu bytes",
			sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return -1;
	}
	if (cfg->uid_base + cfg->max_workers > UINT32_MAX - 1) {
		set_err(err, errlen, "uid_base + max_workers exceeds the uid range");
		return -1;
	}
	j->python_path = cfg->python_path;
	j->nodejs_path = cfg->nodejs_path;
	j->nodejs_modules = cfg->nodejs_modules;
	j->run_dir = cfg->run_dir;
	j->cgroup_name = cfg->cgroup_name;
	j->timeout_ms = (unsigned)(cfg->worker_timeout * 1000);
	j->output_limit = (size_t)cfg->output_limit;
	j->memory_limit = cfg->memory_limit;
	j->pids_limit = (unsigned)cfg->pids_limit;
	j->cpu_percent = (unsigned)cfg->cpu_percent;
	j->tmp_size = cfg->tmp_size;
	j->file_size_limit = cfg->file_size_limit;
	j->max_sandboxes = (unsigned)cfg->max_workers;
	if (check_warm(cfg, err, errlen) != 0)
		return -1;
	j->warm_sandboxes = (unsigned)cfg->warm_sandboxes;
	j->warm_sandboxes_max = (unsigned)cfg->warm_sandboxes_max;
	if (check_egress(cfg, err, errlen) != 0)
		return -1;
	j->network = cfg->enable_network;
	j->netns_path = cfg->netns;
	j->pasta_path = cfg->pasta_path;
	j->egress_pin_dir = cfg->egress_pin_dir;
	j->uid_base = (uid_t)cfg->uid_base;
	j->extra_syscalls = cfg->extra_syscalls;
	j->n_extra_syscalls = cfg->n_extra_syscalls;
	j->allow_processes = cfg->allow_processes;
	j->http_proxy = cfg->http_proxy;
	j->https_proxy = cfg->https_proxy;
	j->zygote_path = cfg->zygote_path;
	j->python_preload = cfg->python_preload;
	return 0;
}

int config_from_text(struct sandcell_config *cfg, const char *text, size_t len,
		     const char *filename, config_env_fn env, void *env_ctx,
		     char *err, size_t errlen)
{
	if (config_defaults(cfg)) {
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	if (text && parse_text(cfg, text, len, filename ? filename : "(config)", err, errlen))
		goto fail;
	if (env && apply_env(cfg, env, env_ctx, err, errlen))
		goto fail;
	if (config_finish(cfg, filename, err, errlen))
		goto fail;
	return 0;
fail:
	config_free(cfg);
	return -1;
}

static const char *process_env(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

/* Reads at most MAX_CONFIG_FILE bytes; returns a malloc'd buffer or NULL. */
static char *read_file(const char *path, size_t *len, int *errnum)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f) {
		*errnum = errno;
		return NULL;
	}
	buf = malloc(MAX_CONFIG_FILE + 1);
	if (!buf) {
		fclose(f);
		*errnum = ENOMEM;
		return NULL;
	}
	n = fread(buf, 1, MAX_CONFIG_FILE + 1, f);
	if (ferror(f) || n > MAX_CONFIG_FILE) {
		*errnum = ferror(f) ? errno : EFBIG;
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

int config_load_env(struct sandcell_config *cfg, const char *path, bool must_exist,
		    config_env_fn env, void *env_ctx, char *err, size_t errlen)
{
	size_t len = 0;
	int errnum = 0, rc;
	char *text = read_file(path, &len, &errnum);

	if (!text && (errnum != ENOENT || must_exist)) {
		set_err(err, errlen, "%s: %s", path, strerror(errnum));
		return -1;
	}
	rc = config_from_text(cfg, text, len, path, env, env_ctx, err, errlen);
	free(text);
	return rc;
}

int config_load(struct sandcell_config *cfg, const char *path, bool must_exist,
		char *err, size_t errlen)
{
	return config_load_env(cfg, path, must_exist, process_env, NULL, err, errlen);
}

void config_describe(const struct sandcell_config *cfg, FILE *out)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_spec *k = &keys[i];
		const void *field = (const char *)cfg + k->offset;

		if (k->type == KEY_RULE) {
			for (size_t r = 0; r < cfg->n_egress_rules; r++)
				fprintf(out, "%s = %s\n", k->name, cfg->egress_rules[r]);
			if (!cfg->n_egress_rules)
				fprintf(out, "%s = (none)\n", k->name);
			continue;
		}
		fprintf(out, "%s = ", k->name);
		switch (k->type) {
		case KEY_SECRET:
			fputs(*(char *const *)field ? "(set, not shown)" : "(not set)", out);
			break;
		case KEY_STRING:
		case KEY_PATH:
		case KEY_OPT_PATH:
		case KEY_NAME:
		case KEY_ADDRS:
		case KEY_MODULES:
			fputs(*(char *const *)field ? *(char *const *)field : "(not set)", out);
			break;
		case KEY_UINT:
		case KEY_SIZE:
			fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)field);
			break;
		case KEY_MODE:
			fprintf(out, "%04llo", (unsigned long long)*(const uint64_t *)field);
			break;
		case KEY_BOOL:
			fputs(*(const bool *)field ? "true" : "false", out);
			break;
		case KEY_SYSCALLS:
			if (!cfg->n_extra_syscalls)
				fputs("(none)", out);
			for (size_t s = 0; s < cfg->n_extra_syscalls; s++)
				fprintf(out, "%s%d", s ? "," : "", cfg->extra_syscalls[s]);
			break;
		case KEY_RULE:
			break;
		}
		fputc('\n', out);
	}
}
