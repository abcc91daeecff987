#!/bin/sh
# End-to-end tests: pytest speaking HTTP to a real nginx in front of a real
# sandcelld running real jails (tests/e2e/stack.py starts and stops them).
# Run by `make check` with SANDCELL_BUILDDIR, SANDCELL_SRCDIR, PYTHON3 and
# NGINX in the environment; runnable by hand the same way.
#
# Not being root is a failure, not a skip: CI must never pass without them.

fail() {
	echo "run-e2e.sh: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || fail "the end-to-end tests must run as root (they start nginx, sandcelld and jails); run 'make check' as root"

here=$(cd "$(dirname "$0")" && pwd)
: "${SANDCELL_SRCDIR:=$(cd "$here/../.." && pwd)}"
: "${SANDCELL_BUILDDIR:=$(pwd)}"
: "${PYTHON3:=/usr/bin/python3}"
: "${NGINX:=nginx}"
export SANDCELL_SRCDIR SANDCELL_BUILDDIR PYTHON3 NGINX

[ -x "$SANDCELL_BUILDDIR/sandcelld" ] || fail "no sandcelld in $SANDCELL_BUILDDIR (build it first)"
command -v "$NGINX" >/dev/null 2>&1 || fail "nginx not found ($NGINX); install nginx"
"$PYTHON3" -c 'import pytest, requests' 2>/dev/null ||
	fail "$PYTHON3 cannot import pytest and requests; install python3-pytest python3-requests"

# The source tree may be read-only (distcheck): no cache, no bytecode.
export PYTHONDONTWRITEBYTECODE=1
"$PYTHON3" -m pytest -v -p no:cacheprovider --rootdir "$SANDCELL_SRCDIR/tests/e2e" \
	"$SANDCELL_SRCDIR/tests/e2e"
rc=$?
case $rc in
0) ;;
5) fail "pytest collected no tests: that is a failure" ;;
77) exit 1 ;;  # never let a pytest status look like automake's "skipped"
esac
exit $rc
