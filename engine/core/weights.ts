import type { Dtype } from './dtype.ts';

/**
 * Named float tensors a graph builder binds from (a safetensors checkpoint, a patched view of one,
 * or random weights in tests). Names are the checkpoint's own (original LDM keys).
 */
export interface WeightSource {
  has(name: string): boolean;
  names(): string[];
  shape(name: string): readonly number[];
  /** The tensor's values as float32 (converted from f16/bf16 when stored so); callers must not mutate. */
  get(name: string): Float32Array;
  /** The stored bytes (F32 or F16 only), where the source has them, for native conversion (LoRA patching). */
  raw?(name: string): { dtype: 'F32' | 'F16'; bytes: Uint8Array } | undefined;
  /** Where the tensor's bytes lie in a file, for graphs that point at them instead of copying them. */
  locate?(name: string): StoredTensor | undefined;
}

/** A tensor's bytes as stored in a file: `length` bytes of `dtype` at absolute byte `offset`. */
export interface StoredTensor {
  readonly file: string;
  /** Names the file's content (its SHA-256), so a link or copy of it can be recognised. */
  readonly fileKey: string;
  readonly offset: number;
  readonly length: number;
  readonly dtype: Dtype;
}

/** A WeightSource over an in-memory map (tests, generated models, patched views). */
export class MapWeightSource implements WeightSource {
  constructor(private readonly map: Map<string, { shape: readonly number[]; data: Float32Array }>) {}
  has(name: string): boolean {
    return this.map.has(name);
  }
  names(): string[] {
    return [...this.map.keys()];
  }
  shape(name: string): readonly number[] {
    return this.entry(name).shape;
  }
  get(name: string): Float32Array {
    return this.entry(name).data;
  }
  private entry(name: string): { shape: readonly number[]; data: Float32Array } {
    const e = this.map.get(name);
    if (!e) throw new Error(`weight '${name}' is missing`);
    return e;
  }
}

/** A view of another source under a key prefix (e.g. `model.diffusion_model.`). */
export class PrefixedWeightSource implements WeightSource {
  constructor(
    private readonly inner: WeightSource,
    private readonly prefix: string,
  ) {}
  has(name: string): boolean {
    return this.inner.has(this.prefix + name);
  }
  names(): string[] {
    return this.inner
      .names()
      .filter((n) => n.startsWith(this.prefix))
      .map((n) => n.slice(this.prefix.length));
  }
  shape(name: string): readonly number[] {
    return this.inner.shape(this.prefix + name);
  }
  get(name: string): Float32Array {
    return this.inner.get(this.prefix + name);
  }
  raw(name: string): { dtype: 'F32' | 'F16'; bytes: Uint8Array } | undefined {
    return this.inner.raw?.(this.prefix + name);
  }
  locate(name: string): StoredTensor | undefined {
    return this.inner.locate?.(this.prefix + name);
  }
}
