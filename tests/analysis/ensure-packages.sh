#!/bin/sh
# Installs the given Debian packages when any is missing (apt-get update first); as root, or
# through passwordless sudo. Used by tests/fuzz/run.sh and tests/analysis/*.sh, which CI runs on
# a fresh machine.   usage: tests/analysis/ensure-packages.sh PACKAGE...
set -eu

missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo="sudo"
else
	echo "Missing packages:$missing" >&2
	echo "Install them with: sudo sh -c 'apt-get update && apt-get install -y$missing'" >&2
	exit 1
fi
echo "Installing:$missing" >&2
$sudo apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
