"""The request mix of the soak test: what each kind of run sends and what its answer must be.

A kind is one outcome (normal, error, timeout, memory bomb, output flood, network refused)
in one language. Every program first prints its run's token (a fresh random string) and
flushes it, so each answer must carry its own token and no other. check() returns None if
the answer is right for the kind, else a readable reason.

Sizes follow the soak stack (soak.py): worker_timeout TIMEOUT, memory_limit 128m,
output_limit OUTPUT_LIMIT. The memory bomb touches 1 GiB at once, so it meets the 128 MiB
limit after a few hundred milliseconds of page faults (seconds on a loaded host), far
below TIMEOUT; the flood meets the output limit just as fast.

Network: the refused kinds connect only to 127.0.0.1 (a port of soak.py's own listeners),
once without network (the sandbox's socket is refused) and once with enable_network (the
egress policy denies loopback). Nothing leaves the machine even if a block failed.
"""

import os
import random
import re

TIMEOUT = 20                # worker_timeout of the soak stack (seconds)
OUTPUT_LIMIT = 64 * 1024    # output_limit of the soak stack (bytes)
TOKEN = re.compile(r"soak-[0-9a-f]{24}")
PY_EXCEPTION_EXIT = 255     # API.md: an uncaught exception exits 255, as in DifySandbox


def new_token():
    return "soak-" + os.urandom(12).hex()


def error_lines(data):
    return data["error"].split("\n")


def exited_line(data):
    """API.md: a non-empty error begins with `process exited with code N`."""
    first = error_lines(data)[0]
    if first != "process exited with code %d" % data["exit_code"]:
        return "error does not begin with the exit line: %r" % data["error"][:200]
    return None


def has_marker(data, marker, *absent):
    lines = error_lines(data)
    if marker not in lines:
        return "no %r in error: %r" % (marker, data["error"][:300])
    for a in absent:
        if a in lines:
            return "unexpected %r in error: %r" % (a, data["error"][:300])
    return exited_line(data)


# ---- the programs: %(t)s is the token, %(port)d a loopback port ---------------------------
PY = {
    "normal": "import sys\nprint(%(t)r)\nsys.stderr.write(%(t)r + '\\n')\n",
    "exception": "print(%(t)r, flush=True)\nraise ValueError(%(t)r)\n",
    "exit": "import sys\nprint(%(t)r, flush=True)\nsys.exit(3)\n",
    "timeout": "print(%(t)r, flush=True)\nwhile True:\n    pass\n",
    "memory": "print(%(t)r, flush=True)\na = b'x' * (1 << 30)\nprint('survived', len(a))\n",
    "flood": "import sys\nprint(%(t)r, flush=True)\nwhile True:\n    sys.stdout.write('x' * 4096)\n",
    "refused": ("import errno, socket\nprint(%(t)r, flush=True)\n"
                "try:\n"
                "    s = socket.socket()\n"
                "    s.settimeout(3)\n"
                "    s.connect(('127.0.0.1', %(port)d))\n"
                "    print('connected')\n"
                "except OSError as e:\n"
                "    print('refused', errno.errorcode.get(e.errno, e.errno))\n"),
}

NODE = {
    "normal": "console.log(%(j)s);\nconsole.error(%(j)s);\n",
    "exception": "console.log(%(j)s);\nthrow new Error(%(j)s);\n",
    "exit": "console.log(%(j)s);\nprocess.exit(3);\n",
    "timeout": "console.log(%(j)s);\nfor (;;) {}\n",
    "memory": ("console.log(%(j)s);\nconst a = Buffer.alloc(1 << 30, 1);\n"
               "console.log('survived', a.length);\n"),
    "flood": ("console.log(%(j)s);\nconst s = 'x'.repeat(4096);\n"
              "for (;;) process.stdout.write(s);\n"),
    "refused": ("const net = require('net');\nconsole.log(%(j)s);\n"
                "const s = net.connect({ host: '127.0.0.1', port: %(port)d });\n"
                "s.on('connect', () => { console.log('connected'); s.destroy(); });\n"
                "s.on('error', (e) => console.log('refused', e.code));\n"),
}


# ---- what each answer must be ---------------------------------------------------------------
def check_normal(data, token):
    want = {"stdout": token + "\n", "stderr": token + "\n", "error": "", "exit_code": 0}
    return None if data == want else "want %r, got %r" % (want, data)


def check_exception(data, token, language):
    if data["exit_code"] == 0:
        return "an uncaught exception exited 0"
    if language == "python3" and data["exit_code"] != PY_EXCEPTION_EXIT:
        return "python3 exception exited %d, not %d" % (data["exit_code"], PY_EXCEPTION_EXIT)
    if token not in data["stderr"] or not data["error"].endswith(data["stderr"]):
        return "the exception is not in stderr and at the end of error: %r" % data["error"][:300]
    return exited_line(data)


def check_exit(data, token):
    if data["exit_code"] != 3 or data["stdout"] != token + "\n":
        return "want exit 3 and the token, got %r" % data
    return exited_line(data)


def check_timeout(data, token):
    if data["exit_code"] != -1 or data["stdout"] != token + "\n":
        return "want exit -1 and the token, got %r" % data
    return has_marker(data, "error: timeout")


def check_memory(data, token):
    if data["exit_code"] == 0 or "survived" in data["stdout"]:
        return "the memory bomb survived: %r" % data
    return has_marker(data, "error: memory limit exceeded", "error: timeout")


def check_flood(data, token):
    out = data["stdout"]
    if data["exit_code"] != -1:
        return "flood exited %d, not -1" % data["exit_code"]
    if not out.startswith(token + "\n") or len(out.encode()) > OUTPUT_LIMIT:
        return "flood stdout: %d bytes beginning %r" % (len(out), out[:80])
    if set(out[len(token) + 1:]) - {"x"}:
        return "flood stdout corrupted"
    return has_marker(data, "error: output limit exceeded", "error: timeout")


def check_refused(data, token):
    lines = data["stdout"].split("\n")
    if data["exit_code"] != 0 or data["error"] != "" or lines[0] != token:
        return "want exit 0 and the token, got %r" % data
    if len(lines) < 2 or not lines[1].startswith("refused "):
        return "the connect to 127.0.0.1 was not refused: %r" % data["stdout"][:200]
    return None


class Kind:
    """One outcome in one language."""

    def __init__(self, outcome, language, program, check, weight=1.0, network=False):
        self.outcome = outcome            # the row of the summary
        self.language = language
        self.program = program
        self.check_data = check
        self.weight = weight
        self.network = network

    @property
    def name(self):
        return "%s/%s" % (self.outcome, self.language)

    def body(self, token, port):
        import json
        code = self.program % {"t": token, "j": json.dumps(token), "port": port}
        return {"language": self.language, "code": code, "enable_network": self.network}

    def check(self, data, token):
        if self.check_data is check_exception:
            return check_exception(data, token, self.language)
        return self.check_data(data, token)


def kinds():
    """The mix. A timeout holds a worker for TIMEOUT seconds, the other kinds for a fraction
    of one: timeouts are drawn less often so that they do not take every worker."""
    out = []
    for language, programs in (("python3", PY), ("nodejs", NODE)):
        out += [
            Kind("normal", language, programs["normal"], check_normal, 4),
            Kind("error", language, programs["exception"], check_exception, 1),
            Kind("error", language, programs["exit"], check_exit, 1),
            Kind("timeout", language, programs["timeout"], check_timeout, 0.3),
            Kind("memory", language, programs["memory"], check_memory, 1),
            Kind("flood", language, programs["flood"], check_flood, 1),
            Kind("refused", language, programs["refused"], check_refused, 1),
            Kind("refused-policy", language, programs["refused"], check_refused, 1, network=True),
        ]
    return out


def chooser(seed=None):
    """A function that draws a kind by weight."""
    ks = kinds()
    rng = random.Random(seed)
    weights = [k.weight for k in ks]
    return lambda: rng.choices(ks, weights)[0]
