import * as fs from 'node:fs';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { runEvalWorker } from './eval-worker.ts';
import { murmur3x86_128 } from './murmur3.ts';
import { PACK_STRIDE_K, packedLength, packPanels, type PackedTensor } from './prepacked.ts';

const { onnx } = onnxProto;

/**
 * ORT's keys for the packed MatMul/Gemm weights of a graph, computed instead of having ORT pack and
 * save every buffer (prepacked.ts says what the keys are for). ORT keys a kernel's packed buffer by
 * the kernel's op type and `PrePackedWeights::GetHash`: words h1 and h2 of MurmurHash3 x86_128 of
 * the buffer's bytes with seed 0, h1's low three bits cleared; the buffer is packPanels of B. With
 * ORT packing and saving, the optimising child of a first build took 12.8 s for the SD1.5 UNet and
 * 56.2 s for SDXL's; without, 5.4 s and 25.5 s, and the hashing runs in a worker meanwhile, over
 * the weights the child reads (the build's, by name: the optimised graph keeps a weight's name
 * while it keeps its values). A key that came out wrong would only make ORT pack that tensor at
 * load, as without a record.
 */

/** A constant float B [rows, cols] that ORT's `op` kernel packs as packPanels does, and where its bytes are. */
export interface PackCandidate {
  readonly name: string;
  readonly op: string;
  readonly file: string;
  readonly offset: number;
  readonly rows: number;
  readonly cols: number;
}

/** ORT's kernels that pack a constant B this way, with the attributes under which they do. */
const PACKING_OPS: Readonly<Record<string, (attrs: ReadonlyMap<string, number>) => boolean>> = {
  MatMul: () => true,
  Gemm: (a) => (a.get('transB') ?? 0) === 0,
  'com.microsoft.FusedMatMul': (a) => (a.get('transB') ?? 0) === 0 && (a.get('transBatchB') ?? 0) === 0,
};

/**
 * The weights of `model` (external float32 data beside it) that ORT packs. A weight also used where
 * ORT would not pack it this way, or by two kinds of kernel, is left out (the record holds one key per weight).
 */
export function packCandidates(model: string): PackCandidate[] {
  const graph = onnx.ModelProto.decode(readFileSync(model)).graph;
  const inits = new Map((graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  const opOf = new Map<string, string | null>();
  for (const n of graph?.node ?? []) {
    const b = n.input?.[1];
    if (!b || !inits.has(b)) continue;
    const qualified = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : (n.opType ?? '');
    const attrs = new Map((n.attribute ?? []).map((a) => [a.name ?? '', Number(a.i ?? 0)]));
    const op = PACKING_OPS[qualified]?.(attrs) ? (n.opType ?? '') : null;
    opOf.set(b, opOf.has(b) && opOf.get(b) !== op ? null : op);
  }
  const out: PackCandidate[] = [];
  for (const [name, op] of opOf) {
    const t = inits.get(name);
    const dims = (t?.dims ?? []).map(Number);
    const kv = new Map((t?.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = kv.get('location');
    if (!op || !t || t.dataType !== 1 || dims.length !== 2 || t.dataLocation !== 1 || !location) continue;
    if (location.includes('/') || location.includes('\\')) throw new Error(`${model}: external data outside its folder (${location})`);
    if ([...kv.keys()].some((k) => k.startsWith('prepacked'))) continue;
    out.push({ name, op, file: join(dirname(model), location), offset: Number(kv.get('offset') ?? 0), rows: dims[0], cols: dims[1] });
  }
  return out;
}

/**
 * ORT's hash of each candidate's packed form, in order (decimal strings). Self-contained on purpose
 * (no imports, no nested functions; packing, its length and hashing come as parameters): a worker thread runs
 * this very function from its source text.
 */
function hashCandidates(
  io: typeof fs,
  candidates: readonly PackCandidate[],
  pack: typeof packPanels,
  length: typeof packedLength,
  hash: typeof murmur3x86_128,
  strideK: number,
): string[] {
  const out: string[] = [];
  // Two buffers grown to the largest weight and reused: fresh pages are what costs on the VM (expand-half.ts).
  let raw = new Uint8Array(0);
  let packed = new Float32Array(0);
  const fds = new Map<string, number>();
  try {
    for (const c of candidates) {
      let fd = fds.get(c.file);
      if (fd === undefined) fds.set(c.file, (fd = io.openSync(c.file, 'r')));
      const bytes = c.rows * c.cols * 4;
      if (raw.byteLength < bytes) raw = new Uint8Array(Math.max(bytes, raw.byteLength * 2));
      for (let got = 0; got < bytes;) {
        const r = io.readSync(fd, raw, got, bytes - got, c.offset + got);
        if (r <= 0) throw new Error(`${c.file}: short read at byte ${c.offset + got} (weight ${c.name})`);
        got += r;
      }
      const values = length(c.rows, c.cols);
      if (packed.length < values) packed = new Float32Array(Math.max(values, packed.length * 2));
      pack(new Float32Array(raw.buffer, 0, c.rows * c.cols), c.rows, c.cols, strideK, packed);
      const [h1, h2] = hash(new Uint8Array(packed.buffer, 0, values * 4), 0);
      out.push((BigInt((h1 & 0xfffffff8) >>> 0) | (BigInt(h2) << 32n)).toString());
    }
  } finally {
    for (const fd of fds.values()) io.closeSync(fd);
  }
  return out;
}

/** A weight's packed hash, for the record: the dims it was hashed with are checked against the graph it is recorded for. */
export interface PackHash {
  readonly hash: string;
  readonly rows: number;
  readonly cols: number;
}

const WORKER_SOURCE = (fns: readonly string[]): string => `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
${fns.join('\n')}
try {
  parentPort.postMessage({ ok: true, value: hashCandidates(fs, workerData.candidates, packPanels, packedLength, murmur3x86_128, workerData.strideK) });
} catch (e) {
  parentPort.postMessage({ ok: false, message: e instanceof Error ? e.message : String(e) });
}
`;

/** ORT's hashes of `candidates`, in a worker thread (the optimising child runs meanwhile on the other core). */
export async function hashPackedInWorker(candidates: readonly PackCandidate[]): Promise<Map<string, PackHash>> {
  const source = WORKER_SOURCE([hashCandidates.toString(), packPanels.toString(), packedLength.toString(), murmur3x86_128.toString()]);
  const hashes = await runEvalWorker<string[]>(source, { candidates, strideK: PACK_STRIDE_K }, 'the hashing worker');
  return new Map(candidates.map((c, i) => [c.name, { hash: hashes[i], rows: c.rows, cols: c.cols }]));
}

/**
 * The record of `saved` (a graph saved without ORT's packed buffers): each weight ORT packs there
 * that `hashes` has, with the same dims, keyed by the op type of the kernel that packs it in `saved`.
 */
export function recordOf(saved: string, hashes: ReadonlyMap<string, PackHash>): Record<string, PackedTensor> {
  const tensors: Record<string, PackedTensor> = {};
  for (const c of packCandidates(saved)) {
    const h = hashes.get(c.name);
    if (!h || h.rows !== c.rows || h.cols !== c.cols) continue;
    tensors[c.name] = {
      dims: [c.rows, c.cols],
      dataType: 1,
      entry: 'prepacked_0',
      key: `${c.op}+${h.hash}`,
      length: packedLength(c.rows, c.cols) * 4,
    };
  }
  return tensors;
}
