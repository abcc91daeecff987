# sandcell's Python runner: reads "<preload length>\n<preload><code>" from
# stdin, then runs preload and code as the __main__ module. An uncaught
# exception prints the usual traceback (without this runner's frame) and
# exits 255, as DifySandbox does.
def _sandcell_run():
    import builtins, linecache, signal, sys, traceback, types

    # CPython ignores SIGXFSZ; the default lets the file size limit end the
    # run visibly ("error: file size limit exceeded"). Node gets the same
    # from the supervisor (see jail/seccomp_policy.c).
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

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
    try:
        for filename, raw in sources:
            if not raw:
                continue
            text = raw.decode("utf-8", "replace")
            # lets tracebacks show the offending source lines
            linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
            exec(compile(text, filename, "exec"), main.__dict__)
    except SystemExit:
        raise
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        sys.stderr.flush()
        sys.exit(255)

_sandcell_run()
