/* The zygote's interpreter; see python.h. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zygote/python.h"

static const char runner_source[] =
#include "jail/runners/python3.inc"
	;

static PyObject *run_fn;     /* the runner's _sandcell_run */
static PyObject *warm_up_fn; /* and _sandcell_warm_up */

/* The pending exception as text, cleared. */
static void exception_text(const char *step, char *err, size_t errlen)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyObject *s = value ? PyObject_Str(value) : NULL;
	const char *text = s ? PyUnicode_AsUTF8(s) : NULL;
	snprintf(err, errlen, "%s: %s%s%s", step, type ? ((PyTypeObject *)type)->tp_name : "error",
		 text ? ": " : "", text ? text : "");
	Py_XDECREF(s);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	PyErr_Clear();
}

/* This binary embeds one version of Python: the configured interpreter's
 * binary must be that one (python3.11, whatever links lead to it). */
static int check_version(const char *binary, char *err, size_t errlen)
{
	char want[32];
	const char *base = strrchr(binary, '/');
	base = base ? base + 1 : binary;
	snprintf(want, sizeof(want), "python%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION);
	if (strcmp(base, want) != 0) {
		snprintf(err, errlen, "the zygote embeds %s, the interpreter is %s", want, binary);
		return -1;
	}
	return 0;
}

static int initialise(const char *program, char *err, size_t errlen)
{
	PyConfig config;
	PyConfig_InitPythonConfig(&config);
	config.isolated = 1;       /* -I */
	config.write_bytecode = 0; /* -B */
	config.parse_argv = 0;
	PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, program);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		snprintf(err, errlen, "initialising Python: %s", st.err_msg ? st.err_msg : "failed");
		return -1;
	}
	return 0;
}

/* The runner as module _sandcell_runner (so its cold-start lines do not run). */
static PyObject *load_runner(char *err, size_t errlen)
{
	PyObject *module = PyModule_New("_sandcell_runner");
	PyObject *code = Py_CompileString(runner_source, "<sandcell runner>", Py_file_input);
	PyObject *globals = module ? PyModule_GetDict(module) : NULL;
	PyObject *done = NULL;
	if (globals && code && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0)
		done = PyEval_EvalCode(code, globals, globals);
	Py_XDECREF(code);
	if (!done) {
		exception_text("loading the runner", err, errlen);
		Py_XDECREF(module);
		return NULL;
	}
	Py_DECREF(done);
	return module;
}

static PyObject *preload_names(const char *preload)
{
	PyObject *s = PyUnicode_FromString(preload);
	PyObject *names = s ? PyUnicode_Split(s, NULL, -1) : NULL;
	Py_XDECREF(s);
	return names;
}

int python_start(const char *program, const char *binary, const char *preload, char *err,
		 size_t errlen)
{
	if (check_version(binary, err, errlen) != 0 || initialise(program, err, errlen) != 0)
		return -1;
	PyObject *runner = load_runner(err, errlen);
	if (!runner)
		return -1;
	PyObject *names = preload_names(preload);
	PyObject *skipped = names ? PyObject_CallMethod(runner, "_sandcell_zygote_ready", "O", names) : NULL;
	Py_XDECREF(names);
	run_fn = skipped ? PyObject_GetAttrString(runner, "_sandcell_run") : NULL;
	warm_up_fn = run_fn ? PyObject_GetAttrString(runner, "_sandcell_warm_up") : NULL;
	if (!warm_up_fn) {
		exception_text("preparing the zygote", err, errlen);
		Py_XDECREF(skipped);
		return -1;
	}
	if (PyList_Check(skipped) && PyList_Size(skipped) > 0) {
		PyObject *sep = PyUnicode_FromString(", ");
		PyObject *joined = sep ? PyUnicode_Join(sep, skipped) : NULL;
		fprintf(stderr, "level=info msg=\"zygote: preload modules skipped\" modules=\"%s\"\n",
			joined ? PyUnicode_AsUTF8(joined) : "?");
		Py_XDECREF(joined);
		Py_XDECREF(sep);
	}
	Py_DECREF(skipped);
	return 0;
}

void python_before_fork(void)
{
	PyOS_BeforeFork();
}

void python_after_fork_parent(void)
{
	PyOS_AfterFork_Parent();
}

_Noreturn void python_run_child(void)
{
	PyOS_AfterFork_Child(); /* runs the at-fork hooks: random reseeds */
	/* measured: halves the run's wall time (the pages every run writes are
	 * copied from the zygote while the sandbox still waits) */
	PyObject *w = PyObject_CallNoArgs(warm_up_fn);
	if (!w)
		PyErr_Clear(); /* a warm-up only: the run does not depend on it */
	Py_XDECREF(w);
	PyObject *r = PyObject_CallNoArgs(run_fn);
	/* the runner ends with os._exit; getting here means it failed itself */
	if (!r)
		PyErr_Print();
	_exit(120);
}
