import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCheckpoint } from '../../engine/models/detect.ts';
import { makeTinyCheckpoint, tinyConfig } from '../../engine/models/make-model.ts';
import { SafetensorsFile } from '../../engine/models/safetensors.ts';
import { ClipTokenizer, loadClipTokenizer } from '../../engine/text/clip-tokenizer.ts';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-mk-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

describe('generated tiny SD1 checkpoint', () => {
  it('is deterministic for a seed, different for another, and detected as the tiny SD1 architecture', async () => {
    const a = path.join(dir, 'a.safetensors');
    const b = path.join(dir, 'b.safetensors');
    const c = path.join(dir, 'c.safetensors');
    await makeTinyCheckpoint(a, { seed: 1 });
    await makeTinyCheckpoint(b, { seed: 1 });
    await makeTinyCheckpoint(c, { seed: 2 });
    expect(sha(a)).toBe(sha(b));
    expect(sha(a)).not.toBe(sha(c));
    const f = SafetensorsFile.open(a);
    const tok = loadClipTokenizer({ modelPath: a });
    expect(detectCheckpoint(f)).toEqual(tinyConfig(tok.eos + 1));
    // Weights are finite with the intended scales: conv weights ~ N(0, 1/fan_in), norms 1, biases 0.
    const w = f.get('model.diffusion_model.input_blocks.1.0.in_layers.2.weight');
    const fanIn = 32 * 9;
    const std = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
    expect(std).toBeGreaterThan(0.8 / Math.sqrt(fanIn));
    expect(std).toBeLessThan(1.2 / Math.sqrt(fanIn));
    expect([...f.get('model.diffusion_model.out.0.weight')].every((x) => x === 1)).toBe(true);
    expect([...f.get('model.diffusion_model.out.2.bias')].every((x) => x === 0)).toBe(true);
    expect(fs.statSync(a).size).toBeLessThan(64 * 1024 * 1024);
    f.close();
  });

  it('ships a valid CLIP BPE tokenizer of its own', () => {
    const tok = ClipTokenizer.fromFiles(path.join(dir, 'a.tokenizer/vocab.json'), path.join(dir, 'a.tokenizer/merges.txt'));
    const ids = tok.encode('a watercolor painting of a lighthouse, 2024!');
    expect(ids.length).toBeGreaterThan(5);
    expect(ids.every((i) => i < tok.bos)).toBe(true);
    // Words from the training list merge to a single symbol.
    expect(tok.encode('lighthouse')).toHaveLength(1);
    expect(tok.tokenizeWithWeights('a cat')[0]).toHaveLength(77);
  });
});
