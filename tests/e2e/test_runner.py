"""The runners answer as soon as the program is done (jail/runners): nothing the
program does before it ends may be lost by answering early, and nothing of the
exit semantics may change."""

from conftest import assert_clean, run_ok


def test_python_non_daemon_thread_output_is_kept(stack):
    code = ("import threading, time\n"
            "def late():\n"
            "    time.sleep(0.3)\n"
            "    print('from the thread', flush=False)\n"
            "threading.Thread(target=late).start()\n"
            "print('main done')\n")
    data = run_ok(stack, "python3", code)
    assert data["stdout"] == "main done\nfrom the thread\n", data
    assert data["exit_code"] == 0 and data["error"] == "", data


def test_python_atexit_output_is_kept(stack):
    code = "import atexit, sys\natexit.register(lambda: print('bye', file=sys.stderr))\nprint('hi')\n"
    data = run_ok(stack, "python3", code)
    assert data["stdout"] == "hi\n" and data["stderr"] == "bye\n", data
    assert data["error"] == "", data


def test_python_sys_exit_semantics(stack):
    assert run_ok(stack, "python3", "import sys\nsys.exit(3)")["exit_code"] == 3
    assert run_ok(stack, "python3", "import sys\nsys.exit()")["exit_code"] == 0
    assert run_ok(stack, "python3", "import sys\nsys.exit(256 + 7)")["exit_code"] == 7
    data = run_ok(stack, "python3", "import sys\nprint('out')\nsys.exit('bad thing')")
    assert data["exit_code"] == 1 and data["stdout"] == "out\n", data
    assert data["stderr"] == "bad thing\n", data
    assert data["error"] == "process exited with code 1\nbad thing\n", data


def test_python_unflushed_output_before_os_exit(stack):
    # os._exit skips the runner: the exit status comes from the process itself
    data = run_ok(stack, "python3", "import os, sys\nsys.stdout.write('x')\nsys.stdout.flush()\nos._exit(4)")
    assert data["stdout"] == "x" and data["exit_code"] == 4, data


def test_python_closing_fd3_still_reports(stack):
    data = run_ok(stack, "python3", "import os\nos.close(3)\nprint('still here')\nraise SystemExit(5)")
    assert data["stdout"] == "still here\n" and data["exit_code"] == 5, data


def test_node_timers_run_before_the_answer(stack):
    code = "setTimeout(() => console.log('later'), 300);\nconsole.log('now');\n"
    data = run_ok(stack, "nodejs", code)
    assert data["stdout"] == "now\nlater\n", data


def test_node_process_exit_code_and_output(stack):
    code = "console.log('a'.repeat(200000));\nconsole.error('e');\nprocess.exit(3);\n"
    data = run_ok(stack, "nodejs", code)
    assert data["stdout"] == "a" * 200000 + "\n", len(data["stdout"])
    assert data["stderr"] == "e\n" and data["exit_code"] == 3, data["error"]


def test_node_exit_handler_output_is_kept(stack):
    code = "process.on('exit', () => console.log('exit handler'));\nconsole.log('main');\n"
    data = run_ok(stack, "nodejs", code)
    assert data["stdout"] == "main\nexit handler\n", data


def test_node_uncaught_exception_is_printed(stack):
    data = run_ok(stack, "nodejs", "console.log('before');\nnull.x;\n")
    assert data["exit_code"] == 1 and data["stdout"] == "before\n", data
    assert "TypeError" in data["stderr"] and "TypeError" in data["error"], data


def test_reporting_done_early_does_not_keep_the_program_alive(stack):
    # A program may write the runner's "done" report itself and keep working:
    # it is answered then, and it must not outlive that answer.
    code = ("import os, time\n"
            "print('reported', flush=True)\n"
            "os.write(3, b'0\\n')\n"
            "while True:\n"
            "    time.sleep(0.01)\n")
    data = run_ok(stack, "python3", code)
    assert data["stdout"] == "reported\n" and data["exit_code"] == 0, data
    assert_clean(stack)


def test_nothing_left_after_runner_tests(stack):
    assert_clean(stack)
