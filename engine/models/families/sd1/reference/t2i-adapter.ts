import type { Tensor } from '../../../../core/tensor.ts';
import type { WeightSource } from '../../../../core/weights.ts';
import type { T2IAdapterConfig } from '../../../controlnet/adapter-layout.ts';
import { add, conv2d } from './layers.ts';

/**
 * ComfyUI's `comfy/t2i_adapter/adapter.py` (`Adapter` with sk=True, `Adapter_light`) in plain loops:
 * the oracle for the adapter graph. Takes the hint image itself and does PixelUnshuffle(8) here
 * (16 for the xl adapter, whose levels 1 and 2 start with a width change and only level 2 with a
 * downsample: adapter.py's `resblock_no_downsample = [1]`, `resblock_downsample = [2]`).
 */

/** torch.nn.PixelUnshuffle(r): out[b, c·r² + i·r + j, y, x] = in[b, c, y·r + i, x·r + j]. */
export function pixelUnshuffleRef(t: Tensor, r: number): Tensor {
  const [B, C, H, W] = t.shape;
  if (H % r || W % r) throw new Error(`pixel unshuffle by ${r}: ${H}×${W} is not a multiple`);
  const h = H / r;
  const w = W / r;
  const out = new Float32Array(t.data.length);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let i = 0; i < r; i++)
        for (let j = 0; j < r; j++)
          for (let y = 0; y < h; y++)
            for (let x = 0; x < w; x++) out[(((b * C + c) * r * r + i * r + j) * h + y) * w + x] = t.data[((b * C + c) * H + y * r + i) * W + x * r + j];
  return { shape: [B, C * r * r, h, w], data: out };
}

/** AvgPool2d(2, 2) with padding (H % 2, W % 2) on both sides and the zeros counted (the adapter's Downsample). */
export function avgPoolDownRef(t: Tensor): Tensor {
  const [B, C, H, W] = t.shape;
  const ph = H % 2;
  const pw = W % 2;
  const oh = Math.floor((H + 2 * ph - 2) / 2) + 1;
  const ow = Math.floor((W + 2 * pw - 2) / 2) + 1;
  const out = new Float32Array(B * C * oh * ow);
  for (let p = 0; p < B * C; p++)
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++) {
        let s = 0;
        for (let dy = 0; dy < 2; dy++)
          for (let dx = 0; dx < 2; dx++) {
            const yy = y * 2 + dy - ph;
            const xx = x * 2 + dx - pw;
            if (yy >= 0 && yy < H && xx >= 0 && xx < W) s += t.data[(p * H + yy) * W + xx];
          }
        out[(p * oh + y) * ow + x] = s / 4;
      }
  return { shape: [B, C, oh, ow], data: out };
}

function relu(t: Tensor): Tensor {
  return { shape: t.shape, data: t.data.map((v) => (v > 0 ? v : 0)) };
}

function conv(ws: WeightSource, key: string, x: Tensor, stride = 1): Tensor {
  const shape = ws.shape(`${key}.weight`);
  return conv2d(x, ws.get(`${key}.weight`), shape, ws.get(`${key}.bias`), { stride, pad: Math.floor(shape[2] / 2) }, key);
}

/** The adapter's features, one per level, for a hint [B, cin/r², H, W] (H, W multiples of r: 8, or 16 for xl). */
export function t2iAdapterRef(cfg: T2IAdapterConfig, ws: WeightSource, hint: Tensor): Tensor[] {
  let x = pixelUnshuffleRef(hint, cfg.xl ? 16 : 8);
  const downAt = (i: number): boolean => (cfg.xl ? [2].includes(i) : [3, 2, 1].includes(i));
  const features: Tensor[] = [];
  if (cfg.kind === 'light') {
    cfg.channels.forEach((_c, i) => {
      if (i > 0) x = avgPoolDownRef(x);
      x = conv(ws, `body.${i}.in_conv`, x);
      for (let k = 0; k < cfg.numsRb; k++) {
        const b = `body.${i}.body.${k}`;
        x = add(conv(ws, `${b}.block2`, relu(conv(ws, `${b}.block1`, x))), x);
      }
      x = conv(ws, `body.${i}.out_conv`, x);
      features.push(x);
    });
    return features;
  }
  x = conv(ws, 'conv_in', x);
  cfg.channels.forEach((_c, i) => {
    for (let j = 0; j < cfg.numsRb; j++) {
      const key = `body.${i * cfg.numsRb + j}`;
      if (downAt(i) && j === 0) x = cfg.useConv ? conv(ws, `${key}.down_opt.op`, x, 2) : avgPoolDownRef(x);
      if (ws.has(`${key}.in_conv.weight`)) x = conv(ws, `${key}.in_conv`, x);
      x = add(conv(ws, `${key}.block2`, relu(conv(ws, `${key}.block1`, x))), x);
    }
    features.push(x);
  });
  return features;
}
