import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { openWeights, type WeightsFile } from '../../engine/formats/open-weights.ts';
import { TorchFile, TorchFileError } from '../../engine/formats/pickle/torch-file.ts';
import { HypernetworkFileError, readHypernetwork } from '../../engine/models/hypernetwork/index.ts';
import { makeHypernet, writeHypernetPt } from '../hypernetwork/make-hypernet.ts';
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

  for (const [format, write] of [
    ['zip', torchSaveZip],
    ['legacy', torchSaveLegacy],
  ] as const) {
    it(`${format}: a file cut anywhere only ever gives a TorchFileError`, () => {
      const base = write(sample());
      fc.assert(
        fc.property(fc.nat({ max: base.length - 1 }), (cut) => tryOpen(base.subarray(0, cut))),
        { numRuns: 300, seed: 23 },
      );
    });
  }

  it('length, count and memo arguments up to 2^64 in data.pkl fail against the bytes there, without allocating them', () => {
    // Opcodes followed by a little-endian size or index: strings, bytes, longs, frames, memo slots.
    const sized: [number, 1 | 4 | 8][] = [
      [0x58, 4], // BINUNICODE
      [0x42, 4], // BINBYTES
      [0x43, 1], // SHORT_BINBYTES
      [0x54, 4], // BINSTRING
      [0x8d, 8], // BINUNICODE8
      [0x8e, 8], // BINBYTES8
      [0x96, 8], // BYTEARRAY8
      [0x8a, 1], // LONG1
      [0x8b, 4], // LONG4
      [0x95, 8], // FRAME
      [0x6a, 4], // LONG_BINGET
      [0x72, 4], // LONG_BINPUT
      [0x4a, 4], // BININT
    ];
    const arg = fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff, 2 ** 53, 2 ** 64 - 1), fc.nat());
    const op = fc.record({
      at: fc.nat({ max: sized.length - 1 }),
      v: arg,
      tail: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), (ops) => {
        const body: number[] = [];
        for (const { at, v, tail } of ops) {
          const [code, width] = sized[at];
          const le = Buffer.alloc(8);
          le.writeBigUInt64LE(BigInt(Math.min(v, 2 ** 64 - 1)) & 0xffffffffffffffffn);
          body.push(code, ...le.subarray(0, width), ...tail);
        }
        tryOpen(storedZip([['archive/data.pkl', Uint8Array.from([0x80, 2, ...body, 0x2e])]]));
      }),
      { numRuns: 300, seed: 29 },
    );
  });

  it('a damaged hypernetwork file only ever gives a TorchFileError or a HypernetworkFileError', () => {
    const hfile = path.join(dir, 'hn.pt');
    writeHypernetPt(hfile, makeHypernet({ dims: [8], structure: [1, 2, 1], activation: 'relu', layerNorm: true, seed: 2 }), 'legacy');
    const base = fs.readFileSync(hfile);
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat({ max: base.length - 1 }), byte: fc.integer({ min: 0, max: 255 }) }), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.option(fc.nat({ max: base.length - 1 })),
        (edits, cut) => {
          const b = Buffer.from(base);
          for (const e of edits) b[e.at] = e.byte;
          fs.writeFileSync(hfile, cut === null ? b : b.subarray(0, cut));
          let wf: WeightsFile | undefined;
          try {
            wf = openWeights(hfile);
            const hn = readHypernetwork(hfile, wf);
            for (const pair of hn.modules.values()) for (const m of pair) for (const l of m) if (l.kind !== 'activation') l.weight.read();
          } catch (e) {
            if (!(e instanceof TorchFileError) && !(e instanceof HypernetworkFileError)) throw e;
          } finally {
            wf?.close();
          }
        },
      ),
      { numRuns: 250, seed: 31 },
    );
  });

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
