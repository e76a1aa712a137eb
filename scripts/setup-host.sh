#!/usr/bin/env bash
# Installs the Debian packages dmabox's tests and lab need, only those missing, and says what it did.
# Idempotent and quick when everything is there. Run as root on Debian 12 (apt-get update is run once
# when something must be installed). Used by `npm test` (pretest) and by .ci/run.
set -euo pipefail

# gcc + linux-libc-dev: the vfio.h layout test compiles a C program against the kernel header.
# qemu-system-x86, busybox-static, cpio, kmod: the lab (appliance/lab); xz-utils: the lab unpacks the guest
# kernel's vmlinux from the xz bzImage to boot it through PVH (seconds faster under TCG).
# libnbd-bin, nbdkit, qemu-utils, fio, nbd-client: real NBD clients and peers for linkback tests and benches.
# iproute2, iputils-ping: network namespaces and ping for the TAP tests; e2fsprogs: mkfs.ext4 and e2fsck for the lab NBD test.
# openssl: the NBD TLS tests make a CA and a server certificate with it.
# squashfs-tools, cryptsetup-bin: appliance images (a SquashFS root, dm-verity: mksquashfs, veritysetup).
# bubblewrap: each confined container in its own namespaces with a minimal read-only root; util-linux
# (setpriv, essential on Debian) switches it to its sandbox's identity (sandbox/spawner/launch.ts).
PACKAGES=(gcc libc6-dev linux-libc-dev qemu-system-x86 busybox-static cpio kmod xz-utils libnbd-bin nbdkit qemu-utils fio nbd-client iproute2 iputils-ping e2fsprogs bubblewrap util-linux openssl squashfs-tools cryptsetup-bin)

# systemd: systemd-analyze verifies packaging/systemd/dmabox.service (test/packaging/systemd.test.ts); installing
# the package does not make systemd PID 1.
PACKAGES+=(systemd)

# promtool (`promtool check metrics`, test/ops/up-ops.test.ts) ships in Debian's `prometheus` package, whose
# postinst enables and starts a Prometheus server. A test host needs the checker, not a server listening on
# :9090, so the package is downloaded and unpacked into .cache/prometheus (never installed, nothing started);
# the tests look there after PATH.
PROMTOOL_DIR="$(cd "$(dirname "$0")/.." && pwd)/.cache/prometheus"
promtool_missing() { ! command -v promtool >/dev/null 2>&1 && [ ! -x "$PROMTOOL_DIR/usr/bin/promtool" ]; }
fetch_promtool() {
  local tmp
  tmp="$(mktemp -d)"
  (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null) || { echo "setup-host: apt-get download prometheus failed" >&2; rm -rf "$tmp"; return 0; }
  mkdir -p "$PROMTOOL_DIR"
  dpkg-deb -x "$tmp"/prometheus_*.deb "$PROMTOOL_DIR"
  rm -rf "$tmp"
  echo "setup-host: promtool unpacked into $PROMTOOL_DIR (the prometheus package is not installed)"
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  if promtool_missing && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    fetch_promtool
  fi
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: missing Debian packages: ${missing[*]}" >&2
  echo "setup-host: not root, so not installing them; as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 0
fi

echo "setup-host: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if promtool_missing; then fetch_promtool; fi
echo "setup-host: done"
