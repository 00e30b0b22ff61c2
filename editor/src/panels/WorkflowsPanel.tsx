import { t, type Lang } from '../i18n.ts';
import type { WorkflowListEntry } from '../use-file-ops.ts';

export function WorkflowsPanel(props: {
  lang: Lang;
  list: WorkflowListEntry[];
  onLoad: (name: string, template?: boolean) => void;
  onRename: (name: string) => void;
  onDelete: (name: string) => void;
}) {
  const { lang, list } = props;
  return (
    <aside className="panel" data-testid="panel-workflows">
      <h3>{t('workflows', lang)}</h3>
      <ul>
        {list.map((w) => (
          <li key={`${w.template ? 't' : 'u'}:${w.name}`}>
            <button data-testid={`wf-${w.template ? 'template' : 'user'}-${w.name}`} onClick={() => props.onLoad(w.name, w.template)}>
              {w.template ? `${t('templates', lang)}: ` : ''}
              {w.name}
            </button>
            {!w.template && (
              <>
                <button data-testid={`wf-rename-${w.name}`} onClick={() => props.onRename(w.name)}>
                  {t('rename', lang)}
                </button>
                <button data-testid={`wf-delete-${w.name}`} onClick={() => props.onDelete(w.name)}>
                  {t('delete', lang)}
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
    </aside>
  );
}
