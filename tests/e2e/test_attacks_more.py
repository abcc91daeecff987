"""More attacks from inside a run, each proving a claim of SECURITY.md: the
outcome is checked (the device was not there, the call did not happen, the
signal was not delivered, the listener saw nothing), and the service still
answers correctly afterwards.

Offline attacks use the session's default stack; the network ones run a
stack of their own inside a private namespace (netns.py, no route out; see
test_network.py), where listeners play the destinations.
"""

import os
import grp
import platform
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest

import stack as stackmod
from conftest import assert_alive, error_lines, http, post_raw, run_ok
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


# ---- the FastCGI socket and the key ---------------------------------------------------------

def fcgi_record(kind, content, request_id=1):
    return struct.pack("!BBHHBB", 1, kind, request_id, len(content), 0, 0) + content


def fcgi_params(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        for n in (len(k), len(v)):
            out += struct.pack("!B", n) if n < 128 else struct.pack("!I", n | 0x80000000)
        out += k + v
    return out


def fcgi_begin(sock, params):
    """Opens a responder request and sends its parameters, but no byte of the body."""
    sock.sendall(fcgi_record(1, struct.pack("!HB5x", 1, 0)) +       # BEGIN_REQUEST, RESPONDER
                 fcgi_record(4, fcgi_params(params)) + fcgi_record(4, b""))


def fcgi_answer(sock):
    """Reads the records until END_REQUEST; returns what came on stdout."""
    buf, out = b"", b""
    while True:
        while len(buf) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed before END_REQUEST: %r" % out)
            buf += chunk
        _, kind, _, length, padding, _ = struct.unpack("!BBHHBB", buf[:8])
        while len(buf) < 8 + length + padding:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed in a record: %r" % out)
            buf += chunk
        content, buf = buf[8:8 + length], buf[8 + length + padding:]
        if kind == 6:
            out += content
        elif kind == 3:
            return out


def run_params(stack, length, key=None):
    params = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/v1/sandbox/run",
              "REQUEST_URI": "/v1/sandbox/run", "DOCUMENT_URI": "/v1/sandbox/run",
              "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(length),
              "SERVER_PROTOCOL": "HTTP/1.1"}
    if key:
        params["HTTP_X_API_KEY"] = key
    return params


def fcgi_run(stack, body, key=None):
    """POST /v1/sandbox/run straight on the FastCGI socket (what any www-data process can
    do, skipping nginx); returns (status line, body of the answer)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(stack.socket_path)
        s.settimeout(60)
        fcgi_begin(s, run_params(stack, len(body), key))
        for i in range(0, len(body), 32768):
            s.sendall(fcgi_record(5, body[i:i + 32768]))
        s.sendall(fcgi_record(5, b""))
        head, _, rest = fcgi_answer(s).partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(), rest


def test_an_unauthenticated_body_is_never_parsed(stack):
    # fcgi/router.c: the key is checked before the handler; without it the body is read and
    # dropped, never stored or parsed. Bodies the parser would refuse (400) or the size limit
    # would (413) get the 401 without the key, and their own answer with it.
    bad = {"not json": b"{not json" * 100000,
           "deep": b"[" * 500000,
           "not utf-8": b'{"language": "python3", "code": "\xff\xfe"}',
           "over max_body_size": b" " * (10 * 1024 * 1024 + 1)}
    for name, body in bad.items():
        for key in (None, "wrong-" + stack.key, stack.key[:-1]):
            assert fcgi_run(stack, body, key) == ("Status: 401 Unauthorized", b""), (name, key)
        status, _ = fcgi_run(stack, body, stack.key)
        assert status.startswith("Status: 413" if name.startswith("over") else "Status: 400"), \
            (name, status)
    # through nginx too: a body that is not JSON gets 401, not 400
    r = post_raw(stack, "/v1/sandbox/run", b"{not json" * 1000, key=False)
    assert (r.status_code, r.content) == (401, b""), (r.status_code, r.content[:200])
    r = post_raw(stack, "/v1/sandbox/run", b"{not json" * 1000)
    assert r.status_code == 400, (r.status_code, r.content[:200])
    assert 'outcome="unauthorized"' in http("GET", stack, "/metrics", key=False).text


CONNECT_AS = """
import errno, os, socket, sys
os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1]))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[3]); print('connected')
except OSError as e:
    print(errno.errorcode[e.errno])
"""


def connect_as(user, path):
    pw = pwd.getpwnam(user)
    r = subprocess.run(["/usr/bin/python3", "-c", CONNECT_AS, str(pw.pw_uid), str(pw.pw_gid), path],
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip() or r.stderr


@pytest.fixture
def fresh_dir():
    """A directory nginx's workers may traverse (pytest's tmp_path is 0700)."""
    d = tempfile.mkdtemp(prefix="sandcell-e2e-rundir-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_the_socket_refuses_clients_outside_www_data(make_stack, fresh_dir):
    # run_dir made by sandcelld (fcgi/main.c::make_run_dir): 0711, the socket root:www-data 0660
    run_dir = os.path.join(fresh_dir, "run")
    s = make_stack(run_dir=run_dir, socket=run_dir + "/sandcell.sock", max_workers=1,
                   warm_sandboxes=0)
    st = os.stat(run_dir)
    assert (oct(st.st_mode & 0o7777), st.st_uid) == ("0o711", 0), st
    st = os.stat(s.socket_path)
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == \
        ("0o660", 0, grp.getgrnam("www-data").gr_gid), st
    assert connect_as("nobody", s.socket_path) == "EACCES"
    assert connect_as("www-data", s.socket_path) == "connected"
    assert_alive(s)


# ---- cpu_percent ---------------------------------------------------------------------------

BURN_PY = """
import json, time
wall0, cpu0 = time.monotonic(), time.process_time()
while time.monotonic() - wall0 < %(secs)s:
    pass
print(json.dumps({'wall': time.monotonic() - wall0, 'cpu': time.process_time() - cpu0}))
"""

BURN_NODE = """
const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
while (Number(process.hrtime.bigint() - t0) / 1e9 < %(secs)s) {}
const c = process.cpuUsage(c0);
console.log(JSON.stringify({wall: Number(process.hrtime.bigint() - t0) / 1e9,
                            cpu: (c.user + c.system) / 1e6}));
"""


@pytest.mark.parametrize("language", ["python3", "nodejs"])
def test_cpu_percent_throttles_a_busy_loop(make_stack, language):
    # cpu_percent = 10: the cgroup's quota is a tenth of one CPU. A loop that spins for 4 s of
    # wall time gets about 0.4 s of CPU; on a busy host less. Unthrottled it would get most
    # of the 4 s on an idle host. The bound is loose on purpose: under half of the wall time.
    s = make_stack(cpu_percent=10, max_workers=1, warm_sandboxes=0, worker_timeout=30)
    out, data = report(s, (BURN_PY if language == "python3" else BURN_NODE) % {"secs": 4}, language)
    assert data["exit_code"] == 0 and data["error"] == "", data
    assert out["wall"] >= 4 and out["cpu"] < 0.5 * out["wall"], out
