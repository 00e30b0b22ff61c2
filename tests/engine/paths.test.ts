import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderPaths } from '../../engine/paths/folders.ts';
import { PathEscapeError, safeJoin, writeFileAtomic } from '../../engine/core/safe-path.ts';

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-paths-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function touch(p: string, content = 'x'): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

describe('safeJoin', () => {
  it('joins plain relative names inside the root', () => {
    expect(safeJoin(root, 'a/b.png')).toBe(path.join(root, 'a', 'b.png'));
    expect(safeJoin(root, './c.png')).toBe(path.join(root, 'c.png'));
  });

  it.each([
    ['../etc/passwd', "contains '..'"],
    ['a/../../x', "contains '..'"],
    ['..\\x', "contains '..'"],
    ['/etc/passwd', 'is absolute'],
    ['\\\\server\\share', 'is absolute'],
    ['C:\\Windows\\x', 'has a drive letter'],
    ['c:x', 'has a drive letter'],
    ['a\0b', 'NUL'],
  ])('refuses %j (%s)', (name, reason) => {
    expect(() => safeJoin(root, name)).toThrow(PathEscapeError);
    expect(() => safeJoin(root, name)).toThrow(reason);
  });

  it('refuses a symlink that leads out of the root, for reads and for writes below it', () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-outside-'));
    try {
      touch(path.join(outside, 'secret.txt'));
      fs.symlinkSync(outside, path.join(root, 'link'));
      expect(() => safeJoin(root, 'link/secret.txt')).toThrow('symbolic link');
      expect(() => safeJoin(root, 'link/new/file.png')).toThrow('symbolic link');
    } finally {
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });
});

describe('writeFileAtomic', () => {
  it('never overwrites in exclusive mode and leaves no temp files behind', () => {
    const f = path.join(root, 'atomic', 'out.txt');
    writeFileAtomic(f, 'one', { exclusive: true });
    expect(() => writeFileAtomic(f, 'two', { exclusive: true })).toThrow(/EEXIST/);
    expect(fs.readFileSync(f, 'utf8')).toBe('one');
    expect(fs.readdirSync(path.dirname(f))).toEqual(['out.txt']);
  });
});

describe('FolderPaths', () => {
  it('lists model files recursively, sorted, filtered by extension, first search path wins', () => {
    const base = path.join(root, 'base1');
    touch(path.join(base, 'models/checkpoints/b.safetensors'));
    touch(path.join(base, 'models/checkpoints/sub/a.ckpt'));
    touch(path.join(base, 'models/checkpoints/readme.txt'));
    const extra = path.join(root, 'extra-ckpts');
    touch(path.join(extra, 'b.safetensors'), 'extra');
    touch(path.join(extra, 'c.SAFETENSORS'));
    const p = new FolderPaths({ baseDir: base });
    p.addPath('checkpoints', extra);
    expect(p.listFiles('checkpoints')).toEqual(['b.safetensors', 'c.SAFETENSORS', 'sub/a.ckpt']);
    expect(fs.readFileSync(p.require('checkpoints', 'b.safetensors'), 'utf8')).toBe('x');
    expect(p.find('checkpoints', 'c.SAFETENSORS')).toBe(path.join(extra, 'c.SAFETENSORS'));
    expect(() => p.require('checkpoints', 'nope.safetensors')).toThrow(/not found; looked in/);
    expect(() => p.find('checkpoints', '../../etc/passwd')).toThrow(PathEscapeError);
  });

  it('maps legacy folder names and knows the text_encoders second folder', () => {
    const base = path.join(root, 'base2');
    touch(path.join(base, 'models/clip/te.safetensors'));
    touch(path.join(base, 'models/unet/u.safetensors'));
    const p = new FolderPaths({ baseDir: base });
    expect(p.listFiles('clip')).toEqual(['te.safetensors']);
    expect(p.listFiles('diffusion_models')).toEqual(['u.safetensors']);
    expect(() => p.listFiles('nonsense')).toThrow(/unknown model folder 'nonsense'/);
  });

  it('reads extra_model_paths.yaml with an a1111 section as ComfyUI does', () => {
    const a1111 = path.join(root, 'webui');
    touch(path.join(a1111, 'models/Stable-diffusion/sd15.safetensors'));
    touch(path.join(a1111, 'models/Lora/l1.safetensors'));
    touch(path.join(a1111, 'models/LyCORIS/l2.safetensors'));
    touch(path.join(a1111, 'embeddings/emb.pt'));
    const yamlDir = path.join(root, 'cfg');
    fs.mkdirSync(yamlDir, { recursive: true });
    const yamlFile = path.join(yamlDir, 'extra_model_paths.yaml');
    fs.writeFileSync(
      yamlFile,
      [
        'a1111:',
        '    base_path: ../webui/',
        '    checkpoints: models/Stable-diffusion',
        '    loras: |',
        '         models/Lora',
        '         models/LyCORIS',
        '    embeddings: embeddings',
        'mine:',
        '    base_path: ../mine',
        '    is_default: true',
        '    checkpoints: ckpts',
        '    unet: unets',
        'empty:',
      ].join('\n'),
    );
    touch(path.join(root, 'mine/ckpts/sd15.safetensors'), 'mine');
    const p = new FolderPaths({ baseDir: path.join(root, 'base3') });
    p.loadExtraModelPaths(yamlFile);
    expect(p.listFiles('checkpoints')).toEqual(['sd15.safetensors']);
    expect(fs.readFileSync(p.require('checkpoints', 'sd15.safetensors'), 'utf8')).toBe('mine');
    expect(p.listFiles('loras')).toEqual(['l1.safetensors', 'l2.safetensors']);
    expect(p.listFiles('embeddings')).toEqual(['emb.pt']);
    expect(p.searchPaths('diffusion_models')[0]).toBe(path.join(root, 'mine/unets'));
  });

  it('reports a malformed extra_model_paths.yaml with the file name', () => {
    const f = path.join(root, 'bad.yaml');
    fs.writeFileSync(f, 'a1111:\n  checkpoints: [1, 2]\n');
    expect(() => new FolderPaths({ baseDir: root }).loadExtraModelPaths(f)).toThrow(/bad\.yaml.*a1111\.checkpoints/);
    fs.writeFileSync(f, 'a1111: [\n');
    expect(() => new FolderPaths({ baseDir: root }).loadExtraModelPaths(f)).toThrow(/cannot read extra model paths file/);
  });

  it('resolves annotated input names and refuses escapes', () => {
    const p = new FolderPaths({ baseDir: path.join(root, 'base4') });
    expect(p.annotatedPath('x.png')).toBe(path.join(p.inputDir, 'x.png'));
    expect(p.annotatedPath('sub/x.png [output]')).toBe(path.join(p.outputDir, 'sub', 'x.png'));
    expect(p.annotatedPath('x.png [temp]')).toBe(path.join(p.tempDir, 'x.png'));
    expect(() => p.annotatedPath('../x.png [output]')).toThrow(PathEscapeError);
  });

  it('ships an example extra_model_paths.yaml that parses and maps nothing while commented out', () => {
    const p = new FolderPaths({ baseDir: path.join(root, 'base5') });
    const before = p.searchPaths('checkpoints');
    p.loadExtraModelPaths(path.resolve(import.meta.dirname, '../../extra_model_paths.yaml'));
    expect(p.searchPaths('checkpoints')).toEqual(before);
  });
});
