/**
 * Lists the node classes Weft lacks for the workflow files in workflows/ and tests/fixtures/ (or the
 * files and folders given): `npx tsx scripts/node-coverage.ts [paths…] [--json]`. UI workflows are
 * expanded (subgraphs, group nodes) as the frontend expands them; muted, bypassed and editor-only
 * nodes do not count. Classes are checked against createBuiltinRegistry().
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FolderPaths } from '../engine/paths/folders.ts';
import { createBuiltinRegistry } from '../nodes/index.ts';
import { coverage, jsonFiles } from './compat/coverage.ts';

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const targets = args.length ? args : [path.join(root, 'workflows'), path.join(root, 'tests/fixtures')];
const files = targets.flatMap((t) => (fs.statSync(t).isDirectory() ? jsonFiles(t) : [t])).sort();
const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-coverage-'));
const info = createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: empty, modelsDir: empty }) });
fs.rmSync(empty, { recursive: true, force: true });
const { perFile, missing } = coverage(files, info);
const graphs = perFile.filter((f) => f.kind !== 'other');

if (process.argv.includes('--json')) {
  console.log(
    JSON.stringify(
      {
        files: graphs.map((f) => ({ file: path.relative(root, f.file), kind: f.kind, missing: f.missing })),
        missing: Object.fromEntries(missing),
      },
      null,
      1,
    ),
  );
} else {
  const runnable = graphs.filter((f) => f.missing.length === 0).length;
  console.log(`${graphs.length} workflow/prompt files, ${runnable} with every class available, ${graphs.length - runnable} missing some.`);
  console.log('');
  console.log('| missing class | files |');
  console.log('|---|---|');
  for (const [k, fs_] of [...missing].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0]))) {
    console.log(`| \`${k}\` | ${fs_.length}: ${fs_.map((f) => path.relative(root, f)).join(', ')} |`);
  }
}
