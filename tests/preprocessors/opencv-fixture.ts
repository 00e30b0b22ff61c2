import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import type { F32Mat, F64Mat, U8Mat } from '../../engine/image/preprocess/mat.ts';

/** tests/fixtures/preprocessors/opencv.json.gz, written by scripts/fixtures/preprocessors-opencv.py. */
interface Encoded {
  shape: number[];
  dtype: 'u8' | 'f32' | 'f64';
  b64: string;
}

interface Fixture {
  opencv: string;
  images: Record<string, Encoded>;
  ops: Record<string, Encoded | number>;
  pipelines: Record<string, Encoded>;
}

let cached: Fixture | undefined;

export function opencvFixture(): Fixture {
  const url = new URL('../fixtures/preprocessors/opencv.json.gz', import.meta.url);
  cached ??= JSON.parse(gunzipSync(readFileSync(fileURLToPath(url))).toString('utf8')) as Fixture;
  return cached;
}

function dims(e: Encoded): { h: number; w: number; c: number } {
  return { h: e.shape[0], w: e.shape[1], c: e.shape[2] ?? 1 };
}

export function decodeU8(e: Encoded | number | undefined): U8Mat {
  if (e === undefined || typeof e === 'number' || e.dtype !== 'u8') throw new Error('fixture entry is not a uint8 array');
  const b = Buffer.from(e.b64, 'base64');
  return { ...dims(e), data: new Uint8Array(b.buffer, b.byteOffset, b.length).slice() };
}

export function decodeF32(e: Encoded | number | undefined): F32Mat {
  if (e === undefined || typeof e === 'number' || e.dtype !== 'f32') throw new Error('fixture entry is not a float32 array');
  const b = Buffer.from(e.b64, 'base64');
  return { ...dims(e), data: new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)) };
}

export function decodeF64(e: Encoded | number | undefined): F64Mat {
  if (e === undefined || typeof e === 'number' || e.dtype !== 'f64') throw new Error('fixture entry is not a float64 array');
  const b = Buffer.from(e.b64, 'base64');
  return { ...dims(e), data: new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)) };
}

/** Positions where two uint8 images differ, for a readable failure. */
export function mismatches(a: U8Mat, b: U8Mat): { count: number; first?: string } {
  if (a.h !== b.h || a.w !== b.w || a.c !== b.c) return { count: -1, first: `shape ${a.h}x${a.w}x${a.c} vs ${b.h}x${b.w}x${b.c}` };
  let count = 0;
  let first: string | undefined;
  for (let i = 0; i < a.data.length; i++) {
    if (a.data[i] !== b.data[i]) {
      if (count === 0) {
        const px = Math.floor(i / a.c);
        first = `y=${Math.floor(px / a.w)} x=${px % a.w} c=${i % a.c}: ${a.data[i]} vs ${b.data[i]}`;
      }
      count++;
    }
  }
  return { count, first };
}
