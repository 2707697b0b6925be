import { defineConfig } from "vitest/config";

// Plain Vite: Preact's automatic JSX runtime through esbuild, no plugin needed.
export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 800 },
  test: { environment: "node", include: ["test/**/*.test.ts"] },
});
