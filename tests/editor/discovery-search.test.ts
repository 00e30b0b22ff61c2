/**
 * Node search over the real node classes (issue 19, item 5): name match first, popularity among equal
 * matches, Chinese names, link-side filtering; the frontend-only classes are offered; zh-CN names of
 * sockets and categories; Markdown notes render without interpreting HTML; error text loses its paths.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderToStaticMarkup } from 'react-dom/server';
import { afterAll, describe, expect, it } from 'vitest';
import { FRONTEND_ENTRIES } from '../../editor/src/frontend-nodes.ts';
import { categoryName, socketName } from '../../editor/src/i18n.ts';
import { renderMarkdown } from '../../editor/src/NoteNode.tsx';
import { progressTitle } from '../../editor/src/ProgressBar.tsx';
import { stripPaths } from '../../editor/src/redact-paths.ts';
import { rankNodes } from '../../editor/src/search.ts';
import { imageRefOf, widgetValueOf } from '../../editor/src/uploads.ts';
import { FolderPaths } from '../../engine/paths/folders.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { createBuiltinRegistry } from '../../nodes/index.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-search-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const info: ObjectInfo = { ...createBuiltinRegistry().objectInfo({ paths: new FolderPaths({ baseDir: dir }) }), ...FRONTEND_ENTRIES };

function spec(name: string): Record<string, unknown[]> {
  const e = info[name];
  return { ...(e.input.required ?? {}), ...(e.input.optional ?? {}) } as Record<string, unknown[]>;
}

describe('node search', () => {
  it("ranks Load Checkpoint before Save Checkpoint for 'checkpoint', and common nodes first among equal matches", () => {
    const r = rankNodes(info, 'checkpoint');
    expect(r.indexOf('CheckpointLoaderSimple')).toBeGreaterThanOrEqual(0);
    expect(r.indexOf('CheckpointLoaderSimple')).toBeLessThan(r.indexOf('CheckpointSave'));
    expect(r[0]).toBe('CheckpointLoaderSimple');
    expect(rankNodes(info, 'ksampler').slice(0, 2)).toEqual(['KSampler', 'KSamplerAdvanced']);
    expect(rankNodes(info, 'load image')[0]).toBe('LoadImage');
    expect(rankNodes(info, 'vae decode')[0]).toBe('VAEDecode');
    // A much better match still wins over popularity: the exact name before the popular partial one.
    expect(rankNodes(info, 'VAEDecodeTiled')[0]).toBe('VAEDecodeTiled');
    expect(rankNodes(info, 'save latent')[0]).toBe('SaveLatent');
  });

  it('finds nodes by their Chinese names and categories', () => {
    expect(rankNodes(info, 'K采样器')[0]).toBe('KSampler');
    expect(rankNodes(info, '加载图像')[0]).toBe('LoadImage');
    expect(rankNodes(info, 'Checkpoint加载器')[0]).toBe('CheckpointLoaderSimple');
    expect(rankNodes(info, '注释')[0]).toBe('Note');
    expect(rankNodes(info, '遮罩')).toContain('InvertMask');
  });

  it('offers Note, MarkdownNote and PrimitiveNode beside the server classes', () => {
    expect(rankNodes(info, 'note').slice(0, 2).sort()).toEqual(['MarkdownNote', 'Note']);
    expect(rankNodes(info, 'primitive')[0]).toBe('PrimitiveNode');
  });

  it('a link dragged from an output offers only nodes with a matching input; from an input, only nodes with a matching output', () => {
    const takesModel = rankNodes(info, '', 'MODEL', 'input');
    expect(takesModel).toContain('KSampler');
    expect(takesModel).not.toContain('CheckpointLoaderSimple');
    for (const n of takesModel) expect(Object.values(spec(n)).some((s) => s[0] === 'MODEL' || s[0] === '*')).toBe(true);
    const givesModel = rankNodes(info, '', 'MODEL', 'output');
    expect(givesModel).toContain('CheckpointLoaderSimple');
    expect(givesModel).not.toContain('EmptyLatentImage');
    for (const n of givesModel) expect(info[n].output.some((o) => o === 'MODEL' || o === '*')).toBe(true);
    const imagesIn = rankNodes(info, 'save', 'IMAGE', 'input');
    expect(imagesIn[0]).toBe('SaveImage');
    expect(imagesIn).not.toContain('SaveLatent');
  });
});

describe('zh-CN', () => {
  it('names inputs, widgets, outputs and categories with the zh locale terms, other names unchanged', () => {
    expect(
      ['model', 'positive', 'negative', 'latent_image', 'seed', 'steps', 'denoise', 'ckpt_name'].map((n) => socketName(n, 'zh')),
    ).toEqual(['模型', '正面条件', '负面条件', 'Latent图像', '种子', '步数', '降噪', 'Checkpoint名称']);
    expect(socketName('IMAGE', 'zh')).toBe('图像');
    expect(socketName('some_custom_input', 'zh')).toBe('some_custom_input');
    expect(socketName('model', 'en')).toBe('model');
    expect(categoryName('latent/inpaint', 'zh')).toBe('Latent/局部重绘');
    expect(categoryName('sampling/custom_sampling/schedulers', 'zh')).toBe('采样/自定义采样/调度器');
    expect(categoryName('loaders', 'en')).toBe('loaders');
  });
});

describe('notes and messages', () => {
  it('renders the Markdown subset and leaves HTML as text', () => {
    const html = renderToStaticMarkup(
      renderMarkdown('# Title\nsome **bold** and `code`\n- a\n- [link](https://example.com)\n<script>x</script>'),
    );
    expect(html).toBe(
      '<h3>Title</h3><p>some <strong>bold</strong> and <code>code</code></p><ul><li>a</li><li><a href="https://example.com" target="_blank" rel="noreferrer noopener">link</a></li></ul><p>&lt;script&gt;x&lt;/script&gt;</p>',
    );
    // Only http(s) and site-relative links become links.
    expect(renderToStaticMarkup(renderMarkdown('[x](javascript:alert(1))'))).toBe('<p>[x](javascript:alert(1))</p>');
  });

  it('strips absolute paths to their last part, and keeps URLs, ratios and the server placeholders', () => {
    expect(stripPaths("ENOENT: open '/home/alice/models/x.safetensors'")).toBe("ENOENT: open '…/x.safetensors'");
    expect(stripPaths('at run (/srv/weft/nodes/a.ts:12:5)')).toBe('at run (…/a.ts:12:5)');
    expect(stripPaths('C:\\Users\\bob\\models\\a.ckpt missing')).toBe('…\\a.ckpt missing');
    expect(stripPaths('file:///tmp/x/y.png')).toBe('…/y.png');
    for (const keep of ['see http://host/a/b', 'ratio 1/2/3', '<models>/checkpoints/a.safetensors']) expect(stripPaths(keep)).toBe(keep);
  });

  it('the tab title shows step percent and queue size as ComfyUI does', () => {
    expect(progressTitle({ value: 9, max: 20 }, 2, 'a.json')).toBe('[45%][2] a.json - Weft');
    expect(progressTitle(null, 1, null)).toBe('[1] untitled - Weft');
    expect(progressTitle(null, 0, 'a.json')).toBe('a.json - Weft');
  });

  it('image widget values and /view references convert both ways, annotated names included', () => {
    expect(imageRefOf('clipspace/clipspace-mask-1.png [input]')).toEqual({
      filename: 'clipspace-mask-1.png',
      subfolder: 'clipspace',
      type: 'input',
    });
    expect(imageRefOf('a.png')).toEqual({ filename: 'a.png', subfolder: '', type: 'input' });
    expect(widgetValueOf({ name: 'a.png', subfolder: '', type: 'input' })).toBe('a.png');
    expect(widgetValueOf({ name: 'm.png', subfolder: 'clipspace', type: 'input' })).toBe('clipspace/m.png [input]');
  });
});
