#!/usr/bin/env bash
# Build the base image `debian:bookworm-slim` locally, for machines that reach
# Debian's apt mirror but no image registry. Does nothing when the image is
# already present (pulled or built before).
#
# Usage: scripts/build-base-image.sh [--force]
#
# Environment:
#   BASE_IMAGE      tag to create (default debian:bookworm-slim)
#   DEBIAN_MIRROR   mirror for debootstrap and for the image's apt sources
#                   (default http://deb.debian.org/debian)
#   DEBIAN_SECURITY security mirror written to the image's apt sources
#                   (default http://deb.debian.org/debian-security)
#   TRY_PULL=1      try `docker pull` first (off by default: no registry here)
#
# The result is close to Docker's official slim image: debootstrap
# --variant=minbase, the same dpkg path excludes (no docs, man pages or
# locales), apt lists and caches removed.
set -euo pipefail

IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
SUITE=bookworm
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { printf 'build-base-image: %s\n' "$*" >&2; }

if [ "$FORCE" -eq 0 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE already present"
    exit 0
fi

if [ "${TRY_PULL:-0}" = 1 ] && [ "$FORCE" -eq 0 ]; then
    if timeout 120 docker pull "$IMAGE" >&2; then exit 0; fi
    log "pull failed; building $IMAGE with debootstrap"
fi

SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo

if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    log "installing debootstrap"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2
fi
export PATH="$PATH:/usr/sbin:/sbin"

KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
keyring_args=()
if [ -r "$KEYRING" ]; then keyring_args=(--keyring="$KEYRING"); fi

WORK=$(mktemp -d /tmp/ecs-demo-rootfs.XXXXXX)
ROOT="$WORK/rootfs"
cleanup() {
    # unmount anything debootstrap left mounted before removing the tree
    for m in proc sys dev/pts dev; do
        if mountpoint -q "$ROOT/$m" 2>/dev/null; then
            $SUDO umount -l "$ROOT/$m" 2>/dev/null || true
        fi
    done
    $SUDO rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# Same excludes as the official slim image, in place before any package unpacks.
mkdir -p "$ROOT/etc/dpkg/dpkg.cfg.d"
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Drop docs, man pages, info and locales, like the official slim image.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF

log "debootstrap --variant=minbase $SUITE $MIRROR (takes a few minutes)"
$SUDO debootstrap --variant=minbase "${keyring_args[@]}" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    log "debootstrap failed; last lines:"; tail -n 20 "$WORK/debootstrap.log" >&2
    [ -f "$ROOT/debootstrap/debootstrap.log" ] && tail -n 20 "$ROOT/debootstrap/debootstrap.log" >&2
    exit 1
}

# apt sources as in the official image (deb822)
$SUDO rm -f "$ROOT/etc/apt/sources.list"
$SUDO mkdir -p "$ROOT/etc/apt/sources.list.d" "$ROOT/etc/apt/apt.conf.d"
$SUDO tee "$ROOT/etc/apt/sources.list.d/debian.sources" >/dev/null <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# keep images small: no caches, no recommends, no translations
$SUDO tee "$ROOT/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
$SUDO tee "$ROOT/etc/apt/apt.conf.d/docker-no-languages" >/dev/null <<'EOF'
Acquire::Languages "none";
EOF
$SUDO tee "$ROOT/etc/apt/apt.conf.d/docker-autoremove-suggests" >/dev/null <<'EOF'
Apt::AutoRemove::SuggestsImportant "false";
EOF
$SUDO tee "$ROOT/etc/apt/apt.conf.d/docker-gzip-indexes" >/dev/null <<'EOF'
Acquire::GzipIndexes "true";
EOF
# no services may start inside image builds
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$ROOT/usr/sbin/policy-rc.d" >/dev/null
$SUDO chmod 755 "$ROOT/usr/sbin/policy-rc.d"

# trim
$SUDO rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/* "$ROOT"/var/cache/debconf/*-old \
    "$ROOT"/var/log/* "$ROOT"/tmp/* "$ROOT"/var/tmp/* "$ROOT"/debootstrap \
    "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/groff/* \
    "$ROOT"/usr/share/lintian/* "$ROOT"/usr/share/linda/* "$ROOT"/var/lib/dpkg/*-old
$SUDO find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
$SUDO find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
$SUDO find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# the host's resolver and name are not part of the image
: | $SUDO tee "$ROOT/etc/resolv.conf" >/dev/null
echo localhost | $SUDO tee "$ROOT/etc/hostname" >/dev/null
$SUDO mkdir -p "$ROOT/var/lib/apt/lists/partial"

log "importing $IMAGE"
$SUDO tar --numeric-owner --xattrs -C "$ROOT" -c . | docker import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase $SUITE $MIRROR" \
    - "$IMAGE" >&2
log "built $IMAGE: $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"
