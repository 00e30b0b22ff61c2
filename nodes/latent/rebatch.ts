import { describeShape, type ImageTensor, type Latent, type Tensor } from '../../engine/core/tensor.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * ComfyUI's RebatchLatents and RebatchImages (comfy_extras/nodes_rebatch.py): a list of batches
 * re-cut into batches of `batch_size` (list in, list out).
 */

const slice = (t: Tensor, from: number, to: number): Tensor => {
  const per = t.shape[0] === 0 ? 0 : t.data.length / t.shape[0];
  const a = Math.min(from, t.shape[0]);
  const b = Math.min(to, t.shape[0]);
  return { shape: [Math.max(0, b - a), ...t.shape.slice(1)], data: t.data.slice(a * per, b * per) };
};

const cat = (a: Tensor, b: Tensor, what: string): Tensor => {
  if (a.shape.length !== b.shape.length || a.shape.slice(1).some((d, i) => d !== b.shape[i + 1]))
    throw new Error(`RebatchLatents: cannot join ${what} of shapes ${describeShape(a.shape)} and ${describeShape(b.shape)}`);
  const data = new Float32Array(a.data.length + b.data.length);
  data.set(a.data);
  data.set(b.data, a.data.length);
  return { shape: [a.shape[0] + b.shape[0], ...a.shape.slice(1)], data };
};

interface Pending {
  samples: Tensor;
  mask: Tensor;
  index: number[];
}

/** ComfyUI's get_batch: the samples, a [B, 1, h, w] mask (ones at 8× the latent size when absent, repeated to B), the batch indices. */
function getBatch(l: Latent, offset: number): Pending {
  const s = l.samples;
  if (s.shape.length !== 4) throw new Error(`RebatchLatents: samples must be [B, C, H, W], got ${describeShape(s.shape)}`);
  const [B, , H, W] = s.shape;
  let mask: Tensor;
  if (l.noiseMask) {
    const m = l.noiseMask;
    const h = m.shape[m.shape.length - 2];
    const w = m.shape[m.shape.length - 1];
    mask = { shape: [m.data.length / (h * w), 1, h, w], data: m.data };
    // ComfyUI computes a resized mask here and drops it, so the mask keeps its own size.
    if (mask.shape[0] < B) {
      const per = h * w;
      const data = new Float32Array(B * per);
      for (let i = 0; i < B; i++) data.set(mask.data.subarray((i % mask.shape[0]) * per, ((i % mask.shape[0]) + 1) * per), i * per);
      mask = { shape: [B, 1, h, w], data };
    }
  } else {
    mask = { shape: [B, 1, H * 8, W * 8], data: new Float32Array(B * H * 8 * W * 8).fill(1) };
  }
  const index = l.batchIndex ? [...l.batchIndex] : Array.from({ length: B }, (_, i) => i + offset);
  return { samples: s, mask, index };
}

function emit(p: Pending, from: number, to: number): Latent {
  const mask = slice(p.mask, from, to);
  let sum = 0;
  for (const v of mask.data) sum += v;
  // A mask that is all ones is dropped (ComfyUI: mean() == 1.0).
  const keep = mask.data.length === 0 || sum / mask.data.length !== 1;
  return { samples: slice(p.samples, from, to), ...(keep ? { noiseMask: mask } : {}), batchIndex: p.index.slice(from, to) };
}

export function rebatchLatents(latents: readonly Latent[], batchSize: number): Latent[] {
  const out: Latent[] = [];
  let current: Pending | undefined;
  let processed = 0;
  for (const l of latents) {
    const next = getBatch(l, processed);
    processed += next.index.length;
    if (!current) current = next;
    else if (next.samples.shape[2] !== current.samples.shape[2] || next.samples.shape[3] !== current.samples.shape[3]) {
      // A new size closes the batch being built (only its first batch_size items, as ComfyUI).
      out.push(emit(current, 0, batchSize));
      current = next;
    } else {
      current = {
        samples: cat(current.samples, next.samples, 'samples'),
        mask: cat(current.mask, next.mask, 'noise masks'),
        index: [...current.index, ...next.index],
      };
    }
    const n = current.samples.shape[0];
    if (n > batchSize) {
      const num = Math.floor(n / batchSize);
      for (let i = 0; i < num; i++) out.push(emit(current, i * batchSize, (i + 1) * batchSize));
      // ComfyUI's remainder is None when n divides evenly, which makes its next step fail; here nothing is left over.
      const rest = n - num * batchSize;
      current =
        rest > 0
          ? {
              samples: slice(current.samples, num * batchSize, n),
              mask: slice(current.mask, num * batchSize, n),
              index: current.index.slice(num * batchSize),
            }
          : undefined;
    }
  }
  if (current) out.push(emit(current, 0, batchSize));
  return out;
}

export const RebatchLatents = defineNode({
  name: 'RebatchLatents',
  displayName: 'Rebatch Latents',
  category: 'latent/batch',
  inputIsList: true,
  inputs: { required: { latents: { type: 'LATENT' }, batch_size: { type: 'INT', default: 1, min: 1, max: 4096 } } },
  outputs: [{ type: 'LATENT', name: 'LATENT', isList: true }],
  run({ latents, batch_size }) {
    return [rebatchLatents(latents, batch_size[0])];
  },
});

export const RebatchImages = defineNode({
  name: 'RebatchImages',
  displayName: 'Rebatch Images',
  category: 'image/batch',
  inputIsList: true,
  inputs: { required: { images: { type: 'IMAGE' }, batch_size: { type: 'INT', default: 1, min: 1, max: 4096 } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', isList: true }],
  run({ images, batch_size }) {
    const size = batch_size[0];
    const all: ImageTensor[] = [];
    for (const img of images) for (let i = 0; i < img.shape[0]; i++) all.push(slice(img, i, i + 1));
    const out: ImageTensor[] = [];
    for (let i = 0; i < all.length; i += size) {
      const group = all.slice(i, i + size);
      let t = group[0];
      for (const g of group.slice(1)) {
        if (g.shape.slice(1).some((d, k) => d !== t.shape[k + 1]))
          throw new Error(`RebatchImages: cannot batch images of shapes ${describeShape(t.shape)} and ${describeShape(g.shape)}`);
        const data = new Float32Array(t.data.length + g.data.length);
        data.set(t.data);
        data.set(g.data, t.data.length);
        t = { shape: [t.shape[0] + 1, ...t.shape.slice(1)], data };
      }
      out.push(t);
    }
    return [out];
  },
});

export const nodes = [RebatchLatents, RebatchImages];
