import { describe, expect, it } from 'vitest';
import { escapeImportant, parsePromptWeights, pythonFloat, tokenWeights, unescapeImportant } from '../../engine/text/prompt-weights.ts';

/**
 * Expected segments worked out by hand from ComfyUI's rules (comfy/sd1_clip.py): parentheses group
 * at nesting level 0, a group multiplies by 1.1 unless its text ends in `:<float>` (rightmost colon,
 * not at position 0), nested groups compound, `\(` and `\)` are literal.
 */
describe('prompt weight syntax', () => {
  it.each<[string, [string, number][]]>([
    ['plain text', [['plain text', 1]]],
    [
      'a (cat) b',
      [
        ['a ', 1],
        ['cat', 1.1],
        [' b', 1],
      ],
    ],
    ['((cat))', [['cat', 1.1 * 1.1]]],
    ['(((cat)))', [['cat', 1.1 * 1.1 * 1.1]]],
    ['(cat:1.5)', [['cat', 1.5]]],
    ['(cat:0)', [['cat', 0]]],
    ['(cat:-1)', [['cat', -1]]],
    [
      '(a (b:2) c:0.5)',
      [
        ['a ', 0.5],
        ['b', 2],
        [' c', 0.5],
      ],
    ],
    ['((a):1.3)', [['a', 1.3 * 1.1]]],
    ['(a:b:1.2)', [['a:b', 1.2]]], // rightmost colon
    ['(cat: 1.5 )', [['cat', 1.5]]], // Python's float() trims whitespace
    ['(cat:1_5)', [['cat', 15]]], // and accepts digit grouping
    ['(cat:.5)', [['cat', 0.5]]],
    ['(cat:1e1)', [['cat', 10]]],
    ['(cat:0x10)', [['cat:0x10', 1.1]]], // hex is not a Python float
    ['(cat:1.5x)', [['cat:1.5x', 1.1]]],
    ['(cat:infinity)', [['cat', Infinity]]], // Python spells it so too
    ['(cat:)', [['cat:', 1.1]]],
    ['(:1.5)', [[':1.5', 1.1]]], // colon at position 0 is ignored
    ['()', []],
    ['\\(not a group\\)', [['(not a group)', 1]]],
    ['(a \\(b\\):1.2)', [['a (b)', 1.2]]],
    [
      'unclosed (cat',
      [
        ['unclosed ', 1],
        ['(cat', 1],
      ],
    ],
    ['extra) close', [['extra) close', 1]]],
    ['a) (b', [['a) (b', 1]]], // level goes -1 at ")" so "(" never opens a group
  ])('%s', (text, want) => {
    const got = parsePromptWeights(text);
    expect(got.map(([t]) => t)).toEqual(want.map(([t]) => t));
    got.forEach(([, w], i) => expect(w).toBeCloseTo(want[i][1], 12));
  });

  it('takes the weight from the last colon whenever what follows is a float', () => {
    expect(parsePromptWeights('(time: 10:30)')).toEqual([['time: 10', 30]]);
  });

  it("parses floats as Python's float() does", () => {
    expect(pythonFloat(' 1.25\n')).toBe(1.25);
    expect(pythonFloat('+3.')).toBe(3);
    expect(pythonFloat('-2E-2')).toBe(-0.02);
    expect(pythonFloat('1__0')).toBeUndefined();
    expect(pythonFloat('_1')).toBeUndefined();
    expect(pythonFloat('inf')).toBe(Infinity);
    expect(pythonFloat('-Infinity')).toBe(-Infinity);
    expect(pythonFloat('NaN')).toBeNaN();
    expect(pythonFloat('')).toBeUndefined();
    expect(pythonFloat('1.2.3')).toBeUndefined();
    expect(pythonFloat('0b11')).toBeUndefined();
  });

  it('escapes survive the weight parsing and come back as brackets', () => {
    const e = escapeImportant('\\(x\\)');
    expect(e).not.toContain('(');
    expect(unescapeImportant(e)).toBe('(x)');
    expect(tokenWeights(e)).toEqual([[e, 1]]);
  });
});
