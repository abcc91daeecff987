"""GET /metrics through nginx: Prometheus text, localhost only, and it counts runs."""

import re
import socket

from conftest import http, run_ok


def scrape(stack):
    r = http("GET", stack, "/metrics", key=False)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    return r.text


def value(text, sample):
    """The value of the sample line `sample` (name with labels), or None."""
    m = re.search(r"^%s (\S+)$" % re.escape(sample), text, re.M)
    return float(m.group(1)) if m else None


def test_answers_from_localhost_and_counts_a_run(stack):
    before = scrape(stack)
    ok = value(before, 'sandcell_requests_total{outcome="ok"}')
    py = value(before, 'sandcell_run_duration_seconds_count{language="python3"}')
    hits = value(before, 'sandcell_limit_hits_total{kind="operation_not_permitted"}')
    assert ok is not None and py is not None and hits is not None, before[:2000]

    run_ok(stack, "python3", "print(1)")
    data = run_ok(stack, "python3", "import os\nos.fork()")
    assert "error: operation not permitted" in data["error"]

    after = scrape(stack)
    assert value(after, 'sandcell_requests_total{outcome="ok"}') >= ok + 1
    assert value(after, 'sandcell_run_duration_seconds_count{language="python3"}') >= py + 2
    assert value(after, 'sandcell_limit_hits_total{kind="operation_not_permitted"}') >= hits + 1
    # the +Inf bucket and _count agree; the gauges are there
    assert value(after, 'sandcell_run_duration_seconds_bucket{language="python3",le="+Inf"}') == \
        value(after, 'sandcell_run_duration_seconds_count{language="python3"}')
    for gauge in ("sandcell_queue_depth", "sandcell_workers_busy", "sandcell_requests_in_flight",
                  'sandcell_warm_sandboxes{language="nodejs"}'):
        assert value(after, gauge) is not None, gauge
    assert value(after, "sandcell_workers_max") == stack.max_workers


def test_refused_from_another_address(stack):
    """nginx's allow/deny: 127.0.0.1 and ::1 only. A client bound to 127.0.0.2 is another
    address to nginx (the whole 127/8 is loopback, so this stays on the machine)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10,
                                  source_address=("127.0.0.2", 0)) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"sandcell_requests_total" not in answer
