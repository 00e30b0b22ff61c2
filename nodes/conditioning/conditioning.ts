import type { Conditioning, ConditioningEntry } from '../../engine/sampling/conditioning.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { MAX_RESOLUTION } from '../latent/empty-latent.ts';

/** ComfyUI's conditioning nodes: each maps the list entry by entry, as `node_helpers.conditioning_set_values` does. */

const map = (c: Conditioning, f: (e: ConditioningEntry) => ConditioningEntry): Conditioning => c.map(f);

export const ConditioningCombine = defineNode({
  name: 'ConditioningCombine',
  displayName: 'Conditioning (Combine)',
  category: 'conditioning',
  inputs: { required: { conditioning_1: { type: 'CONDITIONING' }, conditioning_2: { type: 'CONDITIONING' } } },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning_1, conditioning_2 }) {
    return [[...conditioning_1, ...conditioning_2] as Conditioning];
  },
});

export const ConditioningConcat = defineNode({
  name: 'ConditioningConcat',
  displayName: 'Conditioning (Concat)',
  category: 'conditioning',
  inputs: { required: { conditioning_to: { type: 'CONDITIONING' }, conditioning_from: { type: 'CONDITIONING' } } },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning_to, conditioning_from }, ctx) {
    if (conditioning_from.length > 1)
      ctx.log.warn('ConditioningConcat: conditioning_from has more than one entry; only the first is applied, as in ComfyUI');
    const from = conditioning_from[0]?.cond;
    if (!from) return [conditioning_to];
    return [
      map(conditioning_to, (e) => {
        const [b, t, d] = e.cond.shape;
        if (from.shape[2] !== d) throw new Error(`ConditioningConcat: widths differ (${d} vs ${from.shape[2]})`);
        const ft = from.shape[1];
        const data = new Float32Array(b * (t + ft) * d);
        for (let i = 0; i < b; i++) {
          data.set(e.cond.data.subarray(i * t * d, (i + 1) * t * d), i * (t + ft) * d);
          const fi = i % from.shape[0];
          data.set(from.data.subarray(fi * ft * d, (fi + 1) * ft * d), i * (t + ft) * d + t * d);
        }
        return { ...e, cond: { shape: [b, t + ft, d], data } };
      }),
    ];
  },
});

export const ConditioningAverage = defineNode({
  name: 'ConditioningAverage',
  displayName: 'Conditioning (Average)',
  category: 'conditioning',
  inputs: {
    required: {
      conditioning_to: { type: 'CONDITIONING' },
      conditioning_from: { type: 'CONDITIONING' },
      conditioning_to_strength: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning_to, conditioning_from, conditioning_to_strength: s }) {
    const from = conditioning_from[0];
    if (!from) return [conditioning_to];
    return [
      map(conditioning_to, (e) => {
        const [b, t, d] = e.cond.shape;
        const ft = from.cond.shape[1];
        // `from` is cut or zero-padded to `to`'s token count, as ComfyUI does.
        const data = new Float32Array(e.cond.data.length);
        for (let i = 0; i < b; i++)
          for (let j = 0; j < t; j++)
            for (let k = 0; k < d; k++) {
              const fv = j < ft ? from.cond.data[j * d + k] : 0;
              data[(i * t + j) * d + k] = e.cond.data[(i * t + j) * d + k] * s + fv * (1 - s);
            }
        let pooled = e.pooled;
        if (e.pooled && from.pooled)
          pooled = { shape: e.pooled.shape, data: e.pooled.data.map((v, i) => v * s + from.pooled!.data[i] * (1 - s)) };
        else if (from.pooled) pooled = from.pooled;
        return { ...e, cond: { shape: e.cond.shape, data }, pooled };
      }),
    ];
  },
});

export const ConditioningSetArea = defineNode({
  name: 'ConditioningSetArea',
  displayName: 'Conditioning (Set Area)',
  category: 'conditioning',
  inputs: {
    required: {
      conditioning: { type: 'CONDITIONING' },
      width: { type: 'INT', default: 64, min: 64, max: MAX_RESOLUTION, step: 8 },
      height: { type: 'INT', default: 64, min: 64, max: MAX_RESOLUTION, step: 8 },
      x: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
      y: { type: 'INT', default: 0, min: 0, max: MAX_RESOLUTION, step: 8 },
      strength: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning, width, height, x, y, strength }) {
    const area = { height: Math.floor(height / 8), width: Math.floor(width / 8), y: Math.floor(y / 8), x: Math.floor(x / 8) };
    return [map(conditioning, (e) => ({ ...e, area, strength, setAreaToBounds: false }))];
  },
});

export const ConditioningSetAreaPercentage = defineNode({
  name: 'ConditioningSetAreaPercentage',
  displayName: 'Conditioning (Set Area with Percentage)',
  category: 'conditioning',
  inputs: {
    required: {
      conditioning: { type: 'CONDITIONING' },
      width: { type: 'FLOAT', default: 1.0, min: 0, max: 1.0, step: 0.01 },
      height: { type: 'FLOAT', default: 1.0, min: 0, max: 1.0, step: 0.01 },
      x: { type: 'FLOAT', default: 0, min: 0, max: 1.0, step: 0.01 },
      y: { type: 'FLOAT', default: 0, min: 0, max: 1.0, step: 0.01 },
      strength: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning, width, height, x, y, strength }) {
    const area = { height, width, y, x, percentage: true };
    return [map(conditioning, (e) => ({ ...e, area, strength, setAreaToBounds: false }))];
  },
});

/** Only the strength of ConditioningSetArea, for every entry whether it has an area or not (the guider weighs all by it). */
export const ConditioningSetAreaStrength = defineNode({
  name: 'ConditioningSetAreaStrength',
  category: 'conditioning',
  inputs: {
    required: {
      conditioning: { type: 'CONDITIONING' },
      strength: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01 },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning, strength }) {
    return [map(conditioning, (e) => ({ ...e, strength }))];
  },
});

export const ConditioningSetMask = defineNode({
  name: 'ConditioningSetMask',
  displayName: 'Conditioning (Set Mask)',
  category: 'conditioning',
  inputs: {
    required: {
      conditioning: { type: 'CONDITIONING' },
      mask: { type: 'MASK' },
      strength: { type: 'FLOAT', default: 1.0, min: 0.0, max: 10.0, step: 0.01 },
      set_cond_area: { type: 'COMBO', options: ['default', 'mask bounds'] },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning, mask, strength, set_cond_area }) {
    const m = mask.shape.length < 3 ? { shape: [1, ...mask.shape], data: mask.data } : mask;
    return [map(conditioning, (e) => ({ ...e, mask: m, maskStrength: strength, setAreaToBounds: set_cond_area !== 'default' }))];
  },
});

export const ConditioningSetTimestepRange = defineNode({
  name: 'ConditioningSetTimestepRange',
  displayName: 'ConditioningSetTimestepRange',
  category: 'advanced/conditioning',
  inputs: {
    required: {
      conditioning: { type: 'CONDITIONING' },
      start: { type: 'FLOAT', default: 0.0, min: 0.0, max: 1.0, step: 0.001 },
      end: { type: 'FLOAT', default: 1.0, min: 0.0, max: 1.0, step: 0.001 },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning, start, end }) {
    return [map(conditioning, (e) => ({ ...e, startPercent: start, endPercent: end }))];
  },
});

export const ConditioningZeroOut = defineNode({
  name: 'ConditioningZeroOut',
  displayName: 'ConditioningZeroOut',
  category: 'advanced/conditioning',
  inputs: { required: { conditioning: { type: 'CONDITIONING' } } },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  run({ conditioning }) {
    return [
      map(conditioning, (e) => ({
        ...e,
        cond: { shape: e.cond.shape, data: new Float32Array(e.cond.data.length) },
        pooled: e.pooled ? { shape: e.pooled.shape, data: new Float32Array(e.pooled.data.length) } : undefined,
      })),
    ];
  },
});

export const nodes = [
  ConditioningCombine,
  ConditioningConcat,
  ConditioningAverage,
  ConditioningSetArea,
  ConditioningSetAreaPercentage,
  ConditioningSetAreaStrength,
  ConditioningSetMask,
  ConditioningSetTimestepRange,
  ConditioningZeroOut,
];
