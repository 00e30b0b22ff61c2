import type { Tensor } from '../../../../core/tensor.ts';
import { timestepEmbedding } from '../../sd1/reference/layers.ts';

/**
 * SDXL's adm vector written out as ComfyUI's `SDXL.encode_adm` / `SDXLRefiner.encode_adm` read:
 * every default spelled out, each value embedded by the reference timestep embedding, pooled first.
 * The oracle for `sdxlAdm`; tests only.
 */
export function sdxlAdmRef(
  kind: 'base' | 'refiner',
  pooled: Float32Array,
  cond: { width?: number; height?: number; crop_w?: number; crop_h?: number; target_width?: number; target_height?: number; aesthetic_score?: number },
  latent: { width: number; height: number },
  promptType: 'positive' | 'negative',
  batch: number,
): Tensor {
  const width = cond.width ?? latent.width * 8;
  const height = cond.height ?? latent.height * 8;
  const cropW = cond.crop_w ?? 0;
  const cropH = cond.crop_h ?? 0;
  const parts: number[] =
    kind === 'base'
      ? [height, width, cropH, cropW, cond.target_height ?? height, cond.target_width ?? width]
      : [height, width, cropH, cropW, cond.aesthetic_score ?? (promptType === 'negative' ? 2.5 : 6)];
  const row: number[] = [...pooled];
  for (const v of parts) row.push(...timestepEmbedding(Float32Array.of(v), 256).data);
  const out = new Float32Array(batch * row.length);
  for (let b = 0; b < batch; b++) out.set(row, b * row.length);
  return { shape: [batch, row.length], data: out };
}
