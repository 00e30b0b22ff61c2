import { t, type Lang } from '../i18n.ts';
import type { DocTab } from '../tabs.ts';

/** The open documents, as ComfyUI's workflow tabs: a dot marks unsaved changes. */
export function TabBar(props: {
  lang: Lang;
  tabs: DocTab[];
  active: number;
  dirty: (tab: DocTab) => boolean;
  onSwitch: (key: number) => void;
  onClose: (key: number) => void;
  onNew: () => void;
}) {
  const { lang } = props;
  return (
    <nav className="weft-tabs" data-testid="tabs">
      {props.tabs.map((tab, i) => (
        <div
          key={tab.key}
          className={tab.key === props.active ? 'weft-tab active' : 'weft-tab'}
          data-testid={`tab-${i}`}
          data-active={tab.key === props.active}
          onClick={() => props.onSwitch(tab.key)}
          onAuxClick={(e) => e.button === 1 && props.onClose(tab.key)}
        >
          <span className="tab-name">{tab.name ?? 'untitled'}</span>
          {props.dirty(tab) && (
            <span className="tab-dirty" data-testid={`tab-dirty-${i}`} title={t('unsaved', lang)}>
              ●
            </span>
          )}
          <button
            className="tab-close"
            data-testid={`tab-close-${i}`}
            title={t('closeTab', lang)}
            onClick={(e) => {
              e.stopPropagation();
              props.onClose(tab.key);
            }}
          >
            ×
          </button>
        </div>
      ))}
      <button className="tab-new" data-testid="tab-new" title={t('newTab', lang)} onClick={props.onNew}>
        +
      </button>
    </nav>
  );
}
