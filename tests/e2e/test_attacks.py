"""Attacks from inside a run. Each test checks the outcome (the file was not
read, the process was not seen, the connection was not made), and that the
service still answers correctly afterwards.

The programs report what they could do as JSON on stdout; the tests judge.
"""

import json
import os
import platform
import threading
import time

import pytest

from conftest import assert_alive, assert_clean, error_lines, run_ok


@pytest.fixture(autouse=True)
def still_answers(stack):
    yield
    assert_alive(stack)


def report(stack, code, language="python3", **fields):
    """Runs a program that prints one JSON document; returns (document, data)."""
    data = run_ok(stack, language, code, **fields)
    try:
        return json.loads(data["stdout"]), data
    except ValueError:
        pytest.fail("program did not report: %r" % data)


TRY_READ = """
import json, os
out = {}
for path in %(paths)r:
    try:
        if os.path.isdir(path):
            out[path] = ['dir', os.listdir(path)]
        else:
            with open(path, 'rb') as f:
                out[path] = ['read', f.read(65536).decode('latin-1')]
    except OSError as e:
        out[path] = ['denied', e.errno]
print(json.dumps(out))
"""


def host_file(path):
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("latin-1")
    except OSError:
        return None


def test_host_files_not_readable(stack):
    paths = ["/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/hostname", "/root",
             "/root/.bash_history", "/home", "/etc/sandcell/sandcell.conf", stack.conf_path,
             stack.log_path, stack.prefix, "/proc/1/environ", "/proc/1/cmdline",
             "/proc/%d/environ" % stack.sandcelld.pid, "/var/log", "/etc/ssh",
             "/sys/fs/cgroup", "/run", "/proc/kcore", "/dev/mem", "/boot"]
    out, _ = report(stack, TRY_READ % {"paths": paths})
    for secret in ("/etc/shadow", "/etc/gshadow", "/root/.bash_history", stack.conf_path,
                   stack.log_path, "/etc/sandcell/sandcell.conf", "/proc/kcore", "/dev/mem"):
        assert out[secret][0] != "read", (secret, out[secret][1][:200])
    # what can be read is not the host's
    for path in ("/etc/passwd", "/etc/hostname", "/proc/1/environ", "/proc/1/cmdline",
                 "/proc/%d/environ" % stack.sandcelld.pid):
        if out[path][0] == "read" and out[path][1]:
            assert out[path][1] != host_file(path), path
    for d in ("/root", "/home", stack.prefix, "/var/log", "/etc/ssh", "/run", "/boot"):
        if out[d][0] == "dir":
            assert not out[d][1], (d, out[d])
    if out["/sys/fs/cgroup"][0] == "dir":
        assert not out["/sys/fs/cgroup"][1], out["/sys/fs/cgroup"]
    whole = json.dumps(out)
    assert stack.key not in whole and stack.secret not in whole
    shadow = host_file("/etc/shadow")
    root_line = shadow.splitlines()[0] if shadow else None
    if root_line:
        assert root_line not in whole


def test_host_files_not_readable_from_node(stack):
    code = """
const fs = require('fs');
const out = {};
for (const p of %s) {
  try { out[p] = ['read', fs.readFileSync(p, 'latin1').slice(0, 65536)] }
  catch (e) { out[p] = ['denied', e.code] }
}
console.log(JSON.stringify(out));
""" % json.dumps(["/etc/shadow", stack.conf_path, "/etc/passwd"])
    out, _ = report(stack, code, "nodejs")
    assert out["/etc/shadow"][0] == "denied"
    assert out[stack.conf_path][0] == "denied"
    if out["/etc/passwd"][0] == "read":
        assert out["/etc/passwd"][1] != host_file("/etc/passwd")


WRITE_TARGETS = ["/", "/etc", "/usr", "/usr/lib", "/usr/bin", "/dev", "/proc", "/var/tmp", "/root",
                 "/home", "/run", "/sys"]

TRY_WRITE = """
import json, os, sys
name = %(name)r
out = {}
for d in %(dirs)r + [os.path.dirname(os.__file__), os.path.dirname(sys.executable)]:
    p = os.path.join(d, name)
    try:
        with open(p, 'w') as f:
            f.write('x')
        out[d] = 'written'
    except OSError as e:
        out[d] = 'denied %%d' %% e.errno
for p in ('/dev/null', '/proc/sys/kernel/hostname', '/proc/self/oom_score_adj',
          '/sys/kernel/mm/transparent_hugepage/enabled'):
    try:
        with open(p, 'w') as f:
            f.write('0')
        out[p] = 'written'
    except OSError as e:
        out[p] = 'denied %%d' %% e.errno
with open('/tmp/' + name, 'w') as f:
    f.write('x')
out['/tmp'] = open('/tmp/' + name).read()
print(json.dumps(out))
"""


def test_write_outside_tmp_fails(stack):
    name = "sandcell-e2e-escape-%s" % os.urandom(4).hex()
    out, _ = report(stack, TRY_WRITE % {"name": name, "dirs": WRITE_TARGETS})
    assert out.pop("/tmp") == "x"  # /tmp works
    assert out.pop("/dev/null") == "written"
    out.pop("/proc/self/oom_score_adj")  # the process's own setting, harmless either way
    written = [d for d, v in out.items() if v == "written"]
    assert not written, out
    for d in WRITE_TARGETS + ["/usr/lib/python3.11", "/usr/bin"]:
        assert not os.path.exists(os.path.join(d, name)), d
    assert not os.path.exists("/tmp/" + name)  # the sandbox's /tmp is not the host's


def test_tmp_of_another_run_not_visible(stack):
    marker = "marker-%s" % os.urandom(4).hex()
    run_ok(stack, "python3", "open('/tmp/%s', 'w').write('x')" % marker)
    data = run_ok(stack, "python3", "import os\nprint(os.listdir('/tmp'))")
    assert marker not in data["stdout"], data


CONCURRENT_A = """
import os, time, json
open('/tmp/%(marker)s', 'w').write('A')
start = time.time()
time.sleep(%(hold)s)
print(json.dumps({'start': start, 'end': time.time(), 'tmp': sorted(os.listdir('/tmp')),
                  'pids': sorted(p for p in os.listdir('/proc') if p.isdigit())}))
"""

CONCURRENT_B = """
import os, time, json
procs = []
for p in os.listdir('/proc'):
    if not p.isdigit():
        continue
    try:
        st = open('/proc/%s/status' % p).read()
        uid = [l.split()[1] for l in st.splitlines() if l.startswith('Uid:')][0]
        name = st.splitlines()[0].split(None, 1)[1]
        cmd = open('/proc/%s/cmdline' % p, 'rb').read().decode('latin-1')
        procs.append([int(p), int(uid), name, cmd])
    except (OSError, IndexError):
        pass
open('/tmp/b-was-here', 'w').write('B')
print(json.dumps({'now': time.time(), 'tmp': sorted(os.listdir('/tmp')), 'uid': os.getuid(),
                  'procs': procs}))
"""


def test_concurrent_runs_do_not_see_each_other(stack):
    marker = "a-marker-%s" % os.urandom(4).hex()
    result = {}

    def run_a():
        result["a"] = report(stack, CONCURRENT_A % {"marker": marker, "hold": 6})

    t = threading.Thread(target=run_a)
    t.start()
    time.sleep(1.5)
    b, _ = report(stack, CONCURRENT_B)
    t.join(60)
    a, _ = result["a"]
    # they overlapped in time, or the test proves nothing
    assert a["start"] <= b["now"] <= a["end"], (a, b)
    assert marker not in b["tmp"], b["tmp"]
    assert "b-was-here" not in a["tmp"] and marker in a["tmp"], a["tmp"]
    # B sees only its own processes: its own uid, or its own namespace's init (pid 1);
    # nothing with A's (another sandbox's) uid, no nginx, no host process
    lo, hi = stack.uid_base, stack.uid_base + stack.slots
    for pid, uid, name, cmd in b["procs"]:
        assert uid == b["uid"] or pid == 1, (pid, uid, name, cmd)
        assert not (lo <= uid < hi and uid != b["uid"]), (pid, uid, name, cmd)
        assert "nginx" not in name, name
    assert len(b["procs"]) <= 4, b["procs"]


def test_concurrent_node_and_python_tmp_isolated(stack):
    marker = "n-marker-%s" % os.urandom(4).hex()
    result = {}
    code = ("const fs = require('fs'); fs.writeFileSync('/tmp/%s', 'N');\n"
            "const t0 = Date.now(); while (Date.now() - t0 < 3000) {}\n"
            "console.log(JSON.stringify(fs.readdirSync('/tmp')))" % marker)

    def run_n():
        result["n"] = run_ok(stack, "nodejs", code)

    t = threading.Thread(target=run_n)
    t.start()
    time.sleep(1.0)
    data = run_ok(stack, "python3", "import os\nprint(os.listdir('/tmp'))")
    t.join(60)
    assert marker not in data["stdout"]
    assert marker in json.loads(result["n"]["stdout"])


ENV_PY = """
import os, json
out = {'environ': dict(os.environ)}
for p in ['/proc/self/environ'] + ['/proc/%s/environ' % d for d in os.listdir('/proc') if d.isdigit()]:
    try:
        out[p] = open(p, 'rb').read().decode('latin-1')
    except OSError as e:
        out[p] = 'denied %d' % e.errno
print(json.dumps(out))
"""


def test_key_and_host_environment_not_visible(stack):
    out, data = report(stack, ENV_PY)
    whole = data["stdout"]
    assert stack.key not in whole
    assert stack.secret not in whole
    for name in ("API_KEY", "SANDCELL_E2E_SECRET", "SANDCELL_SOCKET", "MAX_WORKERS"):
        assert name not in out["environ"], out["environ"]
    for host_var in set(os.environ) - {"PATH", "LANG", "LC_ALL", "HOME", "TZ", "PYTHONIOENCODING",
                                       "PWD", "SHLVL", "_", "TERM", "USER", "LOGNAME"}:
        value = os.environ[host_var]
        if len(value) >= 8 and not value.startswith("/"):
            assert value not in whole, host_var


def test_key_and_host_environment_not_visible_node(stack):
    code = ("const fs = require('fs');\n"
            "let env = ''; try { env = fs.readFileSync('/proc/self/environ', 'latin1') } catch (e) {}\n"
            "console.log(JSON.stringify({env: process.env, proc: env}))")
    out, data = report(stack, code, "nodejs")
    assert stack.key not in data["stdout"] and stack.secret not in data["stdout"]
    assert "API_KEY" not in out["env"]


FDS_PY = """
import os, json
listed = os.listdir('/proc/self/fd')
out = {}
for fd in listed:
    try:
        os.fstat(int(fd))
    except OSError:
        continue  # the descriptor listdir itself used
    try:
        out[fd] = os.readlink('/proc/self/fd/' + fd)
    except OSError as e:
        out[fd] = 'unreadable %d' % e.errno
print(json.dumps(out))
"""


def test_only_stdio_descriptors(stack):
    # 0-2, and 3: the runner's result pipe, write-only, to sandcelld (jail/spawn.c)
    out, _ = report(stack, FDS_PY.replace("print(json.dumps(out))", RESULT_FD_PY))
    assert sorted(k for k in out if k != "fd3") == ["0", "1", "2", "3"], out
    for fd, target in out.items():
        assert not target.startswith("socket:"), out
    assert out["3"].startswith("pipe:"), out
    assert out["fd3"] == "write-only", out


RESULT_FD_PY = """import fcntl
out["fd3"] = "write-only" if fcntl.fcntl(3, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY else "other"
print(json.dumps(out))"""


def test_no_sockets_inherited_by_node(stack):
    code = ("const fs = require('fs'); const out = {};\n"
            "for (const fd of fs.readdirSync('/proc/self/fd')) {\n"
            "  try { out[fd] = fs.readlinkSync('/proc/self/fd/' + fd) } catch (e) {} }\n"
            "console.log(JSON.stringify(out))")
    out, _ = report(stack, code, "nodejs")
    sockets = {fd: t for fd, t in out.items() if t.startswith("socket:")}
    assert not sockets, out


SYSCALLS = {
    # name: (x86_64 number, aarch64 number, arguments)
    "ptrace": (101, 117, (0, 0, 0, 0)),          # PTRACE_TRACEME
    "mount": (165, 40, ("none", "/tmp", "tmpfs", 0, 0)),
    "unshare": (272, 97, (0x10000000,)),         # CLONE_NEWUSER
    "bpf": (321, 280, (0, 0, 0)),                # BPF_MAP_CREATE with no attributes
    "keyctl": (250, 219, (0, 0, 0)),             # KEYCTL_GET_KEYRING_ID
    "add_key": (248, 217, ("user", "k", "v", 1, -3)),
    "setns": (308, 268, (0, 0)),
    "init_module": (175, 105, (0, 0, "")),
    "kexec_load": (246, 104, (0, 0, 0, 0)),
    "perf_event_open": (298, 241, (0, 0, -1, -1, 0)),
}

SYSCALL_PY = """
import ctypes, errno, json, sys
libc = ctypes.CDLL(None, use_errno=True)
args = []
for a in %(args)r:
    args.append(ctypes.c_char_p(a.encode()) if isinstance(a, str) else ctypes.c_long(a))
rc = libc.syscall(ctypes.c_long(%(nr)d), *args)
err = ctypes.get_errno()
print(json.dumps({'rc': rc, 'errno': err}))
sys.exit(1)
"""


@pytest.mark.parametrize("name", list(SYSCALLS))
def test_dangerous_syscall_refused(stack, name):
    arch = platform.machine()
    if arch not in ("x86_64", "aarch64"):
        pytest.fail("no syscall numbers for %s in this test" % arch)
    nr = SYSCALLS[name][0 if arch == "x86_64" else 1]
    out, data = report(stack, SYSCALL_PY % {"nr": nr, "args": SYSCALLS[name][2]})
    assert out["rc"] == -1 and out["errno"] == 1, (name, out)  # EPERM
    assert data["exit_code"] == 1, data
    lines = error_lines(data)
    assert lines[0] == "process exited with code 1", data
    assert "error: operation not permitted" in lines, data


STATUS_PY = """
import json, os
st = {}
for line in open('/proc/self/status'):
    k, _, v = line.partition(':')
    st[k] = v.strip()
print(json.dumps({'uid': os.getuid(), 'euid': os.geteuid(), 'gid': os.getgid(),
                  'groups': os.getgroups(), 'status': st}))
"""


def test_unprivileged_no_caps_no_new_privs_seccomp(stack):
    out, _ = report(stack, STATUS_PY)
    lo, hi = stack.uid_base, stack.uid_base + stack.slots
    assert out["uid"] != 0 and out["euid"] != 0 and out["gid"] != 0
    assert lo <= out["uid"] < hi, out
    st = out["status"]
    assert all(lo <= int(u) < hi for u in st["Uid"].split()), st["Uid"]
    assert all(int(g) != 0 for g in st["Gid"].split()), st["Gid"]
    assert 0 not in out["groups"], out["groups"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"


def test_node_unprivileged_too(stack):
    code = ("const st = require('fs').readFileSync('/proc/self/status', 'utf8');\n"
            "const g = k => st.split('\\n').find(l => l.startsWith(k + ':')).split(/\\s+/)[1];\n"
            "console.log(JSON.stringify({uid: process.getuid(), capEff: g('CapEff'),\n"
            "  nnp: g('NoNewPrivs'), seccomp: g('Seccomp')}))")
    out, _ = report(stack, code, "nodejs")
    assert out["uid"] != 0
    assert int(out["capEff"], 16) == 0
    assert out["nnp"] == "1" and out["seccomp"] == "2"


CONNECT_PY = """
import json, socket
out = {}
# a sandbox without network may not even get an inet socket (eBPF sock_create)
for fam, addr in ((socket.AF_INET, ('127.0.0.1', %(port)d)),
                  (socket.AF_INET6, ('::1', %(port)d))):
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(addr)
        s.sendall(b'GET /health HTTP/1.0\\r\\n\\r\\n')
        out[str(addr)] = 'connected ' + s.recv(100).decode('latin-1')
        s.close()
    except OSError as e:
        out[str(addr)] = 'failed %%s' %% e.errno
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.sendto(b'x', ('127.0.0.1', %(port)d))
    out['udp'] = 'sent'
except OSError as e:
    out['udp'] = 'failed %%s' %% e.errno
try:
    x = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    x.settimeout(5)
    x.connect(%(sock)r)
    out['unix'] = 'connected'
except OSError as e:
    out['unix'] = 'failed %%s' %% e.errno
try:
    out['ifaces'] = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]
except OSError as e:
    out['ifaces'] = 'denied'
print(json.dumps(out))
"""


@pytest.mark.parametrize("enable_network", [False, True])
def test_no_network_to_the_host(stack, enable_network):
    # Only loopback targets: nginx's own port and sandcelld's socket on this host.
    code = CONNECT_PY % {"port": stack.port, "sock": stack.socket_path}
    out, _ = report(stack, code, enable_network=enable_network)
    for k, v in out.items():
        if k == "ifaces":
            continue
        assert not v.startswith("connected"), (k, v)
    assert not out["udp"].startswith("sent") or out["ifaces"] in (["lo"], [], "denied"), out


def test_no_network_from_node(stack):
    code = ("const net = require('net');\n"
            "const s = net.connect({host: '127.0.0.1', port: %d, timeout: 5000});\n"
            "s.on('connect', () => { console.log('connected'); process.exit(0) });\n"
            "s.on('error', e => { console.log('failed ' + e.code); process.exit(0) });\n"
            "s.on('timeout', () => { console.log('failed timeout'); process.exit(0) });\n"
            % stack.port)
    data = run_ok(stack, "nodejs", code, enable_network=True)
    assert data["stdout"].startswith("failed"), data


# ---- nothing the program writes can run as code -------------------------------------------

# Each way a program could turn a file it wrote to /tmp into code: exec it (ELF or #!), map it
# executable, load it as a shared object. /tmp is noexec, so the kernel refuses every one.
TMP_CODE = r"""
import ctypes, json, mmap, os, shutil, sys, _ctypes
out = {}
shutil.copy(sys.executable, '/tmp/elf')
with open('/tmp/script', 'w') as f:
    f.write('#!/usr/bin/python3\nprint("ran")\n')
shutil.copy(_ctypes.__file__, '/tmp/lib.so')
for name in ('elf', 'script', 'lib.so'):
    os.chmod('/tmp/' + name, 0o755)
for name in ('elf', 'script'):
    try:
        os.execv('/tmp/' + name, [name, '-c', 'print("ran")'])
    except OSError as e:
        out['exec ' + name] = e.errno
try:
    with open('/tmp/lib.so', 'rb') as f:
        mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ | mmap.PROT_EXEC, flags=mmap.MAP_PRIVATE)
    out['mmap exec'] = 'mapped'
except OSError as e:
    out['mmap exec'] = e.errno
try:
    ctypes.CDLL('/tmp/lib.so')
    out['dlopen'] = 'loaded'
except OSError as e:
    out['dlopen'] = 'failed to map' if 'failed to map' in str(e) else str(e)
print(json.dumps(out))
"""


def test_files_written_to_tmp_do_not_run(stack):
    out, data = report(stack, TMP_CODE)
    # EACCES (13) for exec on a noexec mount, EPERM (1) for an executable mapping of its file
    assert out == {"exec elf": 13, "exec script": 13, "mmap exec": 1,
                   "dlopen": "failed to map"}, (out, data)


NODE_DLOPEN = r"""
const fs = require('fs');
const lib = fs.readdirSync('/usr/lib/x86_64-linux-gnu').find(n => /^libm\.so\.6$/.test(n));
fs.copyFileSync('/usr/lib/x86_64-linux-gnu/' + lib, '/tmp/lib.node');
try {
  process.dlopen({exports: {}}, '/tmp/lib.node');
  console.log('loaded');
} catch (e) {
  console.log(/failed to map segment/.test(e.message) ? 'refused' : 'loaded: ' + e.message);
}
"""


def test_node_cannot_load_native_code_from_tmp(stack):
    data = run_ok(stack, "nodejs", NODE_DLOPEN)
    assert data["stdout"] == "refused\n", data


# ---- setuid programs among the host's software ------------------------------------------------

# The jail shows /usr/lib, where packages put setuid-root helpers (ssh-keysign, dbus's launch
# helper). A setuid-root copy of `id` placed there plays one: run from the jail, it must run
# as the sandbox's uid (the binds are nosuid; no_new_privs holds besides).
SUID_EXEC = r"""
import os, sys
print(os.getuid(), flush=True)
os.execv(%r, ["id", "-u"])
"""


def test_a_setuid_root_program_under_usr_lib_runs_as_the_sandbox(stack):
    path = "/usr/lib/sandcell-e2e-suid-id-%d" % os.getpid()
    with open("/usr/bin/id", "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    os.chmod(path, 0o4755)
    try:
        data = run_ok(stack, "python3", SUID_EXEC % path)
    finally:
        os.unlink(path)
    uid, effective = data["stdout"].split()
    assert int(uid) != 0 and effective == uid, data


# ---- what /proc and ioctl tell about the host ----------------------------------------------

PROC_PY = """
import fcntl, json, os, socket, struct
out = {}
for path in ('/proc/stat', '/proc/meminfo', '/proc/sys/kernel/random/boot_id', '/proc/cpuinfo',
             '/proc/mounts', '/proc/self/status'):
    out[path] = os.path.exists(path)
out['listing'] = sorted(n for n in os.listdir('/proc') if not n.isdigit())
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    buf = bytearray(4096)
    fcntl.ioctl(s.fileno(), 0x8912, struct.pack('iL', len(buf), 0))  # SIOCGIFCONF
    out['SIOCGIFCONF'] = 'answered'
except OSError as e:
    out['SIOCGIFCONF'] = e.errno
print(json.dumps(out))
"""


@pytest.mark.parametrize("enable_network", [False, True])
def test_proc_and_ioctl_tell_nothing_of_the_host(stack, enable_network):
    out, _ = report(stack, PROC_PY, enable_network=enable_network)
    assert out["/proc/self/status"] and not any(
        out[p] for p in ("/proc/stat", "/proc/meminfo", "/proc/sys/kernel/random/boot_id",
                         "/proc/cpuinfo", "/proc/mounts")), out
    assert out["listing"] == ["self", "thread-self"], out
    # without network no inet socket at all (EPERM from socket()); with it, the ioctl is refused
    assert out["SIOCGIFCONF"] == 1, out


NODE_PROC = r"""
const fs = require('fs'), os = require('os');
console.log(JSON.stringify({stat: fs.existsSync('/proc/stat'), meminfo: fs.existsSync('/proc/meminfo'),
  self: fs.existsSync('/proc/self/status'), parallelism: os.availableParallelism() > 0,
  totalmem: os.totalmem() > 0}));
"""


def test_node_sees_no_host_wide_proc(stack):
    data = run_ok(stack, "nodejs", NODE_PROC)
    assert json.loads(data["stdout"]) == {"stat": False, "meminfo": False, "self": True,
                                          "parallelism": True, "totalmem": True}, data


def test_nothing_left_after_attacks(stack):
    assert_clean(stack)


INIT_PY = """
import json, os, time
time.sleep(0.2)  # a cold sandbox's init execs right after starting the program
out = {'cmdline': open('/proc/1/cmdline').read().split('\\0')[:-1]}
for name in ('environ', 'mem', 'maps'):
    try:
        with open('/proc/1/' + name, 'rb') as f:
            f.read(16)
        out[name] = 'read'
    except OSError as e:
        out[name] = 'failed %d' % e.errno
print(json.dumps(out))
"""


def test_sandbox_init_holds_nothing_of_the_daemon(stack):
    # pid 1 of the sandbox is a fresh image that only waits (jail/init.c), not a
    # copy of sandcelld with its key and other requests in memory; and it is
    # still out of the program's reach
    out, _ = report(stack, INIT_PY)
    assert out["cmdline"][0] == "sandcell-init", out
    assert stack.key not in " ".join(out["cmdline"]), out
    for name in ("environ", "mem", "maps"):
        assert out[name].startswith("failed"), out
