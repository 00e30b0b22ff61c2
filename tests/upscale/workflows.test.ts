import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_COMPACT, DEMO_ESRGAN } from '../../engine/models/upscale/generate.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { makeDemoBase, ROOT, runWorkflowCli } from '../workflows/run-cli.ts';

/**
 * The upscale example workflows run through the real CLI on the demo model and demo upscalers (as
 * `weft make-model tiny` writes them), sampler steps cut to 3, each saving an image of the size the
 * upscale implies; and A1111's ESRGAN/RealESRGAN folders reach `upscale_models` through the shipped
 * extra_model_paths.yaml's a1111 section.
 */
let tmp: string;

beforeAll(async () => {
  tmp = await makeDemoBase('weft-upscale-examples-');
}, 120_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const run = (file: string, sets: string[]): Promise<[number, number]> => runWorkflowCli(tmp, file, sets);

describe('upscale example workflows on the demo models', () => {
  it('make-model tiny names: the demo ESRGAN ×4 and compact ×4 exist where the workflows look', () => {
    expect(fs.existsSync(path.join(tmp, 'models', DEMO_ESRGAN))).toBe(true);
    expect(fs.existsSync(path.join(tmp, 'models', DEMO_COMPACT))).toBe(true);
  });

  it('upscale-esrgan.json: the 128² example → 512² through ImageUpscaleWithModel', async () => {
    expect(await run('upscale-esrgan.json', [])).toEqual([512, 512]);
  }, 300_000);

  it('hires-fix-esrgan.json: txt2img, ×4 model upscale scaled down to 1.5×, second pass (sizes cut to 128² → 192²)', async () => {
    const sets = ['3.steps=3', '16.steps=3', '5.width=128', '5.height=128', '13.width=192', '13.height=192'];
    expect(await run('hires-fix-esrgan.json', sets)).toEqual([192, 192]);
  }, 300_000);

  it('ultimate-sd-upscale.json: the 128² example → 256² (Chess redraw, Half Tile seam fix)', async () => {
    expect(await run('ultimate-sd-upscale.json', ['3.steps=2'])).toEqual([256, 256]);
  }, 300_000);

  it("the shipped extra_model_paths.yaml's a1111 section maps models/ESRGAN and models/RealESRGAN into upscale_models", () => {
    const a1111 = path.join(tmp, 'webui');
    for (const d of ['models/ESRGAN', 'models/RealESRGAN']) fs.mkdirSync(path.join(a1111, d), { recursive: true });
    fs.copyFileSync(path.join(tmp, 'models', DEMO_ESRGAN), path.join(a1111, 'models/ESRGAN/4x_tiny.safetensors'));
    fs.copyFileSync(path.join(tmp, 'models', DEMO_COMPACT), path.join(a1111, 'models/RealESRGAN/realesr-tiny.safetensors'));
    // The example with its a1111 section un-commented and pointed at the folder above.
    const yaml = fs
      .readFileSync(path.join(ROOT, 'extra_model_paths.yaml'), 'utf8')
      .split('\n')
      .map((l) => (/^#a1111:|^# {4}(?!#)/.test(l) && !/comfyui|other_ui/.test(l) ? l.slice(1) : l))
      .join('\n');
    const section = yaml.slice(yaml.indexOf('a1111:'), yaml.indexOf('# An existing ComfyUI install.'));
    fs.writeFileSync(path.join(tmp, 'extra.yaml'), section.replace('path/to/stable-diffusion-webui/', a1111));
    const paths = new FolderPaths({ baseDir: tmp });
    paths.loadExtraModelPaths(path.join(tmp, 'extra.yaml'));
    expect(paths.listFiles('upscale_models')).toEqual(expect.arrayContaining(['4x_tiny.safetensors', 'realesr-tiny.safetensors']));
  });
});
