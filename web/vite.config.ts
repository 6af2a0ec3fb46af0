import { defineConfig } from 'vite';

// The collector embeds web/dist and serves it with a single-page-app fallback; hashed files
// under dist/assets/ get long cache headers there.
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    emptyOutDir: true,
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:8090' },
  },
});
