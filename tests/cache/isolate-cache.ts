import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

// Runs before every test file (vitest setupFiles). Each file gets its own temporary root, removed when the
// file ends: tests make tiny checkpoints and model builds of a few hundred MB in temp folders, and left
// behind they filled the disk over a day of runs. CLI and worker processes the tests spawn inherit it.
const root = mkdtempSync(join(tmpdir(), 'weft-test-'));
process.env.TMPDIR = root;

// The suite never builds into the user's real model cache, whatever a test forgets to pass or the shell sets.
process.env.WEFT_CACHE_DIR = mkdtempSync(join(root, 'weft-test-cache-'));
delete process.env.WEFT_CACHE_LIMIT;
// No float32 copies kept beside the test caches (kept-expansions.ts): each would be written by a worker thread
// beside the test, on CI's two cores. tests/onnx/kept-expansions.test.ts and the CLI test there switch them on.
process.env.WEFT_KEEP_EXPANDED = '0';

afterAll(() => {
  rmSync(root, { recursive: true, force: true, maxRetries: 3 });
});
