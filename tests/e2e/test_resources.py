"""Resource attacks: each run must end with the right `error` marker within a
(generous) bound, leave nothing behind (no process, cgroup, mount or file),
and the service must still answer correctly afterwards.

Bounds are there to catch "never ends", not to measure speed: timing belongs
to bench/.
"""

import json
import os
import signal
import threading
import time

import pytest

from conftest import assert_alive, assert_clean, error_lines, http, post_raw, run, run_ok

TIMEOUT = 2           # worker_timeout of the limits stacks
BOUND = TIMEOUT + 30  # an answer later than this means the limit did not work
OUTPUT_LIMIT = 64 * 1024
FILE_SIZE_LIMIT = 1024 * 1024
TMP_SIZE = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def limits(make_stack):
    """Small limits, threads only (the default)."""
    return make_stack(worker_timeout=TIMEOUT, output_limit="64k", memory_limit="128m",
                      pids_limit=32, tmp_size="4m", file_size_limit="1m", max_workers=2)


# The bombs must meet their limit, not the timeout, on a host busy with other work too: the
# same small limits, but a timeout far above the second or two a bomb needs.
BOMB_TIMEOUT = 30


@pytest.fixture(scope="module")
def bombs(make_stack):
    return make_stack(worker_timeout=BOMB_TIMEOUT, memory_limit="128m", pids_limit=32,
                      max_workers=2, enable_network=False)


@pytest.fixture(scope="module")
def procs(make_stack):
    """allow_processes = true: programs may fork, up to pids_limit."""
    return make_stack(allow_processes=True, worker_timeout=4, pids_limit=32,
                      memory_limit="128m", max_workers=2)


def timed_run(stack, language, code, bound=BOUND, **fields):
    t0 = time.monotonic()
    data = run_ok(stack, language, code, **fields)
    elapsed = time.monotonic() - t0
    assert elapsed < bound, "the run took %.1fs" % elapsed
    return data


def bomb_run(stack, language, code):
    data = timed_run(stack, language, code, bound=BOMB_TIMEOUT + 30)
    assert "error: timeout" not in error_lines(data), data["error"][:500]
    return data


def assert_marker(data, marker):
    lines = error_lines(data)
    assert lines[0].startswith("process exited with code "), data["error"][:500]
    assert lines[0] == "process exited with code %d" % data["exit_code"], data["error"][:500]
    assert marker in lines, (marker, data["error"][:500], data["exit_code"])


def assert_after(stack):
    assert_clean(stack)
    assert_alive(stack)


# ---- processes and threads --------------------------------------------------------------

FORK_BOMB = "import os\nwhile True:\n    os.fork()\n"

FORK_BOMB_PERSISTENT = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""

THREAD_BOMB = """
import threading, time
while True:
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
"""


def test_fork_refused_without_allow_processes(limits):
    data = timed_run(limits, "python3", FORK_BOMB)
    assert data["exit_code"] != 0, data
    assert_marker(data, "error: operation not permitted")
    data = timed_run(limits, "python3", "import subprocess\nsubprocess.run(['/bin/true'])")
    assert data["exit_code"] != 0, data
    assert_marker(data, "error: operation not permitted")
    data = timed_run(limits, "nodejs", "require('child_process').execSync('true')")
    assert data["exit_code"] != 0, data
    assert_after(limits)


def test_fork_bomb_hits_process_limit(procs):
    data = timed_run(procs, "python3", FORK_BOMB)
    assert data["exit_code"] != 0, data
    assert_marker(data, "error: process limit exceeded")
    assert_after(procs)


def test_persistent_fork_bomb_is_ended(procs):
    data = timed_run(procs, "python3", FORK_BOMB_PERSISTENT)
    assert data["exit_code"] == -1, data
    assert_marker(data, "error: process limit exceeded")
    assert_marker(data, "error: timeout")
    assert_after(procs)


def assert_task_or_memory_marker(data):
    """Threads cost tasks and memory (stacks, arenas): whichever limit stops them must be named."""
    lines = error_lines(data)
    assert lines[0] == "process exited with code %d" % data["exit_code"], data["error"][:500]
    assert {"error: process limit exceeded", "error: memory limit exceeded"} & set(lines), \
        data["error"][:500]


def test_thread_bomb_hits_a_limit(bombs):
    data = bomb_run(bombs, "python3", THREAD_BOMB)
    assert data["exit_code"] != 0, data
    assert_task_or_memory_marker(data)
    assert_after(bombs)


def test_node_worker_bomb(bombs):
    code = ("const { Worker } = require('worker_threads');\n"
            "for (;;) new Worker('setInterval(() => {}, 1000)', { eval: true });\n")
    data = bomb_run(bombs, "nodejs", code)
    assert data["exit_code"] != 0, data
    assert_task_or_memory_marker(data)
    assert_after(bombs)


# ---- memory -------------------------------------------------------------------------------

def test_memory_bomb_python(bombs):
    code = "a = []\nwhile True:\n    a.append(b'x' * (8 << 20))\n"
    data = bomb_run(bombs, "python3", code)
    assert data["exit_code"] != 0, data
    assert_marker(data, "error: memory limit exceeded")
    assert_after(bombs)


def test_memory_bomb_node(bombs):
    code = "const a = [];\nfor (;;) a.push(Buffer.alloc(8 << 20, 1));\n"
    data = bomb_run(bombs, "nodejs", code)
    assert data["exit_code"] != 0, data
    assert_marker(data, "error: memory limit exceeded")
    assert_after(bombs)


# ---- time -----------------------------------------------------------------------------------

@pytest.mark.parametrize("language,code", [
    ("python3", "print('before', flush=True)\nwhile True:\n    pass\n"),
    ("python3", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('before', flush=True)\ntime.sleep(1000)\n"),
    ("nodejs", "console.log('before');\nfor (;;) {}\n"),
    ("nodejs", "process.on('SIGTERM', () => {});\nconsole.log('before');\n"
               "setInterval(() => {}, 1000);\n"),
])
def test_endless_program_times_out(limits, language, code):
    data = timed_run(limits, language, code)
    assert data["exit_code"] == -1, data
    assert_marker(data, "error: timeout")
    assert data["stdout"] == "before\n", data  # what it printed before is kept
    assert_after(limits)


@pytest.fixture(scope="module")
def two_cores(make_stack):
    """cpu_percent = 200: a program's CPU time may run ahead of the wall clock."""
    return make_stack(worker_timeout=8, cpu_percent=200, max_workers=1)


# Two threads spinning on two cores use up the CPU-time rlimit (timeout + 2 s) long before
# the 8 s wall clock: the program must still end with the timeout marker (SIGXCPU at the soft
# limit), not as an unexplained kill (SIGKILL at the hard one).
CPU_TWICE_AS_FAST = """
const { Worker } = require('worker_threads');
new Worker('for (;;) {}', { eval: true });
console.log('before');
for (;;) {}
"""


def test_cpu_time_limit_is_reported_as_timeout(two_cores):
    t0 = time.monotonic()
    data = run_ok(two_cores, "nodejs", CPU_TWICE_AS_FAST)
    assert data["exit_code"] == -1, data
    assert_marker(data, "error: timeout")
    assert data["stdout"] == "before\n", data
    assert time.monotonic() - t0 < 8 + 30
    assert_after(two_cores)


# ---- output -----------------------------------------------------------------------------

@pytest.mark.parametrize("language,code,stream", [
    ("python3", "while True:\n    print('x' * 1000)\n", "stdout"),
    ("python3", "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n", "stderr"),
    ("nodejs", "const s = 'x'.repeat(1000);\nfor (;;) process.stdout.write(s);\n", "stdout"),
])
def test_output_flood(limits, language, code, stream):
    data = timed_run(limits, language, code)
    assert data["exit_code"] == -1, data["error"][:300]
    assert_marker(data, "error: output limit exceeded")
    assert 0 < len(data[stream].encode()) <= OUTPUT_LIMIT, len(data[stream])
    assert set(data[stream]) <= {"x", "\n", "e"}, "output corrupted"
    assert_after(limits)


# Control bytes escape to six bytes each in JSON, and stderr is sent twice (in `stderr` and at
# the end of `error`): unbounded, this reply would be about 18 x output_limit.
@pytest.mark.parametrize("language,code", [
    ("python3", "import sys\nwhile True:\n    sys.stdout.write('\\x01' * 4096)\n"
                "    sys.stderr.write('\\x02' * 4096)\n"),
    ("nodejs", "const a = '\\x01'.repeat(4096), b = '\\x02'.repeat(4096);\n"
               "for (;;) { process.stdout.write(a); process.stderr.write(b); }\n"),
])
def test_reply_is_bounded_whatever_the_output(limits, language, code):
    body = json.dumps({"language": language, "code": code})
    r = post_raw(limits, "/v1/sandbox/run", body)
    assert r.status_code == 200, r.text[:300]
    assert len(r.content) <= 2 * OUTPUT_LIMIT + 1024, len(r.content)
    data = r.json()["data"]
    assert "error: output limit exceeded" in error_lines(data), data["error"][:300]
    assert data["stdout"] and set(data["stdout"]) == {"\x01"}
    assert data["stderr"] and set(data["stderr"]) == {"\x02"}
    assert data["error"].endswith(data["stderr"])
    assert_after(limits)


def test_output_just_over_limit_is_marked(limits):
    code = "import sys\nsys.stdout.write('y' * %d)\n" % (OUTPUT_LIMIT + 100)
    data = timed_run(limits, "python3", code)
    assert data["error"] != "", data["error"][:300]
    assert_marker(data, "error: output limit exceeded")
    assert len(data["stdout"]) <= OUTPUT_LIMIT
    assert data["stdout"] == "y" * len(data["stdout"])
    assert_after(limits)


def test_output_at_limit_is_fine(limits):
    code = "import sys\nsys.stdout.write('z' * %d)\n" % (OUTPUT_LIMIT - 10)
    data = timed_run(limits, "python3", code)
    assert data == {"stdout": "z" * (OUTPUT_LIMIT - 10), "stderr": "", "error": "", "exit_code": 0}


# ---- /tmp -----------------------------------------------------------------------------------

def test_file_over_file_size_limit_python(limits):
    code = "with open('/tmp/big', 'wb') as f:\n    f.write(b'x' * %d)\n" % (2 * FILE_SIZE_LIMIT)
    data = timed_run(limits, "python3", code)
    assert data["exit_code"] != 0, data
    assert_marker(data, "error: file size limit exceeded")
    assert_after(limits)


def test_file_over_file_size_limit_node(limits):
    code = "require('fs').writeFileSync('/tmp/big', Buffer.alloc(%d, 120));\n" % (2 * FILE_SIZE_LIMIT)
    data = timed_run(limits, "nodejs", code)
    assert data["exit_code"] != 0, data
    assert_marker(data, "error: file size limit exceeded")
    assert_after(limits)


TMP_FILL = """
import errno, os
n = 0
try:
    for i in range(64):
        with open('/tmp/f%%d' %% i, 'wb') as f:
            f.write(b'x' * %(chunk)d)
        n += 1
except OSError as e:
    print('stopped after', n, 'errno', e.errno, flush=True)
    raise
"""


def test_tmp_fill_many_files(limits):
    data = timed_run(limits, "python3", TMP_FILL % {"chunk": FILE_SIZE_LIMIT // 2})
    assert data["exit_code"] != 0, data
    words = data["stdout"].split()
    assert words[:1] == ["stopped"] and words[-1] == "28", data  # ENOSPC
    assert int(words[2]) * FILE_SIZE_LIMIT // 2 <= TMP_SIZE, data
    assert "No space left on device" in data["stderr"], data
    assert_after(limits)
    # the next run has a fresh, empty /tmp of full size
    code = ("import os\nprint(os.listdir('/tmp'))\n"
            "for i in range(3):\n    open('/tmp/g%d' % i, 'wb').write(b'y' * 1000000)\nprint('ok')")
    data = run_ok(limits, "python3", code)
    assert data["stdout"] == "[]\nok\n", data


# ---- a daemonised grandchild ------------------------------------------------------------------

DAEMON = """
import os, signal, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        %(stdio)s
        time.sleep(1)
        print('late', flush=True)
        open('/tmp/daemon-alive', 'w').write('x')
        time.sleep(120)
        os._exit(0)
    os._exit(0)
os.waitpid(pid, 0)
print('parent done', flush=True)
"""
DETACH_STDIO = ("fd = os.open('/dev/null', os.O_RDWR)\n"
                "        for i in (0, 1, 2):\n"
                "            os.dup2(fd, i)")


def test_daemonised_grandchild_does_not_survive(procs):
    data = timed_run(procs, "python3", DAEMON % {"stdio": DETACH_STDIO})
    assert data["stdout"] == "parent done\n", data
    assert data["exit_code"] == 0 and data["error"] == "", data
    assert_after(procs)
    data = run_ok(procs, "python3", "import os\nprint(os.path.exists('/tmp/daemon-alive'))")
    assert data["stdout"] == "False\n"


def test_grandchild_holding_stdout_does_not_survive(procs):
    data = timed_run(procs, "python3", DAEMON % {"stdio": "pass"})
    assert data["stdout"].startswith("parent done\n"), data
    assert_after(procs)


# ---- shutdown ---------------------------------------------------------------------------------

def test_sigterm_drains_and_leaves_nothing(make_stack):
    s = make_stack(drain_timeout=10)
    parent, v1 = s.cgroup_parent(), s.v1_parents()
    assert os.path.isdir(parent)
    result = {}

    def slow():
        result["r"] = run(s, "python3", "import time\ntime.sleep(2)\nprint('drained')")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.8)
    s.sandcelld.send_signal(signal.SIGTERM)
    t.join(60)
    status, body = result["r"]
    assert status == 200 and body["data"]["stdout"] == "drained\n", result
    rc = s.sandcelld.wait(30)
    assert rc == 0, s.log()
    # sandcelld removed what it made
    assert not os.path.exists(parent), parent
    for p in v1:
        assert not os.path.exists(p), p
    assert s.leftovers() == []
    # nginx answers with its JSON envelope while sandcelld is gone
    r = http("POST", s, "/v1/sandbox/run", json={"language": "python3", "code": "print(1)"})
    assert r.status_code == 502, (r.status_code, r.content)
    assert r.json()["code"] == -502 and r.json()["data"] is None


@pytest.fixture(scope="module")
def few_slots(make_stack):
    """Few slots, few pids: every slot serves many runs one after another."""
    return make_stack(max_workers=1, warm_sandboxes=1, pids_limit=16)


def test_slots_are_reused_cleanly_run_after_run(few_slots):
    # Each run leaves its slot (uid, v1 cgroups) to the next one. A run that left
    # anything charged there (a zombie init still counted in pids.max, a process)
    # would make later runs fail to start: 120 runs over 6 slots must all succeed.
    for i in range(120):
        data = run_ok(few_slots, "python3", "print(%d)" % i)
        assert data["stdout"] == "%d\n" % i and data["exit_code"] == 0, data
    assert_after(few_slots)


# ---- reused slot cgroups ------------------------------------------------------------------
# A slot's cgroup (jail/cgroup.c: slot-<k>) serves its runs one after another. Nothing a run
# did there may reach the next run of the slot: not its limit hits, not its processes, not
# cgroups of its own.

@pytest.fixture(scope="module")
def one_slot(make_stack):
    """Two slots (one run and one being torn down), no warm sandboxes: after a run has been
    torn down, the next one takes the same slot (slot 0, the first free one)."""
    return make_stack(max_workers=1, warm_sandboxes=0, allow_processes=True, worker_timeout=4,
                      memory_limit="128m", pids_limit=32)


SAY_UID = "import os\nprint('uid', os.getuid(), flush=True)\n"


def uid_of(data):
    first = data["stdout"].split("\n", 1)[0].split()
    assert first[:1] == ["uid"], data
    return int(first[1])


def slot_cgroup(stack, uid):
    return os.path.join(stack.cgroup_parent(), "slot-%d" % (uid - stack.uid_base))


def run_in_slot(stack, uid, code, tries=10):
    """Runs SAY_UID + code until a run lands in uid's slot (it does at once once the
    previous run is torn down); returns every run's data, the last in that slot."""
    runs = []
    for _ in range(tries):
        assert_clean(stack)
        runs.append(run_ok(stack, "python3", SAY_UID + code))
        if uid_of(runs[-1]) == uid:
            return runs
    raise AssertionError("no run landed in the slot of uid %d: %s" % (uid, runs))


def test_reused_slot_forgets_an_out_of_memory(one_slot):
    assert_clean(one_slot)
    bomb = timed_run(one_slot, "python3",
                     SAY_UID + "a = []\nwhile True:\n    a.append(b'x' * (8 << 20))\n")
    assert_marker(bomb, "error: memory limit exceeded")
    uid = uid_of(bomb)
    inode = os.stat(slot_cgroup(one_slot, uid)).st_ino
    # the next runs use memory too (64 MiB, half the limit), but stay within it
    for data in run_in_slot(one_slot, uid, "b = bytearray(64 << 20)\nprint('ok')\n"):
        assert data["exit_code"] == 0 and data["error"] == "", data
        assert data["stdout"].endswith("ok\n"), data
    # the same cgroup served both: reused, not made again
    assert os.stat(slot_cgroup(one_slot, uid)).st_ino == inode
    assert_after(one_slot)


def test_reused_slot_forgets_a_process_limit_hit(one_slot):
    assert_clean(one_slot)
    bomb = timed_run(one_slot, "python3", SAY_UID + FORK_BOMB)
    assert_marker(bomb, "error: process limit exceeded")
    uid = uid_of(bomb)
    # the next runs fork, well under pids_limit
    code = ("import time\n"
            "kids = [os.fork() or (time.sleep(0.2), os._exit(0)) for _ in range(8)]\n"
            "print('ok', sum(os.waitpid(k, 0)[1] for k in kids))\n")
    for data in run_in_slot(one_slot, uid, code):
        assert data["exit_code"] == 0 and data["error"] == "", data
        assert data["stdout"].endswith("ok 0\n"), data
    assert_after(one_slot)


LEFTOVER = """
import os, signal, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        open('/proc/self/comm', 'w').write('sc-leftover')
        time.sleep(120)
    os._exit(0)
print('parent done', flush=True)
"""


def comm_of(pid):
    try:
        with open("/proc/%s/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def leftover_sleepers():
    return [p for p in os.listdir("/proc") if p.isdigit() and comm_of(p) == "sc-leftover"]


def test_leftover_process_never_reaches_the_next_run_of_the_slot(one_slot):
    assert_clean(one_slot)
    first = timed_run(one_slot, "python3", SAY_UID + LEFTOVER)
    assert first["stdout"].endswith("parent done\n"), first
    uid = uid_of(first)
    cg = slot_cgroup(one_slot, uid)
    assert_clean(one_slot)   # the first run's teardown is over (it kills the sleeper)
    # while the next run of the slot runs, its cgroup holds only that run's tasks
    seen = {}

    def watch():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "done" not in seen:
            for pid in open(os.path.join(cg, "cgroup.procs")).read().split():
                seen.setdefault("comms", set()).add(comm_of(pid))
            time.sleep(0.02)
    t = threading.Thread(target=watch)
    t.start()
    try:
        runs = run_in_slot(one_slot, uid, "import time\ntime.sleep(1)\nprint(len(os.listdir('/proc')))\n")
    finally:
        seen["done"] = True
        t.join(30)
    assert "sc-leftover" not in seen.get("comms", set()), seen
    assert seen.get("comms"), "the watcher never saw the run: %s" % runs
    assert leftover_sleepers() == []
    assert_after(one_slot)


MAKE_CGROUP = """
import ctypes, os
own = open('/proc/self/cgroup').read().split('\\n')[0].split(':', 2)[2]
tried = []
for d in ['/sys/fs/cgroup' + own, '/sys/fs/cgroup/unified' + own, '/sys/fs/cgroup']:
    try:
        os.mkdir(os.path.join(d, 'escape'))
        tried.append('made')
    except OSError as e:
        tried.append(e.errno)
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs('/tmp/cg', exist_ok=True)
rc = libc.mount(b'none', b'/tmp/cg', b'cgroup2', 0, None)
tried.append(ctypes.get_errno() if rc else 'mounted')
print(tried)
"""


def test_sandbox_cannot_make_a_cgroup_in_its_own(one_slot):
    assert_clean(one_slot)
    data = timed_run(one_slot, "python3", SAY_UID + MAKE_CGROUP)
    assert "made" not in data["stdout"] and "mounted" not in data["stdout"], data
    cg = slot_cgroup(one_slot, uid_of(data))
    assert [e for e in os.scandir(cg) if e.is_dir()] == []
    # the slot's cgroup and every file in it belong to root and are not writable by
    # anyone else (a sandbox's uid is never root)
    for path in [cg] + [os.path.join(cg, n) for n in os.listdir(cg)]:
        st = os.stat(path)
        assert st.st_uid == 0 and st.st_mode & 0o022 == 0, (path, oct(st.st_mode), st.st_uid)
    assert_after(one_slot)
