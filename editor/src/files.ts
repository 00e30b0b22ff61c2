import { promptToWorkflow } from '../../engine/graph/convert.ts';
import { readPngTextChunksAsync } from '../../engine/image/png-text.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import type { WorkflowDoc } from './doc.ts';

/**
 * A dropped or picked file as a workflow: a UI workflow JSON, an API prompt JSON (laid out as a
 * graph), or a PNG whose `workflow` (preferred) or `prompt` text chunk carries one — ComfyUI's order.
 */
export async function readWorkflowFromFile(file: File, info: ObjectInfo): Promise<WorkflowDoc> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes[0] === 0x89 && bytes[1] === 0x50) {
    const chunks = await readPngTextChunksAsync(bytes);
    if (chunks.workflow) return JSON.parse(chunks.workflow) as WorkflowDoc;
    if (chunks.prompt) return promptToWorkflow(JSON.parse(chunks.prompt), info) as unknown as WorkflowDoc;
    throw new Error('this PNG carries no workflow');
  }
  const json = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  if (Array.isArray(json.nodes)) return json as unknown as WorkflowDoc;
  const values = Object.values(json);
  if (values.length && values.every((v) => typeof v === 'object' && v !== null && 'class_type' in v)) {
    return promptToWorkflow(json, info) as unknown as WorkflowDoc;
  }
  throw new Error('not a ComfyUI workflow or API prompt');
}
