import zlib from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { PngFormatError, addPngTextChunks, readPngTextChunks, readPngTextChunksAsync } from '../../engine/image/png-text.ts';

async function tinyPng(): Promise<Buffer> {
  return sharp(Buffer.from([255, 0, 0, 0, 255, 0]), { raw: { width: 2, height: 1, channels: 3 } })
    .png()
    .toBuffer();
}

/** A chunk built independently of the module under test (CRC from zlib). */
function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td));
  return Buffer.concat([len, td, crc]);
}

function insertBeforeIend(png: Buffer, extra: Buffer): Buffer {
  return Buffer.concat([png.subarray(0, png.length - 12), extra, png.subarray(png.length - 12)]);
}

describe('PNG text chunks', () => {
  it('round-trips Latin-1 as tEXt and other text as iTXt, before IDAT, in order', async () => {
    const png = await tinyPng();
    const workflow = JSON.stringify({ nodes: [{ type: 'CLIPTextEncode', widgets_values: ['一只猫 🐱'] }] });
    const out = addPngTextChunks(png, [
      ['prompt', '{"1": {"class_type": "X"}}'],
      ['workflow', workflow],
    ]);
    expect(readPngTextChunks(out)).toEqual({ prompt: '{"1": {"class_type": "X"}}', workflow });
    const s = out.toString('latin1');
    expect(s.indexOf('tEXtprompt')).toBeGreaterThan(0);
    expect(s.indexOf('iTXtworkflow')).toBeGreaterThan(s.indexOf('tEXtprompt'));
    expect(s.indexOf('IDAT')).toBeGreaterThan(s.indexOf('iTXtworkflow'));
    // sharp (libpng) still decodes the result.
    expect((await sharp(out).metadata()).width).toBe(2);
  });

  it('reads zTXt and compressed iTXt written independently, and ComfyUI comf chunks', async () => {
    const png = await tinyPng();
    const z = chunk('zTXt', Buffer.concat([Buffer.from('prompt\0\0', 'latin1'), zlib.deflateSync(Buffer.from('{"a": 1}', 'latin1'))]));
    const i = chunk(
      'iTXt',
      Buffer.concat([Buffer.from('workflow\0\x01\0en\0\0', 'latin1'), zlib.deflateSync(Buffer.from('ünïcode ✓', 'utf8'))]),
    );
    const c = chunk('comf', Buffer.from('extra\0{"b":2}', 'utf8'));
    const file = insertBeforeIend(png, Buffer.concat([z, i, c]));
    const expected = { prompt: '{"a": 1}', workflow: 'ünïcode ✓', extra: '{"b":2}' };
    expect(readPngTextChunks(file)).toEqual(expected);
    expect(await readPngTextChunksAsync(file)).toEqual(expected);
  });

  it('names the byte offset of a corrupted chunk and refuses non-PNG data', async () => {
    const out = addPngTextChunks(await tinyPng(), [['prompt', 'abc']]);
    const at = out.indexOf('tEXtprompt', 0, 'latin1') - 4;
    const bad = Buffer.from(out);
    bad[at + 12] ^= 0xff;
    expect(() => readPngTextChunks(bad)).toThrow(PngFormatError);
    expect(() => readPngTextChunks(bad)).toThrow(`chunk tEXt has a bad CRC (at byte offset ${at})`);
    expect(() => readPngTextChunks(Buffer.from('GIF89a....'))).toThrow('not a PNG file');
    expect(() => readPngTextChunks(out.subarray(0, 40))).toThrow(/past the end of the file|truncated/);
  });
});
