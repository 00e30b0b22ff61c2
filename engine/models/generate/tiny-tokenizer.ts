import { bytesToUnicode } from '../../text/clip-tokenizer.ts';

/** Common prompt words, from which the tiny tokenizer learns its merges. */
const WORDS = `a an the of and in on with at by for to from photo painting portrait landscape city street night day
light dark sunset sunrise sky cloud clouds mountain mountains river lake sea ocean beach forest tree trees flower flowers
garden house castle tower lighthouse bridge road car train boat ship cat dog bird horse fox wolf dragon robot woman man
girl boy child old young face eyes hair smile dress coat hat red blue green yellow orange purple pink black white gold
silver bright soft warm cold detailed intricate beautiful cinematic dramatic studio watercolor oil digital art style
illustration render sharp focus high quality best masterpiece blurry lowres watermark text signature ugly deformed
snow rain fog mist storm fire water stone wood glass metal winter summer autumn spring morning evening dawn dusk`
  .split(/\s+/)
  .filter(Boolean);

export interface BpeFiles {
  /** token → id, in id order. */
  vocab: Record<string, number>;
  /** Merges by rank. */
  merges: [string, string][];
}

/**
 * A valid CLIP BPE tokenizer for the tiny model, learnt here: the 256 byte symbols and their `</w>`
 * forms (in CLIP's order), then one symbol per merge learnt from WORDS (most frequent adjacent pair
 * first, ties broken by the pair's text so the result is deterministic), BOS/EOS as the last two ids.
 */
export function makeTinyTokenizer(maxMerges = 400): BpeFiles {
  const base = bytesToUnicode().order;
  const symbols = [...base, ...base.map((s) => `${s}</w>`)];
  let words = WORDS.map((w) => {
    const ch = [...w];
    return [...ch.slice(0, -1), `${ch[ch.length - 1]}</w>`];
  });
  const merges: [string, string][] = [];
  for (let m = 0; m < maxMerges; m++) {
    const counts = new Map<string, number>();
    for (const w of words) {
      for (let i = 0; i < w.length - 1; i++) {
        const k = `${w[i]} ${w[i + 1]}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
    }
    let best = '';
    let bestN = 0;
    for (const [k, n] of counts) {
      if (n > bestN || (n === bestN && k < best)) {
        best = k;
        bestN = n;
      }
    }
    if (!best) break;
    const [a, b] = best.split(' ') as [string, string];
    merges.push([a, b]);
    symbols.push(a + b);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i < w.length - 1 && w[i] === a && w[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w[i]);
      }
      return out;
    });
  }
  const vocab: Record<string, number> = {};
  let next = 0;
  for (const s of [...symbols, '<|startoftext|>', '<|endoftext|>']) if (!Object.hasOwn(vocab, s)) vocab[s] = next++;
  return { vocab, merges };
}

/** merges.txt as CLIP ships it: a version line, then one `a b` pair per line. */
export function mergesText(merges: readonly [string, string][]): string {
  return ['#version: 0.2', ...merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n';
}
