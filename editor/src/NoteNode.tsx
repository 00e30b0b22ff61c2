import type { ReactNode } from 'react';
import type { ObjectInfo, ObjectInfoEntry } from '../../engine/registry/registry.ts';
import type { DocNode } from './doc.ts';

/** ComfyUI's frontend-only text nodes: their one widget value is the text; they never reach a prompt. */
export const NOTE_TYPES: ReadonlySet<string> = new Set(['Note', 'MarkdownNote']);

function frontendEntry(name: string, displayName: string, description: string, input: ObjectInfoEntry['input']): ObjectInfoEntry {
  return {
    input,
    input_order: { required: Object.keys(input.required ?? {}) },
    is_input_list: false,
    output: [],
    output_is_list: [],
    output_name: [],
    name,
    display_name: displayName,
    description,
    python_module: 'frontend',
    category: 'utils',
    output_node: false,
    has_intermediate_output: false,
    search_aliases: [],
  };
}

const TEXT = { required: { text: ['STRING', { multiline: true }] } } as unknown as ObjectInfoEntry['input'];

/** Entries the search box offers beside the server's classes (the primitive node is added by its own entry). */
export const NOTE_ENTRIES: ObjectInfo = {
  Note: { ...frontendEntry('Note', 'Note', 'A text note on the canvas', TEXT), search_aliases: ['comment', 'text'] },
  MarkdownNote: {
    ...frontendEntry('MarkdownNote', 'Markdown Note', 'A note rendered as Markdown', TEXT),
    search_aliases: ['comment', 'markdown'],
  },
};

/** Inline Markdown: `code`, **bold**, *italic*, [links](http…); everything else is text (no HTML is interpreted). */
function inline(text: string, key: string): ReactNode[] {
  const out: ReactNode[] = [];
  const re = /(`[^`]+`|\*\*[^*]+\*\*|\*[^*]+\*|\[[^\]]+\]\((?:https?:\/\/|\/)[^)\s]*\))/g;
  let last = 0;
  let i = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const s = m[0];
    const k = `${key}-${i++}`;
    if (s.startsWith('`')) out.push(<code key={k}>{s.slice(1, -1)}</code>);
    else if (s.startsWith('**')) out.push(<strong key={k}>{s.slice(2, -2)}</strong>);
    else if (s.startsWith('*')) out.push(<em key={k}>{s.slice(1, -1)}</em>);
    else {
      const [, label, href] = /^\[([^\]]+)\]\(([^)]*)\)$/.exec(s)!;
      out.push(
        <a key={k} href={href} target="_blank" rel="noreferrer noopener">
          {label}
        </a>,
      );
    }
    last = m.index + s.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** A small Markdown subset: headings, lists, fenced code and paragraphs. */
export function renderMarkdown(src: string): ReactNode[] {
  const out: ReactNode[] = [];
  const lines = src.split('\n');
  let list: ReactNode[] = [];
  const flush = () => {
    if (list.length) out.push(<ul key={`ul-${out.length}`}>{list}</ul>);
    list = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('```')) {
      flush();
      const code: string[] = [];
      while (++i < lines.length && !lines[i].startsWith('```')) code.push(lines[i]);
      out.push(<pre key={`pre-${i}`}>{code.join('\n')}</pre>);
      continue;
    }
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    const li = /^\s*[-*+]\s+(.*)$/.exec(line);
    if (li) {
      list.push(<li key={`li-${i}`}>{inline(li[1], `li-${i}`)}</li>);
      continue;
    }
    flush();
    if (h) {
      const level = Math.min(h[1].length + 2, 6);
      const Tag = `h${level}` as 'h3';
      out.push(<Tag key={`h-${i}`}>{inline(h[2], `h-${i}`)}</Tag>);
    } else if (line.trim()) out.push(<p key={`p-${i}`}>{inline(line, `p-${i}`)}</p>);
  }
  flush();
  return out;
}

/** The body of a Note (an editable text) or a MarkdownNote (rendered; double-click edits). */
export function NoteBody(props: { node: DocNode; editing: boolean; setEditing: (v: boolean) => void; onText: (text: string) => void }) {
  const { node } = props;
  const text = typeof node.widgets_values?.[0] === 'string' ? (node.widgets_values[0] as string) : '';
  const markdown = node.type === 'MarkdownNote';
  if (markdown && !props.editing)
    return (
      <div className="note-markdown" data-testid={`note-text-${node.id}`} onDoubleClick={() => props.setEditing(true)}>
        {renderMarkdown(text)}
      </div>
    );
  return (
    <textarea
      className="note-text nodrag nowheel"
      data-testid={`note-text-${node.id}`}
      value={text}
      autoFocus={markdown}
      onBlur={() => props.setEditing(false)}
      onChange={(e) => props.onText(e.target.value)}
    />
  );
}
