import { useEffect, useMemo, useRef, useState } from 'react';
import type { ObjectInfo } from '../../engine/registry/registry.ts';
import { t, type Lang } from './i18n.ts';
import { rankNodes } from './search.ts';

export function SearchBox(props: {
  info: ObjectInfo;
  lang: Lang;
  filterType?: string;
  onPick: (classType: string) => void;
  onClose: () => void;
}) {
  const [q, setQ] = useState('');
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const results = useMemo(() => rankNodes(props.info, q, props.filterType).slice(0, 40), [props.info, q, props.filterType]);
  const categories = useMemo(() => {
    const m = new Map<string, string[]>();
    for (const [name, e] of Object.entries(props.info)) m.set(e.category, [...(m.get(e.category) ?? []), name]);
    return [...m].sort(([a], [b]) => a.localeCompare(b));
  }, [props.info]);
  return (
    <div className="modal transparent" onClick={props.onClose}>
      <div className="search-box" data-testid="node-search" onClick={(e) => e.stopPropagation()}>
        <input
          ref={input}
          data-testid="node-search-input"
          placeholder={t('search', props.lang)}
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
        {props.filterType && <div className="filter">{props.filterType}</div>}
        {q ? (
          <ul>
            {results.map((name, i) => (
              <li
                key={name}
                className={i === active ? 'active' : ''}
                data-testid={`search-result-${name}`}
                onClick={() => props.onPick(name)}
              >
                {props.info[name].display_name} <small>{props.info[name].category}</small>
              </li>
            ))}
          </ul>
        ) : (
          <div className="categories">
            {categories.map(([cat, names]) => (
              <details key={cat}>
                <summary>{cat}</summary>
                {names
                  .filter((n) => rankNodes({ [n]: props.info[n] }, '', props.filterType).length)
                  .map((n) => (
                    <div key={n} className="cat-item" onClick={() => props.onPick(n)}>
                      {props.info[n].display_name}
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
