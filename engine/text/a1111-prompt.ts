/**
 * AUTOMATIC1111's prompt syntax: prompt editing and alternation (modules/prompt_parser.py,
 * get_learned_conditioning_prompt_schedules), attention weights (parse_prompt_attention) and
 * extra-network tags (modules/extra_networks.py). None of these throw: where A1111 itself would raise
 * on a malformed prompt, the text is read in the most literal way instead (each case says how).
 */

import { pythonFloat } from './prompt-weights.ts';

/**
 * Python's str.isspace() set, which is what `\s` means in A1111's regexes. JavaScript's `\s` differs
 * (it has U+FEFF and lacks U+001C–U+001F and U+0085), and the difference decides whether a
 * `[a: 5]` is an edit or plain text.
 */
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RE = new RegExp(`[${PY_SPACE}]`);
/** Python's Unicode `\w` (str.isalnum() or `_`): what `\b` looks at around BREAK and what `<\w+:` allows. */
const PY_WORD_RE = /^[\p{L}\p{N}_]$/u;

const isPySpace = (ch: string | undefined): boolean => ch !== undefined && PY_SPACE_RE.test(ch);
const isPyWord = (ch: string | undefined): boolean => ch !== undefined && PY_WORD_RE.test(ch);

/** The code point before index i (surrogate pairs whole), or undefined at the start. */
function charBefore(s: string, i: number): string | undefined {
  if (i <= 0) return undefined;
  const lo = s.charCodeAt(i - 1);
  if (lo >= 0xdc00 && lo <= 0xdfff && i >= 2) {
    const hi = s.charCodeAt(i - 2);
    if (hi >= 0xd800 && hi <= 0xdbff) return s.slice(i - 2, i);
  }
  return s[i - 1];
}

function charAt(s: string, i: number): string | undefined {
  const cp = s.codePointAt(i);
  return cp === undefined ? undefined : String.fromCodePoint(cp);
}

// ---------------------------------------------------------------------------------------------
// Prompt editing and alternation

/**
 * lark's common.SIGNED_NUMBER, which A1111's grammar uses for the `when` of an edit. Digits are ASCII
 * only there, unlike Python's `\d`.
 */
const SIGNED_NUMBER = /[+-]?(?:\d+[eE][+-]?\d+|(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+)/y;

type ScheduleNode =
  | string
  | { kind: 'edit'; before: ScheduleNode[] | null; after: ScheduleNode[]; number: string; when: number }
  | { kind: 'alt'; options: ScheduleNode[][] };

/** Nesting beyond this is read as plain text, so a hostile prompt cannot exhaust the stack. */
const MAX_NESTING = 500;

/**
 * A recursive-descent reading of A1111's lark grammar:
 *
 *   start:      (prompt | /[][():]/+)*
 *   prompt:     (emphasized | scheduled | alternate | plain | WHITESPACE)*
 *   emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
 *   scheduled:  "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
 *   alternate:  "[" prompt ("|" [prompt])+ "]"
 *   plain:      /([^\\\[\]():|]|\\.)+/
 *
 * lark's Earley parser resolves the ambiguity of brackets that could be either structure or stray
 * characters in favour of structure (its doctests `a [b:3]` and `a[b:[c:d:2]:1]e` show it); trying the
 * structure first and falling back to a stray character at the top level gives the same trees.
 * A `|` outside an alternation, or a backslash at the end or before a newline, has no parse at all:
 * A1111 then uses the prompt unchanged, and so does this.
 */
class ScheduleParser {
  private pos = 0;
  /** Bracket results by start position, so a failed bracket is not re-parsed from every stray fallback. */
  private readonly memo = new Map<number, { nodes: ScheduleNode[]; end: number } | null>();

  constructor(private readonly s: string) {}

  parse(): ScheduleNode[] | undefined {
    const out: ScheduleNode[] = [];
    while (true) {
      out.push(...this.prompt(0));
      if (this.pos >= this.s.length) return out;
      const c = this.s[this.pos];
      if (c === '[' || c === ']' || c === '(' || c === ')' || c === ':') {
        out.push(c);
        this.pos++;
      } else return undefined;
    }
  }

  /** Everything `prompt` takes from here; stops at the first character it cannot take. */
  private prompt(depth: number): ScheduleNode[] {
    const s = this.s;
    const out: ScheduleNode[] = [];
    let text = '';
    while (this.pos < s.length) {
      const c = s[this.pos];
      if (c === '[' || c === '(') {
        const r = this.bracket(depth + 1);
        if (!r) break;
        if (text) out.push(text);
        text = '';
        out.push(...r);
        continue;
      }
      if (c === ']' || c === ')' || c === ':' || c === '|') break;
      if (c === '\\') {
        const next = charAt(s, this.pos + 1);
        // lark's `.` is Python's: anything but a newline.
        if (next === undefined || next === '\n') break;
        text += c + next;
        this.pos += 1 + next.length;
        continue;
      }
      text += c;
      this.pos++;
    }
    if (text) out.push(text);
    return out;
  }

  private bracket(depth: number): ScheduleNode[] | undefined {
    const start = this.pos;
    let r = this.memo.get(start);
    if (r === undefined) {
      r = depth > MAX_NESTING ? null : this.parseBracket(depth);
      this.memo.set(start, r);
    }
    if (!r) {
      this.pos = start;
      return undefined;
    }
    this.pos = r.end;
    return r.nodes;
  }

  private parseBracket(depth: number): { nodes: ScheduleNode[]; end: number } | null {
    const s = this.s;
    const open = s[this.pos++];
    const first = this.prompt(depth);
    const c = s[this.pos];
    if (open === '(') {
      if (c === ')') return { nodes: ['(', ...first, ')'], end: this.pos + 1 };
      if (c !== ':') return null;
      this.pos++;
      const second = this.prompt(depth);
      if (s[this.pos] !== ')') return null;
      return { nodes: ['(', ...first, ':', ...second, ')'], end: this.pos + 1 };
    }
    if (c === ']') return { nodes: ['[', ...first, ']'], end: this.pos + 1 };
    if (c === '|') {
      const options = [first];
      while (s[this.pos] === '|') {
        this.pos++;
        options.push(this.prompt(depth));
      }
      if (s[this.pos] !== ']') return null;
      return { nodes: [{ kind: 'alt', options }], end: this.pos + 1 };
    }
    if (c !== ':') return null;
    this.pos++;
    const afterColon = this.pos;
    // [to:when]
    const short = this.numberThenClose();
    if (short) return { nodes: [{ kind: 'edit', before: null, after: first, number: short.number, when: 0 }], end: short.end };
    // [from:to:when]
    this.pos = afterColon;
    const second = this.prompt(depth);
    if (s[this.pos] !== ':') return null;
    this.pos++;
    const long = this.numberThenClose();
    if (!long) return null;
    return { nodes: [{ kind: 'edit', before: first, after: second, number: long.number, when: 0 }], end: long.end };
  }

  /** `[WHITESPACE] NUMBER [WHITESPACE] "]"` from the current position. */
  private numberThenClose(): { number: string; end: number } | undefined {
    const s = this.s;
    let i = this.pos;
    while (i < s.length && isPySpace(s[i])) i++;
    SIGNED_NUMBER.lastIndex = i;
    const m = SIGNED_NUMBER.exec(s);
    if (!m) return undefined;
    i += m[0].length;
    while (i < s.length && isPySpace(s[i])) i++;
    if (s[i] !== ']') return undefined;
    return { number: m[0], end: i + 1 };
  }
}

export interface PromptScheduleOptions {
  /**
   * Steps of a hires-fix second pass. A1111 then schedules over those steps: an integer `when` counts
   * from the end of the first pass, and a decimal one is a fraction of the whole of both passes (`1.5` =
   * half way through the second pass).
   */
  hiresSteps?: number;
  /** A1111's "use old prompt editing timelines": any `when` below 1 is a fraction, anything else a step. */
  oldScheduling?: boolean;
}

/** The largest step count honoured: alternation makes one entry per step. */
const MAX_STEPS = 100_000;

function sanitizeSteps(steps: number): number {
  if (!Number.isFinite(steps)) return 1;
  return Math.min(MAX_STEPS, Math.max(1, Math.trunc(steps)));
}

/**
 * A1111 prompt editing `[from:to:when]` (also `[to:when]` and `[from::when]`, nested freely) and
 * alternation `[a|b|c]` (one option per step, cycling), resolved into the list A1111 builds: each entry
 * holds the prompt text (editing resolved, weight syntax kept for parseA1111Attention) that applies
 * up to and including step `endAtStep` (1-based); the last entry ends at `steps`.
 *
 * `when` follows A1111's current rule: a number written with a decimal point is a fraction of the steps
 * (`0.25`, `1.0` = the end), one without is a step number; the result is truncated to an integer and
 * capped at `steps`, and an edit switches after that step. Identical consecutive texts are kept apart,
 * as A1111 keeps them. Never throws: a prompt A1111 cannot parse applies unchanged for every step.
 *
 * Where stray brackets at the top level make the grammar ambiguous (`[a:b:3] ]`), lark picks among
 * the readings by hash order, so A1111's own result changes from one run of it to the next; this
 * always takes the reading that resolves every edit it can, which is one of A1111's.
 */
export function promptSchedule(text: string, steps: number, opts: PromptScheduleOptions = {}): { endAtStep: number; text: string }[] {
  const base = sanitizeSteps(steps);
  const hires = opts.hiresSteps !== undefined && !opts.oldScheduling ? sanitizeSteps(opts.hiresSteps) : undefined;
  const total = hires ?? base;
  const intOffset = hires === undefined ? 0 : base;
  const fltOffset = hires === undefined ? 0 : 1;
  const tree = new ScheduleParser(text).parse();
  if (!tree) return [{ endAtStep: total, text }];

  const ends = new Set<number>([total]);
  const collect = (nodes: readonly ScheduleNode[]): void => {
    for (const n of nodes) {
      if (typeof n === 'string') continue;
      if (n.kind === 'alt') {
        for (let i = 1; i <= total; i++) ends.add(i);
        n.options.forEach(collect);
        continue;
      }
      let v = Number(n.number);
      if (opts.oldScheduling) v = v < 1 ? v * total : v;
      else if (n.number.includes('.')) v = (v - fltOffset) * total;
      else v -= intOffset;
      // Python's int() truncates; an infinite `when` (1e999) would raise there and simply means "never" here.
      n.when = Math.min(total, Math.trunc(v));
      if (n.when >= 1) ends.add(n.when);
      if (n.before) collect(n.before);
      collect(n.after);
    }
  };
  collect(tree);

  const render = (nodes: readonly ScheduleNode[], step: number): string => {
    let out = '';
    for (const n of nodes) {
      if (typeof n === 'string') out += n;
      else if (n.kind === 'alt') out += render(n.options[(step - 1) % n.options.length], step);
      else if (step <= n.when) out += n.before ? render(n.before, step) : '';
      else out += render(n.after, step);
    }
    return out;
  };
  return [...ends].sort((a, b) => a - b).map((endAtStep) => ({ endAtStep, text: render(tree, endAtStep) }));
}

// ---------------------------------------------------------------------------------------------
// Attention

const ROUND = 1.1;
/** A1111 multiplies by 1/1.1 rather than dividing by 1.1; the two differ in the last bit. */
const SQUARE = 1 / 1.1;

/** `:\s*([+-]?[.\d]+)\s*\)` with Python's Unicode `\s` and `\d`. */
const ATTENTION_WEIGHT = new RegExp(`:[${PY_SPACE}]*([+-]?[.\\p{Nd}]+)[${PY_SPACE}]*\\)`, 'uy');
/** A1111's plain-text alternative: a run of anything but `\ ( ) [ ] :`. */
const ATTENTION_PLAIN = /[^\\()[\]:]+/y;

/** Value of a Unicode decimal digit: Nd digits come in runs of ten starting at zero. */
function digitValue(ch: string): number {
  const cp = ch.codePointAt(0) as number;
  if (cp >= 0x30 && cp <= 0x39) return cp - 0x30;
  let start = cp;
  while (start > 0 && /\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}

/** Python float() of `[+-]?[.\d]+` (Unicode digits allowed, as there); undefined where Python raises. */
function attentionFloat(s: string): number | undefined {
  const m = /^([+-]?)((?:\p{Nd})*)(?:\.((?:\p{Nd})*))?$/u.exec(s);
  if (!m || (!m[2] && !m[3])) return undefined;
  const ascii = (d: string): string => [...d].map(digitValue).join('');
  return Number(`${m[1]}${ascii(m[2]) || '0'}.${ascii(m[3] ?? '') || '0'}`);
}

/**
 * A1111's `\s*\bBREAK\b\s*` split: the spaces on both sides go with the keyword, and `\b` uses Python's
 * Unicode word characters (JavaScript's `\b` is ASCII only).
 */
function splitBreak(text: string): string[] {
  const parts: string[] = [];
  let from = 0;
  let search = 0;
  while (true) {
    const k = text.indexOf('BREAK', search);
    if (k < 0) break;
    search = k + 1;
    if (isPyWord(charBefore(text, k)) || isPyWord(charAt(text, k + 5))) continue;
    let start = k;
    while (start > from && isPySpace(text[start - 1])) start--;
    let end = k + 5;
    while (end < text.length && isPySpace(text[end])) end++;
    parts.push(text.slice(from, start));
    from = end;
    search = end;
  }
  parts.push(text.slice(from));
  return parts;
}

/**
 * A1111's parse_prompt_attention: `(x)` ×1.1, `[x]` ×(1/1.1), `(x:w)` ×w, nesting multiplies,
 * `\( \) \[ \] \\` are literal characters (any other backslash is dropped, as there), `BREAK` as a
 * separate word becomes `['BREAK', -1]` (inside brackets it is multiplied like any text, as there),
 * brackets never closed apply to the end of the prompt, stray closers are text, and adjacent segments
 * of equal weight are merged. Always returns at least one segment.
 *
 * A1111 crashes on a weight like `(a:1.2.3)`; here such a `:` is text and the `)` closes as ×1.1.
 */
export function parseA1111Attention(text: string): [string, number][] {
  const res: [string, number][] = [];
  const round: number[] = [];
  const square: number[] = [];
  const multiplyRange = (start: number, m: number): void => {
    for (let p = start; p < res.length; p++) res[p][1] *= m;
  };
  const plain = (t: string): void => {
    splitBreak(t).forEach((part, i) => {
      if (i > 0) res.push(['BREAK', -1]);
      res.push([part, 1]);
    });
  };

  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\') {
      const next = text[i + 1];
      if (next === '(' || next === ')' || next === '[' || next === ']' || next === '\\') {
        res.push([next, 1]);
        i += 2;
      } else {
        res.push(['', 1]);
        i += 1;
      }
    } else if (c === '(') {
      round.push(res.length);
      i++;
    } else if (c === '[') {
      square.push(res.length);
      i++;
    } else if (c === ':') {
      ATTENTION_WEIGHT.lastIndex = i;
      const m = ATTENTION_WEIGHT.exec(text);
      const w = m ? attentionFloat(m[1]) : undefined;
      if (m && round.length && w !== undefined) {
        multiplyRange(round.pop() as number, w);
        i += m[0].length;
      } else if (m && !round.length) {
        plain(m[0]);
        i += m[0].length;
      } else {
        plain(':');
        i++;
      }
    } else if (c === ')') {
      if (round.length) multiplyRange(round.pop() as number, ROUND);
      else plain(')');
      i++;
    } else if (c === ']') {
      if (square.length) multiplyRange(square.pop() as number, SQUARE);
      else plain(']');
      i++;
    } else {
      ATTENTION_PLAIN.lastIndex = i;
      const m = ATTENTION_PLAIN.exec(text) as RegExpExecArray;
      plain(m[0]);
      i += m[0].length;
    }
  }
  for (const p of round) multiplyRange(p, ROUND);
  for (const p of square) multiplyRange(p, SQUARE);
  if (res.length === 0) res.push(['', 1]);

  for (let k = 0; k + 1 < res.length;) {
    if (res[k][1] === res[k + 1][1]) {
      res[k][0] += res[k + 1][0];
      res.splice(k + 1, 1);
    } else k++;
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Extra networks

export interface LoraTag {
  name: string;
  unet: number;
  te: number;
}

export interface ExtraNetworkTag {
  /** The word before the first colon: `hypernet`, `ti`, ... */
  type: string;
  /** The colon-separated arguments, as A1111 passes them on. */
  args: string[];
}

/** A1111's re_extra_net `<(\w+):([^>]+)>`, with Python's Unicode `\w`. */
const EXTRA_NET = /<([\p{L}\p{N}_]+):([^>]+)>/gu;

/**
 * A1111's extra-network tags: every `<type:arg:arg...>` is removed from the text (nothing else is
 * touched, so surrounding spaces stay), as A1111 removes them before any other parsing. `lora` and
 * its alias `lyco` become LoRA requests with A1111's argument order: `<lora:name>` (1, 1),
 * `<lora:name:w>` (both w), `<lora:name:te:unet>` (text encoder first, then UNet), and the named
 * forms `te=`, `unet=` which win over positional ones; a fourth positional or `dyn=` (dynamic dim)
 * is accepted and ignored. Other types are returned in `others` for the caller to use or report.
 * A tag A1111 would choke on (no name, a multiplier that is not a finite number) is reported through
 * onWarning and skipped.
 */
export function extractLoraTags(
  text: string,
  opts: { onWarning?: (message: string) => void } = {},
): { text: string; loras: LoraTag[]; others: ExtraNetworkTag[] } {
  const loras: LoraTag[] = [];
  const others: ExtraNetworkTag[] = [];
  const out = text.replace(EXTRA_NET, (whole: string, type: string, argText: string) => {
    const args = argText.split(':');
    if (type !== 'lora' && type !== 'lyco') {
      others.push({ type, args });
      return '';
    }
    const positional: string[] = [];
    const named = new Map<string, string>();
    for (const a of args) {
      // Python's split('=', 2) gives three parts for `a=b=c`, which A1111 then counts as positional.
      const parts = a.split('=');
      if (parts.length === 2) named.set(parts[0], parts[1]);
      else positional.push(a);
    }
    const num = (raw: string | undefined, fallback: number, what: string): number | undefined => {
      if (raw === undefined) return fallback;
      const v = pythonFloat(raw);
      if (v === undefined || !Number.isFinite(v)) {
        opts.onWarning?.(`${whole}: the ${what} multiplier ${JSON.stringify(raw)} is not a finite number; this LoRA is skipped`);
        return undefined;
      }
      return v;
    };
    const name = positional[0];
    if (name === undefined || name === '') {
      opts.onWarning?.(`${whole}: no LoRA name; the tag is skipped`);
      return '';
    }
    let te = num(positional[1], 1, 'text encoder');
    if (te === undefined) return '';
    te = num(named.get('te'), te, 'text encoder');
    if (te === undefined) return '';
    let unet = num(positional[2], te, 'UNet');
    if (unet === undefined) return '';
    unet = num(named.get('unet'), unet, 'UNet');
    if (unet === undefined) return '';
    loras.push({ name, unet, te });
    return '';
  });
  return { text: out, loras, others };
}
