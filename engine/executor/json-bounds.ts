/**
 * Bounds on JSON that clients send and the journal stores. Deep nesting is refused before anything
 * recursive (JSON.stringify, structured clone, zod) meets it; walking here is iterative.
 */

/** Deepest nesting a node's UI output may have (it goes to history and to every client). */
export const MAX_UI_DEPTH = 48;

/** Whether `value` nests objects/arrays deeper than `max` levels. */
export function deeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
    }
  }
  return false;
}

/** `JSON.stringify(value)`, or undefined when it cannot be serialised (BigInt, cycle, too deep). */
export function tryStringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}

/**
 * Why `value` cannot go into the journal or to a client as JSON, or undefined when it can. The depth
 * check comes first, so cycles (infinitely deep) never reach stringify's recursion.
 */
export function unserialisable(value: unknown, maxDepth: number): string | undefined {
  if (deeperThan(value, maxDepth)) return `nested deeper than ${maxDepth} levels`;
  try {
    JSON.stringify(value);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
