import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { type NodeContext } from '../../engine/registry/context.ts';
import { InterruptedError } from '../../engine/core/errors.ts';
import { silentLogger } from '../../engine/core/log.ts';
import type { AnyNodeDefinition } from '../../engine/registry/types.ts';

/** A temp base folder with input/ output/ temp/, and node contexts that point at it. */
export class TestWorld {
  readonly base: string;
  readonly paths: FolderPaths;
  readonly warnings: string[] = [];
  readonly abort = new AbortController();

  constructor(name: string) {
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), `weft-${name}-`));
    this.paths = new FolderPaths({ baseDir: this.base });
    for (const d of [this.paths.inputDir, this.paths.outputDir, this.paths.tempDir]) fs.mkdirSync(d, { recursive: true });
  }

  ctx(extra: { prompt?: Record<string, unknown>; extraPngInfo?: Record<string, unknown> } = {}): NodeContext {
    const signal = this.abort.signal;
    return {
      nodeId: '9',
      classType: 'Test',
      promptId: 'p-1',
      signal,
      checkInterrupted: () => {
        if (signal.aborted) throw new InterruptedError();
      },
      progress: () => {},
      prompt: extra.prompt ?? {},
      extraPngInfo: extra.extraPngInfo ?? {},
      paths: this.paths,
      services: {},
      log: { ...silentLogger, warn: (m: string) => void this.warnings.push(m) },
    };
  }

  /** Run a node and return its outputs (the `result` of a `{ ui, result }` answer). */
  async run(def: AnyNodeDefinition, args: Record<string, unknown>): Promise<unknown[]> {
    const r = (await def.run(args, this.ctx())) as unknown[] | { result?: unknown[] };
    return Array.isArray(r) ? r : (r.result ?? []);
  }

  remove(): void {
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}

/** The chunk types of a PNG in file order (read independently of engine/image/png-text.ts). */
export function pngChunkTypes(png: Uint8Array): string[] {
  const types: string[] = [];
  let o = 8;
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  while (o + 8 <= png.length) {
    const len = dv.getUint32(o);
    types.push(String.fromCharCode(...png.subarray(o + 4, o + 8)));
    o += 12 + len;
  }
  return types;
}
