import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { typesCompatible } from './doc.ts';

/** Subsequence match score: consecutive and word-start hits score higher; -1 when not a match. */
export function fuzzyScore(query: string, text: string): number {
  const q = query.toLowerCase();
  const s = text.toLowerCase();
  if (!q) return 0;
  const idx = s.indexOf(q);
  if (idx >= 0) return 1000 - idx * 2 - (s.length - q.length) * 0.1 + (idx === 0 ? 200 : 0);
  let score = 0;
  let j = 0;
  let prev = -2;
  for (let i = 0; i < s.length && j < q.length; i++) {
    if (s[i] === q[j]) {
      score += i === prev + 1 ? 8 : 2;
      if (i === 0 || /[\s_/\-()]/.test(s[i - 1]) || (text[i] >= 'A' && text[i] <= 'Z')) score += 6;
      prev = i;
      j++;
    }
  }
  return j === q.length ? score : -1;
}

function acceptsType(e: ObjectInfoEntry, type: string): boolean {
  const all = { ...(e.input.required ?? {}), ...(e.input.optional ?? {}) };
  return (
    Object.values(all).some((spec) => {
      const t = (spec as unknown[])[0];
      return typeof t === 'string' && typesCompatible(type, t);
    }) || e.output.some((o) => typesCompatible(o, type))
  );
}

/** Node classes ranked for a query over names, display names and categories, filtered by socket type. */
export function rankNodes(info: ObjectInfo, query: string, filterType?: string): string[] {
  const scored: [string, number][] = [];
  for (const [name, e] of Object.entries(info)) {
    if (filterType && !acceptsType(e, filterType)) continue;
    const s = Math.max(
      fuzzyScore(query, e.display_name),
      fuzzyScore(query, name),
      fuzzyScore(query, e.category) * 0.5,
      ...(e.search_aliases ?? []).map((a) => fuzzyScore(query, a) * 0.8),
    );
    if (s >= 0) scored.push([name, s]);
  }
  return scored.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([n]) => n);
}
