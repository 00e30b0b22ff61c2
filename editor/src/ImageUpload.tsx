import { useState } from 'react';
import { t, type Lang } from './i18n.ts';
import { MaskEditor } from './MaskEditor.tsx';
import { filesChanged, isImageFile, uploadImage, viewUrlOf, widgetValueOf } from './uploads.ts';

/** Uploads `file` and points the image widget at it; the combo's list is reloaded after. */
export async function uploadInto(file: File, setValue: (v: string) => void): Promise<void> {
  const u = await uploadImage(file);
  filesChanged();
  setValue(widgetValueOf(u));
}

/** Drop handlers for a node with an image widget: an image file dropped on it is uploaded into it. */
export function imageDropHandlers(setValue: ((v: string) => void) | undefined, onError: (msg: string) => void) {
  if (!setValue) return {};
  return {
    onDragOver: (e: React.DragEvent) => {
      if (e.dataTransfer.types.includes('Files')) e.preventDefault();
    },
    onDrop: (e: React.DragEvent) => {
      const f = [...e.dataTransfer.files].find(isImageFile);
      if (!f) return;
      // The canvas would open the file as a workflow.
      e.preventDefault();
      e.stopPropagation();
      uploadInto(f, setValue).catch((err: Error) => onError(`${f.name}: ${err.message}`));
    },
  };
}

/**
 * LoadImage's extra `upload` widget as ComfyUI's frontend draws it: a button that uploads a picked file,
 * the mask editor, and a preview of the chosen image scaled to the node.
 */
export function ImageUploadWidget(props: { value: string; lang: Lang; onChange: (v: string) => void }) {
  const { value, lang } = props;
  const [error, setError] = useState<string | null>(null);
  const [masking, setMasking] = useState(false);
  const [broken, setBroken] = useState<string | null>(null);
  return (
    <div className="widget-upload nodrag">
      <div className="upload-row">
        <label className="upload-btn" data-testid="upload-button">
          {t('chooseUpload', lang)}
          <input
            type="file"
            data-testid="upload-input"
            accept="image/*"
            onChange={(e) => {
              const f = e.target.files?.[0];
              e.target.value = '';
              if (!f) return;
              setError(null);
              uploadInto(f, props.onChange).catch((err: Error) => setError(`${f.name}: ${err.message}`));
            }}
          />
        </label>
        <button type="button" data-testid="open-mask-editor" disabled={!value} onClick={() => setMasking(true)}>
          {t('maskEditor', lang)}
        </button>
      </div>
      {error && <div className="node-error">{error}</div>}
      {value && broken !== value && (
        <img
          className="node-image upload-preview"
          data-testid="upload-preview"
          src={viewUrlOf(value)}
          alt={value}
          onError={() => setBroken(value)}
        />
      )}
      {masking && (
        <MaskEditor
          image={value}
          lang={lang}
          onClose={() => setMasking(false)}
          onSaved={(v) => {
            setMasking(false);
            props.onChange(v);
          }}
        />
      )}
    </div>
  );
}
