import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkflowFormatError, convertWorkflowToPrompt } from '../../engine/graph/convert.ts';
import { flattenForEditor } from '../../engine/graph/convert-expand.ts';
import { FIXTURE_OBJECT_INFO as INFO } from './object-info-fixture.ts';

const DIR = path.resolve(import.meta.dirname, '../fixtures/subgraphs');
const JUNK: unknown[] = [null, 1, 'x', [], {}, -10, [1, 2], { id: 'a' }, true, undefined];

/** Every path into a JSON value, so one mutation can land anywhere. */
function paths(v: unknown, p: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (p.length) out.push(p);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...p, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...p, k], out);
  return out;
}

describe('subgraph and group-node expansion on damaged files', () => {
  for (const file of ['subgraph_nested.workflow.json', 'group_node.workflow.json']) {
    it(`${file}: 1–3 values replaced by junk anywhere give a prompt or a WorkflowFormatError, never another error`, () => {
      const base = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as Record<string, unknown>;
      const all = paths(base);
      let seed = 12345;
      const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const other: string[] = [];
      let converted = 0;
      for (let i = 0; i < 800; i++) {
        const wf = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
        for (let m = 0; m < 1 + Math.floor(rnd() * 3); m++) {
          const p = all[Math.floor(rnd() * all.length)];
          let o: unknown = wf;
          for (const k of p.slice(0, -1)) o = (o as Record<string | number, unknown> | undefined)?.[k];
          if (o && typeof o === 'object') (o as Record<string | number, unknown>)[p[p.length - 1]] = JUNK[Math.floor(rnd() * JUNK.length)];
        }
        try {
          convertWorkflowToPrompt(wf, INFO);
          flattenForEditor(wf, INFO);
          converted++;
        } catch (e) {
          if (!(e instanceof WorkflowFormatError)) other.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
      }
      expect(other.slice(0, 5)).toEqual([]);
      expect(converted).toBeGreaterThan(150);
    });
  }
});
