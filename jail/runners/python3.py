# sandcell's Python runner: reads "<preload length>\n<preload><code>" from
# stdin, then runs preload and code as the __main__ module. An uncaught
# exception prints the usual traceback (without this runner's frame) and
# exits 255, as DifySandbox does. When the program is done (its threads
# joined, its exit handlers run, its output flushed) the runner reports
# "<status>\n" on fd 3 and exits at once: sandcell answers without waiting
# for the interpreter's teardown.
#
# Run as `python3 -I -B -c <this>` (a cold start), or loaded once as a module
# by sandcell's zygote (zygote/python.c), which calls _sandcell_zygote_ready
# and then, in each forked and jailed child, _sandcell_run.
def _sandcell_prepare():
    import signal

    # CPython ignores SIGXFSZ; the default lets the file size limit end the
    # run visibly ("error: file size limit exceeded"). Node gets the same
    # from the supervisor (see jail/seccomp_policy.c).
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

    # modules that Dify's templates use on every run, and those of
    # _sandcell_run, imported while a warm sandbox waits for its code
    # (importing is all they do)
    import atexit, base64, builtins, json, linecache, traceback, types  # noqa: F401


def _sandcell_zygote_ready(preload):
    """In the zygote: imports what it is told to (skipping what cannot be
    imported, for whatever reason), checks that nothing started a thread (a
    fork keeps only the calling one), freezes the heap; returns what was
    skipped, as "name (why)"."""
    import gc, sys

    _sandcell_prepare()
    skipped = []
    for name in preload:
        try:
            __import__(name)
        except BaseException as e:  # a module's own error must not stop the zygote
            why = " ".join(str(e).split())[:200].replace('"', "'")  # goes into a log line
            skipped.append("%s (%s%s)" % (name, type(e).__name__, ": " + why if why else ""))
        threading = sys.modules.get("threading")
        if threading is not None and threading.active_count() > 1:
            raise RuntimeError("importing %s started a thread: take it out of python_preload" % name)
    # what a module builds on first use (jinja2: its lexer, the regular
    # expressions, the compiler's modules), built once here for every child
    if "jinja2" in sys.modules:
        sys.modules["jinja2"].Template("{{ s }}").render(s="a")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    gc.collect()
    # children then never write to these objects' pages just to scan them
    gc.freeze()
    return skipped


def _sandcell_warm_up():
    """Jailed, before it reads its code: does what every run does (compile,
    run a module, print, the json and base64 calls of Dify's template), so
    that the pages this touches are faulted in (in a zygote's child: copied
    from the zygote) while the sandbox waits, not while the answer is
    awaited."""
    import io, sys

    out = io.StringIO()
    code = compile("for i in range(3):\n"
                   "    print(json.dumps({'a': [i, str(i)]}), base64.b64encode(b'x').decode(), file=out)\n",
                   "<warm-up>", "exec")
    exec(code, {"out": out, "json": sys.modules["json"], "base64": sys.modules["base64"]})


def _sandcell_run():
    import builtins, linecache, os, sys, traceback, types

    data = sys.stdin.buffer.read()
    newline = data.index(b"\n")
    preload_len = int(data[:newline])
    body = data[newline + 1:]
    sources = [("preload.py", body[:preload_len]), ("main.py", body[preload_len:])]

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    main.__file__ = "main.py"
    sys.modules["__main__"] = main
    sys.argv = ["main.py"]

    def exit_status(code):
        # what the interpreter would make of SystemExit(code)
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        print(code, file=sys.stderr)
        return 1

    status = 0
    try:
        for filename, raw in sources:
            if not raw:
                continue
            text = raw.decode("utf-8", "replace")
            # lets tracebacks show the offending source lines
            linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
            exec(compile(text, filename, "exec"), main.__dict__)
    except SystemExit as e:
        status = exit_status(e.code)
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        status = 255

    # what interpreter shutdown would do first: wait for non-daemon threads,
    # run atexit handlers, flush the standard streams
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
        import atexit
        atexit._run_exitfuncs()
    except SystemExit as e:
        status = exit_status(e.code)
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__)
        status = 255
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 120  # as CPython does when flushing fails at exit
    try:
        os.write(3, b"%d\n" % status)
    except OSError:
        pass  # the program closed fd 3: its exit status tells instead
    os._exit(status)

if __name__ == "__main__":
    _sandcell_prepare()
    _sandcell_warm_up()
    _sandcell_run()
