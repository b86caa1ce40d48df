"""Service-account JWT verification as the Kubernetes auth method does it
with `pem_keys` (vault-plugin-auth-kubernetes path_login.go on top of
hashicorp/cap jwt): RS256/384/512 signatures checked in pure Python."""

import base64
import hashlib
import hmac
import json
import time

# RFC 8017 DigestInfo prefixes for RS256/384/512.
DIGEST_INFO = {
    "RS256": (hashlib.sha256,
              bytes.fromhex("3031300d060960864801650304020105000420")),
    "RS384": (hashlib.sha384,
              bytes.fromhex("3041300d060960864801650304020205000430")),
    "RS512": (hashlib.sha512,
              bytes.fromhex("3051300d060960864801650304020305000440")),
}
# vault-plugin-auth-kubernetes path_login.go allowedSigningAlgs
K8S_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
            "PS384", "PS512")
JWT_LEEWAY = 60        # go-jose jwt.DefaultLeeway, cap/jwt ClockSkewLeeway
JWT_EXP_NBF_LEEWAY = 150   # cap/jwt DefaultLeewaySeconds


def _der_tlv(data, pos):
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    return tag, data[pos:pos + length], pos + length


def load_rsa_public_key(path):
    """(n, e) from a PEM SubjectPublicKeyInfo (openssl rsa -pubout)."""
    with open(path) as f:
        pem = f.read()
    b64 = "".join(l for l in pem.splitlines() if l and not l.startswith("-"))
    der = base64.b64decode(b64)
    _, spki, _ = _der_tlv(der, 0)
    _, _, pos = _der_tlv(spki, 0)              # AlgorithmIdentifier
    _, bits, _ = _der_tlv(spki, pos)           # BIT STRING
    _, rsakey, _ = _der_tlv(bits[1:], 0)       # RSAPublicKey SEQUENCE
    _, n, pos = _der_tlv(rsakey, 0)
    _, e, _ = _der_tlv(rsakey, pos)
    return int.from_bytes(n, "big"), int.from_bytes(e, "big")


def rsa_pkcs1_verify(key, alg, message, signature):
    n, e = key
    if alg not in DIGEST_INFO:
        return False
    hfn, prefix = DIGEST_INFO[alg]
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    em = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    t = prefix + hfn(message).digest()
    want = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, want)


class SignatureError(Exception):
    """Anything cap/jwt reports as "error verifying token signature"."""


def _b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _numeric(v):
    try:
        return int(float(v)) if v is not None else 0
    except (TypeError, ValueError):
        return 0


def validate_jwt(token, key, audience):
    """hashicorp/cap jwt.Validator.ValidateAllowMissingIatNbfExp with a
    static key set: signature first, then alg, audience, time claims.
    Returns the claims; raises SignatureError or ValueError(message)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise SignatureError("compact JWS format must have three parts")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
        sig = _b64url(parts[2])
    except (ValueError, TypeError):
        raise SignatureError("malformed JWS")
    alg = header.get("alg") if isinstance(header, dict) else None
    if alg not in K8S_ALGS:
        raise SignatureError("unexpected signature algorithm %r" % alg)
    if not rsa_pkcs1_verify(key, alg, (parts[0] + "." + parts[1]).encode(),
                            sig):
        raise SignatureError("no known key successfully validated the token "
                             "signature")
    if not isinstance(claims, dict):
        raise ValueError("invalid claims")
    if audience:
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else (aud or [])
        if audience not in auds:
            raise ValueError("invalid audience (aud) claim: audience claim "
                             "does not match any expected audience")
    iat, exp, nbf = (_numeric(claims.get(k)) for k in ("iat", "exp", "nbf"))
    if iat == 0 and exp == 0 and nbf == 0:
        return claims
    if exp == 0:
        exp = max(iat, nbf) + JWT_EXP_NBF_LEEWAY
    if nbf == 0:
        nbf = iat if iat else exp - JWT_EXP_NBF_LEEWAY
    now = time.time()
    if now + JWT_LEEWAY < nbf:
        raise ValueError("invalid not before (nbf) claim: token not yet valid")
    if now - JWT_LEEWAY > exp:
        raise ValueError("invalid expiration time (exp) claim: token is "
                         "expired")
    if now + JWT_LEEWAY < iat:
        raise ValueError("invalid issued at (iat) claim: token issued in the "
                         "future")
    return claims


def service_account(claims):
    """path_login.go serviceAccount: the projected "kubernetes.io" claim
    wins over the legacy kubernetes.io/serviceaccount/* claims."""
    legacy = "kubernetes.io/serviceaccount/"
    sa = {"name": claims.get(legacy + "service-account.name", ""),
          "uid": claims.get(legacy + "service-account.uid", ""),
          "namespace": claims.get(legacy + "namespace", ""),
          "secret_name": claims.get(legacy + "secret.name", "")}
    k8s = claims.get("kubernetes.io")
    if isinstance(k8s, dict):
        sa["namespace"] = k8s.get("namespace") or ""
        ref = k8s.get("serviceaccount")
        if isinstance(ref, dict):
            sa["name"], sa["uid"] = ref.get("name") or "", ref.get("uid") or ""
    return {k: v if isinstance(v, str) else str(v) for k, v in sa.items()}
