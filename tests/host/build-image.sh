#!/usr/bin/env bash
# build-image.sh DEB OUTDIR: a Debian 12 guest for the real-host test, built with mmdebstrap
# from this machine's own apt sources, and written as OUTDIR/root.raw (ext4, no partition
# table), OUTDIR/vmlinuz and OUTDIR/initrd.img.
#
# The guest holds what a user's server would hold before `apt install ./sandcell_*.deb`:
# systemd, Debian's kernel, AppArmor, nginx, and every package the .deb depends on or
# recommends (the guest has no network, so apt must find them installed), plus the test's own
# tools. sandcell itself is NOT in the image: the test installs it with apt inside the booted
# guest, as a user would. A unit, sandcell-host-test.service, runs the test at boot (see
# guest/boot.sh).
#
# The image is rebuilt only when its inputs change: OUTDIR/key holds a hash of this script,
# the guest's boot files and the package list.
set -euo pipefail

deb=$1 out=$2
here=$(dirname "$(readlink -f "$0")")

# The tools and services the test uses inside the guest, on top of the .deb's own dependencies.
GUEST_TOOLS=(linux-image-amd64 systemd-sysv dbus libpam-systemd apparmor iproute2 procps
	python3 util-linux kmod e2fsprogs)

# The .deb's Depends and Recommends, first alternative of each, without versions.
deb_packages() {
	{ dpkg-deb -f "$1" Depends; dpkg-deb -f "$1" Recommends; } | tr ',' '\n' |
		sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' -e '/^$/d' -e '/^\$/d' | sort -u
}

# The bookworm suites this machine's apt already uses ("deb URI SUITE COMPONENT" lines): the
# mirror is read from the apt configuration at run time, never written into the repository.
apt_sources() {
	apt-get indextargets --format '$(TARGET_OF) $(REPO_URI) $(RELEASE) $(COMPONENT) $(ARCHITECTURE) $(IDENTIFIER)' |
		awk '$1 == "deb" && $5 == "amd64" && $6 == "Packages" && $3 ~ /^bookworm/ { print "deb " $2 " " $3 " " $4 }' |
		sort -u
}

mapfile -t packages < <( { deb_packages "$deb"; printf '%s\n' "${GUEST_TOOLS[@]}"; } | sort -u)
mapfile -t sources < <(apt_sources)
((${#sources[@]} > 0)) || { echo "build-image: no bookworm apt sources on this machine" >&2; exit 1; }

key=$( { cat "$0" "$here"/customize.sh "$here"/guest/boot.sh "$here"/guest/sandcell-host-test.service
	printf '%s\n' "${packages[@]}" "${sources[@]}"; } | sha256sum | cut -d' ' -f1)
if [[ -f "$out/key" && "$(cat "$out/key")" == "$key" && -f "$out/root.raw" ]]; then
	echo "build-image: $out is current"
	exit 0
fi

mkdir -p "$out"
rm -f "$out/key" "$out/root.raw"
root=$(mktemp -d "$out/root.XXXXXX")
trap 'rm -rf "$root"' EXIT
echo "build-image: mmdebstrap bookworm with ${packages[*]}"
include=$(IFS=,; echo "${packages[*]}")
mmdebstrap --mode=root --variant=important --include="$include" \
	--customize-hook="$here/customize.sh \"\$1\" $here/guest" \
	bookworm "$root" "${sources[@]}"
cp "$root"/boot/vmlinuz-* "$out/vmlinuz"
cp "$root"/boot/initrd.img-* "$out/initrd.img"
# room for the test's own files and logs; sparse
mkfs.ext4 -q -F -L sandcell-guest -d "$root" "$out/root.raw" 4G
echo "$key" > "$out/key"
echo "build-image: $out/root.raw ($(du -h --apparent-size "$out/root.raw" | cut -f1), $(du -h "$out/root.raw" | cut -f1) used)"
