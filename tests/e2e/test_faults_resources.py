"""Resource faults of the host, injected for real against a real stack.

Each test breaks one thing the service depends on (a full file system, a
cgroup file system that refuses writes, a host out of processes, bpf(2)
refused), checks the exact answer while it is broken, lifts the fault, checks
that runs work again and that nothing of the stack is left. The process
faults (a killed sandcelld, zygote or pool, a missing interpreter, a client
that goes away) are in test_faults.py.

Every fault is confined to what the test itself made: a tmpfs it mounted, a
cgroup it created, a mount namespace of the stack's own sandcelld, a seccomp
filter on that sandcelld alone. Nothing host-wide is touched.
"""

import contextlib
import errno
import os
import re
import signal
import subprocess
import tempfile

import pytest

from conftest import assert_alive, assert_clean, error_lines, http, own_stack, run, run_ok
import stack as stackmod

MIB = 1 << 20


def assert_refused(status, body, message):
    """The host-fault answer of API.md: 500, the envelope, code -500, the message."""
    assert status == 500, (status, body)
    assert body is not None and set(body) == {"code", "message", "data"}, body
    assert body["code"] == -500 and body["data"] is None, body
    if isinstance(message, str):
        assert body["message"] == message, body
    else:
        assert message.fullmatch(body["message"]), body


def fill(directory):
    """Fills the file system of directory: its blocks, then its inodes. Returns the files."""
    made = [os.path.join(directory, "fill")]
    fd = os.open(made[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    while True:
        path = os.path.join(directory, "inode-%d" % len(made))
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            return made
        made.append(path)


def unfill(files):
    for f in files:
        os.unlink(f)


# ---- 1. ENOSPC on the run directory ---------------------------------------------------------
# What sandcelld writes to run_dir: at start-up the executor's lock (jail/executor.c), the mount
# point of the jails' roots (run_dir/root), the network sandboxes' resolv.conf and hosts
# (fcgi/egress_policy.c) and the FastCGI socket. Per run, nothing: a jail's root is a tmpfs that
# the jail mounts over run_dir/root in its own mount namespace (jail/mounts.c), so it takes no
# space of run_dir's file system; output travels over pipes, in memory, capped.

@pytest.fixture
def small_run_dir():
    """run_dir on a tmpfs of 256 KiB and 64 inodes, mounted here and unmounted after."""
    d = tempfile.mkdtemp(prefix="sandcell-e2e-faults-run-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,nr_inodes=64,mode=0711",
                    "sandcell-e2e-faults", d], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", d], check=False)
        if subprocess.run(["mountpoint", "-q", d]).returncode == 0:
            subprocess.run(["umount", "-l", d], check=False)
        os.rmdir(d)


def cli_run(stack, code):
    """`sandcell run` beside the stack's sandcelld: it makes run_dir/cli-<pid> for itself."""
    conf = os.path.join(stack.prefix, "cli.conf")
    with open(conf, "w") as f:
        # the command's sandboxes run as uid_base + 65536 + k: this puts them in the upper
        # half of the stack's 32 uids, which its 12 slots leave unused
        f.write("run_dir = %s\ncgroup_name = %s\nuid_base = %d\nworker_timeout = 10\n"
                "enable_network = false\n"
                % (stack.run_dir, stack.config["cgroup_name"], stack.uid_base + 16 - 65536))
    return subprocess.run([os.path.join(stack.builddir, "sandcell"), "run", "--config", conf],
                          input=code.encode(), capture_output=True, timeout=120,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_full_run_dir_does_not_stop_runs(small_run_dir):
    """Runs need no space in run_dir: with its file system full (no block, no inode left),
    runs of both languages, with and without network, still succeed. `sandcell run`, which
    needs a directory there, is refused at once with the cause, and works once space is freed."""
    with own_stack(run_dir=small_run_dir, max_workers=2) as s:
        assert sorted(os.listdir(small_run_dir)) == \
            ["executor.lock", "hosts", "resolv.conf", "root", "sandcell.sock"]
        files = fill(small_run_dir)
        try:
            for _ in range(3):
                assert run_ok(s, "python3", "print(6 * 7)")["stdout"] == "42\n"
                assert run_ok(s, "nodejs", "console.log(6 * 7)")["stdout"] == "42\n"
                data = run_ok(s, "python3", "print(6 * 7)", enable_network=True)
                assert data["stdout"] == "42\n" and data["exit_code"] == 0, data
            r = cli_run(s, "print(6 * 7)")
            assert r.returncode == 125 and r.stdout == b"", r
            assert re.fullmatch(rb"sandcell: cannot set up the executor: mkdir %s/cli-\d+: "
                                rb"No space left on device\n" % re.escape(small_run_dir.encode()),
                                r.stderr), r.stderr
        finally:
            unfill(files)
        r = cli_run(s, "print(6 * 7)")
        assert (r.returncode, r.stdout) == (0, b"42\n"), r
        assert_clean(s)
        assert_alive(s)


def test_sandcelld_refuses_to_start_on_a_full_run_dir(small_run_dir):
    """The start-up writes to run_dir: on a full one sandcelld exits at once with the cause in
    its log (it does not hang, it does not serve half set up); nginx answers its
    `not available` envelope meanwhile; once space is freed sandcelld starts and runs succeed."""
    with own_stack(run_dir=small_run_dir, max_workers=2) as s:
        s.sandcelld.send_signal(signal.SIGTERM)
        s.sandcelld.wait(60)
        files = fill(small_run_dir)
        try:
            with pytest.raises(stackmod.StackError) as failed:
                s.restart_sandcelld(signal.SIGTERM)
            assert "exited with 1 before listening" in str(failed.value), failed.value
            assert "No space left on device" in s.log(), s.log()
            r = http("POST", s, "/v1/sandbox/run", json={"language": "python3", "code": "print(1)"})
            assert r.status_code == 502, (r.status_code, r.content)
            assert r.json() == {"code": -502, "message": "sandcell is not available", "data": None}
        finally:
            unfill(files)
        s.restart_sandcelld(signal.SIGTERM)
        assert_alive(s)
        assert_clean(s)


# ---- 2. ENOSPC on /tmp's backing --------------------------------------------------------------
# What backs a sandbox's /tmp: a tmpfs of tmp_size that the jail mounts in its own mount
# namespace (jail/mounts.c), so its pages are memory, charged to the memory cgroup of the
# sandbox's slot, which the next runs of that slot reuse (jail/cgroup.c). Nothing of it is on a
# host disk; the zygote's own scratch /tmp (16 MiB, jail/zygote.c) is detached in every child
# before a fresh one is mounted (the next run below sees a /tmp of tmp_size, not 16 MiB), and
# output is never spooled to a file. So the two ways /tmp's
# backing runs out are: the tmpfs is full (ENOSPC, when tmp_size < memory_limit) and the memory
# under it is exhausted (the memory limit, when tmp_size > memory_limit). In both the program
# learns it in its own run, and the next run of the same slot has an empty /tmp and all of its
# memory (the pages of the old /tmp are not charged to it any more).

FILL_TMP = {
    "python3": """
import os
print('uid', os.getuid(), flush=True)
fd = os.open('/tmp/fill', os.O_WRONLY | os.O_CREAT, 0o600)
n = 0
try:
    while True:
        os.write(fd, b'x' * (1 << 20))
        n += 1
except OSError as e:
    print('stopped after', n, 'errno', e.errno, flush=True)
    raise
""",
    "nodejs": """
const fs = require('fs');
console.log('uid', process.getuid());
const fd = fs.openSync('/tmp/fill', 'w');
let n = 0;
try {
    for (;;) { fs.writeSync(fd, Buffer.alloc(1 << 20, 120)); n++; }
} catch (e) {
    console.log('stopped after', n, 'errno', -e.errno);
    throw e;
}
""",
}

# 96 MiB of the 128 MiB limit: fails if the 64 MiB of the last run's /tmp were still charged
NEXT_RUN = """
import os
print('uid', os.getuid(), flush=True)
st = os.statvfs('/tmp')
print(os.listdir('/tmp'), st.f_blocks * st.f_frsize, st.f_bfree == st.f_blocks)
b = bytearray(96 << 20)
print('ok')
"""


@pytest.fixture(scope="module", params=["64m", "256m"])
def tmp_stack(make_stack, request):
    """One run at a time, no warm sandboxes (a run takes the first free slot), 128 MiB of
    memory; /tmp smaller (64m) or larger (256m) than the memory; files may be as large."""
    return make_stack(max_workers=1, warm_sandboxes=0, worker_timeout=20, memory_limit="128m",
                      tmp_size=request.param, file_size_limit="1g")


def uid_of(data):
    first = data["stdout"].split("\n", 1)[0].split()
    assert first[:1] == ["uid"], data
    return int(first[1])


def next_run_in_slot(stack, uid, tries=10):
    """NEXT_RUN until one lands in uid's slot (at once, once the last run is torn down)."""
    for _ in range(tries):
        assert_clean(stack)
        data = run_ok(stack, "python3", NEXT_RUN)
        if uid_of(data) == uid:
            return data
    raise AssertionError("no run landed in the slot of uid %d" % uid)


@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_filling_tmp_ends_in_its_own_run(tmp_stack, language):
    """/tmp's backing is the sandbox's memory (see above): a program that fills /tmp gets
    ENOSPC when tmp_size is below memory_limit, the memory limit's marker when above; either
    way in its own run, and the next run of the slot has an empty /tmp and all its memory."""
    tmp_size = int(tmp_stack.config["tmp_size"][:-1]) * MIB
    data = run_ok(tmp_stack, language, FILL_TMP[language])
    assert data["exit_code"] != 0, data
    lines = error_lines(data)
    assert lines[0] == "process exited with code %d" % data["exit_code"], data["error"][:500]
    if tmp_size < 128 * MIB:
        # the tmpfs is full: ENOSPC in the program, which reports it and fails
        words = data["stdout"].split("\n")[1].split()
        assert words[:2] == ["stopped", "after"] and words[-1] == str(errno.ENOSPC), data
        assert tmp_size - 4 * MIB <= int(words[2]) * MIB <= tmp_size, data
        assert "error: memory limit exceeded" not in lines, data["error"][:500]
    else:
        # the memory under it is exhausted first: the memory limit ends the run
        assert data["exit_code"] == -1, data
        assert "error: memory limit exceeded" in lines, data["error"][:500]
    # the next run of the same slot: an empty /tmp of full size, and all of its memory
    nxt = next_run_in_slot(tmp_stack, uid_of(data))
    assert nxt["stdout"].split("\n")[1:] == ["[] %d True" % tmp_size, "ok", ""], nxt
    assert nxt["exit_code"] == 0 and nxt["error"] == "", nxt
    assert_clean(tmp_stack)


# ---- 3. the cgroup file system refusing writes ------------------------------------------------
# sandcelld runs in a mount namespace of its own (unshare -m, private propagation); once it
# serves, the cgroup mounts of that namespace alone are remounted read-only: every write to a
# cgroup file (moving a new sandbox into its v1 memory, pids and cpu slots on this hybrid host,
# making a cgroup) fails with EROFS, as on a host whose cgroupfs refuses writes. The v2 mount
# goes read-only too; alone it stops nothing (tried): a run writes nothing there, its limits
# are written once at start and clone3(CLONE_INTO_CGROUP) goes through a descriptor opened
# then. The host's own mounts are untouched. Remounting read-write lifts the fault.

CGROUP_MOUNTS = ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu")


def remount_cgroups(pid, mode):
    for m in CGROUP_MOUNTS + (stackmod.cgroup2_mount(),):
        subprocess.run(["nsenter", "-t", str(pid), "-m", "--", "mount", "-o",
                        "remount,bind," + mode, m], check=True)


def refused_once_warm_ones_are_used(stack, refusal, tries=10):
    """Runs each language until the first refusal (the warm sandboxes, started before the fault
    with their limits, may serve some runs first, correctly), then twice more: refused too, as
    no new sandbox can start. Returns the refusals' messages."""
    messages = []
    for language, code in (("python3", "print(6 * 7)"), ("nodejs", "console.log(6 * 7)")):
        for _ in range(tries):
            status, body = run(stack, language, code)
            if status != 200:
                break
            assert body["data"] == {"stdout": "42\n", "stderr": "", "error": "", "exit_code": 0}, body
        for _ in range(3):
            assert_refused(status, body, refusal)
            messages.append(body["message"])
            status, body = run(stack, language, code)
        assert_refused(status, body, refusal)
    return messages


@pytest.mark.skipif(not all(os.path.isdir(m) for m in CGROUP_MOUNTS),
                    reason="the limits are v1 cgroups only on hybrid hosts")
@pytest.mark.parametrize("warm", [0, 2])
def test_read_only_cgroupfs_refuses_runs(warm):
    """Fail closed: a sandbox that cannot be moved into its limits' cgroups never starts; the
    run is refused (500, the cause named), sandcelld goes on, runs resume once writable. With
    a warm pool, the pool's refills fail the same way (backing off) and its ready sandboxes,
    limited since before the fault, serve first."""
    with own_stack(wrapper=["unshare", "-m", "--propagation", "private"], warm_sandboxes=warm,
                   max_workers=2) as s:
        assert_alive(s)
        pid = s.sandcelld.pid
        memory_slots = s.v1_parents()[0]
        refused = re.compile(re.escape("could not set up the sandbox: its memory limit: open %s/"
                                       % memory_slots) +
                             r"slot-\d+/cgroup\.procs: Read-only file system")
        remount_cgroups(pid, "ro")
        try:
            refused_once_warm_ones_are_used(s, refused)
            assert s.sandcelld.poll() is None, s.log()
            # nothing ran: no process of the stack's uids, no populated cgroup
            assert_clean(s)
        finally:
            remount_cgroups(pid, "rw")
        assert_alive(s)
        assert_clean(s)


# ---- 4. the host cannot start another process -------------------------------------------------
# Memory pressure makes fork, clone and thread creation fail (ENOMEM, EAGAIN). A memory cgroup
# limit on sandcelld would not play that: at its limit the kernel OOM-kills a task of the group
# (sandcelld itself, maybe) instead of failing the clone. A pids limit on sandcelld's own cgroup
# does, exactly and harmlessly: every clone in the group fails with EAGAIN, as under a host-wide
# shortage, and nothing outside the group notices. sandcelld starts in a pids cgroup made here
# (its slots are made below it); once it serves, pids.max is set to 1, below what it already
# holds, so no new task can start in the group: not a sandbox's init, not the zygote's child.

@contextlib.contextmanager
def own_pids_cgroup():
    own = stackmod.proc_cgroups(os.getpid()).get("pids")
    if own is None or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("no v1 pids hierarchy")
    cg = os.path.normpath("/sys/fs/cgroup/pids/%s/sandcell-e2e-faults-%d" % (own, os.getpid()))
    os.mkdir(cg)
    try:
        yield cg
    finally:
        os.rmdir(cg)


def set_pids_max(cg, value):
    with open(os.path.join(cg, "pids.max"), "w") as f:
        f.write(value)


def test_host_out_of_processes_refuses_runs():
    """No task can be started: every run is refused at once with 500 and clone3's EAGAIN (not
    hung, sandcelld alive), and runs succeed again once tasks can be started."""
    with own_pids_cgroup() as cg:
        enter = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg]
        with own_stack(wrapper=enter, warm_sandboxes=0, max_workers=2) as s:
            assert stackmod.proc_cgroups(s.sandcelld.pid)["pids"].endswith(os.path.basename(cg))
            assert_alive(s)
            assert_clean(s)
            set_pids_max(cg, "1")
            try:
                refused_once_warm_ones_are_used(s, "could not set up the sandbox: clone3: "
                                                "Resource temporarily unavailable", tries=1)
                assert s.sandcelld.poll() is None, s.log()
                assert_clean(s)
            finally:
                set_pids_max(cg, "max")
            assert_alive(s)
            assert_clean(s)


# ---- 5. BPF unavailable ---------------------------------------------------------------------
# sandcelld starts under a seccomp filter (libseccomp through ctypes) that fails bpf(2) with
# EPERM, as on a host that denies BPF to the service (a container, a kernel lockdown, a missing
# capability): the egress programs cannot be loaded. test_network.py's
# test_load_failure_refuses_network_runs covers a pin directory that is not on bpffs; this is
# the system call itself refused. Restarting sandcelld without the filter lifts the fault.

NO_BPF = """
import ctypes, errno, os, sys
lib = ctypes.CDLL("libseccomp.so.2")
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ALLOW, ERRNO, CTL_NNP = 0x7fff0000, 0x00050000, 3
ctx = lib.seccomp_init(ALLOW)
nr = lib.seccomp_syscall_resolve_name(b"bpf")
if not ctx or nr < 0 or lib.seccomp_attr_set(ctx, CTL_NNP, 0) or \\
        lib.seccomp_rule_add(ctx, ERRNO | errno.EPERM, nr, 0) or lib.seccomp_load(ctx):
    sys.exit("cannot install the seccomp filter")
os.execv(sys.argv[1], sys.argv[1:])
"""

NO_BPF_MESSAGE = ("network is not available: the egress policy cannot be enforced on this host: "
                  "load BPF programs: Operation not permitted "
                  "(libbpf: failed to load BPF skeleton 'egress_bpf': -1)")


def test_bpf_refused_refuses_network_runs_only():
    """bpf(2) refused: network runs get the documented 500 (README, Network egress: `network is
    not available: the egress policy cannot be enforced on this host: <why>`), offline runs
    work; sandcelld restarted with BPF available serves network runs again."""
    with own_stack(wrapper=["/usr/bin/python3", "-c", NO_BPF], max_workers=2) as s:
        for language, code in (("python3", "print(1)"), ("nodejs", "console.log(1)")):
            status, body = run(s, language, code, enable_network=True)
            assert_refused(status, body, NO_BPF_MESSAGE)
        assert "network runs will be refused" in s.log(200)
        # runs without network are unaffected
        assert_alive(s)
        assert_clean(s)
        s.wrapper = []
        s.restart_sandcelld(signal.SIGTERM)
        for language, code in (("python3", "print(6 * 7)"), ("nodejs", "console.log(6 * 7)")):
            data = run_ok(s, language, code, enable_network=True)
            assert data == {"stdout": "42\n", "stderr": "", "error": "", "exit_code": 0}, data
        assert_clean(s)
