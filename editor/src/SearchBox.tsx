import { useEffect, useMemo, useRef, useState } from 'react';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { categoryName, nodeTitle, t, type Lang } from './i18n.ts';
import { rankNodes } from './search.ts';

const WIDTH = 420;
const HEIGHT = 360;

/** Where the box goes: its top-left at the cursor, moved inside the window when the cursor is near an edge. */
export function searchBoxPosition(at: { x: number; y: number }, view: { width: number; height: number }): { left: number; top: number } {
  return {
    left: Math.max(4, Math.min(at.x, view.width - WIDTH - 4)),
    top: Math.max(4, Math.min(at.y, view.height - HEIGHT - 4)),
  };
}

export function SearchBox(props: {
  info: ObjectInfo;
  lang: Lang;
  filterType?: string;
  /** Which end of a dropped link the new node must offer: an input (link from an output) or an output. */
  side?: 'input' | 'output';
  /** The cursor, in window coordinates; the box opens there. */
  at?: { x: number; y: number };
  onPick: (classType: string) => void;
  onClose: () => void;
}) {
  const { lang, info, filterType, side } = props;
  const [q, setQ] = useState('');
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const results = useMemo(() => rankNodes(info, q, filterType, side).slice(0, 40), [info, q, filterType, side]);
  const categories = useMemo(() => {
    const allowed = new Set(rankNodes(info, '', filterType, side));
    const m = new Map<string, string[]>();
    for (const [name, e] of Object.entries(info)) if (allowed.has(name)) m.set(e.category, [...(m.get(e.category) ?? []), name]);
    return [...m].sort(([a], [b]) => a.localeCompare(b));
  }, [info, filterType, side]);
  const title = (n: string) => nodeTitle(n, info[n].display_name, lang);
  const pos = props.at ? searchBoxPosition(props.at, { width: window.innerWidth, height: window.innerHeight }) : undefined;
  return (
    <div className="modal transparent" onClick={props.onClose}>
      <div
        className={pos ? 'search-box at-cursor' : 'search-box'}
        style={pos}
        data-testid="node-search"
        onClick={(e) => e.stopPropagation()}
      >
        <input
          ref={input}
          data-testid="node-search-input"
          placeholder={t('search', lang)}
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setActive(0);
          }}
          onKeyDown={(e) => {
            if (e.key === 'ArrowDown') setActive((a) => Math.min(a + 1, results.length - 1));
            else if (e.key === 'ArrowUp') setActive((a) => Math.max(a - 1, 0));
            else if (e.key === 'Enter' && results[active]) props.onPick(results[active]);
            else if (e.key === 'Escape') props.onClose();
          }}
        />
        {filterType && <div className="filter">{filterType}</div>}
        {q ? (
          <ul>
            {results.map((name, i) => (
              <li
                key={name}
                className={i === active ? 'active' : ''}
                data-testid={`search-result-${name}`}
                onClick={() => props.onPick(name)}
              >
                {title(name)} <small>{categoryName(info[name].category, lang)}</small>
              </li>
            ))}
          </ul>
        ) : (
          <div className="categories">
            {categories.map(([cat, names]) => (
              <details key={cat}>
                <summary>{categoryName(cat, lang)}</summary>
                {names.map((n) => (
                  <div key={n} className="cat-item" onClick={() => props.onPick(n)}>
                    {title(n)}
                  </div>
                ))}
              </details>
            ))}
          </div>
        )}
      </div>
    </div>
  );
}
