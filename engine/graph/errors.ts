/** ComfyUI's per-input error object (`node_errors[id].errors[]` and top-level `error`). */
export interface ComfyError {
  type: string;
  message: string;
  details: string;
  extra_info: Record<string, unknown>;
}

export interface NodeErrorEntry {
  errors: ComfyError[];
  dependent_outputs: string[];
  class_type: string;
}

export type NodeErrors = Record<string, NodeErrorEntry>;

export interface ValidationResult {
  /** True when at least one output validated (ComfyUI answers 200 then, possibly with node_errors). */
  ok: boolean;
  /** Top-level error when nothing can run (no_prompt, missing_node_type, prompt_no_outputs, ...). */
  error?: ComfyError;
  node_errors: NodeErrors;
  /** Output node ids that validated and will run. */
  outputs: string[];
}

export function comfyError(type: string, message: string, details = '', extra_info: Record<string, unknown> = {}): ComfyError {
  return { type, message, details, extra_info };
}
