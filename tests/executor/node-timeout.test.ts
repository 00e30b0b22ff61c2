import { describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor/executor.ts';
import { NodeRegistry } from '../../engine/registry/registry.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';
import { paths } from './fixtures.ts';

/** A node that takes `ms` to run and shows a ComfyUI package's module, as Weft's ports of TiledDiffusion or UltimateSDUpscale do. */
const slow = (name: string) =>
  defineNode({
    name,
    inputs: { required: { ms: { type: 'INT' } } },
    outputs: [{ type: 'INT' }],
    outputNode: true,
    run: async ({ ms }) => {
      await new Promise((r) => setTimeout(r, ms));
      return [ms];
    },
  });

let n = 0;
const name = (): string => `p${++n}`;

describe('node time limits', () => {
  it('apply to a user’s custom node package, never to a built-in node that shows a custom_nodes.* module', async () => {
    const registry = new NodeRegistry();
    registry.register(slow('PortedFromAPackage'), 'custom_nodes.ComfyUI-TiledDiffusion', true);
    registry.register(slow('UsersNode'), 'custom_nodes.some-user-package');
    const ex = new Executor(registry, { paths, nodeTimeoutMs: (_c, module) => (module?.startsWith('custom_nodes.') ? 50 : undefined) });
    expect(ex.timeoutFor('PortedFromAPackage')).toBeUndefined();
    expect(ex.timeoutFor('UsersNode')).toBe(50);
    const ported = await ex.execute({ '1': { class_type: 'PortedFromAPackage', inputs: { ms: 150 } } }, { promptId: name() });
    expect(ported.status).toBe('success');
    const users = await ex.execute({ '1': { class_type: 'UsersNode', inputs: { ms: 150 } } }, { promptId: name() });
    expect(users.status).toBe('error');
    expect(JSON.stringify(users)).toMatch(/node 1 \(UsersNode\) did not finish within 0 s \(timeout\)/);
  });

  it('the built-in registry marks the ports of ComfyUI packages as built-in', () => {
    const registry = createBuiltinRegistry();
    for (const name of ['VAEEncodeTiled_TiledDiffusion', 'TiledDiffusion', 'UltimateSDUpscale', 'FaceDetailer', 'KSampler']) {
      expect(registry.isBuiltin(name)).toBe(true);
    }
    expect(registry.get('VAEEncodeTiled_TiledDiffusion')?.module).toBe('custom_nodes.ComfyUI-TiledDiffusion');
  });
});
