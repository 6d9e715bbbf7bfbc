#!/bin/sh
# Installs Debian packages when any is missing: the given ones; with --build, what building and
# running the daemons need (`make run`); with no arguments, that and what testing needs. As
# root or through passwordless sudo; otherwise prints the one command to run and fails. Used by
# `make run`, `make test` and every script that needs a tool (bench, fuzz, analysis), since CI
# and new users start on a fresh machine.
#   scripts/install-deps.sh [--build | PACKAGE...]
set -eu

build="build-essential pkg-config libmicrohttpd-dev libjansson-dev libgnutls28-dev \
libcurl4-openssl-dev curl"
if [ "${1:-}" = --build ]; then
	packages=$build
elif [ $# -gt 0 ]; then
	packages="$*"
else
	packages="$build libcmocka-dev python3 python3-pytest openssl shellcheck slowhttptest \
nghttp2-client testssl.sh nginx gnuplot-nox"
	# The deployment tests validate against AWS's model with Node.js; any Node.js will do.
	command -v node >/dev/null 2>&1 || packages="$packages nodejs npm"
fi

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
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
echo "Installing Debian packages (usually a minute or two):$missing" >&2
$sudo apt-get update -q
# Packages such as nginx would start their system service; the scripts here start what they
# need themselves, so a policy-rc.d refuses service starts during this install (only when
# there is none already, and removed afterwards).
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
fi
status=0
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing ||
	status=$?
[ -z "$policy" ] || $sudo rm -f "$policy"
exit $status
