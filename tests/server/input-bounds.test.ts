import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor/executor.ts';
import { safeJoin } from '../../engine/core/safe-path.ts';
import { silentLogger } from '../../engine/core/log.ts';
import { DEFAULT_MAX_IMAGE_PIXELS, decodeImageFile } from '../../engine/image/io.ts';
import { MAX_PNG_TEXT_TOTAL, readPngTextChunks, readPngTextChunksAsync } from '../../engine/image/png-text.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { MAX_PROMPT_TOKENS, PromptTooLongError, loadClipTokenizer } from '../../engine/text/clip-tokenizer.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { CLIPTextEncodeA1111 } from '../../nodes/conditioning/clip-text-a1111.ts';
import type { ClipHandle } from '../../engine/models/handles.ts';
import type { NodeContext } from '../../engine/registry/context.ts';
import { startServer } from '../../server/server.ts';

/** Bounds on what a request can make the engine read: prompt text, PNG text, image pixels, links. */
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-bounds-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** A small PNG carrying `n` zTXt chunks that each inflate to `bytes` of text. */
async function textBomb(n: number, bytes: number): Promise<Buffer> {
  const png = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 1 } } })
    .png()
    .toBuffer();
  const idat = png.indexOf('IDAT') - 4;
  const body = zlib.deflateSync(Buffer.alloc(bytes, 0x20), { level: 9 });
  const chunks = Array.from({ length: n }, (_, i) => chunk('zTXt', Buffer.concat([Buffer.from(`k${i}\0\0`, 'latin1'), body])));
  return Buffer.concat([png.subarray(0, idat), ...chunks, png.subarray(idat)]);
}

describe('prompt text', () => {
  const tok = loadClipTokenizer({ bundled: true });

  it('refuses a megabyte of CJK or emoji and 10 MB of English at once, without tokenizing them', () => {
    for (const text of [
      '漢字かな交じり😀'.repeat(100_000),
      'a photo of a cat, '.repeat(600_000),
      '😀🎉'.repeat(40_000),
      '日本'.repeat(60_000),
    ]) {
      const before = process.memoryUsage().rss;
      expect(() => tok.tokenizeWithWeights(text)).toThrow(PromptTooLongError);
      expect(process.memoryUsage().rss - before).toBeLessThan(500 * 1024 * 1024);
    }
  });

  it('CLIPTextEncodeA1111 refuses a huge text before parsing its schedule or touching the CLIP', async () => {
    // Symbols, `then` and `toJSON` stay answerable so a failure here prints instead of recursing.
    const untouchable = <T extends object>(what: string): T =>
      new Proxy({} as T, {
        get: (_t, key) => {
          if (typeof key === 'symbol' || key === 'then' || key === 'toJSON') return undefined;
          throw new Error(`the ${what} was used (.${key})`);
        },
      });
    const clip = untouchable<ClipHandle>('CLIP');
    const ctx = untouchable<NodeContext>('node context');
    const text = '[漢字|かな|😀] '.repeat(100_000);
    await expect(CLIPTextEncodeA1111.run({ text, clip, steps: 10_000, bare_embedding_names: true }, ctx)).rejects.toThrow(
      PromptTooLongError,
    );
  });

  it('encodes up to 64 chunks and names the limit beyond', () => {
    expect(tok.tokenizeWithWeights('cat '.repeat(MAX_PROMPT_TOKENS)).length).toBe(64);
    expect(() => tok.tokenizeWithWeights('cat '.repeat(MAX_PROMPT_TOKENS + 1))).toThrow(/at most 4800 tokens \(64 chunks of 75\)/);
  });
});

describe('PNG text and image pixels', () => {
  it('bounds the total inflated text of all chunks together, sync and async', async () => {
    const bomb = await textBomb(3, 12 * 1024 * 1024);
    expect(bomb.length).toBeLessThan(200_000);
    const before = process.memoryUsage().rss;
    expect(() => readPngTextChunks(bomb)).toThrow(/inflate beyond|more than/);
    await expect(readPngTextChunksAsync(bomb)).rejects.toThrow(/inflate beyond|more than/);
    // 36 MiB of text were compressed in it; no more than the 16 MiB bound (and copies) is held.
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
    expect(MAX_PNG_TEXT_TOTAL).toBe(16 * 1024 * 1024);
    // Under the bound, every chunk is read.
    expect(Object.keys(readPngTextChunks(await textBomb(3, 1024)))).toEqual(['k0', 'k1', 'k2']);
  });

  it('answers /upload/mask with a small file when the original image carries a text bomb', async () => {
    const paths = new FolderPaths({ baseDir: path.join(dir, 'mask') });
    fs.mkdirSync(paths.inputDir, { recursive: true });
    fs.writeFileSync(path.join(paths.inputDir, 'orig.png'), await textBomb(3, 12 * 1024 * 1024));
    const registry = createBuiltinRegistry();
    const s = await startServer({
      port: 0,
      paths,
      registry,
      executor: new Executor(registry, { paths }),
      log: silentLogger,
      stateDir: path.join(dir, 'mask', 'state'),
    });
    try {
      const form = new FormData();
      form.append(
        'image',
        new Blob([
          new Uint8Array(
            await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0.5 } } })
              .png()
              .toBuffer(),
          ),
        ]),
        'm.png',
      );
      form.append('original_ref', JSON.stringify({ filename: 'orig.png', type: 'input' }));
      const r = await fetch(`${s.url}/upload/mask`, { method: 'POST', body: form });
      expect(r.status).toBe(200);
      const { name } = (await r.json()) as { name: string };
      expect(fs.statSync(path.join(paths.inputDir, name)).size).toBeLessThan(100_000);
    } finally {
      await s.close();
    }
  });

  it('decodes at most 64 Mpx by default', async () => {
    expect(DEFAULT_MAX_IMAGE_PIXELS).toBe(8192 * 8192);
    // A PNG whose header claims 9000 × 9000 (its pixels are never decoded).
    const wide = await sharp({ create: { width: 9000, height: 9000, channels: 3, background: 'black' } })
      .png({ compressionLevel: 9 })
      .toBuffer();
    await expect(decodeImageFile(wide, { name: 'wide.png' })).rejects.toThrow(/pixel|exceeds/);
  }, 60_000);
});

describe('symbolic links', () => {
  it('follows links in model and input folders, and refuses them where requests write', () => {
    const paths = new FolderPaths({ baseDir: path.join(dir, 'links') });
    const elsewhere = path.join(dir, 'other-disk');
    fs.mkdirSync(elsewhere, { recursive: true });
    fs.writeFileSync(path.join(elsewhere, 'model.safetensors'), 'x');
    fs.writeFileSync(path.join(elsewhere, 'photo.png'), 'x');
    const ckpts = paths.searchPaths('checkpoints')[0];
    fs.mkdirSync(ckpts, { recursive: true });
    fs.symlinkSync(path.join(elsewhere, 'model.safetensors'), path.join(ckpts, 'linked.safetensors'));
    fs.symlinkSync(elsewhere, path.join(ckpts, 'linked-dir'));
    expect(paths.listFiles('checkpoints')).toEqual(['linked-dir/model.safetensors', 'linked.safetensors']);
    expect(paths.find('checkpoints', 'linked.safetensors')).toBe(path.join(ckpts, 'linked.safetensors'));
    expect(paths.find('checkpoints', 'linked-dir/model.safetensors')).toBeDefined();
    expect(() => paths.find('checkpoints', '../x.safetensors')).toThrow(/'\.\.'/);
    fs.mkdirSync(paths.inputDir, { recursive: true });
    fs.symlinkSync(path.join(elsewhere, 'photo.png'), path.join(paths.inputDir, 'photo.png'));
    expect(paths.annotatedPath('photo.png')).toBe(path.join(paths.inputDir, 'photo.png'));
    fs.mkdirSync(paths.outputDir, { recursive: true });
    fs.symlinkSync(elsewhere, path.join(paths.outputDir, 'out-link'));
    expect(() => paths.annotatedPath('out-link/photo.png [output]')).toThrow(/symbolic link/);
    expect(() => safeJoin(paths.userDir, '../x')).toThrow();
  });
});
