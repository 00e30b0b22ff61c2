import { mkdtempSync, mkdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tensor, type ImageTensor } from '../../engine/core/tensor.ts';
import {
  encodePoses,
  formatPose,
  nms,
  simccDecode,
  toOpenposeOrder,
  yoloxPersons,
  type OpenposeJson,
} from '../../engine/image/preprocess/dwpose-decode.ts';
import { drawPoses } from '../../engine/image/preprocess/openpose-draw.ts';
import { makeRandomDwpose } from '../../engine/models/annotators/generate.ts';
import { findAnnotator } from '../../engine/models/annotators/locate.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { DWPreprocessor } from '../../nodes/controlnet/preprocessors/dwpose.ts';
import '../../nodes/model/services.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

describe('DWPose decoding', () => {
  it('NMS keeps the best box and drops overlaps above the threshold (+1 pixel areas)', () => {
    const boxes: [number, number, number, number][] = [
      [0, 0, 9, 9],
      [1, 1, 10, 10],
      [20, 20, 29, 29],
      [0, 0, 9, 9],
    ];
    // box 1 vs 0: inter 81, union 119 → 0.68 > 0.45
    expect(nms(boxes, [0.9, 0.95, 0.5, 0.9], 0.45)).toEqual([1, 2]);
    // equal scores: numpy's argsort()[::-1] visits the later index first, and box 3 then hides box 0
    expect(nms(boxes, [0.9, 0.95, 0.5, 0.9], 0.7)).toEqual([1, 3, 2]);
  });

  it('decodes YOLOX grids: a confident anchor at stride 8, cell (3, 2), becomes a person box in image pixels', () => {
    const out = new Float32Array(8400 * 85);
    const a = 2 * 80 + 3;
    out.set([0.5, 0.5, Math.log(4), Math.log(2), 0.9, 0.8], a * 85);
    const boxes = yoloxPersons(out, 8400, 0.5);
    // centre (3.5·8, 2.5·8) = (28, 20), size 32×16, divided by the letterbox ratio 0.5
    expect(boxes).toHaveLength(1);
    [24, 24, 88, 56].forEach((v, i) => expect(boxes[0][i]).toBeCloseTo(v, 6));
    out[a * 85 + 5] = 0.3; // 0.9·0.3 = 0.27: above the NMS floor 0.1, below the 0.3 person threshold
    expect(yoloxPersons(out, 8400, 0.5)).toEqual([]);
  });

  it('decodes SimCC maxima into crop coordinates and marks non-positive maxima invisible', () => {
    const k = 2;
    const sx = new Float32Array(k * 576);
    const sy = new Float32Array(k * 768);
    sx[100] = 2;
    sy[300] = 1.5;
    sx[576 + 10] = -1;
    sy[768 + 10] = -1;
    const crop = { data: new Float32Array(0), center: [100, 200] as [number, number], scale: [288, 384] as [number, number] };
    const [a, b] = simccDecode(sx, sy, k, crop, 288, 384);
    // x = 100/2/288·288 + 100 − 144
    expect(a).toEqual({ x: 50 + 100 - 144, y: 150 + 200 - 192, score: 1.5 });
    expect(b.score).toBe(0); // the row's maximum is 0 (not positive): location −1
    expect(b.x).toBeCloseTo(-0.5 + 100 - 144, 10);
  });

  it('inserts the neck and reorders to OpenPose; formats parts with the 0.3 visibility rule and the JSON shape', () => {
    const kps = Array.from({ length: 133 }, (_, i) => ({ x: i, y: 2 * i, score: i === 0 ? 0.1 : 0.9 }));
    const re = toOpenposeOrder(kps);
    expect(re).toHaveLength(134);
    expect(re[1]).toEqual({ x: 5.5, y: 11, score: 1 }); // neck from shoulders 5 and 6
    expect(re[2]).toBe(kps[6]);
    expect(re[0]).toBe(kps[0]);
    const pose = formatPose(re);
    expect(pose.body[0]).toBeNull();
    expect(pose.face).toHaveLength(70);
    expect(pose.leftHand).toHaveLength(21);
    const json = encodePoses([pose], 480, 640);
    expect(json.canvas_height).toBe(480);
    expect(json.people[0].pose_keypoints_2d?.slice(0, 6)).toEqual([0, 0, 0, 5.5, 11, 1]);
    expect(json.people[0].hand_right_keypoints_2d).toHaveLength(63);
  });
});

describe('DWPreprocessor with random-weight models of the real signatures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-dwpose-'));
  const models = join(dir, 'models');
  makeRandomDwpose(join(models, 'annotators'), 3);
  const manager = new ModelManager({ cacheDir: join(dir, 'cache'), device: 'cpu', log: quiet });
  const ctx = {
    services: { models: manager },
    log: quiet,
    signal: new AbortController().signal,
    progress: () => {},
    paths: new FolderPaths({ baseDir: dir, modelsDir: models }),
  } as unknown as NodeContext;

  function photo(h: number, w: number): ImageTensor {
    const t = tensor([1, h, w, 3]);
    for (let i = 0; i < t.data.length; i++) t.data[i] = ((i * 7919) % 256) / 255;
    return t;
  }

  it('runs detector and pose net, returns the skeleton at detect resolution and one JSON per image', async () => {
    const res = (await DWPreprocessor.run(
      { image: photo(96, 128), resolution: 64, bbox_detector: 'None', pose_estimator: 'dw-ll_ucoco_384.onnx' },
      ctx,
    )) as { result: [ImageTensor, OpenposeJson[]]; ui: { openpose_json: string[] } };
    const [image, dicts] = res.result;
    expect(image.shape).toEqual([1, 64, 85, 3]);
    expect(dicts).toHaveLength(1);
    expect(dicts[0]).toMatchObject({ canvas_height: 96, canvas_width: 128 });
    expect(dicts[0].people).toHaveLength(1);
    const p = dicts[0].people[0];
    expect(p.pose_keypoints_2d).toHaveLength(54);
    // the drawing is the package's renderer on the decoded poses
    const ppl = dicts[0].people.map((q) => ({
      body: toKps(q.pose_keypoints_2d) ?? [],
      leftHand: toKps(q.hand_left_keypoints_2d),
      rightHand: toKps(q.hand_right_keypoints_2d),
      face: toKps(q.face_keypoints_2d),
    }));
    const anyDrawn = drawPoses(ppl, 96, 128, true, false, true).data.some((v) => v > 0);
    expect(image.data.some((v) => v > 0)).toBe(anyDrawn);
    expect(JSON.parse(res.ui.openpose_json[0])).toEqual(dicts);
  });

  it('with the YOLOX detector: persons or none, never a crash; detect_body off empties the body in the JSON', async () => {
    const res = (await DWPreprocessor.run(
      { image: photo(70, 50), resolution: 64, detect_body: 'disable', pose_estimator: 'dw-ll_ucoco_384_bs5.torchscript.pt' },
      ctx,
    )) as { result: [ImageTensor, OpenposeJson[]] };
    const [image, dicts] = res.result;
    expect(image.shape).toEqual([1, 90, 64, 3]);
    // the random detector's objectness is tuned so that a few anchors become persons
    expect(dicts[0].people.length).toBeGreaterThan(0);
    for (const p of dicts[0].people) expect(p.pose_keypoints_2d?.every((v) => v === 0)).toBe(true);
  });

  it('a missing model names the file and the folders searched; the aux ckpts layout is found', async () => {
    const empty = { ...ctx, paths: new FolderPaths({ baseDir: dir, modelsDir: join(dir, 'nothing') }) } as unknown as NodeContext;
    await expect(DWPreprocessor.run({ image: photo(8, 8) }, empty)).rejects.toThrow(
      /yolox_l\.onnx not found.*nothing\/annotators\/yzd-v\/DWPose\/yolox_l\.onnx/,
    );
    const ckpts = join(dir, 'ckpts');
    mkdirSync(join(ckpts, 'yzd-v', 'DWPose'), { recursive: true });
    renameSync(join(models, 'annotators', 'yolox_l.onnx'), join(ckpts, 'yzd-v', 'DWPose', 'yolox_l.onnx'));
    const paths = new FolderPaths({ baseDir: dir, modelsDir: models });
    paths.addPath('annotators', ckpts);
    expect(findAnnotator(paths, 'yolox_l.onnx', ['yzd-v/DWPose'])).toBe(join(ckpts, 'yzd-v', 'DWPose', 'yolox_l.onnx'));
    expect(() => findAnnotator(paths, '../x.onnx', [])).toThrow(/not a plain file name/);
  });
});

function toKps(v: number[] | null): ({ x: number; y: number } | null)[] | null {
  if (!v) return null;
  const out: ({ x: number; y: number } | null)[] = [];
  for (let i = 0; i < v.length; i += 3) out.push(v[i + 2] < 1 ? null : { x: v[i], y: v[i + 1] });
  return out;
}
