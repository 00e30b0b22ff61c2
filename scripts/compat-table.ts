/**
 * Writes docs/compat.md: ComfyUI's core node classes and whether Weft's registry has them.
 * Run after adding nodes: `npx tsx scripts/compat-table.ts` (`--check` exits 1 when the file is stale).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createBuiltinRegistry } from '../nodes/index.ts';
import { COMPAT_DOC, renderCompatTable } from './compat/table.ts';

const file = path.resolve(import.meta.dirname, '..', COMPAT_DOC);
const text = renderCompatTable(createBuiltinRegistry());
if (process.argv.includes('--check')) {
  const same = fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text;
  if (!same) console.error(`${COMPAT_DOC} is stale: run npx tsx scripts/compat-table.ts`);
  process.exit(same ? 0 : 1);
}
fs.writeFileSync(file, text);
console.log(`wrote ${COMPAT_DOC}`);
