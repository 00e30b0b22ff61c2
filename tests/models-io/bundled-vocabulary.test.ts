import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsFile, writeSafetensors } from '../../engine/formats/safetensors.ts';
import { ModelManager } from '../../engine/models/manager.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { bundledVocabularyDir } from '../../engine/text/clip-tokenizer.ts';
import { lcg, makeTiny, type Tiny } from '../models-onnx/tiny.ts';

const quiet = { info: () => {}, warn: () => {}, error: () => {} };
const EMBED = 'cond_stage_model.transformer.text_model.embeddings.token_embedding.weight';
const vocab = JSON.parse(fs.readFileSync(path.join(bundledVocabularyDir('clip-vit-large-patch14'), 'vocab.json'), 'utf8')) as Record<
  string,
  number
>;

let tiny: Tiny;
let base: string;
let realVocabFile: string;

beforeAll(async () => {
  tiny = await makeTiny(3);
  // The tiny architecture with a CLIP-L-sized token embedding (49408 rows) and no tokenizer files:
  // a real SD1 checkpoint as a user drops it into models/checkpoints.
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bundled-'));
  const sf = SafetensorsFile.open(tiny.file);
  const width = sf.shape(EMBED)[1];
  const tensors = sf
    .names()
    .map((name) =>
      name === EMBED
        ? { name, dtype: 'F32' as const, shape: [49408, width], data: lcg(49408 * width, 5, 0.02) }
        : { name, dtype: sf.info(name).dtype, shape: [...sf.shape(name)], data: sf.get(name) },
    );
  realVocabFile = path.join(base, 'models/checkpoints/real-vocab.safetensors');
  fs.mkdirSync(path.dirname(realVocabFile), { recursive: true });
  await writeSafetensors(realVocabFile, tensors);
});

afterAll(() => {
  fs.rmSync(base, { recursive: true, force: true });
  fs.rmSync(tiny.dir, { recursive: true, force: true });
});

describe('the CLIP ViT-L/14 vocabulary carried by the project', () => {
  it('tokenizes an SD1 checkpoint that has no tokenizer files beside it or in models/tokenizers', async () => {
    const m = new ModelManager({
      cacheDir: path.join(base, 'cache'),
      device: 'cpu',
      log: quiet,
      paths: new FolderPaths({ baseDir: base }),
    });
    const parts = await m.loadCheckpoint(realVocabFile);
    expect(parts.clip.tokenizer.vocabSize).toBe(49408);
    expect(parts.clip.tokenizer.tokenize('a photo of a cat')).toEqual(
      ['a</w>', 'photo</w>', 'of</w>', 'a</w>', 'cat</w>'].map((s) => vocab[s]),
    );
  });

  it("leaves the demo model's own small vocabulary first", async () => {
    const m = new ModelManager({
      cacheDir: path.join(base, 'cache2'),
      device: 'cpu',
      log: quiet,
      paths: new FolderPaths({ baseDir: base }),
    });
    const parts = await m.loadCheckpoint(tiny.file);
    expect(parts.clip.tokenizer.vocabSize).toBe(tiny.cfg.clip.vocabSize);
    expect(parts.clip.tokenizer.vocabSize).toBeLessThan(1000);
  });
});
