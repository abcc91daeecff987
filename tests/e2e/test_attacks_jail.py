"""Attacks on the jail that SECURITY.md listed as done by the code but not yet tried.

- /dev holds only null, zero, random, urandom;
- memfd_create, userfaultfd, SysV IPC and the new mount API are refused (EPERM);
- the program cannot signal its init (pid 1), which lives on;
- an offline run cannot reach the host's abstract unix sockets (it has its own
  network namespace, and abstract names are per namespace);
- no two live sandboxes share a uid;
- and, outside the jail, the FastCGI socket refuses a client outside its group.
"""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import assert_alive, post_raw, run_ok

BOUND = 60  # seconds: guards a hang, measures nothing


@pytest.fixture(scope="module")
def jstack(make_stack):
    return make_stack(enable_network=False, max_workers=4)


def out_of(stack, code, language="python3"):
    data = run_ok(stack, language, code)
    return json.loads(data["stdout"].strip().splitlines()[-1]), data


DEV = ("import os, json\nout = {}\nfor n in sorted(os.listdir('/dev')):\n"
       "    st = os.lstat('/dev/' + n)\n"
       "    out[n] = os.readlink('/dev/' + n) if os.path.islink('/dev/' + n) else "
       "[os.major(st.st_rdev), os.minor(st.st_rdev)] if st.st_mode & 0o20000 else 'other'\n"
       "print(json.dumps(out))\n")


def test_dev_holds_only_the_four_devices(jstack):
    """null, zero, random, urandom (the kernel's 1:3, 1:5, 1:8, 1:9), and the fd link."""
    out, _ = out_of(jstack, DEV)
    assert out == {"fd": "/proc/self/fd", "null": [1, 3], "zero": [1, 5], "random": [1, 8],
                   "urandom": [1, 9]}, out
    out, _ = out_of(jstack, "const fs = require('fs'); console.log(JSON.stringify(fs.readdirSync('/dev').sort()))",
                    "nodejs")
    assert out == ["fd", "null", "random", "urandom", "zero"], out


# x86_64 numbers; each is called with harmless arguments: only the filter's answer matters
REFUSED = {
    "memfd_create": 319, "userfaultfd": 323,
    "shmget": 29, "semget": 64, "msgget": 68,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442,
}


def test_memfd_userfaultfd_sysv_ipc_and_the_new_mount_api_are_refused(jstack):
    if os.uname().machine != "x86_64":
        pytest.skip("system call numbers are x86_64's")
    code = ("import ctypes, errno, json\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "def call(nr):\n"
            "    r = libc.syscall(nr, 0, 0, 0, 0, 0)\n"
            "    return errno.errorcode.get(ctypes.get_errno(), 'ok') if r < 0 else 'ok %%d' %% r\n"
            "out = {k: call(nr) for k, nr in %r.items()}\n"
            "out['getpid'] = call(39)\n"
            "print(json.dumps(out))\n"
            "raise SystemExit(3)  # a refused call explains a failure: the marker must say so\n" % REFUSED)
    out, data = out_of(jstack, code)
    expected = {k: "EPERM" for k in REFUSED}
    expected["getpid"] = "ok 2"  # the control: an allowed call gets through
    assert out == expected, out
    assert data["exit_code"] == 3 and "error: operation not permitted" in data["error"], data


def test_the_program_cannot_signal_its_init(jstack):
    code = ("import os, signal, json, time\nout = {}\n"
            "for name in ('SIGKILL', 'SIGTERM', 'SIGSTOP', 'SIGSEGV'):\n"
            "    try:\n"
            "        os.kill(1, getattr(signal, name)); out[name] = 'sent'\n"
            "    except OSError as e:\n"
            "        out[name] = e.errno\n"
            "time.sleep(0.5)  # a dead init would end this pid namespace, and this program\n"
            "out['alive'] = os.getppid()\n"
            "print(json.dumps(out))\n")
    out, data = out_of(jstack, code)
    assert out == {"SIGKILL": 1, "SIGTERM": 1, "SIGSTOP": 1, "SIGSEGV": 1, "alive": 1}, out
    assert data["exit_code"] == 0, data


def test_an_offline_run_cannot_reach_the_hosts_abstract_unix_sockets(jstack):
    name = "sandcell-attack-%s" % os.urandom(6).hex()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind("\0" + name)
    srv.listen(8)
    srv.settimeout(0.2)
    got, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                got.append(c.recv(100))
                c.close()
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        # the control: from the host's namespace the name answers
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect("\0" + name)
            c.sendall(b"host")
        deadline = time.monotonic() + BOUND
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got == [b"host"], got
        code = ("import socket, json\nout = {}\n"
                "for kind in ('STREAM', 'SEQPACKET', 'DGRAM'):\n"
                "    s = socket.socket(socket.AF_UNIX, getattr(socket, 'SOCK_' + kind))\n"
                "    try:\n"
                "        s.connect('\\0' + %r); s.send(b'sandbox'); out[kind] = 'connected'\n"
                "    except OSError as e:\n"
                "        out[kind] = e.errno\n"
                "print(json.dumps(out))\n" % name)
        out, _ = out_of(jstack, code)
        assert out == {"STREAM": 111, "SEQPACKET": 111, "DGRAM": 111}, out  # ECONNREFUSED: no such name
        time.sleep(0.2)
        assert got == [b"host"], got
    finally:
        stop.set()
        t.join()
        srv.close()


def sandbox_programs(stack):
    """uid -> the pid namespaces of live processes with a slot uid."""
    seen = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            uid = os.stat("/proc/" + p).st_uid
            if stack.uid_base <= uid < stack.uid_base + stack.slots:
                seen.setdefault(uid, set()).add(os.readlink("/proc/%s/ns/pid" % p))
        except OSError:
            continue
    return seen


def test_no_two_live_sandboxes_share_a_uid(jstack):
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        run_ok(jstack, "python3", "import os, time; time.sleep(5); print(os.getuid())")))
        for _ in range(4)]
    for t in threads:
        t.start()
    most = 0
    try:
        while any(t.is_alive() for t in threads):
            seen = sandbox_programs(jstack)
            for uid, namespaces in seen.items():
                assert len(namespaces) == 1, (uid, namespaces)
            most = max(most, len(seen))
            time.sleep(0.05)
    finally:
        for t in threads:
            t.join()
    assert len(results) == 4
    assert most >= 2, most  # sandboxes were seen live at once (else nothing was shown)
    assert_alive(jstack)


def test_the_fastcgi_socket_refuses_clients_outside_its_group(jstack):
    """socket_group www-data, socket_mode 0660 (the package's): nobody cannot connect,
    www-data (nginx) can. The kernel refuses before sandcelld reads a byte."""
    path = jstack.config["socket"]
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
             "try:\n    s.connect(sys.argv[1]); print('connected')\n"
             "except OSError as e:\n    print(e.errno)\n")
    out = {}
    for who, group in (("nobody", "nogroup"), ("www-data", "www-data")):
        r = subprocess.run(["setpriv", "--reuid=" + who, "--regid=" + group, "--clear-groups",
                            "--inh-caps=-all", "/usr/bin/python3", "-c", probe, path],
                           capture_output=True, text=True, timeout=60)
        out[who] = r.stdout.strip() or r.stderr
    assert out == {"nobody": "13", "www-data": "connected"}, out
    st = os.stat(path)
    assert (oct(st.st_mode & 0o777), st.st_uid) == ("0o660", 0), st
    assert_alive(jstack)


def test_an_unauthenticated_body_is_never_parsed(jstack):
    """Without the key the body is taken in and dropped (so that nginx can finish writing it),
    never parsed: bodies the parser refuses (400 with the key) get 401 with an empty body."""
    bodies = {"deep": b"[" * 500000, "bad_utf8": b'{"language":"python3","code":"\xc0\xaf"}',
              "garbage": os.urandom(4096)}
    for name, body in bodies.items():
        assert post_raw(jstack, "/v1/sandbox/run", body).status_code == 400, name  # parsed: refused
        r = post_raw(jstack, "/v1/sandbox/run", body, key="wrong")
        assert (r.status_code, r.content) == (401, b""), (name, r.status_code, r.content[:200])
    log = jstack.log(100000)
    assert log.count("outcome=unauthorized") >= len(bodies), jstack.log(20)
    assert_alive(jstack)
