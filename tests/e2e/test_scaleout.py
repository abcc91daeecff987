"""Scale-out: several sandcelld responders on TCP behind one nginx upstream.

Two responders listen on loopback TCP (no unix socket). nginx's configuration is the shipped
snippet with `fastcgi_pass` pointed at an `upstream` of both, plus keep-alive and
`fastcgi_next_upstream error timeout non_idempotent`, as nginx/README.md tells operators. Under
a bounded load one responder is SIGKILLed; every request must still be answered correctly (by
the other). The killed one is then restarted with the same configuration, as systemd's
Restart=on-failure would, which removes what the crash left; at the end nothing is left.
"""

import concurrent.futures
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import stack as stackmod
from conftest import builddir, srcdir, _session, HTTP_TIMEOUT

KEY = "scaleout-%s" % os.urandom(8).hex()
UID_BASE = 5000000 + (os.getpid() % 1000) * 64
REQUESTS = 200
CONCURRENCY = 8


def free_listen_port():
    """A free loopback port below the ephemeral range. A port from that range (what binding
    port 0 gives) can be taken, once its responder is killed, as the local port of one of
    nginx's connections to the other responder, and the restart would find it in use."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(200):
        port = random.randrange(10000, low)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port below %d" % low)


class Responder:
    def __init__(self, prefix, index, **extra):
        self.port = free_listen_port()
        self.dir = os.path.join(prefix, "responder%d" % index)
        os.makedirs(self.dir, 0o755)
        self.uid_base = UID_BASE + index * 16
        self.cgroup_name = "sandcell-scaleout-%d-%d" % (os.getpid(), index)
        self.config = {
            "api_key": KEY, "socket": "", "listen": "127.0.0.1:%d" % self.port,
            "allow_clients": "127.0.0.1", "run_dir": os.path.join(self.dir, "run"),
            "cgroup_name": self.cgroup_name, "uid_base": self.uid_base,
            "max_workers": 2, "drain_timeout": 5,
        }
        self.config.update(extra)
        self.conf = os.path.join(self.dir, "sandcell.conf")
        with open(self.conf, "w") as f:
            for k, v in self.config.items():
                f.write("%s = %s\n" % (k, v))
        self.log = os.path.join(self.dir, "sandcelld.log")
        self.proc = None
        self.cgroups = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [os.path.join(builddir(), "sandcelld"), "--config", self.conf],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, close_fds=True,
                preexec_fn=stackmod._die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if stackmod._read(self.log).count("msg=\"listening\"") > self.starts():
                self.cgroups = stackmod.proc_cgroups(self.proc.pid)
                return self
            if self.proc.poll() is not None:
                holders = subprocess.run(["ss", "-ltnpH", "sport = :%d" % self.port],
                                         capture_output=True, text=True).stdout
                raise AssertionError("responder exited:\n%s\nport %d held by: %s" % (
                    stackmod._read(self.log)[-3000:], self.port, holders or "nobody"))
            time.sleep(0.05)
        raise AssertionError("responder did not listen:\n" + stackmod._read(self.log))

    def starts(self):
        return getattr(self, "_starts", 0)

    def mark_started(self):
        self._starts = stackmod._read(self.log).count("msg=\"listening\"")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def leftovers(self):
        problems = []
        for pid, name, uids in stackmod.processes_with_uid_in(self.uid_base, self.uid_base + 16):
            problems.append("process %d (%s) uids %s" % (pid, name, uids))
        own = (self.cgroups or {}).get("", "/")
        parent = os.path.normpath("%s/%s/%s" % (stackmod.cgroup2_mount(), own, self.cgroup_name))
        if os.path.isdir(parent):
            problems.append("cgroup %s" % parent)
        for ctl in ("memory", "pids", "cpu"):
            if self.cgroups and ctl in self.cgroups:
                p = os.path.normpath("/sys/fs/cgroup/%s/%s/%s" % (ctl, self.cgroups[ctl],
                                                                  self.cgroup_name))
                if os.path.isdir(p):
                    problems.append("v1 cgroup %s" % p)
        run = self.config["run_dir"]
        if os.path.isdir(run) and os.listdir(run):
            problems.append("files in %s: %s" % (run, os.listdir(run)))
        return problems

    def clean(self):
        """Last resort after a failed test: what a crashed responder can leave."""
        for pid, _, _ in stackmod.processes_with_uid_in(self.uid_base, self.uid_base + 16):
            stackmod._kill(pid)
        if self.cgroups:
            own = self.cgroups.get("", "/")
            stackmod.kill_cgroup(os.path.normpath("%s/%s/%s" % (
                stackmod.cgroup2_mount(), own, self.cgroup_name)))
            for ctl in ("memory", "pids", "cpu"):
                if ctl in self.cgroups:
                    p = os.path.normpath("/sys/fs/cgroup/%s/%s/%s" % (
                        ctl, self.cgroups[ctl], self.cgroup_name))
                    for d in stackmod.cgroup_tree(p) + [p]:
                        try:
                            os.rmdir(d)
                        except OSError:
                            pass


UPSTREAM = """\
upstream sandcell_pool {
    server 127.0.0.1:%(p1)d max_fails=1 fail_timeout=30s;
    server 127.0.0.1:%(p2)d max_fails=1 fail_timeout=30s;
    keepalive 8;
}
"""


def nginx_conf(prefix, ports, listen):
    """The shipped files, pointed at the upstream the way nginx/README.md shows."""
    conf = os.path.join(prefix, "conf")
    os.makedirs(os.path.join(conf, "snippets"))
    for d in ("logs", "tmp"):
        os.makedirs(os.path.join(prefix, d))
    for name in ("fastcgi_params", "mime.types"):
        shutil.copy("/etc/nginx/%s" % name, conf)
    nginx_dir = os.path.join(srcdir(), "nginx")
    with open(os.path.join(nginx_dir, "sandcell-snippet.conf")) as f:
        snippet = f.read()
    shipped_pass = "fastcgi_pass unix:/run/sandcell/sandcell.sock;"
    assert shipped_pass in snippet
    snippet = snippet.replace(shipped_pass, "fastcgi_pass sandcell_pool;\n"
                              "\tfastcgi_keep_conn on;\n"
                              "\tfastcgi_next_upstream error timeout non_idempotent;")
    with open(os.path.join(conf, "snippets", "sandcell.conf"), "w") as f:
        f.write(snippet)
    with open(os.path.join(nginx_dir, "sandcell-limits.conf")) as f:
        limits = f.read()
    import re
    with open(os.path.join(conf, "sandcell-limits.conf"), "w") as f:
        f.write(re.sub(r"\brate=\d+r/[sm]\b", "rate=100000r/s", limits))
    with open(os.path.join(nginx_dir, "sandcell-site.conf")) as f:
        site = f.read().replace("127.0.0.1:8194", listen)
    with open(os.path.join(conf, "sandcell-site.conf"), "w") as f:
        f.write(site)
    with open(os.path.join(conf, "nginx.conf"), "w") as f:
        f.write(stackmod.NGINX_CONF.replace("include sandcell-site.conf;",
                                            "include upstream.conf;\n    include sandcell-site.conf;")
                % {"prefix": prefix})
    with open(os.path.join(conf, "upstream.conf"), "w") as f:
        f.write(UPSTREAM % {"p1": ports[0], "p2": ports[1]})


@pytest.fixture
def pool():
    prefix = tempfile.mkdtemp(prefix="sandcell-scaleout-")
    os.chmod(prefix, 0o755)
    responders = [Responder(prefix, 0), Responder(prefix, 1)]
    nginx = None
    try:
        for r in responders:
            r.start()
            r.mark_started()
        listen = "127.0.0.1:%d" % stackmod.free_loopback_port()
        nginx_conf(prefix, [r.port for r in responders], listen)
        nginx = subprocess.Popen(["nginx", "-p", prefix + "/", "-c", "conf/nginx.conf",
                                  "-e", os.path.join(prefix, "logs", "error.log")],
                                 stdin=subprocess.DEVNULL, env={"PATH": "/usr/sbin:/usr/bin"},
                                 close_fds=True, preexec_fn=stackmod._die_with_parent)
        url = "http://" + listen
        deadline = time.monotonic() + 20
        while True:
            try:
                if _session.get(url + "/health", timeout=2).status_code == 200:
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline and nginx.poll() is None, \
                stackmod._read(os.path.join(prefix, "logs", "error.log"))
            time.sleep(0.05)
        yield {"url": url, "responders": responders, "prefix": prefix}
    finally:
        if nginx and nginx.poll() is None:
            nginx.send_signal(signal.SIGTERM)
            nginx.wait(20)
        for r in responders:
            r.stop()
            r.clean()
        shutil.rmtree(prefix, ignore_errors=True)


def run(url, i):
    if i % 2:
        body = {"language": "python3", "code": "print(%d * 3)" % i}
    else:
        body = {"language": "nodejs", "code": "console.log(%d * 3)" % i}
    r = _session.post(url + "/v1/sandbox/run", json=body, headers={"X-Api-Key": KEY},
                      timeout=HTTP_TIMEOUT)
    return i, r.status_code, r.text


def test_one_responder_dies_mid_load(pool):
    url, (victim, survivor) = pool["url"], pool["responders"]
    done = []
    killed = threading.Event()

    def run_and_maybe_kill(i):
        result = run(url, i)
        done.append(i)
        if len(done) == REQUESTS // 4 and not killed.is_set():
            killed.set()
            os.kill(victim.proc.pid, signal.SIGKILL)
        return result

    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as ex:
        results = list(ex.map(run_and_maybe_kill, range(REQUESTS)))
    assert killed.is_set()
    victim.proc.wait(10)
    bad = [(i, s, t[:200]) for i, s, t in results
           if s != 200 or '"stdout":"%d\\n"' % (i * 3) not in t or '"exit_code":0' not in t]
    assert not bad, bad[:10]
    # both served: the victim before it died, the survivor throughout
    assert "outcome=ok" in stackmod._read(victim.log)
    assert stackmod._read(survivor.log).count("outcome=ok") >= REQUESTS // 2

    # what systemd would do: start it again; it removes the crashed instance's cgroups
    victim.start()
    victim.mark_started()
    for i in range(4):
        assert run(url, i)[1] == 200
    for r in (victim, survivor):
        assert r.stop() == 0, stackmod._read(r.log)[-2000:]
    for r in (victim, survivor):
        assert r.leftovers() == [], r.leftovers()


def test_clients_outside_allow_clients_are_refused(tmp_path):
    r = Responder(str(tmp_path), 7, allow_clients="10.0.0.0/8")
    try:
        r.start()
        with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
            s.settimeout(10)
            # closed at once, before anything is read: recv sees EOF (or a reset)
            try:
                data = s.recv(1)
            except ConnectionResetError:
                data = b""
            assert data == b""
        deadline = time.monotonic() + 5
        while "client refused" not in stackmod._read(r.log):
            assert time.monotonic() < deadline, stackmod._read(r.log)
            time.sleep(0.05)
        assert "client=127.0.0.1:" in stackmod._read(r.log)
        assert r.stop() == 0
        assert r.leftovers() == []
    finally:
        r.stop()
        r.clean()
