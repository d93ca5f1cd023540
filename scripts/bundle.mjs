#!/usr/bin/env node
// Builds the `mq` binary (part of `npm run build`, after tsc has built dist/ for the library API):
//
//   dist/mq.cjs        src/cli/main.ts and everything it reaches, commander included, in one CommonJS
//                      file (esbuild). Commands stay lazy: their modules are initialised only when
//                      invoked; ws and hdr-histogram-js stay outside and are required only when used.
//   dist/mq.cjs.cache  for Node 20 only: V8's code cache for it, taken after a real `mq pub` one-shot
//                      against a fake broker, so a start-up neither parses the bundle nor compiles the
//                      functions of the pub path (bin/mq runs the bundle with node:vm and this cache).
//                      Node >= 22.8 keeps its own compile cache (module.enableCompileCache in bin/mq).
//
// Why not plain ESM files: loading ~35 ES modules cost mq pub ~100 ms more than `node -e 0` on Node 20
// (see bench/startup.mjs); on Node 26, with the compile cache, still ~25 ms more than the bundle.
import { spawn } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import nodeModule from 'node:module';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'mq.cjs');
const CACHE = `${OUT}.cache`;

/**
 * commander requires node:child_process when it loads, only to spawn executable subcommands (which
 * mq does not use). Loading it costs a one-shot a few ms: give commander a stand-in that loads the
 * real module on first use.
 */
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer)
        ? { path: 'child_process', namespace: 'lazy-child-process' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy-child-process' }, () => ({
      contents:
        "let real; const load = () => (real ??= require('node:child_process'));\n" +
        'module.exports = new Proxy({}, { get: (_, key) => load()[key] });\n',
      loader: 'js',
    }));
  },
};

rmSync(CACHE, { force: true });
await build({
  entryPoints: [join(ROOT, 'src', 'cli', 'main.ts')],
  outfile: OUT,
  bundle: true,
  platform: 'node',
  target: 'node20',
  // CommonJS: node:vm can run it with a code cache on Node 20 (ES modules cannot have one there).
  format: 'cjs',
  // Dynamic import() of bundled modules becomes lazy initialisation; of external CJS packages, require().
  supported: { 'dynamic-import': false },
  external: ['ws', 'hdr-histogram-js', 'bufferutil', 'utf-8-validate'],
  // import.meta.url is that of dist/cli/main.js, so `new URL('../../package.json', import.meta.url)` holds.
  define: { 'import.meta.url': '__mqUrl' },
  banner: {
    js: `"use strict";var __mqUrl=require("node:url").pathToFileURL(require("node:path").join(__dirname,"cli","main.js")).href;`,
  },
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [lazyChildProcess],
});

// --- the code cache -------------------------------------------------------------------------------

/** A broker just good enough for one `mq pub`: CONNACK to CONNECT, then waits for the client to close. */
function fakeBroker() {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      let answered = false;
      socket.on('data', () => {
        if (answered) return;
        answered = true;
        socket.write(Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00])); // v5 CONNACK, success, no properties
      });
      socket.on('end', () => socket.end());
      socket.on('error', () => {});
    });
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/** Runs bin/mq with `args`, telling it to write the code cache when it exits. */
function run(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'mq'), ...args], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, MQ_WRITE_CODE_CACHE: CACHE, NO_COLOR: '1' },
    });
    child.on('exit', (code) => resolve(code));
    child.on('error', () => resolve(-1));
  });
}

/** Writes CACHE from one `mq pub` run (Node 20's V8 and bin/mq's node:vm path). */
async function writeCodeCache() {
  const server = await fakeBroker();
  try {
    const { port } = server.address();
    const code = await run(['pub', '-h', '127.0.0.1', '-p', String(port), '-t', 'mq/build', '-m', 'warm-up']);
    let ok = false;
    try {
      ok = code === 0 && statSync(CACHE).size > 0;
    } catch {
      ok = false;
    }
    if (!ok) {
      // Not fatal: without a cache mq works, only starts slower.
      rmSync(CACHE, { force: true });
      console.error(`bundle: no code cache written (mq pub exited ${code}); mq will start slower`);
    }
  } finally {
    server.close();
  }
}

// On Node >= 22.8 bin/mq uses Node's own compile cache: a cache from this Node's V8 would serve no one
// (a Node 20 running this build writes its own at its first run).
if (nodeModule.enableCompileCache === undefined) await writeCodeCache();
