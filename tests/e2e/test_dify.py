"""Dify's code nodes, as Dify's code executor sends them.

The scripts are built the way Dify's template transformers build them
(api/core/helper/code_executor/*): the user's code first, then the inputs
decoded from base64 JSON, main(**inputs), the result printed between
<<RESULT>> markers. Dify posts {"language", "code", "preload",
"enable_network": true} and reads the result back with a regular expression.
"""

import base64
import json

import pytest

from conftest import assert_alive, assert_clean, run
from dify_templates import (JINJA2_PRELOAD, RESULT_RE, javascript_script, jinja2_script,
                            python3_script)


def dify_execute(stack, language, code, preload=""):
    """What Dify's CodeExecutor.execute_code does with the answer: stdout, or raise."""
    status, body = run(stack, language, code, preload=preload, enable_network=True)
    assert status == 200, (status, body)
    assert body["code"] == 0, body
    assert body["data"]["error"] == "", body["data"]
    return body["data"]["stdout"]


def result_of(stdout):
    m = RESULT_RE.search(stdout)
    assert m, stdout
    return m.group(1)


@pytest.fixture(autouse=True)
def still_answers(stack):
    yield
    assert_alive(stack)


def test_python3_default_node(stack):
    code = "def main(arg1: str, arg2: str):\n    return {\n        \"result\": arg1 + arg2,\n    }\n"
    out = dify_execute(stack, "python3", python3_script(code, {"arg1": "a", "arg2": "b"}))
    assert json.loads(result_of(out)) == {"result": "ab"}


def test_python3_rich_inputs_and_outputs(stack):
    inputs = {"text": "h\u00e9llo \u4e16\u754c \"q\" '''", "n": 12, "items": [1, 2.5, None, True],
              "obj": {"k": ["v"]}}
    code = ("def main(text: str, n: int, items: list, obj: dict) -> dict:\n"
            "    return {'upper': text.upper(), 'n2': n * 2, 'count': len(items),\n"
            "            'keys': sorted(obj), 'items': items}\n")
    out = dify_execute(stack, "python3", python3_script(code, inputs))
    assert json.loads(result_of(out)) == {"upper": inputs["text"].upper(), "n2": 24, "count": 4,
                                          "keys": ["k"], "items": [1, 2.5, None, True]}


def test_python3_prints_before_result(stack):
    code = "def main(x):\n    print('debug line')\n    return {'x': x}\n"
    out = dify_execute(stack, "python3", python3_script(code, {"x": 1}))
    assert out.startswith("debug line\n")
    assert json.loads(result_of(out)) == {"x": 1}


def test_javascript_default_node(stack):
    code = "function main({arg1, arg2}) {\n    return {\n        result: arg1 + arg2\n    }\n}\n"
    out = dify_execute(stack, "nodejs", javascript_script(code, {"arg1": "a", "arg2": "b"}))
    assert json.loads(result_of(out)) == {"result": "ab"}


def test_javascript_rich_inputs(stack):
    inputs = {"text": "h\u00e9llo \u4e16\u754c `tick` ${x}", "n": 12, "arr": [3, 1, 2]}
    code = ("function main({text, n, arr}) {\n"
            "  return {upper: text.toUpperCase(), n2: n * 2, sorted: arr.slice().sort(),\n"
            "          b64: Buffer.from(text).toString('base64')}\n}\n")
    out = dify_execute(stack, "nodejs", javascript_script(code, inputs))
    assert json.loads(result_of(out)) == {
        "upper": inputs["text"].upper(), "n2": 24, "sorted": [1, 2, 3],
        "b64": base64.b64encode(inputs["text"].encode()).decode()}


def test_javascript_user_parseint_does_not_break_runner(stack):
    code = ("function parseInt() { return 'hijacked' }\n"
            "function main({a}) { return {r: a, p: parseInt('7')} }\n")
    out = dify_execute(stack, "nodejs", javascript_script(code, {"a": 5}))
    assert json.loads(result_of(out)) == {"r": 5, "p": "hijacked"}
    # a sloppy-mode global assignment in user code works too
    code = "function main({a}) { g = a + 1; return {g: globalThis.g} }\n"
    out = dify_execute(stack, "nodejs", javascript_script(code, {"a": 1}))
    assert json.loads(result_of(out)) == {"g": 2}


TEMPLATE = """<h1>{{ title }}</h1>
He said "hi" and 'bye', and \"\"\"triple\"\"\" and '''triple''' quotes.
{% for item in items -%}
  <li>{{ loop.index }}: {{ item | upper }}</li>
{% endfor -%}
{% if items|length > 1 %}many{% else %}one{% endif %}
back\\slash {{ '{{' }} not a tag }}
"""


def expected_render(inputs):
    import jinja2
    return jinja2.Template(TEMPLATE).render(**inputs)


@pytest.mark.parametrize("with_preload", [True, False])
def test_jinja2_template(stack, with_preload):
    inputs = {"title": "T\u00eftle <&>", "items": ["a", "b\u00e9", "c'\""]}
    out = dify_execute(stack, "python3", jinja2_script(TEMPLATE, inputs),
                       preload=JINJA2_PRELOAD if with_preload else "")
    assert result_of(out) == expected_render(inputs)


@pytest.fixture(scope="module")
def preload_stack(make_stack):
    return make_stack(enable_preload=True)


def test_jinja2_with_preload_enabled(preload_stack):
    inputs = {"title": "pre", "items": ["x"]}
    out = dify_execute(preload_stack, "python3", jinja2_script(TEMPLATE, inputs),
                       preload=JINJA2_PRELOAD)
    assert result_of(out) == expected_render(inputs)
    code = "def main(a):\n    return {'a': a}\n"
    out = dify_execute(preload_stack, "python3", python3_script(code, {"a": [1]}), preload="")
    assert json.loads(result_of(out)) == {"a": [1]}
    assert_alive(preload_stack)


STDLIB_PROGRAM = """
import json, base64, re, datetime, zoneinfo
import requests, httpx, jinja2

def main():
    berlin = zoneinfo.ZoneInfo('Europe/Berlin')
    winter = datetime.datetime(2024, 1, 15, 12, 0, tzinfo=berlin)
    summer = datetime.datetime(2024, 7, 15, 12, 0, tzinfo=berlin)
    return {
        'json': json.loads('{"a": [1, 2]}'),
        'b64': base64.b64encode(b'sandcell').decode(),
        're': re.findall(r'\\d+', 'a1b22c333'),
        'winter': winter.utcoffset().total_seconds(),
        'summer': summer.utcoffset().total_seconds(),
        'utc': summer.astimezone(datetime.timezone.utc).isoformat(),
        'jinja2': jinja2.Template('{{ x }}!').render(x='j'),
        'mods': [requests.__name__, httpx.__name__],
    }
"""


def test_python_libraries(stack):
    out = dify_execute(stack, "python3", python3_script(STDLIB_PROGRAM, {}))
    assert json.loads(result_of(out)) == {
        "json": {"a": [1, 2]}, "b64": "c2FuZGNlbGw=", "re": ["1", "22", "333"],
        "winter": 3600.0, "summer": 7200.0, "utc": "2024-07-15T10:00:00+00:00",
        "jinja2": "j!", "mods": ["requests", "httpx"]}


def test_dify_code_error_is_reported(stack):
    # Dify raises CodeExecutionError(data.error) when error is non-empty
    code = "def main():\n    return 1 / 0\n"
    status, body = run(stack, "python3", python3_script(code, {}), preload="", enable_network=True)
    assert status == 200 and body["code"] == 0
    data = body["data"]
    assert data["exit_code"] == 255
    assert data["error"].startswith("process exited with code 255\n")
    assert "ZeroDivisionError" in data["error"]


def test_nothing_left_after_dify_tests(stack):
    assert_clean(stack)
