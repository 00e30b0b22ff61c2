import { t, type Lang } from '../i18n.ts';

export function HelpPanel({ lang }: { lang: Lang }) {
  return (
    <aside className="panel" data-testid="panel-help">
      <h3>{t('help', lang)}</h3>
      <table>
        <tbody>
          {[
            ['Ctrl+Enter', t('queue', lang)],
            ['Ctrl+Shift+Enter', t('queueFront', lang)],
            ['Ctrl+Alt+Enter', t('interrupt', lang)],
            ['Ctrl+S', t('save', lang)],
            ['Ctrl+O', t('open', lang)],
            ['Ctrl+Z / Ctrl+Y', t('undoRedo', lang)],
            ['Ctrl+C / Ctrl+V', t('copyPaste', lang)],
            ['Ctrl+Shift+V', t('pasteWithLinks', lang)],
            ['Ctrl+A', t('selectAll', lang)],
            [`Ctrl+${t('drag', lang)}`, t('boxSelect', lang)],
            [`Shift+${t('dragSocket', lang)}`, t('moveLinks', lang)],
            [`Space+${t('mouseMove', lang)}`, t('panCanvas', lang)],
            ['Alt+C', t('ctxCollapse', lang)],
            ['Ctrl+M', t('mute', lang)],
            ['Ctrl+B', t('bypass', lang)],
            ['Ctrl+G', t('group', lang)],
            [t('edgeDblClick', lang), t('reroute', lang)],
            ['Delete', t('delete', lang)],
            [t('dblClick', lang), t('search', lang)],
            ['.', t('fitView', lang)],
            ['R', t('reloadDefs', lang)],
            ['Esc', t('close', lang)],
          ].map(([k, v]) => (
            <tr key={k}>
              <td>
                <kbd>{k}</kbd>
              </td>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </aside>
  );
}
