#!/usr/bin/env bash
# customize.sh ROOT GUESTDIR: mmdebstrap's customize hook for the real-host test's guest
# (run on this machine, ROOT is the finished guest tree). Boot from /dev/vda, no timers that
# take dpkg's lock at boot, and the test unit enabled.
set -euo pipefail
root=$1 guest=$2

echo 'sandcell-guest' > "$root/etc/hostname"
printf '127.0.1.1\tsandcell-guest\n' >> "$root/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$root/etc/fstab"
# Debian's data libraries, downloaded with what they need but not installed: the test installs
# them in the guest as an operator would (guest-checks.py: data_packages). Before the
# resolver goes: apt fetches them now, through this machine's network. python3-munkres
# satisfies fonttools' "python3-scipy | python3-munkres" (scipy would bring pythran and a
# compiler: minutes of installing under TCG, nothing that matters here).
debs=/var/local/sandcell-test-debs
mkdir -p "$root$debs/partial"
chroot "$root" apt-get install -y -q --download-only --no-install-recommends \
	-o Dir::Cache::archives="$debs/" python3-numpy python3-pandas python3-matplotlib \
	python3-munkres >/dev/null
rm -rf "$root$debs/partial" "$root$debs/lock"
# not this machine's resolver (mmdebstrap copied it in): a documentation address, unreachable
echo 'nameserver 198.51.100.53' > "$root/etc/resolv.conf"
# the guest has no network: nothing may wait for it or fetch anything at boot
systemctl --root="$root" mask apt-daily.timer apt-daily-upgrade.timer man-db.timer \
	e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service \
	>/dev/null 2>&1
install -m 0755 "$guest/boot.sh" "$root/usr/local/sbin/sandcell-host-test"
install -m 0644 "$guest/sandcell-host-test.service" "$root/etc/systemd/system/sandcell-host-test.service"
systemctl --root="$root" enable sandcell-host-test.service
# the journal of the whole boot is part of the results
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\n' > "$root/etc/systemd/journald.conf.d/host-test.conf"
