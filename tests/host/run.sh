#!/usr/bin/env bash
# run.sh DEB WORKDIR: the real-host test. Boots a genuine Debian 12 guest (systemd as PID 1,
# pure cgroup v2, Debian's 6.1 kernel, AppArmor) under qemu with TCG and no network device at
# all, installs DEB in it with apt, runs guest/guest-checks.py against the service systemd
# started, and fails unless every check passed.
#
#   disk 1 (vda): the guest image (build-image.sh; reused while its inputs are unchanged),
#                 snapshot=on: the image stays pristine
#   disk 2 (vdb): a tar of what the guest needs: DEB, the checks, dify_templates.py
#   disk 3 (vdc): the guest writes a tar of its results here: results.json, checks.log,
#                 the journal of the boot
#
# SANDCELL_HOST_IMAGE_DIR keeps the image between runs (default WORKDIR/image).
set -euo pipefail

deb=$(readlink -f "$1") work=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
image=${SANDCELL_HOST_IMAGE_DIR:-$work/image}
# TCG on 2 cores: boot ~40 s, checks 12-18 min (the data packages' install alone up to 20
# with the host busy, guest-checks.py); anything beyond this is a hang
GUEST_TIMEOUT=${SANDCELL_HOST_TIMEOUT:-2400}

stage() { printf 'host-test: %-28s %4d s\n' "$1" "$2"; }

mkdir -p "$work"
t0=$SECONDS
"$here/build-image.sh" "$deb" "$image"
stage "guest image" $((SECONDS - t0))

rm -rf "$work/in" "$work/results" && mkdir -p "$work/in" "$work/results"
cp "$deb" "$here/guest/guest-checks.py" "$here/../e2e/dify_templates.py" "$work/in/"
tar -cf "$work/input.tar" -C "$work/in" .
truncate -s 64M "$work/results.raw"
dd if=/dev/zero of="$work/results.raw" bs=1M count=1 conv=notrunc status=none

t1=$SECONDS
echo "host-test: booting the guest (console: $work/console.log)"
rc=0
timeout --signal=KILL "$GUEST_TIMEOUT" qemu-system-x86_64 \
	-nodefaults -nic none -display none -no-reboot \
	-accel tcg,thread=multi -cpu max -smp 2 -m 4096 \
	-kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
	-append 'root=/dev/vda rw console=ttyS0 quiet panic=-1 systemd.show_status=0' \
	-drive "file=$image/root.raw,format=raw,if=virtio,snapshot=on" \
	-drive "file=$work/input.tar,format=raw,if=virtio,readonly=on" \
	-drive "file=$work/results.raw,format=raw,if=virtio" \
	-serial "file:$work/console.log" || rc=$?
stage "guest boot and checks" $((SECONDS - t1))
((rc == 0)) || echo "host-test: qemu exited with $rc (137: killed after ${GUEST_TIMEOUT} s)"

tar -xf "$work/results.raw" -C "$work/results" 2>/dev/null || true
if [[ ! -f "$work/results/results.json" ]]; then
	echo "host-test: the guest wrote no results; its console:"
	tail -n 80 "$work/console.log" || true
	exit 1
fi
exec python3 - "$work/results" <<'PY'
import json, sys
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/results.json") if l.strip()]
checks = [r for r in rows if "name" in r]
complete = any(r.get("complete") for r in rows)
failed = [r for r in checks if not r["ok"]]
for r in checks:
    print("%-4s %-90s %6.1f s" % ("ok" if r["ok"] else "FAIL", r["name"], r["seconds"]))
for r in failed:
    print("\n--- FAILED: %s\n%s" % (r["name"], r["detail"]))
print("\nhost-test: %d checks, %d failed%s (results, journal: %s)" % (
    len(checks), len(failed), "" if complete else ", THE GUEST DID NOT FINISH", d))
sys.exit(0 if checks and complete and not failed else 1)
PY
