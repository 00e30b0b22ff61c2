import type { ApiPrompt } from '../engine/graph/prompt.ts';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * `--set NODE_ID.INPUT=VALUE`: VALUE is read as JSON when it parses (numbers, booleans, arrays,
 * quoted strings), else taken as a plain string. Big integers keep their digits as a string so seeds
 * above 2^53 survive (the sampler reads seeds as BigInt).
 */
export function parseSetOption(spec: string): { nodeId: string; input: string; value: unknown } {
  const eq = spec.indexOf('=');
  if (eq < 0) throw new UsageError(`--set ${spec}: expected NODE_ID.INPUT=VALUE`);
  const target = spec.slice(0, eq);
  const raw = spec.slice(eq + 1);
  const dot = target.lastIndexOf('.');
  if (dot <= 0 || dot === target.length - 1) throw new UsageError(`--set ${spec}: expected NODE_ID.INPUT=VALUE`);
  return { nodeId: target.slice(0, dot), input: target.slice(dot + 1), value: parseValue(raw) };
}

function parseValue(raw: string): unknown {
  if (/^-?\d+$/.test(raw) && !Number.isSafeInteger(Number(raw))) return raw;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

export function applySetOptions(prompt: ApiPrompt, specs: readonly string[]): ApiPrompt {
  const out: ApiPrompt = structuredClone(prompt);
  for (const spec of specs) {
    const { nodeId, input, value } = parseSetOption(spec);
    const node = out[nodeId];
    if (!node) {
      throw new UsageError(`--set ${spec}: the workflow has no node '${nodeId}' (nodes: ${Object.keys(out).join(', ')})`);
    }
    node.inputs[input] = value;
  }
  return out;
}
