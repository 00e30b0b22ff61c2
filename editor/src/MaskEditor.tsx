import { useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { createPortal } from 'react-dom';
import { t, type Lang } from './i18n.ts';
import { filesChanged, imageRefOf, uploadMask, viewUrlOf, widgetValueOf } from './uploads.ts';

/** The painted mask is shown in this colour; only its alpha matters when saving. */
const PAINT = [255, 64, 160] as const;

function canvasOf(w: number, h: number): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

/**
 * ComfyUI's mask editor: paint where the image should become transparent (LoadImage's MASK = 1 − alpha),
 * then save through `/upload/mask`, which puts the painted alpha into a copy of the original.
 */
export function MaskEditor(props: { image: string; lang: Lang; onSaved: (value: string) => void; onClose: () => void }) {
  const { lang } = props;
  const base = useRef<HTMLCanvasElement>(null);
  const mask = useRef<HTMLCanvasElement>(null);
  const [size, setSize] = useState<[number, number] | null>(null);
  const [brush, setBrush] = useState(24);
  const [erase, setErase] = useState(false);
  const [zoom, setZoom] = useState(1);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  // Set once the image and its existing mask are on the canvases (painting before would be overwritten).
  const [ready, setReady] = useState(false);
  const last = useRef<{ x: number; y: number } | null>(null);

  const [loaded, setLoaded] = useState<HTMLImageElement | null>(null);
  useEffect(() => {
    const img = new Image();
    img.onload = () => {
      const w = img.naturalWidth;
      const h = img.naturalHeight;
      setSize([w, h]);
      // Fit the view to about 70% of the window, never enlarging past 1:1 at first.
      setZoom(Math.min(1, (window.innerWidth * 0.7) / w, (window.innerHeight * 0.65) / h));
      setLoaded(img);
    };
    img.onerror = () => setError(`${props.image}: the image could not be loaded`);
    img.src = viewUrlOf(props.image);
  }, [props.image]);

  // Drawn in the commit that gives the canvases the image's size: setting a canvas's size clears it, so a
  // drawing made before that commit (a frame callback could run first on a loaded machine) was lost.
  useLayoutEffect(() => {
    if (!loaded) return;
    const w = loaded.naturalWidth;
    const h = loaded.naturalHeight;
    const b = base.current!.getContext('2d')!;
    const m = mask.current!.getContext('2d')!;
    b.drawImage(loaded, 0, 0);
    const px = b.getImageData(0, 0, w, h);
    const mk = m.createImageData(w, h);
    // An existing alpha is the existing mask: it opens painted, as ComfyUI's editor does.
    for (let i = 0; i < w * h; i++) {
      const a = px.data[i * 4 + 3];
      px.data[i * 4 + 3] = 255;
      if (a < 255) {
        mk.data[i * 4] = PAINT[0];
        mk.data[i * 4 + 1] = PAINT[1];
        mk.data[i * 4 + 2] = PAINT[2];
        mk.data[i * 4 + 3] = 255 - a;
      }
    }
    b.putImageData(px, 0, 0);
    m.putImageData(mk, 0, 0);
    setReady(true);
  }, [loaded]);

  const at = (e: React.PointerEvent<HTMLCanvasElement>) => {
    const r = e.currentTarget.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * e.currentTarget.width) / r.width, y: ((e.clientY - r.top) * e.currentTarget.height) / r.height };
  };

  const stroke = useCallback(
    (from: { x: number; y: number }, to: { x: number; y: number }) => {
      const m = mask.current?.getContext('2d');
      if (!m) return;
      m.globalCompositeOperation = erase ? 'destination-out' : 'source-over';
      m.strokeStyle = m.fillStyle = `rgb(${PAINT.join(',')})`;
      m.lineWidth = brush;
      m.lineCap = 'round';
      m.beginPath();
      m.moveTo(from.x, from.y);
      m.lineTo(to.x, to.y);
      m.stroke();
      m.beginPath();
      m.arc(to.x, to.y, brush / 2, 0, Math.PI * 2);
      m.fill();
    },
    [brush, erase],
  );

  const transform = (fn: (a: number) => number) => {
    const c = mask.current;
    const m = c?.getContext('2d');
    if (!c || !m) return;
    const d = m.getImageData(0, 0, c.width, c.height);
    for (let i = 0; i < c.width * c.height; i++) {
      const a = fn(d.data[i * 4 + 3]);
      d.data[i * 4] = PAINT[0];
      d.data[i * 4 + 1] = PAINT[1];
      d.data[i * 4 + 2] = PAINT[2];
      d.data[i * 4 + 3] = a;
    }
    m.putImageData(d, 0, 0);
  };

  const save = async () => {
    const c = mask.current;
    if (!c || !size) return;
    setSaving(true);
    try {
      const painted = c.getContext('2d')!.getImageData(0, 0, size[0], size[1]);
      const out = canvasOf(size[0], size[1]);
      const octx = out.getContext('2d')!;
      const od = octx.createImageData(size[0], size[1]);
      // Painted means transparent in the saved image: alpha = 255 − paint.
      for (let i = 0; i < size[0] * size[1]; i++) od.data[i * 4 + 3] = 255 - painted.data[i * 4 + 3];
      octx.putImageData(od, 0, 0);
      const blob = await new Promise<Blob>((res, rej) =>
        out.toBlob((b) => (b ? res(b) : rej(new Error('PNG encoding failed'))), 'image/png'),
      );
      const saved = await uploadMask(blob, imageRefOf(props.image), `clipspace-mask-${Date.now()}.png`);
      filesChanged();
      props.onSaved(widgetValueOf(saved));
    } catch (e) {
      setError((e as Error).message);
      setSaving(false);
    }
  };

  const style = size ? { width: size[0] * zoom, height: size[1] * zoom } : undefined;
  return createPortal(
    <div className="modal" data-testid="mask-editor" onKeyDown={(e) => e.key === 'Escape' && props.onClose()}>
      <div className="dialog mask-editor">
        <div className="mask-tools">
          <button data-testid="mask-brush" className={erase ? '' : 'current'} onClick={() => setErase(false)}>
            {t('brush', lang)}
          </button>
          <button data-testid="mask-eraser" className={erase ? 'current' : ''} onClick={() => setErase(true)}>
            {t('eraser', lang)}
          </button>
          <label>
            {t('brushSize', lang)}
            <input
              data-testid="mask-size"
              type="range"
              min={1}
              max={256}
              value={brush}
              onChange={(e) => setBrush(Number(e.target.value))}
            />
            <span>{brush}</span>
          </label>
          <button data-testid="mask-clear" onClick={() => transform(() => 0)}>
            {t('clear', lang)}
          </button>
          <button data-testid="mask-invert" onClick={() => transform((a) => 255 - a)}>
            {t('invert', lang)}
          </button>
          <button data-testid="mask-zoom-out" onClick={() => setZoom((z) => Math.max(0.05, z / 1.25))}>
            −
          </button>
          <span data-testid="mask-zoom">{Math.round(zoom * 100)}%</span>
          <button data-testid="mask-zoom-in" onClick={() => setZoom((z) => Math.min(16, z * 1.25))}>
            +
          </button>
        </div>
        <div
          className="mask-stage"
          onWheel={(e) => {
            if (!e.ctrlKey && !e.metaKey) return;
            e.preventDefault();
            setZoom((z) => Math.min(16, Math.max(0.05, z * (e.deltaY < 0 ? 1.1 : 1 / 1.1))));
          }}
        >
          <div className="mask-layers" style={style}>
            <canvas ref={base} width={size?.[0] ?? 1} height={size?.[1] ?? 1} style={style} />
            <canvas
              ref={mask}
              data-testid="mask-canvas"
              data-ready={ready}
              className="mask-paint"
              width={size?.[0] ?? 1}
              height={size?.[1] ?? 1}
              style={style}
              onPointerDown={(e) => {
                e.currentTarget.setPointerCapture(e.pointerId);
                const p = at(e);
                last.current = p;
                stroke(p, p);
              }}
              onPointerMove={(e) => {
                if (!last.current) return;
                const p = at(e);
                stroke(last.current, p);
                last.current = p;
              }}
              onPointerUp={() => (last.current = null)}
            />
          </div>
        </div>
        {error && (
          <div className="node-error" data-testid="mask-error">
            {error}
          </div>
        )}
        <div className="dialog-row">
          <button data-testid="mask-cancel" onClick={props.onClose}>
            {t('cancel', lang)}
          </button>
          <button className="primary" data-testid="mask-save" disabled={!size || saving} onClick={() => void save()}>
            {t('save', lang)}
          </button>
        </div>
      </div>
    </div>,
    document.body,
  );
}
