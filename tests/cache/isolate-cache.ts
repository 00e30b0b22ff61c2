import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Runs before every test file (vitest setupFiles): the suite never builds into the user's real model
// cache, whatever a test forgets to pass or the shell sets; CLI processes the tests spawn inherit it.
process.env.WEFT_CACHE_DIR = mkdtempSync(join(tmpdir(), 'weft-test-cache-'));
delete process.env.WEFT_CACHE_LIMIT;
