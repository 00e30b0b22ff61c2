import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';
import { typesCompatible } from './doc.ts';
import { categoryName, chineseNodeName } from './i18n.ts';

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

/**
 * How often ComfyUI users reach for a core node, most used first (the classes of the default and
 * example workflows, then the usual helpers). A rank adds a little to a match, so among names that
 * match equally well the common node comes first: `Load Checkpoint` before `Save Checkpoint`.
 */
const POPULAR = [
  'KSampler',
  'CheckpointLoaderSimple',
  'CLIPTextEncode',
  'VAEDecode',
  'EmptyLatentImage',
  'SaveImage',
  'LoadImage',
  'PreviewImage',
  'LoraLoader',
  'VAEEncode',
  'VAELoader',
  'ControlNetLoader',
  'ControlNetApplyAdvanced',
  'KSamplerAdvanced',
  'LatentUpscaleBy',
  'ImageScale',
  'CLIPSetLastLayer',
  'UpscaleModelLoader',
  'ImageUpscaleWithModel',
  'VAEEncodeForInpaint',
  'SetLatentNoiseMask',
  'LoraLoaderModelOnly',
  'ConditioningCombine',
  'ImageScaleBy',
  'LatentUpscale',
  'SamplerCustomAdvanced',
  'KSamplerSelect',
  'BasicScheduler',
  'RandomNoise',
  'CFGGuider',
  'Note',
  'MarkdownNote',
  'PrimitiveNode',
  'Reroute',
  'LoadImageMask',
  'ImageInvert',
  'VAEDecodeTiled',
  'ConditioningSetArea',
  'ImagePadForOutpaint',
];
const POPULARITY = new Map(POPULAR.map((n, i) => [n, 60 * (1 - i / POPULAR.length)]));

export function popularity(classType: string): number {
  return POPULARITY.get(classType) ?? 0;
}

function specType(spec: unknown): string | undefined {
  const t = (spec as unknown[])[0];
  return typeof t === 'string' ? t : undefined;
}

/**
 * Whether a node can take the end of a link of `type`: with `side` 'input' (a link dragged from an
 * output) it needs an input of that type, with 'output' an output of it; without a side, either.
 */
function fits(e: ObjectInfoEntry, type: string, side?: 'input' | 'output'): boolean {
  const all = { ...(e.input.required ?? {}), ...(e.input.optional ?? {}) };
  const input = () =>
    Object.values(all).some((spec) => {
      const t = specType(spec);
      return t !== undefined && typesCompatible(type, t);
    });
  const output = () => e.output.some((o) => typesCompatible(o, type));
  return side === 'input' ? input() : side === 'output' ? output() : input() || output();
}

/**
 * Node classes ranked for a query over names, display names, Chinese names, aliases and categories,
 * and their popularity; filtered by the type of a dropped link.
 */
export function rankNodes(info: ObjectInfo, query: string, filterType?: string, side?: 'input' | 'output'): string[] {
  const scored: [string, number][] = [];
  const q = query.trim();
  for (const [name, e] of Object.entries(info)) {
    if (filterType && !fits(e, filterType, side)) continue;
    const zh = chineseNodeName(name);
    const s = Math.max(
      fuzzyScore(q, e.display_name),
      fuzzyScore(q, name),
      // 'save latent' finds SaveLatent: class names have no spaces.
      q.includes(' ') ? fuzzyScore(q.replace(/\s+/g, ''), name) : -1,
      zh ? fuzzyScore(q, zh) : -1,
      fuzzyScore(q, e.category) * 0.5,
      fuzzyScore(q, categoryName(e.category, 'zh')) * 0.5,
      ...(e.search_aliases ?? []).map((a) => fuzzyScore(q, a) * 0.8),
    );
    if (s >= 0) scored.push([name, s + popularity(name)]);
  }
  return scored.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([n]) => n);
}
