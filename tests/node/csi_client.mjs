// Drives credbroker-csi the way kubelet does, with @grpc/grpc-js and
// @grpc/proto-loader loading tests/node/csi.proto: every RPC, idempotent
// publish and unpublish, refusals, UNIMPLEMENTED, and a malformed message.
// Usage: node csi_client.mjs SOCKET TARGET_PATH TOKEN [publish|unpublish]
// Without a mode it runs every check; a mode makes that one call (as
// kubelet would before and after a pod runs).  Prints one line per check;
// exits 0 when all pass, 1 otherwise.
import fs from 'node:fs';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [sock, target, token, mode] = process.argv.slice(2);
const def = protoLoader.loadSync(new URL('./csi.proto', import.meta.url).pathname,
  {keepCase: true, longs: String, enums: String, defaults: true, oneofs: true});
const csi = grpc.loadPackageDefinition(def).csi.v1;
const addr = 'unix://' + sock;
const creds = grpc.credentials.createInsecure();
const identity = new csi.Identity(addr, creds);
const node = new csi.Node(addr, creds);
let failed = 0;

function call(client, method, req) {
  return new Promise((resolve) => {
    client[method](req, {deadline: Date.now() + 20000},
      (err, res) => resolve({err, res}));
  });
}

function check(what, ok, detail) {
  console.log(`${ok ? 'ok' : 'FAIL'}: ${what}${ok ? '' : ' ' + JSON.stringify(detail)}`);
  if (!ok) failed++;
}

function mounted(path) {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n')
    .filter((l) => l.split(' ')[1] === path && l.split(' ')[2] === 'fuse.credbroker').length;
}

const publish = {
  volume_id: 'csi-e2e-1',
  target_path: target,
  volume_capability: {mount: {}, access_mode: {mode: 'SINGLE_NODE_WRITER'}},
  volume_context: {
    'csi.storage.k8s.io/ephemeral': 'true',
    'csi.storage.k8s.io/pod.name': 'ws-1',
    'csi.storage.k8s.io/pod.namespace': 'team-a',
    'csi.storage.k8s.io/pod.uid': 'u-1',
    'csi.storage.k8s.io/serviceAccount.name': 'app',
    'csi.storage.k8s.io/serviceAccount.tokens':
      JSON.stringify({vault: {token, expirationTimestamp: '2030-01-01T00:00:00Z'}}),
    handoffVolume: 'handoff',
  },
};

if (mode === 'publish' || mode === 'unpublish') {
  const r = mode === 'publish'
    ? await call(node, 'NodePublishVolume', publish)
    : await call(node, 'NodeUnpublishVolume', {volume_id: publish.volume_id, target_path: target});
  check(mode, !r.err, r.err && r.err.details);
  identity.close(); node.close();
  process.exit(failed ? 1 : 0);
}

let r = await call(identity, 'GetPluginInfo', {});
check('GetPluginInfo', !r.err && r.res.name === 'csi.credbroker.io' && r.res.vendor_version, r);
r = await call(identity, 'GetPluginCapabilities', {});
check('GetPluginCapabilities is empty', !r.err && r.res.capabilities.length === 0, r);
r = await call(identity, 'Probe', {});
check('Probe ready', !r.err && r.res.ready && r.res.ready.value === true, r);
r = await call(node, 'NodeGetInfo', {});
check('NodeGetInfo', !r.err && r.res.node_id === 'node-e2e', r);
r = await call(node, 'NodeGetCapabilities', {});
check('NodeGetCapabilities: VOLUME_MOUNT_GROUP', !r.err &&
  r.res.capabilities.length === 1 && r.res.capabilities[0].rpc.type === 'VOLUME_MOUNT_GROUP', r);

r = await call(node, 'NodePublishVolume', publish);
check('NodePublishVolume', !r.err && mounted(target) === 1, r.err && r.err.details);
r = await call(node, 'NodePublishVolume', publish);
check('NodePublishVolume again: OK, still one mount', !r.err && mounted(target) === 1, r.err && r.err.details);
r = await call(node, 'NodePublishVolume', {...publish, volume_id: 'csi-e2e-2',
  volume_context: {...publish.volume_context, 'csi.storage.k8s.io/ephemeral': 'false'}});
check('a persistent volume is refused', r.err && r.err.code === grpc.status.INVALID_ARGUMENT, r.err);
r = await call(node, 'NodePublishVolume', {...publish, volume_id: 'csi-e2e-3', target_path: '/etc/x/mount'});
check('a target outside the pods directory is refused',
  r.err && r.err.code === grpc.status.INVALID_ARGUMENT, r.err);
r = await call(node, 'NodeStageVolume', {volume_id: 'x'});
check('NodeStageVolume is UNIMPLEMENTED', r.err && r.err.code === grpc.status.UNIMPLEMENTED, r.err);

// A malformed message: the raw bytes of a varint that never ends.
const raw = new grpc.Client(addr, creds);
r = await new Promise((resolve) => raw.makeUnaryRequest('/csi.v1.Node/NodePublishVolume',
  (b) => b, (b) => b, Buffer.from([0x0a, 0xff, 0xff, 0xff]), (err, res) => resolve({err, res})));
check('a malformed message is INVALID_ARGUMENT', r.err && r.err.code === grpc.status.INVALID_ARGUMENT, r.err);

r = await call(node, 'NodeUnpublishVolume', {volume_id: 'csi-e2e-1', target_path: target});
check('NodeUnpublishVolume', !r.err && mounted(target) === 0 && !fs.existsSync(target), r.err);
r = await call(node, 'NodeUnpublishVolume', {volume_id: 'csi-e2e-1', target_path: target});
check('NodeUnpublishVolume again: OK', !r.err, r.err);

identity.close(); node.close(); raw.close();
process.exit(failed ? 1 : 0);
