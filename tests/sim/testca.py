"""Test PKI made with the openssl command line (Debian's openssl): a CA, a
server certificate for localhost, 127.0.0.1 and vault.test, a client
certificate, a second unrelated CA (for "wrong CA" tests) with a server
certificate of its own for the same names, and an RSA key pair for signing
service-account JWTs.  Nothing here is a real secret.

    pki = TestPki(directory)      # creates everything once
    pki.ca_cert, pki.server_cert, pki.server_key, pki.client_cert,
    pki.client_key, pki.other_ca_cert, pki.other_server_cert,
    pki.other_server_key, pki.jwt_key, pki.jwt_pub
    pki.sign_jwt(claims_dict) -> compact RS256 JWS string
    pki.server_pubkey_pin() -> "sha256//BASE64" for curl's pinned public key
"""

import base64
import json
import os
import subprocess

DAYS = "2"
SERVER_EXT = ("subjectAltName=DNS:localhost,DNS:vault.test,IP:127.0.0.1\n"
              "extendedKeyUsage=serverAuth\n")


def _run(args, **kw):
    subprocess.run(args, check=True, capture_output=True, timeout=60, **kw)


class TestPki:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        p = lambda name: os.path.join(directory, name)  # noqa: E731
        self.ca_cert, self.ca_key = p("ca.pem"), p("ca.key")
        self.other_ca_cert, self.other_ca_key = p("other-ca.pem"), p("other-ca.key")
        self.server_cert, self.server_key = p("server.pem"), p("server.key")
        self.client_cert, self.client_key = p("client.pem"), p("client.key")
        self.other_server_cert = p("other-server.pem")
        self.other_server_key = p("other-server.key")
        self.jwt_key, self.jwt_pub = p("jwt.key"), p("jwt.pub")
        if not os.path.exists(self.jwt_pub):
            self._make()
        if not os.path.exists(self.other_server_cert):
            self._leaf(self.other_server_cert, self.other_server_key,
                       "localhost", SERVER_EXT, self.other_ca_cert,
                       self.other_ca_key)
            os.chmod(self.other_server_key, 0o600)

    def _ca(self, cert, key, cn):
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
              "-keyout", key, "-out", cert, "-days", DAYS, "-subj",
              "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def _leaf(self, cert, key, cn, ext, ca_cert=None, ca_key=None):
        csr = cert + ".csr"
        extfile = cert + ".ext"
        with open(extfile, "w") as f:
            f.write(ext)
        _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout",
              key, "-out", csr, "-subj", "/CN=" + cn])
        _run(["openssl", "x509", "-req", "-in", csr, "-CA",
              ca_cert or self.ca_cert, "-CAkey", ca_key or self.ca_key,
              "-CAcreateserial", "-out", cert,
              "-days", DAYS, "-sha256", "-extfile", extfile])
        os.unlink(csr)
        os.unlink(extfile)

    def _make(self):
        self._ca(self.ca_cert, self.ca_key, "credbroker test CA")
        self._ca(self.other_ca_cert, self.other_ca_key, "unrelated test CA")
        self._leaf(self.server_cert, self.server_key, "localhost",
                   SERVER_EXT)
        self._leaf(self.client_cert, self.client_key, "credbroker client",
                   "extendedKeyUsage=clientAuth\n")
        _run(["openssl", "genrsa", "-out", self.jwt_key, "2048"])
        _run(["openssl", "rsa", "-in", self.jwt_key, "-pubout", "-out",
              self.jwt_pub])
        for key in (self.ca_key, self.other_ca_key, self.server_key,
                    self.client_key, self.jwt_key):
            os.chmod(key, 0o600)

    def server_pubkey_pin(self):
        """curl's CURLOPT_PINNEDPUBLICKEY form of the server's key."""
        der = subprocess.run(
            ["openssl", "x509", "-in", self.server_cert, "-pubkey",
             "-noout"], check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform",
                              "DER"], input=der, check=True,
                             capture_output=True).stdout
        digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"],
                                input=der, check=True,
                                capture_output=True).stdout
        return "sha256//" + base64.b64encode(digest).decode()

    def sign_jwt(self, claims, key=None):
        """A compact RS256 JWS over claims, signed with openssl."""
        def b64(data):
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims).encode())
        signing_input = (header + "." + payload).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                              key or self.jwt_key], input=signing_input,
                             check=True, capture_output=True).stdout
        return header + "." + payload + "." + b64(sig)


if __name__ == "__main__":
    import sys
    pki = TestPki(sys.argv[1])
    print(pki.server_pubkey_pin())
