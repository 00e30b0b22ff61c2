import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallWrapper, ComfyApi, PromptBuilder } from '@saintno/comfyui-sdk';
import { Executor } from '../../engine/executor/executor.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { startServer, type RunningServer } from '../../server/server.ts';

let base: string;
let server: RunningServer;

beforeAll(async () => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-sdk-'));
  const paths = new FolderPaths({ baseDir: base });
  fs.mkdirSync(paths.inputDir, { recursive: true });
  await sharp(Buffer.from([0, 64, 128, 255, 255, 255]), { raw: { width: 2, height: 1, channels: 3 } })
    .png()
    .toFile(path.join(paths.inputDir, 'sdk.png'));
  const registry = createBuiltinRegistry();
  server = await startServer({
    port: 0,
    paths,
    registry,
    executor: new Executor(registry, { paths }),
    log: silentLogger,
    stateDir: path.join(base, 'state'),
  });
});
afterAll(async () => {
  await server.close();
  fs.rmSync(base, { recursive: true, force: true });
});

describe('an unmodified ComfyUI client from npm (@saintno/comfyui-sdk)', () => {
  it('queues a prompt, follows it to the end and downloads the result', async () => {
    const api = new ComfyApi(server.url, 'weft-sdk-test');
    await api.init().waitForReady();
    const workflow = {
      '1': { class_type: 'LoadImage', inputs: { image: 'sdk.png' }, _meta: { title: 'Load Image' } },
      '2': { class_type: 'ImageInvert', inputs: { image: ['1', 0] }, _meta: { title: 'Invert' } },
      '3': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'ComfyUI' }, _meta: { title: 'Save' } },
    };
    const builder = new PromptBuilder(workflow, ['prefix'], ['images'])
      .setInputNode('prefix', '3.inputs.filename_prefix')
      .setOutputNode('images', '3')
      .input('prefix', 'from-sdk');
    const result = await new Promise<{ images?: { images: { filename: string; subfolder: string; type: string }[] } }>(
      (resolve, reject) => {
        void new CallWrapper(api, builder)
          .onFinished((data) => resolve(data as never))
          .onFailed((err) => reject(err))
          .run();
      },
    );
    const img = result.images!.images[0];
    expect(img.filename).toBe('from-sdk_00001_.png');
    const res = await fetch(api.getPathImage(img as never));
    expect(res.status).toBe(200);
    const { data } = await sharp(Buffer.from(await res.arrayBuffer()))
      .raw()
      .toBuffer({ resolveWithObject: true });
    // Inverted and saved as ComfyUI does (truncation): 255·(1 − 128/255) in float32 is 126.99… → 126.
    expect([...data]).toEqual([255, 191, 126, 0, 0, 0]);
    api.destroy();
  });
});
