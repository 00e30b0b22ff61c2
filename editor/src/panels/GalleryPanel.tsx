import type { ReactNode } from 'react';
import type { HistoryItem } from '../api.ts';
import type { GalleryItem } from '../execution-state.ts';
import { readWorkflowFromFile } from '../files.ts';
import { t, type Lang } from '../i18n.ts';
import type { ObjectInfo } from '../../../engine/registry/registry.ts';

export function GalleryPanel({ items, onOpen }: { items: GalleryItem[]; onOpen: (item: GalleryItem) => void }) {
  return (
    <aside className="panel gallery" data-testid="panel-gallery">
      {items.map((g) => (
        <img key={g.src} src={g.src} alt="" data-testid="gallery-image" onClick={() => onOpen(g)} />
      ))}
    </aside>
  );
}

/** One output large, with the workflow that made it (from the history, else from the PNG itself). */
export function ImageViewer(props: {
  lang: Lang;
  image: GalleryItem;
  history: [string, HistoryItem][];
  info: ObjectInfo;
  notify: (message: string) => void;
  onClose: () => void;
  onShowWorkflow: (json: string) => void;
  onLoadWorkflow: (file: File) => Promise<void>;
  /** Navigation shown in the button row (previous / next / download). */
  children?: ReactNode;
}) {
  const { lang, image, history, info, notify } = props;
  return (
    <div className="modal" data-testid="image-viewer" onClick={props.onClose}>
      <img src={image.src} alt="" />
      <div className="dialog-row" onClick={(e) => e.stopPropagation()}>
        <span>
          {t('madeBy', lang)} {image.promptId}
        </span>
        <button
          data-testid="viewer-show-workflow"
          onClick={() => {
            const h = history.find(([id]) => id === image.promptId)?.[1];
            const wf = h?.prompt[3]?.extra_pnginfo?.workflow;
            if (wf) props.onShowWorkflow(JSON.stringify(wf, null, 2));
            else
              void fetch(image.src)
                .then((r) => r.blob())
                .then((b) => readWorkflowFromFile(new File([b], 'image.png'), info))
                .then(
                  (w) => props.onShowWorkflow(JSON.stringify(w, null, 2)),
                  (e: Error) => notify(e.message),
                );
          }}
        >
          {t('showWorkflow', lang)}
        </button>
        <button
          data-testid="viewer-load-workflow"
          onClick={async () => {
            const blob = await (await fetch(image.src)).blob();
            await props.onLoadWorkflow(new File([blob], 'image.png', { type: 'image/png' }));
            props.onClose();
          }}
        >
          {t('loadWorkflow', lang)}
        </button>
        {props.children}
      </div>
    </div>
  );
}
