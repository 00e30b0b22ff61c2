import { beforeAll, describe, expect, it } from 'vitest';
import type { Latent } from '../../engine/core/tensor.ts';
import type { ModelHandle, ModelWrapper } from '../../engine/models/handles.ts';
import { addModelWrapper } from '../../engine/models/model-wrappers.ts';
import { NO_PATCHES } from '../../engine/models/patching/patch-set.ts';
import type { Conditioning } from '../../engine/sampling/conditioning.ts';
import { ksample } from '../../engine/sampling/ksampler.ts';
import { loadTinyParts } from '../sampling/tiny-parts.ts';

describe('model wrappers survive weight patching', () => {
  let model: ModelHandle;
  let pos: Conditioning;
  let neg: Conditioning;
  beforeAll(async () => {
    ({ model, pos, neg } = await loadTinyParts());
  }, 60_000);

  const run = (m: ModelHandle) => {
    const latent: Latent = { samples: { shape: [1, 4, 8, 8], data: new Float32Array(256) } };
    return ksample({
      model: m,
      seed: 3n,
      steps: 3,
      cfg: 4,
      samplerName: 'euler',
      scheduler: 'normal',
      positive: pos,
      negative: neg,
      latent,
    });
  };

  it('a wrapper added before a LoRA-style withPatches still wraps every model call after it', async () => {
    const calls: string[] = [];
    const counting =
      (name: string): ModelWrapper =>
      (apply, args) => {
        calls.push(name);
        return apply(args);
      };
    const outer = counting('outer');
    const inner = counting('inner');
    const wrapped = addModelWrapper(addModelWrapper(model, outer), inner);
    expect(wrapped.wrappers).toEqual([outer, inner]);
    const patched = wrapped.patching!.withPatches(NO_PATCHES);
    expect(patched.wrappers).toEqual([outer, inner]);
    // A second patching step keeps them too.
    expect(patched.patching!.withPatches(NO_PATCHES).wrappers).toEqual([outer, inner]);
    const out = await run(patched);
    expect(calls).toEqual(['outer', 'inner', 'outer', 'inner', 'outer', 'inner']);
    expect(out.samples.data).toEqual((await run(model)).samples.data);
    expect(model.wrappers ?? []).toEqual([]);
  });
});
