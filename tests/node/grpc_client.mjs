// gRPC conformance client for fusefs/csi/grpc.c, using a client no one here
// wrote (@grpc/grpc-js).  No .proto: the methods carry raw Buffers.
// Usage: node grpc_client.mjs /path/to/socket
// The server under test must serve /test.Echo/Echo (returns the request)
// and /test.Echo/Invalid (always INVALID_ARGUMENT with INVALID_MESSAGE).
// Exits 0 on success, 1 with a message on stderr otherwise.
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');

export const INVALID_MESSAGE = 'bad volume_id: 100% wrong, caf\u00e9 \u2713';

const identity = (b) => b;
function unary(path) {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

const Client = grpc.makeGenericClientConstructor({
  Echo: unary('/test.Echo/Echo'),
  Invalid: unary('/test.Echo/Invalid'),
  Missing: unary('/test.Echo/Missing'),
}, 'test.Echo');

function call(client, method, payload) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    client[method](payload, { deadline }, (err, resp) => {
      if (err) reject(err); else resolve(resp);
    });
  });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function expectEcho(client, payload, what) {
  const resp = await call(client, 'Echo', payload);
  check(Buffer.isBuffer(resp), `${what}: response is not a Buffer`);
  check(resp.equals(payload),
        `${what}: echo mismatch (sent ${payload.length}, got ${resp.length})`);
}

async function expectStatus(client, method, code, message, what) {
  try {
    await call(client, method, Buffer.from('x'));
  } catch (err) {
    check(err.code === code, `${what}: code ${err.code} (${err.details}), want ${code}`);
    if (message !== undefined)
      check(err.details === message,
            `${what}: message ${JSON.stringify(err.details)}, want ${JSON.stringify(message)}`);
    return;
  }
  throw new Error(`${what}: call succeeded, want code ${code}`);
}

async function main() {
  const sock = process.argv[2];
  check(sock, 'usage: grpc_client.mjs SOCKET_PATH');
  const client = new Client(`unix://${sock}`, grpc.credentials.createInsecure());
  try {
    await expectEcho(client, Buffer.alloc(0), 'empty');
    await expectEcho(client, Buffer.from([0x42]), '1 byte');
    await expectEcho(client, randomBytes(100 * 1024), '100 KiB');
    await expectEcho(client, randomBytes(1024 * 1024), '1 MiB');
    await expectStatus(client, 'Invalid', grpc.status.INVALID_ARGUMENT,
                       INVALID_MESSAGE, 'Invalid');
    await expectStatus(client, 'Missing', grpc.status.UNIMPLEMENTED,
                       undefined, 'unknown method');
    try {
      await call(client, 'Echo', Buffer.alloc(5 * 1024 * 1024));
      throw new Error('5 MiB: call succeeded, want RESOURCE_EXHAUSTED');
    } catch (err) {
      check(err.code === grpc.status.RESOURCE_EXHAUSTED,
            `5 MiB: code ${err.code} (${err.details}), want RESOURCE_EXHAUSTED`);
    }
    const calls = [];
    for (let i = 0; i < 200; i++) {
      const p = randomBytes(i * 97 % 5000);
      calls.push(i % 10 === 9
        ? expectStatus(client, 'Invalid', grpc.status.INVALID_ARGUMENT,
                       INVALID_MESSAGE, `concurrent ${i}`)
        : expectEcho(client, p, `concurrent ${i}`));
    }
    await Promise.all(calls);
    // The server still answers after all that.
    await expectEcho(client, Buffer.from('still here'), 'after concurrency');
  } finally {
    client.close();
  }
}

main().then(() => {
  console.log('grpc_client: all checks passed');
  process.exit(0);
}, (err) => {
  console.error(`grpc_client: FAIL: ${err.message}`);
  process.exit(1);
});
