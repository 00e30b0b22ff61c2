import type { Tensor } from '../../core/tensor.ts';

/**
 * GroupNorm split in two, as the Tiled VAE needs it: the statistics of one tile (biased variance and
 * mean per batch item and group: get_var_mean), their pixel-weighted average over tiles
 * (GroupNormParam.summary: the variances are averaged, not pooled, exactly as the extension does),
 * and the normalisation with given statistics and the layer's affine (custom_group_norm, ε = 1e-6).
 */

export interface GroupStats {
  /** [batch·groups] */
  readonly mean: Float64Array;
  readonly variance: Float64Array;
}

export function groupStats(x: Tensor, groups: number): GroupStats {
  const [b, c, h, w] = x.shape;
  if (c % groups !== 0) throw new Error(`GroupNorm: ${c} channels do not split into ${groups} groups`);
  const n = (c / groups) * h * w;
  const mean = new Float64Array(b * groups);
  const variance = new Float64Array(b * groups);
  for (let i = 0; i < b * groups; i++) {
    const d = x.data.subarray(i * n, (i + 1) * n);
    let s = 0;
    for (let k = 0; k < n; k++) s += d[k];
    const m = s / n;
    let v = 0;
    for (let k = 0; k < n; k++) v += (d[k] - m) * (d[k] - m);
    mean[i] = m;
    variance[i] = v / n;
  }
  return { mean, variance };
}

/** Σ p_i·stat_i with p_i = pixels_i / Σ pixels (the extension's pixel weighting). */
export function combineStats(tiles: readonly { stats: GroupStats; pixels: number }[]): GroupStats {
  const total = tiles.reduce((s, t) => s + t.pixels, 0);
  const len = tiles[0].stats.mean.length;
  const mean = new Float64Array(len);
  const variance = new Float64Array(len);
  for (const t of tiles) {
    const p = t.pixels / total;
    for (let i = 0; i < len; i++) {
      mean[i] += t.stats.mean[i] * p;
      variance[i] += t.stats.variance[i] * p;
    }
  }
  return { mean, variance };
}

/** (x − mean)/√(var + ε)·weight + bias per group and channel. */
export function applyGroupNorm(
  x: Tensor,
  groups: number,
  stats: GroupStats,
  weight?: Float32Array,
  bias?: Float32Array,
  eps = 1e-6,
  inPlace = false,
): Tensor {
  const [b, c, h, w] = x.shape;
  const hw = h * w;
  const cpg = c / groups;
  const out = inPlace ? x.data : new Float32Array(x.data.length);
  for (let bi = 0; bi < b; bi++)
    for (let ch = 0; ch < c; ch++) {
      const gi = bi * groups + Math.floor(ch / cpg);
      const inv = 1 / Math.sqrt(stats.variance[gi] + eps);
      const scale = (weight ? weight[ch] : 1) * inv;
      const shift = (bias ? bias[ch] : 0) - stats.mean[gi] * scale;
      const off = (bi * c + ch) * hw;
      for (let k = 0; k < hw; k++) out[off + k] = x.data[off + k] * scale + shift;
    }
  return { shape: x.shape, data: out };
}

/** x·σ(x), in place. */
export function siluInPlace(x: Tensor): Tensor {
  const d = x.data;
  for (let i = 0; i < d.length; i++) d[i] = d[i] / (1 + Math.exp(-d[i]));
  return x;
}
