import { t, type Lang } from '../i18n.ts';
import type { MissingClass } from '../use-file-ops.ts';

export function MissingDialog({ lang, missing, onClose }: { lang: Lang; missing: MissingClass[]; onClose: () => void }) {
  return (
    <div className="modal" data-testid="missing-dialog">
      <div className="dialog">
        <h3>{t('missingTitle', lang)}</h3>
        <p>{t('missingText', lang)}</p>
        <ul>
          {missing.map((m) => (
            <li key={m.class_type}>
              <code>{m.class_type}</code> (#{m.node_ids.join(', #')})
            </li>
          ))}
        </ul>
        <button data-testid="missing-close" onClick={onClose}>
          {t('close', lang)}
        </button>
      </div>
    </div>
  );
}

export function DraftDialog({ lang, onAnswer }: { lang: Lang; onAnswer: (restore: boolean) => void }) {
  return (
    <div className="modal" data-testid="draft-dialog">
      <div className="dialog">
        <p>{t('restore', lang)}</p>
        <button data-testid="draft-yes" onClick={() => onAnswer(true)}>
          {t('yes', lang)}
        </button>
        <button data-testid="draft-no" onClick={() => onAnswer(false)}>
          {t('no', lang)}
        </button>
      </div>
    </div>
  );
}

export function WorkflowJsonDialog({ json, onClose }: { json: string; onClose: () => void }) {
  return (
    <div className="modal" onClick={onClose}>
      <pre className="dialog workflow-json" data-testid="workflow-json" onClick={(e) => e.stopPropagation()}>
        {json}
      </pre>
    </div>
  );
}

export function Toast({ message }: { message: string }) {
  return (
    <div className="toast" data-testid="toast">
      {message}
    </div>
  );
}
