#!/usr/bin/env node
// Validates Kubernetes manifests against the official schemas shipped by
// kubernetes-models (v4, its per-kind classes' .validate()), plus a strict
// unknown-field check, which kubernetes-models does not do by itself.
//
// kubernetes-models ships its OpenAPI definitions compiled to ajv standalone
// validators (node_modules/kubernetes-models/_schemas/IoK8sApi*.mjs and
// node_modules/@kubernetes-models/apimachinery/_schemas/*.mjs), not as JSON.
// Those validators read every property their schema declares
// (`void 0===data.x||validateN(data.x, ...)`) and iterate the keys of maps
// (additionalProperties).  So the unknown-field check runs the same
// validator on a Proxy of the object that records which keys each nested
// object was asked for: a key the schema never asked about is not in the
// schema.  An object the validator never looked into at all is free-form in
// the schema (RawExtension, x-kubernetes-preserve-unknown-fields) or sits
// under an already reported problem, and is not descended into.
// One gap, found by comparing each model's .d.ts properties with the keys its
// compiled validator reads: the apiextensions.k8s.io JSONSchemaProps,
// CustomResourceColumnDefinition and ExternalDocumentation validators omit
// "description" and the "x-kubernetes-*" keys (kubernetes-models strips
// them when compiling), so inside a CustomResourceDefinition those keys are
// accepted from the .d.ts declarations instead.
//
// usage: node validate_manifests.mjs [--allow-kind KIND]... [--to-json]
//                                    FILE|- ...
//   FILE: YAML (multi-document) or JSON, e.g. `kubectl kustomize DIR | ... -`.
//   Objects of kind List (or *List with items) are checked item by item.
//   --allow-kind KIND: KIND is "apiVersion/Kind" or "Kind"; such objects
//     (CRDs, Kustomization...) are accepted without checks.  Any kind that
//     kubernetes-models does not know is otherwise an error.
//   --to-json: also write every object read, as one v1 List, to stdout
//     (problems then go to stderr); for tests/tools/psa_restricted.py.
// Output: one line per problem, "FILE: Kind/name: path: problem".
// Exit: 0 no problem, 1 problems, 2 usage or unreadable input.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import * as k8s from "kubernetes-models";
import YAML from "yaml";

const require = createRequire(import.meta.url);
export const MODELS_VERSION = require("kubernetes-models/package.json").version;

// "apiVersion/Kind" -> model class, from every group module of the package.
function buildRegistry() {
  const reg = new Map();
  const seen = new Set();
  const walk = (ns) => {
    if (!ns || seen.has(ns)) return;
    seen.add(ns);
    for (const v of Object.values(ns)) {
      if (typeof v === "function") {
        if (typeof v.apiVersion === "string" && typeof v.kind === "string" &&
            typeof v.prototype.validate === "function")
          reg.set(`${v.apiVersion}/${v.kind}`, v);
      } else if (v && typeof v === "object") {
        walk(v);
      }
    }
  };
  walk(k8s);
  return reg;
}
export const REGISTRY = buildRegistry();

// --- the access-recording proxy -------------------------------------------

function track(value) {
  const records = new Map(); // target object -> Set of keys asked for
  const proxies = new WeakMap();
  const wrap = (v) => {
    if (v === null || typeof v !== "object") return v;
    let p = proxies.get(v);
    if (p) return p;
    const asked = new Set();
    records.set(v, asked);
    const note = (k) => { if (typeof k === "string") asked.add(k); };
    p = new Proxy(v, {
      get(t, k, r) { note(k); return wrap(Reflect.get(t, k, r)); },
      has(t, k) { note(k); return Reflect.has(t, k); },
      getOwnPropertyDescriptor(t, k) {
        note(k);
        return Reflect.getOwnPropertyDescriptor(t, k);
      },
    });
    proxies.set(v, p);
    return p;
  };
  return { proxy: wrap(value), records };
}

// --- paths ------------------------------------------------------------------

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;
function joinPath(base, key) {
  if (typeof key === "number") return `${base}[${key}]`;
  if (IDENT.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}
function pointerToPath(ptr) {
  if (!ptr) return "(root)";
  let out = "";
  for (const raw of ptr.split("/").slice(1)) {
    const seg = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    out = /^\d+$/.test(seg) ? joinPath(out, Number(seg)) : joinPath(out, seg);
  }
  return out || "(root)";
}

function describeError(e) {
  const p = e.params || {};
  switch (e.keyword) {
    case "required":
      return [joinPath(pointerToPath(e.instancePath).replace(/^\(root\)$/, ""),
                       p.missingProperty), "required field missing"];
    case "type":
      return [pointerToPath(e.instancePath), `must be ${p.type}`];
    case "enum":
      return [pointerToPath(e.instancePath),
              `must be one of ${JSON.stringify(p.allowedValues)}`];
    default:
      return [pointerToPath(e.instancePath), e.message || e.keyword];
  }
}

// --- checking ---------------------------------------------------------------

const CRD_UNCOMPILED = new Set([
  "description", "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
  "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
  "x-kubernetes-map-type", "x-kubernetes-preserve-unknown-fields",
  "x-kubernetes-validations",
]);

function unknownFields(data, records, path, out, crd) {
  if (data === null || typeof data !== "object") return;
  const asked = records.get(data);
  if (!asked || asked.size === 0) return; // free-form, or not reached
  if (Array.isArray(data)) {
    data.forEach((v, i) =>
      unknownFields(v, records, joinPath(path, i), out, crd));
    return;
  }
  for (const k of Object.keys(data)) {
    const sub = joinPath(path, k);
    if (asked.has(k)) unknownFields(data[k], records, sub, out, crd);
    else if (!(crd && CRD_UNCOMPILED.has(k))) out.push([sub, "unknown field"]);
  }
}

function matchesAllowed(allowed, apiVersion, kind) {
  return allowed.has(kind) || allowed.has(`${apiVersion}/${kind}`);
}

// Problems of one object: [[path, problem]].
export function checkObject(obj, allowed = new Set()) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj))
    return [["(root)", "not an object"]];
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string")
    return [["(root)", "apiVersion and kind are required strings"]];
  if (matchesAllowed(allowed, apiVersion, kind)) return [];
  const Model = REGISTRY.get(`${apiVersion}/${kind}`);
  if (!Model)
    return [["(root)", `unknown kind ${apiVersion}/${kind} (not in ` +
             `kubernetes-models ${MODELS_VERSION}; --allow-kind to accept)`]];
  const out = [];
  const seen = new Set();
  // Same validate function the class's .validate() runs, on the proxy.
  const { proxy, records } = track(obj);
  try {
    Model.prototype.validate.call(proxy);
  } catch (err) {
    if (!Array.isArray(err.errors)) throw err;
    for (const e of err.errors) {
      const d = describeError(e);
      const key = d.join("\0");
      if (!seen.has(key)) { seen.add(key); out.push(d); }
    }
  }
  // And the class itself, as kubernetes-models users call it: it must agree.
  let classOk = true;
  try { new Model(obj).validate(); } catch { classOk = false; }
  if (classOk !== (out.length === 0))
    out.push(["(root)", "internal: proxy and class validation disagree"]);
  unknownFields(obj, records, "", out,
                apiVersion.startsWith("apiextensions.k8s.io/") &&
                kind === "CustomResourceDefinition");
  return out;
}

function flatten(obj, acc) {
  if (obj && typeof obj === "object" && !Array.isArray(obj) &&
      typeof obj.kind === "string" && obj.kind.endsWith("List") &&
      Array.isArray(obj.items) &&
      (obj.kind === "List" || !REGISTRY.has(`${obj.apiVersion}/${obj.kind}`))) {
    for (const it of obj.items) flatten(it, acc);
  } else if (Array.isArray(obj)) {
    for (const it of obj) flatten(it, acc);
  } else if (obj !== null && obj !== undefined) {
    acc.push(obj);
  }
  return acc;
}

export function label(obj) {
  if (!obj || typeof obj !== "object") return "?/?";
  const md = obj.metadata && typeof obj.metadata === "object" ? obj.metadata : {};
  const name = md.name || md.generateName || "?";
  return `${obj.kind || "?"}/${md.namespace ? md.namespace + "/" : ""}${name}`;
}

// Parse a file's text: [objects] or throws with a message.
export function parseText(text) {
  const docs = YAML.parseAllDocuments(text, { prettyErrors: true });
  const objs = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    if (d.errors && d.errors.length) throw new Error(d.errors[0].message);
    flatten(d.toJS({ maxAliasCount: 100 }), objs);
  }
  return objs;
}

function main(argv) {
  const allowed = new Set();
  const files = [];
  let toJson = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--allow-kind") allowed.add(argv[++i] ?? "");
    else if (a.startsWith("--allow-kind=")) allowed.add(a.slice(13));
    else if (a === "--to-json") toJson = true;
    else if (a === "-h" || a === "--help") {
      console.log("usage: validate_manifests.mjs [--allow-kind KIND]... " +
                  "[--to-json] FILE|- ...");
      return 0;
    } else files.push(a);
  }
  if (!files.length) {
    console.error("usage: validate_manifests.mjs [--allow-kind KIND]... " +
                  "[--to-json] FILE|- ...");
    return 2;
  }
  const report = toJson ? (s) => console.error(s) : (s) => console.log(s);
  let problems = 0, status = 0;
  const all = [];
  for (const f of files) {
    let objs;
    try {
      objs = parseText(readFileSync(f === "-" ? 0 : f, "utf8"));
    } catch (e) {
      console.error(`${f}: cannot read: ${e.message.split("\n")[0]}`);
      status = 2;
      continue;
    }
    for (const o of objs) {
      all.push(o);
      for (const [path, problem] of checkObject(o, allowed)) {
        report(`${f}: ${label(o)}: ${path}: ${problem}`);
        problems++;
      }
    }
  }
  if (toJson)
    process.stdout.write(JSON.stringify(
      { apiVersion: "v1", kind: "List", items: all }, null, 1) + "\n");
  if (status) return status;
  return problems ? 1 : 0;
}

if (process.argv[1] && import.meta.url.endsWith(
    process.argv[1].split("/").pop())) {
  process.exitCode = main(process.argv.slice(2));
}
