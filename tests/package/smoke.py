#!/usr/bin/python3
"""Smoke test of an installed sandcell through nginx (run by `./dev package-test`).

SANDCELL_URL (http://127.0.0.1:PORT) and SANDCELL_KEY come from the environment. Standard
library only; every request goes to loopback. Exits 0 if every check passed.
"""

import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ["SANDCELL_URL"]
KEY = os.environ["SANDCELL_KEY"]
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
failures = []


def request(method, path, body=None, key=KEY):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Api-Key"] = key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method, headers=headers)
    try:
        with OPENER.open(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def check(name, ok, detail=""):
    print("%-44s %s" % (name, "ok" if ok else "FAILED %s" % detail))
    if not ok:
        failures.append(name)


def run(language, code):
    status, body = request("POST", "/v1/sandbox/run", {"language": language, "code": code})
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


status, body = request("GET", "/health", key=None)
check("GET /health", (status, body) == (200, b'"ok"'), (status, body))

status, body = run("python3", "import json, sys\nprint(json.dumps({'sum': 1 + 2}))")
check("python3 run", status == 200 and body["data"] == {
    "stdout": '{"sum": 3}\n', "stderr": "", "error": "", "exit_code": 0}, (status, body))

status, body = run("nodejs", "console.log([1, 2, 3].reduce((a, b) => a + b))")
check("nodejs run", status == 200 and body["data"]["stdout"] == "6\n", (status, body))

status, body = run("python3", "import os\nos.fork()")
check("seccomp marker", status == 200 and
      "error: operation not permitted" in body["data"]["error"], (status, body))

status, body = request("POST", "/v1/sandbox/run", {"language": "python3", "code": "1"},
                       key="wrong")
check("wrong key: 401, empty body", (status, body) == (401, b""), (status, body))

status, body = request("GET", "/v1/sandbox/dependencies?language=python3")
deps = json.loads(body)["data"]["dependencies"] if status == 200 else []
check("dependencies", status == 200 and isinstance(deps, list), (status, body[:200]))

status, body = request("GET", "/metrics", key=None)
check("GET /metrics from localhost", status == 200 and
      b'sandcell_requests_total{outcome="ok"}' in body, (status, body[:200]))

sys.exit(1 if failures else 0)
