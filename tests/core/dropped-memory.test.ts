import { describe, expect, it } from 'vitest';
import { DroppedMemory } from '../../engine/core/dropped-memory.ts';

describe('DroppedMemory', () => {
  it('runs a full collection each time the dropped bytes pass the threshold, and only then', () => {
    const d = new DroppedMemory(1000);
    d.drop(999);
    expect(d.collections).toBe(0);
    d.drop(1);
    expect(d.collections).toBe(1);
    d.drop(500);
    expect(d.collections).toBe(1);
    d.drop(600);
    expect(d.collections).toBe(2);
  });

  it('collects a dropped array at once, where V8 alone would keep it', async () => {
    const make = (): WeakRef<Float32Array> => new WeakRef(new Float32Array(2 ** 20).fill(1));
    const refs = [make(), make()];
    const control = make();
    // WeakRef targets (and a deref's) stay alive to the end of the job that made them.
    await new Promise((r) => setTimeout(r, 0));
    // Made with the others and as unreferenced: V8 has not collected it on its own.
    expect(control.deref()).toBeDefined();
    const d = new DroppedMemory(4 * 2 ** 20);
    d.drop(4 * 2 ** 20);
    expect(d.collections).toBe(1);
    expect(refs.map((r) => r.deref())).toEqual([undefined, undefined]);
  });
});
