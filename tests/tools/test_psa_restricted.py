#!/usr/bin/env python3
"""Unit tests of psa_restricted.py: one passing pod, then one case per control
of the Pod Security Standards (baseline and restricted), each asserting the
exact violation list.  Run: python3 tests/tools/test_psa_restricted.py"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import psa_restricted as psa  # noqa: E402

GOOD_SC = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}


def good_pod():
    """A pod that passes "restricted": pod-level runAsNonRoot and seccomp,
    every container drops ALL and forbids privilege escalation."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "good"},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [{
                "name": "init", "image": "x",
                "securityContext": copy.deepcopy(GOOD_SC),
            }],
            "containers": [{
                "name": "app", "image": "x",
                "ports": [{"containerPort": 8080}],
                "securityContext": copy.deepcopy(GOOD_SC),
                "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
            }],
            "volumes": [
                {"name": "a", "configMap": {"name": "c"}},
                {"name": "b", "csi": {"driver": "csi.credbroker.io"}},
                {"name": "c", "downwardAPI": {"items": []}},
                {"name": "d", "emptyDir": {}},
                {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
                {"name": "f", "persistentVolumeClaim": {"claimName": "p"}},
                {"name": "g", "projected": {"sources": []}},
                {"name": "h", "secret": {"secretName": "s"}},
            ],
        },
    }


def app_sc(pod):
    return pod["spec"]["containers"][0]["securityContext"]


class GoodPods(unittest.TestCase):
    def test_good_pod_passes_restricted_and_baseline(self):
        p = good_pod()
        self.assertEqual(psa.check_pod_spec(p["spec"], p["metadata"]), [])
        self.assertEqual(psa.check_pod_spec(p["spec"], level="baseline"), [])

    def test_container_level_settings_instead_of_pod_level(self):
        p = good_pod()
        del p["spec"]["securityContext"]
        for key in ("containers", "initContainers"):
            sc = p["spec"][key][0]["securityContext"]
            sc["runAsNonRoot"] = True
            sc["seccompProfile"] = {"type": "Localhost",
                                    "localhostProfile": "p.json"}
        self.assertEqual(psa.check_pod_spec(p["spec"]), [])

    def test_allowed_values_pass(self):
        p = good_pod()
        s = p["spec"]
        s["hostNetwork"] = False
        s["securityContext"].update({
            "runAsUser": 1000,
            "sysctls": [{"name": n, "value": "1"}
                        for n in sorted(psa.SAFE_SYSCTLS)],
            "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
            "appArmorProfile": {"type": "RuntimeDefault"},
            "windowsOptions": {"hostProcess": False},
        })
        sc = app_sc(p)
        sc.update({"privileged": False, "procMount": "Default",
                   "capabilities": {"drop": ["ALL"],
                                    "add": ["NET_BIND_SERVICE"]},
                   "appArmorProfile": {"type": "Localhost",
                                       "localhostProfile": "x"}})
        p["spec"]["containers"][0]["ports"][0]["hostPort"] = 0
        p["spec"]["containers"][0]["livenessProbe"]["httpGet"]["host"] = ""
        p["metadata"]["annotations"] = {
            psa.APPARMOR_ANNOTATION + "app": "localhost/prof",
            psa.APPARMOR_ANNOTATION + "init": "runtime/default"}
        self.assertEqual(psa.check_pod_spec(s, p["metadata"]), [])

    def test_windows_relaxes_linux_only_controls(self):
        p = good_pod()
        s = p["spec"]
        s["os"] = {"name": "windows"}
        del s["securityContext"]["seccompProfile"]
        for key in ("containers", "initContainers"):
            s[key][0]["securityContext"] = {}
        self.assertEqual(psa.check_pod_spec(s), [])


class BaselineControls(unittest.TestCase):
    """Each case breaks one baseline control of an otherwise good pod."""

    def check(self, pod, expected, level="restricted"):
        self.assertEqual(
            psa.check_pod_spec(pod["spec"], pod.get("metadata"), level),
            expected)

    def test_host_process_pod_and_container(self):
        p = good_pod()
        p["spec"]["securityContext"]["windowsOptions"] = {"hostProcess": True}
        app_sc(p)["windowsOptions"] = {"hostProcess": True}
        self.check(p, [
            "baseline: HostProcess: spec.securityContext.windowsOptions."
            "hostProcess: must be unset or false, got true",
            "baseline: HostProcess: spec.containers[0].securityContext."
            'windowsOptions.hostProcess: container "app" must not set '
            "hostProcess=true"])

    def test_host_namespaces(self):
        p = good_pod()
        p["spec"].update(hostNetwork=True, hostPID=True, hostIPC=True)
        self.check(p, [
            "baseline: Host Namespaces: spec.hostNetwork: must be unset or "
            "false, got true",
            "baseline: Host Namespaces: spec.hostPID: must be unset or false, "
            "got true",
            "baseline: Host Namespaces: spec.hostIPC: must be unset or false, "
            "got true"])

    def test_privileged_ephemeral_container(self):
        p = good_pod()
        p["spec"]["ephemeralContainers"] = [{
            "name": "debug", "image": "x",
            "securityContext": dict(GOOD_SC, privileged=True)}]
        self.check(p, [
            "baseline: Privileged Containers: spec.ephemeralContainers[0]."
            'securityContext.privileged: container "debug" must not set '
            "privileged=true"])

    def test_capabilities_baseline(self):
        p = good_pod()
        app_sc(p)["capabilities"]["add"] = ["CHOWN", "SYS_ADMIN"]
        self.check(p, [
            "baseline: Capabilities: spec.containers[0].securityContext."
            'capabilities.add: container "app" adds SYS_ADMIN, beyond the '
            "allowed set"], level="baseline")

    def test_hostpath_volume(self):
        p = good_pod()
        p["spec"]["volumes"].append({"name": "h2", "hostPath": {"path": "/"}})
        self.check(p, [
            'baseline: HostPath Volumes: spec.volumes[8].hostPath: volume '
            '"h2" must not be hostPath'], level="baseline")
        self.check(p, [
            'baseline: HostPath Volumes: spec.volumes[8].hostPath: volume '
            '"h2" must not be hostPath',
            'restricted: Volume Types: spec.volumes[8]: volume "h2" is '
            "hostPath; allowed: configMap, csi, downwardAPI, emptyDir, "
            "ephemeral, persistentVolumeClaim, projected, secret"])

    def test_host_port_init_container(self):
        p = good_pod()
        p["spec"]["initContainers"][0]["ports"] = [
            {"containerPort": 80, "hostPort": 80}]
        self.check(p, [
            "baseline: Host Ports: spec.initContainers[0].ports[0].hostPort: "
            'container "init" must not set hostPort, got 80'])

    def test_host_probe_and_lifecycle_hook(self):
        p = good_pod()
        c = p["spec"]["containers"][0]
        c["livenessProbe"]["httpGet"]["host"] = "169.254.169.254"
        c["lifecycle"] = {"preStop": {"tcpSocket": {"port": 1,
                                                    "host": "10.0.0.1"}}}
        self.check(p, [
            "baseline: Host Probes / Lifecycle Hooks: spec.containers[0]."
            'livenessProbe.httpGet.host: container "app" must not set host, '
            'got "169.254.169.254"',
            "baseline: Host Probes / Lifecycle Hooks: spec.containers[0]."
            'lifecycle.preStop.tcpSocket.host: container "app" must not set '
            'host, got "10.0.0.1"'])

    def test_apparmor_field_and_annotation(self):
        p = good_pod()
        p["spec"]["securityContext"]["appArmorProfile"] = {
            "type": "Unconfined"}
        p["metadata"]["annotations"] = {
            psa.APPARMOR_ANNOTATION + "app": "unconfined"}
        self.check(p, [
            "baseline: AppArmor: spec.securityContext.appArmorProfile.type: "
            'must be unset, RuntimeDefault or Localhost, got "Unconfined"',
            "baseline: AppArmor: metadata.annotations[\"container.apparmor."
            "security.beta.kubernetes.io/app\"]: must be unset, "
            'runtime/default or localhost/*, got "unconfined"'])

    def test_selinux(self):
        p = good_pod()
        app_sc(p)["seLinuxOptions"] = {"type": "spc_t", "user": "system_u",
                                       "role": "system_r"}
        self.check(p, [
            "baseline: SELinux: spec.containers[0].securityContext."
            'seLinuxOptions.type: container "app": must be unset or one of '
            "container_engine_t, container_init_t, container_kvm_t, "
            'container_t, got "spc_t"',
            "baseline: SELinux: spec.containers[0].securityContext."
            'seLinuxOptions.user: container "app": must be unset, got '
            '"system_u"',
            "baseline: SELinux: spec.containers[0].securityContext."
            'seLinuxOptions.role: container "app": must be unset, got '
            '"system_r"'])

    def test_proc_mount(self):
        p = good_pod()
        app_sc(p)["procMount"] = "Unmasked"
        self.check(p, [
            "baseline: /proc Mount Type: spec.containers[0].securityContext."
            'procMount: container "app": must be unset or Default, got '
            '"Unmasked"'])

    def test_seccomp_baseline_unconfined(self):
        p = good_pod()
        p["spec"]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
        self.check(p, [
            "baseline: Seccomp: spec.securityContext.seccompProfile.type: "
            'must be unset, RuntimeDefault or Localhost, got "Unconfined"'],
            level="baseline")
        # Unset is fine for baseline.
        del p["spec"]["securityContext"]["seccompProfile"]
        self.check(p, [], level="baseline")

    def test_sysctls(self):
        p = good_pod()
        p["spec"]["securityContext"]["sysctls"] = [
            {"name": "net.ipv4.tcp_syncookies", "value": "1"},
            {"name": "kernel.msgmax", "value": "1"}]
        self.check(p, [
            "baseline: Sysctls: spec.securityContext.sysctls[1].name: "
            '"kernel.msgmax" is not in the safe set'])


class RestrictedControls(unittest.TestCase):
    """Each case breaks one restricted control of an otherwise good pod."""

    def check(self, pod, expected):
        self.assertEqual(psa.check_pod_spec(pod["spec"], pod.get("metadata")),
                         expected)
        # None of these is a baseline violation.
        self.assertEqual(psa.check_pod_spec(pod["spec"], pod.get("metadata"),
                                            "baseline"), [])

    def test_volume_types(self):
        p = good_pod()
        p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s",
                                                          "path": "/"}})
        self.check(p, [
            'restricted: Volume Types: spec.volumes[8]: volume "n" is nfs; '
            "allowed: configMap, csi, downwardAPI, emptyDir, ephemeral, "
            "persistentVolumeClaim, projected, secret"])

    def test_privilege_escalation_unset_and_true(self):
        p = good_pod()
        del app_sc(p)["allowPrivilegeEscalation"]
        p["spec"]["initContainers"][0]["securityContext"][
            "allowPrivilegeEscalation"] = True
        self.check(p, [
            "restricted: Privilege Escalation: spec.containers[0]."
            'securityContext.allowPrivilegeEscalation: container "app" must '
            "set false, got unset",
            "restricted: Privilege Escalation: spec.initContainers[0]."
            'securityContext.allowPrivilegeEscalation: container "init" must '
            "set false, got true"])

    def test_run_as_non_root_missing_everywhere(self):
        p = good_pod()
        del p["spec"]["securityContext"]["runAsNonRoot"]
        app_sc(p)["runAsNonRoot"] = True
        self.check(p, [
            "restricted: Running as Non-root: spec.initContainers[0]."
            'securityContext.runAsNonRoot: container "init" must set true, '
            "got unset (and spec.securityContext.runAsNonRoot is not true)"])

    def test_run_as_non_root_container_overrides_pod(self):
        p = good_pod()
        app_sc(p)["runAsNonRoot"] = False
        self.check(p, [
            "restricted: Running as Non-root: spec.containers[0]."
            'securityContext.runAsNonRoot: container "app" must set true, '
            "got false"])

    def test_run_as_non_root_pod_false(self):
        p = good_pod()
        p["spec"]["securityContext"]["runAsNonRoot"] = False
        for key in ("containers", "initContainers"):
            p["spec"][key][0]["securityContext"]["runAsNonRoot"] = True
        self.check(p, [
            "restricted: Running as Non-root: spec.securityContext."
            "runAsNonRoot: must be true, got false"])

    def test_run_as_user_zero(self):
        p = good_pod()
        p["spec"]["securityContext"]["runAsUser"] = 0
        app_sc(p)["runAsUser"] = 0
        self.check(p, [
            "restricted: Running as Non-root user: spec.securityContext."
            "runAsUser: must not be 0",
            "restricted: Running as Non-root user: spec.containers[0]."
            'securityContext.runAsUser: container "app" must not set 0'])

    def test_seccomp_unset(self):
        p = good_pod()
        del p["spec"]["securityContext"]["seccompProfile"]
        app_sc(p)["seccompProfile"] = {"type": "RuntimeDefault"}
        self.check(p, [
            "restricted: Seccomp: spec.initContainers[0].securityContext."
            'seccompProfile.type: container "init" must be RuntimeDefault or '
            "Localhost, got unset (and spec.securityContext.seccompProfile."
            "type is unset)"])

    def test_seccomp_unconfined_container_overrides_pod(self):
        p = good_pod()
        app_sc(p)["seccompProfile"] = {"type": "Unconfined"}
        self.assertEqual(psa.check_pod_spec(p["spec"]), [
            "restricted: Seccomp: spec.containers[0].securityContext."
            'seccompProfile.type: container "app" must be RuntimeDefault or '
            'Localhost, got "Unconfined"'])

    def test_capabilities_restricted(self):
        p = good_pod()
        app_sc(p)["capabilities"] = {"drop": ["NET_RAW"],
                                     "add": ["CHOWN", "NET_BIND_SERVICE"]}
        self.check(p, [
            "restricted: Capabilities: spec.containers[0].securityContext."
            'capabilities.drop: container "app" must drop ALL',
            "restricted: Capabilities: spec.containers[0].securityContext."
            'capabilities.add: container "app" adds CHOWN; only '
            "NET_BIND_SERVICE is allowed"])

    def test_capabilities_missing_security_context(self):
        p = good_pod()
        del p["spec"]["containers"][0]["securityContext"]
        self.assertEqual(psa.check_pod_spec(p["spec"]), [
            "restricted: Privilege Escalation: spec.containers[0]."
            'securityContext.allowPrivilegeEscalation: container "app" must '
            "set false, got unset",
            "restricted: Capabilities: spec.containers[0].securityContext."
            'capabilities.drop: container "app" must drop ALL'])

    def test_windows_still_checks_baseline_capabilities(self):
        p = good_pod()
        p["spec"]["os"] = {"name": "windows"}
        app_sc(p)["capabilities"] = {"add": ["SYS_ADMIN"]}
        self.assertEqual(psa.check_pod_spec(p["spec"]), [
            "baseline: Capabilities: spec.containers[0].securityContext."
            'capabilities.add: container "app" adds SYS_ADMIN, beyond the '
            "allowed set"])


class Workloads(unittest.TestCase):
    def test_templates_of_every_kind_and_list(self):
        bad = good_pod()
        bad["spec"]["hostPID"] = True
        tmpl = {"metadata": {}, "spec": bad["spec"]}
        objs = [
            bad,
            {"kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
             "spec": {"template": tmpl}},
            {"kind": "StatefulSet", "metadata": {"name": "s"},
             "spec": {"template": tmpl}},
            {"kind": "DaemonSet", "metadata": {"name": "ds"},
             "spec": {"template": tmpl}},
            {"kind": "ReplicaSet", "metadata": {"name": "rs"},
             "spec": {"template": tmpl}},
            {"kind": "Job", "metadata": {"name": "j"},
             "spec": {"template": tmpl}},
            {"kind": "CronJob", "metadata": {"name": "cj"},
             "spec": {"jobTemplate": {"spec": {"template": tmpl}}}},
            {"kind": "ConfigMap", "metadata": {"name": "ignored"}},
        ]
        got = psa.check_object({"kind": "List", "items": objs})
        v = ["baseline: Host Namespaces: spec.hostPID: must be unset or "
             "false, got true"]
        self.assertEqual(got, [
            ("Pod/good", v), ("Deployment/n/d", v), ("StatefulSet/s", v),
            ("DaemonSet/ds", v), ("ReplicaSet/rs", v), ("Job/j", v),
            ("CronJob/cj", v)])

    def test_template_annotations_are_checked(self):
        good = good_pod()
        d = {"kind": "Deployment", "metadata": {"name": "d"},
             "spec": {"template": {
                 "metadata": {"annotations": {
                     psa.APPARMOR_ANNOTATION + "app": "unconfined"}},
                 "spec": good["spec"]}}}
        self.assertEqual(psa.check_object(d), [("Deployment/d", [
            "baseline: AppArmor: metadata.annotations[\"container.apparmor."
            "security.beta.kubernetes.io/app\"]: must be unset, "
            'runtime/default or localhost/*, got "unconfined"'])])


class Cli(unittest.TestCase):
    def run_cli(self, *args, stdin=None):
        return subprocess.run(
            [sys.executable, os.path.join(HERE, "psa_restricted.py"), *args],
            input=stdin, capture_output=True, text=True, timeout=60)

    def test_exit_codes_and_lines(self):
        good = good_pod()
        bad = good_pod()
        bad["metadata"]["name"] = "bad"
        bad["spec"]["hostNetwork"] = True
        with tempfile.TemporaryDirectory() as d:
            g = os.path.join(d, "good.json")
            b = os.path.join(d, "bad.json")
            with open(g, "w") as f:
                json.dump(good, f)
            with open(b, "w") as f:
                # Two concatenated JSON values, as a stream.
                f.write(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
            r = self.run_cli(g)
            self.assertEqual((r.returncode, r.stdout), (0, ""))
            r = self.run_cli(g, b)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stdout, (
                "%s: Pod/bad: baseline: Host Namespaces: spec.hostNetwork: "
                "must be unset or false, got true\n" % b))
            r = self.run_cli("-", stdin=json.dumps(bad))
            self.assertEqual(r.returncode, 1)
            r = self.run_cli(os.path.join(d, "missing.json"))
            self.assertEqual(r.returncode, 2)
            r = self.run_cli()
            self.assertEqual(r.returncode, 2)
            # Empty input (a producer that failed in a pipe) is no pass.
            r = self.run_cli("-", stdin="")
            self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=1)
