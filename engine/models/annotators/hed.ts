import * as ort from 'onnxruntime-node';
import type { WeightSource } from '../../core/weights.ts';
import { removePad, resizeImageWithPad } from '../../image/preprocess/aux-resize.ts';
import { hwc3, type U8Mat } from '../../image/preprocess/mat.ts';
import { GraphBuilder } from '../../onnx/graph.ts';
import type { PartSpec, RunSession } from '../runtime/part.ts';

/**
 * HED soft edges as comfyui_controlnet_aux computes them with `ControlNetHED_Apache2` (lllyasviel's
 * ControlNetHED.pth): the ONNX graph is built from the state dict (x − norm; five blocks of 3×3
 * conv + ReLU, 2×2 max-pool between blocks, a 1×1 projection per block), the five side outputs are
 * resized to the padded image (bilinear), averaged, passed through a sigmoid (float64), optionally
 * quantised by `safe_step`, ×255 truncated.
 */

const BLOCKS: readonly { layers: number; out: number }[] = [
  { layers: 2, out: 64 },
  { layers: 2, out: 128 },
  { layers: 3, out: 256 },
  { layers: 3, out: 512 },
  { layers: 3, out: 512 },
];

export function hedGraph(ws: WeightSource): GraphBuilder {
  const g = new GraphBuilder('controlnet-hed');
  const w = (name: string): string => {
    if (!ws.has(name)) throw new Error(`HED checkpoint: weight '${name}' is missing (is this ControlNetHED.pth?)`);
    return g.floats(name, ws.shape(name), () => ws.get(name), name);
  };
  let h = g.op1('Sub', [g.input('image', 'float32', [1, 3, 'H', 'W']), w('norm')]);
  BLOCKS.forEach((b, i) => {
    const p = `block${i + 1}`;
    if (i > 0) h = g.op1('MaxPool', [h], { kernel_shape: [2, 2], strides: [2, 2] });
    for (let j = 0; j < b.layers; j++) {
      const k = `${p}.convs.${j}`;
      if (ws.shape(`${k}.weight`)[0] !== b.out) throw new Error(`HED checkpoint: ${k}.weight has shape [${ws.shape(`${k}.weight`).join(', ')}]`);
      h = g.op1('Relu', [g.op1('Conv', [h, w(`${k}.weight`), w(`${k}.bias`)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
    }
    g.output(g.op1('Conv', [h, w(`${p}.projection.weight`), w(`${p}.projection.bias`)]), `projection${i + 1}`, 'float32', [1, 1, `h${i}`, `w${i}`]);
  });
  return g;
}

export function hedPart(weights: WeightSource, hash: string, source: string): PartSpec {
  return { id: 'annotator_hed', hash, weights, prefix: '', build: (ws) => hedGraph(ws), source, version: 1 };
}

/** cv2.resize INTER_LINEAR of one float32 plane (half-pixel centres, clamped borders). */
export function resizeLinearF32(src: Float32Array, sh: number, sw: number, h: number, w: number): Float32Array {
  const f = Math.fround;
  const axis = (s: number, d: number): { i0: Int32Array; a: Float32Array } => {
    const i0 = new Int32Array(d);
    const a = new Float32Array(d);
    const scale = s / d;
    for (let k = 0; k < d; k++) {
      let fx = f((k + 0.5) * scale - 0.5);
      let sx = Math.floor(fx);
      fx = f(fx - sx);
      if (sx < 0) {
        fx = 0;
        sx = 0;
      }
      if (sx >= s - 1) {
        fx = 0;
        sx = s - 1;
      }
      i0[k] = sx;
      a[k] = fx;
    }
    return { i0, a };
  };
  const ax = axis(sw, w);
  const ay = axis(sh, h);
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    const y0 = ay.i0[y];
    const y1 = Math.min(y0 + 1, sh - 1);
    const b1 = ay.a[y];
    const b0 = f(1 - b1);
    for (let x = 0; x < w; x++) {
      const x0 = ax.i0[x];
      const x1 = Math.min(x0 + 1, sw - 1);
      const a1 = ax.a[x];
      const a0 = f(1 - a1);
      const r0 = f(f(src[y0 * sw + x0] * a0) + f(src[y0 * sw + x1] * a1));
      const r1 = f(f(src[y1 * sw + x0] * a0) + f(src[y1 * sw + x1] * a1));
      out[y * w + x] = f(f(r0 * b0) + f(r1 * b1));
    }
  }
  return out;
}

/** The aux package's safe_step(x, 2): floor(x·3) / 2 in float32. */
function safeStep(v: number): number {
  return Math.fround(Math.trunc(Math.fround(Math.fround(v) * 3)) / 2);
}

export async function hedDetect(run: RunSession, input: U8Mat, resolution: number, safe: boolean): Promise<U8Mat> {
  const p = resizeImageWithPad(input, resolution);
  const { h: H, w: W } = p.image;
  const S = H * W;
  const x = new Float32Array(3 * S);
  for (let i = 0; i < S; i++) for (let c = 0; c < 3; c++) x[c * S + i] = p.image.data[i * 3 + c];
  const out = await run({ image: new ort.Tensor('float32', x, [1, 3, H, W]) });
  const sides = [1, 2, 3, 4, 5].map((i) => {
    const t = out[`projection${i}`] as ort.Tensor;
    return resizeLinearF32(t.data as Float32Array, t.dims[2], t.dims[3], H, W);
  });
  const edge = new Uint8Array(S);
  for (let i = 0; i < S; i++) {
    let m = 0;
    for (const s of sides) m = Math.fround(m + s[i]);
    const mean = Math.fround(m / 5);
    let e = 1 / (1 + Math.exp(-mean));
    if (safe) e = safeStep(e);
    const v = e * 255;
    edge[i] = v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0;
  }
  return hwc3(removePad(p, { h: H, w: W, c: 1, data: edge }));
}
