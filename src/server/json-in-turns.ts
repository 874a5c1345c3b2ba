// JSON.stringify of a large response (a `cells` answer within the response budget is ~5 MB of
// nested objects) held the event loop for 100–300 ms per response on a loaded machine, and four of
// them finishing together for over a second. This serializer gives the loop back every few
// milliseconds. It walks the big containers itself and hands every subtree of at most NATIVE_NODES
// values (a cell with its 100 predictions, a row of ids) to JSON.stringify, so most of the work
// stays native. json-stream-stringify (the npm library for
// this) was measured at 25–30× JSON.stringify with turns of up to 165 ms, so it was not used.
//
// A JSON response goes out as UTF-8 bytes encoded here, 64 KiB at a time between turns: handed a
// 5 MB string, the server adapter encoded it in one piece (Buffer.from, or the socket write of a
// string), 30–80 ms on a busy machine, and joining the pieces into that string was one more.

import type { ExecutionResult } from 'graphql';
import { isAsyncIterable, processRegularResult, type Plugin } from 'graphql-yoga';
import { nextTurn } from '../lens/loop-turns.js';

/** Members of a flat array serialized per step (one JSON.stringify call each). */
const FLAT_BATCH = 4096;
/** A subtree of at most this many values is one JSON.stringify call (well under a millisecond). */
const NATIVE_NODES = 2048;

interface Frame {
  container: object;
  /** Member values, in order; for objects, `keys` names them. */
  items: unknown[];
  keys: string[] | null;
  i: number;
  /** An object frame has written a member (so the next one needs a comma). */
  wrote: boolean;
  /** An array of primitives, serialized FLAT_BATCH members at a time. */
  flat: boolean;
}

const skipped = (v: unknown) => v === undefined || typeof v === 'function' || typeof v === 'symbol';

function isPrimitive(v: unknown): boolean {
  return v === null || typeof v !== 'object';
}

function toJsonValue(v: unknown, key: string): unknown {
  return v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function'
    ? (v as { toJSON(key: string): unknown }).toJSON(key)
    : v;
}

function allPrimitive(values: unknown[]): boolean {
  for (const v of values) if (!isPrimitive(v)) return false;
  return true;
}

/** Values in v's subtree, counting stops past `limit` (so a cycle or a huge tree costs at most that). */
function sizeUpTo(v: unknown, limit: number): number {
  let n = 0;
  const walk = (x: unknown): void => {
    n++;
    if (n > limit || x === null || typeof x !== 'object') return;
    if (Array.isArray(x)) {
      for (const y of x) {
        walk(y);
        if (n > limit) return;
      }
    } else {
      for (const k in x) {
        walk((x as Record<string, unknown>)[k]);
        if (n > limit) return;
      }
    }
  };
  walk(v);
  return n;
}

/** Characters of JSON text encoded to UTF-8 per piece (one Buffer.from each). */
const BYTES_PIECE = 64 * 1024;

/**
 * JSON.stringify(value), equal to it for JSON-compatible values (toJSON, omitted undefined members,
 * nulls in arrays, cycles rejected), yielding to the event loop whenever `sliceMs` have passed.
 */
export async function stringifyInTurns(value: unknown, sliceMs = 4): Promise<string> {
  const out: string[] = [];
  const written = await writeJsonInTurns(value, (s) => out.push(s), sliceMs);
  return written ? out.join('') : (undefined as unknown as string);
}

/**
 * The UTF-8 bytes of JSON.stringify(value) (as stringifyInTurns), encoded a piece at a time between
 * turns, so no step holds the loop for the whole text. Undefined where JSON.stringify gives undefined.
 */
export async function jsonBytesInTurns(value: unknown, sliceMs = 4): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const pieces: Buffer[] = [];
  let pending = '';
  const written = await writeJsonInTurns(
    value,
    (s) => {
      pending += s;
      if (pending.length >= BYTES_PIECE) {
        pieces.push(Buffer.from(pending, 'utf8'));
        pending = '';
      }
    },
    sliceMs,
  );
  if (!written) return undefined;
  if (pending) pieces.push(Buffer.from(pending, 'utf8'));
  return Buffer.concat(pieces);
}

/** Emits value's JSON text in order, a piece at a time; false where JSON.stringify gives undefined. */
async function writeJsonInTurns(value: unknown, emit: (s: string) => void, sliceMs: number): Promise<boolean> {
  const out = { push: emit };
  const stack: Frame[] = [];
  let deadline = performance.now() + sliceMs;
  let steps = 0;

  const enter = (v: unknown): void => {
    if (v === null || typeof v !== 'object') {
      out.push(JSON.stringify(v) ?? 'null');
      return;
    }
    if (sizeUpTo(v, NATIVE_NODES) <= NATIVE_NODES) {
      out.push(JSON.stringify(v));
      return;
    }
    if (stack.some((f) => f.container === v)) throw new TypeError('Converting circular structure to JSON');
    if (Array.isArray(v)) {
      out.push('[');
      stack.push({ container: v, items: v, keys: null, i: 0, wrote: false, flat: allPrimitive(v) });
      return;
    }
    const keys = Object.keys(v);
    const items = keys.map((k) => (v as Record<string, unknown>)[k]);
    out.push('{');
    stack.push({ container: v, items, keys, i: 0, wrote: false, flat: false });
  };

  const root = toJsonValue(value, '');
  if (skipped(root)) return false;
  enter(root);
  while (stack.length) {
    const f = stack[stack.length - 1];
    if (f.i >= f.items.length) {
      out.push(f.keys ? '}' : ']');
      stack.pop();
      continue;
    }
    if (f.flat) {
      const to = Math.min(f.items.length, f.i + FLAT_BATCH);
      out.push((f.i > 0 ? ',' : '') + JSON.stringify(f.items.slice(f.i, to)).slice(1, -1));
      f.i = to;
    } else if (f.keys) {
      const key = f.keys[f.i];
      const v = toJsonValue(f.items[f.i++], key);
      if (skipped(v)) continue;
      out.push((f.wrote ? ',' : '') + JSON.stringify(key) + ':');
      f.wrote = true;
      enter(v);
    } else {
      const v = toJsonValue(f.items[f.i], String(f.i));
      if (f.i++ > 0) out.push(',');
      if (skipped(v)) out.push('null');
      else enter(v);
    }
    if (++steps % 8 === 0 && performance.now() > deadline) {
      await nextTurn();
      deadline = performance.now() + sliceMs;
    }
  }
  return true;
}

/**
 * Serializes each regular (non-streamed) result in turns before yoga writes it. A single result
 * answered as JSON (yoga's regular processor) becomes UTF-8 bytes: yoga's processor gets an empty
 * text through the result's `stringify` hook (which it calls instead of JSON.stringify) and the
 * response's body is swapped for the bytes in onResponse, before any later plugin (compression)
 * reads it; yoga's status and headers are kept. Other processors (SSE, multipart, batches) get the
 * text through the same hook. Results with errors or HTTP extensions are left to yoga, which
 * rewrites those parts while serializing (they are small: errors end a field's value).
 */
export function useJsonInTurns(): Plugin {
  const bodies = new WeakMap<Request, Uint8Array<ArrayBuffer>>();
  return {
    async onResultProcess({ request, result, resultProcessor }) {
      const results = (Array.isArray(result) ? result : [result]) as Array<ExecutionResult & { stringify?: unknown }>;
      const asBytes = resultProcessor === processRegularResult && !Array.isArray(result);
      await Promise.all(
        results.map(async (r) => {
          if (isAsyncIterable(r) || r.errors?.length || (r.extensions as { http?: unknown } | undefined)?.http || r.stringify) return;
          if (asBytes) {
            const bytes = await jsonBytesInTurns(r);
            if (!bytes) return;
            bodies.set(request, bytes);
            Object.defineProperty(r, 'stringify', { value: () => '', configurable: true });
            return;
          }
          const text = await stringifyInTurns(r);
          Object.defineProperty(r, 'stringify', { value: () => text, configurable: true });
        }),
      );
    },
    onResponse({ request, response, setResponse, fetchAPI }) {
      const bytes = bodies.get(request);
      if (!bytes) return;
      bodies.delete(request);
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('content-length', String(bytes.byteLength));
      setResponse(new fetchAPI.Response(bytes, { status: response.status, statusText: response.statusText, headers }));
    },
  };
}
