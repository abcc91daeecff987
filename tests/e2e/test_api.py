"""The HTTP contract of API.md, row by row, through nginx.

After every test the service must still answer correctly (autouse fixture
`still_answers`): a bad request never takes it down.
"""

import json
import os
import threading
import time

import pytest

from conftest import (assert_alive, assert_clean, error_lines, http, post_raw, run, run_ok)

RUN = "/v1/sandbox/run"
DEPS = "/v1/sandbox/dependencies"
# A token that must never come back in an error message (no raw input echoed).
TOKEN = "QZXJ7_echo_token"


@pytest.fixture(autouse=True)
def still_answers(stack):
    yield
    assert_alive(stack)


def envelope_ok(r):
    assert r.headers.get("Content-Type", "").split(";")[0].strip() == "application/json", r.headers
    body = r.json()
    assert list(body) == ["code", "message", "data"], body
    return body


def assert_400(r):
    assert r.status_code == 400, (r.status_code, r.content[:300])
    body = envelope_ok(r)
    assert body["code"] == -400 and body["data"] is None, body
    msg = body["message"]
    assert isinstance(msg, str) and 0 < len(msg) <= 200, body
    assert TOKEN not in msg and "\\u0000" not in msg and "\x00" not in msg, body
    return msg


# ---- /health, authentication, routing ----------------------------------------------------

def test_health_is_the_json_string_ok(stack):
    r = http("GET", stack, "/health", key=False)
    assert r.status_code == 200
    assert r.content == b'"ok"'


@pytest.mark.parametrize("path,method", [(RUN, "POST"), (DEPS + "?language=python3", "GET"),
                                         (DEPS + "/update", "POST"),
                                         (DEPS + "/refresh?language=python3", "GET")])
@pytest.mark.parametrize("key", [None, "", "wrong", "DIFY-SANDBOX", "x" * 300, "key-prefix"])
def test_missing_or_wrong_key_is_401_with_empty_body(stack, path, method, key):
    if key == "key-prefix":
        key = stack.key[:-1]
    body = json.dumps({"language": "python3", "code": "print(1)"}) if method == "POST" else None
    headers = {} if key is None else {"X-Api-Key": key}
    r = http(method, stack, path, key=False, headers=headers, data=body)
    assert r.status_code == 401, (r.status_code, r.content)
    assert r.content == b""


def test_wrong_key_does_not_run_the_code(stack):
    r = http("POST", stack, RUN, key="wrong",
             json={"language": "python3", "code": "print('ran')"})
    assert r.status_code == 401 and b"ran" not in r.content


@pytest.mark.parametrize("name", ["x-api-key", "X-API-KEY", "x-Api-kEy"])
def test_key_header_name_is_case_insensitive(stack, name):
    r = http("POST", stack, RUN, key=False, headers={name: stack.key},
             json={"language": "python3", "code": "print(1)"})
    assert r.status_code == 200, r.content
    assert r.json()["data"]["stdout"] == "1\n"


@pytest.mark.parametrize("path", ["/nope", "/v1/sandbox/nope", "/v1/sandbox", "/v1/sandbox/run/x",
                                  "/v1/sandbox/dependencies/nope", "/health/x"])
def test_unknown_path_is_404(stack, path):
    assert http("GET", stack, path).status_code == 404
    assert http("POST", stack, path, data=b"{}").status_code == 404


@pytest.mark.parametrize("method,path", [("GET", RUN), ("PUT", RUN), ("DELETE", RUN),
                                         ("POST", DEPS + "?language=python3"),
                                         ("GET", DEPS + "/update"),
                                         ("POST", DEPS + "/refresh?language=python3"),
                                         ("POST", "/health")])
def test_wrong_method_is_405(stack, method, path):
    r = http(method, stack, path, data=b"{}" if method != "GET" else None)
    assert r.status_code == 405, (r.status_code, r.content)


# ---- the envelope and successful runs ---------------------------------------------------

def test_run_envelope_exact_bytes(stack):
    r = http("POST", stack, RUN, json={"language": "python3", "code": "print(1)"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"
    assert r.content == (b'{"code":0,"message":"success","data":'
                         b'{"stdout":"1\\n","stderr":"","error":"","exit_code":0}}')


def test_run_python3(stack):
    data = run_ok(stack, "python3", "import sys\nfor i in range(3):\n    print(i, sys.version_info[0])")
    assert data == {"stdout": "0 3\n1 3\n2 3\n", "stderr": "", "error": "", "exit_code": 0}


def test_run_nodejs(stack):
    code = "const os = require('os');\nfor (let i = 0; i < 3; i++) console.log(i, typeof os.EOL);\n" \
           "x = Buffer.from('aGk=', 'base64').toString(); console.log(x)"
    data = run_ok(stack, "nodejs", code)
    assert data == {"stdout": "0 string\n1 string\n2 string\nhi\n", "stderr": "", "error": "",
                    "exit_code": 0}


def test_python_runs_as_main_module(stack):
    data = run_ok(stack, "python3", "if __name__ == '__main__':\n    print('main')")
    assert data["stdout"] == "main\n"


def test_print_order_is_preserved(stack):
    code = "import sys\nfor i in range(200):\n    print(i)\nsys.stdout.flush()"
    data = run_ok(stack, "python3", code)
    assert data["stdout"] == "".join("%d\n" % i for i in range(200))


def test_unknown_fields_are_ignored(stack):
    data = run_ok(stack, "python3", "print(2)", extra={"a": [1, 2, {"b": None}]}, other=TOKEN)
    assert data["stdout"] == "2\n"


def test_enable_network_false_runs(stack):
    assert run_ok(stack, "python3", "print(3)", enable_network=False)["stdout"] == "3\n"


def test_enable_network_true_runs_when_allowed(stack):
    # Dify always sends enable_network: true; the default configuration allows it.
    assert run_ok(stack, "python3", "print(4)", enable_network=True)["stdout"] == "4\n"
    assert run_ok(stack, "nodejs", "console.log(4)", enable_network=True)["stdout"] == "4\n"


# ---- 400: bad bodies --------------------------------------------------------------------

BAD_BODIES = {
    "not json": b"hello " + TOKEN.encode(),
    "empty": b"",
    "truncated": b'{"language": "python3", "code": "' + TOKEN.encode(),
    "trailing garbage": b'{"language": "python3", "code": "print(1)"} ' + TOKEN.encode(),
    "array top level": b'["python3", "print(1)", "' + TOKEN.encode() + b'"]',
    "string top level": b'"' + TOKEN.encode() + b'"',
    "number top level": b"42",
    "null top level": b"null",
    "invalid utf-8": b'{"language": "python3", "code": "print(1) # \xff\xfe ' + TOKEN.encode() + b'"}',
    # what yajl's own check lets through: overlong '/', an encoded surrogate, > U+10FFFF
    "overlong utf-8": b'{"language": "python3", "code": "print(1) # \xc0\xaf ' + TOKEN.encode() + b'"}',
    "surrogate in utf-8": b'{"language": "python3", "code": "# \xed\xa0\x80 ' + TOKEN.encode() + b'"}',
    "beyond U+10FFFF": b'{"language": "python3", "code": "# \xf4\x90\x80\x80 ' + TOKEN.encode() + b'"}',
    "overlong in preload": b'{"language": "python3", "code": "1", "preload": "\xe0\x80\xaf"}',
    "nested 1000 deep": b'{"language": "python3", "code": "print(1)", "x": '
                        + b"[" * 1000 + b"]" * 1000 + b"}",
    "nested objects 1000 deep": b'{"language":"python3","code":"print(1)","x":'
                                + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}",
    "language missing": b'{"code": "print(1)"}',
    "code missing": b'{"language": "python3"}',
    "language not a string": b'{"language": 3, "code": "print(1)"}',
    "language null": b'{"language": null, "code": "print(1)"}',
    "code not a string": b'{"language": "python3", "code": 5}',
    "code an array": b'{"language": "python3", "code": ["print(1)"]}',
    "code an object": b'{"language": "python3", "code": {"a": "' + TOKEN.encode() + b'"}}',
    "code null": b'{"language": "python3", "code": null}',
    "code empty": b'{"language": "python3", "code": ""}',
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_body_is_400(stack, name):
    assert_400(post_raw(stack, RUN, BAD_BODIES[name]))


def test_huge_nesting_does_not_crash(stack):
    deep = b"[" * 500000 + b"]" * 500000
    assert_400(post_raw(stack, RUN, deep))
    body = b'{"language":"python3","code":"print(1)","x":' + b'{"a":' * 250000 + b"1" \
           + b"}" * 250000 + b"}"
    assert_400(post_raw(stack, RUN, body))
    assert stack.sandcelld.poll() is None


def test_unsupported_language_exact_bytes(stack):
    for lang in ("ruby", "python", "python2", "PYTHON3", "node", "javascript", ""):
        r = post_raw(stack, RUN, json.dumps({"language": lang, "code": "print(1)"}))
        assert r.status_code == 400, (lang, r.status_code, r.content)
        assert r.content == b'{"code":-400,"message":"unsupported language","data":null}', lang


def test_language_with_nul_is_not_truncated(stack):
    # "python3\u0000junk" must not be taken for "python3".
    r = post_raw(stack, RUN, b'{"language": "python3\\u0000junk", "code": "print(1)"}')
    assert r.status_code == 400
    assert r.content == b'{"code":-400,"message":"unsupported language","data":null}'


# ---- \u0000 and UTF-8 -------------------------------------------------------------------

def test_nul_in_unknown_field_is_fine(stack):
    r = post_raw(stack, RUN, b'{"x": "a\\u0000b", "language": "python3", "code": "print(5)"}')
    assert r.status_code == 200 and r.json()["data"]["stdout"] == "5\n"


def test_nul_in_code_is_passed_whole(stack):
    # If the code were cut at the NUL, this would print 1 and succeed.
    r = post_raw(stack, RUN, b'{"language": "python3", "code": "print(1)\\u0000print(2)"}')
    assert r.status_code == 200, r.content
    data = r.json()["data"]
    assert not (data["stdout"] == "1\n" and data["exit_code"] == 0), data
    # In a JavaScript string literal a NUL character is just a character.
    code = 'var s = "a\u0000b"; console.log(s.length, s.charCodeAt(1))'
    assert run_ok(stack, "nodejs", code)["stdout"] == "3 0\n"


def test_nul_in_output(stack):
    data = run_ok(stack, "python3", "print('a\\x00b')")
    assert data["stdout"] == "a\x00b\n"
    data = run_ok(stack, "nodejs", "process.stdout.write('c\\u0000d\\n')")
    assert data["stdout"] == "c\x00d\n"


def test_unicode_round_trip(stack):
    text = "h\u00e9llo \u20ac \u4e2d\u6587 \U0001f600 \"q\" \\ \t \x01 \u2028"
    data = run_ok(stack, "python3", "import sys\nsys.stdout.write(%r)" % text)
    assert data["stdout"] == text
    data = run_ok(stack, "nodejs", "process.stdout.write(%s)" % json.dumps(text))
    assert data["stdout"] == text


def test_invalid_utf8_output_replaced(stack):
    code = ("import sys\nsys.stdout.buffer.write(b'a\\xffb\\xc3(c\\n')\n"
            "sys.stderr.buffer.write(b'e\\xfe\\n')")
    data = run_ok(stack, "python3", code)
    assert data["stdout"] == "a\ufffdb\ufffd(c\n", data
    assert data["stderr"] == "e\ufffd\n", data
    assert data["error"] == ""


# ---- stdout, stderr, error, exit_code -----------------------------------------------------

def test_stderr_on_success_is_not_an_error(stack):
    data = run_ok(stack, "python3", "import sys\nsys.stderr.write('warn\\n')\nprint('ok')")
    assert data == {"stdout": "ok\n", "stderr": "warn\n", "error": "", "exit_code": 0}
    data = run_ok(stack, "nodejs", "console.error('warn'); console.log('ok')")
    assert data == {"stdout": "ok\n", "stderr": "warn\n", "error": "", "exit_code": 0}


def test_failing_program_error_format(stack):
    data = run_ok(stack, "python3", "import sys\nprint('out')\nsys.stderr.write('bad\\n')\nsys.exit(3)")
    assert data == {"stdout": "out\n", "stderr": "bad\n",
                    "error": "process exited with code 3\nbad\n", "exit_code": 3}
    data = run_ok(stack, "nodejs", "process.stderr.write('worse\\n'); process.exitCode = 4")
    assert data == {"stdout": "", "stderr": "worse\n",
                    "error": "process exited with code 4\nworse\n", "exit_code": 4}


def test_failing_program_without_stderr(stack):
    data = run_ok(stack, "python3", "raise SystemExit(7)")
    assert data["exit_code"] == 7
    assert data["error"] == "process exited with code 7\n"


def test_uncaught_python_exception(stack):
    data = run_ok(stack, "python3", "def f():\n    raise ValueError('boom')\nf()")
    assert data["exit_code"] == 255, data
    assert data["stderr"].startswith("Traceback (most recent call last):"), data
    assert data["stderr"].rstrip().endswith("ValueError: boom"), data
    assert data["error"] == "process exited with code 255\n" + data["stderr"], data


def test_uncaught_node_exception(stack):
    data = run_ok(stack, "nodejs", "function f() { throw new Error('boom') }\nf()")
    assert data["exit_code"] == 1, data
    assert "Error: boom" in data["stderr"], data
    assert data["error"] == "process exited with code 1\n" + data["stderr"], data


def test_syntax_error(stack):
    data = run_ok(stack, "python3", "def (:")
    assert data["exit_code"] != 0 and "SyntaxError" in data["stderr"], data
    assert error_lines(data)[0] == "process exited with code %d" % data["exit_code"]
    data = run_ok(stack, "nodejs", "function (")
    assert data["exit_code"] != 0 and "SyntaxError" in data["stderr"], data


def big_text(n):
    """n characters of deterministic text with everything JSON must escape."""
    unit = "line %06d: \"quoted\" back\\slash tab\t ctl\x01 \u00e9\u20ac\U0001f600 <>&'\n"
    out, i = [], 0
    while sum(map(len, out)) < n:
        out.append(unit.replace("%06d", "%06d" % i))
        i += 1
    return "".join(out)[:n]


def test_300kb_output_byte_exact(stack):
    text = big_text(300 * 1024)
    code = "import sys\nsys.stdout.write(%r)\n" % text
    data = run_ok(stack, "python3", code)
    assert data["exit_code"] == 0 and data["error"] == ""
    assert data["stdout"] == text
    code = "process.stdout.write(%s)\n" % json.dumps(text)
    data = run_ok(stack, "nodejs", code)
    assert data["error"] == ""
    assert data["stdout"] == text
    # generated inside the sandbox, and on stderr too
    code = ("import sys\ns = ''.join('%05d ' % i + 'x' * 94 + '\\n' for i in range(3000))\n"
            "sys.stdout.write(s)\nsys.stderr.write(s)")
    data = run_ok(stack, "python3", code)
    expect = "".join("%05d " % i + "x" * 94 + "\n" for i in range(3000))
    assert data["stdout"] == expect and data["stderr"] == expect and data["error"] == ""


def test_large_code_accepted(stack):
    # ~1 MB of program text: well under the body limit.
    code = "x = 0\n" + "x += 1\n" * 140000 + "print(x)"
    assert run_ok(stack, "python3", code)["stdout"] == "140000\n"


# ---- 413 -----------------------------------------------------------------------------------

def test_body_over_10m_is_413_envelope(stack):
    body = json.dumps({"language": "python3", "code": "#" + "x" * (10 * 1024 * 1024 + 10)})
    r = post_raw(stack, RUN, body)
    assert r.status_code == 413, (r.status_code, r.content[:200])
    body = envelope_ok(r)
    assert body["code"] == -413 and body["data"] is None and body["message"], body


# ---- dependencies --------------------------------------------------------------------------

def assert_dependency_list(r):
    assert r.status_code == 200, (r.status_code, r.content[:300])
    body = envelope_ok(r)
    assert body["code"] == 0 and body["message"] == "success", body
    deps = body["data"]["dependencies"]
    assert isinstance(deps, list) and deps
    by_name = {}
    for d in deps:
        assert set(d) == {"name", "version"}, d
        assert isinstance(d["name"], str) and d["name"], d
        assert isinstance(d["version"], str) and d["version"][0].isdigit(), d
        by_name[d["name"].lower()] = d["version"]
    for wanted in ("requests", "jinja2", "httpx"):
        assert wanted in by_name, (wanted, sorted(by_name))
    return by_name


def test_dependencies(stack):
    by_name = assert_dependency_list(http("GET", stack, DEPS + "?language=python3"))
    # the versions are those importable inside the sandbox
    code = ("import requests, jinja2, httpx\n"
            "print(requests.__version__, jinja2.__version__, httpx.__version__)")
    out = run_ok(stack, "python3", code)["stdout"].split()
    assert out == [by_name["requests"], by_name["jinja2"], by_name["httpx"]]


def test_dependencies_update(stack):
    r = http("POST", stack, DEPS + "/update", data=b"")
    assert r.status_code == 200
    assert r.content == b'{"code":0,"message":"success","data":{}}'
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"


def test_dependencies_refresh(stack):
    before = assert_dependency_list(http("GET", stack, DEPS + "?language=python3"))
    after = assert_dependency_list(http("GET", stack, DEPS + "/refresh?language=python3"))
    assert before == after


@pytest.mark.parametrize("path", [DEPS, DEPS + "/refresh"])
def test_dependencies_other_language(stack, path):
    r = http("GET", stack, path + "?language=nodejs")
    assert r.status_code == 400
    assert r.content == b'{"code":-400,"message":"unsupported language","data":null}'


# ---- operator switches: own stacks ---------------------------------------------------------

@pytest.fixture(scope="module")
def no_network_stack(make_stack):
    return make_stack(enable_network=False)


def test_network_disabled_exact_answer(no_network_stack):
    s = no_network_stack
    r = http("POST", s, RUN, json={"language": "python3", "code": "print('ran')",
                                   "enable_network": True})
    assert r.status_code == 200
    assert r.content == (b'{"code":-400,"message":"network is disabled, please enable it in the '
                         b'configuration","data":null}')
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"
    # without the flag it runs
    assert run_ok(s, "python3", "print(1)", enable_network=False)["stdout"] == "1\n"
    assert_alive(s)


@pytest.fixture(scope="module")
def env_stack(make_stack):
    # DifySandbox's names win over the file
    return make_stack(env={"API_KEY": "env-key-123", "WORKER_TIMEOUT": "1",
                           "ENABLE_NETWORK": "false"})


def test_environment_overrides(env_stack):
    s = env_stack
    r = http("POST", s, RUN, json={"language": "python3", "code": "print(1)"})
    assert r.status_code == 401  # the file's key no longer works
    status, body = run(s, "python3", "print(1)", key="env-key-123")
    assert status == 200 and body["data"]["stdout"] == "1\n"
    status, body = run(s, "python3", "import time\ntime.sleep(30)", key="env-key-123")
    assert status == 200 and "error: timeout" in error_lines(body["data"]), body
    status, body = run(s, "python3", "print(1)", key="env-key-123", enable_network=True)
    assert status == 200 and body["code"] == -400, body


@pytest.fixture(scope="module")
def preload_stack(make_stack):
    return make_stack(enable_preload=True)


PRELOAD = """\
import os
for target in (%(host)r, '/etc/sandcell-preload-escaped'):
    try:
        open(target, 'w').write('escaped')
    except OSError:
        pass
open('/tmp/preload-marker', 'w').write('%%d' %% os.getuid())
"""
PRELOAD_CODE = """\
import os
if os.path.exists('/tmp/preload-marker'):
    print(open('/tmp/preload-marker').read())
else:
    print('no preload')
"""


def preload_body(s):
    return PRELOAD % {"host": s.prefix + "/preload-escaped"}


def test_preload_runs_inside_the_sandbox(preload_stack):
    s = preload_stack
    data = run_ok(s, "python3", PRELOAD_CODE, preload=preload_body(s))
    assert data["exit_code"] == 0, data
    uid = int(data["stdout"])
    assert s.uid_base <= uid < s.uid_base + s.slots, data
    assert not os.path.exists(s.prefix + "/preload-escaped")
    assert not os.path.exists("/etc/sandcell-preload-escaped")
    assert_alive(s)


def test_preload_ignored_when_disabled(stack):
    data = run_ok(stack, "python3", PRELOAD_CODE, preload=preload_body(stack))
    assert data["stdout"] == "no preload\n", data
    assert not os.path.exists(stack.prefix + "/preload-escaped")


# ---- 503: more than max_requests in flight --------------------------------------------------

@pytest.fixture(scope="module")
def tiny_stack(make_stack):
    return make_stack(max_requests=1, max_workers=1)


def test_over_max_requests_is_503(tiny_stack):
    s = tiny_stack
    for attempt in range(3):
        slow = {}

        def slow_run():
            slow["result"] = run(s, "python3", "import time\ntime.sleep(4)\nprint('slow done')")

        t = threading.Thread(target=slow_run)
        t.start()
        time.sleep(1.0)  # let the slow request get in first
        seen = None
        while t.is_alive() and seen is None:
            r = http("POST", s, RUN, json={"language": "python3", "code": "print(1)"})
            if r.status_code == 503:
                seen = r
            else:
                assert r.status_code == 200, (r.status_code, r.content)
                time.sleep(0.1)
        t.join(60)
        if slow["result"][0] != 503:  # the probe did not win the race
            break
    assert seen is not None, "no 503 while a request was in flight"
    assert seen.content == b'{"code":-503,"message":"Too many requests","data":null}'
    assert seen.headers["Content-Type"].split(";")[0].strip() == "application/json"
    status, body = slow["result"]
    assert status == 200 and body["data"]["stdout"] == "slow done\n", slow
    assert_alive(s)


@pytest.fixture(scope="module")
def queue_stack(make_stack):
    return make_stack(max_requests=4, max_workers=1, queue_timeout=1)


def test_waiting_longer_than_queue_timeout_is_503(queue_stack):
    # One worker, busy for 4 s: a second request waits 1 s (queue_timeout), then gets
    # the 503 envelope at once instead of a run long after nginx or the client gave up.
    s = queue_stack
    slow = {}
    t = threading.Thread(target=lambda: slow.setdefault(
        "result", run(s, "python3", "import time\ntime.sleep(4)\nprint('slow done')")))
    t.start()
    time.sleep(1.0)  # the slow run holds the only worker now
    r = http("POST", s, RUN, json={"language": "python3", "code": "print('late')"})
    t.join(60)
    # without the queue timeout it would have run once the slow run ended: a 200
    assert r.status_code == 503, (r.status_code, r.content)
    assert r.content == b'{"code":-503,"message":"Too many requests","data":null}'
    status, body = slow["result"]
    assert status == 200 and body["data"]["stdout"] == "slow done\n", slow
    assert_alive(s)


# nginx's own limits and their 429 envelope: test_ratelimit.py


def test_nothing_left_after_api_tests(stack):
    assert_clean(stack)
