import type { Conditioning, ConditioningEntry } from '../../engine/sampling/conditioning.ts';
import { defineNode } from '../../engine/registry/types.ts';
import { extractLoraTags, parseA1111Attention, promptSchedule } from '../../engine/text/a1111-prompt.ts';
import { checkPromptLength, type EmbeddingLookup, type WeightedToken } from '../../engine/text/clip-tokenizer.ts';

/**
 * A prompt in AUTOMATIC1111's syntax: `(x)`, `[x]`, `(x:w)`, `BREAK`, embeddings by bare file name,
 * A1111's emphasis (weights scale the tokens, then each chunk's mean is restored), and prompt editing
 * `[from:to:when]` / alternation `[a|b]`, which become one conditioning entry per distinct text with
 * the sampler steps it applies to. `<lora:...>` tags are removed here (LoraTagLoader applies them).
 */
export const CLIPTextEncodeA1111 = defineNode({
  name: 'CLIPTextEncodeA1111',
  displayName: 'CLIP Text Encode (A1111 syntax)',
  category: 'conditioning',
  description:
    "Encodes a prompt written in AUTOMATIC1111's syntax, including prompt editing [from:to:when] and alternation [a|b]. Set steps to the sampler's steps so integer `when` values count the same steps.",
  searchAliases: ['a1111', 'automatic1111', 'webui prompt', 'prompt editing', 'BREAK'],
  inputs: {
    required: {
      text: { type: 'STRING', multiline: true, dynamicPrompts: true },
      clip: { type: 'CLIP' },
      steps: {
        type: 'INT',
        default: 20,
        min: 1,
        max: 10000,
        tooltip: 'The sampling steps the schedule counts ([a:b:10] switches after step 10 of these).',
      },
      bare_embedding_names: {
        type: 'BOOLEAN',
        default: true,
        tooltip: 'Also use an embedding where its file name appears as a word, as A1111 does.',
      },
    },
  },
  outputs: [{ type: 'CONDITIONING', name: 'CONDITIONING' }],
  async run({ text, clip, steps, bare_embedding_names }, ctx) {
    // The schedule parser would copy a huge text once per step before the tokenizer's bound saw it.
    checkPromptLength(text);
    // An SDXL CLIP tokenizes once per text encoder: say each problem once.
    const warned = new Set<string>();
    const warn = (m: string): void => {
      if (!warned.has(m)) ctx.log.warn(`text: ${m}`);
      warned.add(m);
    };
    const stripped = extractLoraTags(text, { onWarning: warn }).text;
    const schedule = promptSchedule(stripped, steps);
    const out: ConditioningEntry[] = [];
    const encoded = new Map<string, ConditioningEntry>();
    let start = 0;
    for (const s of schedule) {
      let e = encoded.get(s.text);
      if (!e) {
        const segments = parseA1111Attention(s.text);
        const tokenize = (embeddings: EmbeddingLookup | undefined): WeightedToken[][] =>
          clip.tokenizer.tokenizeA1111(segments, { embeddings, bareEmbeddingNames: bare_embedding_names, onWarning: warn });
        const { cond, pooled } = clip.encodePerEncoder
          ? await clip.encodePerEncoder(tokenize, ctx.signal, { emphasis: 'a1111' })
          : await clip.encodeChunks(tokenize(clip.embeddings), ctx.signal, { emphasis: 'a1111' });
        e = { cond, pooled };
        encoded.set(s.text, e);
      }
      out.push(schedule.length === 1 ? e : { ...e, stepRange: { start: start / steps, end: s.endAtStep / steps } });
      start = s.endAtStep;
    }
    const result: Conditioning = out;
    return [result];
  },
});

export const nodes = [CLIPTextEncodeA1111];
