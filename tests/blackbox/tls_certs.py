"""Test certificates made with openssl, for the TLS tests of tests/blackbox and tests/hostile.

A CA, a server certificate (SAN responder, localhost, 127.0.0.1; serverAuth+clientAuth like
scripts/gen-certs.sh), a second one for reload tests, a client certificate, an expired client
certificate from the same CA (`openssl ca` can backdate, `openssl x509 -req` cannot), a client
certificate from another CA, and a server certificate naming only another host.
"""

import ssl
import subprocess
from pathlib import Path

OPENSSL_TIMEOUT_S = 30

_REQ_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_EXT_CNF = """\
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:responder,DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[wronghost]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:other-host.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# minimal `openssl ca` configuration, only for the backdated (expired) certificate
_CA_CNF = """\
[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
[policy_any]
commonName = supplied
"""


def openssl(*args, cwd=None, input=None):
    p = subprocess.run(["openssl", *[str(a) for a in args]], cwd=cwd, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=OPENSSL_TIMEOUT_S)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(str(a) for a in args)} failed "
                           f"({p.returncode}): {p.stderr.decode('utf-8', 'replace')}")
    return p.stdout.decode("utf-8", "replace")


class Certs:
    """Every file is a Path; *_key the matching EC P-256 key."""

    def __init__(self, directory):
        self.dir = Path(directory).resolve()
        (self.dir / "req.cnf").write_text(_REQ_CNF)
        (self.dir / "ext.cnf").write_text(_EXT_CNF)
        self._serial = 0x1000
        # different lifetimes, so an expiry metric shows which certificate it read
        self.ca, self.ca_key = self._ca("ca", "mtls test CA", days=60)
        self.other_ca, self.other_ca_key = self._ca("other-ca", "mtls other CA", days=45)
        self.server, self.server_key = self._leaf("server", "responder", "server", days=30)
        self.server_b, self.server_b_key = self._leaf("server-b", "responder", "server",
                                                      days=20)
        self.wronghost, self.wronghost_key = self._leaf("wronghost", "other-host.invalid",
                                                        "wronghost", days=30)
        self.client, self.client_key = self._leaf("client", "operator", "client", days=25)
        self.other_client, self.other_client_key = self._leaf(
            "other-client", "intruder", "client", days=30,
            ca=self.other_ca, ca_key=self.other_ca_key)
        self.expired_client, self.expired_client_key = self._expired_client()
        self.not_pem = self.dir / "not-pem.pem"
        self.not_pem.write_text("this is not PEM\n")

    def _next_serial(self):
        self._serial += 1
        return self._serial

    def _key(self, name):
        path = self.dir / f"{name}-key.pem"
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", path, cwd=self.dir)
        return path

    def _ca(self, name, cn, days):
        key = self._key(name)
        cert = self.dir / f"{name}.pem"
        openssl("req", "-x509", "-new", "-config", "req.cnf", "-extensions", "v3_ca",
                "-key", key, "-subj", f"/CN={cn}", "-days", days, "-sha256",
                "-set_serial", self._next_serial(), "-out", cert, cwd=self.dir)
        return cert, key

    def _csr(self, name, cn):
        key = self._key(name)
        csr = self.dir / f"{name}.csr"
        openssl("req", "-new", "-config", "req.cnf", "-key", key, "-subj", f"/CN={cn}",
                "-out", csr, cwd=self.dir)
        return csr, key

    def _leaf(self, name, cn, profile, days, ca=None, ca_key=None):
        csr, key = self._csr(name, cn)
        cert = self.dir / f"{name}.pem"
        openssl("x509", "-req", "-in", csr, "-CA", ca or self.ca, "-CAkey",
                ca_key or self.ca_key, "-set_serial", self._next_serial(), "-days", days,
                "-sha256", "-extfile", "ext.cnf", "-extensions", profile, "-out", cert,
                cwd=self.dir)
        return cert, key

    def _expired_client(self):
        db = self.dir / "ca-db"
        (db / "newcerts").mkdir(parents=True)
        (db / "index.txt").write_text("")
        (db / "serial").write_text(f"{self._next_serial():X}\n")
        (db / "ca.cnf").write_text(_CA_CNF.format(dir=db))
        csr, key = self._csr("expired-client", "expired operator")
        cert = self.dir / "expired-client.pem"
        openssl("ca", "-batch", "-config", db / "ca.cnf", "-cert", self.ca,
                "-keyfile", self.ca_key, "-in", csr, "-out", cert, "-notext",
                "-startdate", "200101000000Z", "-enddate", "200201000000Z",
                "-extfile", "ext.cnf", "-extensions", "client", cwd=self.dir)
        return cert, key

    # -- facts about a certificate, from openssl

    def not_after(self, path):
        """notAfter as a unix time."""
        out = openssl("x509", "-in", path, "-enddate", "-noout").strip()
        return ssl.cert_time_to_seconds(out.partition("=")[2])

    @staticmethod
    def serial(path):
        return openssl("x509", "-in", path, "-serial", "-noout").strip().partition("=")[2]

    @staticmethod
    def serial_of_der(der):
        out = openssl("x509", "-inform", "DER", "-serial", "-noout", input=der)
        return out.strip().partition("=")[2]

    @staticmethod
    def der(path):
        return ssl.PEM_cert_to_DER_cert(Path(path).read_text())

    def ctx(self, cert=None, key=None, tls_max=None):
        """A client context trusting the CA (and checking the name), presenting cert/key
        (default the good client certificate)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.ca))
        ctx.load_cert_chain(str(cert or self.client), str(key or self.client_key))
        if tls_max is not None:
            ctx.maximum_version = ssl.TLSVersion[tls_max]
        return ctx
