/**
 * PNG text chunks (tEXt, zTXt, iTXt and ComfyUI's private `comf`), where ComfyUI and Weft keep the
 * `prompt` and `workflow` of an image. Pure: works on Uint8Array so the browser editor uses it too.
 */

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/**
 * Most text (after inflating) read from one PNG, over all its chunks: a per-chunk cap alone let
 * three zTXt chunks of a few KB each inflate to gigabytes. Workflows are rarely above a megabyte;
 * 16 MiB leaves room for large ones.
 */
export const MAX_PNG_TEXT_TOTAL = 16 * 1024 * 1024;

let crcTable: Uint32Array | undefined;
function crc32(bytes: Uint8Array, start: number, end: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export class PngFormatError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at byte offset ${offset})`);
    this.name = 'PngFormatError';
  }
}

interface Chunk {
  type: string;
  offset: number;
  dataStart: number;
  dataEnd: number;
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

function chunks(png: Uint8Array): Chunk[] {
  if (png.length < 8 || SIGNATURE.some((v, i) => png[i] !== v)) throw new PngFormatError('not a PNG file: bad signature', 0);
  const out: Chunk[] = [];
  let o = 8;
  while (o < png.length) {
    if (o + 12 > png.length) throw new PngFormatError('truncated chunk header', o);
    const len = readU32(png, o);
    const type = String.fromCharCode(png[o + 4], png[o + 5], png[o + 6], png[o + 7]);
    const dataStart = o + 8;
    const dataEnd = dataStart + len;
    if (dataEnd + 4 > png.length) throw new PngFormatError(`chunk ${type} claims ${len} bytes, past the end of the file`, o);
    const crc = readU32(png, dataEnd);
    if (crc32(png, o + 4, dataEnd) !== crc) throw new PngFormatError(`chunk ${type} has a bad CRC`, o);
    out.push({ type, offset: o, dataStart, dataEnd });
    o = dataEnd + 4;
    if (type === 'IEND') break;
  }
  return out;
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

async function inflate(data: Uint8Array, offset: number, limit: number): Promise<Uint8Array> {
  const ds = new DecompressionStream('deflate');
  const reader = new Blob([data as BlobPart]).stream().pipeThrough(ds).getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > limit) {
      await reader.cancel();
      throw new PngFormatError(`text chunks inflate beyond ${limit} bytes in total`, offset);
    }
    parts.push(value);
  }
  const buf = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  return buf;
}

function inflateSync(data: Uint8Array, offset: number, limit: number): Uint8Array {
  // Node's zlib when present (sync); the browser path uses readPngTextChunksAsync.
  const g = globalThis as { process?: { getBuiltinModule?: (m: string) => unknown } };
  const zlib = g.process?.getBuiltinModule?.('node:zlib') as
    { inflateSync(b: Uint8Array, o?: { maxOutputLength?: number }): Uint8Array } | undefined;
  if (!zlib) throw new PngFormatError('compressed text chunk needs readPngTextChunksAsync in this environment', offset);
  try {
    return zlib.inflateSync(data, { maxOutputLength: Math.max(1, limit) });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE')
      throw new PngFormatError(`text chunks inflate beyond the limit of ${MAX_PNG_TEXT_TOTAL} bytes in total`, offset);
    throw new PngFormatError(`compressed text chunk does not inflate: ${(e as Error).message}`, offset);
  }
}

type Inflater = (data: Uint8Array, offset: number, limit: number) => Uint8Array | Promise<Uint8Array>;

const TEXT_TYPES = new Set(['tEXt', 'zTXt', 'iTXt', 'comf']);

/** `budget.left`: bytes of text still allowed; each chunk's stored or inflated size is taken from it. */
function parseText(
  png: Uint8Array,
  c: Chunk,
  inflater: Inflater,
  budget: { left: number },
): [string, string | Promise<string>] | undefined {
  if (!TEXT_TYPES.has(c.type)) return undefined;
  const d = png.subarray(c.dataStart, c.dataEnd);
  const nul = d.indexOf(0);
  if (nul < 0) throw new PngFormatError(`${c.type} chunk without a keyword terminator`, c.offset);
  const key = latin1(d.subarray(0, nul));
  const utf8 = (b: Uint8Array): string => new TextDecoder('utf-8').decode(b);
  const take = (b: Uint8Array): Uint8Array => {
    budget.left -= b.length;
    if (budget.left < 0) throw new PngFormatError(`text chunks hold more than ${MAX_PNG_TEXT_TOTAL} bytes in total`, c.offset);
    return b;
  };
  const inflated = (b: Uint8Array): Uint8Array | Promise<Uint8Array> => {
    const r = inflater(b, c.offset, budget.left);
    return r instanceof Promise ? r.then(take) : take(r);
  };
  if (c.type !== 'zTXt' && c.type !== 'iTXt') take(d.subarray(nul + 1));
  if (c.type === 'tEXt') return [key, latin1(d.subarray(nul + 1))];
  if (c.type === 'comf') return [key, utf8(d.subarray(nul + 1))];
  if (c.type === 'zTXt') {
    const r = inflated(d.subarray(nul + 2));
    return [key, r instanceof Promise ? r.then(latin1) : latin1(r)];
  }
  if (c.type === 'iTXt') {
    const compressed = d[nul + 1] === 1;
    let p = nul + 3;
    const langEnd = d.indexOf(0, p);
    if (langEnd < 0) throw new PngFormatError('iTXt chunk without a language tag terminator', c.offset);
    const transEnd = d.indexOf(0, langEnd + 1);
    if (transEnd < 0) throw new PngFormatError('iTXt chunk without a translated keyword terminator', c.offset);
    p = transEnd + 1;
    const body = d.subarray(p);
    if (!compressed) return [key, utf8(take(body))];
    const r = inflated(body);
    return [key, r instanceof Promise ? r.then(utf8) : utf8(r)];
  }
  return undefined;
}

/** Every text chunk of a PNG as keyword → text (later chunks of the same keyword win). */
export function readPngTextChunks(png: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const budget = { left: MAX_PNG_TEXT_TOTAL };
  for (const c of chunks(png)) {
    const kv = parseText(png, c, inflateSync, budget);
    if (kv) out[kv[0]] = kv[1] as string;
  }
  return out;
}

/** The same, inflating compressed chunks with the web platform's DecompressionStream (browser). */
export async function readPngTextChunksAsync(png: Uint8Array): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const budget = { left: MAX_PNG_TEXT_TOTAL };
  for (const c of chunks(png)) {
    const kv = parseText(png, c, inflate, budget);
    if (kv) out[kv[0]] = await kv[1];
  }
  return out;
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

function makeChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  dv.setUint32(8 + data.length, crc32(out, 4, 8 + data.length));
  return out;
}

function encodeLatin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/**
 * Insert text chunks right before the first IDAT, in the order given: tEXt when the text is Latin-1
 * (what PIL and so ComfyUI write), else an uncompressed UTF-8 iTXt.
 */
export function addPngTextChunks(png: Uint8Array, entries: readonly (readonly [string, string])[]): Buffer {
  const list = chunks(png);
  const idat = list.find((c) => c.type === 'IDAT');
  if (!idat) throw new PngFormatError('PNG has no IDAT chunk', png.length);
  const parts: Uint8Array[] = [png.subarray(0, idat.offset)];
  for (const [key, text] of entries) {
    if (!key || key.length > 79 || !isLatin1(key) || key.includes('\0')) throw new Error(`invalid PNG text keyword ${JSON.stringify(key)}`);
    const k = encodeLatin1(key);
    if (isLatin1(text)) {
      const t = encodeLatin1(text);
      const data = new Uint8Array(k.length + 1 + t.length);
      data.set(k, 0);
      data.set(t, k.length + 1);
      parts.push(makeChunk('tEXt', data));
    } else {
      const t = new TextEncoder().encode(text);
      const data = new Uint8Array(k.length + 5 + t.length);
      data.set(k, 0);
      // keyword NUL, compression flag 0, method 0, empty language NUL, empty translated keyword NUL
      data.set(t, k.length + 5);
      parts.push(makeChunk('iTXt', data));
    }
  }
  parts.push(png.subarray(idat.offset));
  return Buffer.concat(parts);
}
