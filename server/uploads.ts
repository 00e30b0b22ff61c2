import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import busboy from 'busboy';
import type { Express, Request, Response } from 'express';
import sharp from 'sharp';
import { addPngTextChunks, readPngTextChunks } from '../engine/image/png-text.ts';
import type { FolderPaths } from '../engine/paths/folders.ts';
import { PathEscapeError, safeJoin, writeFileAtomic } from '../engine/core/safe-path.ts';

interface Parsed {
  fields: Record<string, string>;
  file?: { name: string; data: Buffer };
}

const UPLOAD_EXT = /\.(png|jpe?g|webp|gif|bmp|tiff?|avif|latent|json)$/i;

function parseMultipart(req: Request, maxBytes: number): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      // defParamCharset: browsers send UTF-8 file names; busboy's default (latin1) garbles them.
      bb = busboy({
        headers: req.headers,
        defParamCharset: 'utf8',
        limits: { fileSize: maxBytes, files: 1, fields: 16, fieldSize: 1024 * 1024 },
      });
    } catch {
      return reject(new UploadError(400, 'expected a multipart/form-data body'));
    }
    let settled = false;
    // Every stream here can fail on its own (a body cut off inside the file part errors the file
    // stream, busboy and the request): each needs a listener, and the first failure answers.
    const fail = (e: UploadError): void => {
      if (settled) return;
      settled = true;
      req.unpipe(bb);
      req.resume();
      reject(e);
    };
    const out: Parsed = { fields: {} };
    bb.on('field', (name, value) => {
      out.fields[name] = value;
    });
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new UploadError(413, `file is larger than ${maxBytes} bytes`)));
      stream.on('error', (e: Error) => fail(new UploadError(400, `upload cut off: ${e.message}`)));
      stream.on('end', () => {
        if (name === 'image') out.file = { name: info.filename ?? '', data: Buffer.concat(chunks) };
      });
    });
    bb.on('error', (e: Error) => fail(new UploadError(400, e.message)));
    bb.on('close', () => {
      if (settled) return;
      settled = true;
      resolve(out);
    });
    req.on('error', (e: Error) => fail(new UploadError(400, `request failed: ${e.message}`)));
    req.on('aborted', () => fail(new UploadError(400, 'request aborted')));
    req.pipe(bb);
  });
}

class UploadError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** ComfyUI's naming: `name (1).ext`, `name (2).ext`, … unless an existing file has the same bytes. */
function chooseName(dir: string, filename: string, data: Buffer, overwrite: boolean): { name: string; write: boolean } {
  if (overwrite) return { name: filename, write: true };
  const ext = path.extname(filename);
  const stem = filename.slice(0, filename.length - ext.length);
  const hash = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
  let name = filename;
  for (let i = 1; fs.existsSync(path.join(dir, name)); i++) {
    if (hash(fs.readFileSync(path.join(dir, name))) === hash(data)) return { name, write: false };
    name = `${stem} (${i})${ext}`;
  }
  return { name, write: true };
}

export function uploadRoutes(app: Express, opts: { paths: FolderPaths; maxUploadSize: number; maxPixels: number }): void {
  const handle = (mask: boolean) => async (req: Request, res: Response) => {
    try {
      const { fields, file } = await parseMultipart(req, opts.maxUploadSize);
      if (!file || !file.name) throw new UploadError(400, 'no image file in the form');
      const type = fields.type ?? 'input';
      if (type !== 'input' && type !== 'temp' && type !== 'output') throw new UploadError(400, `unknown type '${type}'`);
      const base = path.basename(file.name);
      if (!base || base !== file.name.replace(/^.*[\\/]/, '') || !UPLOAD_EXT.test(base))
        throw new UploadError(400, `refused file name '${file.name}'`);
      const dir = safeJoin(opts.paths.typeDir(type), fields.subfolder ?? '');
      fs.mkdirSync(dir, { recursive: true });
      let data: Buffer = file.data;
      if (mask) {
        let ref: { filename?: string; subfolder?: string; type?: string };
        try {
          ref = JSON.parse(fields.original_ref ?? '') as typeof ref;
        } catch {
          throw new UploadError(400, 'original_ref must be JSON {filename, subfolder?, type?}');
        }
        if (!ref.filename) throw new UploadError(400, 'original_ref has no filename');
        // ComfyUI's annotated_filepath: a `name [input]` suffix names the folder and wins over `type`.
        const annotated = / \[(input|output|temp)\]$/.exec(ref.filename);
        const refType = annotated?.[1] ?? ref.type ?? 'output';
        if (refType !== 'input' && refType !== 'temp' && refType !== 'output') throw new UploadError(400, `unknown type '${refType}'`);
        const refName = annotated ? ref.filename.slice(0, annotated.index) : ref.filename;
        // As ComfyUI, a name may reach into a subfolder (`sub/a.png`) but never out of the folder.
        if (refName.startsWith('/') || refName.split(/[\\/]/).includes('..'))
          throw new UploadError(400, `refused file name '${ref.filename}'`);
        const origFile = safeJoin(safeJoin(opts.paths.typeDir(refType), ref.subfolder ?? ''), refName);
        if (!fs.existsSync(origFile)) throw new UploadError(404, `original image '${ref.filename}' not found`);
        const orig = await sharp(origFile, { limitInputPixels: opts.maxPixels }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
        const { width, height } = orig.info;
        const maskRgba = await sharp(data, { limitInputPixels: opts.maxPixels })
          .ensureAlpha()
          .resize(width, height, { fit: 'fill' })
          .raw()
          .toBuffer();
        for (let i = 0; i < width * height; i++) orig.data[i * 4 + 3] = maskRgba[i * 4 + 3];
        let png: Buffer = await sharp(orig.data, { raw: { width, height, channels: 4 } })
          .png()
          .toBuffer();
        let chunks: Record<string, string> = {};
        try {
          chunks = readPngTextChunks(fs.readFileSync(origFile));
        } catch {
          chunks = {};
        }
        if (Object.keys(chunks).length) png = addPngTextChunks(png, Object.entries(chunks));
        data = png;
      }
      const { name, write } = chooseName(dir, base, data, fields.overwrite === 'true' || fields.overwrite === '1');
      if (write) writeFileAtomic(path.join(dir, name), data);
      res.json({ name, subfolder: fields.subfolder ?? '', type });
    } catch (e) {
      if (e instanceof UploadError) return void res.status(e.status).json({ error: e.message });
      if (e instanceof PathEscapeError) return void res.status(400).json({ error: 'path refused' });
      // Not the message: file-system errors name server paths.
      const code = (e as { code?: unknown }).code;
      res.status(400).json({ error: `upload failed: ${typeof code === 'string' ? code : (e as Error).message}` });
    }
  };
  app.post('/upload/image', handle(false));
  app.post('/upload/mask', handle(true));
}
