"""sandcelld's request path under valgrind, behind the real nginx of tests/e2e/stack.py.

The daemon is tests/valgrind/sandcelld-nojail (Makefile.am): fcgi/ as sandcelld links it,
with tests/fuzz/jail_stub.c and tests/valgrind/nojail.c in place of the executor (jail/) and
the eBPF egress loader (bpf/), which Debian 12's valgrind cannot run (no seccomp(2); see
nojail.c). A run answers stdout = its code, stderr = its preload, exit code 0; no program
runs. It is started as `valgrind --leak-check=full ... sandcelld-nojail`, sent a mix of
good, bad and broken requests (and runs that end in every way the API describes, as the
stub's "#stub ..." code asks), stopped with SIGTERM, and valgrind's log must show no error
and no definite or indirect leak.

Run by `./dev sanitize` (not by make check): SANDCELL_BUILDDIR is the build directory,
$SANDCELL_VALGRIND_LOG (default: a temporary file, removed when clean) valgrind's log.
"""

import concurrent.futures
import json
import os
import re
import socket
import sys
import tempfile
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import stack as stackmod  # noqa: E402

HTTP_TIMEOUT = 120  # seconds; guards against a hung service only (valgrind is ~30x slower)
ERROR_EXIT = 97
MAX_BODY = 64 * 1024  # sandcelld's max_body_size here: below nginx's 10m, so sandcelld answers

_session = requests.Session()
_session.trust_env = False


def builddir():
    d = os.environ.get("SANDCELL_BUILDDIR")
    assert d, "SANDCELL_BUILDDIR is not set (./dev sanitize sets it)"
    return d


def valgrind_argv(log_file):
    return ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--error-exitcode=%d" % ERROR_EXIT,
            "--log-file=%s" % log_file]


def http(method, s, path, key=True, **kw):
    headers = kw.pop("headers", {})
    if key is True:
        headers["X-Api-Key"] = s.key
    elif key:
        headers["X-Api-Key"] = key
    kw.setdefault("timeout", HTTP_TIMEOUT)
    return _session.request(method, s.url + path, headers=headers, **kw)


def post_run(s, body, session=None, key=True):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return http("POST", s, "/v1/sandbox/run", key=key, data=data,
                headers={"Content-Type": "application/json"})


def envelope(r, status, code):
    assert r.status_code == status, (r.status_code, r.content[:300])
    body = r.json()
    assert body["code"] == code, body
    return body


def check_health(s):
    r = http("GET", s, "/health", key=False)
    assert r.status_code == 200 and r.content == b'"ok"', (r.status_code, r.content)


def check_refusals(s):
    """401, 404, 405, 400 (malformed, wrong types, missing fields, unknown language), 413."""
    for key in (False, "wrong-" + s.key):
        r = post_run(s, {"language": "python3", "code": "1"}, key=key)
        assert r.status_code == 401 and r.content == b"", (r.status_code, r.content)
    for method, path, status in (("GET", "/v1/sandbox/nope", 404), ("POST", "/v2/x", 404),
                                 ("GET", "/v1/sandbox/run", 405)):
        r = http(method, s, path)
        assert r.status_code == status, (method, path, r.status_code, r.content)
    for bad in (b"{", b"[1,2]", b"\xff\xfe", b'{"language": 5, "code": "1"}',
                b'{"language": "python3", "code": ["1"]}', b'{"language": "python3"}',
                b'{"code": "print(1)"}', b'{"language": "cobol", "code": "1"}',
                b'{"language": "python3", "code": "1", "enable_network": "yes"}',
                b'{"language": "python3", "code": "1", "preload": 7}'):
        envelope(post_run(s, bad), 400, -400)
    # over sandcelld's max_body_size (its own 413), then over nginx's 10m (nginx's)
    envelope(post_run(s, b'{"language":"python3","code":"' + b"x" * MAX_BODY + b'"}'), 413, -413)
    envelope(post_run(s, b"x" * (10 * 1024 * 1024 + 1)), 413, -413)


def check_runs(s):
    """Both languages, answered by the stub: stdout is the code, in a well-formed reply."""
    for language, code in (("python3", "print('h\u00e9llo \"w\"\\n')"), ("nodejs", "console.log(1)"),
                           ("python3", "x = '\U0001F600' * 300\n" * 50)):
        body = envelope(post_run(s, {"language": language, "code": code}), 200, 0)
        assert body["data"]["stdout"] == code and body["data"]["error"] == "", body


def check_outcomes(s):
    """What the stub makes a run end with ("#stub ..." code, nojail.c): exit codes, a signal,
    the limit markers, and a sandbox that cannot be set up (500)."""
    for stub, exit_code, lines in (("exit=3", 3, ["process exited with code 3"]),
                                   ("exit=-1 signal=9 hits=0x3f", -1,
                                    ["process exited with code -1", "error: timeout",
                                     "error: operation not permitted",
                                     "error: memory limit exceeded",
                                     "error: output limit exceeded",
                                     "error: process limit exceeded",
                                     "error: file size limit exceeded"])):
        code = "#stub %s\n" % stub
        body = envelope(post_run(s, {"language": "python3", "code": code, "preload": "pre"}),
                        200, 0)
        data = body["data"]
        assert data["exit_code"] == exit_code and data["stdout"] == code, body
        assert data["error"].split("\n")[:len(lines)] == lines, body
    body = envelope(post_run(s, {"language": "nodejs", "code": "#stub fail"}), 500, -500)
    assert "no sandbox could be set up" in body["message"], body


def check_concurrent(s, clients=8, each=4):
    """More clients than max_requests at once: each answer is a run's or the 503 envelope."""
    def client(i):
        out = []
        for j in range(each):
            r = post_run(s, {"language": "python3", "code": "c%d-%d" % (i, j)})
            out.append((r.status_code, r.json(), "c%d-%d" % (i, j)))
        return out
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = [a for f in [pool.submit(client, i) for i in range(clients)] for a in f.result()]
    for status, body, code in answers:
        assert (status, body["code"]) in ((200, 0), (503, -503)), (status, body)
        assert status != 200 or body["data"]["stdout"] == code, body
    assert any(status == 200 for status, _, _ in answers), answers


def check_dependencies(s):
    for method, path in (("GET", "/v1/sandbox/dependencies?language=python3"),
                         ("GET", "/v1/sandbox/dependencies/refresh?language=python3"),
                         ("POST", "/v1/sandbox/dependencies/update")):
        body = envelope(http(method, s, path, json={"language": "python3"}), 200, 0)
        if method == "GET":
            names = [d["name"] for d in body["data"]["dependencies"]]
            assert names == ["numpy", "requests"], body


def check_metrics(s):
    r = http("GET", s, "/metrics", key=False)
    assert r.status_code == 200 and b"sandcell_" in r.content, (r.status_code, r.content[:300])


def check_keep_alive(s, n=60):
    with requests.Session() as ka:
        ka.trust_env = False
        for i in range(n):
            r = ka.post(s.url + "/v1/sandbox/run", timeout=HTTP_TIMEOUT,
                        headers={"X-Api-Key": s.key},
                        json={"language": "nodejs" if i % 2 else "python3", "code": "v%d" % i})
            assert r.status_code == 200 and r.json()["data"]["stdout"] == "v%d" % i, r.content


def raw(s, data, read=False):
    with socket.create_connection(("127.0.0.1", s.port), timeout=HTTP_TIMEOUT) as c:
        c.sendall(data)
        if read:
            c.recv(1)


def check_disconnects(s):
    """Clients that hang up: mid-body, and after a whole request before the answer."""
    body = json.dumps({"language": "python3", "code": "print(1)"}).encode()
    head = ("POST /v1/sandbox/run HTTP/1.1\r\nHost: x\r\nX-Api-Key: %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (s.key, len(body)))
    raw(s, head.encode() + body[:5])
    for _ in range(3):
        raw(s, head.encode() + body)
    check_health(s)


def wait_for_log(s, text, timeout=HTTP_TIMEOUT):
    deadline = time.monotonic() + timeout
    while text not in stackmod._read(s.log_path):
        assert time.monotonic() < deadline, "no %r in sandcelld's log:\n%s" % (text, s.log(40))
        time.sleep(0.2)


def valgrind_problems(log):
    """What valgrind's log reports: [] if no error and no definite or indirect leak."""
    problems = []
    summary = re.findall(r"ERROR SUMMARY: (\d+) errors", log)
    if not summary:
        problems.append("no ERROR SUMMARY (valgrind did not finish)")
    elif summary[-1] != "0":
        problems.append("ERROR SUMMARY: %s errors" % summary[-1])
    for kind in ("definitely", "indirectly"):
        m = re.search(r"%s lost: ([\d,]+) bytes" % kind, log)
        if m and m.group(1) != "0":
            problems.append("%s lost: %s bytes" % (kind, m.group(1)))
    if "LEAK SUMMARY" not in log and "All heap blocks were freed" not in log:
        problems.append("no leak summary (was --leak-check=full given?)")
    return problems


def test_request_path_under_valgrind():
    binary = os.path.join(builddir(), "tests", "valgrind", "sandcelld-nojail")
    assert os.access(binary, os.X_OK), "build it: make -C %s tests/valgrind/sandcelld-nojail" % builddir()
    log_file = os.environ.get("SANDCELL_VALGRIND_LOG") or \
        tempfile.mkstemp(prefix="sandcelld-nojail.", suffix=".valgrind")[1]
    s = stackmod.Stack(builddir(), name="valgrind", wrapper=valgrind_argv(log_file),
                       enable_network=False, enable_preload=True, max_workers=2,
                       max_requests=4, max_body_size=MAX_BODY, drain_timeout=30)
    s.sandcelld_bin = binary
    s.start(timeout=120)
    try:
        check_health(s)
        check_refusals(s)
        check_runs(s)
        body = envelope(post_run(s, {"language": "python3", "code": "1", "preload": "p"}), 200, 0)
        assert body["data"]["stdout"] == "1", body
        check_outcomes(s)
        check_concurrent(s)
        check_dependencies(s)
        check_metrics(s)
        check_keep_alive(s)
        check_disconnects(s)
        # the import check that dependencies/update started: it runs once sandcelld is idle
        wait_for_log(s, "import check done")
    finally:
        s.stop()
    log = stackmod._read(log_file)
    problems = valgrind_problems(log)
    if s.sandcelld_rc == ERROR_EXIT and not problems:
        problems.append("valgrind exited %d" % ERROR_EXIT)
    assert not problems and s.sandcelld_rc == 0, "%s (exit status %s); valgrind's log:\n%s" % (
        "; ".join(problems), s.sandcelld_rc, log)
    assert not s.stop_problems, s.stop_problems
    if not os.environ.get("SANDCELL_VALGRIND_LOG"):
        os.unlink(log_file)
