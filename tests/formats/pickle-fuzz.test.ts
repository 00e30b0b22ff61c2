import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { TorchFile, TorchFileError } from '../../engine/formats/pickle/torch-file.ts';
import { f32Storage, PFloat, POrdered, PTensor, storedZip, torchSaveLegacy, torchSaveZip, type PVal } from './torch-writer.ts';

/**
 * Random damage to valid torch files, and random opcode soup: the reader may accept or refuse, but
 * only ever with a TorchFileError (never a RangeError, a hang or a crash), and in bounded time.
 * Runs are few and inputs small so the whole file takes a few seconds.
 */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-pickle-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = path.join(dir, 'fuzz.ckpt');

function sample(): PVal {
  const s = f32Storage('0', [1, 2, 3, 4, 5, 6]);
  return {
    state_dict: new POrdered(
      new Map<PVal, PVal>([
        ['a', new PTensor(s, [2, 3])],
        ['b', new PTensor(s, [3, 2], [1, 3])],
      ]),
    ),
    step: 5,
    lr: new PFloat(0.5),
    tags: ['x', 'y'],
  };
}

function tryOpen(bytes: Uint8Array): void {
  fs.writeFileSync(file, bytes);
  try {
    const t = TorchFile.open(file);
    // Whatever opened must also read: every tensor is inside its storage.
    for (const n of t.names()) t.get(n);
    t.close();
  } catch (e) {
    if (!(e instanceof TorchFileError)) throw e;
  }
}

const OPCODES = [
  0x28, 0x29, 0x2e, 0x30, 0x31, 0x32, 0x4a, 0x4b, 0x4d, 0x4e, 0x51, 0x52, 0x58, 0x5d, 0x61, 0x62, 0x63, 0x65, 0x68, 0x6a, 0x71, 0x72, 0x73,
  0x74, 0x75, 0x7d, 0x80, 0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x8e, 0x8f, 0x90, 0x91, 0x93, 0x94, 0x95,
];

describe('pickle reader fuzz', () => {
  for (const [format, write] of [
    ['zip', torchSaveZip],
    ['legacy', torchSaveLegacy],
  ] as const) {
    it(`${format}: flipped, inserted and deleted bytes only ever give a TorchFileError`, () => {
      const base = write(sample());
      fc.assert(
        fc.property(
          fc.array(
            fc.record({
              at: fc.nat({ max: base.length - 1 }),
              kind: fc.constantFrom('set', 'insert', 'delete'),
              byte: fc.integer({ min: 0, max: 255 }),
            }),
            { minLength: 1, maxLength: 6 },
          ),
          (edits) => {
            const b = [...base];
            for (const e of edits) {
              const at = Math.min(e.at, b.length - 1);
              if (e.kind === 'set') b[at] = e.byte;
              else if (e.kind === 'insert') b.splice(at, 0, e.byte);
              else b.splice(at, 1);
            }
            tryOpen(Uint8Array.from(b));
          },
        ),
        { numRuns: 250, seed: 17 },
      );
    });
  }

  it('opcode soup (with small arguments) in data.pkl only ever gives a TorchFileError', () => {
    const t0 = Date.now();
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constantFrom(...OPCODES), fc.integer({ min: 0, max: 255 })), { maxLength: 200 }), (body) => {
        tryOpen(storedZip([['archive/data.pkl', Uint8Array.from([0x80, 2, ...body, 0x2e])]]));
      }),
      { numRuns: 400, seed: 5 },
    );
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});
