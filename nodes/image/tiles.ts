import { describeShape, type ImageTensor } from '../../engine/core/tensor.ts';
import { cropSpatial } from '../../engine/image/orient.ts';
import { pyRound } from '../../engine/image/python-compat.ts';
import { defineNode } from '../../engine/registry/types.ts';

/**
 * ComfyUI's newer nodes_images.py pieces that are tensor arithmetic: ImageCropV2 with its
 * BOUNDING_BOX primitive, and SplitImageToTileList / ImageMergeTileList (sine-weighted blending).
 */

export interface BoundingBox {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

declare module '../../engine/registry/sockets.ts' {
  interface SocketValueTypes {
    BOUNDING_BOX: BoundingBox;
  }
}

const R = 16384;

function expectImage(image: ImageTensor, what: string): void {
  if (image.shape.length !== 4) throw new Error(`${what} must be an IMAGE [B, H, W, C], got shape ${describeShape(image.shape)}`);
}

export const PrimitiveBoundingBox = defineNode({
  name: 'PrimitiveBoundingBox',
  displayName: 'Bounding Box',
  category: 'utilities/primitive',
  inputs: {
    required: {
      x: { type: 'INT', default: 0, min: 0, max: R },
      y: { type: 'INT', default: 0, min: 0, max: R },
      width: { type: 'INT', default: 512, min: 1, max: R },
      height: { type: 'INT', default: 512, min: 1, max: R },
    },
  },
  outputs: [{ type: 'BOUNDING_BOX', name: 'BOUNDING_BOX' }],
  run({ x, y, width, height }) {
    return [{ x, y, width, height }];
  },
});

export const ImageCropV2 = defineNode({
  name: 'ImageCropV2',
  displayName: 'Crop Image',
  description: 'Crop an image to the specified dimensions.',
  category: 'image/transform',
  searchAliases: ['crop', 'cut', 'trim'],
  inputs: { required: { image: { type: 'IMAGE' }, crop_region: { type: 'BOUNDING_BOX' } } },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, crop_region }) {
    expectImage(image, 'image');
    const { x = 0, y = 0, width = 512, height = 512 } = crop_region;
    // As ImageCrop: the corner kept inside the image, the far side cut at the border.
    const x0 = Math.min(x, image.shape[2] - 1);
    const y0 = Math.min(y, image.shape[1] - 1);
    return [cropSpatial(image, y0, y0 + height, x0, x0 + width, 'NHWC')];
  },
});

/** Tile rectangles [x0, y0, x1, y1] row by row; strides of max(¼ tile, tile − overlap), the last tile flush with the edge. */
export function gridCoords(width: number, height: number, tw: number, th: number, overlap: number): [number, number, number, number][] {
  const coords: [number, number, number, number][] = [];
  const sx = pyRound(Math.max(tw * 0.25, tw - overlap));
  const sy = pyRound(Math.max(th * 0.25, th - overlap));
  for (let y = 0; y < height; y += sy) {
    const y1 = Math.min(y + th, height);
    const y0 = Math.max(0, y1 - th);
    for (let x = 0; x < width; x += sx) {
      const x1 = Math.min(x + tw, width);
      coords.push([Math.max(0, x1 - tw), y0, x1, y1]);
      if (x1 >= width) break;
    }
    if (y1 >= height) break;
  }
  return coords;
}

export const SplitImageToTileList = defineNode({
  name: 'SplitImageToTileList',
  displayName: 'Split Image into List of Tiles',
  description: 'Splits an image into a batched list of tiles with a specified overlap.',
  category: 'image/batch',
  searchAliases: ['split image', 'tile image', 'slice image'],
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      tile_width: { type: 'INT', default: 1024, min: 64, max: R },
      tile_height: { type: 'INT', default: 1024, min: 64, max: R },
      overlap: { type: 'INT', default: 128, min: 0, max: 4096 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE', isList: true }],
  run({ image, tile_width, tile_height, overlap }) {
    expectImage(image, 'image');
    const coords = gridCoords(image.shape[2], image.shape[1], tile_width, tile_height, overlap);
    return [coords.map(([x0, y0, x1, y1]) => cropSpatial(image, y0, y1, x0, x1, 'NHWC'))];
  },
});

/** torch.linspace(0, 1, n) in float32. */
function linspace01(n: number): Float32Array {
  const out = new Float32Array(n);
  if (n === 1) return out;
  const step = Math.fround(1 / (n - 1));
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? Math.fround(step * i) : Math.fround(1 - Math.fround(step * (n - i - 1)));
  return out;
}

export const ImageMergeTileList = defineNode({
  name: 'ImageMergeTileList',
  displayName: 'Merge List of Tiles to Image',
  category: 'image/batch',
  searchAliases: ['split image', 'tile image', 'slice image'],
  inputIsList: true,
  inputs: {
    required: {
      image_list: { type: 'IMAGE' },
      final_width: { type: 'INT', default: 1024, min: 64, max: 32768 },
      final_height: { type: 'INT', default: 1024, min: 64, max: 32768 },
      overlap: { type: 'INT', default: 128, min: 0, max: 4096 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image_list, final_width, final_height, overlap }) {
    const W = final_width[0];
    const H = final_height[0];
    const ov = overlap[0];
    if (image_list.length === 0) throw new Error('ImageMergeTileList: image_list is empty');
    const first = image_list[0];
    expectImage(first, 'image_list[0]');
    const [b, th, tw, c] = first.shape;
    const coords = gridCoords(W, H, tw, th, ov);
    // Weights: sin(π·t) along each axis (t = linspace(0, 1)), at least 1e-5, their outer product; flat without overlap.
    const wy = Float32Array.from(linspace01(th), (t) => (ov > 0 ? Math.max(1e-5, Math.fround(Math.sin(Math.fround(Math.PI * t)))) : 1));
    const wx = Float32Array.from(linspace01(tw), (t) => (ov > 0 ? Math.max(1e-5, Math.fround(Math.sin(Math.fround(Math.PI * t)))) : 1));
    const canvas = new Float32Array(b * H * W * c);
    const weights = new Float32Array(b * H * W);
    coords.forEach(([x0, y0, x1, y1], i) => {
      if (i >= image_list.length) return;
      const tile = image_list[i];
      const [tb, tth, ttw, tc] = tile.shape;
      if (tb !== b || tc !== c)
        throw new Error(`ImageMergeTileList: tile ${i} is ${describeShape(tile.shape)}, the first ${describeShape(first.shape)}`);
      const rh = Math.min(y1 - y0, tth);
      const rw = Math.min(x1 - x0, ttw);
      for (let n = 0; n < b; n++)
        for (let y = 0; y < rh; y++)
          for (let x = 0; x < rw; x++) {
            const m = Math.fround(wy[y] * wx[x]);
            const p = (n * H + y0 + y) * W + x0 + x;
            weights[p] += m;
            for (let k = 0; k < c; k++) canvas[p * c + k] += tile.data[((n * tth + y) * ttw + x) * tc + k] * m;
          }
    });
    for (let p = 0; p < weights.length; p++) {
      const w = weights[p] === 0 ? 1 : weights[p];
      for (let k = 0; k < c; k++) canvas[p * c + k] /= w;
    }
    return [{ shape: [b, H, W, c], data: canvas }];
  },
});

export const nodes = [PrimitiveBoundingBox, ImageCropV2, SplitImageToTileList, ImageMergeTileList];
