import { useEffect } from 'react';
import type { HistoryItem, ImageRef } from './api.ts';
import { t, type Lang } from './i18n.ts';
import { imagesOf } from './QueuePanel.tsx';

export interface GalleryItem {
  src: string;
  promptId: string;
}

/**
 * Every image the server's history holds, newest first, after those this page saw arrive: the
 * gallery survives a reload because `/history` does.
 */
export function galleryItems(live: GalleryItem[], history: [string, HistoryItem][], viewUrl: (img: ImageRef) => string): GalleryItem[] {
  const seen = new Set<string>();
  const out: GalleryItem[] = [];
  const add = (g: GalleryItem) => {
    if (seen.has(g.src)) return;
    seen.add(g.src);
    out.push(g);
  };
  live.forEach(add);
  for (const [id, h] of history) for (const img of imagesOf(h)) add({ src: viewUrl(img), promptId: id });
  return out;
}

function fileNameOf(src: string): string {
  return new URL(src, location.href).searchParams.get('filename') ?? 'image.png';
}

/** Previous / next through the gallery (also ← and →) and a download of the shown image. */
export function ViewerNav(props: { items: GalleryItem[]; current: GalleryItem; lang: Lang; onGo: (g: GalleryItem) => void }) {
  const { items, current, lang, onGo } = props;
  const i = items.findIndex((g) => g.src === current.src);
  const prev = i > 0 ? items[i - 1] : undefined;
  const next = i >= 0 && i < items.length - 1 ? items[i + 1] : undefined;
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'ArrowLeft' && prev) onGo(prev);
      else if (e.key === 'ArrowRight' && next) onGo(next);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [prev, next, onGo]);
  return (
    <>
      <button data-testid="viewer-prev" disabled={!prev} onClick={() => prev && onGo(prev)}>
        ◀ {t('previous', lang)}
      </button>
      <span data-testid="viewer-position">
        {i + 1} / {items.length}
      </span>
      <button data-testid="viewer-next" disabled={!next} onClick={() => next && onGo(next)}>
        {t('next', lang)} ▶
      </button>
      <a className="button" data-testid="viewer-download" href={current.src} download={fileNameOf(current.src)}>
        {t('download', lang)}
      </a>
    </>
  );
}
