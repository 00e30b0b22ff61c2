import { randomUUID } from 'node:crypto';
import { isLink, unwrapValue } from '../graph/prompt.ts';
import type { ListingContext } from '../registry/context.ts';
import type { Logger } from '../core/log.ts';
import type { GraphPlan } from './plan.ts';
import { VOLATILE_PREFIX, canonical } from './signature.ts';

/**
 * ComfyUI's IS_CHANGED values for the signatures: a prompt node's own `is_changed` wins, else the
 * class's `fingerprint` of the node's constant inputs. NaN — returned or from a throwing fingerprint —
 * never equals itself, so it becomes a fresh token and the node runs every time.
 */
export async function computeFingerprints(plan: GraphPlan, env: ListingContext, log: Logger): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const pending: Promise<void>[] = [];
  for (const id of plan.order) {
    const p = plan.nodes.get(id)!;
    if (p.problem) continue;
    if (p.node.is_changed !== undefined) {
      out.set(id, `c:${canonical(p.node.is_changed)}`);
      continue;
    }
    const fingerprint = p.def!.fingerprint;
    if (!fingerprint) continue;
    const constants: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(p.node.inputs)) if (!isLink(v)) constants[k] = unwrapValue(v);
    // A failing fingerprint off the outputs' paths is expected noise (an unused loader's missing file).
    const warn = (e: unknown): void => {
      if (plan.reachable.has(id))
        log.warn(
          `node ${id} (${p.node.class_type}): fingerprint failed, so the node will run: ${e instanceof Error ? e.message : String(e)}`,
        );
    };
    const settle = (fp: unknown): void => {
      const nan = typeof fp === 'number' && Number.isNaN(fp);
      out.set(id, nan ? `${VOLATILE_PREFIX}${randomUUID()}` : `f:${canonical(fp)}`);
    };
    try {
      const fp = fingerprint(constants, env);
      if (fp instanceof Promise) {
        pending.push(
          fp.then(settle, (e: unknown) => {
            warn(e);
            settle(Number.NaN);
          }),
        );
      } else {
        settle(fp);
      }
    } catch (e) {
      warn(e);
      settle(Number.NaN);
    }
  }
  await Promise.all(pending);
  return out;
}
