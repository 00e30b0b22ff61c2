import { z } from 'zod';
import { deeperThan } from '../engine/executor/json-bounds.ts';
import type { ApiPrompt } from '../engine/graph/prompt.ts';
import { validatePrompt } from '../engine/graph/validate.ts';
import type { FolderPaths } from '../engine/paths/folders.ts';
import type { NodeRegistry } from '../engine/registry/registry.ts';
import type { Redactor } from './redact.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const promptBody = z.object({
  prompt: z.unknown().optional(),
  client_id: z.string().max(256).optional(),
  prompt_id: z.string().nullable().optional(),
  extra_data: z.record(z.string(), z.unknown()).optional(),
  number: z.number().optional(),
  front: z.boolean().optional(),
  partial_execution_targets: z.array(z.string()).optional(),
});
export type PromptBody = z.infer<typeof promptBody>;
/** extra_data is journaled and echoed in history: bounded in nesting and size. */
const MAX_EXTRA_DEPTH = 32;
const MAX_EXTRA_BYTES = 16 * 1024 * 1024;

export type CheckedPrompt =
  { ok: false; status: number; body: unknown } | { ok: true; body: PromptBody; prompt: ApiPrompt; outputs: string[]; nodeErrors: unknown };

function refusal(status: number, type: string, message: string, details: string): CheckedPrompt {
  return { ok: false, status, body: { error: { type, message, details, extra_info: {} }, node_errors: {} } };
}

/**
 * POST /prompt up to the queue: the body's shape, the client's prompt_id (a new lowercase UUID),
 * extra_data's bounds, and the prompt's validation, in ComfyUI's error shapes. Shared by the
 * embedded queue and the scale-out front (server/queue-redis/), which differ only in where the
 * accepted prompt goes.
 */
export async function checkPromptRequest(
  raw: unknown,
  ctx: { registry: NodeRegistry; paths: FolderPaths; redact: Redactor; has: (id: string) => boolean | Promise<boolean> },
): Promise<CheckedPrompt> {
  const parsed = promptBody.safeParse(raw ?? {});
  if (!parsed.success) {
    const details = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    return refusal(400, 'invalid_prompt', 'Invalid request body', details);
  }
  const b = parsed.data;
  if (b.prompt === undefined) return refusal(400, 'no_prompt', 'No prompt provided', 'No prompt provided');
  if (b.prompt_id !== undefined && b.prompt_id !== null && !UUID.test(b.prompt_id))
    return refusal(400, 'invalid_prompt_id', 'prompt_id must be a lowercase hyphenated UUID', b.prompt_id.slice(0, 100));
  if (b.prompt_id && (await ctx.has(b.prompt_id)))
    return refusal(409, 'duplicate_prompt_id', 'a prompt with this prompt_id is already queued or in history', b.prompt_id);
  if (b.extra_data && (deeperThan(b.extra_data, MAX_EXTRA_DEPTH) || JSON.stringify(b.extra_data).length > MAX_EXTRA_BYTES)) {
    const details = `extra_data may nest at most ${MAX_EXTRA_DEPTH} levels and hold at most ${MAX_EXTRA_BYTES} bytes of JSON`;
    return refusal(400, 'invalid_prompt', 'extra_data too large', details);
  }
  const v = await validatePrompt(b.prompt, ctx.registry, { paths: ctx.paths }, { partialTargets: b.partial_execution_targets });
  if (!v.ok) return { ok: false, status: 400, body: ctx.redact.value({ error: v.error, node_errors: v.node_errors }) };
  return { ok: true, body: b, prompt: v.prompt, outputs: v.outputs, nodeErrors: v.node_errors };
}
