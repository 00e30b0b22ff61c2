import { statSync } from 'node:fs';

/**
 * Values derived from a file, kept per file identity (path, size, modification time): loading the
 * same file again is free, and a file replaced or edited in place is read again.
 */
export class FileMemo<T> {
  private readonly hits = new Map<string, T>();

  get(file: string, load: () => T): T {
    const st = statSync(file);
    const identity = `${file}:${st.size}:${st.mtimeMs}`;
    const hit = this.hits.get(identity);
    if (hit !== undefined) return hit;
    const v = load();
    this.hits.set(identity, v);
    return v;
  }
}
