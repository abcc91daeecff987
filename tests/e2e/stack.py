#!/usr/bin/python3
"""A private sandcell stack: a real sandcelld behind a real nginx.

Theory of operation
-------------------
A Stack owns one temporary prefix directory (mode 0755 so that nginx's
www-data workers can reach the socket in it):

    <prefix>/sandcell.conf          sandcelld's configuration (this stack's overrides)
    <prefix>/sandcelld.log          sandcelld's stderr
    <prefix>/run/                   sandcelld's run_dir; the FastCGI socket lives here
    <prefix>/conf/nginx.conf        written here: includes the shipped files below
    <prefix>/conf/sandcell-limits.conf, sandcell-site.conf, snippets/sandcell.conf
                                    the shipped nginx/ files with the socket path and the
                                    listen address replaced (the way an operator would sed them)
    <prefix>/conf/fastcgi_params, mime.types   copied from /etc/nginx
    <prefix>/logs/                  nginx's error and access logs, its pid file

start() runs `sandcelld --config <prefix>/sandcell.conf`, waits for the
`listening` log line, runs nginx in the foreground (`daemon off`, master as
root, workers as www-data) on a free loopback port, and waits until /health
answers. Both children run in their own session (a Ctrl-C on the terminal
reaches only this process, which then stops them in order) and get SIGTERM
if this process dies (PR_SET_PDEATHSIG).

stop() sends SIGTERM to nginx, then to sandcelld, by pid; waits; SIGKILLs
what is left after a deadline; checks that sandcelld left nothing behind
(its cgroups, sandbox processes) and records what it had to clean up in
`stop_problems`; removes the prefix. It is safe to call at any point,
also after a failed start.

Run as a program, `stack.py serve --builddir DIR --listen HOST:PORT` serves
until SIGINT/SIGTERM with the key from $API_KEY (default dify-sandbox);
this is what `./dev run` uses.

Environment: $NGINX (the nginx binary), $SANDCELL_E2E_NGINX_DIR (another
directory of nginx files to try instead of <srcdir>/nginx), $SANDCELL_E2E_KEEP
(keep the prefix with its logs after stop()), $ASAN_OPTIONS, $UBSAN_OPTIONS,
$LSAN_OPTIONS (passed on to sandcelld: `./dev sanitize`).

Standard library only: it runs under Debian's /usr/bin/python3.
"""

import argparse
import atexit
import ctypes
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SHIPPED_SOCKET = "unix:/run/sandcell/sandcell.sock"
SHIPPED_LISTEN = "127.0.0.1:8194"
NGINX_FILES = {
    # shipped file -> where nginx.conf (or the site) includes it from
    "sandcell-limits.conf": "sandcell-limits.conf",
    "sandcell-snippet.conf": "snippets/sandcell.conf",
    "sandcell-site.conf": "sandcell-site.conf",
}
# What the sanitized build (./dev sanitize) reads; passed on to sandcelld when set.
SANITIZER_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
# DifySandbox's environment names, passed through by `serve`.
DIFY_ENV = ("API_KEY", "MAX_WORKERS", "MAX_REQUESTS", "WORKER_TIMEOUT", "ENABLE_NETWORK",
            "ENABLE_PRELOAD", "PYTHON_PATH", "NODEJS_PATH", "HTTP_PROXY", "HTTPS_PROXY",
            "ALLOWED_SYSCALLS", "SANDCELL_CGROUP")
PR_SET_PDEATHSIG = 1

_counter = itertools.count()
live_stacks = []  # started and not yet stopped; conftest shows their logs on failure


@atexit.register
def _stop_live_stacks():
    """Last resort: whatever the caller did not stop is stopped when Python exits."""
    for s in list(live_stacks):
        s.stop()


class StackError(Exception):
    pass


def free_loopback_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def address_free(listen):
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


def _die_with_parent():
    """preexec_fn: own session, and SIGTERM when the process that started us dies."""
    os.setsid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except OSError:
        pass


def _as_the_unit_starts_it():
    """preexec_fn of sandcelld: _die_with_parent, under the packaged unit's UMask=0077
    (nothing of a jail may depend on the daemon's umask)."""
    _die_with_parent()
    os.umask(0o077)


def cgroup2_mount():
    """The cgroup v2 mount point, from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return left.split()[4]
    return None


def proc_cgroups(pid):
    """{hierarchy: path} from /proc/<pid>/cgroup; v2 under the key ''."""
    out = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(","):
                out[c] = path
    return out


def processes_with_uid_in(lo, hi):
    """[(pid, name, uids)] of processes having a uid in [lo, hi)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/status" % entry) as f:
                status = f.read()
        except OSError:
            continue
        name, uids = "?", []
        for line in status.splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Uid:"):
                uids = [int(x) for x in line.split()[1:]]
        if any(lo <= u < hi for u in uids):
            found.append((int(entry), name, uids))
    return found


SLOT_CGROUP = re.compile(r"slot-\d+(\.\d+)?$")


def is_slot_cgroup(cgroup_dir):
    """A slot's cgroup (jail/cgroup.c): slot-<k>, made at start and reused run after
    run, or slot-<k>.<g>, which replaced one that a run left populated."""
    return bool(SLOT_CGROUP.match(os.path.basename(cgroup_dir)))


def is_warm(cgroup_dir):
    """A warm sandbox (jail/pool.c), started ahead and still waiting for its code:
    a slot cgroup that holds exactly its init (uid 0) and an interpreter blocked
    in read(0, ...). A sandbox that runs code (or has left something behind) holds
    other tasks or none, so it does not pass."""
    if not is_slot_cgroup(cgroup_dir):
        return False
    pids = _read(os.path.join(cgroup_dir, "cgroup.procs")).split()
    if len(pids) != 2:
        return False
    reading = [p for p in pids if _read("/proc/%s/syscall" % p).startswith("0 0x0 ")]
    return len(reading) == 1


def in_warm_cgroup(pid):
    for line in _read("/proc/%d/cgroup" % pid).splitlines():
        if line.startswith("0::"):
            return is_warm(cgroup2_mount() + line[3:])
    return False


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def mount_table():
    """{mount id: 'mountpoint fstype source'} of this (the host's) mount namespace."""
    table = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            l, r = left.split(), right.split()
            table[l[0]] = "%s %s %s" % (l[4], r[0], r[1] if len(r) > 1 else "")
    return table


def cgroup_tree(path):
    """Every directory under path (not path itself), deepest first."""
    found = []
    for root, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            found.append(os.path.join(root, d))
    return found


def kill_cgroup(path):
    """Last-resort cleanup of a cgroup v2 tree sandcelld left: kill, then rmdir bottom-up."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    except OSError:
        pass
    for d in cgroup_tree(path) + [path]:
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


class Stack:
    """One sandcelld and one nginx in front of it, private to the caller."""

    def __init__(self, builddir, srcdir=None, nginx_dir=None, listen=None, api_key=None,
                 env=None, name="test", shipped_rates=False, rate=None, wrapper=None, **config):
        self.builddir = os.path.abspath(builddir)
        self.srcdir = os.path.abspath(srcdir or os.path.join(os.path.dirname(__file__), "..", ".."))
        self.nginx_dir = nginx_dir or os.environ.get("SANDCELL_E2E_NGINX_DIR") or \
            os.path.join(self.srcdir, "nginx")
        self.nginx_bin = os.environ.get("NGINX") or "nginx"
        self.sandcelld_bin = os.path.join(self.builddir, "sandcelld")
        n = next(_counter)
        self.key = api_key or "e2e-%s" % os.urandom(12).hex()
        # Something sandcelld has in its environment that no sandbox may see.
        self.secret = "sandcell-e2e-secret-%s" % os.urandom(8).hex()
        self.listen = listen
        # The functional tests send requests faster than a client should: unless asked for the
        # shipped rates, the limit_req rates are raised (zones, bursts and statuses stay as shipped).
        self.shipped_rates = shipped_rates
        # rate ("1r/s"): every limit_req rate lowered to it, for a test that floods the shipped
        # zones, bursts and bounds without sending more than the burst plus that rate
        self.rate = rate
        # argv put before sandcelld's (unshare, a cgroup, a seccomp filter: a fault to inject);
        # it must exec sandcelld in its own process, so that the pid stays sandcelld's
        self.wrapper = list(wrapper or [])
        self.prefix = None
        self.sandcelld = None
        self.nginx = None
        self.stop_problems = []
        self.sandcelld_rc = None
        self._baseline = None
        self._own_cgroups = None  # sandcelld's /proc/<pid>/cgroup, kept for after it exits
        self.config = {
            "api_key": self.key,
            "socket_group": "www-data",
            "socket_mode": "0660",
            "cgroup_name": "sandcell-%s-%d-%d" % (name, os.getpid(), n),
            # distinct uids per stack, also across concurrent test runs on the host
            # 32 uids per stack, 128 stacks per test process, 4096 test processes: a
            # stack's sandboxes never share a uid with another live stack's
            "uid_base": 2000000 + (os.getpid() % 4096) * 4096 + (n % 128) * 32,
            "drain_timeout": 5,
            # the zygote of this build, not an installed one
            "zygote_path": os.path.join(self.builddir, "sandcell-zygote"),
            # the import check at start-up takes a worker for seconds; the tests of
            # test_packages.py turn it on
            "check_imports": False,
        }
        if "uid_base" not in config and self._slots_for(config) > 32:
            raise ValueError("more than 32 sandbox slots would overlap another stack's uids")
        self.config.update(config)
        base_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        base_env.update({k: os.environ[k] for k in SANITIZER_ENV if os.environ.get(k)})
        if name == "test":
            base_env["SANDCELL_E2E_SECRET"] = self.secret
        base_env.update(env or {})
        self.env = base_env

    # ---- paths and facts ------------------------------------------------
    @property
    def run_dir(self):
        return self.config["run_dir"]

    @property
    def socket_path(self):
        return self.config["socket"]

    @property
    def conf_path(self):
        return os.path.join(self.prefix, "sandcell.conf")

    @property
    def log_path(self):
        return os.path.join(self.prefix, "sandcelld.log")

    @property
    def nginx_error_log(self):
        return os.path.join(self.prefix, "logs", "error.log")

    @property
    def url(self):
        return "http://%s" % self.listen

    @property
    def port(self):
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def uid_base(self):
        return int(self.config["uid_base"])

    @property
    def max_workers(self):
        return int(self.env.get("MAX_WORKERS") or self.config.get("max_workers", 4))

    @staticmethod
    def _slots_for(config):
        # jail/executor.c: runs at once, as many being torn down, and the most warm
        # sandboxes of each kind (2 languages, each with and without network);
        # fcgi/config.c: warm_sandboxes_max defaults to warm_sandboxes (a fixed pool)
        warm = int(config.get("warm_sandboxes", 2))
        ceiling = max(int(config.get("warm_sandboxes_max", warm)), warm)
        return 2 * int(config.get("max_workers", 4)) + 4 * ceiling

    @property
    def slots(self):
        """Sandboxes that may be alive at once: uids uid_base .. uid_base + slots - 1."""
        return self._slots_for(dict(self.config, max_workers=self.max_workers))

    def cgroup_parent(self):
        """The v2 parent cgroup of this stack's sandboxes."""
        mount = cgroup2_mount()
        own = self._own_cgroups.get("", "/")
        name = self.env.get("SANDCELL_CGROUP") or self.config["cgroup_name"]
        return os.path.normpath("%s/%s/%s" % (mount, own, name))

    def v1_parents(self):
        """Where sandcelld's v1 slot cgroups live on a hybrid host (may not exist)."""
        name = self.env.get("SANDCELL_CGROUP") or self.config["cgroup_name"]
        own = self._own_cgroups
        out = []
        for ctl in ("memory", "pids", "cpu"):
            if ctl in own and os.path.isdir("/sys/fs/cgroup/%s" % ctl):
                out.append(os.path.normpath("/sys/fs/cgroup/%s/%s/%s" % (ctl, own[ctl], name)))
        return out

    def log(self, limit=60):
        return _tail(self.log_path, limit)

    def nginx_log(self, limit=30):
        return _tail(self.nginx_error_log, limit)

    # ---- start ------------------------------------------------------------
    def start(self, timeout=30):
        live_stacks.append(self)
        try:
            self._make_prefix()
            self._write_sandcell_conf()
            self._start_sandcelld(timeout)
            self._start_nginx(timeout)
            self._baseline = self.snapshot()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_prefix(self):
        self.prefix = tempfile.mkdtemp(prefix="sandcell-e2e-")
        os.chmod(self.prefix, 0o755)
        for d in ("run", "conf", "conf/snippets", "logs", "tmp"):
            os.mkdir(os.path.join(self.prefix, d), 0o755)
        self.config.setdefault("run_dir", os.path.join(self.prefix, "run"))
        self.config.setdefault("socket", os.path.join(self.config["run_dir"], "sandcell.sock"))

    def _write_sandcell_conf(self):
        lines = ["# written by tests/e2e/stack.py"]
        for k, values in self.config.items():
            # a list: a key that may repeat (egress_rule), one line per item, in order
            for v in values if isinstance(values, list) else [values]:
                if isinstance(v, bool):
                    v = "true" if v else "false"
                v = str(v)
                if any(c in v for c in '"\n\\'):
                    raise ValueError("config value for %s cannot be written: %r" % (k, v))
                lines.append('%s = "%s"' % (k, v) if k == "api_key" else "%s = %s" % (k, v))
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.conf_path, 0o600)

    def _start_sandcelld(self, timeout):
        if not os.access(self.sandcelld_bin, os.X_OK):
            raise StackError("no sandcelld at %s (build first)" % self.sandcelld_bin)
        log = open(self.log_path, "wb")
        try:
            self.sandcelld = subprocess.Popen(
                self.wrapper + [self.sandcelld_bin, "--config", self.conf_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.prefix, close_fds=True,
                preexec_fn=_as_the_unit_starts_it)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "listening" in _read(self.log_path):
                self._own_cgroups = proc_cgroups(self.sandcelld.pid)
                return
            if self.sandcelld.poll() is not None:
                raise StackError("sandcelld exited with %s before listening:\n%s"
                         % (self.sandcelld.returncode, self.log()))
            time.sleep(0.05)
        raise StackError("sandcelld did not log `listening` within %ss:\n%s" % (timeout, self.log()))

    def restart_sandcelld(self, sig=signal.SIGKILL, timeout=30):
        """Ends sandcelld with sig (SIGKILL plays a crash) and starts it again with the same
        configuration; nginx stays. The old log is kept as sandcelld.log.<n>. Returns the
        old sandcelld's exit status."""
        proc = self.sandcelld
        proc.send_signal(sig)
        try:
            proc.wait(float(self.config.get("drain_timeout", 20)) + 10)
        except subprocess.TimeoutExpired:
            self.stop_problems.append("sandcelld did not exit after signal %d" % sig)
            proc.kill()
            proc.wait()
        n = len([f for f in os.listdir(self.prefix) if f.startswith("sandcelld.log.")])
        os.rename(self.log_path, "%s.%d" % (self.log_path, n))
        self._start_sandcelld(timeout)
        return proc.returncode

    def _write_nginx_conf(self):
        conf = os.path.join(self.prefix, "conf")
        for name in ("fastcgi_params", "mime.types"):
            shutil.copy("/etc/nginx/%s" % name, os.path.join(conf, name))
        for shipped, dest in NGINX_FILES.items():
            src = os.path.join(self.nginx_dir, shipped)
            if not os.path.exists(src):
                raise StackError("shipped nginx file missing: %s" % src)
            with open(src) as f:
                text = self._substitute(f.read())
            if self.rate:
                text = re.sub(r"\brate=\d+r/[sm]\b", "rate=" + self.rate, text)
            elif not self.shipped_rates:
                text = re.sub(r"\brate=\d+r/[sm]\b", "rate=100000r/s", text)
                text = re.sub(r"(limit_conn sandcell_conn_\w+) \d+;", r"\1 60000;", text)
            with open(os.path.join(conf, dest), "w") as f:
                f.write(text)
        with open(os.path.join(conf, "nginx.conf"), "w") as f:
            f.write(NGINX_CONF % {"prefix": self.prefix})

    def _substitute(self, text):
        """What an operator does with sed: point the shipped files at this stack."""
        text = text.replace(SHIPPED_SOCKET, "unix:" + self.socket_path)
        text = text.replace(SHIPPED_LISTEN, self.listen)
        text = text.replace("/etc/nginx/", os.path.join(self.prefix, "conf") + "/")
        text = text.replace("/var/log/nginx/", os.path.join(self.prefix, "logs") + "/")
        return text

    def _start_nginx(self, timeout):
        fixed = self.listen is not None
        if fixed and not address_free(self.listen):
            raise StackError("%s is already in use" % self.listen)
        for attempt in range(5):
            if not fixed:
                self.listen = "127.0.0.1:%d" % free_loopback_port()
            self._write_nginx_conf()
            with open(os.path.join(self.prefix, "logs", "nginx.stderr"), "wb") as err:
                self.nginx = subprocess.Popen(
                    [self.nginx_bin, "-p", self.prefix + "/", "-c", "conf/nginx.conf",
                     "-e", self.nginx_error_log],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    # a clean environment: nginx reads $NGINX as inherited listen sockets
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                    cwd=self.prefix, close_fds=True, preexec_fn=_die_with_parent)
            if self._wait_health(timeout):
                return
            self._stop_nginx()
            if fixed or "Address already in use" not in self.nginx_log():
                break
        raise StackError("nginx did not answer /health on %s:\n%s\n%s\nsandcelld:\n%s" % (
            self.listen, _read(os.path.join(self.prefix, "logs", "nginx.stderr")),
            self.nginx_log(), self.log(20)))

    def _wait_health(self, timeout):
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while time.monotonic() < deadline:
            if self.nginx.poll() is not None:
                return False
            try:
                with opener.open(self.url + "/health", timeout=2) as r:
                    # our nginx answered (not another server that took the port)
                    if r.status == 200 and r.read() == b'"ok"' and \
                            "/health" in _read(os.path.join(self.prefix, "logs", "access.log")):
                        return self.nginx.poll() is None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    # ---- what a run may leave behind -----------------------------------------
    def snapshot(self):
        """The state leftovers() compares against: taken when the stack is ready."""
        files = set()
        for root, dirs, names in os.walk(self.run_dir):
            for n in dirs + names:
                files.add(os.path.join(root, n))
        files.discard(self.socket_path)
        parent = self.cgroup_parent()
        return {
            "mounts": mount_table(),
            "files": files,
            "cgroups": set(cgroup_tree(parent)) if os.path.isdir(parent) else set(),
        }

    def leftovers(self):
        """What is left of earlier runs right now: a list of readable problems."""
        problems = []
        hi = self.uid_base + self.slots
        # warm sandboxes wait for the next request: not left of a run
        for pid, name, uids in processes_with_uid_in(self.uid_base, hi):
            if not in_warm_cgroup(pid):
                problems.append("process %d (%s) with uids %s still runs" % (pid, name, uids))
        parent = self.cgroup_parent()
        if os.path.isdir(parent):
            for cg in cgroup_tree(parent):
                if cg not in self._baseline["cgroups"] and not is_warm(cg):
                    problems.append("cgroup %s still exists" % cg)
            for cg in [parent] + cgroup_tree(parent):
                if is_warm(cg):
                    continue
                procs = _read(os.path.join(cg, "cgroup.procs")).split()
                if procs:
                    problems.append("cgroup %s still holds pids %s" % (cg, " ".join(procs)))
        # mounts of this stack's making only: every jail's root is built under run_dir (in
        # the jail's own mount namespace; one that leaked would show there), the rest of the
        # stack lives in its prefix; what other programs on a busy host mount is not ours
        ours = tuple(os.path.join(d, "") for d in (self.prefix, self.run_dir))
        for mid, desc in mount_table().items():
            if mid not in self._baseline["mounts"] and (desc.split()[0] + "/").startswith(ours):
                problems.append("new mount on the host: %s" % desc)
        for root, dirs, names in os.walk(self.run_dir):
            for n in dirs + names:
                p = os.path.join(root, n)
                if p != self.socket_path and p not in self._baseline["files"]:
                    problems.append("file left in run_dir: %s" % p)
        return problems

    def wait_no_leftovers(self, timeout=10):
        """[] once nothing is left (polling: release may finish just after the answer)."""
        deadline = time.monotonic() + timeout
        while True:
            problems = self.leftovers()
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.1)

    # ---- stop -------------------------------------------------------------
    def _stop_nginx(self, timeout=10):
        if self.nginx is None:
            return
        if self.nginx.poll() is None:
            workers = children_of(self.nginx.pid)
            self.nginx.send_signal(signal.SIGTERM)
            try:
                self.nginx.wait(timeout)
            except subprocess.TimeoutExpired:
                self.stop_problems.append("nginx ignored SIGTERM for %ss" % timeout)
                for pid in workers:
                    _kill(pid)
                self.nginx.kill()
                self.nginx.wait()
        self.nginx = None

    def _stop_sandcelld(self):
        if self.sandcelld is None:
            return
        proc = self.sandcelld
        if self._own_cgroups is None and proc.poll() is None:
            self._own_cgroups = proc_cgroups(proc.pid)
        parent = self.cgroup_parent() if self._own_cgroups else None
        v1 = self.v1_parents() if self._own_cgroups else []
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            grace = float(self.config.get("drain_timeout", 20)) + 10
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.stop_problems.append("sandcelld did not exit within %ss of SIGTERM" % grace)
                proc.kill()
                proc.wait()
        self.sandcelld_rc = proc.returncode
        self._clean_after_sandcelld(parent, v1)
        self.sandcelld = None

    def _clean_after_sandcelld(self, parent, v1):
        """Whatever sandcelld should have removed on exit: record it, then remove it."""
        hi = self.uid_base + self.slots
        for pid, name, uids in processes_with_uid_in(self.uid_base, hi):
            self.stop_problems.append("sandbox process %d (%s) outlived sandcelld" % (pid, name))
            _kill(pid)
        if parent and os.path.isdir(parent):
            self.stop_problems.append("cgroup %s outlived sandcelld" % parent)
            kill_cgroup(parent)
        for p in v1:
            if os.path.isdir(p):
                self.stop_problems.append("v1 cgroup %s outlived sandcelld" % p)
                for d in cgroup_tree(p) + [p]:
                    try:
                        os.rmdir(d)
                    except OSError:
                        pass

    def stop(self):
        try:
            self._stop_nginx()
        finally:
            try:
                self._stop_sandcelld()
            finally:
                if self in live_stacks:
                    live_stacks.remove(self)
                if self.prefix and not os.environ.get("SANDCELL_E2E_KEEP"):
                    shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


NGINX_CONF = """\
# written by tests/e2e/stack.py: a private nginx around the shipped sandcell files
user www-data;
worker_processes 2;
daemon off;
pid %(prefix)s/logs/nginx.pid;
error_log %(prefix)s/logs/error.log;

events {
    worker_connections 512;
}

http {
    include mime.types;
    default_type application/octet-stream;
    access_log %(prefix)s/logs/access.log;
    client_body_temp_path %(prefix)s/tmp/body;
    fastcgi_temp_path %(prefix)s/tmp/fastcgi;
    proxy_temp_path %(prefix)s/tmp/proxy;
    uwsgi_temp_path %(prefix)s/tmp/uwsgi;
    scgi_temp_path %(prefix)s/tmp/scgi;

    include sandcell-limits.conf;
    include sandcell-site.conf;
}
"""


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _tail(path, limit):
    return "\n".join(_read(path).splitlines()[-limit:])


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---- `serve`: what ./dev run execs -------------------------------------------
def serve(args):
    key = os.environ.get("API_KEY") or "dify-sandbox"
    env = {k: os.environ[k] for k in DIFY_ENV if os.environ.get(k)}
    env["API_KEY"] = key
    listen = args.listen or os.environ.get("SANDCELL_LISTEN") or SHIPPED_LISTEN
    stop_now = []

    def on_signal(signum, frame):
        stop_now.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(args.builddir, srcdir=args.srcdir, listen=listen, api_key=key, env=env,
                  name="dev", shipped_rates=True, uid_base=1900000, drain_timeout=20,
                  check_imports=True)  # as shipped: the tests turn it off
    try:
        stack.start()
        print("sandcell is serving on %s" % stack.url, flush=True)
        print("API key: %s   (X-Api-Key header; set API_KEY to change it)" % key, flush=True)
        print("logs: %s and %s; Ctrl-C stops" % (stack.log_path, stack.nginx_error_log), flush=True)
        while not stop_now:
            for what, proc in (("sandcelld", stack.sandcelld), ("nginx", stack.nginx)):
                if proc.poll() is not None:
                    log = stack.log() if what == "sandcelld" else stack.nginx_log()
                    print("%s exited with %s:\n%s" % (what, proc.returncode, log),
                          file=sys.stderr, flush=True)
                    stop_now.append(0)
            time.sleep(0.2)
    except StackError as e:
        print("cannot start sandcell: %s" % e, file=sys.stderr)
        return 1
    finally:
        print("stopping...", file=sys.stderr, flush=True)
        stack.stop()
        for p in stack.stop_problems:
            print("warning: %s" % p, file=sys.stderr)
    return 0 if stop_now and stop_now[0] else 1


def main(argv):
    p = argparse.ArgumentParser(prog="stack.py", description="run a private sandcell stack")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve sandcelld behind nginx until SIGINT/SIGTERM")
    s.add_argument("--builddir", required=True, help="where sandcelld was built")
    s.add_argument("--srcdir", help="the source tree (default: two levels above this file)")
    s.add_argument("--listen", help="HOST:PORT (default $SANDCELL_LISTEN or 127.0.0.1:8194)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("stack.py serve needs root (nginx master, sandcelld jails)", file=sys.stderr)
        return 1
    return serve(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
