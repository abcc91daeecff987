#!/bin/sh
# sandcell-host-test: runs at boot in the real-host test's guest (tests/host).
# /dev/vdb: a tar with the .deb and the checks (in), /dev/vdc: a tar of the results (out).
# Whatever happens, the results disk is written and the guest powers off.
set -u
work=/root/host-test
echo "host-test: boot state: $(systemctl is-system-running --wait)"
rm -rf "$work"; mkdir -p "$work/results"
if tar -xf /dev/vdb -C "$work"; then
	(cd "$work" && ./guest-checks.py results) 2>&1 | tee "$work/results/checks.log"
else
	echo "host-test: cannot read the input disk" | tee "$work/results/checks.log"
fi
journalctl -b --no-pager -o short-monotonic > "$work/results/journal.txt" 2>&1
systemd-analyze > "$work/results/boot-time.txt" 2>&1
tar -cf /dev/vdc -C "$work/results" .
sync
echo "host-test: done, powering off"
systemctl poweroff
