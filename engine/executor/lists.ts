import { isResultObject, type AnyNodeDefinition, type UiOutput } from '../registry/types.ts';

/** Every value between nodes is a list of items (ComfyUI §5.4); an input is absent when undefined. */
export type InputLists = Record<string, unknown[] | undefined>;

/**
 * The argument objects for one node's calls: INPUT_IS_LIST nodes get one call with the whole lists;
 * others one call per index up to the longest list, shorter lists repeating their last item. An empty
 * list means nothing to map over, so no call (ComfyUI would raise an IndexError there).
 */
export function callArgs(inputIsList: boolean | undefined, lists: InputLists): Record<string, unknown>[] {
  const present: [string, unknown[]][] = [];
  for (const k in lists) {
    const l = lists[k];
    if (l !== undefined) present.push([k, l]);
  }
  if (inputIsList) return [Object.fromEntries(present)];
  let n = present.length ? 0 : 1;
  for (const [, l] of present) {
    if (l.length === 0) return [];
    if (l.length > n) n = l.length;
  }
  const calls: Record<string, unknown>[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const args: Record<string, unknown> = {};
    for (const [k, l] of present) args[k] = l[i < l.length ? i : l.length - 1];
    calls[i] = args;
  }
  return calls;
}

/** Collects the results of a node's calls into output lists and one merged UI dict. */
export class ResultCollector {
  readonly outputs: unknown[][];
  ui: UiOutput | undefined;

  constructor(private readonly def: AnyNodeDefinition) {
    this.outputs = def.outputs.map(() => []);
  }

  /** Adds one call's return value; throws a message naming what is wrong with it. */
  add(r: unknown): void {
    const nOut = this.def.outputs.length;
    let result: unknown;
    if (isResultObject(r)) {
      result = r.result;
      if (r.ui !== undefined && r.ui !== null) this.mergeUi(r.ui);
    } else {
      result = r;
    }
    if (result === undefined || result === null) {
      if (nOut > 0) throw new Error(`node returned no outputs but declares ${nOut}`);
      return;
    }
    if (!Array.isArray(result)) throw new Error(`node returned ${describe(result)} instead of an array of ${nOut} outputs`);
    if (result.length !== nOut) throw new Error(`node returned ${result.length} outputs but declares ${nOut}`);
    for (let j = 0; j < nOut; j++) {
      const v: unknown = result[j];
      if (this.def.outputs[j].isList) {
        if (!Array.isArray(v))
          throw new Error(`output ${j} (${this.def.outputs[j].type}) is declared as a list but the node returned ${describe(v)}`);
        for (const item of v) this.outputs[j].push(item);
      } else {
        this.outputs[j].push(v);
      }
    }
  }

  /** ComfyUI merges the UI dicts of list calls key by key. */
  private mergeUi(ui: unknown): void {
    if (typeof ui !== 'object' || Array.isArray(ui)) throw new Error(`node returned ui as ${describe(ui)} instead of an object`);
    this.ui ??= {};
    for (const [k, v] of Object.entries(ui as Record<string, unknown>)) {
      const list = (this.ui[k] ??= []);
      if (Array.isArray(v)) for (const item of v) list.push(item);
      else list.push(v);
    }
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}
