"""More attacks from inside a run, each proving a claim of SECURITY.md: the
outcome is checked (the device was not there, the call did not happen, the
signal was not delivered, the listener saw nothing), and the service still
answers correctly afterwards.

Offline attacks use the session's default stack; the network ones run a
stack of their own inside a private namespace (netns.py, no route out; see
test_network.py), where listeners play the destinations.
"""

import json
import os
import platform
import socket
import struct
import subprocess
import threading
import time

import pytest

import stack as stackmod
from conftest import assert_alive, error_lines, run, run_ok
from test_attacks import SYSCALL_PY, report


@pytest.fixture(autouse=True)
def still_answers(stack):
    yield
    assert_alive(stack)


# ---- /dev ----------------------------------------------------------------------------------

DEV_PY = """
import json, os, stat
out = {}
for n in sorted(os.listdir('/dev')):
    st = os.lstat('/dev/' + n)
    out[n] = os.readlink('/dev/' + n) if stat.S_ISLNK(st.st_mode) else \\
        [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)]
print(json.dumps(out))
"""

DEV_NODE = """
const fs = require('fs'), out = {};
for (const n of fs.readdirSync('/dev').sort()) {
  const st = fs.lstatSync('/dev/' + n);
  out[n] = st.isSymbolicLink() ? fs.readlinkSync('/dev/' + n)
    : [st.isCharacterDevice(), Math.floor(st.rdev / 256) & 0xfff, (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)];
}
console.log(JSON.stringify(out));
"""


@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_dev_holds_only_null_zero_random_urandom(stack, language):
    # jail/mounts.c::apply_dev: the four devices (the host's nodes, bound) and /dev/fd
    out, _ = report(stack, DEV_PY if language == "python3" else DEV_NODE, language)
    expected = {"fd": "/proc/self/fd"}
    for name in ("null", "zero", "random", "urandom"):
        rdev = os.stat("/dev/" + name).st_rdev
        expected[name] = [True, os.major(rdev), os.minor(rdev)]
    assert out == expected, out


# ---- system calls outside the allowlist ----------------------------------------------------

RARE_SYSCALLS = {
    # name: (x86_64 number, aarch64 number, arguments)
    "memfd_create": (319, 279, ("x", 0)),
    "userfaultfd": (323, 282, (0,)),
    "shmget": (29, 194, (0, 4096, 0o1600)),        # IPC_PRIVATE, IPC_CREAT | 0600
    "msgget": (68, 186, (0, 0o1600)),
    "semget": (64, 190, (0, 1, 0o1600)),
    "fsopen": (430, 430, ("tmpfs", 0)),
    "fsmount": (432, 432, (3, 0, 0)),
    "open_tree": (428, 428, (-100, "/tmp", 1)),     # AT_FDCWD, OPEN_TREE_CLONE
    "move_mount": (429, 429, (-100, "/tmp", -100, "/", 0)),
    "fspick": (433, 433, (-100, "/tmp", 0)),
    "mount_setattr": (442, 442, (-100, "/", 0, 0, 0)),
}


@pytest.mark.parametrize("name", list(RARE_SYSCALLS))
def test_memfd_userfaultfd_sysv_ipc_and_new_mount_api_refused(stack, name):
    # jail/seccomp_policy.c: none is in the allowlist, so each fails with EPERM and the marker
    arch = platform.machine()
    assert arch in ("x86_64", "aarch64"), "no syscall numbers for %s in this test" % arch
    nr = RARE_SYSCALLS[name][0 if arch == "x86_64" else 1]
    out, data = report(stack, SYSCALL_PY % {"nr": nr, "args": RARE_SYSCALLS[name][2]})
    assert out == {"rc": -1, "errno": 1}, (name, out)
    lines = error_lines(data)
    assert lines[0] == "process exited with code 1" and "error: operation not permitted" in lines, data


# mov eax, 20 (getpid in the i386 table); int 0x80; ret
INT80_PY = r"""
import ctypes, mmap, sys
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(b'\xb8\x14\x00\x00\x00\xcd\x80\xc3')
addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
print('calling', flush=True)
rc = ctypes.CFUNCTYPE(ctypes.c_int)(addr)()
print('returned', rc, flush=True)
"""


def ia32_emulation_on_this_host():
    """True if int 0x80 reaches the kernel's i386 table here (it returns the pid); False
    if the kernel refuses it itself (ia32_emulation off: a general protection fault)."""
    r = subprocess.run(["/usr/bin/python3", "-c", INT80_PY], capture_output=True, text=True, timeout=60)
    return r.returncode == 0


def test_i386_system_calls_kill(stack):
    if platform.machine() != "x86_64":
        pytest.skip("int 0x80 is an x86_64 matter")
    data = run_ok(stack, "python3", INT80_PY)
    # it got as far as the call, and no further: killed, never returned
    assert data["stdout"] == "calling\n", data
    assert data["exit_code"] == -1, data
    if ia32_emulation_on_this_host():
        # the filter's bad-architecture action (SCMP_ACT_KILL_PROCESS): SIGSYS, the marker
        assert "error: operation not permitted" in error_lines(data), data
    else:
        # the kernel refuses int 0x80 before seccomp sees it (SIGSEGV): no marker
        assert "error: operation not permitted" not in error_lines(data), data


# ---- one uid per live sandbox --------------------------------------------------------------

UID_PY = """
import json, os, time
start = time.time()
time.sleep(%(hold)s)
print(json.dumps({'uid': os.getuid(), 'start': start, 'end': time.time()}))
"""

UID_NODE = """
const start = Date.now() / 1000;
setTimeout(() => console.log(JSON.stringify({uid: process.getuid(), start, end: Date.now() / 1000})),
           %(hold)s * 1000);
"""


def v2_cgroup(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return [l for l in f.read().splitlines() if l.startswith("0::")][0][3:]


def test_no_two_live_sandboxes_share_a_uid(stack):
    n = stack.max_workers
    hold = 4
    results = []
    languages = ["python3", "nodejs"] * (n // 2) + ["python3"] * (n % 2)

    def go(language):
        results.append(report(stack, (UID_PY if language == "python3" else UID_NODE) % {"hold": hold},
                              language)[0])

    threads = [threading.Thread(target=go, args=(l,)) for l in languages]
    for t in threads:
        t.start()
    # meanwhile, on the host: every process of a sandbox uid (running or warm) belongs to
    # one sandbox (one cgroup); a uid in two cgroups is two live sandboxes sharing it
    seen, looks = {}, 0
    while any(t.is_alive() for t in threads):
        for pid, _, uids in stackmod.processes_with_uid_in(stack.uid_base, stack.uid_base + stack.slots):
            try:
                seen.setdefault(uids[0], set()).add(v2_cgroup(pid))
            except (OSError, IndexError):
                pass
        looks += 1
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert len(results) == n, results
    # the runs were alive at once, or the test proves nothing
    assert max(r["start"] for r in results) < min(r["end"] for r in results), results
    uids = [r["uid"] for r in results]
    assert len(set(uids)) == n, uids
    assert looks > 1 and all(len(cgs) == 1 for cgs in seen.values()), seen


# ---- the sandbox's init --------------------------------------------------------------------

KILL_INIT_PY = """
import errno, json, os, signal, time
out = {}
for sig in ('SIGKILL', 'SIGTERM', 'SIGSTOP', 'SIGINT', 'SIGHUP'):
    try:
        os.kill(1, getattr(signal, sig))
        out[sig] = 'sent'
    except OSError as e:
        out[sig] = errno.errorcode[e.errno]
try:
    os.kill(-1, signal.SIGKILL)   # every process it may signal but itself
    out['all'] = 'sent'
except OSError as e:
    out['all'] = errno.errorcode[e.errno]
time.sleep(0.3)                   # a delivered SIGKILL to init would end the run here
out['init'] = open('/proc/1/cmdline').read().split('\\0')[0]
print(json.dumps(out))
"""

KILL_INIT_NODE = """
const out = {};
for (const sig of ['SIGKILL', 'SIGTERM', 'SIGSTOP']) {
  try { process.kill(1, sig); out[sig] = 'sent' } catch (e) { out[sig] = e.code }
}
setTimeout(() => console.log(JSON.stringify(out)), 300);
"""


@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_the_program_cannot_signal_its_init(stack, language):
    # init runs as root in the sandbox's pid namespace; the program is another uid
    if language == "python3":
        out, data = report(stack, KILL_INIT_PY)
        assert out == {"SIGKILL": "EPERM", "SIGTERM": "EPERM", "SIGSTOP": "EPERM",
                       "SIGINT": "EPERM", "SIGHUP": "EPERM", "all": "ESRCH",
                       "init": "sandcell-init"}, out
    else:
        out, data = report(stack, KILL_INIT_NODE, "nodejs")
        assert out == {"SIGKILL": "EPERM", "SIGTERM": "EPERM", "SIGSTOP": "EPERM"}, out
    # and the run answered normally, as its own program ended
    assert data["exit_code"] == 0 and data["error"] == "", data


# ---- abstract unix sockets of the host -----------------------------------------------------

ABSTRACT_PY = """
import errno, json, socket
out = {}
for kind, typ in (('stream', socket.SOCK_STREAM), ('dgram', socket.SOCK_DGRAM)):
    try:
        s = socket.socket(socket.AF_UNIX, typ)
        s.settimeout(3)
        if typ == socket.SOCK_STREAM:
            s.connect(%(stream)r)
            s.sendall(b'from the sandbox')
        else:
            s.sendto(b'from the sandbox', %(dgram)r)
        out[kind] = 'reached'
    except OSError as e:
        out[kind] = errno.errorcode.get(e.errno, str(e.errno))
print(json.dumps(out))
"""


@pytest.mark.parametrize("enable_network", [False, True])
def test_the_hosts_abstract_unix_sockets_are_out_of_reach(stack, enable_network):
    # The names live in this process's namespace: the host's (sandcelld's). An offline
    # sandbox has a namespace of its own, where the names do not exist; a network
    # sandbox may not make AF_UNIX sockets at all (jail/seccomp_policy.c).
    tag = os.urandom(6).hex()
    stream_name, dgram_name = b"\0sc-host-stream-" + tag.encode(), b"\0sc-host-dgram-" + tag.encode()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(stream_name)
        listener.listen(8)
        listener.setblocking(False)
        dgram.bind(dgram_name)
        dgram.setblocking(False)
        out, _ = report(stack, ABSTRACT_PY % {"stream": stream_name, "dgram": dgram_name},
                        enable_network=enable_network)
        expected = "EPERM" if enable_network else "ECONNREFUSED"
        assert out == {"stream": expected, "dgram": expected}, out
        with pytest.raises(BlockingIOError):
            listener.accept()
        with pytest.raises(BlockingIOError):
            dgram.recv(100)
        # the names are reachable from here: the jail is what kept the run out
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(stream_name)
        listener.setblocking(True)
        listener.settimeout(5)
        listener.accept()[0].close()
    finally:
        listener.close()
        dgram.close()
