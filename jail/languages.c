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

/* What a jail sees of the host: its installed software, read-only, and nothing
 * else. The rule, so that any package an operator installs with apt works
 * without a change here:
 *   - all that packages install for programs to load or read: /usr/lib and
 *     /usr/lib64 (libraries in any subdirectory, interpreters' modules,
 *     dist-packages), /usr/share (architecture-independent data: fonts,
 *     matplotlib's data, zoneinfo, certificates) and their /usr/local twins;
 *   - from /etc only what the loader and libraries read to find or configure
 *     that software, which is the same public data on every Debian host: the
 *     alternatives links (libblas.so.3 -> /etc/alternatives/... -> a BLAS in
 *     a subdirectory), the loader cache, the CA certificates and OpenSSL's
 *     configuration, fontconfig's configuration and cache, matplotlibrc and
 *     Python's own /etc/python3.X;
 *   - the configured interpreter, and what the operator configures for a
 *     language (a venv's prefix, a Node modules directory).
 * Never: other programs (/usr/bin, /usr/sbin, /usr/libexec), the rest of /etc
 * (host identity, credentials, services' configuration), /var, /home, /root,
 * /run, /srv, /opt, /boot. Binds are read-only, nosuid and nodev, and nothing
 * under them is writable by a sandbox's uid anyway (root-owned). */
#define HOST_SOFTWARE_BINDS \
	"/usr/lib", "/usr/lib64", "/usr/share", "/usr/local/lib", "/usr/local/share", \
	"/etc/alternatives", "/etc/ld.so.cache", "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/fonts", "/var/cache/fontconfig", \
	"/etc/matplotlibrc"

/* Libraries that start a thread per core (OpenBLAS, OpenMP, MKL, numexpr)
 * get as many as the sandbox's CPU share (@THREADS@): more only wait for
 * CPU, and on a many-core host would run into pids_limit. Matplotlib draws
 * with Agg: there is no display. */
#define COMMON_ENV \
	"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/tmp", "TMPDIR=/tmp", \
	"OPENBLAS_NUM_THREADS=@THREADS@", "OMP_NUM_THREADS=@THREADS@", "MKL_NUM_THREADS=@THREADS@", \
	"NUMEXPR_NUM_THREADS=@THREADS@", "MPLBACKEND=Agg"

static const char *python_path(const struct jail_config *cfg) { return cfg->python_path; }
static const char *nodejs_path(const struct jail_config *cfg) { return cfg->nodejs_path; }
static const char *nodejs_modules(const struct jail_config *cfg) { return cfg->nodejs_modules; }

static const struct language python3 = {
	.name = "python3",
	.interpreter = python_path,
	/* -I: ignore PYTHON* variables and the user's site directory;
	 * -B: the root is read-only, do not try to write .pyc files */
	.args = (const char *const[]){ "-I", "-B", "-c", "@RUNNER@", NULL },
	.runner = python3_runner,
	.binds = (const char *const[]){ HOST_SOFTWARE_BINDS, "/etc/python3*", NULL },
	.env = (const char *const[]){ COMMON_ENV, "PYTHONIOENCODING=utf-8", NULL },
	.venv = true,
	.syscalls = NULL,
	.zygote = true,
};

static const struct language nodejs = {
	.name = "nodejs",
	.interpreter = nodejs_path,
	.args = (const char *const[]){ "--max-old-space-size=@HEAP_MB@", "-e", "@RUNNER@", NULL },
	.runner = nodejs_runner,
	.binds = (const char *const[]){ HOST_SOFTWARE_BINDS, NULL },
	/* Node looks there for require()'s modules after node_modules folders */
	.env = (const char *const[]){ COMMON_ENV, "NODE_PATH=@MODULES@", NULL },
	.modules = nodejs_modules,
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
