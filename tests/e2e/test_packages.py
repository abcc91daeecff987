"""The packages operators choose (jail/languages.c's bind rule, jail/prepare.c):
Debian's python3-* packages import and work in the jail with no other step, a
venv named by python_path is used with exactly its packages, a Node modules
directory is on require()'s path, /v1/sandbox/dependencies lists exactly what
the jail can import, and the import check logs a package the jail breaks.

./dev test installs the Debian packages (python3-numpy, -pandas, -matplotlib,
-pil, -lxml, -openpyxl) and npm; the venvs and the Node modules directory are
made here, under /opt (not /tmp: every sandbox has a /tmp of its own), and
removed at the end. Nothing is fetched at run time by sandcell; npm fetches
lodash from the registry while this module sets up.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import zipfile

import pytest

from conftest import builddir, run, run_ok
from dify_templates import javascript_script, python3_script

BOUND = 90  # seconds: catches "never", measures nothing

# program -> what it must print; each uses the package for real, not only imports it
PROGRAMS = {
    "numpy": ("import numpy as np\n"
              "a = np.arange(6, dtype=float).reshape(2, 3)\n"
              "m = np.array([[2.0, 1.0], [1.0, 3.0]])\n"
              "print(a.sum(axis=0).tolist(), (np.round(np.linalg.inv(m) @ m, 6) + 0.0).tolist(),"
              " round(float(np.linalg.det(m)), 6))\n",
              "[3.0, 5.0, 7.0] [[1.0, 0.0], [0.0, 1.0]] 5.0\n"),
    "pandas": ("import io, pandas as pd\n"
               "df = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\n"
               "print(df.to_json(orient='records'))\n"
               "print(int(pd.read_csv(io.StringIO('p,q\\n1,2\\n3,4\\n'))['q'].sum()))\n",
               '[{"a":1,"b":"x"},{"a":2,"b":"y"}]\n6\n'),
    "matplotlib": ("import base64, matplotlib.pyplot as plt\n"
                   "fig, ax = plt.subplots()\n"
                   "ax.plot([1, 2, 3], [1, 4, 9]); ax.set_title('chart')\n"
                   "fig.savefig('/tmp/chart.png')\n"
                   "print(base64.b64encode(open('/tmp/chart.png', 'rb').read()).decode())\n",
                   None),  # checked below: a PNG
    "Pillow": ("import io\nfrom PIL import Image, ImageDraw\n"
               "im = Image.new('RGB', (8, 4), 'white'); ImageDraw.Draw(im).point((1, 1), 'red')\n"
               "b = io.BytesIO(); im.save(b, 'PNG')\n"
               "print(Image.open(io.BytesIO(b.getvalue())).getpixel((1, 1)), im.size)\n",
               "(255, 0, 0) (8, 4)\n"),
    "lxml": ("from lxml import etree\n"
             "root = etree.fromstring('<a><b n=\"1\"/><b n=\"2\"/></a>')\n"
             "print([b.get('n') for b in root.xpath('//b')], etree.tostring(root[0]).decode())\n",
             "['1', '2'] <b n=\"1\"/>\n"),
    "openpyxl": ("import openpyxl\n"
                 "wb = openpyxl.Workbook(); wb.active['A1'] = 'hi'; wb.active['B2'] = 42\n"
                 "wb.save('/tmp/book.xlsx')\n"
                 "ws = openpyxl.load_workbook('/tmp/book.xlsx').active\n"
                 "print(ws['A1'].value, ws['B2'].value)\n",
                 "hi 42\n"),
}


def check_output(name, stdout):
    want = PROGRAMS[name][1]
    if want is not None:
        assert stdout == want, (name, stdout)
    else:
        png = base64.b64decode(stdout.strip())
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000, (name, stdout[:200])


def as_dify_main(program):
    """The program as the body of a Dify code node's main(): what it prints is returned."""
    return ("import contextlib as _contextlib, io as _io\n\ndef main() -> dict:\n"
            "    _out = _io.StringIO()\n"
            "    with _contextlib.redirect_stdout(_out):\n" +
            "".join("        " + line + "\n" for line in program.splitlines()) +
            "    return {'result': _out.getvalue()}\n")


def dify_result(stdout):
    m = re.search(r"<<RESULT>>(.*)<<RESULT>>", stdout, re.S)
    assert m, stdout
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def cold(make_stack):
    return make_stack(enable_network=False, max_workers=2, warm_sandboxes=1, zygote_path="")


@pytest.fixture(scope="module", params=["zygote", "cold"])
def either(request, stack, cold):
    return stack if request.param == "zygote" else cold


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_debian_package_works_in_a_fresh_sandbox(either, name):
    data = run_ok(either, "python3", PROGRAMS[name][0])
    assert data["exit_code"] == 0 and data["error"] == "", data
    check_output(name, data["stdout"])


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_debian_package_works_through_difys_runner(either, name):
    data = run_ok(either, "python3", python3_script(as_dify_main(PROGRAMS[name][0]), {}))
    assert data["exit_code"] == 0 and data["error"] == "", data
    check_output(name, dify_result(data["stdout"])["result"])


# What the jail shows of the host: software, and no other program, no host configuration.
JAIL_VIEW = r"""
import json, os
def ls(d):
    try:
        return sorted(os.listdir(d))
    except OSError as e:
        return "error: " + e.strerror
print(json.dumps({d: ls(d) for d in ("/", "/etc", "/usr", "/usr/bin", "/var", "/var/cache", "/usr/local")}))
"""
ETC_ALLOWED = {"alternatives", "ld.so.cache", "ssl", "fonts", "matplotlibrc", "python3", "python3.11"}


def test_the_jail_shows_software_and_nothing_else_of_the_host(either):
    secret = "/etc/sandcell-e2e-secret-%d" % os.getpid()
    with open(secret, "w") as f:
        f.write("secret\n")
    try:
        view = json.loads(run_ok(either, "python3", JAIL_VIEW)["stdout"])
    finally:
        os.unlink(secret)
    assert set(view["/etc"]) <= ETC_ALLOWED, view["/etc"]
    assert {"alternatives", "ld.so.cache", "ssl"} <= set(view["/etc"]), view["/etc"]
    # the interpreter, by its configured name and its real one, and no other program
    assert view["/usr/bin"] == sorted({"python3", os.path.basename(os.path.realpath("/usr/bin/python3"))}), view
    assert set(view["/usr"]) <= {"bin", "lib", "lib64", "share", "local"}, view["/usr"]
    assert set(view["/usr/local"]) <= {"lib", "share"}, view["/usr/local"]
    assert view["/var"] == ["cache"] and view["/var/cache"] == ["fontconfig"], view
    for d in ("home", "root", "opt", "srv", "run", "boot", "media", "mnt"):
        assert d not in view["/"], view["/"]


def task_count_after_numpy(stack):
    code = ("import os, numpy as np\n"
            "a = np.random.default_rng(1).random((300, 300)); (a @ a).sum()\n"
            "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))\n")
    threads, tasks = run_ok(stack, "python3", code)["stdout"].split()
    return int(threads), int(tasks)


def test_blas_threads_follow_the_cpu_share(make_stack, stack):
    """OpenBLAS starts one thread per core of the host unless told: in a
    sandbox it gets the CPU share's cores, so a many-core host's numpy does
    not run into pids_limit."""
    assert task_count_after_numpy(stack) == (1, 1)  # cpu_percent = 100: one core
    wide = make_stack(enable_network=False, max_workers=1, warm_sandboxes=1, cpu_percent=300)
    # (OpenBLAS never starts more threads than the host has cores)
    assert task_count_after_numpy(wide) == (3, min(3, os.cpu_count()))
    tight = make_stack(enable_network=False, max_workers=1, warm_sandboxes=1, cpu_percent=800,
                       pids_limit=4)
    assert task_count_after_numpy(tight) == (2, min(2, os.cpu_count()))  # at most half of pids_limit


# ---- an operator's venv and Node modules ------------------------------------------------------

def make_wheel(root, name, version, source):
    """A pure-Python wheel of one module, built by hand (a wheel is a zip file
    with its metadata): what an operator brings from a machine with internet."""
    dist_info = "%s-%s.dist-info" % (name, version)
    files = {"%s/__init__.py" % name: source,
             dist_info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
             dist_info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: sandcell-e2e\n"
                                   "Root-Is-Purelib: true\nTag: py3-none-any\n",
             dist_info + "/top_level.txt": name + "\n"}
    path = os.path.join(root, "wheels", "%s-%s-py3-none-any.whl" % (name, version))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        record = []
        for arcname, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))
            z.writestr(arcname, data)
        z.writestr(dist_info + "/RECORD", "\n".join(record + [dist_info + "/RECORD,,"]) + "\n")
    return path


def pip_install(venv, wheel):
    # from a file, no index: nothing is fetched
    subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-index", wheel],
                   check=True, timeout=300, capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", venv], check=True)


def make_venv(path, *, system):
    args = ["/usr/bin/python3", "-m", "venv", path] + (["--system-site-packages"] if system else [])
    subprocess.run(args, check=True, timeout=300, capture_output=True)
    return path


def make_opt(root):
    venvs = {"own": make_venv(os.path.join(root, "venv-own"), system=False),
             "system": make_venv(os.path.join(root, "venv-system"), system=True)}
    sample = make_wheel(root, "samplepkg", "1.2.3", "VALUE = 42\n")
    # a package the jail breaks the way real ones break: a library it needs is not there
    broken = make_wheel(root, "brokenpkg", "0.1",
                        "import ctypes\nctypes.CDLL('libsandcell-e2e-missing.so.1')\n")
    # a module whose import raises something else than ImportError
    bomb = make_wheel(root, "preloadbomb", "0.1", "raise RuntimeError('not in a zygote')\n")
    for venv in venvs.values():
        pip_install(venv, sample)
    for pkg in (broken, bomb):
        pip_install(venvs["system"], pkg)
    return {"root": root, "venvs": venvs, "later": make_wheel(root, "laterpkg", "2.0", "")}


@pytest.fixture(scope="module")
def opt():
    root = "/opt/sandcell-e2e-%d" % os.getpid()
    os.makedirs(root)
    os.chmod(root, 0o755)
    try:  # removed also when making it fails
        yield make_opt(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def venv_python(venv):
    return os.path.join(venv, "bin", "python3")


def host_distributions(python):
    """What the interpreter itself (on the host) finds, normalised like the API."""
    code = ("import importlib.metadata as md, re\n"
            "print('\\n'.join(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()"
            " for d in md.distributions() if d.metadata['Name']})))\n")
    out = subprocess.run([python, "-I", "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def api_distributions(stack, path="/v1/sandbox/dependencies"):
    from conftest import http
    r = http("GET", stack, path + "?language=python3")
    assert r.status_code == 200, r.text
    return {re.sub(r"[-_.]+", "-", d["name"]).lower() for d in r.json()["data"]["dependencies"]}


@pytest.fixture(scope="module")
def own_venv(make_stack, opt):
    return make_stack(enable_network=False, max_workers=2, warm_sandboxes=1,
                      python_path=venv_python(opt["venvs"]["own"]), python_preload="json samplepkg")


@pytest.fixture(scope="module")
def own_venv_cold(make_stack, opt):
    return make_stack(enable_network=False, max_workers=2, warm_sandboxes=1, zygote_path="",
                      python_path=venv_python(opt["venvs"]["own"]))


@pytest.mark.parametrize("kind", ["zygote", "cold"])
def test_a_venv_is_used_with_exactly_its_packages(request, opt, kind):
    s = request.getfixturevalue("own_venv" if kind == "zygote" else "own_venv_cold")
    venv = opt["venvs"]["own"]
    code = ("import sys\nzygote = 'samplepkg' in sys.modules\nimport samplepkg\n"
            "try:\n    import numpy\n    numpy_ok = True\nexcept ImportError:\n    numpy_ok = False\n"
            "print(sys.prefix, samplepkg.VALUE, numpy_ok, zygote)\n")
    deadline = time.monotonic() + BOUND
    while True:
        out = run_ok(s, "python3", code)["stdout"].split()
        if kind == "cold" or out[-1] == "True" or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the zygote is still starting: that run started cold
    assert out == [venv, "42", "False", str(kind == "zygote")], out


def test_a_system_site_packages_venv_adds_debians(make_stack, opt):
    venv = opt["venvs"]["system"]
    s = make_stack(enable_network=False, max_workers=1, warm_sandboxes=1, python_path=venv_python(venv))
    code = "import sys, samplepkg, numpy, jinja2\nprint(sys.prefix, samplepkg.VALUE)\n"
    assert run_ok(s, "python3", code)["stdout"] == "%s 42\n" % venv
    assert api_distributions(s) == host_distributions(venv_python(venv))


def test_dependencies_list_exactly_the_venvs_and_a_refresh_finds_a_new_one(own_venv, opt):
    venv = opt["venvs"]["own"]
    before = api_distributions(own_venv)
    assert before == host_distributions(venv_python(venv)), before
    assert "samplepkg" in before and "numpy" not in before and "laterpkg" not in before
    pip_install(venv, opt["later"])  # the operator installs something while it runs
    assert "laterpkg" not in api_distributions(own_venv)  # the list is cached ...
    assert "laterpkg" in api_distributions(own_venv, "/v1/sandbox/dependencies/refresh")  # ... until a refresh
    assert run_ok(own_venv, "python3", "import laterpkg; print('ok')")["stdout"] == "ok\n"


def test_the_default_list_is_what_debians_python_finds(stack):
    assert api_distributions(stack) == host_distributions("/usr/bin/python3")


def wait_for_log(stack, text):
    deadline = time.monotonic() + BOUND
    while text not in stack.log(100000):
        assert time.monotonic() < deadline, "no %r in the log:\n%s" % (text, stack.log())
        time.sleep(0.2)


def test_the_import_check_logs_what_the_jail_breaks_and_only_that(make_stack, opt):
    venv = opt["venvs"]["system"]
    s = make_stack(enable_network=False, max_workers=1, warm_sandboxes=1, check_imports=True,
                   python_path=venv_python(venv))
    wait_for_log(s, "import check done")
    warnings = [l for l in s.log(100000).splitlines() if "cannot be imported in the sandbox" in l]

    def about(module):
        return [l for l in warnings if re.search(r' module="?%s"? ' % module, l)]
    broken = about("brokenpkg")
    assert broken and "libsandcell-e2e-missing.so.1" in broken[0], warnings
    assert any("RuntimeError" in l for l in about("preloadbomb")), warnings
    # what works in the jail is not reported (setuptools, which fails only after distutils
    # in the same interpreter, is checked again alone)
    for module in ("numpy", "pandas", "matplotlib", "PIL", "lxml", "openpyxl", "samplepkg",
                   "setuptools", "jinja2", "requests"):
        assert not about(module), (module, warnings)
    assert run_ok(s, "python3", "print(1)")["stdout"] == "1\n"  # and it serves meanwhile


def test_a_preload_module_that_raises_is_logged_and_skipped(make_stack, opt):
    venv = opt["venvs"]["system"]
    s = make_stack(enable_network=False, max_workers=1, warm_sandboxes=1, python_path=venv_python(venv),
                   python_preload="json preloadbomb samplepkg")
    wait_for_log(s, "preloadbomb")
    assert "RuntimeError" in s.log(100000)
    deadline = time.monotonic() + BOUND
    code = "import sys; print('samplepkg' in sys.modules, 'preloadbomb' in sys.modules)"
    while run_ok(s, "python3", code)["stdout"] != "True False\n":
        assert time.monotonic() < deadline, s.log()
        time.sleep(0.2)


def test_data_libraries_preload_in_the_zygote_and_its_scratch_stays_its_own(make_stack):
    """matplotlib writes its font cache while it is imported: the zygote has a
    /tmp of its own for that, which no sandbox it forks can see."""
    s = make_stack(enable_network=False, max_workers=1, warm_sandboxes=1,
                   python_preload="json numpy pandas matplotlib.pyplot")
    code = ("import os, sys\nloaded = [m in sys.modules for m in ('numpy', 'pandas', 'matplotlib.pyplot')]\n"
            "tmp = sorted(os.listdir('/tmp'))\n" + PROGRAMS["matplotlib"][0] +
            "print(loaded, tmp)\n")
    deadline = time.monotonic() + BOUND
    while True:
        out = run_ok(s, "python3", code)["stdout"].split("\n")
        if out[1] == "[True, True, True] []" or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the zygote is still starting: that run started cold
    assert out[1] == "[True, True, True] []", (out[1], s.log())
    check_output("matplotlib", out[0])
    assert "preload modules skipped" not in s.log(100000)


@pytest.mark.parametrize("key", ["python_path", "nodejs_modules"])
def test_an_operator_directory_under_tmp_is_refused_with_a_clear_error(tmp_path, key):
    os.chmod(tmp_path, 0o755)
    venv = make_venv(str(tmp_path / "venv"), system=False)
    value = venv_python(venv) if key == "python_path" else str(tmp_path)
    conf = tmp_path / "c.conf"
    conf.write_text("run_dir = %s/run\ncgroup_name = sandcell-e2e-pkg-%d\nuid_base = %d\n%s = %s\n"
                    % (tmp_path, os.getpid(), 3900000 + os.getpid() % 4096 * 8, key, value))
    r = subprocess.run([os.path.join(builddir(), "sandcell"), "run", "--config", str(conf),
                        "--language", "python3" if key == "python_path" else "nodejs", "-"],
                       input=b"print(1)", capture_output=True, timeout=60)
    assert r.returncode != 0 and b"is under /tmp" in r.stderr, r


@pytest.fixture(scope="module")
def node_modules(opt):
    prefix = os.path.join(opt["root"], "node")
    subprocess.run(["npm", "install", "--prefix", prefix, "--cache", os.path.join(opt["root"], "npm-cache"),
                    "--no-audit", "--no-fund", "--loglevel=error", "lodash@4"],
                   check=True, timeout=300, capture_output=True)
    subprocess.run(["chmod", "-R", "a+rX", prefix], check=True)
    return os.path.join(prefix, "node_modules")


def test_node_modules_are_on_requires_path(make_stack, stack, node_modules):
    s = make_stack(enable_network=False, max_workers=1, warm_sandboxes=1, nodejs_modules=node_modules)
    code = "const _ = require('lodash'); console.log(JSON.stringify(_.chunk([1, 2, 3], 2)))"
    assert run_ok(s, "nodejs", code)["stdout"] == "[[1,2],[3]]\n"
    dify = ("function main({xs}) {\n  const _ = require('lodash');\n"
            "  return {result: _.sum(xs)}\n}\n")
    data = run_ok(s, "nodejs", javascript_script(dify, {"xs": [1, 2, 3]}))
    assert dify_result(data["stdout"]) == {"result": 6}, data
    # and only where configured: the default stack has no such module
    status, body = run(stack, "nodejs", "require('lodash')")
    assert status == 200 and "Cannot find module 'lodash'" in body["data"]["error"], body
