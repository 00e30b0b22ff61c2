import { totalmem } from 'node:os';
import { parseByteSize } from '../../onnx/cache-dir.ts';

/** Share of RAM the loaded sessions may hold when no budget is given. */
const DEFAULT_SHARE = 0.6;

/** The sessions' memory budget in bytes: `--memory-budget`, else `$WEFT_MEMORY_BUDGET`, else 60% of RAM. */
export function resolveMemoryBudget(flag?: string, env: NodeJS.ProcessEnv = process.env): number {
  const s = flag ?? env.WEFT_MEMORY_BUDGET;
  if (s === undefined || s === '') return defaultMemoryBudget();
  const bytes = parseByteSize(s);
  if (bytes <= 0) throw new Error(`'${s}' leaves no memory for models`);
  return bytes;
}

export function defaultMemoryBudget(): number {
  return Math.floor(totalmem() * DEFAULT_SHARE);
}
