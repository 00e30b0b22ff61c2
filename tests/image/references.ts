import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { Tensor } from '../../engine/core/tensor.ts';

/**
 * Reference outputs computed with torch, Pillow and scipy by fixtures/gen_references.py (see its
 * header); the tests compare against them instead of against our own arithmetic.
 */
interface TensorJson {
  shape: number[];
  data: number[];
}

export interface References {
  generator: string;
  interpolate: { input: TensorJson; cases: { method: string; height: number; width: number; data: number[] }[] };
  center_crop: { input: TensorJson; cases: { width: number; height: number; cropped_shape: number[]; data: number[] }[] };
  bislerp: { input: TensorJson; cases: { height: number; width: number; data: number[] }[] };
  lanczos: {
    mode: string;
    channels: number;
    input: number[];
    in_height: number;
    in_width: number;
    width: number;
    height: number;
    data: number[];
  }[];
  grow_mask: { name: string; shape: number[]; input: number[]; expand: number; tapered: boolean; data: number[] }[];
}

export const refs = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, 'fixtures', 'references.json'), 'utf8')) as References;

export function tensorOf(j: TensorJson): Tensor {
  return { shape: [...j.shape], data: Float32Array.from(j.data) };
}

export function t(shape: number[], values: number[]): Tensor {
  return { shape, data: Float32Array.from(values) };
}

/** Element-wise |a − b| ≤ tol, reporting the first index that differs. */
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6, what = 'values'): void {
  expect(a.length, `${what}: length`).toBe(b.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const diff = Math.abs(a[i] - b[i]);
    const d = Number.isNaN(diff) ? Infinity : diff;
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  expect(worst, `${what}: largest difference at index ${at} (${at >= 0 ? `${a[at]} vs ${b[at]}` : ''})`).toBeLessThanOrEqual(tol);
}
