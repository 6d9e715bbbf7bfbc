#!/bin/sh
# Dev certificates for mutual TLS between the daemons (docs/mtls.md), made with openssl.
#
# Usage: scripts/gen-certs.sh DIR
#
# Writes into DIR (mode 700; keys mode 600, certificates 644):
#   ca.pem, ca-key.pem                 dev CA, CN "ecs-service-connect-demo dev CA"
#   responder.pem, responder-key.pem   SAN DNS:responder, DNS:localhost, IP:127.0.0.1;
#                                      serverAuth + clientAuth
#   caller.pem, caller-key.pem         SAN DNS:caller, DNS:localhost, IP:127.0.0.1;
#                                      serverAuth + clientAuth (it serves and is the
#                                      caller's client identity to the responder)
#   client.pem, client-key.pem         CN "operator", clientAuth only: for curl
# EC P-256 keys, random 128-bit serials.
#
# Run again, it keeps DIR's CA and makes new leaf keys and certificates signed by it: that is
# the rotation step (then SIGHUP the daemons). Each file is replaced by a rename, so a reader
# never sees half a file. FORCE=1 makes a new CA as well (every peer then needs the new ca.pem).
#
# Environment:
#   DAYS       leaf validity in days (default 365)
#   CA_DAYS    validity of a new CA in days (default 3650)
#   FORCE=1    replace the CA too
#   KEY_GROUP  group (name or gid) given read access: DIR 750, leaf keys 640 (ca-key.pem stays
#              600: no daemon needs it), all owned by that group. The images run as uid/gid
#              10001, which cannot read a 600 key of yours. For compose.mtls.yaml, as yourself:
#                KEY_GROUP=$(id -g) scripts/gen-certs.sh certs   and CERTS_GID=$(id -g) for compose
#              (it adds your group to the daemons' processes); as root: KEY_GROUP=10001.
set -eu

log() { printf 'gen-certs: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [ $# -ne 1 ] || [ -z "$1" ]; then die "usage: $0 DIR"; fi
dir=$1
days=${DAYS:-365}
ca_days=${CA_DAYS:-3650}
for v in "$days" "$ca_days"; do
	case $v in '' | *[!0-9]* | 0*) die "DAYS=$days CA_DAYS=$ca_days: expected positive integers" ;; esac
done
command -v openssl >/dev/null 2>&1 || die "openssl not found (apt-get install openssl)"

umask 077
dmode=700 kmode=600
[ -z "${KEY_GROUP:-}" ] || { dmode=750 kmode=640; }
mkdir -p "$dir"
chmod "$dmode" "$dir"
[ -z "${KEY_GROUP:-}" ] || chgrp "$KEY_GROUP" "$dir"
work=$(mktemp -d "$dir/.gen-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT PIPE TERM

# run CMD...: quiet unless it fails
run() { "$@" >"$work/err" 2>&1 || { cat "$work/err" >&2; die "failed: $*"; }; }
newkey() { run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
serial() { echo "0x$(openssl rand -hex 16)"; }

cat >"$work/openssl.cnf" <<'EOF2'
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[responder]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:responder, DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[caller]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:caller, DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF2

if [ -f "$dir/ca.pem" ] && [ -f "$dir/ca-key.pem" ] && [ "${FORCE:-0}" != 1 ]; then
	log "keeping the CA in $dir (FORCE=1 replaces it)"
	openssl x509 -in "$dir/ca.pem" -noout -checkend $((days * 86400)) >/dev/null ||
		log "warning: the CA expires within $days days, before the new certificates do"
	ca=$dir files=""
else
	if [ "${FORCE:-0}" != 1 ] && { [ -f "$dir/ca.pem" ] || [ -f "$dir/ca-key.pem" ]; }; then
		die "$dir has only one of ca.pem and ca-key.pem; FORCE=1 makes a new CA"
	fi
	newkey "$work/ca-key.pem"
	run openssl req -new -x509 -config "$work/openssl.cnf" -extensions ca \
		-key "$work/ca-key.pem" -subj "/CN=ecs-service-connect-demo dev CA" -days "$ca_days" \
		-sha256 -set_serial "$(serial)" -out "$work/ca.pem"
	ca=$work files="ca.pem ca-key.pem"
fi

for name in responder caller client; do
	cn=$name
	[ "$name" = client ] && cn=operator
	newkey "$work/$name-key.pem"
	run openssl req -new -config "$work/openssl.cnf" -key "$work/$name-key.pem" -subj "/CN=$cn" \
		-out "$work/$name.csr"
	run openssl x509 -req -in "$work/$name.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" \
		-set_serial "$(serial)" -days "$days" -sha256 -extfile "$work/openssl.cnf" \
		-extensions "$name" -out "$work/$name.pem"
	run openssl verify -CAfile "$ca/ca.pem" "$work/$name.pem"
	files="$files $name.pem $name-key.pem"
done

# The CA key stays 600: no daemon needs it.
for f in $files; do
	case $f in
	ca-key.pem) ;;
	*-key.pem) chmod "$kmode" "$work/$f" ;;
	*) chmod 644 "$work/$f" ;;
	esac
	[ -z "${KEY_GROUP:-}" ] || chgrp "$KEY_GROUP" "$work/$f"
done
for f in $files; do mv -f "$work/$f" "$dir/$f"; done

for name in ca responder caller client; do
	log "$(openssl x509 -in "$dir/$name.pem" -noout -subject -serial -enddate | tr '\n' ' ')"
done
