import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Faults that end a whole Node process can only be seen from outside it: each case runs a small
 * script in a child process (through tsx, as `weft` runs) and reads what it prints.
 */
const REPO = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-child-'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function script(name: string, source: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = path.join(dir, name);
  fs.writeFileSync(file, source);
  try {
    const r = await run(process.execPath, ['--import', 'tsx', file], { cwd: REPO, timeout: 90_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

describe('faults that would end the process', () => {
  it("a custom node's stray rejection or throwing timer fails its prompt; the in-process server lives on", async () => {
    const r = await script(
      'stray.mts',
      `
import fs from 'node:fs';
import path from 'node:path';
import { Executor } from '${REPO}/engine/executor/executor.ts';
import { FolderPaths } from '${REPO}/engine/paths/folders.ts';
import { silentLogger } from '${REPO}/engine/core/log.ts';
import { startServer } from '${REPO}/server/server.ts';
import { faultRegistry } from '${REPO}/tests/server/fixtures/fault-nodes.ts';
import { writeInputImage } from '${REPO}/tests/server/helpers.ts';
const base = ${JSON.stringify(dir)};
const paths = new FolderPaths({ baseDir: base });
await writeInputImage(paths.inputDir);
const registry = faultRegistry();
const s = await startServer({ port: 0, paths, registry, executor: new Executor(registry, { paths }), log: silentLogger, stateDir: path.join(base, 'state') });
const out = [];
for (const kind of ['rejection', 'timer', null]) {
  const prompt = { '1': { class_type: 'LoadImage', inputs: { image: 'in.png' } }, '2': kind ? { class_type: 'TestStray', inputs: { image: ['1', 0], kind } } : { class_type: 'ImageInvert', inputs: { image: ['1', 0] } }, '9': { class_type: 'SaveImage', inputs: { images: ['2', 0], filename_prefix: 'p' } } };
  const { prompt_id } = await (await fetch(s.url + '/prompt', { method: 'POST', body: JSON.stringify({ prompt }) })).json();
  let h;
  for (let i = 0; i < 200 && !h; i++) { h = (await (await fetch(s.url + '/history/' + prompt_id)).json())[prompt_id]; await new Promise((r) => setTimeout(r, 50)); }
  const err = h.status.messages.find((m) => m[0] === 'execution_error');
  out.push([kind, h.status.status_str, err ? err[1].exception_message : '']);
}
await s.close();
console.log(JSON.stringify(out));
`,
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as [string | null, string, string][];
    expect(out[0][1]).toBe('error');
    expect(out[0][2]).toMatch(/unhandled rejection.*stray rejection from a custom node/);
    expect(out[1][1]).toBe('error');
    expect(out[1][2]).toMatch(/uncaught exception.*timer went off badly/);
    expect(out[2][1]).toBe('success');
  }, 120_000);

  it('a custom node package outside the repository imports weft/api', async () => {
    const pkg = path.join(dir, 'nodes-elsewhere', 'outside_pkg');
    fs.mkdirSync(pkg, { recursive: true });
    fs.writeFileSync(
      path.join(pkg, 'index.ts'),
      `import { defineNode } from 'weft/api';
export const nodes = [defineNode({ name: 'OutsideAdd', inputs: { required: { x: { type: 'INT', default: 1 } } }, outputs: [{ type: 'INT' }], run: ({ x }) => [(x as number) + 1] })];
`,
    );
    const r = await script(
      'custom.mts',
      `
import { loadCustomNodes } from '${REPO}/engine/registry/custom-nodes.ts';
import { NodeRegistry } from '${REPO}/engine/registry/registry.ts';
const registry = new NodeRegistry();
const reports = await loadCustomNodes(registry, [${JSON.stringify(path.dirname(pkg))}]);
console.log(JSON.stringify({ reports: reports.map((x) => [x.status, x.errors]), ok: registry.has('OutsideAdd') }));
`,
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { reports: unknown[]; ok: boolean };
    expect(out.reports).toEqual([['loaded', []]]);
    expect(out.ok).toBe(true);
  }, 120_000);
});
