import { describe, expect, it } from 'vitest';
import { extractLoraTags, parseA1111Attention, promptSchedule } from '../../engine/text/a1111-prompt.ts';

const sched = (text: string, steps: number, opts?: Parameters<typeof promptSchedule>[2]) =>
  promptSchedule(text, steps, opts).map((e): [number, string] => [e.endAtStep, e.text]);

/**
 * Expected schedules: A1111's own doctests and comments in modules/prompt_parser.py, plus cases
 * worked out by its rules (and checked against lark running A1111's grammar). One doctest there,
 * `a [{b|d{:.5] c`, is stale: lark finds no parse for it, so A1111 returns it unchanged.
 */
describe('promptSchedule (A1111 prompt editing and alternation)', () => {
  it.each<[string, number, [number, string][]]>([
    ['test', 10, [[10, 'test']]],
    [
      'a [b:3]',
      10,
      [
        [3, 'a '],
        [10, 'a b'],
      ],
    ],
    [
      'a [b: 3]',
      10,
      [
        [3, 'a '],
        [10, 'a b'],
      ],
    ],
    [
      'a [[[b]]:2]',
      10,
      [
        [2, 'a '],
        [10, 'a [[b]]'],
      ],
    ],
    [
      '[(a:2):3]',
      10,
      [
        [3, ''],
        [10, '(a:2)'],
      ],
    ],
    [
      'a [b : c : 1] d',
      10,
      [
        [1, 'a b  d'],
        [10, 'a  c  d'],
      ],
    ],
    [
      'a[b:[c:d:2]:1]e',
      10,
      [
        [1, 'abe'],
        [2, 'ace'],
        [10, 'ade'],
      ],
    ],
    ['a [unbalanced', 10, [[10, 'a [unbalanced']]],
    [
      'a [b:.5] c',
      10,
      [
        [5, 'a  c'],
        [10, 'a b c'],
      ],
    ],
    ['a [{b|d{:.5] c', 10, [[10, 'a [{b|d{:.5] c']]],
    [
      '((a][:b:c [d:3]',
      10,
      [
        [3, '((a][:b:c '],
        [10, '((a][:b:c d'],
      ],
    ],
    [
      '[a|(b:1.1)]',
      4,
      [
        [1, 'a'],
        [2, '(b:1.1)'],
        [3, 'a'],
        [4, '(b:1.1)'],
      ],
    ],
    [
      '[fe|]male',
      4,
      [
        [1, 'female'],
        [2, 'male'],
        [3, 'female'],
        [4, 'male'],
      ],
    ],
    [
      '[fe|||]male',
      6,
      [
        [1, 'female'],
        [2, 'male'],
        [3, 'male'],
        [4, 'male'],
        [5, 'female'],
        [6, 'male'],
      ],
    ],
    // The examples.
    [
      'a [b:c:0.5] d',
      10,
      [
        [5, 'a b d'],
        [10, 'a c d'],
      ],
    ],
    [
      '[a|b]',
      4,
      [
        [1, 'a'],
        [2, 'b'],
        [3, 'a'],
        [4, 'b'],
      ],
    ],
    [
      '[a|b|c] x',
      5,
      [
        [1, 'a x'],
        [2, 'b x'],
        [3, 'c x'],
        [4, 'a x'],
        [5, 'b x'],
      ],
    ],
    [
      '[a:[b:c:8]:4]',
      10,
      [
        [4, 'a'],
        [8, 'b'],
        [10, 'c'],
      ],
    ],
    [
      '[a:b:3]',
      10,
      [
        [3, 'a'],
        [10, 'b'],
      ],
    ],
    [
      'a [b::3] c',
      10,
      [
        [3, 'a b c'],
        [10, 'a  c'],
      ],
    ],
    [
      'a [b:3] c',
      10,
      [
        [3, 'a  c'],
        [10, 'a b c'],
      ],
    ],
    // A `when` past the end never switches; 0 or less switches before the first step.
    ['[a:b:30]', 10, [[10, 'a']]],
    ['[a:b:0]', 10, [[10, 'b']]],
    ['[a:b:-2]', 10, [[10, 'b']]],
    ['[a:b:1e999]', 10, [[10, 'a']]],
    // A decimal point makes a fraction, so 1.0 is the last step and 2.5 is past it; 1e1 is step 10.
    ['[a:b:1.0]', 10, [[10, 'a']]],
    [
      '[a:b:1e1]',
      20,
      [
        [10, 'a'],
        [20, 'b'],
      ],
    ],
    [
      '[a:b:0.33]',
      10,
      [
        [3, 'a'],
        [10, 'b'],
      ],
    ],
    // Alternation inside an edit, and an edit inside alternation.
    [
      '[[x|y]:z:2]',
      3,
      [
        [1, 'x'],
        [2, 'y'],
        [3, 'z'],
      ],
    ],
    [
      '[x|[y:z:2]]',
      4,
      [
        [1, 'x'],
        [2, 'y'],
        [3, 'x'],
        [4, 'z'],
      ],
    ],
    // Weight syntax is kept for the attention parser.
    [
      '(a:1.2) [b:(c:1.3):2] [d]',
      3,
      [
        [2, '(a:1.2) b [d]'],
        [3, '(a:1.2) (c:1.3) [d]'],
      ],
    ],
    // Escaped brackets are text, with their backslashes.
    ['\\[a:b:1\\]', 10, [[10, '\\[a:b:1\\]']]],
    // No parse at all (a `|` outside alternation, a trailing backslash): the prompt as it is.
    ['a | b [c:d:2]', 10, [[10, 'a | b [c:d:2]']]],
    ['[c:d:2] a\\', 10, [[10, '[c:d:2] a\\']]],
    ['', 10, [[10, '']]],
  ])('%j at %i steps', (text, steps, expected) => {
    expect(sched(text, steps)).toEqual(expected);
  });

  it("reproduces A1111's header example at 100 steps", () => {
    const p =
      'fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]';
    expect(sched(p, 100)).toEqual([
      [25, 'fantasy landscape with a mountain and an oak in foreground shoddy'],
      [50, 'fantasy landscape with a lake and an oak in foreground in background shoddy'],
      [60, 'fantasy landscape with a lake and an oak in foreground in background masterful'],
      [75, 'fantasy landscape with a lake and an oak in background masterful'],
      [100, 'fantasy landscape with a lake and a christmas tree in background masterful'],
    ]);
  });

  it('keeps identical consecutive texts apart, as A1111 does', () => {
    expect(sched('[a:a:2]', 4)).toEqual([
      [2, 'a'],
      [4, 'a'],
    ]);
  });

  it("follows A1111's hires-fix and old-timeline rules when asked", () => {
    expect(sched('a [b:.5] c', 10, { hiresSteps: 10 })).toEqual([[10, 'a b c']]);
    expect(sched('a [b:1.5] c', 10, { hiresSteps: 10 })).toEqual([
      [5, 'a  c'],
      [10, 'a b c'],
    ]);
    expect(sched('a [b:13] c', 10, { hiresSteps: 10 })).toEqual([
      [3, 'a  c'],
      [10, 'a b c'],
    ]);
    expect(sched('[a:b:1.0]', 10, { oldScheduling: true })).toEqual([
      [1, 'a'],
      [10, 'b'],
    ]);
    expect(sched('[a:b:0.5]', 10, { oldScheduling: true })).toEqual([
      [5, 'a'],
      [10, 'b'],
    ]);
    expect(sched('[a:b:0.5]', 10, { oldScheduling: true, hiresSteps: 30 })).toEqual([
      [5, 'a'],
      [10, 'b'],
    ]);
  });

  it('resolves every edit it can where stray brackets make the grammar ambiguous', () => {
    // lark resolves this ambiguity by hash order, so A1111's answer varies between its runs; this
    // reading is one of its answers.
    expect(sched('[a:b:3] ]', 10)).toEqual([
      [3, 'a ]'],
      [10, 'b ]'],
    ]);
  });

  it('never throws, whatever the input', () => {
    expect(sched('['.repeat(20_000), 5)).toEqual([[5, '['.repeat(20_000)]]);
    expect(sched(`${'[a:'.repeat(3000)}b${':1]'.repeat(3000)}`, 3).length).toBeGreaterThan(0);
    expect(sched('[a|b]', 0)).toEqual([[1, 'a']]);
    expect(sched('[a:b:2]', Number.NaN)).toEqual([[1, 'a']]);
    for (const t of ['\\', '(', ')', ']', ':', '|', '[|]', '[:]', '[::]', '[:1]', '[::1]', '(:)', '\\\n'])
      expect(() => promptSchedule(t, 3)).not.toThrow();
    expect(sched('[:1]x', 2)).toEqual([
      [1, 'x'],
      [2, 'x'],
    ]);
  });
});

describe('parseA1111Attention', () => {
  it.each<[string, [string, number][]]>([
    // A1111's doctests, with its printed floats: equal bit for bit.
    ['normal text', [['normal text', 1]]],
    [
      'an (important) word',
      [
        ['an ', 1],
        ['important', 1.1],
        [' word', 1],
      ],
    ],
    ['(unbalanced', [['unbalanced', 1.1]]],
    ['\\(literal\\]', [['(literal]', 1]]],
    ['(unnecessary)(parens)', [['unnecessaryparens', 1.1]]],
    [
      'a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).',
      [
        ['a ', 1],
        ['house', 1.5730000000000004],
        [' ', 1.1],
        ['on', 1],
        [' a ', 1.1],
        ['hill', 0.55],
        [', sun, ', 1.1],
        ['sky', 1.4641000000000006],
        ['.', 1.1],
      ],
    ],
    // [x] multiplies by 1/1.1, which is not quite x / 1.1.
    ['[x]', [['x', 0.9090909090909091]]],
    ['[[x]]', [['x', 0.8264462809917354]]],
    [
      '(x:0.5) [y',
      [
        ['x', 0.5],
        [' ', 1],
        ['y', 0.9090909090909091],
      ],
    ],
    ['(x: 1.5 )', [['x', 1.5]]],
    [
      '(a (b:2) c:0.5)',
      [
        ['a ', 0.5],
        ['b', 1],
        [' c', 0.5],
      ],
    ],
    // Stray closers and weights without an open bracket are text.
    ['a) b] c:1.2)', [['a) b] c:1.2)', 1]]],
    ['a:b', [['a:b', 1]]],
    // Escapes: \\ is one backslash; any other lone backslash is dropped.
    ['a\\\\b \\q', [['a\\b q', 1]]],
    [
      '\\[x\\] (y\\))',
      [
        ['[x] ', 1],
        ['y)', 1.1],
      ],
    ],
    // BREAK as a word on its own, spaces around it absorbed.
    [
      'a BREAK b',
      [
        ['a', 1],
        ['BREAK', -1],
        ['b', 1],
      ],
    ],
    [
      'a\n BREAK\tb',
      [
        ['a', 1],
        ['BREAK', -1],
        ['b', 1],
      ],
    ],
    [
      'BREAK',
      [
        ['', 1],
        ['BREAK', -1],
        ['', 1],
      ],
    ],
    [
      'a BREAK BREAK b',
      [
        ['a', 1],
        ['BREAK', -1],
        ['', 1],
        ['BREAK', -1],
        ['b', 1],
      ],
    ],
    ['BREAKS xBREAK break BREAK_ BREAKé', [['BREAKS xBREAK break BREAK_ BREAKé', 1]]],
    [
      'a,BREAK,b',
      [
        ['a,', 1],
        ['BREAK', -1],
        [',b', 1],
      ],
    ],
    // Inside brackets BREAK is multiplied like text, so the chunker no longer sees it as a break.
    [
      'a (b BREAK c)',
      [
        ['a ', 1],
        ['b', 1.1],
        ['BREAK', -1.1],
        ['c', 1.1],
      ],
    ],
    ['', [['', 1]]],
    ['()', [['', 1]]],
    // Where A1111 would crash on float('1.2.3'), the colon is text and ')' closes as ×1.1.
    [
      '(a:1.2.3) b',
      [
        ['a:1.2.3', 1.1],
        [' b', 1],
      ],
    ],
    // Python's \d takes any decimal digit, so (a:١.٥) is weight 1.5 there too.
    ['(a:١.٥)', [['a', 1.5]]],
    ['(a:+.5)', [['a', 0.5]]],
  ])('%j', (text, expected) => {
    expect(parseA1111Attention(text)).toEqual(expected);
  });

  it('merges adjacent segments of equal weight, including across brackets', () => {
    expect(parseA1111Attention('(a)(b) c (d:1.1)')).toEqual([
      ['ab', 1.1],
      [' c ', 1],
      ['d', 1.1],
    ]);
  });

  it('never throws', () => {
    for (const t of ['(((((', ']]]]', '\\', ':)', '(:)', ':1)', '((a:b:c:1.2))', 'x'.repeat(100_000)])
      expect(() => parseA1111Attention(t)).not.toThrow();
  });
});

describe('extractLoraTags', () => {
  it.each<[string, string, { name: string; unet: number; te: number }[]]>([
    ['a <lora:style:0.8> cat', 'a  cat', [{ name: 'style', unet: 0.8, te: 0.8 }]],
    ['<lora:style>', '', [{ name: 'style', unet: 1, te: 1 }]],
    // A1111's order: text encoder, then UNet.
    ['<lora:style:0.5:0.25>x', 'x', [{ name: 'style', unet: 0.25, te: 0.5 }]],
    ['<lora:style:te=0.3:unet=0.7>', '', [{ name: 'style', unet: 0.7, te: 0.3 }]],
    ['<lora:style:0.5:unet=2>', '', [{ name: 'style', unet: 2, te: 0.5 }]],
    ['<lora:style:1:1:8>', '', [{ name: 'style', unet: 1, te: 1 }]],
    ['<lyco:sub/dir name:.5>', '', [{ name: 'sub/dir name', unet: 0.5, te: 0.5 }]],
    [
      '<lora:a:1> and <lora:b: -0.5 >',
      ' and ',
      [
        { name: 'a', unet: 1, te: 1 },
        { name: 'b', unet: -0.5, te: -0.5 },
      ],
    ],
    ['no tags <lora> <lora:> <:x> <lo ra:x>', 'no tags <lora> <lora:> <:x> <lo ra:x>', []],
  ])('%j', (text, rest, loras) => {
    const r = extractLoraTags(text);
    expect(r.text).toBe(rest);
    expect(r.loras).toEqual(loras);
  });

  it('removes other extra-network tags too, as A1111 does, and returns them', () => {
    const r = extractLoraTags('a <hypernet:h:0.5> b <lora:l> c');
    expect(r.text).toBe('a  b  c');
    expect(r.others).toEqual([{ type: 'hypernet', args: ['h', '0.5'] }]);
    expect(r.loras).toEqual([{ name: 'l', unet: 1, te: 1 }]);
  });

  it('skips, with a warning, tags A1111 would fail on', () => {
    const warnings: string[] = [];
    const r = extractLoraTags('<lora:x:abc> <lora:y:inf> <lora:te=1> <lora:z:0.5>', { onWarning: (m) => warnings.push(m) });
    expect(r.text).toBe('   ');
    expect(r.loras).toEqual([{ name: 'z', unet: 0.5, te: 0.5 }]);
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toContain('<lora:x:abc>');
    expect(warnings[2]).toContain('no LoRA name');
  });
});
