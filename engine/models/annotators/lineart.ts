import * as ort from 'onnxruntime-node';
import type { WeightSource } from '../../core/weights.ts';
import { removePad, resizeImageWithPad } from '../../image/preprocess/aux-resize.ts';
import { hwc3, type U8Mat } from '../../image/preprocess/mat.ts';
import { GraphBuilder } from '../../onnx/graph.ts';
import type { PartSpec, RunSession } from '../runtime/part.ts';

/**
 * comfyui_controlnet_aux's LineArt (the "informative drawings" Generator, sk_model.pth and the coarse
 * sk_model2.pth): reflect-padded 7×7 conv, two stride-2 convs, three residual blocks, two transposed
 * convs, a 7×7 conv and a sigmoid, every hidden conv followed by a non-affine InstanceNorm and ReLU.
 * The input is the padded image / 255; the line map is 255 − line × 255 (truncated), cropped.
 */

const RES_BLOCKS = 3;

export function lineartGraph(ws: WeightSource): GraphBuilder {
  const g = new GraphBuilder('lineart-generator');
  const w = (name: string): string => {
    if (!ws.has(name)) throw new Error(`LineArt checkpoint: weight '${name}' is missing (is this sk_model.pth?)`);
    return g.floats(name, ws.shape(name), () => ws.get(name), name);
  };
  const norm = (x: string, c: number): string =>
    g.op1('InstanceNormalization', [x, g.floats(g.fresh('in_scale'), [c], () => new Float32Array(c).fill(1)), g.floats(g.fresh('in_bias'), [c], () => new Float32Array(c))], {
      epsilon: 1e-5,
    });
  const reflect = (x: string, p: number): string => g.op1('Pad', [x, g.ints([0, 0, p, p, 0, 0, p, p])], { mode: 'reflect' });
  const conv = (x: string, key: string, k: number, attrs: Record<string, number[]> = {}): string =>
    g.op1('Conv', [x, w(`${key}.weight`), w(`${key}.bias`)], { kernel_shape: [k, k], ...attrs });
  const relu = (x: string): string => g.op1('Relu', [x]);
  let h = g.input('image', 'float32', [1, 3, 'H', 'W']);
  h = relu(norm(conv(reflect(h, 3), 'model0.1', 7), 64));
  h = relu(norm(conv(h, 'model1.0', 3, { strides: [2, 2], pads: [1, 1, 1, 1] }), 128));
  h = relu(norm(conv(h, 'model1.3', 3, { strides: [2, 2], pads: [1, 1, 1, 1] }), 256));
  for (let i = 0; i < RES_BLOCKS; i++) {
    const k = `model2.${i}.conv_block`;
    const r = relu(norm(conv(reflect(h, 1), `${k}.1`, 3), 256));
    h = g.op1('Add', [h, norm(conv(reflect(r, 1), `${k}.5`, 3), 256)]);
  }
  const up = (x: string, key: string, c: number): string =>
    relu(
      norm(
        g.op1('ConvTranspose', [x, w(`${key}.weight`), w(`${key}.bias`)], {
          kernel_shape: [3, 3],
          strides: [2, 2],
          pads: [1, 1, 1, 1],
          output_padding: [1, 1],
        }),
        c,
      ),
    );
  h = up(h, 'model3.0', 128);
  h = up(h, 'model3.3', 64);
  g.output(g.op1('Sigmoid', [conv(reflect(h, 3), 'model4.1', 7)]), 'line', 'float32', [1, 1, 'H', 'W']);
  return g;
}

export function lineartPart(weights: WeightSource, hash: string, source: string): PartSpec {
  return { id: 'annotator_lineart', hash, weights, prefix: '', build: (ws) => lineartGraph(ws), source, version: 1 };
}

export async function lineartDetect(run: RunSession, input: U8Mat, resolution: number): Promise<U8Mat> {
  const p = resizeImageWithPad(input, resolution);
  const { h: H, w: W } = p.image;
  const S = H * W;
  const x = new Float32Array(3 * S);
  for (let i = 0; i < S; i++) for (let c = 0; c < 3; c++) x[c * S + i] = Math.fround(p.image.data[i * 3 + c] / 255);
  const out = await run({ image: new ort.Tensor('float32', x, [1, 3, H, W]) });
  const line = (out.line as ort.Tensor).data as Float32Array;
  const m = new Uint8Array(S);
  for (let i = 0; i < S; i++) {
    const v = Math.fround(line[i] * 255);
    m[i] = 255 - (v >= 255 ? 255 : v > 0 ? Math.trunc(v) : 0);
  }
  return hwc3(removePad(p, { h: H, w: W, c: 1, data: m }));
}
