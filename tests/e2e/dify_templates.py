"""Dify's code-node scripts, built the way Dify's template transformers build them
(api/core/helper/code_executor/*): the user's code first, then the inputs decoded from base64
JSON, main(**inputs), the result printed between <<RESULT>> markers.

Standard library only: the end-to-end suite and the real-host test's guest (tests/host) both
use it.
"""

import base64
import json
import re

RESULT_RE = re.compile(r"<<RESULT>>(.*)<<RESULT>>", re.DOTALL)


def b64_json(inputs):
    return base64.b64encode(json.dumps(inputs, ensure_ascii=False).encode()).decode()


def python3_script(code, inputs):
    return (code + "\n\n"
            "import json\n"
            "from base64 import b64decode\n\n"
            "# decode and prepare input dict\n"
            "inputs_obj = json.loads(b64decode('%s').decode('utf-8'))\n\n"
            "# execute main function\n"
            "output_obj = main(**inputs_obj)\n\n"
            "# convert output to json and print\n"
            "output_json = json.dumps(output_obj, indent=4)\n"
            "result = f'''<<RESULT>>{output_json}<<RESULT>>'''\n"
            "print(result)\n" % b64_json(inputs))


def javascript_script(code, inputs):
    return (code + "\n\n"
            "// decode and prepare input object\n"
            "var inputs_obj = JSON.parse(Buffer.from('%s', 'base64').toString('utf-8'))\n\n"
            "// execute main function\n"
            "var output_obj = main(inputs_obj)\n\n"
            "// convert output to json and print\n"
            "var output_json = JSON.stringify(output_obj)\n"
            "var result = `<<RESULT>>${output_json}<<RESULT>>`\n"
            "console.log(result)\n" % b64_json(inputs))


def jinja2_script(template, inputs):
    template_b64 = base64.b64encode(template.encode()).decode()
    return ("\nimport jinja2\n"
            "import json\n"
            "from base64 import b64decode\n\n"
            "# declare main function\n"
            "def main(**inputs):\n"
            "    template_code = b64decode('%s').decode('utf-8')\n"
            "    template = jinja2.Template(template_code)\n"
            "    return template.render(**inputs)\n\n"
            "# decode and prepare input dict\n"
            "inputs_obj = json.loads(b64decode('%s').decode('utf-8'))\n\n"
            "# execute main function\n"
            "output = main(**inputs_obj)\n\n"
            "# convert output and print\n"
            "result = f'''<<RESULT>>{output}<<RESULT>>'''\n"
            "print(result)\n\n" % (template_b64, b64_json(inputs)))


JINJA2_PRELOAD = """
import jinja2
from base64 import b64decode

def _jinja2_preload_():
    # prepare jinja2 environment, load template and render before to avoid sandbox issue
    template = jinja2.Template('{{s}}')
    template.render(s='a')

if __name__ == '__main__':
    _jinja2_preload_()

"""
