import { useCallback, useEffect, useRef } from 'react';
import { readPngTextChunksAsync } from '../../engine/image/png-text.ts';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { createNode, widgetDefs, type WorkflowDoc } from './doc.ts';
import { filesChanged, isImageFile, uploadImage, widgetValueOf } from './uploads.ts';

/** Whether a file opens as a workflow: JSON, or a PNG with a `workflow` or `prompt` text chunk. */
export async function carriesWorkflow(file: File): Promise<boolean> {
  if (!isImageFile(file)) return true;
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes[0] !== 0x89 || bytes[1] !== 0x50) return false;
  try {
    const chunks = await readPngTextChunksAsync(bytes);
    return Boolean(chunks.workflow || chunks.prompt);
  } catch {
    return false;
  }
}

/** The index of a node's image widget (the combo before its upload widget), if it has one. */
export function imageWidgetIndex(info: ObjectInfo, classType: string): number | undefined {
  const ci = info[classType];
  const up = ci ? widgetDefs(ci).find((w) => w.kind === 'UPLOAD') : undefined;
  return up ? up.index - 1 : undefined;
}

/** `doc` with a LoadImage node at `at` showing `value`. */
export function withLoadImage(doc: WorkflowDoc, info: ObjectInfo, at: [number, number], value: string): WorkflowDoc {
  const d = createNode(doc, 'LoadImage', info.LoadImage, at);
  const n = d.nodes[d.nodes.length - 1];
  const values = [...n.widgets_values];
  values[imageWidgetIndex(info, 'LoadImage') ?? 0] = value;
  return { ...d, nodes: [...d.nodes.slice(0, -1), { ...n, widgets_values: values }] };
}

/**
 * Images arriving from outside, as in ComfyUI: a dropped image that carries no workflow becomes a
 * LoadImage node where it was dropped; a pasted image goes into the selected image node, or into a
 * new LoadImage at the cursor.
 */
export function useImageIntake(opts: {
  info: ObjectInfo;
  doc: () => WorkflowDoc;
  selected: () => ReadonlySet<number>;
  setDoc: (fn: (d: WorkflowDoc) => WorkflowDoc) => void;
  toFlow: (p: { x: number; y: number }) => { x: number; y: number };
  notify: (msg: string) => void;
}) {
  const ref = useRef(opts);
  ref.current = opts;
  const cursor = useRef({ x: window.innerWidth / 2, y: window.innerHeight / 2 });

  const addImageNode = useCallback(async (file: File, at: { x: number; y: number }) => {
    const o = ref.current;
    if (!o.info.LoadImage) throw new Error('the server has no LoadImage node');
    const u = await uploadImage(file);
    filesChanged();
    const p = o.toFlow(at);
    o.setDoc((d) => withLoadImage(d, o.info, [Math.round(p.x), Math.round(p.y)], widgetValueOf(u)));
  }, []);

  /** Handles a file dropped on the canvas if it is an image without a workflow; false leaves it to the workflow opener. */
  const dropImage = useCallback(
    async (file: File, at: { x: number; y: number }): Promise<boolean> => {
      if (await carriesWorkflow(file)) return false;
      await addImageNode(file, at).catch((e: Error) => ref.current.notify(`${file.name}: ${e.message}`));
      return true;
    },
    [addImageNode],
  );

  useEffect(() => {
    const onMove = (e: MouseEvent) => (cursor.current = { x: e.clientX, y: e.clientY });
    const onPaste = (e: ClipboardEvent) => {
      const tag = (e.target as HTMLElement | null)?.tagName;
      if (tag === 'INPUT' || tag === 'TEXTAREA') return;
      const file = [...(e.clipboardData?.files ?? [])].find(isImageFile);
      if (!file) return;
      e.preventDefault();
      const o = ref.current;
      const target = o.doc().nodes.find((n) => o.selected().has(n.id) && imageWidgetIndex(o.info, n.type) !== undefined);
      const done = target
        ? uploadImage(file).then((u) => {
            filesChanged();
            const index = imageWidgetIndex(o.info, target.type)!;
            o.setDoc((d) => ({
              ...d,
              nodes: d.nodes.map((n) => {
                if (n.id !== target.id) return n;
                const values = [...n.widgets_values];
                values[index] = widgetValueOf(u);
                return { ...n, widgets_values: values };
              }),
            }));
          })
        : addImageNode(file, cursor.current);
      done.catch((err: Error) => o.notify(`${file.name}: ${err.message}`));
    };
    window.addEventListener('mousemove', onMove);
    window.addEventListener('paste', onPaste);
    return () => {
      window.removeEventListener('mousemove', onMove);
      window.removeEventListener('paste', onPaste);
    };
  }, [addImageNode]);

  return { dropImage };
}
