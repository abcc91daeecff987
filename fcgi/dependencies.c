/* Dependencies: a fixed script (ours, never user input) runs in an ordinary
 * sandbox, so the answer shows exactly what sandboxed code can import. It
 * prints one "name<TAB>version" line per distribution, de-duplicated by
 * normalised name and sorted. The parsed list is cached; scans are
 * serialised and go through admission like any run. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi/dependencies.h"
#include "fcgi/import_check.h"
#include "fcgi/log.h"
#include "fcgi/script_run.h"

#define MAX_DEPENDENCIES 10000
#define MAX_FIELD 256

static const char scan_script[] =
	"import importlib.metadata as md, re\n"
	"seen = {}\n"
	"for d in md.distributions():\n"
	"    name = d.metadata['Name'] if d.metadata else None\n"
	"    if not name:\n"
	"        continue\n"
	"    key = re.sub(r'[-_.]+', '-', name).lower()\n"
	"    if key not in seen:\n"
	"        seen[key] = (name, d.version or '')\n"
	"clean = lambda s: ' '.join(str(s).split())\n"
	"for key in sorted(seen):\n"
	"    name, version = seen[key]\n"
	"    print(clean(name) + '\\t' + clean(version))\n";

static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dependency *cache;
static size_t cache_len;
static bool cached;

static void free_list(struct dependency *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(list[i].name);
		free(list[i].version);
	}
	free(list);
}

/* Parses the script's output; returns 0 with a malloc'd list, -1 on OOM. */
static int parse_listing(const char *out, size_t len, struct dependency **list, size_t *n)
{
	struct dependency *deps = NULL;
	size_t count = 0, pos = 0;

	while (pos < len && count < MAX_DEPENDENCIES) {
		const char *line = out + pos, *nl = memchr(line, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - line) : len - pos;
		const char *tab = memchr(line, '\t', line_len);

		pos += line_len + 1;
		if (!tab || tab == line || (size_t)(tab - line) > MAX_FIELD ||
		    line_len - (size_t)(tab - line) - 1 > MAX_FIELD)
			continue;
		struct dependency *grown = realloc(deps, (count + 1) * sizeof(*deps));
		if (!grown)
			goto oom;
		deps = grown;
		deps[count].name = strndup(line, (size_t)(tab - line));
		deps[count].version = strndup(tab + 1, line_len - (size_t)(tab - line) - 1);
		count++;
		if (!deps[count - 1].name || !deps[count - 1].version)
			goto oom;
	}
	*list = deps;
	*n = count;
	return 0;
oom:
	free_list(deps, count);
	return -1;
}

/* Runs the scan and replaces the cache. Fills r with an error if it fails. */
static const char *rescan(struct reply *r)
{
	struct run_result res = { 0 };
	struct dependency *list = NULL;
	size_t n = 0;
	char err[512] = "";
	const char *outcome = "ok";

	switch (script_run("dependencies", NULL, 0, scan_script, sizeof(scan_script) - 1, &res, err,
			   sizeof(err))) {
	case SCRIPT_BUSY:
		reply_error(r, 503, -503, "Too many requests");
		return "busy";
	case SCRIPT_NO_SANDBOX:
		reply_error(r, 500, -500, err[0] ? err : "could not set up a sandbox");
		return "host_fault";
	case SCRIPT_RAN:
		break;
	}
	if (res.exit_code != 0 || res.hits) {
		log_event(LOG_LEVEL_ERROR, "dependency scan failed", NULL);
		reply_error(r, 500, -500, "the dependency scan failed inside the sandbox");
		outcome = "scan_failed";
	} else if (parse_listing(res.out, res.out_len, &list, &n)) {
		reply_error(r, 500, -500, "out of memory");
		outcome = "host_fault";
	} else {
		pthread_mutex_lock(&cache_lock);
		free_list(cache, cache_len);
		cache = list;
		cache_len = n;
		cached = true;
		pthread_mutex_unlock(&cache_lock);
	}
	run_result_free(&res);
	return outcome;
}

const char *dependencies_list(struct reply *r, bool force)
{
	const char *outcome = "ok";

	pthread_mutex_lock(&scan_lock);
	pthread_mutex_lock(&cache_lock);
	bool have = cached;
	pthread_mutex_unlock(&cache_lock);
	if (force || !have)
		outcome = rescan(r);
	pthread_mutex_unlock(&scan_lock);
	if (strcmp(outcome, "ok"))
		return outcome;
	pthread_mutex_lock(&cache_lock);
	reply_dependencies(r, cache, cache_len);
	pthread_mutex_unlock(&cache_lock);
	return r->status == 200 ? "ok" : "host_fault";
}

const char *dependencies_update(struct reply *r)
{
	const char *outcome;

	pthread_mutex_lock(&scan_lock);
	outcome = rescan(r);
	pthread_mutex_unlock(&scan_lock);
	if (!strcmp(outcome, "ok")) {
		reply_success_empty(r);
		import_check_start(); /* the operator installed something: is it usable? */
	}
	return outcome;
}

void dependencies_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	free_list(cache, cache_len);
	cache = NULL;
	cache_len = 0;
	cached = false;
	pthread_mutex_unlock(&cache_lock);
}
