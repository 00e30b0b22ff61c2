/**
 * POST /upload/mask as ComfyUI's frontend uses it (server.py `upload_mask`): the mask editor sends a
 * PNG whose alpha is the new alpha, `original_ref` naming the image it was painted on (possibly an
 * annotated `name [input]` or a name inside a subfolder), and stores the result in input/clipspace.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../engine/core/log.ts';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { startServer, type RunningServer } from '../../server/server.ts';

let dir: string;
let paths: FolderPaths;
let s: RunningServer;
const W = 5;
const H = 3;
// An opaque original with distinct colours per pixel, so a merge that moves or alters RGB shows.
const rgb = Buffer.from(Array.from({ length: W * H * 3 }, (_, i) => (i * 37 + 11) % 256));
// The mask: alpha 0 on the middle column (painted), 255 elsewhere; its RGB must not reach the result.
const maskRgba = Buffer.from(Array.from({ length: W * H }, (_, p) => [9, 9, 9, p % W === 2 ? 0 : 255]).flat());

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-upload-mask-'));
  paths = new FolderPaths({ baseDir: dir });
  fs.mkdirSync(path.join(paths.inputDir, 'clipspace'), { recursive: true });
  const png = await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toBuffer();
  fs.writeFileSync(path.join(paths.inputDir, 'orig.png'), png);
  fs.writeFileSync(path.join(paths.inputDir, 'clipspace', 'earlier.png'), png);
  const registry = createBuiltinRegistry();
  s = await startServer({
    port: 0,
    paths,
    registry,
    executor: new Executor(registry, { paths }),
    log: silentLogger,
    stateDir: path.join(dir, 'state'),
  });
});

afterAll(async () => {
  await s?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function postMask(name: string, ref: unknown): Promise<{ status: number; body: Record<string, string> }> {
  const mask = await sharp(maskRgba, { raw: { width: W, height: H, channels: 4 } })
    .png()
    .toBuffer();
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(mask)]), name);
  form.append('original_ref', JSON.stringify(ref));
  form.append('type', 'input');
  form.append('subfolder', 'clipspace');
  const r = await fetch(`${s.url}/upload/mask`, { method: 'POST', body: form });
  return { status: r.status, body: (await r.json()) as Record<string, string> };
}

async function expectMerged(file: string): Promise<void> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height, info.channels]).toEqual([W, H, 4]);
  for (let p = 0; p < W * H; p++) {
    expect([data[p * 4], data[p * 4 + 1], data[p * 4 + 2]]).toEqual([rgb[p * 3], rgb[p * 3 + 1], rgb[p * 3 + 2]]);
    expect(data[p * 4 + 3]).toBe(p % W === 2 ? 0 : 255);
  }
}

describe('POST /upload/mask', () => {
  it("stores the original's RGB with the mask's alpha in input/clipspace, as the editor sends it", async () => {
    const r = await postMask('clipspace-mask-1.png', { filename: 'orig.png', subfolder: '', type: 'input' });
    expect(r).toEqual({ status: 200, body: { name: 'clipspace-mask-1.png', subfolder: 'clipspace', type: 'input' } });
    await expectMerged(path.join(paths.inputDir, 'clipspace', 'clipspace-mask-1.png'));
  });

  it('reads an annotated original name (`name [input]`) from the folder it names, whatever `type` says', async () => {
    const r = await postMask('clipspace-mask-2.png', { filename: 'orig.png [input]', type: 'output' });
    expect(r.status).toBe(200);
    await expectMerged(path.join(paths.inputDir, 'clipspace', r.body.name));
  });

  it('finds an original in a subfolder, given as `subfolder` or inside the name', async () => {
    const a = await postMask('clipspace-mask-3.png', { filename: 'earlier.png', subfolder: 'clipspace', type: 'input' });
    const b = await postMask('clipspace-mask-4.png', { filename: 'clipspace/earlier.png [input]' });
    expect([a.status, b.status]).toEqual([200, 200]);
    await expectMerged(path.join(paths.inputDir, 'clipspace', a.body.name));
    await expectMerged(path.join(paths.inputDir, 'clipspace', b.body.name));
  });

  it('refuses names that leave the folder and says which; a missing original is a 404 naming it', async () => {
    for (const filename of ['../orig.png', '/etc/passwd', 'clipspace/../../orig.png [input]']) {
      const r = await postMask('m.png', { filename, type: 'input' });
      expect(r.status).toBe(400);
      expect(r.body.error).toContain(filename);
    }
    const missing = await postMask('m.png', { filename: 'nope.png', type: 'input' });
    expect(missing.status).toBe(404);
    expect(missing.body.error).toBe("original image 'nope.png' not found");
  });
});
