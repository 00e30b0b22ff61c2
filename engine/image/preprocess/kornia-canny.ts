import { tensor, type ImageTensor } from '../../core/tensor.ts';

/**
 * `kornia.filters.canny(image, low, high)` with its defaults (5×5 Gaussian, σ = 1, reflect border;
 * unnormalised Sobel, replicate border; eps 1e-6) as ComfyUI's core Canny node calls it, in float32:
 * BT.601 grey for 3 channels, magnitude √(gx² + gy² + eps), the angle rounded to the nearest 45° (half to
 * even) to pick the two neighbours of the non-maximum suppression (strictly greater than both, zero
 * outside the image), weak/strong thresholds (strictly greater), and hysteresis to a fixed point over
 * the 8 neighbours. Returns the edges as an RGB IMAGE of 0/1.
 */

const f = Math.fround;
/** kornia's NMS directions (dy, dx) by index, in the order of its NMS kernels. */
const DIRS: readonly (readonly [number, number])[] = [
  [0, 1],
  [1, 1],
  [1, 0],
  [1, -1],
  [0, -1],
  [-1, -1],
  [-1, 0],
  [-1, 1],
];

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function gaussian5(): Float32Array {
  const g = new Float32Array(5);
  let sum = 0;
  for (let i = 0; i < 5; i++) {
    const x = i - 2;
    g[i] = f(Math.exp(f(-f(x * x) / 2)));
  }
  for (let i = 0; i < 5; i++) sum = f(sum + g[i]);
  for (let i = 0; i < 5; i++) g[i] = f(g[i] / sum);
  return g;
}

/** torch's 'reflect' padding index (edge not repeated). */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

function cannyPlane(src: Float32Array, h: number, w: number, low: number, high: number): Uint8Array {
  const g = gaussian5();
  const tmp = new Float32Array(h * w);
  const blur = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = 0; k < 5; k++) s = f(s + f(g[k] * src[y * w + reflect(x + k - 2, w)]));
      tmp[y * w + x] = s;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let k = 0; k < 5; k++) s = f(s + f(g[k] * tmp[reflect(y + k - 2, h) * w + x]));
      blur[y * w + x] = s;
    }
  }
  const at = (y: number, x: number): number => blur[(y < 0 ? 0 : y >= h ? h - 1 : y) * w + (x < 0 ? 0 : x >= w ? w - 1 : x)];
  const mag = new Float32Array(h * w);
  const dir = new Uint8Array(h * w);
  const toDeg = f(180 / f(Math.PI));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const gx = f(
        f(f(at(y - 1, x + 1) - at(y - 1, x - 1)) + f(2 * f(at(y, x + 1) - at(y, x - 1)))) + f(at(y + 1, x + 1) - at(y + 1, x - 1)),
      );
      const gy = f(
        f(f(at(y + 1, x - 1) - at(y - 1, x - 1)) + f(2 * f(at(y + 1, x) - at(y - 1, x)))) + f(at(y + 1, x + 1) - at(y - 1, x + 1)),
      );
      mag[y * w + x] = f(Math.sqrt(f(f(f(gx * gx) + f(gy * gy)) + f(1e-6))));
      const deg = f(f(Math.atan2(gy, gx)) * toDeg);
      const q = roundHalfEven(f(deg / 45));
      dir[y * w + x] = ((q % 8) + 8) % 8;
    }
  }
  const m = (y: number, x: number): number => (y < 0 || y >= h || x < 0 || x >= w ? 0 : mag[y * w + x]);
  // 0 none, 1 weak, 2 strong
  const edges = new Uint8Array(h * w);
  const stack: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const [py, pxx] = DIRS[dir[i]];
      const [ny, nx] = DIRS[(dir[i] + 4) % 8];
      const v = mag[i];
      const isMax = Math.min(f(v - m(y + py, x + pxx)), f(v - m(y + ny, x + nx))) > 0;
      const s = isMax ? v : 0;
      if (s > high) {
        edges[i] = 2;
        stack.push(i);
      } else if (s > low) edges[i] = 1;
    }
  }
  while (stack.length > 0) {
    const i = stack.pop() as number;
    const y = Math.floor(i / w);
    const x = i - y * w;
    for (const [dy, dx] of DIRS) {
      const yy = y + dy;
      const xx = x + dx;
      if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
      const j = yy * w + xx;
      if (edges[j] === 1) {
        edges[j] = 2;
        stack.push(j);
      }
    }
  }
  return edges;
}

export function korniaCanny(image: ImageTensor, lowThreshold: number, highThreshold: number): ImageTensor {
  const [b, h, w, c] = image.shape;
  if (c !== 1 && c !== 3) throw new Error(`Canny takes images with 1 or 3 channels, got ${c}`);
  if (lowThreshold > highThreshold) {
    throw new Error(`Canny: low_threshold ${lowThreshold} is greater than high_threshold ${highThreshold} (kornia refuses this)`);
  }
  const low = f(lowThreshold);
  const high = f(highThreshold);
  const out = tensor([b, h, w, 3]);
  const plane = new Float32Array(h * w);
  const wr = f(0.299);
  const wg = f(0.587);
  const wb = f(0.114);
  for (let n = 0; n < b; n++) {
    const base = n * h * w * c;
    for (let i = 0; i < h * w; i++) {
      const p = base + i * c;
      plane[i] = c === 1 ? image.data[p] : f(f(f(wr * image.data[p]) + f(wg * image.data[p + 1])) + f(wb * image.data[p + 2]));
    }
    const e = cannyPlane(plane, h, w, low, high);
    const o = n * h * w * 3;
    for (let i = 0; i < h * w; i++) {
      const v = e[i] === 2 ? 1 : 0;
      out.data[o + 3 * i] = out.data[o + 3 * i + 1] = out.data[o + 3 * i + 2] = v;
    }
  }
  return out;
}
