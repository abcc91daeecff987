"""The harness checks itself: a leftovers() that can see nothing would make
every "nothing is left" assertion of the suite pass vacuously."""

import os
import signal
import subprocess
import tempfile
import threading
import time

from conftest import assert_clean, run_ok


def test_stack_facts(stack):
    assert os.path.isdir(stack.cgroup_parent()), stack.cgroup_parent()
    assert os.path.exists(stack.socket_path)
    st = os.stat(stack.socket_path)
    assert st.st_mode & 0o007 == 0, oct(st.st_mode)  # nginx's group, nobody else
    assert_clean(stack)


def test_leftovers_sees_a_running_sandbox(stack):
    result = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "data", run_ok(stack, "python3", "import time\ntime.sleep(3)\nprint('done')")))
    t.start()
    seen = []
    deadline = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < deadline:
        seen = stack.leftovers()
        if any(p.startswith("process") for p in seen) and any(p.startswith("cgroup") for p in seen):
            break
        time.sleep(0.1)
    t.join(60)
    assert result["data"]["stdout"] == "done\n"
    assert any(p.startswith("process") for p in seen), seen
    assert any(p.startswith("cgroup") for p in seen), seen
    assert_clean(stack)


def test_leftovers_sees_a_process_with_a_sandbox_uid(stack):
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(stack.uid_base)
            os.setuid(stack.uid_base)
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while not any(str(pid) in p for p in stack.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(str(pid) in p for p in stack.leftovers()), stack.leftovers()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert_clean(stack)


def test_leftovers_sees_a_file_in_run_dir(stack):
    path = os.path.join(stack.run_dir, "stray")
    open(path, "w").close()
    try:
        assert any("stray" in p for p in stack.leftovers()), stack.leftovers()
    finally:
        os.unlink(path)
    assert_clean(stack)


def _with_tmpfs_at(path, fn):
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "sandcell-e2e", path], check=True)
    try:
        return fn()
    finally:
        subprocess.run(["umount", path], check=True)
        os.rmdir(path)


def test_leftovers_sees_a_mount_of_its_own_and_not_another_programs(stack):
    ours = _with_tmpfs_at(os.path.join(stack.run_dir, "root-stray"), stack.leftovers)
    assert any(p.startswith("new mount") and "root-stray" in p for p in ours), ours
    elsewhere = tempfile.mkdtemp(prefix="sandcell-e2e-other-")
    try:
        theirs = _with_tmpfs_at(os.path.join(elsewhere, "m"), stack.leftovers)
    finally:
        os.rmdir(elsewhere)
    assert not any(p.startswith("new mount") for p in theirs), theirs
    assert_clean(stack)
