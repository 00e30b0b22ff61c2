/**
 * Python's round() and json.dumps, reproduced where ComfyUI's results depend on them: sizes computed
 * with round() (half to even, so 2.5 → 2) and the JSON that SaveImage embeds in PNG text chunks.
 */

export { pyRound } from '../core/py-round.ts';

const ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

/** A JSON string literal as json.dumps writes it with ensure_ascii: every char outside ' '..'~' escaped. */
function pyString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const code = s.charCodeAt(i);
    if (code >= 0x20 && code <= 0x7e && ch !== '"' && ch !== '\\') out += ch;
    else out += ESCAPES[ch] ?? `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return `${out}"`;
}

/**
 * Python's float repr: the shortest digits that round-trip (as JavaScript's), written in exponent
 * form when the exponent is below -4 or at least 16, with a two-digit signed exponent.
 */
function pyFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (Object.is(x, -0)) return '-0.0';
  const [mant, expPart] = x.toExponential().split('e');
  const exp = Number(expPart);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let body: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  } else if (exp < 0) {
    body = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else if (digits.length <= exp + 1) {
    body = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  } else {
    body = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  return neg ? `-${body}` : body;
}

/**
 * `json.dumps(value)` with Python's defaults: `", "` and `": "` separators, ASCII output with
 * `\uXXXX` escapes, integers without a fraction. JavaScript has one number type, so a whole number
 * is written as an int (json.dumps would write `8.0` for a float 8.0; the prompt's own JSON decides).
 */
export function pyJsonDumps(value: unknown): string {
  const seen = new Set<object>();
  const enc = (v: unknown): string => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'number') {
      return Number.isInteger(v) && Math.abs(v) < 1e21 && !Object.is(v, -0) ? BigInt(v).toString() : pyFloat(v);
    }
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'string') return pyString(v);
    if (typeof v === 'object') {
      if (seen.has(v)) throw new Error('cannot encode a circular structure as JSON');
      seen.add(v);
      let s: string;
      if (Array.isArray(v)) {
        s = `[${v.map((x) => enc(x)).join(', ')}]`;
      } else {
        const parts: string[] = [];
        for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
          if (x === undefined || typeof x === 'function') continue;
          parts.push(`${pyString(k)}: ${enc(x)}`);
        }
        s = `{${parts.join(', ')}}`;
      }
      seen.delete(v);
      return s;
    }
    throw new Error(`cannot encode a ${typeof v} as JSON`);
  };
  return enc(value);
}
