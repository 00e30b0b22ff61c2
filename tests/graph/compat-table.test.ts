import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { coreClasses } from '../../scripts/compat/comfyui-core-nodes.ts';
import { classesOf, coverage } from '../../scripts/compat/coverage.ts';
import { COMPAT_DOC, renderCompatTable } from '../../scripts/compat/table.ts';

const root = path.resolve(import.meta.dirname, '../..');

describe('docs/compat.md', () => {
  it('claims no class the registry lacks, and its rows are the class list (run `npx tsx scripts/compat-table.ts` after adding nodes)', () => {
    const registry = createBuiltinRegistry();
    const doc = fs.readFileSync(path.join(root, COMPAT_DOC), 'utf8');
    const rows = [...doc.matchAll(/^\| `([^`]+)` \| ([^|]+) \| (yes|no) \|/gm)].map((m) => ({
      name: m[1],
      module: m[2].trim(),
      yes: m[3] === 'yes',
    }));
    expect(rows.map((r) => [r.name, r.module])).toEqual(coreClasses().map((c) => [c.name, c.module]));
    // A node added since the table was written leaves a stale "no" (scripts/compat-table.ts --check reports it);
    // a "yes" for a class the registry does not have is never right.
    expect(rows.filter((r) => r.yes && !registry.has(r.name)).map((r) => r.name)).toEqual([]);
    const stale = rows.filter((r) => !r.yes && registry.has(r.name)).map((r) => r.name);
    if (stale.length) console.warn(`${COMPAT_DOC} is stale for ${stale.join(', ')}: run npx tsx scripts/compat-table.ts`);
  });

  it('is exactly what the script writes for the registry it was written from', () => {
    const doc = fs.readFileSync(path.join(root, COMPAT_DOC), 'utf8');
    const yes = new Set([...doc.matchAll(/^\| `([^`]+)` \| [^|]+ \| yes \|/gm)].map((m) => m[1]));
    const extra =
      doc
        .slice(doc.indexOf('## Weft classes'))
        .match(/`([^`]+)`/g)
        ?.map((x) => x.slice(1, -1)) ?? [];
    const names = [...yes, ...extra];
    const asWritten = { has: (n: string) => names.includes(n), names: () => names } as unknown as Parameters<typeof renderCompatTable>[0];
    expect(doc).toBe(renderCompatTable(asWritten));
  });

  it('lists each ComfyUI class once, with a module and a reason', () => {
    const all = coreClasses();
    expect(new Set(all.map((c) => c.name)).size).toBe(all.length);
    for (const c of all) expect(c.module === 'nodes' || c.module.startsWith('comfy_extras.nodes_')).toBe(true);
  });
});

describe('scripts/node-coverage.ts', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-cov-'));
  const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: tmp, modelsDir: tmp }) });

  it('counts the inner nodes of subgraphs and group nodes, not notes, muted or bypassed nodes', () => {
    const wf = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/subgraphs/subgraph_nested.workflow.json'), 'utf8')) as unknown;
    const c = classesOf(wf, info);
    expect(c.kind).toBe('workflow');
    // The LoRA inside the nested subgraph is bypassed; the second instance of the subgraph is muted.
    expect(c.classes).toEqual([
      'CLIPTextEncode',
      'CheckpointLoaderSimple',
      'EmptyLatentImage',
      'KSampler',
      'PrimitiveInt',
      'SaveImage',
      'VAEDecode',
    ]);
  });

  it('names the classes a file needs that the registry lacks, for workflows and API prompts', () => {
    const a = path.join(tmp, 'a.json');
    const b = path.join(tmp, 'b.json');
    fs.writeFileSync(a, JSON.stringify({ '1': { class_type: 'KSampler', inputs: {} }, '2': { class_type: 'NoSuchNode', inputs: {} } }));
    fs.writeFileSync(
      b,
      JSON.stringify({
        nodes: [
          { id: 1, type: 'NoSuchNode', mode: 0 },
          { id: 2, type: 'OtherMissing', mode: 4 },
        ],
        links: [],
      }),
    );
    const r = coverage([a, b], info);
    expect([...r.missing]).toEqual([['NoSuchNode', [a, b]]]);
    expect(r.perFile.map((f) => f.kind)).toEqual(['prompt', 'workflow']);
  });
});
