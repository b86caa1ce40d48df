"""Shared pieces of the simulator: Vault's constants, time and duration
formats, TTL arithmetic (sdk/framework/lease.go), error shapes and the
records kept for leases and tokens."""

import base64
import os
import re
import secrets
import time
import uuid
from datetime import datetime, timezone

# vault/expiration.go: maxLeaseTTL = 32 * 24h, defaultLeaseTTL = maxLeaseTTL
# (the system default and maximum; also KV v1's refresh hint).
SYS_DEFAULT_TTL = SYS_MAX_TTL = 32 * 24 * 3600
VAULT_VERSION = "1.15.6"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# vault/expiration.go: maxRevokeAttempts = 6, revokeRetryBase = 10s.
MAX_REVOKE_ATTEMPTS = 6
CANNED_ERRORS = {400: ["invalid request"], 403: ["permission denied"],
                 404: [], 405: [], 412: ["required index state not present"],
                 500: ["internal error"], 502: ["upstream rate limited"],
                 503: ["Vault is sealed"]}


def debug_enabled():
    return os.environ.get("VAULTSIM_DEBUG") == "1"


def base62(n):
    return "".join(secrets.choice(BASE62) for _ in range(n))


def new_token_id():
    """A service token in Vault's 1.10+ format: "hvs." and the base64url
    (no padding) of a protobuf {1: 1, 2: HMAC-32, 3: {1: "hvs."+24}}, as in
    vault/token_store.go GenerateSSCTokenID: 95 characters."""
    inner = ("hvs." + base62(24)).encode()
    blob = (b"\x08\x01\x12\x20" + secrets.token_bytes(32) + b"\x1a" +
            bytes([len(inner) + 2]) + b"\x0a" + bytes([len(inner)]) + inner)
    return "hvs." + base64.urlsafe_b64encode(blob).rstrip(b"=").decode()


def rfc3339(ts):
    """Go's time.Time JSON form (RFC 3339 with nanoseconds, zeros trimmed),
    in UTC."""
    if ts is None:
        return None
    whole = int(ts // 1)
    ns = int(round((ts - whole) * 1e9))
    if ns >= 10 ** 9:
        whole, ns = whole + 1, ns - 10 ** 9
    s = datetime.fromtimestamp(whole, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S")
    if ns:
        s += "." + ("%09d" % ns).rstrip("0")
    return s + "Z"


def go_duration(seconds):
    """time.Duration.String() of a number of seconds: 4s, 2m30s, 1h0m0s."""
    neg, s = seconds < 0, abs(seconds)
    if s == 0:
        return "0s"
    if s < 1:
        out = ("%gms" % (s * 1000)) if s >= 0.001 else ("%gµs" % (s * 1e6))
    else:
        h, rem = divmod(s, 3600)
        m, sec = divmod(rem, 60)
        sec_s = ("%d" % sec) if sec == int(sec) else ("%.9f" % sec).rstrip("0")
        if h:
            out = "%dh%dm%ss" % (h, m, sec_s)
        elif m:
            out = "%dm%ss" % (m, sec_s)
        else:
            out = "%ss" % sec_s
    return ("-" if neg else "") + out


_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1,
              "m": 60, "h": 3600, "d": 86400}


def parse_duration(value, field):
    """sdk/helper/parseutil ParseDurationSecond: ints are seconds, strings
    are seconds or Go durations ("1h30m")."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise field_error(value, field, "invalid duration")
    if isinstance(value, (int, float)):
        return int(value)
    s = str(value).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    pos, total = 0, 0.0
    for m in _DUR_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise field_error(value, field, 'time: invalid duration "%s"' % s)
    return int(total)


def field_error(value, field, why):
    # sdk/framework/field_data.go: "error converting input %v for field %q"
    return VaultError(400, [multierr('error converting input %s for field '
                                     '"%s": %s' % (value, field, why))])


def multierr(*msgs):
    """hashicorp/go-multierror ListFormatFunc: core wraps backend errors."""
    if len(msgs) == 1:
        return "1 error occurred:\n\t* %s\n\n" % msgs[0]
    return "%d errors occurred:\n\t%s\n\n" % (
        len(msgs), "\n\t".join("* " + m for m in msgs))


def sanitize_policies(policies, add_default=True):
    """sdk/helper/policyutil SanitizePolicies: trimmed, lowercased, unique,
    sorted, "default" added, "root" alone."""
    out = {p.strip().lower() for p in policies or [] if p and p.strip()}
    if "root" in out:
        return ["root"]
    if add_default:
        out.add("default")
    return sorted(out)


def glob_match(pattern, subj):
    """ryanuber/go-glob Glob (used by strutil.StrListContainsGlob)."""
    if pattern == "":
        return subj == ""
    if pattern == "*":
        return True
    parts = pattern.split("*")
    if len(parts) == 1:
        return subj == pattern
    leading, trailing = pattern.startswith("*"), pattern.endswith("*")
    for i, part in enumerate(parts[:-1]):
        idx = subj.find(part)
        if i == 0 and not leading and idx != 0:
            return False
        if idx < 0:
            return False
        subj = subj[idx + len(part):]
    return trailing or subj.endswith(parts[-1])


def calculate_ttl(increment, backend_ttl, period, backend_max, explicit_max,
                  start_time):
    """sdk/framework/lease.go CalculateTTL, to the second.  Returns
    (ttl, warnings) or raises VaultError."""
    now = int(time.time())
    start = now if not start_time else int(start_time)
    max_ttl = SYS_MAX_TTL
    if 0 < backend_max < max_ttl:
        max_ttl = backend_max
    if 0 < explicit_max < max_ttl:
        max_ttl = explicit_max
    if max_ttl <= 0:
        raise VaultError(500, [multierr("max TTL must be greater than zero")])
    warnings = []
    if period > 0:
        if period > max_ttl:
            warnings.append('period of "%s" exceeded the effective max_ttl of '
                            '"%s"; period value is capped accordingly' % (
                                go_duration(period), go_duration(max_ttl)))
            period = max_ttl
        ttl = period
        max_valid = start + explicit_max if explicit_max > 0 else None
    else:
        ttl = increment if increment > 0 else (
            backend_ttl if backend_ttl > 0 else SYS_DEFAULT_TTL)
        max_valid = start + max_ttl
    if max_valid is not None:
        max_valid_ttl = max_valid - now
        if max_valid_ttl < 0:
            raise VaultError(400, ["past the max TTL, cannot renew"])
        if max_valid_ttl - ttl < 0:
            warnings.append('TTL of "%s" exceeded the effective max_ttl of '
                            '"%s"; TTL value is capped accordingly' % (
                                go_duration(ttl), go_duration(max_valid_ttl)))
            ttl = max_valid_ttl
    return ttl, warnings


def lease_ttl(expire_time):
    """vault/expiration.go leaseEntry.ttl(): ExpireTime - now.Round(1s)."""
    return int(expire_time - round(time.time()))


class VaultError(Exception):
    def __init__(self, status, errors, body=None):
        super().__init__(status)
        self.status, self.errors, self.body = status, errors, body


def no_handler(path):
    # vault/router.go: an unknown mount
    return VaultError(404, ['no handler for route "%s". route entry not '
                            'found.' % path])


def unsupported_path():
    return VaultError(404, [multierr("unsupported path")])


def need_op(op, *allowed):
    if op not in allowed:
        raise VaultError(405, [multierr("unsupported operation")])


def logical(data=None, auth=None, lease_id="", renewable=False,
            lease_duration=0, warnings=None, mount_type=""):
    """sdk/logical/response.go HTTPResponse, every field present."""
    return {"request_id": str(uuid.uuid4()), "lease_id": lease_id,
            "renewable": renewable, "lease_duration": lease_duration,
            "data": data, "wrap_info": None,
            "warnings": warnings or None, "auth": auth,
            "mount_type": mount_type}


class Token:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class Lease:
    def __init__(self, **kw):
        self.revoked = False
        self.revoked_time = None
        self.last_renewal = None
        self.attempts = 0
        self.next_attempt = 0.0
        self.irrevocable = False
        self.revoking = False
        self.__dict__.update(kw)

    @property
    def active(self):
        return not self.revoked


class Reply:
    """A response: status, a JSON-able object or raw bytes (None: no
    body), extra headers, or drop=True for a reset connection."""

    def __init__(self, status, obj=None, raw=None, drop=False):
        self.status, self.obj, self.raw, self.drop = status, obj, raw, drop
