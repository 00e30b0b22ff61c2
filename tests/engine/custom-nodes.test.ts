import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCustomNodes, listCustomPackages } from '../../engine/registry/custom-nodes.ts';
import { NodeRegistry } from '../../engine/registry/registry.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';

let dir: string;
const warnings: string[] = [];
const log = { info: () => {}, warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) };

function write(rel: string, text: string): void {
  const p = path.join(dir, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
}

const nodeSrc = (name: string) =>
  `{ name: '${name}', inputs: { required: { a: { type: 'INT', default: 1 } } }, outputs: [{ type: 'INT' }], run: (x) => [x.a + 1] }`;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-custom-'));
  write('a_good/index.js', `export const nodes = [${nodeSrc('GoodNode')}];\nexport const WEB_DIRECTORY = './web';`);
  write('b_throws/index.js', `throw new Error('boom at import');`);
  write('c_duplicate/index.js', `export const nodes = [${nodeSrc('GoodNode')}, ${nodeSrc('OtherNode')}];`);
  write(
    'd_mappings.mjs',
    `export const NODE_CLASS_MAPPINGS = { MappedNode: ${nodeSrc('ignored')} };\nexport const NODE_DISPLAY_NAME_MAPPINGS = { MappedNode: 'Mapped!' };`,
  );
  write('e_default_fn/index.ts', `export default async () => [${nodeSrc('FromDefault')}];`);
  write('f_nothing/index.js', `export const x = 1;`);
  write('g_builtin_clash/index.js', `export const nodes = [${nodeSrc('BuiltinNode')}];`);
  write('h_off.disabled/index.js', `throw new Error('must not load');`);
  write('_private/index.js', `throw new Error('must not load');`);
  write('no_entry/readme.md', 'not a package');
  write('i_syntax/index.js', `export const nodes = [;`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('custom node packages', () => {
  it('lists folders with an entry file and single modules, skipping disabled, private and entry-less ones', () => {
    const names = listCustomPackages(dir).map((p) => p.name);
    expect(names).toEqual(['a_good', 'b_throws', 'c_duplicate', 'd_mappings', 'e_default_fn', 'f_nothing', 'g_builtin_clash', 'i_syntax']);
  });

  it('loads what loads, reports each failure with its reason, and keeps going', async () => {
    const registry = new NodeRegistry();
    registry.register(defineNode({ name: 'BuiltinNode', outputs: [], run: () => [] }));
    const reports = await loadCustomNodes(registry, [dir], log);
    const by = Object.fromEntries(reports.map((r) => [r.name, r]));
    expect(by.a_good.status).toBe('loaded');
    expect(by.a_good.nodes).toEqual(['GoodNode']);
    expect(by.a_good.webDirectory).toBe(path.join(dir, 'a_good', 'web'));
    expect(by.b_throws.status).toBe('failed');
    expect(by.b_throws.errors[0]).toContain('boom at import');
    // A duplicate class is refused alone; the rest of that package still loads.
    expect(by.c_duplicate.status).toBe('loaded');
    expect(by.c_duplicate.nodes).toEqual(['OtherNode']);
    expect(by.c_duplicate.errors[0]).toMatch(/'GoodNode' is already registered by custom_nodes\.a_good/);
    expect(by.d_mappings.nodes).toEqual(['MappedNode']);
    expect(by.e_default_fn.nodes).toEqual(['FromDefault']);
    expect(by.f_nothing.status).toBe('failed');
    expect(by.f_nothing.errors[0]).toMatch(/exports no `nodes` array/);
    expect(by.g_builtin_clash.status).toBe('failed');
    expect(by.g_builtin_clash.errors[0]).toMatch(/'BuiltinNode' is already registered by nodes/);
    expect(by.i_syntax.status).toBe('failed');
    expect(registry.names().sort()).toEqual(['BuiltinNode', 'FromDefault', 'GoodNode', 'MappedNode', 'OtherNode']);
    expect(warnings.some((w) => w.includes('b_throws') && w.includes('boom at import'))).toBe(true);

    const info = registry.objectInfo({ paths: new FolderPaths({ baseDir: dir }) });
    expect(info.MappedNode.display_name).toBe('Mapped!');
    expect(info.GoodNode.python_module).toBe('custom_nodes.a_good');
    expect(info.BuiltinNode.python_module).toBe('nodes');
  });

  it('loads the shipped example package, whose nodes run', async () => {
    const registry = new NodeRegistry();
    const reports = await loadCustomNodes(registry, [path.resolve(import.meta.dirname, '../../custom_nodes')]);
    const example = reports.find((r) => r.name === 'example-text-tools');
    expect(example?.status).toBe('loaded');
    const concat = registry.get('WeftExample_TextConcat');
    expect(concat).toBeDefined();
    expect(concat!.run({ text_a: 'a cat', text_b: 'studio light', separator: ', ' }, {} as never)).toEqual(['a cat, studio light']);
  });
});
