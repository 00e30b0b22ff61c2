import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { cmdCache } from '../../cli/cache.ts';
import { createBuiltSession } from '../../engine/models/runtime/sessions.ts';
import { expandHalfWeightsParallel } from '../../engine/onnx/expand-half.ts';
import { buildStamp, KeptExpansions, KEPT_FOLDER, resolveKeptBudget } from '../../engine/onnx/kept-expansions.ts';
import { readPrepacked } from '../../engine/onnx/prepacked.ts';
import { makeDemoBase, runCli } from '../workflows/run-cli.ts';
import { build, collectingLog, cpu, outputOf } from './packed-graph.ts';

const { lines, log } = collectingLog();

describe('float32 copies of saved graphs kept for fast loads (kept-expansions.ts)', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-kept-'));
  const kept = new KeptExpansions(join(root, KEPT_FOLDER), 1 << 30);

  it('keeps the second load’s expansion, byte for byte, and opens it at the next load: the same outputs, bit for bit', async () => {
    const dir = join(root, 'a');
    const file = build(dir, true);
    // First build and load (no saved graph yet: nothing to keep), then the first load from the saved graph keeps its copy.
    const want = await outputOf(await createBuiltSession(file, cpu, { log, optimizeInChild: false, kept }));
    expect(existsSync(kept.root) ? readdirSync(kept.root) : []).toEqual([]);
    // The first load of the saved graph only notes it (admission on second use); the second keeps its copy.
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept })), want)).toBe(0);
    await kept.idle();
    expect(readdirSync(kept.root)).toEqual(['a.seen']);
    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept })), want)).toBe(0);
    await kept.idle();
    expect(readdirSync(kept.root)).toEqual(['a']);
    expect(lines.filter((l) => l.startsWith('WARN'))).toEqual([]);
    expect(lines.some((l) => /kept a float32 copy of .*optimized\.onnx/.test(l))).toBe(true);
    const copy = join(kept.root, 'a');
    expect(readdirSync(copy).sort()).toEqual(['model.onnx', 'stamp.json', 'weights.bin']);
    // The same bytes as an expansion of the saved graph with ORT's packed copies.
    const x = (await expandHalfWeightsParallel(join(dir, 'optimized.onnx'), { packed: readPrepacked(dir), scratchRoot: tmpdir() }))!;
    expect(x.packed).toBe(2);
    expect(Buffer.compare(readFileSync(join(copy, 'weights.bin')), readFileSync(join(x.file, '..', 'weights.bin')))).toBe(0);
    x.dispose();
    // No expansion folder is left behind, in the store or in /dev/shm.
    expect(readdirSync(kept.root).filter((n) => n.startsWith('weft-expand-'))).toEqual([]);

    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept })), want)).toBe(0);
    expect(lines.some((l) => /opened .*optimized\.onnx from its kept float32 copy/.test(l))).toBe(true);
    expect(lines.some((l) => /expanded .* MiB of 16-bit cached weights/.test(l))).toBe(false);

    // A build file changed (a graph saved again): the copy no longer serves; the next load makes a new one.
    // That load also records ORT's keys again (the record names the graph's size and time) and notes the build;
    // the load after it keeps a copy with the packed form.
    const opt = join(dir, 'optimized.onnx');
    const st = statSync(opt);
    utimesSync(opt, st.atime, new Date(st.mtimeMs + 5000));
    // It could never serve again (build files only change forward): listed as an orphan, and the lookup removes it.
    expect(kept.list().find((c) => c.key === 'a')?.orphan).toBe(true);
    expect(kept.find(dir)).toBeUndefined();
    expect(existsSync(copy)).toBe(false);
    for (let i = 0; i < 2; i++) {
      lines.length = 0;
      expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept })), want)).toBe(0);
      await kept.idle();
      expect(lines.some((l) => /expanded .* MiB of 16-bit cached weights/.test(l))).toBe(true);
    }
    expect(lines.some((l) => /with ORT's packed form of 2 MatMul\/Gemm weights/.test(l))).toBe(true);
    expect(kept.find(dir)).toBe(join(copy, 'model.onnx'));
    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept })), want)).toBe(0);
    expect(lines.some((l) => /from its kept float32 copy/.test(l))).toBe(true);

    // A copy ORT cannot load (its graph damaged on disk) is removed, and the load expands the saved graph instead.
    writeFileSync(join(copy, 'model.onnx'), 'not a model');
    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept })), want)).toBe(0);
    expect(lines.some((l) => /^WARN removed the kept float32 copy of .*optimized\.onnx, which ORT could not load/.test(l))).toBe(true);
    expect(lines.some((l) => /expanded .* MiB of 16-bit cached weights/.test(l))).toBe(true);
    expect(existsSync(copy)).toBe(false);
    // The next two loads keep it again (admission on second use).
    for (let i = 0; i < 2; i++) await (await createBuiltSession(file, cpu, { log, kept })).release();
    await kept.idle();
    expect(kept.find(dir)).toBe(join(copy, 'model.onnx'));
  });

  it('opens a copy the kernel did not cache in huge folios from a copy in /dev/shm, and the rest in place', async () => {
    const dir = join(root, 'a');
    const stampFile = join(kept.root, 'a', 'stamp.json');
    const stamp = JSON.parse(readFileSync(stampFile, 'utf8')) as { huge: boolean };
    for (const huge of [false, true]) {
      writeFileSync(stampFile, JSON.stringify({ ...stamp, huge }));
      const x = kept.open(dir)!;
      const inShm = existsSync('/dev/shm') && !huge;
      expect(x.file.startsWith('/dev/shm/'), `huge ${huge}`).toBe(inShm);
      expect(x.file === join(kept.root, 'a', 'model.onnx')).toBe(!inShm);
      expect(Buffer.compare(readFileSync(join(x.file, '..', 'weights.bin')), readFileSync(join(kept.root, 'a', 'weights.bin')))).toBe(0);
      x.dispose();
      expect(existsSync(x.file)).toBe(!inShm);
    }
    // A damaged copy (its weights cut short) is not opened.
    writeFileSync(join(kept.root, 'a', 'weights.bin'), Buffer.alloc(16));
    expect(kept.open(dir)).toBeUndefined();
  });

  it('with pre-packing off (WEFT_PREPACK=0) keeps the expansion without ORT`s packed copies, and either kind of copy serves either kind of load', async () => {
    const dir = join(root, 'b');
    const file = build(dir, true);
    // A packing load saves the graph and records ORT's packing; the unpacked loads then make the copy.
    const packedBits = await outputOf(await createBuiltSession(file, cpu, { log, optimizeInChild: false, kept }));
    expect(readPrepacked(dir)).toBeDefined();
    const unpackedBits = await outputOf(await createBuiltSession(file, cpu, { log, kept, prepack: false }));
    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept, prepack: false })), unpackedBits)).toBe(0);
    await kept.idle();
    expect(lines.some((l) => /packed form of/.test(l))).toBe(false);
    const plain = (await expandHalfWeightsParallel(join(dir, 'optimized.onnx'), { scratchRoot: tmpdir() }))!;
    expect(plain.packed).toBe(0);
    expect(Buffer.compare(readFileSync(join(kept.root, 'b', 'weights.bin')), readFileSync(join(plain.file, '..', 'weights.bin')))).toBe(0);
    plain.dispose();
    // A packing load opens the copy without packed forms (ORT packs at creation either way), with the packed bits.
    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept })), packedBits)).toBe(0);
    expect(lines.some((l) => /from its kept float32 copy/.test(l))).toBe(true);
    // And an unpacked load opens a copy with them (ORT leaves them unread), with the unpacked bits.
    const withPacks = (await expandHalfWeightsParallel(join(dir, 'optimized.onnx'), {
      packed: readPrepacked(dir),
      scratchRoot: tmpdir(),
    }))!;
    expect(withPacks.packed).toBe(2);
    kept.discard(dir);
    await kept.keep(dir, join(withPacks.file, '..'), buildStamp(dir));
    withPacks.dispose();
    lines.length = 0;
    expect(Buffer.compare(await outputOf(await createBuiltSession(file, cpu, { log, kept, prepack: false })), unpackedBits)).toBe(0);
    expect(lines.some((l) => /from its kept float32 copy/.test(l))).toBe(true);
    expect(lines.filter((l) => l.startsWith('WARN'))).toEqual([]);
    kept.discard(dir);
  });

  it('holds the copies within their budget, least recently used first, and drops those whose build is gone', async () => {
    const small = new KeptExpansions(join(root, 'small-store'), 0);
    const dirs = ['b', 'c', 'd'].map((n) => join(root, n));
    for (const d of dirs) {
      const file = build(d, true);
      await (await createBuiltSession(file, cpu, { log, optimizeInChild: false })).release();
    }
    // Measure one copy, then give the store room for two.
    const one = new KeptExpansions(join(root, 'measure'), 1 << 30);
    for (let i = 0; i < 2; i++) await (await createBuiltSession(join(dirs[0], 'model.onnx'), cpu, { log, kept: one })).release();
    await one.idle();
    const size = one.list()[0].bytes;
    expect(size).toBeGreaterThan(0);
    // A copy over the budget is never made: the load expands for itself.
    expect(small.fits(1)).toBe(false);
    const store = new KeptExpansions(join(root, 'store'), 2 * size + 100);
    let now = Date.UTC(2026, 11, 7);
    store.clock = () => now;
    /** Two loads: the second keeps the copy (admission on second use). */
    const loadTwice = async (d: string, into: KeptExpansions): Promise<void> => {
      for (let i = 0; i < 2; i++) await (await createBuiltSession(join(d, 'model.onnx'), cpu, { log, kept: into })).release();
      await into.idle();
    };
    for (const d of dirs.slice(0, 2)) {
      await loadTwice(d, store);
      now += 60_000;
    }
    // b used again, so c is the least recently used when d's copy needs the room.
    expect(store.find(dirs[0])).toBeDefined();
    now += 60_000;
    await loadTwice(dirs[2], store);
    expect(
      store
        .list()
        .map((c) => c.key)
        .sort(),
    ).toEqual(['b', 'd']);
    // d's build removed: its copy is an orphan, and pruning removes it.
    rmSync(dirs[2], { recursive: true });
    expect(store.list().find((c) => c.key === 'd')?.orphan).toBe(true);
    // A note of a first load (admission on second use) goes with its build too.
    writeFileSync(join(store.root, 'gone.seen'), '');
    writeFileSync(join(store.root, 'b.seen'), '');
    expect(store.prune().map((c) => c.key)).toEqual(['d']);
    expect(readdirSync(store.root).filter((n) => n.endsWith('.seen'))).toEqual(['b.seen']);
    rmSync(join(store.root, 'b.seen'));
    expect(store.list().map((c) => c.key)).toEqual(['b']);
  });

  it('takes its budget from WEFT_KEEP_EXPANDED (0 switches the copies off) and names the variable in an error', () => {
    expect(resolveKeptBudget({})).toBe(8 * 2 ** 30);
    expect(resolveKeptBudget({ WEFT_KEEP_EXPANDED: '512M' })).toBe(512 * 2 ** 20);
    expect(KeptExpansions.inCache(root, resolveKeptBudget({ WEFT_KEEP_EXPANDED: '0' }))).toBeUndefined();
    expect(() => resolveKeptBudget({ WEFT_KEEP_EXPANDED: 'lots' })).toThrow(/WEFT_KEEP_EXPANDED: 'lots' is not a size/);
  });

  it('weft cache list shows the copies; weft cache prune --all removes them with the builds', () => {
    const cacheRoot = root;
    // The cache root here is `root`: builds a–c sit in it, the copies in root/expanded.
    const out: string[] = [];
    expect(cmdCache('list', { cacheDir: cacheRoot, print: (l) => out.push(l) })).toBe(0);
    const listed = out.join('\n').split('\n');
    expect(listed.some((l) => /^float32 copies kept for fast loads: 1, /.test(l))).toBe(true);
    expect(listed.some((l) => l.startsWith('float32 copy') && l.endsWith(`${join(root, 'a')}  a`))).toBe(true);
    out.length = 0;
    cmdCache('prune', { cacheDir: cacheRoot, all: true, print: (l) => out.push(l) });
    expect(out.filter((l) => /^removed the float32 copy a \(2 KiB\)$/.test(l))).toHaveLength(1);
    expect(existsSync(join(cacheRoot, KEPT_FOLDER))).toBe(false);
  });
});

describe('weft run with kept copies', () => {
  it('runs the demo workflow three times: the second keeps copies of the expanded builds, the third opens them; the same pixels', async () => {
    const base = await makeDemoBase('weft-kept-cli-');
    try {
      const env = { WEFT_KEEP_EXPANDED: '2G' };
      const store = join(base, 'cache', KEPT_FOLDER);
      // The first run builds each part and opens it with the NCHWc layout done by the expansion (nchwc.ts: no
      // optimised graph to save), noting each build; the second keeps copies (admission on second use).
      const first = runCli(base, 'txt2img.json', [], { env });
      expect(readdirSync(store).filter((n) => !n.endsWith('.seen'))).toEqual([]);
      expect(
        readdirSync(join(base, 'cache'))
          .filter((n) => n.startsWith('unet-'))
          .flatMap((d) => readdirSync(join(base, 'cache', d))),
      ).not.toContain('optimized.onnx');
      const second = runCli(base, 'txt2img.json', [], { env });
      // The command waited for its copies before exiting: they are there for the next process.
      const copies = readdirSync(store).filter((n) => !n.startsWith('weft-expand-') && !n.endsWith('.seen'));
      expect(copies.filter((n) => /^(unet|clip)-/.test(n)).length).toBe(2);
      const unet = join(
        store,
        copies.find((n) => n.startsWith('unet-'))!,
      );
      const used = statSync(join(unet, 'stamp.json')).mtimeMs;
      const third = runCli(base, 'txt2img.json', [], { env });
      // Opened: its last use moved on, and the copy is the one the second run wrote (not written again).
      expect(statSync(join(unet, 'stamp.json')).mtimeMs).toBeGreaterThan(used);
      expect(
        readdirSync(store)
          .filter((n) => !n.startsWith('weft-expand-') && !n.endsWith('.seen'))
          .sort(),
      ).toEqual(copies.sort());
      const pixels = await Promise.all([first, second, third].map((r) => sharp(r.files[0]).raw().toBuffer()));
      expect(new Set([first, second, third].map((r) => r.files[0])).size).toBe(3);
      expect(Buffer.compare(pixels[0], pixels[1])).toBe(0);
      expect(Buffer.compare(pixels[0], pixels[2])).toBe(0);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  }, 300_000);
});
