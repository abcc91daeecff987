"""Fixtures and helpers of the end-to-end suite.

Every test speaks HTTP to a real nginx in front of a real sandcelld (see
stack.py). Starting a stack costs about a second, so the default stack lives
for the whole session and special configurations are started once per module
through `make_stack`.

Helpers for the tests:
    run(stack, language, code, **fields) -> (http status, parsed body or None)
    post_raw(stack, path, body, ...)     -> requests.Response (exact bytes)
    assert_alive(stack)                  /health and a real run still answer correctly
    run_ok(stack, language, code)        run, assert HTTP 200 + code 0, return data
    stack.wait_no_leftovers()            nothing of the runs is left (processes,
                                         cgroups, host mounts, files in run_dir)

Network: every stack started through new_stack() has `netns` set to a private
namespace (created once per session, netns.py, no route out, deleted at the
end), so whatever a network run of any test does never leaves this machine.
"""

import contextlib
import json
import os
import signal
import sys

import pytest
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack as stackmod  # noqa: E402
import netns as netnsmod  # noqa: E402

HTTP_TIMEOUT = 90  # seconds; only guards against a hung service, never a timing assertion


def builddir():
    d = os.environ.get("SANDCELL_BUILDDIR")
    if not d:
        pytest.exit("SANDCELL_BUILDDIR is not set (run through `make check` or tests/e2e/run-e2e.sh)",
                    returncode=1)
    return d


def srcdir():
    return os.environ.get("SANDCELL_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")


_session_netns = []


def session_netns():
    """The private namespace network sandboxes of the default stacks join."""
    if not _session_netns:
        _session_netns.append(netnsmod.Netns("sc-e2e").create())
    return _session_netns[0]


def new_stack(**config):
    config.setdefault("netns", session_netns().path)
    return stackmod.Stack(builddir(), srcdir=srcdir(), **config).start()


@contextlib.contextmanager
def own_stack(**config):
    """A stack of this test alone, stopped when the block ends (also on failure)."""
    s = new_stack(**config)
    try:
        yield s
    finally:
        s.stop()
    assert not s.stop_problems, s.stop_problems


# One session for all requests: never use proxies from the environment (loopback only).
_session = requests.Session()
_session.trust_env = False


def http(method, stack, path, key=True, headers=None, **kw):
    h = {}
    if key is True:
        h["X-Api-Key"] = stack.key
    elif key:
        h["X-Api-Key"] = key
    h.update(headers or {})
    kw.setdefault("timeout", HTTP_TIMEOUT)
    return _session.request(method, stack.url + path, headers=h, **kw)


def post_raw(stack, path, body, key=True, content_type="application/json", **kw):
    return http("POST", stack, path, key=key, data=body,
                headers={"Content-Type": content_type}, **kw)


def run(stack, language, code, key=True, **fields):
    """POST /v1/sandbox/run; returns (HTTP status, parsed JSON body or None)."""
    body = {"language": language, "code": code}
    body.update(fields)
    r = http("POST", stack, "/v1/sandbox/run", key=key, json=body)
    try:
        parsed = r.json()
    except ValueError:
        parsed = None
    return r.status_code, parsed


def run_ok(stack, language, code, **fields):
    """Runs and insists the service ran it; returns data (stdout, stderr, error, exit_code)."""
    status, body = run(stack, language, code, **fields)
    assert status == 200, (status, body)
    assert body["code"] == 0 and body["message"] == "success", body
    data = body["data"]
    assert set(data) >= {"stdout", "stderr", "error", "exit_code"}, data
    return data


def assert_alive(stack):
    """The service still answers correctly: /health and a real run in each language."""
    r = http("GET", stack, "/health", key=False)
    assert r.status_code == 200 and r.content == b'"ok"', (r.status_code, r.content)
    data = run_ok(stack, "python3", "print(6 * 7)")
    assert data == {"stdout": "42\n", "stderr": "", "error": "", "exit_code": 0}, data
    data = run_ok(stack, "nodejs", "console.log(6 * 7)")
    assert data == {"stdout": "42\n", "stderr": "", "error": "", "exit_code": 0}, data


def assert_clean(stack, timeout=10):
    problems = stack.wait_no_leftovers(timeout)
    assert not problems, "left behind:\n" + "\n".join(problems)


def error_lines(data):
    return data["error"].split("\n")


@pytest.fixture(scope="session")
def stack():
    """The default configuration (network allowed, preload off, default limits)."""
    s = new_stack()
    yield s
    s.stop()
    assert not s.stop_problems, s.stop_problems


@pytest.fixture(scope="module")
def make_stack():
    """Starts stacks with other configurations; they stop when the module ends."""
    started = []

    def make(**config):
        s = new_stack(**config)
        started.append(s)
        return s

    yield make
    problems = []
    for s in started:
        s.stop()
        problems += s.stop_problems
    assert not problems, problems


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, show the tails of the logs of the stacks that are running."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for s in list(stackmod.live_stacks):
            report.sections.append(("sandcelld log (%s)" % s.config["cgroup_name"], s.log(40)))
            nl = s.nginx_log(15)
            if nl:
                report.sections.append(("nginx error log (%s)" % s.config["cgroup_name"], nl))


def _terminated(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def pytest_sessionstart(session):
    if os.geteuid() != 0:
        pytest.exit("the end-to-end tests need root", returncode=1)
    # SIGTERM (a CI timeout, make being stopped) ends the session like Ctrl-C: the fixtures'
    # finalizers still stop every stack.
    signal.signal(signal.SIGTERM, _terminated)


def pytest_sessionfinish(session, exitstatus):
    for ns in _session_netns:
        ns.delete()


def dump(obj):
    return json.dumps(obj, indent=1)[:2000]
