import fs from 'node:fs';
import path from 'node:path';
import express, { type Express, type Request, type Response } from 'express';
import { safeJoin } from '../engine/core/safe-path.ts';
import { FILE_CSP, contentDisposition, isActiveType } from './security.ts';

/** Largest user file stored through /userdata (workflows, settings): generous, but bounded. */
const MAX_USERDATA = 64 * 1024 * 1024;

function fileInfo(root: string, rel: string): { path: string; size: number; modified: number; created: number } {
  const st = fs.statSync(path.join(root, rel));
  return { path: rel, size: st.size, modified: Math.round(st.mtimeMs), created: Math.round(st.birthtimeMs || st.ctimeMs) };
}

function walk(root: string, dir: string, recurse: boolean): string[] {
  const out: string[] = [];
  const visit = (d: string, rel: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (recurse) visit(path.join(d, e.name), r);
      } else if (e.isFile()) out.push(r);
    }
  };
  visit(safeJoin(root, dir), '');
  return out.sort();
}

/**
 * ComfyUI's single-user user-data routes over `<userDir>/default/`: /users, /settings, /userdata
 * (list, read, write with overwrite protection, delete, move). Every name goes through safeJoin.
 */
export function userdataRoutes(app: Express, userDir: string): void {
  const root = path.join(userDir, 'default');
  fs.mkdirSync(root, { recursive: true });
  const settingsFile = path.join(root, 'comfy.settings.json');
  const readSettings = (): Record<string, unknown> => {
    try {
      return JSON.parse(fs.readFileSync(settingsFile, 'utf8')) as Record<string, unknown>;
    } catch {
      return {};
    }
  };
  const writeSettings = (s: Record<string, unknown>): void => {
    const tmp = `${settingsFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(s, null, 2));
    fs.renameSync(tmp, settingsFile);
  };

  app.get('/users', (_req, res) => void res.json({ storage: 'server', migrated: true }));
  app.get('/settings', (_req, res) => void res.json(readSettings()));
  app.get('/settings/:id', (req, res) => void res.json(readSettings()[req.params.id] ?? null));
  app.post('/settings', (req, res) => {
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body))
      return void res.status(400).json({ error: 'settings must be a JSON object' });
    writeSettings({ ...readSettings(), ...(req.body as Record<string, unknown>) });
    res.sendStatus(200);
  });
  app.post('/settings/:id', (req, res) => {
    writeSettings({ ...readSettings(), [req.params.id]: req.body });
    res.sendStatus(200);
  });

  app.get('/userdata', (req, res) => {
    const dir = String(req.query.dir ?? '');
    if (!dir) return void res.status(400).json({ error: 'dir is required' });
    let files: string[];
    try {
      if (!fs.existsSync(safeJoin(root, dir))) return void res.sendStatus(404);
      files = walk(root, dir, req.query.recurse === 'true');
    } catch {
      return void res.sendStatus(403);
    }
    if (req.query.full_info === 'true') return void res.json(files.map((f) => fileInfo(path.join(root, dir), f)));
    if (req.query.split === 'true') return void res.json(files.map((f) => [f, ...f.split('/')]));
    res.json(files);
  });

  const raw = express.raw({ type: () => true, limit: MAX_USERDATA });
  const resolveFile = (req: Request, res: Response, param: string): string | undefined => {
    let name: string;
    try {
      name = decodeURIComponent(String(req.params[param] ?? ''));
    } catch {
      res.status(400).json({ error: 'malformed percent-encoding in the file name' });
      return undefined;
    }
    try {
      return safeJoin(root, name);
    } catch {
      res.status(403).json({ error: 'path refused' });
      return undefined;
    }
  };
  app.get('/userdata/:file', (req, res) => {
    const f = resolveFile(req, res, 'file');
    if (!f) return;
    if (!fs.existsSync(f) || !fs.statSync(f).isFile()) return void res.sendStatus(404);
    // Stored files are the user's data, never a page of this origin: no sniffing, no scripts.
    const active = isActiveType(f);
    res.setHeader('Content-Security-Policy', FILE_CSP);
    if (active) {
      res.setHeader('Content-Disposition', contentDisposition('attachment', path.basename(f)));
      res.type('application/octet-stream');
    }
    res.sendFile(f);
  });
  app.post('/userdata/:file', raw, (req, res) => {
    const f = resolveFile(req, res, 'file');
    if (!f) return;
    if (req.query.overwrite === 'false' && fs.existsSync(f)) return void res.sendStatus(409);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    const tmp = `${f}.${process.pid}.tmp`;
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.from(JSON.stringify(req.body ?? ''));
    fs.writeFileSync(tmp, body);
    fs.renameSync(tmp, f);
    const rel = path.relative(root, f).split(path.sep).join('/');
    res.json(req.query.full_info === 'true' ? fileInfo(root, rel) : rel);
  });
  app.delete('/userdata/:file', (req, res) => {
    const f = resolveFile(req, res, 'file');
    if (!f) return;
    if (!fs.existsSync(f)) return void res.sendStatus(404);
    fs.rmSync(f);
    res.sendStatus(204);
  });
  app.post('/userdata/:file/move/:dest', (req, res) => {
    const from = resolveFile(req, res, 'file');
    const to = from && resolveFile(req, res, 'dest');
    if (!from || !to) return;
    if (!fs.existsSync(from)) return void res.sendStatus(404);
    if (req.query.overwrite === 'false' && fs.existsSync(to)) return void res.sendStatus(409);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.renameSync(from, to);
    const rel = path.relative(root, to).split(path.sep).join('/');
    res.json(req.query.full_info === 'true' ? fileInfo(root, rel) : rel);
  });
}
