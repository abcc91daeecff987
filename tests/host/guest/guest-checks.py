#!/usr/bin/python3
"""The real-host test's checks, run as root inside the booted Debian 12 guest (tests/host).

The guest is a plain Debian 12 server (systemd, pure cgroup v2, Debian's kernel, AppArmor) with
no network device. This script does what the README's install section tells a new user to do,
step for step, then checks the service that systemd started: every check is one line of
results/results.json ({"name", "ok", "detail", "seconds"}), and the last line says the script
got to its end. Usage: guest-checks.py RESULTS_DIR (the .deb and dify_templates.py are beside
it).

Addresses: loopback listeners in the guest itself; "private", "metadata" and "public" hosts
live in a network namespace of the guest (far), reached over a veth pair. Nothing can leave the
guest: it has no network device.
"""

import base64
import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dify_templates as dify  # noqa: E402

RESULTS = sys.argv[1] if len(sys.argv) > 1 else "results"
URL = "http://127.0.0.1:8194"
UNIT_CGROUP = "/sys/fs/cgroup/system.slice/sandcell.service"
PINS = "/sys/fs/bpf/sandcell"
HTTP_TIMEOUT = 180  # TCG is slow; this only guards against a hung service
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# the far namespace's hosts (see setup_far_hosts)
FAR = {"private": "10.1.2.3", "metadata": "169.254.169.254", "public": "8.8.4.4"}
# plays the host's own public address: on the guest's end of the veth pair
HOST_PUBLIC = "93.184.216.34"
FAR_PORT = 8080
PUBLIC_PORT = 443  # the default policy opens public addresses on 80 and 443 only
LOOPBACK_PORT = 8081

results = []
started = time.monotonic()


# ---- results ------------------------------------------------------------------------

def record(name, ok, detail="", seconds=0.0):
    results.append({"name": name, "ok": bool(ok), "detail": str(detail)[:4000],
                    "seconds": round(seconds, 1)})
    print("host-test: %-62s %s (%.1f s)%s" % (name, "ok" if ok else "FAILED", seconds,
                                              "" if ok else "  " + str(detail)[:600]),
          flush=True)
    write_results()


def write_results(complete=False):
    with open(os.path.join(RESULTS, "results.json.tmp"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
        if complete:
            f.write(json.dumps({"complete": True, "seconds": round(time.monotonic() - started)})
                    + "\n")
    os.rename(os.path.join(RESULTS, "results.json.tmp"), os.path.join(RESULTS, "results.json"))


def check(name):
    """Decorator: the function returns (ok, detail); an exception is a failure."""
    def wrap(fn):
        def run_check(*args, **kwargs):
            t = time.monotonic()
            try:
                ok, detail = fn(*args, **kwargs)
            except Exception as e:  # a check that crashes has failed, the others still run
                ok, detail = False, "%s: %s" % (type(e).__name__, e)
            record(name, ok, detail, time.monotonic() - t)
            return ok
        return run_check
    return wrap


# ---- helpers --------------------------------------------------------------------------

def sh(cmd, check_rc=True, timeout=600, **kw):
    p = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check_rc and p.returncode != 0:
        raise RuntimeError("%s: rc %d: %s %s" % (cmd, p.returncode, p.stdout[-2000:],
                                                  p.stderr[-2000:]))
    return p


def key():
    with open("/etc/sandcell/api_key") as f:
        return f.readline().strip()


def request(method, path, body=None, api_key=True, timeout=HTTP_TIMEOUT):
    headers = {"Content-Type": "application/json"}
    if api_key is True:
        headers["X-Api-Key"] = key()
    elif api_key:
        headers["X-Api-Key"] = api_key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method, headers=headers)
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run(language, code, **fields):
    body = {"language": language, "code": code}
    body.update(fields)
    status, raw = request("POST", "/v1/sandbox/run", body)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def run_data(language, code, **fields):
    status, body = run(language, code, **fields)
    if status != 200 or not isinstance(body, dict) or body.get("code") != 0:
        raise RuntimeError("run answered %s %r" % (status, body))
    return body["data"]


def wait_for(predicate, seconds, step=0.5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def health_ok():
    try:
        return request("GET", "/health", api_key=False, timeout=10) == (200, b'"ok"')
    except OSError:
        return False


def unit_property(name):
    return sh(["systemctl", "show", "-P", name, "sandcell.service"]).stdout.strip()


def journal(since_cursor=None):
    cmd = ["journalctl", "-u", "sandcell.service", "--no-pager", "-o", "cat"]
    if since_cursor:
        cmd += ["--after-cursor", since_cursor]
    return sh(cmd, check_rc=False).stdout


def journal_cursor():
    out = sh(["journalctl", "-n", "0", "--show-cursor", "--no-pager"], check_rc=False).stdout
    m = re.search(r"-- cursor: (\S+)", out)
    return m.group(1) if m else None


def unit_pids():
    """Every process in the service's cgroup tree."""
    pids = []
    for procs in glob.glob(UNIT_CGROUP + "/**/cgroup.procs", recursive=True):
        try:
            with open(procs) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return sorted(set(pids))


def sandbox_cgroups():
    """The cgroups of sandbox slots: slot-<k>, made at start and reused run after run
    (slot-<k>.<g> replaces one that a run left populated)."""
    return glob.glob(UNIT_CGROUP + "/**/slot-*", recursive=True)


def busy_sandbox_cgroups():
    """The slot cgroups that hold a sandbox now (warm or running)."""
    busy = []
    for cg in sandbox_cgroups():
        try:
            if "populated 1" in open(os.path.join(cg, "cgroup.events")).read():
                busy.append(cg)
        except OSError:
            pass
    return busy


def metric(name):
    """The sum of a /metrics series over its labels."""
    status, body = request("GET", "/metrics", api_key=False)
    return sum(float(v) for v in re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name),
                                            body.decode(), re.M))


def in_background(fn, *args):
    out = {}

    def target():
        try:
            out["value"] = fn(*args)
        except Exception as e:
            out["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def leftovers():
    """What of sandcell exists on this host: files, cgroups, pins, processes, users."""
    left = []
    for p in ["/etc/sandcell", "/usr/sbin/sandcelld", "/usr/bin/sandcell", "/run/sandcell",
              "/etc/nginx/snippets/sandcell.conf", "/etc/nginx/conf.d/sandcell-limits.conf",
              "/etc/nginx/sites-available/sandcell", "/lib/systemd/system/sandcell.service",
              "/usr/share/doc/sandcell", UNIT_CGROUP, PINS]:
        if os.path.lexists(p):
            left.append(p)
    left += glob.glob("/sys/fs/bpf/*sandcell*")
    left += [c for c in glob.glob("/sys/fs/cgroup/**/*sandcell*", recursive=True)
             if "sandcell-host-test" not in c]  # this test's own unit
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                exe = os.readlink("/proc/%s/exe" % pid)
            except OSError:
                continue
            if "sandcell" in exe:
                left.append("process %s (%s)" % (pid, exe))
    with open("/etc/passwd") as f:
        left += ["user " + line.split(":")[0] for line in f if "sandcell" in line]
    st = sh(["dpkg-query", "-W", "-f=${db:Status-Status}", "sandcell"], check_rc=False)
    if st.returncode == 0 and st.stdout.strip() not in ("", "not-installed", "config-files"):
        left.append("dpkg: sandcell is " + st.stdout.strip())
    return sorted(set(left))


# ---- the far hosts: a namespace with private, metadata and public addresses ---------------

LISTENER = r"""
import socket, sys, threading
def serve(fam, addr, port):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(64)
    while True:
        c, peer = s.accept()
        print("ACCEPT %s:%d from %s" % (addr, port, peer[0]), flush=True)
        try:
            c.sendall(b"hello\n")
        finally:
            c.close()
specs = [a.rsplit(":", 1) for a in sys.argv[1:]]
for addr, port in specs:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    threading.Thread(target=serve, args=(fam, addr, int(port)), daemon=True).start()
print("READY", flush=True)
threading.Event().wait()
"""


class Listeners:
    """TCP listeners that log every connection they accept (in a namespace or here)."""

    def __init__(self, name, addrs, netns=None):
        self.log = os.path.join(RESULTS, "listener-%s.log" % name)
        cmd = ([] if not netns else ["nsenter", "--net=/run/netns/" + netns]) + \
            ["python3", "-c", LISTENER] + addrs
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        if not wait_for(lambda: "READY" in self.accepted_text(), 30, 0.2):
            raise RuntimeError("listeners %s did not start: %s" % (addrs, self.accepted_text()))

    def accepted_text(self):
        with open(self.log) as f:
            return f.read()

    def accepted(self, addr):
        return [ln for ln in self.accepted_text().splitlines()
                if ln.startswith("ACCEPT %s:" % addr)]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def setup_far_hosts():
    sh("ip netns add far")
    sh("ip link add sc-v0 type veth peer name sc-v1 netns far")
    sh("ip addr add 10.255.0.1/30 dev sc-v0 && ip link set sc-v0 up")
    sh("ip addr add %s/32 dev sc-v0" % HOST_PUBLIC)
    sh("ip -n far link set lo up && ip -n far link set sc-v1 up && "
       "ip -n far addr add 10.255.0.2/30 dev sc-v1 && "
       "ip -n far route add default via 10.255.0.1")
    for addr in FAR.values():
        sh("ip -n far addr add %s/32 dev sc-v1" % addr)
        sh("ip route add %s/32 via 10.255.0.2 dev sc-v0" % addr)
    sh("ip route add default via 10.255.0.2 dev sc-v0")
    far = Listeners("far", ["%s:%d" % (a, FAR_PORT) for a in FAR.values()] +
                    ["169.254.169.254:80", "%s:%d" % (FAR["public"], PUBLIC_PORT)], netns="far")
    local = Listeners("loopback", ["127.0.0.1:%d" % LOOPBACK_PORT, "::1:%d" % LOOPBACK_PORT,
                                   "%s:%d" % (HOST_PUBLIC, PUBLIC_PORT)])
    return far, local


def pasta_processes():
    """pid -> AppArmor label of every pasta (it may run as passt.avx2)."""
    found = {}
    for comm in glob.glob("/proc/[0-9]*/comm"):
        try:
            if open(comm).read().strip() in ("pasta", "pasta.avx2", "passt.avx2", "passt"):
                pid = comm.split("/")[2]
                found[pid] = open("/proc/%s/attr/current" % pid).read().strip()
        except OSError:
            continue
    return found


@check("network sandboxes: each in a namespace of its own that pasta connects (no guest "
       "socket listed, two runs apart), AppArmor enforcing")
def private_network_namespace():
    code = ("import os\n"
            "print(os.stat('/proc/self/ns/net').st_ino, len(open('/proc/self/net/tcp').readlines()) - 1,\n"
            "      len(open('/proc/self/net/unix').readlines()) - 1)")
    t, other = in_background(lambda: run_data("python3", "import os, time\ntime.sleep(3)\n"
                                              "print(os.stat('/proc/self/ns/net').st_ino)",
                                              enable_network=True))
    time.sleep(1)
    mine = run_data("python3", code, enable_network=True)["stdout"].split()
    t.join()
    guest = os.stat("/proc/1/ns/net").st_ino
    pastas = pasta_processes()
    theirs = other.get("value", {}).get("stdout", "").strip()
    ok = (len(mine) == 3 and int(mine[0]) != guest and mine[1:] == ["0", "0"] and theirs and
          theirs not in (mine[0], str(guest)) and bool(pastas) and
          all(label == "passt (enforce)" for label in pastas.values()))
    return ok, "ns, tcp, unix: %s; concurrent run: %s; guest ns %d; pasta: %s" % (
        mine, other, guest, pastas)


PY_CONNECT = """
import errno, socket
def probe(host, port):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(20)
    try:
        s.connect((host, port))
        return 'connected:' + s.recv(16).decode().strip()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
print(probe(%r, %d))
"""

NODE_CONNECT = """
const net = require('net');
const s = net.connect({host: %r, port: %d});
s.setTimeout(20000, () => { console.log('TIMEOUT'); s.destroy(); });
s.on('data', d => { console.log('connected:' + d.toString().trim()); s.destroy(); });
s.on('error', e => console.log(e.code));
"""


def connect_from_sandbox(language, host, port):
    code = (PY_CONNECT if language == "python3" else NODE_CONNECT) % (host, port)
    return run_data(language, code, enable_network=True)["stdout"].strip()


# ---- the checks -------------------------------------------------------------------------

@check("install: apt-get install ./sandcell_*.deb starts the service")
def install_package():
    deb = sorted(glob.glob(os.path.join(HERE, "sandcell_*.deb")))[-1]
    p = sh(["apt-get", "install", "-y", "-q", deb], check_rc=False,
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if p.returncode != 0:
        return False, p.stdout[-3000:] + p.stderr[-2000:]
    active = wait_for(lambda: unit_property("ActiveState") == "active", 60)
    ready = wait_for(lambda: "config init success" in journal() and 'msg="listening"' in journal(),
                     60)
    mode = "%o" % (os.stat("/etc/sandcell/api_key").st_mode & 0o777)
    return active and ready and mode == "640", "active=%s ready=%s api_key mode=%s\n%s" % (
        active, ready, mode, journal()[-3000:])


@check("install: the example site enabled as the README says (nginx -t, reload)")
def enable_site():
    sh("ln -s ../sites-available/sandcell /etc/nginx/sites-enabled/sandcell")
    sh("nginx -t")
    sh("systemctl reload nginx")
    return wait_for(health_ok, 30), "GET /health"


@check("GET /health answers \"ok\" without a key")
def health():
    status, body = request("GET", "/health", api_key=False)
    return (status, body) == (200, b'"ok"'), (status, body)


@check("a wrong key gets 401 with an empty body")
def wrong_key():
    status, body = request("POST", "/v1/sandbox/run", {"language": "python3", "code": "1"},
                           api_key="wrong")
    return (status, body) == (401, b""), (status, body)


@check("python3 run: print(1+1)")
def python_run():
    data = run_data("python3", "print(1+1)")
    return data == {"stdout": "2\n", "stderr": "", "error": "", "exit_code": 0}, data


@check("nodejs run: console.log(6*7)")
def node_run():
    data = run_data("nodejs", "console.log(6*7)")
    return data == {"stdout": "42\n", "stderr": "", "error": "", "exit_code": 0}, data


def dify_result(language, script, preload=""):
    data = run_data(language, script, preload=preload, enable_network=True)
    m = dify.RESULT_RE.search(data["stdout"])
    if data["error"] or not m:
        raise RuntimeError(data)
    return m.group(1)


@check("Dify's python3 runner template")
def dify_python():
    code = "def main(arg1: str, arg2: str):\n    return {\"result\": arg1 + arg2}\n"
    out = dify_result("python3", dify.python3_script(code, {"arg1": "a", "arg2": "\u00e9"}))
    return json.loads(out) == {"result": "a\u00e9"}, out


@check("Dify's javascript runner template")
def dify_javascript():
    code = "function main({arg1, arg2}) {\n    return {result: arg1 + arg2}\n}\n"
    out = dify_result("nodejs", dify.javascript_script(code, {"arg1": "a", "arg2": "b"}))
    return json.loads(out) == {"result": "ab"}, out


@check("Dify's jinja2 template with its preload")
def dify_jinja2():
    out = dify_result("python3", dify.jinja2_script("<b>{{ x | upper }}</b>", {"x": "hi"}),
                      preload=dify.JINJA2_PRELOAD)
    return out == "<b>HI</b>", out


@check("limits come from the v2 controllers of the service's delegated cgroup")
def v2_limits_in_place():
    t, out = in_background(run_data, "python3", "import time\ntime.sleep(8)\nprint('slept')")
    found = {}

    def look():
        for cg in busy_sandbox_cgroups():
            try:
                found.update({f: open(os.path.join(cg, f)).read().strip()
                              for f in ("memory.max", "pids.max", "cpu.max")})
                found["cgroup"] = cg
                return True
            except OSError:
                continue
        return False
    seen = wait_for(lambda: metric("sandcell_workers_busy") == 1, 60, 0.2) and look()
    t.join(HTTP_TIMEOUT)
    v1 = [m for m in open("/proc/self/mountinfo").read().splitlines() if " - cgroup " in m]
    ok = seen and found.get("memory.max") == str(512 << 20) and found.get("pids.max") == "64" \
        and found.get("cpu.max") == "100000 100000" and not v1 and \
        out.get("value", {}).get("stdout") == "slept\n"
    return ok, "%s v1 mounts=%s run=%s" % (found, v1, out)


def limit_check(language, code, marker):
    data = run_data(language, code)
    ok = data["exit_code"] != 0 and marker in data["error"].split("\n")
    return ok, {k: (v[:300] if isinstance(v, str) else v) for k, v in data.items()}


# The bombs run under a smaller memory_limit than the shipped 512 MiB: filling 512 MiB one
# page fault at a time takes TCG longer than worker_timeout (15 s), and a bomb must reach its
# limit long before the timeout (the host's e2e bombs fill the shipped size).
BOMB_MEMORY_LIMIT = "128m"
CONF = "/etc/sandcell/sandcell.conf"


def restart_with_setting(key, value, settle=False):
    """sandcell.service restarted with `key = value` in its configuration; whether it listens.
    settle: also wait until its start-up work is done (wait_until_settled), which under TCG
    holds both CPUs for seconds: a check right after a restart would time that instead."""
    sh(["sed", "-i", "s/^#*%s = .*/%s = %s/" % (key, key, value), CONF])
    cursor = journal_cursor()
    sh("systemctl restart sandcell")
    up = wait_for(health_ok, 60) and wait_for(lambda: 'msg="listening"' in journal(cursor), 60)
    if up and settle:
        wait_until_settled(cursor)
    return up


def wait_until_settled(cursor=None):
    """Until the service's start-up work since cursor is done: the import check, and one run of
    each language (under TCG a language's first run after a start takes seconds more)."""
    wait_for(lambda: "import check done" in journal(cursor), 240, 2)
    for language, code in (("python3", "print(1)"), ("nodejs", "console.log(1)")):
        try:
            run(language, code)  # the answer does not matter, only that it has run
        except OSError:
            pass


def memory_bombs():
    shipped = re.search(r"^memory_limit = (\S+)$", open(CONF).read(), re.M).group(1)
    try:
        if restart_with_setting("memory_limit", BOMB_MEMORY_LIMIT, settle=True):
            memory_python()
            memory_node()
        else:
            record("memory_limit = %s: the service restarts" % BOMB_MEMORY_LIMIT, False,
                   journal()[-2000:])
    finally:
        restart_with_setting("memory_limit", shipped)


@check("python3 memory bomb: error: memory limit exceeded")
def memory_python():
    return limit_check("python3", "a = []\nwhile True:\n    a.append(b'x' * (16 << 20))\n",
                       "error: memory limit exceeded")


@check("nodejs memory bomb: error: memory limit exceeded")
def memory_node():
    return limit_check("nodejs", "const a = [];\nfor (;;) a.push(Buffer.alloc(16 << 20, 1));\n",
                       "error: memory limit exceeded")


@check("thread bomb: error: process limit exceeded")
def pids_limit():
    code = ("import threading, time\nts = []\nfor i in range(500):\n"
            "    t = threading.Thread(target=time.sleep, args=(30,), daemon=True)\n    t.start()\n"
            "    ts.append(t)\n")
    return limit_check("python3", code, "error: process limit exceeded")


@check("fork: error: operation not permitted")
def seccomp_marker():
    return limit_check("python3", "import os\nos.fork()\n", "error: operation not permitted")


# mov eax, 20 (getpid in the i386 table); int 0x80; ret (as tests/e2e/test_attacks_more.py)
INT80_PY = r"""
import ctypes, mmap
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(b'\xb8\x14\x00\x00\x00\xcd\x80\xc3')
addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
print('calling', flush=True)
print('returned', ctypes.CFUNCTYPE(ctypes.c_int)(addr)(), flush=True)
"""


@check("int 0x80 (an i386 system call, which Debian's kernel serves) from a sandbox: "
       "killed by seccomp, error: operation not permitted")
def i386_syscall_killed():
    # the build machines have ia32 emulation off (a fault before seccomp): here it is on
    bare = sh(["python3", "-c", INT80_PY], check_rc=False)
    if not bare.stdout.startswith("calling\nreturned "):
        return False, "int 0x80 outside a sandbox: rc %d %r" % (bare.returncode, bare.stdout)
    data = run_data("python3", INT80_PY)
    ok = (data["stdout"] == "calling\n" and data["exit_code"] == -1 and
          "error: operation not permitted" in data["error"].split("\n"))
    return ok, {k: (v[:300] if isinstance(v, str) else v) for k, v in data.items()}


@check("endless loop: error: timeout")
def timeout_marker():
    return limit_check("nodejs", "for (;;) {}", "error: timeout")


@check("output flood: error: output limit exceeded")
def output_marker():
    return limit_check("python3", "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n",
                       "error: output limit exceeded")


@check("big file: error: file size limit exceeded")
def file_size_marker():
    return limit_check("python3", "open('/tmp/big', 'wb').write(b'x' * (64 << 20))\n",
                       "error: file size limit exceeded")


TMP_EXEC = """
import json, os, shutil, sys
shutil.copy(sys.executable, '/tmp/elf')
os.chmod('/tmp/elf', 0o755)
try:
    os.execv('/tmp/elf', ['elf', '-c', 'print("ran")'])
except OSError as e:
    print(json.dumps({'exec': e.errno, 'proc': sorted(n for n in os.listdir('/proc')
                                                      if not n.isdigit())}))
"""


@check("nothing written to /tmp runs; /proc shows only the sandbox's processes")
def tmp_noexec_and_proc():
    data = run_data("python3", TMP_EXEC)
    return json.loads(data["stdout"] or "{}") == {"exec": 13, "proc": ["self", "thread-self"]}, data


@check("a reply is bounded: control bytes on both streams stay within 2 x output_limit")
def reply_bounded():
    code = ("import sys\nwhile True:\n    sys.stdout.write('\\x01' * 65536)\n"
            "    sys.stderr.write('\\x02' * 65536)\n")
    status, raw = request("POST", "/v1/sandbox/run", {"language": "python3", "code": code})
    data = json.loads(raw)["data"]
    limit = 8 << 20
    return status == 200 and len(raw) <= 2 * limit + 1024 and \
        "error: output limit exceeded" in data["error"], "%d bytes, status %d" % (len(raw), status)


@check("no sandbox cgroup holds anything after the runs but the warm ones")
def no_sandbox_left():
    def only_warm():
        return metric("sandcell_workers_busy") == 0 and \
            len(busy_sandbox_cgroups()) == metric("sandcell_warm_sandboxes")
    ok = wait_for(only_warm, 60)
    return ok, "%s, warm: %s" % (busy_sandbox_cgroups(), metric("sandcell_warm_sandboxes"))


EGRESS_BLOCKED = [
    ("the host's own public address", HOST_PUBLIC, PUBLIC_PORT),
    ("loopback", "127.0.0.1", LOOPBACK_PORT),
    ("loopback v6", "::1", LOOPBACK_PORT),
    ("private", FAR["private"], FAR_PORT),
    ("metadata", FAR["metadata"], 80),
    ("IPv4-mapped loopback", "::ffff:127.0.0.1", LOOPBACK_PORT),
    ("IPv4-mapped private", "::ffff:" + FAR["private"], FAR_PORT),
    ("IPv4-mapped metadata", "::ffff:" + FAR["metadata"], 80),
]


def blocked_metric():
    return metric("sandcell_network_blocked_total")


def egress_checks(far, local, label="", languages=("python3", "nodejs"), blocked=EGRESS_BLOCKED):
    for language in languages:
        for what, host, port in blocked:
            name = "egress%s %s: %s (%s) refused with EPERM, nothing received" % (
                label, language, what, host)

            @check(name)
            def refused():
                before = (len(far.accepted_text()), len(local.accepted_text()))
                got = connect_from_sandbox(language, host, port)
                after = (len(far.accepted_text()), len(local.accepted_text()))
                return got == "EPERM" and before == after, "got %r, listeners %s -> %s" % (
                    got, before, after)
            refused()

        @check("egress%s %s: a public address is reachable" % (label, language))
        def public():
            n = len(far.accepted(FAR["public"]))
            got = connect_from_sandbox(language, FAR["public"], PUBLIC_PORT)
            return got == "connected:hello" and len(far.accepted(FAR["public"])) == n + 1, got
        public()


@check("egress: blocked attempts are logged and counted in /metrics")
def egress_logged(cursor, count_before):
    logged = wait_for(lambda: 'msg="network attempt blocked"' in journal(cursor), 20)
    count = blocked_metric()
    return logged and count > count_before, "logged=%s counted %s -> %s" % (
        logged, count_before, count)


# ---- the operator's command from a login shell ----------------------------------------------

def login_shell(script):
    """script run by root's login shell (su -l: a logind session of its own, as over ssh)."""
    return sh(["su", "-l", "root", "-c", script], check_rc=False, timeout=600)


CLI_SCRIPT = r"""
echo "cgroup-before: $(cat /proc/self/cgroup)"
echo 'print(6 * 7)' | sandcell run; echo "rc: $?"
echo 'console.log(6 * 7)' | sandcell run --language nodejs; echo "rc: $?"
(umask 077; echo 'print("umask 077")' | sandcell run); echo "rc: $?"
printf 'import socket\ns = socket.socket()\ns.settimeout(10)\ns.connect(("127.0.0.1", %d))\n' | \
    sandcell run --network; echo "rc-network: $?"
sandcell check > /tmp/check.out 2>&1; echo "rc-check: $?"
# as if there were no systemd-run: the CLI must refuse, not move the session's processes
echo 'print(1)' | SANDCELL_CLI_UNIT=scope sandcell run 2>&1; echo "rc-unscoped: $?"
echo "cgroup-after: $(cat /proc/self/cgroup)"
"""


@check("sandcell run / check from a login shell work and leave its cgroup where it was")
def cli_from_login_shell():
    p = login_shell(CLI_SCRIPT % LOOPBACK_PORT)
    out = p.stdout
    before = re.search(r"cgroup-before: (.*)", out)
    after = re.search(r"cgroup-after: (.*)", out)
    session = before.group(1) if before else ""
    scope_dir = "/sys/fs/cgroup" + session.split("::", 1)[-1] if session else ""
    leftover = [d for d in glob.glob(scope_dir + "/*") if os.path.isdir(d)] if scope_dir else []
    ok = (before and after and before.group(1) == after.group(1) and
          "session-" in session and not leftover and
          out.count("rc: 0") == 3 and "42\n" in out and "umask 077\n" in out and
          "rc-network: 0" not in out and "rc-check: 0" in out and
          "rc-unscoped: 125" in out and "holds other processes" in out)
    check_out = open("/tmp/check.out").read() if os.path.exists("/tmp/check.out") else ""
    return ok, "%s\nstderr: %s\nchildren of the session's cgroup: %s\ncheck:\n%s" % (
        out, p.stderr, leftover, check_out)


@check("sandcell check from a login shell reports the service's capability set and umask")
def check_reports_service():
    out = open("/tmp/check.out").read()
    caps = unit_property("CapabilityBoundingSet")
    ok = "cap_net_admin" in caps and "sandcell.service's settings" in out and \
        re.search(r"^umask +ok +0077", out, re.M) and re.search(r"^cap_sys_admin +ok", out, re.M) \
        and re.search(r"^network egress \(eBPF\) +ok", out, re.M)
    return ok, "unit caps: %s\n%s" % (caps, out)


DROPIN = "/etc/systemd/system/sandcell.service.d/host-test.conf"


@check("without CAP_NET_ADMIN (the 6.1 cgroup_skb attach): network runs refused, "
       "no pins left, check says so")
def without_net_admin():
    caps = [c for c in unit_property("CapabilityBoundingSet").split() if c != "cap_net_admin"]
    try:
        restart_with_dropin("CapabilityBoundingSet=\nCapabilityBoundingSet=%s\n" % " ".join(caps))
        wait_for(health_ok, 60)
        status, body = run("python3", "print(1)", enable_network=True)
        offline = run_data("python3", "print('offline')")["stdout"]
        pins = glob.glob(PINS + "/*")
        chk = login_shell("sandcell check 2>&1; echo rc=$?").stdout
        ok = status == 500 and b"network is not available" in (
            body if isinstance(body, bytes) else json.dumps(body).encode()) and \
            offline == "offline\n" and not pins and \
            re.search(r"^cap_net_admin +no +missing", chk, re.M) and \
            re.search(r"^network egress \(eBPF\) +no +cannot be enforced", chk, re.M)
        return ok, "network run: %s %s\noffline: %r\npins: %s\ncheck:\n%s" % (
            status, body, offline, pins, chk)
    finally:
        remove_dropin()


CAP_BITS = {"cap_chown": 0, "cap_kill": 5, "cap_setgid": 6, "cap_setuid": 7, "cap_setpcap": 8,
            "cap_net_admin": 12, "cap_sys_admin": 21}


def in_daemon_ns(pid, script):
    return sh(["nsenter", "-t", str(pid), "-m", "--", "sh", "-c", script], check_rc=False)


@check("the unit's hardening is in force on the running sandcelld (caps, no_new_privs, umask, "
       "ProtectSystem, ProtectHome, PrivateTmp, Delegate)")
def hardening_in_force():
    pid = int(unit_property("MainPID"))
    status = dict(line.split(":", 1) for line in open("/proc/%d/status" % pid).read().splitlines())
    want = sum(1 << CAP_BITS[c] for c in unit_property("CapabilityBoundingSet").split())
    got = {"CapBnd": int(status["CapBnd"], 16), "NoNewPrivs": status["NoNewPrivs"].strip(),
           "Umask": status["Umask"].strip()}
    open("/tmp/host-only-marker", "w").close()
    fs = in_daemon_ns(pid, "touch /usr/x 2>&1; touch /etc/x 2>&1; find /root /home -mindepth 1 | wc -l; "
                           "test -e /tmp/host-only-marker && echo shared-tmp")
    delegated = open(UNIT_CGROUP + "/cgroup.subtree_control").read().split()
    ok = got == {"CapBnd": want, "NoNewPrivs": "1", "Umask": "0077"} and \
        fs.stdout.count("Read-only file system") == 2 and "shared-tmp" not in fs.stdout and \
        fs.stdout.strip().splitlines()[-1] == "0" and \
        {"memory", "pids", "cpu"} <= set(delegated)
    return ok, "status %s (want CapBnd %#x); in its mount namespace: %r; subtree_control %s" % (
        got, want, fs.stdout, delegated)


def restart_with_dropin(text):
    """sandcell.service restarted with a drop-in of [Service] text."""
    os.makedirs(os.path.dirname(DROPIN), exist_ok=True)
    with open(DROPIN, "w") as f:
        f.write("[Service]\n" + text)
    sh("systemctl daemon-reload")
    sh("systemctl restart sandcell", check_rc=False)


def remove_dropin():
    if os.path.exists(DROPIN):
        os.unlink(DROPIN)
    sh("systemctl daemon-reload; systemctl reset-failed sandcell; systemctl restart sandcell",
       check_rc=False)
    wait_for(health_ok, 60)


@check("without each required capability the service refuses to start and names it")
def each_required_capability():
    caps = unit_property("CapabilityBoundingSet").split()
    seen = {}
    try:
        for cap in ("cap_sys_admin", "cap_setuid", "cap_setgid", "cap_setpcap", "cap_kill"):
            cursor = journal_cursor()
            restart_with_dropin("CapabilityBoundingSet=\nCapabilityBoundingSet=%s\n" % " ".join(
                c for c in caps if c != cap))
            named = wait_for(lambda: "missing capability %s" % cap in journal(cursor), 30)
            seen[cap] = "named" if named else journal(cursor)[-600:]
            seen[cap] += ", health %s" % health_ok()
    finally:
        remove_dropin()
    ok = all(v == "named, health False" for v in seen.values()) and health_ok()
    return ok, seen


# ---- crash and restarts -----------------------------------------------------------------------

@check("SIGKILL of sandcelld: systemd restarts it, nothing of the old daemon is left")
def sigkill_restart():
    old_main = int(unit_property("MainPID"))
    old_pids = set(unit_pids())
    restarts = int(unit_property("NRestarts") or 0)
    os.kill(old_main, signal.SIGKILL)
    back = wait_for(lambda: unit_property("MainPID") not in ("0", str(old_main)) and
                    unit_property("ActiveState") == "active", 60)
    back = back and wait_for(health_ok, 60) and wait_for(
        lambda: 'msg="listening"' in journal(), 30)
    time.sleep(2)
    survivors = sorted(old_pids & set(unit_pids()))
    data = run_data("python3", "print('after restart')")
    return back and not survivors and data["stdout"] == "after restart\n" and \
        int(unit_property("NRestarts")) == restarts + 1, \
        "back=%s survivors=%s run=%s NRestarts=%s" % (back, survivors, data,
                                                      unit_property("NRestarts"))


DATA_DEBS = "/var/local/sandcell-test-debs"
CHART = """
import base64, io
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt

def main(n: int) -> dict:
    df = pd.DataFrame({"x": np.arange(n), "y": np.arange(n) ** 2})
    fig, ax = plt.subplots()
    ax.plot(df["x"], df["y"])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return {"sum": int(df["y"].sum()), "chart": base64.b64encode(buf.getvalue()).decode()}
"""


@check("apt install python3-numpy python3-pandas python3-matplotlib, restart: a Dify code "
       "node imports them and returns a chart as base64")
def data_packages():
    debs = sorted(glob.glob(os.path.join(DATA_DEBS, "*.deb")))
    # (without dpkg's fsync of every file: under TCG that alone takes minutes). Byte-compiling
    # the three packages under TCG took over 10 minutes on a busy 2-core host: 20 allowed
    p = sh(["apt-get", "install", "-y", "-q", "--no-install-recommends",
            "-o", "Dpkg::Options::=--force-unsafe-io"] + debs, check_rc=False, timeout=1200,
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if p.returncode != 0:
        return False, "%d debs: %s %s" % (len(debs), p.stderr[-2000:], p.stdout[-1000:])
    # TCG runs the three first imports (and matplotlib's font cache) at a fraction of a real
    # host's speed, where they take about a second: more time for the run, as an operator
    # of a slow host would give it (nginx's fastcgi_read_timeout is 60 s)
    cursor = journal_cursor()
    ready = restart_with_setting("worker_timeout", 50)
    t = time.monotonic()
    out = json.loads(dify_result("python3", dify.python3_script(CHART, {"n": 5})))
    took = time.monotonic() - t
    png = base64.b64decode(out["chart"])
    # what the import check found (it runs in the background after the restart; under TCG it
    # may not get through every module within worker_timeout): shown, not judged
    wait_for(lambda: "import check done" in journal(cursor), 240, 2)
    found = [l for l in journal(cursor).splitlines()
             if "cannot be imported" in l or "import check done" in l]
    return ready and out["sum"] == 30 and png.startswith(b"\x89PNG\r\n\x1a\n"), \
        "ready=%s sum=%s chart=%d bytes, starts %r, run %.1f s; import check: %s" % (
            ready, out["sum"], len(png), png[:8], took, found[-6:])


def slow_run():
    return run_data("python3", "import time\ntime.sleep(4)\nprint('finished')")


def wait_for_running_sandbox():
    return wait_for(lambda: metric("sandcell_workers_busy") == 1, 60, 0.1)


@check("systemctl restart with a run in flight: the run finishes, the new daemon serves")
def restart_in_flight():
    t, out = in_background(slow_run)
    running = wait_for_running_sandbox()
    cursor = journal_cursor()
    sh("systemctl restart sandcell")
    t.join(HTTP_TIMEOUT)
    wait_for(health_ok, 60)
    # the new daemon's first runs meet it filling its warm pools, starting its zygotes and
    # checking imports: under TCG that takes them past worker_timeout
    wait_until_settled(cursor)
    after = run_data("nodejs", "console.log('served')")["stdout"]
    return running and out.get("value", {}).get("stdout") == "finished\n" and \
        after == "served\n", "running=%s in-flight=%s after=%r" % (running, out, after)


@check("systemctl stop with a run in flight: the run finishes; no process, cgroup, pin left")
def stop_in_flight():
    t, out = in_background(slow_run)
    running = wait_for_running_sandbox()
    sh("systemctl stop sandcell")
    t.join(HTTP_TIMEOUT)
    left = [p for p in (PINS, "/run/sandcell") if os.path.exists(p)] + \
        ["pid %d" % p for p in unit_pids()] + sandbox_cgroups()
    sh("systemctl start sandcell")
    wait_for(health_ok, 60)
    return running and out.get("value", {}).get("stdout") == "finished\n" and not left, \
        "running=%s in-flight=%s left=%s" % (running, out, left)


# ---- purge and reinstall -----------------------------------------------------------------------

@check("apt purge (site removed first, as the README says) leaves nothing")
def purge():
    os.unlink("/etc/nginx/sites-enabled/sandcell")
    sh("systemctl reload nginx")
    p = sh(["apt-get", "purge", "-y", "-q", "sandcell"], check_rc=False,
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    left = leftovers()
    nginx_ok = sh("nginx -t", check_rc=False).returncode == 0
    return p.returncode == 0 and not left and nginx_ok, "rc=%d left=%s nginx -t ok=%s %s" % (
        p.returncode, left, nginx_ok, p.stderr[-1000:])


@check("reinstall: apt-get install again serves runs")
def reinstall():
    ok = install_package() and enable_site()
    data = run_data("python3", "print('again')") if ok else {}
    return ok and data.get("stdout") == "again\n", data


def main():
    os.makedirs(RESULTS, exist_ok=True)
    record("guest: kernel %s, systemd %s" % (
        os.uname().release, sh("systemctl --version").stdout.split()[1]), True,
        "cgroup2 only: %s; apparmor: %s" % (
            not [m for m in open("/proc/self/mountinfo") if " - cgroup " in m],
            open("/sys/module/apparmor/parameters/enabled").read().strip()
            if os.path.exists("/sys/module/apparmor/parameters/enabled") else "absent"))
    # the guest's network first, as on any server: a default route (to far), which pasta
    # copies into each network sandbox's namespace
    far, local = setup_far_hosts()
    if not (install_package() and enable_site()):
        write_results(complete=True)
        return
    wait_until_settled()
    for c in (health, wrong_key, python_run, node_run, dify_python, dify_javascript,
              dify_jinja2, v2_limits_in_place, memory_bombs, pids_limit, seccomp_marker,
              i386_syscall_killed, timeout_marker, output_marker, file_size_marker,
              tmp_noexec_and_proc, reply_bounded, private_network_namespace, no_sandbox_left):
        c()
    cursor, count = journal_cursor(), blocked_metric()
    egress_checks(far, local)
    egress_logged(cursor, count)
    cli_from_login_shell()
    check_reports_service()
    hardening_in_force()
    without_net_admin()
    each_required_capability()
    sigkill_restart()
    egress_checks(far, local, " after SIGKILL", ("python3",), EGRESS_BLOCKED[::3])
    restart_in_flight()
    stop_in_flight()
    purge()
    reinstall()
    # last: the packages' import check after its restart must not disturb the other checks
    data_packages()
    far.stop()
    local.stop()
    write_results(complete=True)


if __name__ == "__main__":
    main()
