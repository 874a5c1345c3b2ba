// The ONNX Runtime thread (started by ort-thread.ts): owns every InferenceSession of the process.
// onnxruntime-node runs a session synchronously on the thread that calls it, so here it blocks this
// thread instead of the gateway's event loop. Plain JavaScript on purpose: a worker thread gets no
// TypeScript loader under vitest, and tsx's would add its start-up cost to every process.
import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';

ort.env.logLevel = 'error';

/** @type {Map<number, import('onnxruntime-node').InferenceSession>} */
const sessions = new Map();
let nextSession = 1;

/**
 * One operation at a time, in arrival order: a release must not overtake a run sent before it (ORT
 * would run a disposed session), and ORT computes one call at a time on this thread anyway.
 */
let queue = Promise.resolve();

/**
 * Set by a `close` message, which is read as soon as the current operation returns (it is not
 * queued): the operations still queued are skipped, every session is released and the thread
 * ends by itself. Worker.terminate() during a run aborts the whole process (onnxruntime-node's
 * binding throws a C++ Napi::Error into a terminating environment: "terminate called after
 * throwing an instance of 'Napi::Error'").
 */
let closing = false;

parentPort.on('message', (msg) => {
  if (msg.op === 'close') {
    closing = true;
    queue = queue.then(async () => {
      for (const s of sessions.values()) await s.release().catch(() => undefined);
      sessions.clear();
      parentPort.close();
    });
    return;
  }
  queue = queue.then(() => (closing ? undefined : handle(msg)));
});

function tensor(t) {
  // ORT rejects views on a SharedArrayBuffer: this thread copies them (the caller's thread did not).
  const shared = ArrayBuffer.isView(t.data) && t.data.buffer instanceof SharedArrayBuffer;
  return new ort.Tensor(t.type, shared ? t.data.slice() : t.data, t.dims);
}

async function handle(msg) {
  try {
    switch (msg.op) {
      case 'create': {
        const s = await ort.InferenceSession.create(msg.model, msg.options);
        const session = nextSession++;
        sessions.set(session, s);
        parentPort.postMessage({ id: msg.id, session, inputNames: s.inputNames, outputNames: s.outputNames });
        return;
      }
      case 'run': {
        const s = sessions.get(msg.session);
        if (!s) throw Object.assign(new Error('the session was released'), { code: 'CANCELLED' });
        const feeds = {};
        for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = tensor(t);
        const out = await s.run(feeds, msg.fetches);
        send(msg.id, out);
        return;
      }
      case 'release': {
        const s = sessions.get(msg.session);
        sessions.delete(msg.session);
        await s?.release();
        parentPort.postMessage({ id: msg.id });
        return;
      }
      default:
        throw new Error(`unknown ORT thread operation ${msg.op}`);
    }
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    parentPort.postMessage({ id: msg.id, error: { message: err.message, code: err.code } });
  }
}

/** Outputs go back as transferred buffers: each tensor's data is moved, not copied, to the caller. */
function send(id, out) {
  const outputs = {};
  const transfer = [];
  for (const [name, t] of Object.entries(out)) {
    let data = t.data;
    if (ArrayBuffer.isView(data)) {
      // A view on part of a buffer (or one buffer shared by two outputs) is copied to a buffer of its own.
      if (data.byteOffset !== 0 || data.byteLength !== data.buffer.byteLength || transfer.includes(data.buffer)) data = data.slice();
      transfer.push(data.buffer);
    }
    outputs[name] = { type: t.type, dims: t.dims, data };
  }
  parentPort.postMessage({ id, outputs }, transfer);
}
