import type { RefObject } from 'react';
import { t, type Lang } from '../i18n.ts';

export type PanelName = 'none' | 'workflows' | 'queue' | 'gallery' | 'help';

export interface ToolbarProps {
  lang: Lang;
  setLang: (l: Lang) => void;
  docName: string | null;
  /** The document has changes that were never saved. */
  unsaved: boolean;
  connected: boolean;
  queueCount: number;
  onNew: () => void;
  onTogglePanel: (p: Exclude<PanelName, 'none'>) => void;
  onOpenFile: (f: File) => void;
  onSave: (asNew: boolean) => void;
  onGroup: () => void;
  onExport: () => void;
  onExportApi: () => void;
  onInterrupt: () => void;
  onQueue: () => void;
  /** How many runs one Queue makes (ComfyUI's batch count). */
  batchCount: number;
  setBatchCount: (n: number) => void;
  fileInputRef: RefObject<HTMLInputElement | null>;
}

export function Toolbar(p: ToolbarProps) {
  const { lang } = p;
  return (
    <header className="weft-toolbar">
      <strong>Weft</strong>
      <span className="doc-name" data-testid="doc-name">
        {p.docName ?? 'untitled'}
      </span>
      {p.unsaved && (
        <span className="unsaved-marker" data-testid="unsaved-marker" title={t('unsaved', lang)}>
          ●
        </span>
      )}
      <button data-testid="btn-new" onClick={p.onNew}>
        {t('new', lang)}
      </button>
      <button data-testid="btn-workflows" onClick={() => p.onTogglePanel('workflows')}>
        {t('workflows', lang)}
      </button>
      <label className="file-btn">
        {t('open', lang)}
        <input
          ref={p.fileInputRef}
          data-testid="file-input"
          type="file"
          accept=".json,.png,application/json,image/png"
          onChange={(e) => e.target.files?.[0] && p.onOpenFile(e.target.files[0])}
        />
      </label>
      <button data-testid="btn-save" onClick={() => p.onSave(false)}>
        {t('save', lang)}
      </button>
      <button data-testid="btn-save-as" onClick={() => p.onSave(true)}>
        {t('saveAs', lang)}
      </button>
      <button data-testid="btn-group" title="Ctrl+G" onClick={p.onGroup}>
        {t('group', lang)}
      </button>
      <button data-testid="btn-export" onClick={p.onExport}>
        {t('exportJson', lang)}
      </button>
      <button data-testid="btn-export-api" onClick={p.onExportApi}>
        {t('exportApi', lang)}
      </button>
      <span className="spacer" />
      <span className={p.connected ? 'conn ok' : 'conn'} data-testid="connection">
        {p.connected ? t('connected', lang) : t('disconnected', lang)}
      </span>
      <button data-testid="btn-queue-panel" onClick={() => p.onTogglePanel('queue')}>
        {t('queuePanel', lang)} ({p.queueCount})
      </button>
      <button data-testid="btn-gallery" onClick={() => p.onTogglePanel('gallery')}>
        {t('gallery', lang)}
      </button>
      <button data-testid="btn-interrupt" onClick={p.onInterrupt}>
        {t('interrupt', lang)}
      </button>
      <button className="primary" data-testid="btn-queue" title="Ctrl+Enter" onClick={p.onQueue}>
        {t('queue', lang)}
      </button>
      <input
        className="batch-count"
        data-testid="batch-count"
        type="number"
        min={1}
        max={100}
        title={t('batchCount', lang)}
        value={p.batchCount}
        onChange={(e) => p.setBatchCount(Math.max(1, Math.min(100, Math.round(Number(e.target.value)) || 1)))}
      />
      <button data-testid="btn-help" onClick={() => p.onTogglePanel('help')}>
        ?
      </button>
      <select data-testid="lang" value={lang} onChange={(e) => p.setLang(e.target.value as Lang)}>
        <option value="en">English</option>
        <option value="zh">简体中文</option>
      </select>
    </header>
  );
}
