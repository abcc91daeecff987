/* The languages sandcell runs. See languages.h. */
#include <stddef.h>
#include <string.h>

#include "jail/languages.h"

static const char python3_runner[] =
#include "jail/runners/python3.inc"
	;

static const char nodejs_runner[] =
#include "jail/runners/nodejs.inc"
	;

/* What every interpreter's dynamic loader and TLS stack needs. */
#define COMMON_BINDS \
	"/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/locale/C.utf8", \
	"/etc/ssl", "/usr/lib/ssl", "/usr/share/ca-certificates", "/usr/share/zoneinfo"

static const char *python_path(const struct jail_config *cfg) { return cfg->python_path; }
static const char *nodejs_path(const struct jail_config *cfg) { return cfg->nodejs_path; }

static const struct language python3 = {
	.name = "python3",
	.interpreter = python_path,
	/* -I: ignore PYTHON* variables and the user's site directory;
	 * -B: the root is read-only, do not try to write .pyc files */
	.args = (const char *const[]){ "-I", "-B", "-c", "@RUNNER@", NULL },
	.runner = python3_runner,
	.binds = (const char *const[]){ COMMON_BINDS, "/usr/lib/python3*", "/usr/local/lib/python3*",
					"/usr/share/tzdata", NULL },
	.env = (const char *const[]){ "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp",
				      "TMPDIR=/tmp", "PYTHONIOENCODING=utf-8", NULL },
	.syscalls = NULL,
	.zygote = true,
};

static const struct language nodejs = {
	.name = "nodejs",
	.interpreter = nodejs_path,
	.args = (const char *const[]){ "--max-old-space-size=@HEAP_MB@", "-e", "@RUNNER@", NULL },
	.runner = nodejs_runner,
	.binds = (const char *const[]){ COMMON_BINDS, "/usr/share/nodejs", "/usr/lib/nodejs", NULL },
	.env = (const char *const[]){ "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp",
				      "TMPDIR=/tmp", NULL },
	.syscalls = NULL,
};

const struct language *const languages[] = { &python3, &nodejs, NULL };

const struct language *language_find(const char *name)
{
	for (size_t i = 0; languages[i]; i++)
		if (strcmp(languages[i]->name, name) == 0)
			return languages[i];
	return NULL;
}

const struct language *language_at(size_t i)
{
	size_t n = 0;
	while (languages[n])
		n++;
	return i < n ? languages[i] : NULL;
}

const char *language_name(const struct language *lang)
{
	return lang->name;
}
