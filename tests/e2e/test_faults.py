"""Process faults, injected for real against a real stack.

Each test kills or removes one process or file the service depends on
while it serves (sandcelld itself in the middle of a run, a warm sandbox, a
network namespace's holder or pasta, the interpreter), or plays a client
that leaves, and checks: the answer meanwhile (exact, or a clear error,
never a hang), that the service comes back, and that nothing of the
stack is left (its uids, its cgroup tree, its run dir, its namespaces).
The host's resource faults are in test_faults_resources.py; the killed
zygote is test_zygote.py's test_a_killed_zygote_is_restarted_....

Every "nothing left" check looks only at what the test's own stack made.
"""

import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time

import pytest

from conftest import assert_alive, assert_clean, builddir, http, own_stack, run, run_ok, srcdir
import stack as stackmod
from test_metrics import scrape, value
from test_network import H, py, report
from test_private_netns import children, pnet  # noqa: F401 (pnet: the fixture)

BOUND = 60  # seconds: catches "never", measures nothing
UNAVAILABLE = {"code": -502, "message": "sandcell is not available", "data": None}
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"


def wait_until(cond, what, bound=BOUND):
    deadline = time.monotonic() + bound
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, "not within %d s: %s" % (bound, what)
        time.sleep(0.1)


def running_sandboxes(s):
    """pids of the stack's sandbox processes that run code (not the warm ones waiting; with
    a warm pool, one being started would look the same: the tests that use this have none)."""
    return [pid for pid, _, _ in stackmod.processes_with_uid_in(s.uid_base, s.uid_base + s.slots)
            if not stackmod.in_warm_cgroup(pid)]


def gone(pids):
    return not [p for p in pids if os.path.exists("/proc/%d" % p)]


def dead(pid):
    """Gone, or a zombie (its parent, stopped, has not reaped it) whose threads have all
    exited: a thread group leader is a zombie as soon as its own thread is, while node's
    other threads may still hold the process's descriptors (stdin) on a loaded host."""
    stat = stackmod._read("/proc/%d/stat" % pid)
    if not stat:
        return True
    try:
        threads = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z" and threads == [str(pid)]


def in_background(fn):
    """Runs fn in a thread; returns (thread, results): results gets fn's value or exception."""
    results = []

    def go():
        try:
            results.append(fn())
        except Exception as e:  # noqa: BLE001 (the test looks at it)
            results.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, results


def processes_in_netns(inode):
    found = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.stat("/proc/%s/ns/net" % p).st_ino == inode:
                found.append(int(p))
        except OSError:
            continue
    return found


def outcome_lines(s, outcome):
    return [l for l in s.log(100000).splitlines() if "outcome=%s" % outcome in l]


# ---- 1. sandcelld killed in the middle of a run -------------------------------------------

def test_sandcelld_killed_mid_run(pnet):  # noqa: F811
    """kill -9 of sandcelld while a network run is in flight: the client waiting for it and
    one arriving meanwhile get nginx's exact `not available` envelope (nginx/sandcell-snippet.conf,
    @sandcell_unavailable); nothing of the killed daemon survives (the sandbox, its
    namespace's holder and pasta, its cgroups, its files); a new sandcelld serves, and
    its network sandboxes are under the policy from their first run."""
    s = pnet.stack(max_workers=2, warm_sandboxes=0, worker_timeout=300)
    assert_alive(s)
    private0 = pnet.private.count()
    t, results = in_background(lambda: run(s, "python3", SLEEPER, enable_network=True))
    (pid,) = wait_until(lambda: running_sandboxes(s), "the run started")
    netns = os.stat("/proc/%d/ns/net" % pid).st_ino
    helpers = children(s.sandcelld.pid)
    assert [c for c in helpers.values() if c.startswith("pas")], helpers
    old = s.sandcelld
    old.kill()
    old.wait(BOUND)
    t.join(BOUND)
    assert results == [(502, UNAVAILABLE)], results
    r = http("POST", s, "/v1/sandbox/run", json={"language": "python3", "code": "print(1)"})
    assert (r.status_code, r.json()) == (502, UNAVAILABLE), (r.status_code, r.content)
    assert r.headers["Content-Type"] == "application/json", r.headers
    s.restart_sandcelld()
    # nothing of the killed daemon is left once the new one serves
    wait_until(lambda: gone([pid] + list(helpers)), "the old sandbox and helpers are gone")
    wait_until(lambda: not processes_in_netns(netns), "the old run's namespace is empty")
    assert_clean(s)
    # never a sandbox without its policy: the first network runs of the new daemon
    out, _ = report(s, py("print(json.dumps([tcp(%r, 80), tcp(%r, 80)]))"
                          % (H["public"], H["private"])))
    assert out == ["connected hello", "EPERM"], out
    assert pnet.private.count() == private0, pnet.private.got[private0:]
    assert_alive(s)
    assert_clean(s)
    s.stop()
    assert not s.stop_problems, s.stop_problems


# ---- 2. a warm sandbox or a network helper killed ----------------------------------------

NAMES = {"nodejs": "node", "python3": "python3"}


def warm_sandbox(s, language):
    """(init, interpreter) of one warm sandbox of the language (by its argv)."""
    def find():
        for cg in stackmod.cgroup_tree(s.cgroup_parent()):
            if not stackmod.is_warm(cg):
                continue
            pids = [int(p) for p in stackmod._read(os.path.join(cg, "cgroup.procs")).split()]
            reader = [p for p in pids if stackmod._read("/proc/%d/syscall" % p).startswith("0 0x0 ")]
            init = [p for p in pids if p not in reader]
            argv0 = stackmod._read("/proc/%d/cmdline" % reader[0]).split("\0")[0] if reader else ""
            if reader and init and os.path.basename(argv0).startswith(NAMES[language]):
                return init[0], reader[0]
        return None
    return wait_until(find, "a warm %s sandbox" % language)


@pytest.mark.parametrize("language", ["nodejs", "python3"])
@pytest.mark.parametrize("victim", ["init", "interpreter", "interpreter_of_stopped_init"])
def test_a_killed_warm_sandbox_is_never_given_a_run(language, victim):
    """A warm sandbox that died while waiting (the OOM killer, an operator) is not handed a
    program: every run answers right, the pool refills. The stopped init keeps the window
    between the interpreter's death and the init's own exit open (a loaded host): the run
    must not go to the dead interpreter and end in a timeout."""
    code = "console.log(6 * 7)" if language == "nodejs" else "print(6 * 7)"
    with own_stack(enable_network=False, max_workers=1, warm_sandboxes=1, worker_timeout=30,
                   zygote_path="") as s:
        for _ in range(2):
            init, interpreter = warm_sandbox(s, language)
            if victim == "interpreter_of_stopped_init":
                os.kill(init, signal.SIGSTOP)
            killed = init if victim == "init" else interpreter
            os.kill(killed, signal.SIGKILL)
            # dead, not dying: its exit (closing its descriptors) is done
            wait_until(lambda: dead(killed), "the sandbox died")
            start = time.monotonic()
            data = run_ok(s, language, code)
            assert data == {"stdout": "42\n", "stderr": "", "error": "", "exit_code": 0}, data
            assert time.monotonic() - start < 20, "the run waited for the dead sandbox"
        wait_until(lambda: value(scrape(s), 'sandcell_warm_sandboxes{language="%s"}' % language) >= 1,
                   "the pool refilled")
        assert_alive(s)
        assert_clean(s)


@pytest.mark.parametrize("helper", ["pasta", "holder"])
def test_a_killed_network_helper_is_replaced(pnet, helper):  # noqa: F811
    """The namespace pool's holder or pasta killed: no later network run hangs or goes to
    the broken namespace (each answers within bounds, right or with a clear 500); runs
    succeed again, through a new pair of helpers; the old namespace is not lent again."""
    s = pnet.stack(max_workers=1, warm_sandboxes=0)
    code = py("import os\nprint(json.dumps([os.stat('/proc/self/ns/net').st_ino, tcp(%r, 80)]))"
              % H["public"])
    first, _ = report(s, code)
    assert first[1] == "connected hello", first
    wait_until(lambda: len(children(s.sandcelld.pid)) == 2, "only the helpers are left")
    helpers = children(s.sandcelld.pid)
    (victim,) = [p for p, c in helpers.items() if c.startswith("pas") == (helper == "pasta")]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: dead(victim), "the helper died")  # (a run meanwhile may fail: closed)
    answers = []
    for _ in range(3):
        t0 = time.monotonic()
        status, body = run(s, "python3", code, enable_network=True)
        assert time.monotonic() - t0 < BOUND, (status, body)
        answers.append((status, body))
        if status == 500:
            assert body["code"] == -500 and body["message"], body
        else:
            assert status == 200 and body["code"] == 0, body
    ok = [b["data"] for st, b in answers if st == 200]
    assert ok, answers
    for data in ok:
        ino, result = json.loads(data["stdout"])
        assert result == "connected hello" and ino != first[0], data
    assert gone(list(helpers)), helpers
    assert_alive(s)
    assert_clean(s)
    s.stop()
    assert not s.stop_problems, s.stop_problems


# ---- 3. the interpreter missing or not executable ----------------------------------------

@pytest.fixture
def interpreter_copy():
    """A copy of python3 in a directory of this test (not under /tmp, the jail's own)."""
    d = tempfile.mkdtemp(prefix="sandcell-e2e-interp-", dir="/var/tmp")
    os.chmod(d, 0o755)
    path = os.path.join(d, "python3")
    shutil.copy2("/usr/bin/python3", path)
    try:
        yield path
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("fault", ["missing", "not_executable"])
def test_sandcelld_refuses_to_start_without_its_interpreter(interpreter_copy, fault):
    if fault == "missing":
        os.unlink(interpreter_copy)
    else:
        os.chmod(interpreter_copy, 0o644)
    s = stackmod.Stack(builddir(), srcdir=srcdir(), python_path=interpreter_copy)
    with pytest.raises(stackmod.StackError) as failed:
        s.start()
    assert "exited with 1 before listening" in str(failed.value), failed.value
    assert interpreter_copy in str(failed.value), failed.value
    assert not s.stop_problems, s.stop_problems


@pytest.mark.parametrize("fault", ["missing", "not_executable"])
def test_an_interpreter_gone_after_start_is_named_per_request(interpreter_copy, fault):
    """Removed (or made non-executable) while sandcelld serves: each run of that language
    gets 500 with the interpreter named, at once; the other language runs; restored, runs
    succeed again."""
    with own_stack(enable_network=False, max_workers=1, warm_sandboxes=0, zygote_path="",
                   python_path=interpreter_copy) as s:
        assert_alive(s)
        saved = interpreter_copy + ".saved"
        shutil.copy2(interpreter_copy, saved)
        if fault == "missing":
            os.unlink(interpreter_copy)
        else:
            os.chmod(interpreter_copy, 0o644)
        for _ in range(2):
            t0 = time.monotonic()
            status, body = run(s, "python3", "print(1)")
            assert time.monotonic() - t0 < BOUND
            assert status == 500 and body["code"] == -500 and body["data"] is None, body
            assert interpreter_copy in body["message"], body
        assert run_ok(s, "nodejs", "console.log(1)")["stdout"] == "1\n"
        os.replace(saved, interpreter_copy)
        assert_alive(s)
        assert_clean(s)


# ---- 4. a client that leaves ---------------------------------------------------------------

def leaving_client(s, code, language="python3"):
    """An HTTP client on a raw socket: sends the run and returns the socket (close() leaves)."""
    body = ('{"language": "%s", "code": %s}' % (language, json.dumps(code))).encode()
    c = socket.create_connection(("127.0.0.1", s.port), timeout=BOUND)
    c.sendall(b"POST /v1/sandbox/run HTTP/1.1\r\nHost: localhost\r\nX-Api-Key: %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (s.key.encode(), len(body), body))
    return c


@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_a_run_whose_client_left_is_killed(language):
    """The client closes its connection while its program runs (a timeout of 300 s): the
    program is killed well before that, the log says outcome=client_gone, nothing of it is
    left, and the service goes on."""
    code = SLEEPER if language == "python3" else \
        "console.log('started'); setTimeout(() => {}, 600000);"
    with own_stack(enable_network=False, max_workers=2, warm_sandboxes=0, worker_timeout=300) as s:
        c = leaving_client(s, code, language)
        pids = wait_until(lambda: running_sandboxes(s), "the run started")
        c.close()
        wait_until(lambda: gone(pids), "the run was killed")
        wait_until(lambda: outcome_lines(s, "client_gone"), "the log line")
        (line,) = outcome_lines(s, "client_gone")
        assert "status=499" in line and "exit_code=-1" in line, line
        assert_clean(s)
        assert_alive(s)
        assert 'sandcell_requests_total{outcome="client_gone"} 1' in scrape(s)


def test_a_queued_request_whose_client_left_gets_no_sandbox():
    """max_workers 1 and no warm pool: a second request waits for the first one's worker;
    its client leaves while it waits. When the worker comes free no sandbox is started
    for it (the zygote forks once, for the first run); its log line says client_gone."""
    with own_stack(enable_network=False, max_workers=1, warm_sandboxes=0, worker_timeout=300) as s:
        # the zygote's first child comes after it started: wait for it to be up
        wait_until(lambda: value(scrape(s), 'sandcell_zygotes_running{language="python3"}') == 1,
                   "the zygote runs")
        forks0 = value(scrape(s), 'sandcell_zygote_forks_total{language="python3"}')
        first = leaving_client(s, SLEEPER)
        pids = wait_until(lambda: running_sandboxes(s), "the first run started")
        queued = leaving_client(s, "print('the queued run ran')")
        wait_until(lambda: value(scrape(s), "sandcell_queue_depth") == 1, "the second one waits")
        queued.close()
        wait_until(lambda: value(scrape(s), "sandcell_queue_depth") == 0, "it left the queue")
        (line,) = wait_until(lambda: outcome_lines(s, "client_gone"), "its log line")
        assert "queued" in line and "exit_code" not in line, line
        first.close()
        wait_until(lambda: gone(pids), "the first run was killed")
        wait_until(lambda: len(outcome_lines(s, "client_gone")) == 2, "the first one's line")
        assert value(scrape(s), 'sandcell_zygote_forks_total{language="python3"}') == forks0 + 1
        assert not running_sandboxes(s)
        assert_clean(s)
        assert_alive(s)
