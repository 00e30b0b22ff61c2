import { join } from 'node:path';
import type { WeightSource } from '../../core/weights.ts';
import { openWeights } from '../../formats/open-weights.ts';
import { RenamedWeightSource } from '../families/sd1/weight-views.ts';
import { FileMemo } from '../runtime/file-memo.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import { detectUpscaleArch, esrganOldName, unwrapStateDict, UpscaleModelError, verifyUpscaleWeights, type UpscaleArch } from './detect.ts';
import { upscaleModel, type UpscaleModel } from './model.ts';

/**
 * Upscale-model files → UPSCALE_MODEL values (ComfyUI's UpscaleModelLoader: load_torch_file, the
 * `module.` prefix strip, spandrel's ModelLoader), memoised per file identity. Safetensors and
 * PyTorch pickles (.pth/.pt, through the weights-only reader) both load.
 */

export interface UpscaleFile {
  readonly arch: UpscaleArch;
  /** The weights under the names the graph builder reads (ESRGAN: the old `model.N` names). */
  readonly weights: WeightSource;
}

/** Reads an upscaler's architecture from its tensors and maps its names for the graph. */
export function readUpscaleWeights(src: WeightSource, file: string): UpscaleFile {
  const { prefix, names } = unwrapStateDict(src.names());
  const shape = (n: string): readonly number[] => src.shape(prefix + n);
  const arch = detectUpscaleArch(names, shape, file);
  const entries = new Map<string, { source: string; shape: readonly number[] }>();
  for (const n of names) {
    const to = arch.kind === 'esrgan' && arch.layout !== 'old' ? esrganOldName(n, arch.upsamples, arch.nb) : n;
    if (to) entries.set(to, { source: prefix + n, shape: shape(n) });
  }
  const weights = new RenamedWeightSource(src, entries);
  verifyUpscaleWeights(arch, weights, file);
  return { arch, weights };
}

export class UpscaleModelLoader {
  private readonly files = new FileMemo<UpscaleModel>();

  constructor(
    private readonly runtime: PartsRuntime,
    private readonly opts: { cacheDir: string },
  ) {}

  load(file: string): UpscaleModel {
    return this.files.get(file, () => {
      let opened;
      try {
        opened = openWeights(file);
      } catch (e) {
        throw new UpscaleModelError(`cannot read upscale model ${file}: ${(e as Error).message}`);
      }
      const { arch, weights } = readUpscaleWeights(opened, file);
      const hash = opened.contentHash({ cacheDir: join(this.opts.cacheDir, 'hashes') });
      return upscaleModel(this.runtime, arch, weights, hash, file);
    });
  }
}

/** A short description for logs and errors: `ESRGAN 4x (64nf, 23nb)`, `Compact 4x (64nf, 32nc)`. */
export function describeArch(a: UpscaleArch): string {
  if (a.kind === 'compact') return `SRVGGNetCompact ${a.scale}x (${a.nf}nf, ${a.numConv}nc)`;
  return `ESRGAN ${a.scale}x (${a.nf}nf, ${a.nb}nb${a.shuffle > 1 ? `, unshuffle ${a.shuffle}` : ''}, ${a.layout} layout)`;
}
