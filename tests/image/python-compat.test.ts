import { describe, expect, it } from 'vitest';
import { pyJsonDumps, pyRound } from '../../engine/image/python-compat.ts';

describe('pyRound (Python 3 round)', () => {
  it('rounds ties to even and everything else to nearest', () => {
    // Python: [round(x) for x in [0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999, 2.5000001, 3.5]]
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999, 2.5000001, 3.5].map(pyRound)).toEqual([0, 2, 2, 0, -2, 2, 3, 4]);
    expect(pyRound(7 * 0.5)).toBe(4);
    expect(pyRound(5 * 0.5)).toBe(2);
    expect(() => pyRound(Number.NaN)).toThrow(/cannot round/);
  });
});

describe('pyJsonDumps (json.dumps defaults)', () => {
  it('matches Python’s output byte for byte', () => {
    // Python 3.11: json.dumps({"a": [1, 2.5, "é\n\x7f\x01", 1e-05, 123456789012.5, 0.1, -0.0, 1e22],
    //                          "b": None, "c": True, "k\u2603": "\U0001F600"})
    const value = { a: [1, 2.5, 'é\n\x7f\x01', 1e-5, 123456789012.5, 0.1, -0, 1e22], b: null, c: true, 'k\u2603': '\u{1F600}' };
    expect(pyJsonDumps(value)).toBe(
      '{"a": [1, 2.5, "\\u00e9\\n\\u007f\\u0001", 1e-05, 123456789012.5, 0.1, -0.0, 1e+22], "b": null, "c": true, "k\\u2603": "\\ud83d\\ude00"}',
    );
    // json.dumps(1e-4), json.dumps(0.0001234), json.dumps(1.5e300)
    expect([1e-4, 0.0001234, 1.5e300].map(pyJsonDumps)).toEqual(['0.0001', '0.0001234', '1.5e+300']);
  });

  it('writes an API prompt the way ComfyUI embeds it', () => {
    const prompt = { '3': { class_type: 'KSampler', inputs: { seed: 42, cfg: 7.5, model: ['4', 0], text: 'a "cat"\t' } } };
    expect(pyJsonDumps(prompt)).toBe(
      '{"3": {"class_type": "KSampler", "inputs": {"seed": 42, "cfg": 7.5, "model": ["4", 0], "text": "a \\"cat\\"\\t"}}}',
    );
    expect(JSON.parse(pyJsonDumps(prompt))).toEqual(prompt);
  });

  it('refuses circular structures', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => pyJsonDumps(a)).toThrow(/circular/);
  });
});
