#!/usr/bin/env bash
# Install a Docker engine (Debian's docker.io) and docker-compose when missing,
# and start dockerd in the background when none answers.
#
# Usage: scripts/install-docker.sh
#
# Environment:
#   DOCKERD_PIDFILE   where to write the PID of a dockerd this script starts
#                     (default /tmp/ecs-demo-dockerd.pid). Nothing is written
#                     when a daemon already answers.
#   DOCKERD_LOG       dockerd's log (default /tmp/ecs-demo-dockerd.log)
#   DOCKERD_DATA_ROOT dockerd's --data-root (default: dockerd's own, /var/lib/docker)
#   DOCKERD_WAIT_S    how long to wait for the daemon to answer (default 60)
#
# Notes for sandboxes (this is what the CI machine needs):
#   * /usr/local/bin/docker may be a bare client: the engine is detected by
#     `dockerd`, not `docker`.
#   * there is no init system: dockerd is started by hand, not via systemctl.
#   * the storage driver is overlay2 when the kernel and the backing file
#     system allow it, vfs otherwise.
#   * when iptables cannot be used, dockerd is restarted with --iptables=false
#     (published ports still work through docker-proxy).
set -euo pipefail

PIDFILE=${DOCKERD_PIDFILE:-/tmp/ecs-demo-dockerd.pid}
LOG=${DOCKERD_LOG:-/tmp/ecs-demo-dockerd.log}
WAIT_S=${DOCKERD_WAIT_S:-60}
SOCK=/var/run/docker.sock

log() { printf 'install-docker: %s\n' "$*" >&2; }

# Root needs nothing more; others need sudo, but only to install or start.
SUDO=
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi

apt_install() {
    log "apt-get install $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        apt_updated=1
    fi
}

# --- 1. packages -------------------------------------------------------------
need=()
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
# The iptables binary is a dependency of docker.io, but check it anyway.
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need+=(iptables)
# Compose: either the v2 plugin (`docker compose`) or Debian's docker-compose 1.29.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
    need+=(docker-compose)
fi
if [ "${#need[@]}" -gt 0 ]; then
    apt_update_once
    # policy-rc.d: no init system here; do not let postinst try to start services.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    rc=0
    apt_install "${need[@]}" || rc=$?
    # Ubuntu 24.04 ships Compose v2 as docker-compose-v2 (both in universe).
    if [ "$rc" -ne 0 ] && [[ " ${need[*]} " == *" docker-compose "* ]]; then
        log "docker-compose did not install; trying docker-compose-v2"
        rc=0
        apt_install "${need[@]/#docker-compose/docker-compose-v2}" || rc=$?
    fi
    if [ "$created_policy" -eq 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
    if [ "$rc" -ne 0 ]; then log "apt-get install failed ($rc)"; exit 1; fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

# --- 2. daemon ---------------------------------------------------------------
daemon_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if daemon_answers; then
    log "a Docker daemon already answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
    exit 0
fi

# A stale PID file of ours pointing to a live dockerd that does not answer yet.
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null \
    && [ "$(ps -o comm= -p "$(cat "$PIDFILE")" 2>/dev/null)" = dockerd ]; then
    log "dockerd $(cat "$PIDFILE") from $PIDFILE is running; waiting for it"
    for _ in $(seq 1 "$WAIT_S"); do daemon_answers && exit 0; sleep 1; done
    log "dockerd $(cat "$PIDFILE") does not answer"; exit 1
fi

# On a host run by systemd (a usual Debian or Ubuntu machine) the packaged service runs the
# engine; starting dockerd by hand there would race it.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 \
    && systemctl cat docker.service >/dev/null 2>&1; then
    log "starting docker.service"
    $SUDO systemctl start docker.service
    for _ in $(seq 1 "$WAIT_S"); do daemon_answers && exit 0; sleep 1; done
    log "docker.service does not answer; see: journalctl -u docker.service"
    exit 1
fi

storage_driver() {
    # overlay2 needs the overlay file system and a backing fs that supports it
    # (not overlay itself, e.g. when nested in a container).
    local root=${DOCKERD_DATA_ROOT:-/var/lib/docker}
    $SUDO mkdir -p "$root"
    local fstype
    fstype=$(stat -f -c %T "$root" 2>/dev/null || echo unknown)
    if grep -qw overlay /proc/filesystems && [ "$fstype" != overlayfs ] && [ "$fstype" != "overlay" ]; then
        echo overlay2
    else
        echo vfs
    fi
}

iptables_works() {
    $SUDO iptables -t nat -L -n >/dev/null 2>&1
}

mount_cgroups() {
    # dockerd (cgroupfs driver) needs a cgroup hierarchy; mount one if none.
    if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && [ ! -d /sys/fs/cgroup/memory ] \
        && ! mountpoint -q /sys/fs/cgroup 2>/dev/null; then
        log "mounting cgroup2 on /sys/fs/cgroup"
        $SUDO mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null || true
    fi
}

start_dockerd() {
    local args=("$@")
    log "starting dockerd ${args[*]} (log: $LOG)"
    # setsid: own session, so the caller's job control never signals it;
    # the PID written is dockerd's own.
    $SUDO setsid dockerd "${args[@]}" >>"$LOG" 2>&1 < /dev/null &
    local pid=$!
    echo "$pid" > "$PIDFILE"
    for _ in $(seq 1 "$WAIT_S"); do
        if daemon_answers; then
            log "dockerd $pid answers on $SOCK"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "dockerd exited early; last lines of $LOG:"
            tail -n 15 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            return 1
        fi
        sleep 1
    done
    log "dockerd $pid did not answer within ${WAIT_S}s; stopping it"
    $SUDO kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    rm -f "$PIDFILE"
    return 1
}

mount_cgroups
$SUDO sysctl -q -w net.ipv4.ip_forward=1 >/dev/null 2>&1 || true
driver=$(storage_driver)
base=(--host "unix://$SOCK" --storage-driver "$driver" --pidfile /var/run/ecs-demo-dockerd.pid)
[ -n "${DOCKERD_DATA_ROOT:-}" ] && base+=(--data-root "$DOCKERD_DATA_ROOT")

if ! iptables_works; then
    # Debian 12's iptables defaults to nft; try the legacy backend.
    if command -v iptables-legacy >/dev/null 2>&1 && $SUDO iptables-legacy -t nat -L -n >/dev/null 2>&1; then
        log "iptables (nft) unusable; switching to iptables-legacy"
        $SUDO update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null 2>&1 || true
        $SUDO update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
    fi
fi

if iptables_works; then
    start_dockerd "${base[@]}" && exit 0
    log "retrying without iptables"
fi
if start_dockerd "${base[@]}" --iptables=false --ip-masq=false; then exit 0; fi
if [ "$driver" != vfs ]; then
    log "retrying with the vfs storage driver"
    base=(--host "unix://$SOCK" --storage-driver vfs --pidfile /var/run/ecs-demo-dockerd.pid)
    [ -n "${DOCKERD_DATA_ROOT:-}" ] && base+=(--data-root "$DOCKERD_DATA_ROOT")
    start_dockerd "${base[@]}" --iptables=false --ip-masq=false && exit 0
fi
log "could not start dockerd"
exit 1
