import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { safeJoin } from '../engine/core/safe-path.ts';

/**
 * Workflow files over the WebSocket for the editor: list, load, save (refusing to overwrite unless
 * asked, and refusing a save when the file changed since `expectedModified`), rename, delete, in
 * `<userDir>/default/workflows/`. Shipped templates are listed read-only.
 */
const name = z
  .string()
  .min(1)
  .max(255)
  .regex(/\.json$/, 'workflow names end in .json');
const schemas = {
  workflow_list: z.object({}).passthrough(),
  workflow_load: z.object({ name, template: z.boolean().optional() }),
  workflow_save: z.object({
    name,
    workflow: z.record(z.string(), z.unknown()),
    overwrite: z.boolean().optional(),
    expectedModified: z.number().optional(),
  }),
  workflow_rename: z.object({ name, to: name, overwrite: z.boolean().optional() }),
  workflow_delete: z.object({ name }),
};

export interface WorkflowDirs {
  userDir: string;
  templatesDir?: string;
}

function listJson(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    let ents: fs.Dirent[] = [];
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else if (e.name.endsWith('.json')) out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

export async function handleWorkflowMessage(
  msg: { type: string; id?: unknown; data?: unknown },
  dirs: WorkflowDirs,
): Promise<{ type: 'workflow_result'; data: { id: unknown; ok: boolean; result?: unknown; error?: string } }> {
  const reply = (ok: boolean, result?: unknown, error?: string) => ({
    type: 'workflow_result' as const,
    data: { id: msg.id ?? null, ok, ...(ok ? { result } : { error }) },
  });
  const schema = schemas[msg.type as keyof typeof schemas];
  if (!schema) return reply(false, undefined, `unknown workflow operation '${msg.type}'`);
  const parsed = schema.safeParse(msg.data ?? {});
  if (!parsed.success) return reply(false, undefined, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  const root = path.join(dirs.userDir, 'default', 'workflows');
  fs.mkdirSync(root, { recursive: true });
  try {
    const d = parsed.data as Record<string, unknown>;
    switch (msg.type) {
      case 'workflow_list': {
        const user = listJson(root).map((n) => ({ name: n, modified: fs.statSync(path.join(root, n)).mtimeMs }));
        const templates = dirs.templatesDir ? listJson(dirs.templatesDir).map((n) => ({ name: n, template: true })) : [];
        return reply(true, [...user, ...templates]);
      }
      case 'workflow_load': {
        const dir = d.template ? dirs.templatesDir : root;
        if (!dir) return reply(false, undefined, 'no templates folder');
        const file = safeJoin(dir, d.name as string);
        if (!fs.existsSync(file)) return reply(false, undefined, `no workflow named '${String(d.name)}'`);
        const st = fs.statSync(file);
        if (st.size > 64 * 1024 * 1024) return reply(false, undefined, 'workflow file too large');
        return reply(true, { workflow: JSON.parse(fs.readFileSync(file, 'utf8')), modified: st.mtimeMs });
      }
      case 'workflow_save': {
        const file = safeJoin(root, d.name as string);
        if (fs.existsSync(file)) {
          if (!d.overwrite)
            return reply(false, undefined, `a workflow named '${String(d.name)}' exists (save with overwrite to replace it)`);
          const m = fs.statSync(file).mtimeMs;
          if (d.expectedModified !== undefined && Math.abs(m - (d.expectedModified as number)) > 1) {
            return reply(false, undefined, `'${String(d.name)}' changed on disk since it was opened; reload it or save under another name`);
          }
        }
        fs.mkdirSync(path.dirname(file), { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, JSON.stringify(d.workflow));
        fs.renameSync(tmp, file);
        return reply(true, { name: d.name, modified: fs.statSync(file).mtimeMs });
      }
      case 'workflow_rename': {
        const from = safeJoin(root, d.name as string);
        const to = safeJoin(root, d.to as string);
        if (!fs.existsSync(from)) return reply(false, undefined, `no workflow named '${String(d.name)}'`);
        if (fs.existsSync(to) && !d.overwrite) return reply(false, undefined, `a workflow named '${String(d.to)}' exists`);
        fs.mkdirSync(path.dirname(to), { recursive: true });
        fs.renameSync(from, to);
        return reply(true, { name: d.to });
      }
      case 'workflow_delete': {
        const file = safeJoin(root, d.name as string);
        if (!fs.existsSync(file)) return reply(false, undefined, `no workflow named '${String(d.name)}'`);
        fs.rmSync(file);
        return reply(true, { name: d.name });
      }
    }
  } catch (e) {
    return reply(false, undefined, (e as Error).name === 'PathEscapeError' ? 'path refused' : (e as Error).message);
  }
  return reply(false, undefined, 'unreachable');
}
