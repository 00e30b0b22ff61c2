import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from '../../core/log.ts';
import { openWeights } from '../../formats/open-weights.ts';
import type { ModelHandle } from '../handles.ts';
import { FileMemo } from '../runtime/file-memo.ts';
import type { PartsRuntime } from '../runtime/parts-runtime.ts';
import { t2iAdapterModel, type T2IAdapterModel } from './adapter.ts';
import { readControlModel, withDifference, type ControlNetFile } from './load.ts';
import { controlNetModel, type ControlNetModel } from './model.ts';
import { controlLoraModel } from './control-lora.ts';

/**
 * ControlNet files (ControlNets, Control-LoRAs, T2I-Adapters) → CONTROL_NET values over a parts runtime (ComfyUI's `load_controlnet`),
 * memoised per file identity, and per model for difference ControlNets (DiffControlNetLoader).
 */
export class ControlNetLoader {
  private readonly files = new FileMemo<{ cn?: ControlNetFile; hash: string; model: ControlNetModel | T2IAdapterModel }>();
  private readonly diffs = new Map<string, Promise<ControlNetModel>>();

  constructor(
    private readonly runtime: PartsRuntime,
    private readonly opts: { cacheDir: string; log?: Logger },
  ) {}

  private read(file: string): { cn?: ControlNetFile; hash: string; model: ControlNetModel | T2IAdapterModel } {
    return this.files.get(file, () => {
      const c = readControlModel(file);
      const opened = openWeights(file);
      const hash = opened.contentHash({ cacheDir: join(this.opts.cacheDir, 'hashes') });
      opened.close();
      if (c.kind === 't2i-adapter') return { hash, model: t2iAdapterModel(this.runtime, c.adapter, hash) };
      if (c.kind === 'control-lora') return { hash, model: controlLoraModel(this.runtime, c.lora, hash) };
      return { cn: c.cn, hash, model: controlNetModel(this.runtime, c.cn, hash) };
    });
  }

  /** ControlNetLoader: a ControlNet or a T2I-Adapter; a difference ControlNet loaded without a model is used as stored, with ComfyUI's warning. */
  loadModel(file: string): ControlNetModel | T2IAdapterModel {
    const r = this.read(file);
    if (r.cn?.difference) this.opts.log?.warn(`${file}: a difference ControlNet loaded without a model will very likely not work; load it with DiffControlNetLoader`);
    return r.model;
  }

  /** `loadModel` for a file that must be a ControlNet. */
  load(file: string): ControlNetModel {
    const m = this.loadModel(file);
    if (m.kind !== 'controlnet') throw new Error(`${file} is a T2I-Adapter, not a ControlNet`);
    return m;
  }

  /** DiffControlNetLoader: a difference ControlNet made absolute against `model`'s (patched) UNet weights; any other ControlNet as ControlNetLoader gives it. */
  loadDiff(file: string, model: ModelHandle): Promise<ControlNetModel | T2IAdapterModel> {
    const r = this.read(file);
    const cn = r.cn;
    if (!cn?.difference) return Promise.resolve(r.model);
    const p = model.patching;
    if (!p) throw new Error(`${file} is a difference ControlNet, which needs the model's own weights, but this model does not expose them (an ONNX export?)`);
    const key = `${r.hash}|${model.id}`;
    let hit = this.diffs.get(key);
    if (!hit) {
      hit = (async () => {
        const name = (bare: string): string => p.prefix + bare;
        const abs = await withDifference(
          cn,
          async (bare) => (p.weights.has(name(bare)) ? p.read(name(bare)) : undefined),
          (bare) => (p.weights.has(name(bare)) ? p.weights.shape(name(bare)) : undefined),
        );
        const hash = createHash('sha256').update(`${r.hash}\0${model.id}`).digest('hex');
        return controlNetModel(this.runtime, abs, hash);
      })();
      hit.catch(() => this.diffs.delete(key));
      this.diffs.set(key, hit);
    }
    return hit;
  }
}
