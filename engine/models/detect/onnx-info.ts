import fs from 'node:fs';
import { readAt } from '../../core/safe-path.ts';

/**
 * What a detector needs to know of an `.onnx` file before running it: the metadata_props that
 * ultralytics' exporter writes (names, stride, imgsz, task) and the graph's input and output names
 * and shapes. Read by walking the protobuf's field headers with positional reads: initializers and
 * nodes are skipped by their lengths, so a 200 MB model costs a few kilobytes of reading, and every
 * length is checked against the bytes that remain before anything is allocated.
 */

export interface OnnxValueInfo {
  readonly name: string;
  /** ONNX TensorProto.DataType (1 float32, 10 float16), when declared. */
  readonly elemType?: number;
  /** Fixed sizes as numbers, symbolic ones (dynamic axes) as their names, unknown as undefined. */
  readonly dims: readonly (number | string | undefined)[];
}

export interface OnnxInfo {
  readonly metadata: ReadonlyMap<string, string>;
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
}

/** A field of a small message (metadata entry, value info) larger than this is not one. */
const MAX_SMALL = 1 << 20;
const CHUNK = 1 << 16;

class NotOnnx extends Error {}

/** Buffered forward reader over a file region. */
class Cursor {
  private buf = new Uint8Array(CHUNK);
  private bufStart = 0;
  private bufLen = 0;

  constructor(
    private readonly fd: number,
    public pos: number,
    readonly end: number,
  ) {}

  private byte(): number {
    if (this.pos >= this.end) throw new NotOnnx('truncated field header');
    if (this.pos < this.bufStart || this.pos >= this.bufStart + this.bufLen) {
      this.bufStart = this.pos;
      this.bufLen = readAt(this.fd, this.buf, Math.min(CHUNK, this.end - this.pos), this.pos);
      if (this.bufLen === 0) throw new NotOnnx('truncated file');
    }
    return this.buf[this.pos++ - this.bufStart];
  }

  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new NotOnnx('malformed varint');
  }

  bytes(len: number): Uint8Array {
    if (len > MAX_SMALL) throw new NotOnnx(`a ${len}-byte field where a small one belongs`);
    const out = new Uint8Array(len);
    if (readAt(this.fd, out, len, this.pos) !== len) throw new NotOnnx('truncated field');
    this.pos += len;
    return out;
  }
}

interface Field {
  no: number;
  wire: number;
  /** varint value, or the length of a length-delimited field */
  value: number;
  start: number;
}

/** Iterates the fields of a message in [pos, end); length-delimited values are left for the caller at `start`. */
function* fields(c: Cursor): Generator<Field> {
  while (c.pos < c.end) {
    const tag = c.varint();
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    if (no === 0) throw new NotOnnx('field number 0');
    let value = 0;
    if (wire === 0) value = c.varint();
    else if (wire === 1) c.pos += 8;
    else if (wire === 5) c.pos += 4;
    else if (wire === 2) value = c.varint();
    else throw new NotOnnx(`wire type ${wire}`);
    const start = c.pos;
    if (wire === 2) {
      if (start + value > c.end) throw new NotOnnx(`field ${no} runs past its message (${value} bytes at ${start})`);
      c.pos = start + value;
    }
    if (c.pos > c.end) throw new NotOnnx('field runs past the end');
    yield { no, wire, value, start };
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** Fields of an in-memory message. */
function* memFields(b: Uint8Array): Generator<{ no: number; wire: number; value: number; data: Uint8Array }> {
  let p = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= b.length) throw new NotOnnx('truncated varint');
      const x = b[p++];
      v += (x & 0x7f) * mul;
      if ((x & 0x80) === 0) return v;
      mul *= 128;
    }
    throw new NotOnnx('malformed varint');
  };
  while (p < b.length) {
    const tag = varint();
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      yield { no, wire, value: varint(), data: b.subarray(0, 0) };
    } else if (wire === 2) {
      const len = varint();
      if (p + len > b.length) throw new NotOnnx('truncated field');
      yield { no, wire, value: len, data: b.subarray(p, p + len) };
      p += len;
    } else if (wire === 1 || wire === 5) {
      p += wire === 1 ? 8 : 4;
    } else throw new NotOnnx(`wire type ${wire}`);
  }
}

function valueInfo(b: Uint8Array): OnnxValueInfo {
  let name = '';
  let elemType: number | undefined;
  const dims: (number | string | undefined)[] = [];
  for (const f of memFields(b)) {
    if (f.no === 1 && f.wire === 2) name = utf8.decode(f.data);
    if (f.no !== 2 || f.wire !== 2) continue;
    for (const t of memFields(f.data)) {
      if (t.no !== 1 || t.wire !== 2) continue; // tensor_type
      for (const e of memFields(t.data)) if (e.no === 1 && e.wire === 0) elemType = e.value;
      for (const s of memFields(t.data)) {
        if (s.no !== 2 || s.wire !== 2) continue; // shape
        for (const d of memFields(s.data)) {
          if (d.no !== 1 || d.wire !== 2) continue;
          let dim: number | string | undefined;
          for (const x of memFields(d.data)) {
            if (x.no === 1 && x.wire === 0) dim = x.value;
            if (x.no === 2 && x.wire === 2) dim = utf8.decode(x.data);
          }
          dims.push(dim);
        }
      }
    }
  }
  return elemType === undefined ? { name, dims } : { name, elemType, dims };
}

/**
 * Reads an `.onnx` file's metadata and graph inputs/outputs. A file that is not an ONNX model
 * (a PyTorch pickle, a safetensors file, text) is refused with the file's name.
 */
export function readOnnxInfo(file: string): OnnxInfo {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const metadata = new Map<string, string>();
    const inputs: OnnxValueInfo[] = [];
    const outputs: OnnxValueInfo[] = [];
    let graph = false;
    let irVersion = false;
    const top = new Cursor(fd, 0, size);
    for (const f of fields(top)) {
      if (f.no === 1 && f.wire === 0) irVersion = true;
      else if (f.no === 14 && f.wire === 2) {
        const entry = new Cursor(fd, f.start, f.start + f.value);
        let key = '';
        let value = '';
        for (const e of memFields(entry.bytes(f.value))) {
          if (e.no === 1 && e.wire === 2) key = utf8.decode(e.data);
          if (e.no === 2 && e.wire === 2) value = utf8.decode(e.data);
        }
        metadata.set(key, value);
      } else if (f.no === 7 && f.wire === 2) {
        graph = true;
        const g = new Cursor(fd, f.start, f.start + f.value);
        for (const gf of fields(g)) {
          if ((gf.no === 11 || gf.no === 12) && gf.wire === 2) {
            const vi = valueInfo(new Cursor(fd, gf.start, gf.start + gf.value).bytes(gf.value));
            (gf.no === 11 ? inputs : outputs).push(vi);
          }
        }
      }
    }
    if (!graph || !irVersion) throw new NotOnnx(graph ? 'no ir_version' : 'no graph');
    return { metadata, inputs, outputs };
  } catch (e) {
    if (e instanceof NotOnnx) throw new Error(`${file} is not an ONNX model (${e.message})`, { cause: e });
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}
