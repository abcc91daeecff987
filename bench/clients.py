"""The two kinds of client the load calls: one that asks sandcell through nginx over a
kept-alive HTTP connection, and one that spawns the interpreter itself (bare, or under
bubblewrap). Each call returns "ok", "refused" or "failed: <why>" (see load.py).
"""
import http.client
import json
import os
import subprocess

CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
HTTP_TIMEOUT = 120  # seconds; guards against a hung service, never a timing assertion

# nginx's own 429 (the snippet's envelope) and sandcelld's 503: the two ways of saying no
REFUSALS = {
    429: {"code": -429, "message": "Too many requests, slow down", "data": None},
    503: {"code": -503, "message": "Too many requests", "data": None},
}

# bubblewrap as a user would script it around the same command (PLATFORM.md); Debian's
# alternatives links too, which numpy's libblas.so.3 goes through, and matplotlibrc
BWRAP = ["/usr/bin/bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr",
         "--ro-bind", "/etc/alternatives", "/etc/alternatives",
         "--ro-bind-try", "/etc/matplotlibrc", "/etc/matplotlibrc",
         "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
         "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev",
         "--tmpfs", "/tmp", "--setenv", "HOME", "/tmp", "--uid", "65534", "--gid", "65534", "--"]


def have_bwrap():
    return os.access(BWRAP[0], os.X_OK)


class SandcellClient:
    """POST /v1/sandbox/run of one program, again and again, on one HTTP/1.1 connection
    (http.client reconnects by itself when nginx closes it, e.g. after keepalive_requests)."""

    def __init__(self, host, port, key, program, network):
        self.host, self.port = host, port
        self.program = program
        self.body = json.dumps({"language": program.language, "code": program.code,
                                "enable_network": network}).encode()
        self.headers = {"X-Api-Key": key, "Content-Type": "application/json"}
        self.conn = None

    def __call__(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            self.conn.request("POST", "/v1/sandbox/run", self.body, self.headers)
            r = self.conn.getresponse()
            status, raw = r.status, r.read()
        except (http.client.HTTPException, OSError) as e:
            self.close()
            return "failed: %s" % type(e).__name__
        return self.judge(status, raw)

    def judge(self, status, raw):
        try:
            answer = json.loads(raw)
        except ValueError:
            return "failed: HTTP %d, not JSON" % status
        if status in REFUSALS and answer == REFUSALS[status]:
            return "refused"
        if status != 200 or answer.get("code") != 0:
            return "failed: HTTP %d %s" % (status, raw[:120].decode(errors="replace"))
        data = answer["data"]
        if data.get("exit_code") != 0 or data.get("stdout") != self.program.stdout:
            return "failed: exit %s, stdout %r, error %r" % (
                data.get("exit_code"), data.get("stdout", "")[:60], data.get("error", "")[:120])
        return "ok"

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Spawner:
    """Starts the program's interpreter directly (fork + exec + wait), in a clean
    environment, optionally under a wrapper (bubblewrap)."""

    def __init__(self, program, wrapper=()):
        self.argv = list(wrapper) + program.bare_argv()
        self.stdout = program.stdout

    def __call__(self):
        r = subprocess.run(self.argv, env=CLEAN_ENV, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode != 0 or r.stdout != self.stdout:
            return "failed: exit %d, %s" % (r.returncode, r.stderr.strip()[-120:])
        return "ok"
