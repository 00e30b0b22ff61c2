/**
 * Plain row-major float32 tensors and the value shapes ComfyUI passes between nodes:
 * IMAGE = [B, H, W, C] in 0..1, MASK = [B, H, W], LATENT = { samples: [B, C, H, W], ... }.
 * Kept as data (no methods) so values are cheap to cache, hash and send across threads.
 */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** IMAGE: float32 NHWC in 0..1 (C is 3, or 4 when a node keeps alpha). */
export type ImageTensor = Tensor;
/** MASK: float32 NHW in 0..1, 1 = masked (ComfyUI: 1 - alpha). */
export type MaskTensor = Tensor;

/** LATENT as ComfyUI's dict: samples NCHW, optional noise mask, optional batch indices for seeding. */
export interface Latent {
  readonly samples: Tensor;
  /** [B or 1, 1, H, W] or [B, H, W] at pixel or latent resolution; resized by the sampler. */
  readonly noiseMask?: Tensor;
  /** Which noise of a batch each sample takes (ComfyUI's `batch_index`), for reproducible sub-batches. */
  readonly batchIndex?: readonly number[];
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: readonly number[], data?: Float32Array): Tensor {
  const n = numel(shape);
  if (data && data.length !== n) {
    throw new Error(`tensor data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
  }
  return { shape: [...shape], data: data ?? new Float32Array(n) };
}

export function zeros(shape: readonly number[]): Tensor {
  return tensor(shape);
}

export function full(shape: readonly number[], value: number): Tensor {
  const t = tensor(shape);
  t.data.fill(value);
  return t;
}

export function cloneTensor(t: Tensor): Tensor {
  return { shape: [...t.shape], data: new Float32Array(t.data) };
}

export function shapeEquals(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function describeShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Throws a readable error when `t` is not of rank `rank` (naming what the value was meant to be). */
export function expectRank(t: Tensor, rank: number, what: string): void {
  if (t.shape.length !== rank) {
    throw new Error(`${what} must have ${rank} dimensions, got shape ${describeShape(t.shape)}`);
  }
}

export function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && (v as Tensor).data instanceof Float32Array && Array.isArray((v as Tensor).shape);
}

export function isLatent(v: unknown): v is Latent {
  return typeof v === 'object' && v !== null && isTensor((v as Latent).samples);
}

/** Slice along the first axis: items [start, end). Shares no memory with the source. */
export function sliceBatch(t: Tensor, start: number, end: number): Tensor {
  const per = numel(t.shape.slice(1));
  const s = Math.max(0, Math.min(start, t.shape[0]));
  const e = Math.max(s, Math.min(end, t.shape[0]));
  return { shape: [e - s, ...t.shape.slice(1)], data: t.data.slice(s * per, e * per) };
}

/** Concatenate along the first axis; the other dimensions must agree. */
export function concatBatch(parts: readonly Tensor[]): Tensor {
  if (parts.length === 0) throw new Error('concatBatch needs at least one tensor');
  const rest = parts[0].shape.slice(1);
  for (const p of parts) {
    if (!shapeEquals(p.shape.slice(1), rest)) {
      throw new Error(`cannot batch tensors of shapes ${describeShape(parts[0].shape)} and ${describeShape(p.shape)}`);
    }
  }
  const total = parts.reduce((s, p) => s + p.shape[0], 0);
  const out = new Float32Array(total * numel(rest));
  let off = 0;
  for (const p of parts) {
    out.set(p.data, off);
    off += p.data.length;
  }
  return { shape: [total, ...rest], data: out };
}
