#!/usr/bin/env python3
"""Pod Security Standards checker: the "baseline" and "restricted" profiles.

Written from the published standard:
  https://kubernetes.io/docs/concepts/security/pod-security-standards/
  as published for Kubernetes v1.34 (the page source,
  kubernetes/website content/en/docs/concepts/security/pod-security-standards.md,
  revision that adds "Host Probes / Lifecycle Hooks (v1.34+)", SELinux
  container_engine_t "since 1.31" and the 1.29 safe sysctls).

Every control of both tables is checked; "restricted" is "everything from
the Baseline policy" plus its own table.  Where the restricted table replaces
a baseline control with a stricter form of the same field (Seccomp, and the
capabilities.add list) only the stricter form is reported at "restricted", so
one problem gives one line.  Container rules apply to containers,
initContainers and ephemeralContainers.  Pod-level inheritance follows the
page's notes: runAsNonRoot and seccompProfile.type may be left unset on a
container when the pod-level field is set appropriately (a container's own
value, when set, wins).  The OS-specific relaxation is applied: Privilege
Escalation, Seccomp and Capabilities (restricted) are not required when
spec.os.name is "windows".  Not applied: the user-namespace relaxation
(hostUsers: false) that the page delegates to the user-namespaces page; the
optional "known list" of host ports (the built-in admission has none).

Library:  check_pod_spec(spec, metadata=None, level="restricted") -> [str]
          check_object(obj, level="restricted") -> [(label, [str])]
CLI:      psa_restricted.py [--level baseline|restricted] FILE.json|- ...
          FILE holds one JSON value or several concatenated (e.g. the output
          of `validate_manifests.mjs --to-json`): a Pod, a Deployment,
          StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
          CronJob, PodTemplate, a List of them, or a JSON array.  Prints
          "FILE: Kind/name: violation" per violation; exit 1 if any, 2 on
          unreadable or empty input (so a failed producer in a pipe is not
          taken for a pass).
Python 3 standard library only.
"""

import json
import sys

DOC_URL = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
DOC_VERSION = "v1.34"

LEVELS = ("baseline", "restricted")

CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

# Baseline "Capabilities": the allowed values of capabilities.add.
BASELINE_CAPABILITIES = frozenset([
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
    "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID",
    "SYS_CHROOT",
])
RESTRICTED_CAPABILITIES = frozenset(["NET_BIND_SERVICE"])

# Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = frozenset([
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
])

SELINUX_TYPES = frozenset(["container_t", "container_init_t",
                           "container_kvm_t", "container_engine_t"])
APPARMOR_TYPES = frozenset(["RuntimeDefault", "Localhost"])
BASELINE_SECCOMP = frozenset(["RuntimeDefault", "Localhost"])  # or unset
RESTRICTED_SECCOMP = frozenset(["RuntimeDefault", "Localhost"])  # set

APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"

# Restricted "Volume Types": each volume must set one of these.
RESTRICTED_VOLUME_TYPES = ("configMap", "csi", "downwardAPI", "emptyDir",
                           "ephemeral", "persistentVolumeClaim", "projected",
                           "secret")

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HOOKS = ("postStart", "preStop")

POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                      "ReplicationController", "Job")


def _d(value):
    """A dict, or {} for null/missing/non-dict."""
    return value if isinstance(value, dict) else {}


def _l(value):
    return value if isinstance(value, list) else []


def _containers(spec):
    """(path, name, container) for every container of every list."""
    for key in CONTAINER_LISTS:
        for i, c in enumerate(_l(spec.get(key))):
            c = _d(c)
            yield "spec.%s[%d]" % (key, i), c.get("name", "?"), c


def _js(value):
    return json.dumps(value)


class _Report:
    def __init__(self):
        self.items = []

    def add(self, profile, control, path, problem):
        self.items.append("%s: %s: %s: %s" % (profile, control, path, problem))


def _baseline(spec, metadata, r, level):
    psc = _d(spec.get("securityContext"))
    conts = list(_containers(spec))

    # HostProcess
    C = "HostProcess"
    if _d(psc.get("windowsOptions")).get("hostProcess") is True:
        r.add("baseline", C, "spec.securityContext.windowsOptions.hostProcess",
              "must be unset or false, got true")
    for path, name, c in conts:
        wo = _d(_d(c.get("securityContext")).get("windowsOptions"))
        if wo.get("hostProcess") is True:
            r.add("baseline", C,
                  path + ".securityContext.windowsOptions.hostProcess",
                  'container "%s" must not set hostProcess=true' % name)

    # Host Namespaces
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(f) is True:
            r.add("baseline", "Host Namespaces", "spec." + f,
                  "must be unset or false, got true")

    # Privileged Containers
    for path, name, c in conts:
        if _d(c.get("securityContext")).get("privileged") is True:
            r.add("baseline", "Privileged Containers",
                  path + ".securityContext.privileged",
                  'container "%s" must not set privileged=true' % name)

    # Capabilities (baseline); at "restricted" the stricter list is used.
    if level == "baseline":
        for path, name, c in conts:
            caps = _d(_d(c.get("securityContext")).get("capabilities"))
            bad = [x for x in _l(caps.get("add"))
                   if x not in BASELINE_CAPABILITIES]
            if bad:
                r.add("baseline", "Capabilities",
                      path + ".securityContext.capabilities.add",
                      'container "%s" adds %s, beyond the allowed set'
                      % (name, ", ".join(map(str, bad))))

    # HostPath Volumes
    for i, v in enumerate(_l(spec.get("volumes"))):
        v = _d(v)
        if v.get("hostPath") is not None:
            r.add("baseline", "HostPath Volumes", "spec.volumes[%d].hostPath" % i,
                  'volume "%s" must not be hostPath' % v.get("name", "?"))

    # Host Ports
    for path, name, c in conts:
        for j, p in enumerate(_l(c.get("ports"))):
            hp = _d(p).get("hostPort")
            if hp not in (None, 0):
                r.add("baseline", "Host Ports",
                      "%s.ports[%d].hostPort" % (path, j),
                      'container "%s" must not set hostPort, got %s'
                      % (name, _js(hp)))

    # Host Probes / Lifecycle Hooks (v1.34+)
    for path, name, c in conts:
        handlers = [(p, _d(c.get(p))) for p in PROBES]
        handlers += [("lifecycle." + h, _d(_d(c.get("lifecycle")).get(h)))
                     for h in HOOKS]
        for hpath, h in handlers:
            for kind in ("httpGet", "tcpSocket"):
                host = _d(h.get(kind)).get("host")
                if host not in (None, ""):
                    r.add("baseline", "Host Probes / Lifecycle Hooks",
                          "%s.%s.%s.host" % (path, hpath, kind),
                          'container "%s" must not set host, got %s'
                          % (name, _js(host)))

    # AppArmor: the field at pod and container level, and the annotations.
    C = "AppArmor"
    t = _d(psc.get("appArmorProfile")).get("type")
    if t is not None and t not in APPARMOR_TYPES:
        r.add("baseline", C, "spec.securityContext.appArmorProfile.type",
              "must be unset, RuntimeDefault or Localhost, got %s" % _js(t))
    for path, name, c in conts:
        t = _d(_d(c.get("securityContext")).get("appArmorProfile")).get("type")
        if t is not None and t not in APPARMOR_TYPES:
            r.add("baseline", C, path + ".securityContext.appArmorProfile.type",
                  'container "%s": must be unset, RuntimeDefault or Localhost,'
                  ' got %s' % (name, _js(t)))
    for key, val in sorted(_d(metadata.get("annotations")).items()):
        if not key.startswith(APPARMOR_ANNOTATION):
            continue
        if not (val == "runtime/default" or
                (isinstance(val, str) and val.startswith("localhost/"))):
            r.add("baseline", C, "metadata.annotations[%s]" % _js(key),
                  "must be unset, runtime/default or localhost/*, got %s"
                  % _js(val))

    # SELinux
    C = "SELinux"
    scs = [("spec.securityContext", None, psc)]
    scs += [(p + ".securityContext", n, _d(c.get("securityContext")))
            for p, n, c in conts]
    for path, name, sc in scs:
        se = _d(sc.get("seLinuxOptions"))
        who = "" if name is None else 'container "%s": ' % name
        t = se.get("type")
        if t not in (None, "") and t not in SELINUX_TYPES:
            r.add("baseline", C, path + ".seLinuxOptions.type",
                  "%smust be unset or one of %s, got %s"
                  % (who, ", ".join(sorted(SELINUX_TYPES)), _js(t)))
        for f in ("user", "role"):
            if se.get(f) not in (None, ""):
                r.add("baseline", C, "%s.seLinuxOptions.%s" % (path, f),
                      "%smust be unset, got %s" % (who, _js(se.get(f))))

    # /proc Mount Type
    for path, name, c in conts:
        pm = _d(c.get("securityContext")).get("procMount")
        if pm not in (None, "Default"):
            r.add("baseline", "/proc Mount Type",
                  path + ".securityContext.procMount",
                  'container "%s": must be unset or Default, got %s'
                  % (name, _js(pm)))

    # Seccomp (baseline); at "restricted" the stricter form is used.
    if level == "baseline":
        for path, name, sc in scs:
            t = _d(sc.get("seccompProfile")).get("type")
            if t is not None and t not in BASELINE_SECCOMP:
                who = "" if name is None else 'container "%s": ' % name
                r.add("baseline", "Seccomp", path + ".seccompProfile.type",
                      "%smust be unset, RuntimeDefault or Localhost, got %s"
                      % (who, _js(t)))

    # Sysctls
    for i, s in enumerate(_l(psc.get("sysctls"))):
        n = _d(s).get("name")
        if n not in SAFE_SYSCTLS:
            r.add("baseline", "Sysctls",
                  "spec.securityContext.sysctls[%d].name" % i,
                  "%s is not in the safe set" % _js(n))


def _restricted(spec, r):
    psc = _d(spec.get("securityContext"))
    conts = list(_containers(spec))
    windows = _d(spec.get("os")).get("name") == "windows"

    # Volume Types
    for i, v in enumerate(_l(spec.get("volumes"))):
        v = _d(v)
        if any(v.get(t) is not None for t in RESTRICTED_VOLUME_TYPES):
            continue
        kinds = sorted(k for k in v if k != "name" and v[k] is not None)
        r.add("restricted", "Volume Types", "spec.volumes[%d]" % i,
              'volume "%s" is %s; allowed: %s'
              % (v.get("name", "?"), "/".join(kinds) or "of no type",
                 ", ".join(RESTRICTED_VOLUME_TYPES)))

    # Privilege Escalation (Linux only)
    if not windows:
        for path, name, c in conts:
            ape = _d(c.get("securityContext")).get("allowPrivilegeEscalation")
            if ape is not False:
                r.add("restricted", "Privilege Escalation",
                      path + ".securityContext.allowPrivilegeEscalation",
                      'container "%s" must set false, got %s'
                      % (name, "unset" if ape is None else _js(ape)))

    # Running as Non-root
    C = "Running as Non-root"
    pod_nr = psc.get("runAsNonRoot")
    if pod_nr is not None and pod_nr is not True:
        r.add("restricted", C, "spec.securityContext.runAsNonRoot",
              "must be true, got %s" % _js(pod_nr))
    for path, name, c in conts:
        nr = _d(c.get("securityContext")).get("runAsNonRoot")
        if nr is True:
            continue
        if nr is None and pod_nr is True:
            continue
        r.add("restricted", C, path + ".securityContext.runAsNonRoot",
              'container "%s" must set true, got %s' % (
                  name, _js(nr) if nr is not None else
                  "unset (and spec.securityContext.runAsNonRoot is not true)"))

    # Running as Non-root user
    C = "Running as Non-root user"
    if psc.get("runAsUser") == 0 and psc.get("runAsUser") is not False:
        r.add("restricted", C, "spec.securityContext.runAsUser",
              "must not be 0")
    for path, name, c in conts:
        u = _d(c.get("securityContext")).get("runAsUser")
        if u == 0 and u is not False:
            r.add("restricted", C, path + ".securityContext.runAsUser",
                  'container "%s" must not set 0' % name)

    # Seccomp (restricted; Linux only)
    if not windows:
        C = "Seccomp"
        pod_t = _d(psc.get("seccompProfile")).get("type")
        if pod_t is not None and pod_t not in RESTRICTED_SECCOMP:
            r.add("restricted", C, "spec.securityContext.seccompProfile.type",
                  "must be RuntimeDefault or Localhost, got %s" % _js(pod_t))
        for path, name, c in conts:
            t = _d(_d(c.get("securityContext")).get("seccompProfile")).get("type")
            if t in RESTRICTED_SECCOMP:
                continue
            if t is None and pod_t in RESTRICTED_SECCOMP:
                continue
            r.add("restricted", C, path + ".securityContext.seccompProfile.type",
                  'container "%s" must be RuntimeDefault or Localhost, got %s'
                  % (name, _js(t) if t is not None else
                     "unset (and spec.securityContext.seccompProfile.type "
                     "is %s)" % ("unset" if pod_t is None else _js(pod_t))))

    # Capabilities (restricted; Linux only)
    if not windows:
        C = "Capabilities"
        for path, name, c in conts:
            caps = _d(_d(c.get("securityContext")).get("capabilities"))
            if "ALL" not in _l(caps.get("drop")):
                r.add("restricted", C,
                      path + ".securityContext.capabilities.drop",
                      'container "%s" must drop ALL' % name)
            bad = [x for x in _l(caps.get("add"))
                   if x not in RESTRICTED_CAPABILITIES]
            if bad:
                r.add("restricted", C,
                      path + ".securityContext.capabilities.add",
                      'container "%s" adds %s; only NET_BIND_SERVICE is allowed'
                      % (name, ", ".join(map(str, bad))))
    else:
        # Capabilities (baseline) still applies to Windows pods.
        for path, name, c in conts:
            caps = _d(_d(c.get("securityContext")).get("capabilities"))
            bad = [x for x in _l(caps.get("add"))
                   if x not in BASELINE_CAPABILITIES]
            if bad:
                r.add("baseline", "Capabilities",
                      path + ".securityContext.capabilities.add",
                      'container "%s" adds %s, beyond the allowed set'
                      % (name, ", ".join(map(str, bad))))


def _windows_restricted_seccomp_baseline(spec, r):
    """Windows pods at "restricted": the baseline Seccomp rule still holds."""
    psc = _d(spec.get("securityContext"))
    scs = [("spec.securityContext", None, psc)]
    scs += [(p + ".securityContext", n, _d(c.get("securityContext")))
            for p, n, c in _containers(spec)]
    for path, name, sc in scs:
        t = _d(sc.get("seccompProfile")).get("type")
        if t is not None and t not in BASELINE_SECCOMP:
            who = "" if name is None else 'container "%s": ' % name
            r.add("baseline", "Seccomp", path + ".seccompProfile.type",
                  "%smust be unset, RuntimeDefault or Localhost, got %s"
                  % (who, _js(t)))


def check_pod_spec(spec, metadata=None, level="restricted"):
    """Violations of LEVEL ("baseline" or "restricted") by a PodSpec.

    METADATA is the pod's (or template's) metadata, for the AppArmor
    annotations.  Each violation is "PROFILE: CONTROL: FIELD: PROBLEM".
    """
    if level not in LEVELS:
        raise ValueError("level must be baseline or restricted")
    spec = _d(spec)
    metadata = _d(metadata)
    r = _Report()
    _baseline(spec, metadata, r, level)
    if level == "restricted":
        _restricted(spec, r)
        if _d(spec.get("os")).get("name") == "windows":
            _windows_restricted_seccomp_baseline(spec, r)
    return r.items


def _label(obj):
    md = _d(obj.get("metadata"))
    name = md.get("name") or md.get("generateName") or "?"
    if md.get("namespace"):
        name = "%s/%s" % (md["namespace"], name)
    return "%s/%s" % (obj.get("kind", "?"), name)


def pod_templates(obj):
    """(label, metadata, spec) for each pod (template) in OBJ; recurses Lists."""
    if isinstance(obj, list):
        for o in obj:
            yield from pod_templates(o)
        return
    obj = _d(obj)
    kind = obj.get("kind")
    if kind == "List" or (isinstance(kind, str) and kind.endswith("List")
                          and isinstance(obj.get("items"), list)):
        for o in _l(obj.get("items")):
            yield from pod_templates(o)
        return
    spec = _d(obj.get("spec"))
    if kind == "Pod":
        yield _label(obj), _d(obj.get("metadata")), spec
    elif kind in POD_TEMPLATE_KINDS:
        t = _d(spec.get("template"))
        yield _label(obj), _d(t.get("metadata")), _d(t.get("spec"))
    elif kind == "CronJob":
        t = _d(_d(_d(spec.get("jobTemplate")).get("spec")).get("template"))
        yield _label(obj), _d(t.get("metadata")), _d(t.get("spec"))
    elif kind == "PodTemplate":
        t = _d(obj.get("template"))
        yield _label(obj), _d(t.get("metadata")), _d(t.get("spec"))


def check_object(obj, level="restricted"):
    """[(label, violations)] for each pod or pod template in OBJ."""
    return [(label, check_pod_spec(spec, md, level))
            for label, md, spec in pod_templates(obj)]


def _load_json_values(text):
    dec = json.JSONDecoder()
    i, n, out = 0, len(text), []
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return out
        value, i = dec.raw_decode(text, i)
        out.append(value)


def main(argv):
    level = "restricted"
    files = []
    it = iter(argv)
    for a in it:
        if a == "--level":
            level = next(it, "")
        elif a.startswith("--level="):
            level = a.split("=", 1)[1]
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            files.append(a)
    if level not in LEVELS or not files:
        print("usage: psa_restricted.py [--level baseline|restricted] "
              "FILE.json|- ...", file=sys.stderr)
        return 2
    bad = 0
    status = 0
    for f in files:
        try:
            if f == "-":
                text = sys.stdin.read()
            else:
                with open(f, encoding="utf-8") as fh:
                    text = fh.read()
            values = _load_json_values(text)
            if not values:
                raise ValueError("no JSON value")
        except (OSError, ValueError) as e:
            print("%s: cannot read: %s" % (f, e), file=sys.stderr)
            status = 2
            continue
        for label, violations in check_object(values, level):
            for v in violations:
                print("%s: %s: %s" % (f, label, v))
                bad += 1
    if status:
        return status
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
