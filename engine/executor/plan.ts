import { isLink, type ApiNode, type ApiPrompt } from '../graph/prompt.ts';
import type { AnyNodeDefinition, InputSpec } from '../registry/types.ts';

/** One linked input of a prompt node. */
export interface PlannedLink {
  readonly name: string;
  readonly src: string;
  readonly slot: number;
  readonly lazy: boolean;
}

export interface PlannedNode {
  readonly id: string;
  readonly node: ApiNode;
  /** Undefined when the class is not registered (an error only if the node is reachable). */
  readonly def: AnyNodeDefinition | undefined;
  readonly links: readonly PlannedLink[];
  /** Position in dependency order: every ancestor has a smaller one. */
  order: number;
  /** Why this node cannot run (its own fault or an ancestor's). */
  problem?: string;
  /** The problem is this node's own, not inherited from an ancestor. */
  ownProblem?: boolean;
}

export interface GraphPlan {
  readonly nodes: Map<string, PlannedNode>;
  /** Dependency (post-)order: nodes reachable from the outputs first, then the rest of the prompt. */
  readonly order: readonly string[];
  readonly reachable: ReadonlySet<string>;
}

/** A reachable node that cannot run: unknown class, dangling link, dependency cycle. */
export class PlanError extends Error {
  constructor(
    readonly nodeId: string,
    readonly classType: string,
    message: string,
  ) {
    super(message);
    this.name = 'PlanError';
  }
}

export function inputSpec(def: AnyNodeDefinition | undefined, name: string): InputSpec | undefined {
  return def?.inputs?.required?.[name] ?? def?.inputs?.optional?.[name];
}

function plannedNode(id: string, raw: ApiNode, defOf: (c: string) => AnyNodeDefinition | undefined): PlannedNode {
  // The prompt should have been validated, but a hand-written one may not have been: read defensively.
  const classType = typeof raw?.class_type === 'string' ? raw.class_type : '';
  const inputs = raw && typeof raw.inputs === 'object' && raw.inputs !== null ? raw.inputs : {};
  const node: ApiNode = raw && raw.inputs === inputs ? raw : { ...raw, class_type: classType, inputs };
  const def = defOf(classType);
  const links: PlannedLink[] = [];
  for (const name of Object.keys(inputs)) {
    const v = inputs[name];
    if (isLink(v)) links.push({ name, src: String(v[0]), slot: v[1], lazy: inputSpec(def, name)?.lazy === true });
  }
  const p: PlannedNode = { id, node, def, links, order: -1 };
  if (!def) {
    p.problem = classType ? `node class '${classType}' is not registered` : `node ${id} has no class_type`;
    p.ownProblem = true;
  }
  return p;
}

/**
 * Walks the prompt from the outputs without recursion (so a 100,000-node chain is fine) and numbers
 * nodes in dependency order, the order a recursive evaluation from the outputs would run them in.
 * Problems of reachable nodes throw a PlanError naming the node; elsewhere they only mark the node.
 */
export function planGraph(
  prompt: ApiPrompt,
  outputs: readonly string[],
  defOf: (classType: string) => AnyNodeDefinition | undefined,
): GraphPlan {
  const nodes = new Map<string, PlannedNode>();
  const order: string[] = [];
  const onStack = new Set<string>();
  const get = (id: string): PlannedNode => {
    let p = nodes.get(id);
    if (!p) {
      p = plannedNode(id, prompt[id], defOf);
      nodes.set(id, p);
    }
    return p;
  };

  const visit = (root: string): void => {
    if (nodes.get(root)?.order !== undefined && nodes.get(root)!.order >= 0) return;
    const stack: { p: PlannedNode; next: number }[] = [{ p: get(root), next: 0 }];
    onStack.add(root);
    while (stack.length) {
      const frame = stack[stack.length - 1];
      const { p } = frame;
      if (frame.next < p.links.length) {
        const link = p.links[frame.next++];
        if (!Object.hasOwn(prompt, link.src)) {
          p.problem ??= `input '${link.name}' links to node ${link.src}, which is not in the prompt`;
          p.ownProblem ??= true;
          continue;
        }
        if (onStack.has(link.src)) {
          const from = stack.findIndex((f) => f.p.id === link.src);
          const cycle = [...stack.slice(from).map((f) => f.p.id), link.src];
          p.problem ??= `dependency cycle: ${cycle.join(' → ')}`;
          p.ownProblem ??= true;
          continue;
        }
        const src = get(link.src);
        if (src.order < 0) {
          onStack.add(src.id);
          stack.push({ p: src, next: 0 });
        }
        continue;
      }
      stack.pop();
      onStack.delete(p.id);
      if (!p.problem) {
        const bad = p.links.find((l) => nodes.get(l.src)?.problem);
        if (bad) p.problem = `input '${bad.name}' depends on node ${bad.src}, which cannot run`;
      }
      p.order = order.length;
      order.push(p.id);
    }
  };

  for (const id of outputs) {
    if (!Object.hasOwn(prompt, id)) throw new PlanError(id, '', `output node ${id} is not in the prompt`);
    visit(id);
  }
  const reachable = new Set(order);
  for (const id of order) {
    const p = nodes.get(id)!;
    if (p.ownProblem) throw new PlanError(id, p.node.class_type, p.problem!);
  }
  for (const id of Object.keys(prompt)) visit(id);
  return { nodes, order, reachable };
}
