#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS]: builds the libFuzzer harnesses of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined) into ./build-fuzz and runs each for SECONDS
# (default 60), one after the other, on a copy of its seed corpus in a temporary directory:
# the repository is never written to. Exits non-zero on the first crash, leak, timeout or
# sanitizer report, after printing the input that caused it (kept in build-fuzz/crashes/)
# and a hex dump of it. Needs clang, libclang-rt-dev, pkg-config, libfcgi-dev and
# libyajl-dev (./dev fuzz installs them). Outside the autotools build: no configure needed.
#
# Environment: FUZZ_ONLY="request dns_answer" runs only those harnesses; FUZZ_ARGS adds
# libFuzzer options (e.g. FUZZ_ARGS=-jobs=2).
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")/../.."

SECONDS_EACH=${1:-60}
FUZZ_DIR=tests/fuzz
OUT=build-fuzz
CC=${CC:-clang}

[[ "$SECONDS_EACH" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }

# The harnesses, each with the production sources it links (jail_stub.c stands in for
# the executor wherever fcgi/ calls into jail/).
declare -A SOURCES=(
	[request]="fcgi/request.c fcgi/utf8.c"
	[config]="fcgi/config.c fcgi/netaddr.c fcgi/egress_policy.c fcgi/dns_client.c
		fcgi/host_addrs.c fcgi/log.c bpf/egress_rules.c $FUZZ_DIR/jail_stub.c"
	[egress_rule]="fcgi/egress_policy.c fcgi/netaddr.c fcgi/dns_client.c fcgi/host_addrs.c
		fcgi/log.c bpf/egress_rules.c $FUZZ_DIR/jail_stub.c"
	[dns_answer]="fcgi/dns_client.c"
	[fcgi_params]="fcgi/router.c fcgi/request.c fcgi/reply.c fcgi/reply_bound.c fcgi/utf8.c
		fcgi/admission.c fcgi/log.c fcgi/dependencies.c fcgi/script_run.c fcgi/metrics.c fcgi/config.c
		fcgi/netaddr.c fcgi/egress_policy.c fcgi/dns_client.c fcgi/host_addrs.c
		bpf/egress_rules.c jail/outcome.c $FUZZ_DIR/jail_stub.c $FUZZ_DIR/import_check_stub.c"
)
HARNESSES=(request config egress_rule dns_answer fcgi_params)
[[ -n "${FUZZ_ONLY:-}" ]] && read -r -a HARNESSES <<< "$FUZZ_ONLY"

# shellcheck disable=SC2054 # the commas are clang's
SANITIZE=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
# What config.h and Makefile.am give the autotools build (AC_USE_SYSTEM_EXTENSIONS, the
# directory macros); the values do not matter here.
CPPFLAGS=(-D_GNU_SOURCE -I. -DSYSCONFDIR='"/etc"' -DRUNSTATEDIR='"/run"'
	-DPKGLIBEXECDIR='"/usr/libexec/sandcell"')
CFLAGS=(-g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -Wshadow -Werror)

die() {
	echo "fuzz: $*" >&2
	exit 1
}

build() {
	local name=$1 libs
	libs=$(pkg-config --cflags --libs yajl fcgi) || die "pkg-config: yajl or fcgi missing"
	# shellcheck disable=SC2086 # SOURCES and libs are word lists
	"$CC" "${SANITIZE[@]}" "${CPPFLAGS[@]}" "${CFLAGS[@]}" -o "$OUT/fuzz_$name" \
		"$FUZZ_DIR/fuzz_$name.c" ${SOURCES[$name]} $libs -lpthread
}

# Prints the input libFuzzer saved for a failure and keeps it in build-fuzz/crashes/.
report() {
	local name=$1 work=$2 f kept
	mkdir -p "$OUT/crashes/$name"
	for f in "$work"/artifacts/*; do
		[[ -f "$f" ]] || continue
		kept="$OUT/crashes/$name/$(basename "$f")"
		cp "$f" "$kept"
		echo "fuzz: $name: the input: $kept ($(stat -c %s "$f") bytes)"
		od -A x -t x1z -v "$f" | head -n 64
	done
}

run() {
	local name=$1 work rc=0 dict=() log
	work=$(mktemp -d /tmp/sandcell-fuzz.XXXXXX)
	mkdir -p "$work/corpus" "$work/artifacts"
	cp -r "$FUZZ_DIR/corpus/$name/." "$work/corpus/"
	[[ -f "$FUZZ_DIR/$name.dict" ]] && dict=(-dict="$FUZZ_DIR/$name.dict")
	log="$OUT/fuzz_$name.log"
	echo "fuzz: $name for $SECONDS_EACH s ($(find "$work/corpus" -type f | wc -l) seeds)"
	# shellcheck disable=SC2086 # FUZZ_ARGS is a word list
	"$OUT/fuzz_$name" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" \
		${FUZZ_ARGS:-} "$work/corpus" > "$log" 2>&1 || rc=$?
	grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1 || true
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
	if ((rc != 0)); then
		tail -n 80 "$log"
		report "$name" "$work"
		rm -rf "$work"
		die "$name failed (exit status $rc); the whole log: $log"
	fi
	rm -rf "$work"
}

command -v "$CC" >/dev/null || die "$CC not found (./dev fuzz installs it)"
mkdir -p "$OUT"
for name in "${HARNESSES[@]}"; do
	[[ -n "${SOURCES[$name]:-}" ]] || die "no harness named $name"
	build "$name" || die "building fuzz_$name failed"
done
for name in "${HARNESSES[@]}"; do
	run "$name"
done
echo "fuzz: ${#HARNESSES[@]} harnesses, $SECONDS_EACH s each: no crash, leak or sanitizer report"
