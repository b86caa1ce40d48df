// Tests of validate_manifests.mjs (node's test runner):
//   node --test tests/node/test_validate_manifests.mjs
// Drives the CLI on generated manifests and checks exit codes and the exact
// lines, then the library functions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { checkObject, parseText, REGISTRY } from "./validate_manifests.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const TOOL = join(HERE, "validate_manifests.mjs");
const dir = mkdtempSync(join(tmpdir(), "vm-test-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

function write(name, text) {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function run(args, input) {
  const r = spawnSync(process.execPath, [TOOL, ...args],
                      { input, encoding: "utf8", timeout: 60000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const deployment = (containerExtra = "", specExtra = "") => `\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-a
  labels: {app: web, app.kubernetes.io/name: web}
  annotations: {credbroker.io/inject: "true", credbroker.io/secret-db: db/creds/app}
spec:
  replicas: 2${specExtra}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 8080, name: http}]
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {memory: 64Mi}}
          livenessProbe: {httpGet: {path: /, port: http}}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}${containerExtra}
      volumes:
        - name: secrets
          csi: {driver: csi.credbroker.io, volumeAttributes: {brokerUid: "65534"}}
`;

test("a valid Deployment passes with no output", () => {
  const f = write("valid.yaml", deployment());
  assert.deepEqual(run([f]), { code: 0, out: "", err: "" });
});

test("an unknown field is reported with its path", () => {
  const f = write("unknown.yaml",
                  deployment("\n          securtyContext: {runAsNonRoot: true}"));
  const r = run([f]);
  assert.equal(r.code, 1);
  assert.equal(r.out, `${f}: Deployment/team-a/web: ` +
    "spec.template.spec.containers[0].securtyContext: unknown field\n");
});

test("a wrong type is reported", () => {
  const f = write("type.yaml", deployment().replace("replicas: 2",
                                                     'replicas: "two"'));
  const r = run([f]);
  assert.equal(r.code, 1);
  assert.equal(r.out,
               `${f}: Deployment/team-a/web: spec.replicas: must be integer\n`);
});

test("a wrong enum value and a missing required field", () => {
  const f = write("enum.yaml", deployment(
    "\n            seccompProfile: {type: Bogus}").replace(
    "          image: nginx:1.27\n", "          image: nginx:1.27\n" +
    "          imagePullPolicy: Sometimes\n").replace(
    "  selector: {matchLabels: {app: web}}\n", ""));
  const r = run([f]);
  assert.equal(r.code, 1);
  const p = `${f}: Deployment/team-a/web: `;
  assert.equal(r.out, [
    `${p}spec.selector: required field missing`,
    `${p}spec.template.spec.containers[0].imagePullPolicy: must be one of ` +
      '["Always","IfNotPresent","Never"]',
    `${p}spec.template.spec.containers[0].securityContext.seccompProfile.` +
      'type: must be one of ["Localhost","RuntimeDefault","Unconfined"]',
    ""].join("\n"));
});

test("multi-document YAML, Lists, JSON and stdin", () => {
  const good = deployment();
  const bad = deployment("", "\n  replcas: 3");
  const multi = write("multi.yaml", `${good}---\n${bad}---\n# empty\n`);
  const r = run([multi]);
  assert.equal(r.code, 1);
  assert.equal(r.out,
               `${multi}: Deployment/team-a/web: spec.replcas: unknown field\n`);

  const objs = parseText(`${good}---\n${bad}`);
  const list = { apiVersion: "v1", kind: "List", items: objs };
  const json = write("list.json", JSON.stringify(list));
  assert.equal(run([json]).out,
               `${json}: Deployment/team-a/web: spec.replcas: unknown field\n`);
  const s = run(["-"], JSON.stringify(objs[0]));
  assert.deepEqual([s.code, s.out], [0, ""]);
  // A typed list (DeploymentList) is validated by its own schema.
  const dl = { apiVersion: "apps/v1", kind: "DeploymentList", items: objs };
  assert.deepEqual(checkObject(dl), [["items[1].spec.replcas",
                                      "unknown field"]]);
});

test("unknown kinds fail unless allowed", () => {
  const crd = "apiVersion: example.com/v1\nkind: Foo\nmetadata: {name: f}\n" +
              "spec: {anything: 1}\n";
  const f = write("crd.yaml", crd);
  const r = run([f]);
  assert.equal(r.code, 1);
  assert.match(r.out, new RegExp(`^${f}: Foo/f: \\(root\\): unknown kind ` +
                                 "example.com/v1/Foo \\(not in " +
                                 "kubernetes-models 4\\.\\d+\\.\\d+; " +
                                 "--allow-kind to accept\\)\n$"));
  assert.equal(run(["--allow-kind", "example.com/v1/Foo", f]).code, 0);
  assert.equal(run(["--allow-kind=Foo", f]).code, 0);
  assert.deepEqual(checkObject({ kind: "Pod" }),
                   [["(root)", "apiVersion and kind are required strings"]]);
});

test("maps, quantities, int-or-string and free-form fields are not unknown", () => {
  const objs = parseText(`\
apiVersion: v1
kind: ConfigMap
metadata: {name: c, annotations: {a.b/c: d}, creationTimestamp: null}
data: {credbroker.json: "{}"}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {selector: {app: web}, ports: [{port: 443, targetPort: https}, {port: 80, targetPort: 8080}]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: foos.example.com}
spec:
  group: example.com
  names: {kind: Foo, plural: foos}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          description: a foo
          x-kubernetes-preserve-unknown-fields: true
          properties:
            spec: {type: object, default: {any: {deep: true}}}
`);
  for (const o of objs) assert.deepEqual(checkObject(o), [], o.kind);
  // ...while a typo in metadata or in a nested CRD schema is.
  const cm = structuredClone(objs[0]);
  cm.metadata.lables = { a: "b" };
  assert.deepEqual(checkObject(cm), [["metadata.lables", "unknown field"]]);
  const crd = structuredClone(objs[2]);
  crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.tpye = "x";
  assert.deepEqual(checkObject(crd), [[
    "spec.versions[0].schema.openAPIV3Schema.properties.spec.tpye",
    "unknown field"]]);
});

test("--to-json writes a v1 List on stdout, problems on stderr", () => {
  const f = write("tojson.yaml", `${deployment()}---\n${deployment("",
    "\n  replcas: 3")}`);
  const r = run(["--to-json", f]);
  assert.equal(r.code, 1);
  const list = JSON.parse(r.out);
  assert.equal(list.kind, "List");
  assert.equal(list.items.length, 2);
  assert.equal(list.items[0].spec.template.spec.containers[0].name, "web");
  assert.equal(r.err,
               `${f}: Deployment/team-a/web: spec.replcas: unknown field\n`);
});

test("unreadable input and usage give exit 2", () => {
  const f = write("broken.yaml", "a: [1, 2\n");
  const r = run([f]);
  assert.equal(r.code, 2);
  assert.match(r.err, /cannot read/);
  assert.equal(run([join(dir, "missing.yaml")]).code, 2);
  assert.equal(run([]).code, 2);
});

test("the registry knows the kinds credbroker deploys", () => {
  for (const k of ["v1/Pod", "v1/Namespace", "v1/ServiceAccount",
                   "v1/Service", "v1/ConfigMap", "apps/v1/Deployment",
                   "apps/v1/DaemonSet", "batch/v1/CronJob",
                   "storage.k8s.io/v1/CSIDriver",
                   "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration",
                   "rbac.authorization.k8s.io/v1/ClusterRole",
                   "rbac.authorization.k8s.io/v1/RoleBinding"])
    assert.ok(REGISTRY.has(k), k);
});
