#!/usr/bin/env node
// Applies a JSON Patch (RFC 6902) to a JSON document with fast-json-patch
// (an implementation no one here wrote), for tests/integration/test_webhook.py:
// the webhook's patch, applied to the AdmissionReview's object, must give what
// `credbroker inject` gives.
//
// usage: node apply_patch.mjs DOCUMENT.json PATCH.json
// Output: the patched document as JSON on stdout.
// Exit: 0 applied; 1 invalid patch (not JSON, not an array, a malformed
//   operation, a path that does not resolve, a failed "test"...), with the
//   operation's index and the reason on stderr; 2 usage or unreadable document.
//
// Every operation is validated (applyPatch's validateOperation = true, and
// validate() first, which checks the whole sequence against the document
// before anything is applied), so a patch that only "works" because of
// fast-json-patch's leniency without validation is rejected.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const jsonpatch = require("fast-json-patch");

function die(code, msg) {
  process.stderr.write("apply_patch: " + msg + "\n");
  process.exit(code);
}

const args = process.argv.slice(2);
if (args.length !== 2) die(2, "usage: node apply_patch.mjs DOCUMENT.json PATCH.json");

let doc;
try {
  doc = JSON.parse(readFileSync(args[0], "utf8"));
} catch (e) {
  die(2, args[0] + ": " + e.message);
}

let patch;
try {
  patch = JSON.parse(readFileSync(args[1], "utf8"));
} catch (e) {
  die(1, "invalid patch: " + args[1] + ": " + e.message);
}

function describe(err) {
  const first = String(err.message || err).split("\n")[0];
  const where = err.index === undefined ? "" : " at operation " + err.index;
  const op = err.operation === undefined ? "" : " " + JSON.stringify(err.operation);
  return (err.name ? err.name + ": " : "") + first + where + op;
}

let problem;
try {
  problem = jsonpatch.validate(patch, doc); // a JsonPatchError, or undefined
} catch (e) {
  problem = e; // validate() rethrows anything else (a banned __proto__ path)
}
if (problem) die(1, "invalid patch: " + describe(problem));

let result;
try {
  // validateOperation, mutateDocument = false (doc stays as read), and
  // banPrototypeModifications.
  result = jsonpatch.applyPatch(doc, patch, true, false, true).newDocument;
} catch (e) {
  die(1, "invalid patch: " + describe(e));
}
process.stdout.write(JSON.stringify(result, null, 2) + "\n");
