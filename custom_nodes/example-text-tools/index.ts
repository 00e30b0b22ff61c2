/**
 * A small example package: copy this folder to start your own. Weft loads every folder of
 * custom_nodes/ that has an index.ts/index.js at start; a package that fails is skipped and reported.
 */
import { defineNode } from 'weft/api';

/** Joins two strings; handy for building prompts from parts. */
export const TextConcat = defineNode({
  name: 'WeftExample_TextConcat',
  displayName: 'Text Concatenate (example)',
  category: 'utils/text',
  description: 'Joins text_a and text_b with a separator.',
  inputs: {
    required: {
      text_a: { type: 'STRING', multiline: true, default: '' },
      text_b: { type: 'STRING', multiline: true, default: '' },
      separator: { type: 'STRING', default: ', ' },
    },
  },
  outputs: [{ type: 'STRING', name: 'STRING' }],
  run({ text_a, text_b, separator }) {
    if (!text_a) return [text_b];
    if (!text_b) return [text_a];
    return [`${text_a}${separator}${text_b}`];
  },
});

/** Blends an image towards its luminance (Rec. 601 weights, as most image tools use). */
export const ImageDesaturate = defineNode({
  name: 'WeftExample_ImageDesaturate',
  displayName: 'Desaturate Image (example)',
  category: 'image/color',
  inputs: {
    required: {
      image: { type: 'IMAGE' },
      strength: { type: 'FLOAT', default: 1, min: 0, max: 1, step: 0.01 },
    },
  },
  outputs: [{ type: 'IMAGE', name: 'IMAGE' }],
  run({ image, strength }, ctx) {
    const [b, h, w, c] = image.shape;
    const out = new Float32Array(image.data.length);
    for (let i = 0; i < b * h * w; i++) {
      if (i % 65536 === 0) ctx.checkInterrupted();
      const o = i * c;
      const y = 0.299 * image.data[o] + 0.587 * image.data[o + 1] + 0.114 * image.data[o + 2];
      for (let k = 0; k < c; k++) {
        out[o + k] = k < 3 ? image.data[o + k] + (y - image.data[o + k]) * strength : image.data[o + k];
      }
    }
    return [{ shape: image.shape, data: out }];
  },
});

export const nodes = [TextConcat, ImageDesaturate];
