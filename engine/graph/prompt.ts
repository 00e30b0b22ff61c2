import { z } from 'zod';

/** A link in an API prompt: `[source node id, output slot]`. */
export type Link = readonly [string, number];

/** One node of ComfyUI's API prompt (what POST /prompt takes and what Weft executes). */
export interface ApiNode {
  class_type: string;
  inputs: Record<string, unknown>;
  _meta?: { title?: string };
  /** Precomputed IS_CHANGED value (ComfyUI writes it into saved prompts). */
  is_changed?: unknown;
}

export type ApiPrompt = Record<string, ApiNode>;

export const apiNodeSchema = z
  .object({
    class_type: z.string({ error: 'class_type must be a string' }),
    inputs: z.record(z.string(), z.unknown()).default({}),
    _meta: z.object({ title: z.string().optional() }).passthrough().optional(),
    is_changed: z.unknown().optional(),
  })
  .passthrough();

export const apiPromptSchema = z.record(z.string(), apiNodeSchema);

/** ComfyUI takes any list value as a link; validation later insists on exactly [id, slot]. */
export function isLinkLike(v: unknown): v is unknown[] {
  return Array.isArray(v);
}

export function isLink(v: unknown): v is Link {
  return (
    Array.isArray(v) &&
    v.length === 2 &&
    (typeof v[0] === 'string' || typeof v[0] === 'number') &&
    typeof v[1] === 'number' &&
    Number.isInteger(v[1])
  );
}

/** Normalises `[4, 0]` to `['4', 0]`. */
export function linkSource(v: Link | readonly [number, number]): Link {
  return [String(v[0]), v[1]];
}

/** Unwraps list-valued widget constants sent as `{ "__value__": [...] }`. */
export function unwrapValue(v: unknown): unknown {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && '__value__' in v) {
    return (v as { __value__: unknown }).__value__;
  }
  return v;
}

/** Parse untrusted JSON into an API prompt, with a readable error naming the offending node. */
export function parseApiPrompt(value: unknown): ApiPrompt {
  const r = apiPromptSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length
      ? `node ${String(issue.path[0])}${issue.path.length > 1 ? `, ${issue.path.slice(1).join('.')}` : ''}`
      : 'prompt';
    throw new Error(`invalid API prompt at ${where}: ${issue.message}`);
  }
  return r.data as ApiPrompt;
}
