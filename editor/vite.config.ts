import path from 'node:path';
import { defineConfig } from 'vite';

// The editor imports the engine's pure modules (workflow conversion) straight from ../engine.
export default defineConfig({
  root: path.resolve(import.meta.dirname),
  base: './',
  build: {
    outDir: path.resolve(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
  server: { fs: { allow: [path.resolve(import.meta.dirname, '..')] } },
});
