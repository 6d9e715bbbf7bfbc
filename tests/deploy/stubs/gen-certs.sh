#!/bin/sh
# Stand-in for scripts/gen-certs.sh in tests/deploy/run.sh (no openssl, fast): writes the
# contract's file names into DIR with fake PEM blocks, new leaf ones on every run (the CA is
# kept when present, as the real script does), DIR mode 700 and keys mode 600.
set -eu
dir=$1
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
stamp=$(date +%s%N)
pem() { # pem TYPE TEXT FILE
	{
		printf -- '-----BEGIN %s-----\n' "$1"
		printf '%s' "$2" | base64 | fold -w 64
		printf -- '-----END %s-----\n' "$1"
	} >"$3"
}
names="responder caller client"
[ -s "$dir/ca.pem" ] || names="ca $names"
for n in $names; do
	pem CERTIFICATE "fake $n certificate $stamp" "$dir/$n.pem"
	pem "PRIVATE KEY" "fake $n key $stamp" "$dir/$n-key.pem"
	chmod 644 "$dir/$n.pem"
done
echo "gen-certs stub: wrote $names into $dir" >&2
