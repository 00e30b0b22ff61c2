/**
 * ComfyUI's prompt weighting: `(text)` multiplies by 1.1 per level, `(text:1.3)` sets the weight,
 * `\(` and `\)` are literal brackets. Unbalanced brackets never throw: they are read as ComfyUI reads
 * them (an unclosed group runs to the end of the text).
 */

const ESC_CLOSE = '\u0000\u0001';
const ESC_OPEN = '\u0000\u0002';

export function escapeImportant(text: string): string {
  return text.replaceAll('\\)', ESC_CLOSE).replaceAll('\\(', ESC_OPEN);
}

export function unescapeImportant(text: string): string {
  return text.replaceAll(ESC_CLOSE, ')').replaceAll(ESC_OPEN, '(');
}

function parseParentheses(s: string): string[] {
  const out: string[] = [];
  let current = '';
  let level = 0;
  for (const ch of s) {
    if (ch === '(') {
      if (level === 0) {
        if (current) out.push(current);
        current = '(';
      } else current += ch;
      level++;
    } else if (ch === ')') {
      level--;
      if (level === 0) {
        out.push(current + ')');
        current = '';
      } else current += ch;
    } else current += ch;
  }
  if (current) out.push(current);
  return out;
}

const PY_FLOAT = /^[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/;
const PY_SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;

/**
 * Python's float(str): surrounding whitespace allowed, digits may be grouped with single underscores,
 * `inf`/`infinity`/`nan` in any case; hex and JavaScript's `Infinity` spelling are not numbers there.
 * Undefined when Python would raise.
 */
export function pythonFloat(text: string): number | undefined {
  const s = text.replace(/^\p{White_Space}+|\p{White_Space}+$/gu, '');
  if (PY_FLOAT.test(s)) return Number(s.replaceAll('_', ''));
  const m = PY_SPECIAL.exec(s);
  if (!m) return undefined;
  if (m[2].toLowerCase() === 'nan') return Number.NaN;
  return m[1] === '-' ? -Infinity : Infinity;
}

/** Segments of (escaped) text with their weights, as ComfyUI's token_weights. */
export function tokenWeights(text: string, weight = 1.0): [string, number][] {
  const out: [string, number][] = [];
  for (let x of parseParentheses(text)) {
    let w = weight;
    if (x.length >= 2 && x.startsWith('(') && x.endsWith(')')) {
      x = x.slice(1, -1);
      const colon = x.lastIndexOf(':');
      w *= 1.1;
      if (colon > 0) {
        const num = pythonFloat(x.slice(colon + 1));
        if (num !== undefined) {
          w = num;
          x = x.slice(0, colon);
        }
      }
      out.push(...tokenWeights(x, w));
    } else {
      out.push([x, weight]);
    }
  }
  return out;
}

/** The whole pipeline: segments with weights, escapes resolved. */
export function parsePromptWeights(text: string): [string, number][] {
  return tokenWeights(escapeImportant(text)).map(([t, w]) => [unescapeImportant(t), w]);
}
