/* The import check; see import_check.h.
 *
 * One sandbox imports every top-level module of every distribution it can
 * see (importlib.metadata.packages_distributions), one after the other,
 * printing a line before and after each. Imports in one interpreter can
 * disturb each other (setuptools refuses to load after distutils), so every
 * module that failed there is imported again alone, in a fresh sandbox of its
 * own: only what also fails alone is logged, with the reason the import gave
 * (a missing library, a path the jail does not show). A module that kills
 * the interpreter is logged as such, and the check stops there.
 *
 * The runs go through admission like requests (they wait for a free worker)
 * and are not counted in the request metrics. A check begins only once no
 * request has been in flight for IDLE_MS (at most MAX_WAIT_MS after it was
 * asked for): after a restart the backlog comes first. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fcgi/admission.h"
#include "fcgi/import_check.h"
#include "fcgi/script_run.h"
#include "fcgi/log.h"
#include "jail/backoff.h"
#include "jail/jail.h"

#define MAX_RECHECKS 32 /* at most so many modules are imported again alone */
#define IDLE_MS 2000
#define MAX_WAIT_MS (5 * 60 * 1000)
#define MAX_NAME 128

/* Our script, never user input. With _only set, it imports that one module. */
static const char check_script[] =
	"import importlib, importlib.metadata as md, importlib.util, sys\n"
	"clean = lambda s: ' '.join(str(s).split())[:400]\n"
	"only = globals().get('_only')\n"
	"if only:\n"
	"    todo = [('', only)]\n"
	"else:\n"
	"    todo = sorted((dists[0], mod) for mod, dists in md.packages_distributions().items()\n"
	"                  if mod.isidentifier() and not mod.startswith('_'))\n"
	"for dist, mod in todo:\n"
	"    try:\n"
	"        if importlib.util.find_spec(mod) is None:\n"
	"            continue  # listed in the metadata, but no such module\n"
	"    except BaseException:\n"
	"        pass\n"
	"    print('try\\t%s\\t%s' % (dist, mod), flush=True)\n"
	"    try:\n"
	"        importlib.import_module(mod)\n"
	"        print('ok', flush=True)\n"
	"    except BaseException as e:\n"
	"        print('fail\\t%s: %s' % (type(e).__name__, clean(e) or '(no message)'), flush=True)\n"
	"print('done', flush=True)\n";

struct failure {
	char dist[MAX_NAME];
	char module[MAX_NAME];
	char reason[512];
};

struct check_state {
	struct failure failed[MAX_RECHECKS];
	unsigned n_failed;
	unsigned checked;
	bool done;                   /* the script reached its end */
	char last_dist[MAX_NAME];    /* the module being imported when it stopped */
	char last_module[MAX_NAME];
	bool pending;                /* a "try" without its answer */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* thread, thread_started */
static pthread_t thread;
static bool thread_started;
static volatile int stopping;

/* Copies the tab-separated field of line at *pos into out; advances *pos. */
static void take_field(const char **pos, const char *end, char *out, size_t len)
{
	const char *tab = memchr(*pos, '\t', (size_t)(end - *pos));
	const char *stop = tab ? tab : end;
	size_t n = (size_t)(stop - *pos);
	if (n >= len)
		n = len - 1;
	memcpy(out, *pos, n);
	out[n] = '\0';
	*pos = tab ? tab + 1 : end;
}

static void parse_line(struct check_state *st, const char *line, const char *end)
{
	const char *p = line;
	char word[8];

	take_field(&p, end, word, sizeof(word));
	if (!strcmp(word, "try")) {
		take_field(&p, end, st->last_dist, sizeof(st->last_dist));
		take_field(&p, end, st->last_module, sizeof(st->last_module));
		st->pending = true;
		st->checked++;
	} else if (!strcmp(word, "ok") && st->pending) {
		st->pending = false;
	} else if (!strcmp(word, "fail") && st->pending) {
		st->pending = false;
		if (st->n_failed == MAX_RECHECKS)
			return;
		struct failure *f = &st->failed[st->n_failed++];
		snprintf(f->dist, sizeof(f->dist), "%s", st->last_dist);
		snprintf(f->module, sizeof(f->module), "%s", st->last_module);
		take_field(&p, end, f->reason, sizeof(f->reason));
	} else if (!strcmp(word, "done")) {
		st->done = true;
	}
}

static void parse_output(struct check_state *st, const char *out, size_t len)
{
	const char *end = out + len;
	while (out < end) {
		const char *nl = memchr(out, '\n', (size_t)(end - out));
		const char *stop = nl ? nl : end;
		parse_line(st, out, stop);
		out = nl ? nl + 1 : end;
	}
}

/* Only plain module names go back into a script. */
static bool is_module_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/* One run of the script (of module alone, if given); 0 with res filled, -1 logged. */
static int run_check(const char *module, struct run_result *res)
{
	char preload[MAX_NAME + 16] = "", err[512] = "";

	if (module)
		snprintf(preload, sizeof(preload), "_only = '%s'\n", module);
	switch (script_run("import-check", preload, strlen(preload), check_script,
			   sizeof(check_script) - 1, res, err, sizeof(err))) {
	case SCRIPT_RAN:
		return 0;
	case SCRIPT_BUSY:
		log_event(LOG_LEVEL_WARN, "import check: no free worker", NULL);
		return -1;
	case SCRIPT_NO_SANDBOX:
		log_event(LOG_LEVEL_WARN, "import check: no sandbox", "error", err, NULL);
		return -1;
	}
	return -1;
}

/* What a run that did not reach its end says about the module it stopped at. */
static const char *stop_reason(const struct run_result *res)
{
	if (res->hits & JAIL_HIT_TIMEOUT)
		return "the import did not finish within worker_timeout";
	if (res->hits & JAIL_HIT_MEMORY)
		return "the import exceeded memory_limit";
	if (res->hits & JAIL_HIT_SECCOMP)
		return "the import made a system call the sandbox does not allow";
	if (res->signal)
		return "the import killed the interpreter (signal)";
	return "the interpreter exited during the import";
}

/* Imports f's module alone; true if that fails too (f->reason updated). */
static bool fails_alone(struct failure *f)
{
	struct run_result res = { 0 };
	struct check_state st = { 0 };
	bool failed = true;

	if (!is_module_name(f->module) || run_check(f->module, &res) != 0)
		return true; /* not checked again: report what the first run saw */
	parse_output(&st, res.out, res.out_len);
	if (st.done && st.n_failed == 0)
		failed = false;
	else if (st.n_failed)
		snprintf(f->reason, sizeof(f->reason), "%s", st.failed[0].reason);
	run_result_free(&res);
	return failed;
}

static void report(struct failure *f)
{
	log_event(LOG_LEVEL_WARN, "a package cannot be imported in the sandbox", "package", f->dist,
		  "module", f->module, "reason", f->reason, NULL);
}

static void check_all(void)
{
	struct run_result res = { 0 };
	struct check_state *st = calloc(1, sizeof(*st));
	unsigned reported = 0;
	char checked[16], failed[16];

	if (!st || run_check(NULL, &res) != 0) {
		free(st);
		return;
	}
	parse_output(st, res.out, res.out_len);
	for (unsigned i = 0; i < st->n_failed && !stopping; i++)
		if (fails_alone(&st->failed[i])) {
			report(&st->failed[i]);
			reported++;
		}
	if (!st->done && st->pending) {
		struct failure f = { 0 };
		snprintf(f.dist, sizeof(f.dist), "%s", st->last_dist);
		snprintf(f.module, sizeof(f.module), "%s", st->last_module);
		snprintf(f.reason, sizeof(f.reason), "%s; the modules after it were not checked",
			 stop_reason(&res));
		report(&f);
		reported++;
	} else if (!st->done) {
		log_event(LOG_LEVEL_WARN, "import check: the check script failed", NULL);
	}
	snprintf(checked, sizeof(checked), "%u", st->checked);
	snprintf(failed, sizeof(failed), "%u", reported);
	log_event(LOG_LEVEL_INFO, "import check done", "modules", checked, "failed", failed, NULL);
	run_result_free(&res);
	free(st);
}

/* True once no request has been in flight for IDLE_MS, or MAX_WAIT_MS have
 * passed; false if sandcelld is stopping. */
static bool wait_for_idle(void)
{
	long long start = monotonic_ms(), idle_since = start;
	while (!stopping) {
		unsigned in_flight, waiting, running;
		long long now = monotonic_ms();
		admission_snapshot(&in_flight, &waiting, &running);
		if (in_flight)
			idle_since = now;
		if (now - idle_since >= IDLE_MS || now - start >= MAX_WAIT_MS)
			return true;
		struct timespec pause = { 0, 100 * 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
	return false;
}

static void *check_thread(void *arg)
{
	(void)arg;
	if (wait_for_idle())
		check_all();
	return NULL;
}

void import_check_start(void)
{
	pthread_mutex_lock(&lock);
	/* one still running sees what is installed by now anyway */
	if (!thread_started || pthread_tryjoin_np(thread, NULL) == 0) {
		stopping = 0;
		thread_started = pthread_create(&thread, NULL, check_thread, NULL) == 0;
		if (!thread_started)
			log_event(LOG_LEVEL_WARN, "import check: cannot start its thread", NULL);
	}
	pthread_mutex_unlock(&lock);
}

void import_check_stop(void)
{
	pthread_mutex_lock(&lock);
	if (thread_started) {
		stopping = 1;
		pthread_join(thread, NULL);
		thread_started = false;
	}
	pthread_mutex_unlock(&lock);
}
