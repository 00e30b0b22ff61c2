import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPngTextChunks } from '../../engine/image/png-text.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
let tmp: string;

function weft(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'cli/weft.js'), ...args], {
    cwd: tmp,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cli-'));
  fs.mkdirSync(path.join(tmp, 'input'));
  fs.copyFileSync(path.join(ROOT, 'input/example.png'), path.join(tmp, 'input/example.png'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('weft run on the shipped model-free workflow', () => {
  it('writes an inverted, 2× scaled PNG that carries its workflow, and never overwrites', async () => {
    const r = weft(['run', path.join(ROOT, 'workflows/invert-image.json'), '--json', '--disable-custom-nodes']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = lastJson(r.stdout);
    expect(out.status).toBe('success');
    expect(out.executed).toEqual(['1', '2', '3', '4']);
    const images = (out.outputs as Record<string, { images: { filename: string; subfolder: string; type: string }[] }>)['4'].images;
    expect(images).toEqual([{ filename: 'weft-invert_00001_.png', subfolder: '', type: 'output' }]);

    const file = path.join(tmp, 'output', 'weft-invert_00001_.png');
    const src = await sharp(path.join(tmp, 'input/example.png')).raw().toBuffer({ resolveWithObject: true });
    const res = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    expect([res.info.width, res.info.height]).toEqual([src.info.width * 2, src.info.height * 2]);
    // Bilinear 2× keeps a flat region's value: a pixel deep inside the blue disc (blue 230 → 25 inverted).
    const px = (64 * 2 * res.info.width + 64 * 2) * res.info.channels;
    expect(res.data[px + 2]).toBeGreaterThanOrEqual(255 - 231);
    expect(res.data[px + 2]).toBeLessThanOrEqual(255 - 229);

    const chunks = readPngTextChunks(fs.readFileSync(file));
    const workflow = JSON.parse(chunks.workflow) as { nodes: { type: string }[] };
    expect(workflow.nodes.map((n) => n.type).sort()).toEqual(['ImageInvert', 'ImageScaleBy', 'LoadImage', 'SaveImage']);
    const prompt = JSON.parse(chunks.prompt) as Record<string, { class_type: string }>;
    expect(prompt['4'].class_type).toBe('SaveImage');

    // The written PNG opens in Weft again and runs; the second save takes the next counter.
    const again = weft(['run', file, '--json', '--disable-custom-nodes', '--set', '4.filename_prefix=again']);
    expect(again.code).toBe(0);
    const again2 = weft(['run', path.join(ROOT, 'workflows/invert-image.json'), '--json', '--disable-custom-nodes']);
    expect(again2.code).toBe(0);
    expect(fs.readdirSync(path.join(tmp, 'output')).sort()).toEqual([
      'again_00001_.png',
      'weft-invert_00001_.png',
      'weft-invert_00002_.png',
    ]);
  });

  it('fails a bad workflow with per-node messages and a non-zero exit', () => {
    const bad = path.join(tmp, 'bad.json');
    fs.writeFileSync(
      bad,
      JSON.stringify({
        '1': { class_type: 'LoadImage', inputs: { image: 'missing.png' } },
        '2': { class_type: 'ImageScaleBy', inputs: { image: ['1', 0], upscale_method: 'bogus', scale_by: 99 } },
        '3': { class_type: 'SaveImage', inputs: { images: ['2', 0] } },
      }),
    );
    const r = weft(['run', bad, '--disable-custom-nodes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/node 2 \(ImageScaleBy\).*upscale_method/);
    expect(r.stderr).toMatch(/node 2 \(ImageScaleBy\).*scale_by/);
    expect(r.stderr).toMatch(/node 1 \(LoadImage\).*image/);
    const v = weft(['validate', bad, '--disable-custom-nodes']);
    expect(v.code).toBe(1);
    const errors = JSON.parse(v.stdout) as { node_errors: Record<string, { errors: { type: string }[] }> };
    expect(errors.node_errors['2'].errors.map((e) => e.type).sort()).toEqual(['value_bigger_than_max', 'value_not_in_list']);
  });

  it('lists every missing node class with its node ids on convert', () => {
    const wf = JSON.parse(fs.readFileSync(path.join(ROOT, 'workflows/invert-image.json'), 'utf8')) as {
      nodes: { id: number; type: string }[];
    };
    wf.nodes[1].type = 'FancyUpscaler';
    wf.nodes[2].type = 'FancyUpscaler';
    const f = path.join(tmp, 'missing.json');
    fs.writeFileSync(f, JSON.stringify(wf));
    const r = weft(['convert', f, '--disable-custom-nodes']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('missing node class FancyUpscaler (node 2, 3)');
    const run = weft(['run', f, '--disable-custom-nodes']);
    expect(run.code).toBe(64);
    expect(run.stderr).toMatch(/FancyUpscaler \(used by node 2, 3\)/);
  });
});

describe('weft serve', () => {
  it('starts the server on loopback and answers ComfyUI routes until stopped', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [path.join(ROOT, 'cli/weft.js'), 'serve', '--port', '0', '--disable-custom-nodes'], { cwd: tmp });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        const onData = (d: Buffer) => {
          out += d.toString();
          const m = /serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
          if (m) resolve(m[1]);
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
        setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 30_000);
      });
      const info = (await (await fetch(`${url}/api/object_info/SaveImage`)).json()) as Record<string, { output_node: boolean }>;
      expect(info.SaveImage.output_node).toBe(true);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
    }
  });
});
