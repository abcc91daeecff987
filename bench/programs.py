"""The programs the benchmark runs, each with the stdout a correct run prints.

Dify's scripts are built by tests/e2e/dify_templates.py, the way Dify's template transformers
build them: the same text is sent to sandcell and run bare (`python3 -I -c TEXT`,
`node -e TEXT`), so both sides do the same work.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
import dify_templates  # noqa: E402

PYTHON = "/usr/bin/python3"
NODE = "/usr/bin/node"

# Dify's default code node, as a user leaves it
DIFY_CODE = '''def main(arg1: str, arg2: str) -> dict:
    return {
        "result": arg1 + arg2,
    }
'''
DIFY_INPUTS = {"arg1": "sand", "arg2": "cell"}
JINJA2_TEMPLATE = "Hello {{ name }}! {% for x in items %}[{{ x }}]{% endfor %}"
JINJA2_INPUTS = {"name": "Dify", "items": [1, 2, 3]}


# A Dify code node drawing a chart with Debian's data libraries (python3-numpy, -pandas,
# -matplotlib), returned as base64; its length is printed, so that the output is the same
# on every run
CHART_CODE = '''import base64, io
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt

def main(n: int) -> dict:
    df = pd.DataFrame({"x": np.arange(n), "y": np.arange(n) ** 2})
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.plot(df["x"], df["y"])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return {"sum": int(df["y"].sum()), "png": buf.getvalue()[:8].hex()}
'''


class Program:
    def __init__(self, name, language, code, stdout, data=False):
        self.name = name          # what the table calls it
        self.language = language  # the API's language
        self.code = code
        self.stdout = stdout      # what a correct run prints
        self.data = data          # uses Debian's data libraries: only with --data

    def bare_argv(self):
        """The same program started directly: fork + exec of the interpreter."""
        if self.language == "python3":
            return [PYTHON, "-I", "-c", self.code]
        return [NODE, "-e", self.code]


PROGRAMS = [
    Program("python3 print(1)", "python3", "print(1)", "1\n"),
    Program("python3 Dify runner (json, base64)", "python3",
            dify_templates.python3_script(DIFY_CODE, DIFY_INPUTS),
            '<<RESULT>>{\n    "result": "sandcell"\n}<<RESULT>>\n'),
    Program("python3 Dify jinja2 template", "python3",
            dify_templates.jinja2_script(JINJA2_TEMPLATE, JINJA2_INPUTS),
            "<<RESULT>>Hello Dify! [1][2][3]<<RESULT>>\n"),
    Program("python3 import requests", "python3", "import requests\nprint(1)", "1\n"),
    Program("nodejs console.log(1)", "nodejs", "console.log(1)", "1\n"),
    Program("python3 import numpy", "python3", "import numpy\nprint(1)", "1\n", data=True),
    Program("python3 import pandas", "python3", "import pandas\nprint(1)", "1\n", data=True),
    Program("python3 Dify chart (numpy, pandas, matplotlib)", "python3",
            dify_templates.python3_script(CHART_CODE, {"n": 5}),
            '<<RESULT>>{\n    "sum": 30,\n    "png": "89504e470d0a1a0a"\n}<<RESULT>>\n', data=True),
]
