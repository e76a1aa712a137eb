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

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
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
echo "setup-host: done"
