import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { importCycles, layerOf, layerViolations, readImports, sourceFiles } from './imports.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const existsIn = (repo: string) => (file: string) => fs.existsSync(path.join(repo, file));

describe('the layering of engine/, nodes/, server/ and cli/', () => {
  const files = sourceFiles(REPO);
  const edges = readImports(REPO, files);

  it('reads the whole tree', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(edges.length).toBeGreaterThan(500);
    for (const f of files) expect(layerOf(path.relative(REPO, f).split(path.sep).join('/')), f).toBeTypeOf('number');
  });

  it('imports only go down the documented layers, and production code does not use the test oracles', () => {
    expect(layerViolations(edges, existsIn(REPO)).join('\n')).toBe('');
  });

  it('has no import cycles (value and type imports, file level)', () => {
    expect(
      importCycles(edges)
        .map((c) => c.join('\n  → '))
        .join('\n\n'),
    ).toBe('');
  });
});

describe('the checks themselves', () => {
  it('report an upward import, an import of tests/ and a cycle, with file and line', () => {
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-layers-'));
    try {
      const write = (f: string, text: string) => {
        fs.mkdirSync(path.dirname(path.join(repo, f)), { recursive: true });
        fs.writeFileSync(path.join(repo, f), text);
      };
      write('engine/core/a.ts', "import type { B } from './b.ts';\nexport type A = B;\n");
      write('engine/core/b.ts', "import { x } from '../models/m.ts';\nexport type B = { a?: import('./a.ts').A };\nexport const y = x;\n");
      write('engine/models/m.ts', "export const x = 1;\nexport const f = () => import('../../tests/helper.ts');\n");
      write('engine/models/families/f/graphs/g.ts', "import { r } from '../reference/r.ts';\nexport const g = r;\n");
      write('engine/models/families/f/reference/r.ts', 'export const r = 1;\n');
      write('engine/text/t.ts', "export * from '../paths/p.ts';\n");
      write('engine/paths/p.ts', "import fs from 'node:fs';\nexport const p = fs;\n");
      const edges = readImports(repo, sourceFiles(repo));
      expect(layerViolations(edges, existsIn(repo))).toEqual([
        "engine/core/b.ts:1 imports '../models/m.ts': engine/core (layer 0) must not import engine/models (layer 4)",
        "engine/models/families/f/graphs/g.ts:1 imports '../reference/r.ts': production code must not use the test oracles (engine/models/**/reference/)",
        "engine/models/m.ts:2 imports '../../tests/helper.ts': outside the layered code (tests/helper.ts)",
      ]);
      expect(importCycles(edges)).toEqual([["engine/core/a.ts:1 imports './b.ts'", "engine/core/b.ts:2 imports './a.ts'"]]);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });
});
