import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { readAt, writeFileAtomic } from '../core/safe-path.ts';

const { onnx } = onnxProto;

/**
 * ORT's CPU kernels for MatMul and Gemm copy each constant B into MLAS's panel layout when a session
 * is created (pre-packing): for the SD1.5 ControlNet ~500 MB packed into fresh heap pages at every
 * load, and on the 2-core VM a fresh page costs ~12 µs to fault, so about a second of the load. ORT
 * can save those packed buffers beside a model (`save_external_prepacked_constant_initializers`) and
 * then keeps the mapped ones instead of its own. It still packs each weight at creation (it keys a
 * saved buffer by the hash of the one it packs), but into buffers it frees and reuses, so far fewer
 * fresh pages (docs/benchmarks.md, eighth session). Storing the buffers would add the MatMul weights
 * to the cache a second time. The packed buffer is only a reordering of B: K in blocks of 256 rows,
 * each block as 16-column panels, row after row, zero-padded to a multiple of 16 columns. So the cache
 * keeps only `prepacked.json`, ORT's key for each packed tensor (computed on a first build,
 * prepack-keys.ts; or read from a graph ORT saved with its buffers, kept only where that reordering of
 * the tensor gives ORT's buffer byte for byte), and expand-half.ts writes each buffer beside its tensor
 * while it expands the tensor, with ORT's `prepacked_N` entry. The bytes are ORT's own, so every
 * output is the same bits.
 *
 * ORT ignores an entry it does not recognise and packs from the tensor itself, which stays in the
 * file: a stale record costs speed, never correctness.
 */

export const PREPACKED_JSON = 'prepacked.json';
/** Rows of B per packed block (MLAS's packed-GEMM K stride on x86-64). */
export const PACK_STRIDE_K = 256;

/** ORT's `prepacked_N` entry of one tensor with one buffer. */
export interface PackedTensor {
  readonly dims: readonly [number, number];
  readonly dataType: number;
  /** The entry's key in ORT's external-data list. */
  readonly entry: string;
  /** ORT's key of the packing kernel and weight (`MatMul+<hash>`). */
  readonly key: string;
  /** The buffer's length as ORT saved it (the reordered tensor, zero-padded). */
  readonly length: number;
}

export interface PackedRecord {
  /** The saved graph this record is for (its size and modification time). */
  readonly model: { readonly size: number; readonly mtimeMs: number };
  readonly strideK: number;
  readonly tensors: Readonly<Record<string, PackedTensor>>;
}

/** `b` ([rows, cols] row-major) in MLAS's packed layout (see above), into `out` (at least packedLength values). */
export function packPanels(
  b: Float32Array | Uint32Array,
  rows: number,
  cols: number,
  strideK: number,
  out: Float32Array | Uint32Array,
): void {
  const padded = (cols + 15) & ~15;
  let d = 0;
  for (let k = 0; k < rows; k += strideK) {
    const count = Math.min(strideK, rows - k);
    for (let x = 0; x < padded; x += 16)
      for (let y = k; y < k + count; y++) for (let c = x; c < x + 16; c++) out[d++] = c < cols ? b[y * cols + c] : 0;
  }
}

/** Values in the packed form of a [rows, cols] tensor. */
export function packedLength(rows: number, cols: number): number {
  return rows * ((cols + 15) & ~15);
}

function parseEntry(value: string): { key: string; offset: number; length: number } | undefined {
  const [key, ...blobs] = value.split('|');
  if (!key || blobs.length !== 1) return undefined;
  const [offset, length, checksum] = blobs[0].split(';');
  const o = Number(offset);
  const l = Number(length);
  return checksum !== undefined && Number.isSafeInteger(o) && Number.isSafeInteger(l) && l > 0 ? { key, offset: o, length: l } : undefined;
}

/** The tensors of a graph ORT saved with its packed buffers whose one buffer is packPanels of them (checked byte for byte). */
export function packedTensorsOf(savedModel: string): Record<string, PackedTensor> {
  const saved = onnx.ModelProto.decode(readFileSync(savedModel));
  const from = dirname(savedModel);
  const tensors: Record<string, PackedTensor> = {};
  const fds = new Map<string, number>();
  // Three buffers grown to the largest tensor and reused: a fresh buffer per tensor faulted ~1.5 GB of new pages per SD1.5 UNet (~7 s on the VM).
  const bufs = [new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)];
  const scratch = (i: number, length: number): Uint8Array => {
    if (bufs[i].byteLength < length) bufs[i] = new Uint8Array(Math.max(length, bufs[i].byteLength * 2));
    return bufs[i].subarray(0, length);
  };
  const read = (location: string, offset: number, length: number, into: number): Uint8Array => {
    if (location.includes('/') || location.includes('\\')) throw new Error(`${savedModel}: external data outside its folder`);
    let fd = fds.get(location);
    if (fd === undefined) fds.set(location, (fd = openSync(join(from, location), 'r')));
    const buf = scratch(into, length);
    if (readAt(fd, buf, length, offset) < length) throw new Error(`${join(from, location)}: short read at byte ${offset}`);
    return buf;
  };
  try {
    for (const t of saved.graph?.initializer ?? []) {
      const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
      const packs = [...kv].filter(([k]) => k.startsWith('prepacked'));
      const dims = (t.dims ?? []).map(Number);
      const location = kv.get('location');
      if (packs.length !== 1 || dims.length !== 2 || t.dataType !== 1 || !location) continue;
      const blob = parseEntry(packs[0][1]);
      const [rows, cols] = dims;
      if (!blob || blob.length < packedLength(rows, cols) * 4) continue;
      if (blob.length % 4 !== 0) continue;
      const bBytes = read(location, Number(kv.get('offset') ?? 0), rows * cols * 4, 0);
      const b = new Float32Array(bBytes.buffer, 0, rows * cols);
      const ort = read(location, blob.offset, blob.length, 1);
      const mine = new Float32Array(scratch(2, blob.length).buffer, 0, blob.length >> 2);
      // The tail past the packed values (alignment) is zeros in ORT's buffer and in the file ORT maps.
      mine.fill(0, packedLength(rows, cols));
      packPanels(b, rows, cols, PACK_STRIDE_K, mine);
      if (Buffer.compare(new Uint8Array(mine.buffer, 0, blob.length), ort) !== 0) continue;
      tensors[t.name ?? ''] = { dims: [rows, cols], dataType: 1, entry: packs[0][0], key: blob.key, length: blob.length };
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  return tensors;
}

/** Writes the record of `tensors` for `<dir>/optimized.onnx` as it is now (its size and modification time). */
export function writePrepackedRecord(dir: string, tensors: Readonly<Record<string, PackedTensor>>): void {
  const st = statSync(join(dir, 'optimized.onnx'));
  const record: PackedRecord = { model: { size: st.size, mtimeMs: st.mtimeMs }, strideK: PACK_STRIDE_K, tensors };
  writeFileAtomic(join(dir, PREPACKED_JSON), JSON.stringify(record), { fsync: true });
}

/** The record for `<dir>/optimized.onnx` when there is one written for that very file, else undefined (ORT then packs at load). */
export function readPrepacked(dir: string): PackedRecord | undefined {
  const json = join(dir, PREPACKED_JSON);
  const model = join(dir, 'optimized.onnx');
  if (!existsSync(json) || !existsSync(model)) return undefined;
  let record: PackedRecord;
  try {
    record = JSON.parse(readFileSync(json, 'utf8')) as PackedRecord;
  } catch {
    return undefined;
  }
  const st = statSync(model);
  if (record?.model?.size !== st.size || record.model.mtimeMs !== st.mtimeMs || record.strideK !== PACK_STRIDE_K) return undefined;
  return typeof record.tensors === 'object' && record.tensors !== null ? record : undefined;
}
