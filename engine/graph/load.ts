import fs from 'node:fs';
import path from 'node:path';
import { readPngTextChunks } from '../image/png-text.ts';
import { parseApiPrompt, type ApiPrompt } from './prompt.ts';

/** Largest workflow file read (JSON or PNG): a workflow is text; anything bigger is a mistake. */
const MAX_FILE = 256 * 1024 * 1024;

export interface LoadedWorkflowFile {
  prompt?: ApiPrompt;
  workflow?: Record<string, unknown>;
  source: 'png' | 'api-json' | 'ui-json';
}

function isApiPrompt(v: unknown): boolean {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const values = Object.values(v);
  return values.length > 0 && values.every((n) => typeof n === 'object' && n !== null && 'class_type' in n);
}

function parseJson(text: string, file: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: ${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * A workflow file as ComfyUI's frontend reads one: `.png` → its `workflow` and `prompt` text chunks;
 * `.json` → an API prompt when every value has a class_type, else a UI workflow.
 */
export function loadWorkflowFile(file: string): LoadedWorkflowFile {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new Error(`${file}: no such file`);
  }
  if (st.size > MAX_FILE) throw new Error(`${file}: ${st.size} bytes is too large for a workflow file`);
  const bytes = fs.readFileSync(file);
  const isPng = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  if (isPng || path.extname(file).toLowerCase() === '.png') {
    let chunks: Record<string, string>;
    try {
      chunks = readPngTextChunks(bytes);
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    const out: LoadedWorkflowFile = { source: 'png' };
    if (chunks.workflow) out.workflow = parseJson(chunks.workflow, file, "the 'workflow' chunk") as Record<string, unknown>;
    if (chunks.prompt) {
      try {
        out.prompt = parseApiPrompt(parseJson(chunks.prompt, file, "the 'prompt' chunk"));
      } catch (e) {
        if (!out.workflow) throw new Error(`${file}: ${(e as Error).message}`);
      }
    }
    if (!out.workflow && !out.prompt) throw new Error(`${file}: this PNG carries no 'workflow' or 'prompt' text chunk`);
    return out;
  }
  const json = parseJson(bytes.toString('utf8'), file, 'the file');
  if (isApiPrompt(json)) {
    try {
      return { prompt: parseApiPrompt(json), source: 'api-json' };
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
  }
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { nodes?: unknown }).nodes)) {
    throw new Error(`${file}: neither an API prompt (node id → {class_type, inputs}) nor a UI workflow (with a nodes list)`);
  }
  return { workflow: json as Record<string, unknown>, source: 'ui-json' };
}
