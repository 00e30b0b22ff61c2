import { t, type Lang } from '../i18n.ts';

export function HelpPanel({ lang }: { lang: Lang }) {
  return (
    <aside className="panel" data-testid="panel-help">
      <h3>{t('help', lang)}</h3>
      <table>
        <tbody>
          {[
            ['Ctrl+Enter', t('queue', lang)],
            ['Ctrl+S', t('save', lang)],
            ['Ctrl+Z / Ctrl+Y', 'undo / redo'],
            ['Ctrl+C / Ctrl+V', 'copy / paste'],
            ['Ctrl+M', 'mute'],
            ['Ctrl+B', 'bypass'],
            ['Ctrl+G', t('group', lang)],
            [t('edgeDblClick', lang), 'reroute'],
            ['Delete', t('delete', lang)],
            ['Double-click', t('search', lang)],
            ['.', 'fit view'],
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
