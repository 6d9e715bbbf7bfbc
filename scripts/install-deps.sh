#!/bin/sh
# Installs the Debian packages that building and testing need, when any is missing.
# Runs as root or through sudo; otherwise prints the one command to run and fails.
set -eu

packages="build-essential pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev \
libcmocka-dev python3 python3-pytest curl shellcheck"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
# The deployment tests validate against AWS's model with Node.js; any Node.js will do.
command -v node >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0

cmd="apt-get update && apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	sudo="sudo"
else
	echo "Missing packages:$missing" >&2
	echo "Install them with: sudo sh -c '$cmd'" >&2
	exit 1
fi
echo "Installing:$missing" >&2
$sudo apt-get update -q
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
