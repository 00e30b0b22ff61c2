/**
 * The import graph of the layered code (engine/, nodes/, server/, cli/) read with the TypeScript
 * parser, and the two checks on it: every import goes down the documented layers, and no file
 * imports itself through others. Value, type and dynamic imports and re-exports all count: a type
 * import still ties the importer to the imported file's layer.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export const ROOTS = ['engine', 'nodes', 'server', 'cli'];

/**
 * The layers, bottom up (docs/architecture.md). A file may import its own layer (the folders
 * side by side in one layer may use each other; cycles are caught at file level) or any below.
 * engine/api.ts is the public facade over every engine layer.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['engine/core'],
  ['engine/formats'],
  ['engine/onnx', 'engine/text', 'engine/image', 'engine/paths'],
  ['engine/registry'],
  ['engine/models'],
  ['engine/sampling'],
  ['engine/graph', 'engine/executor'],
  ['engine/api.ts'],
  ['nodes'],
  ['server', 'cli'],
];

export interface ImportEdge {
  /** Repository-relative paths with forward slashes. */
  from: string;
  to: string;
  line: number;
  specifier: string;
}

/** The layer unit of a repository-relative path: `engine/<folder>`, `engine/api.ts`, or the top folder. */
export function unitOf(file: string): string {
  const parts = file.split('/');
  if (parts[0] !== 'engine') return parts[0];
  return parts.length === 2 ? file : `engine/${parts[1]}`;
}

/** The layer index of a file; undefined when its folder is not in the documented layers. */
export function layerOf(file: string): number | undefined {
  const unit = unitOf(file);
  const i = LAYERS.findIndex((l) => l.includes(unit));
  return i < 0 ? undefined : i;
}

export function sourceFiles(repo: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
    }
  };
  for (const r of ROOTS) if (fs.existsSync(path.join(repo, r))) walk(path.join(repo, r));
  return out.sort();
}

function resolve(fromFile: string, spec: string): string {
  const base = path.resolve(path.dirname(fromFile), spec);
  for (const c of [base, base.replace(/\.js$/, '.ts'), `${base}.ts`, `${base}.tsx`, path.join(base, 'index.ts')]) {
    if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  }
  return base;
}

/** Relative imports of each file (packages are outside the layering). */
export function readImports(repo: string, files: readonly string[]): ImportEdge[] {
  const rel = (f: string) => path.relative(repo, f).split(path.sep).join('/');
  const edges: ImportEdge[] = [];
  for (const file of files) {
    const src = ts.createSourceFile(
      file,
      fs.readFileSync(file, 'utf8'),
      ts.ScriptTarget.Latest,
      true,
      file.endsWith('.tsx') ? ts.ScriptKind.TSX : ts.ScriptKind.TS,
    );
    const add = (lit: ts.StringLiteralLike) => {
      if (!lit.text.startsWith('.')) return;
      const line = src.getLineAndCharacterOfPosition(lit.getStart(src)).line + 1;
      edges.push({ from: rel(file), to: rel(resolve(file, lit.text)), line, specifier: lit.text });
    };
    const visit = (n: ts.Node) => {
      if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteralLike(n.moduleSpecifier))
        add(n.moduleSpecifier);
      else if (
        ts.isImportEqualsDeclaration(n) &&
        ts.isExternalModuleReference(n.moduleReference) &&
        ts.isStringLiteralLike(n.moduleReference.expression)
      ) {
        add(n.moduleReference.expression);
      } else if (
        ts.isCallExpression(n) &&
        n.expression.kind === ts.SyntaxKind.ImportKeyword &&
        n.arguments[0] &&
        ts.isStringLiteralLike(n.arguments[0])
      ) {
        add(n.arguments[0]);
      } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteralLike(n.argument.literal))
        add(n.argument.literal);
      ts.forEachChild(n, visit);
    };
    visit(src);
  }
  return edges;
}

const where = (e: ImportEdge) => `${e.from}:${e.line} imports '${e.specifier}'`;

/** The plain-loop reference networks tests hold the graphs to (each family's `reference/`): production code must not depend on them. */
export const ORACLES = 'engine/models/**/reference/';
const isOracle = (file: string): boolean => /^engine\/models\/(?:.+\/)?reference\//.test(file);

/** One line per import that goes up a layer, leaves the layered code, names a missing file or uses a test oracle. */
export function layerViolations(edges: readonly ImportEdge[], exists: (file: string) => boolean): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const from = layerOf(e.from);
    const to = layerOf(e.to);
    if (from === undefined) out.push(`${e.from}: ${unitOf(e.from)} is in no documented layer (tests/architecture/imports.ts LAYERS)`);
    else if (!ROOTS.includes(e.to.split('/')[0])) out.push(`${where(e)}: outside the layered code (${e.to})`);
    else if (!exists(e.to)) out.push(`${where(e)}: no such file (${e.to})`);
    else if (to === undefined) out.push(`${where(e)}: ${unitOf(e.to)} is in no documented layer`);
    else if (isOracle(e.to) && !isOracle(e.from)) out.push(`${where(e)}: production code must not use the test oracles (${ORACLES})`);
    else if (to > from) out.push(`${where(e)}: ${unitOf(e.from)} (layer ${from}) must not import ${unitOf(e.to)} (layer ${to})`);
  }
  return [...new Set(out)];
}

/** Each import cycle once, as the chain of imports that closes it (Tarjan's strongly connected components). */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, ImportEdge[]>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, []);
    next.get(e.from)!.push(e);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  let counter = 0;
  const connect = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const { to } of next.get(v) ?? []) {
      if (!index.has(to)) {
        connect(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, index.get(to)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      components.push(c);
    }
  };
  for (const f of [...next.keys()].sort()) if (!index.has(f)) connect(f);
  const cycles: string[][] = [];
  for (const c of components) {
    const inside = new Set(c);
    const start = [...c].sort()[0];
    const self = (next.get(start) ?? []).find((e) => e.to === start);
    if (c.length === 1 && !self) continue;
    // The shortest chain from `start` back to itself inside the component.
    const via = new Map<string, ImportEdge>();
    const queue = [start];
    let closing: ImportEdge | undefined = self;
    for (let i = 0; i < queue.length && !closing; i++) {
      for (const e of next.get(queue[i]) ?? []) {
        if (!inside.has(e.to)) continue;
        if (e.to === start) {
          closing = e;
          break;
        }
        if (!via.has(e.to)) {
          via.set(e.to, e);
          queue.push(e.to);
        }
      }
    }
    const chain: ImportEdge[] = [closing!];
    for (let f = closing!.from; f !== start; f = via.get(f)!.from) chain.unshift(via.get(f)!);
    cycles.push(chain.map(where));
  }
  return cycles;
}
