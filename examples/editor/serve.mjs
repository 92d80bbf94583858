// A tiny static server for the editor example, no dependencies: the page
// (this directory) at /, the syncer client at /clients/js/, @cesdk/engine
// from node_modules at /vendor/@cesdk/engine/, and every other path
// (/sources/..., /events, /t/...) proxied to syncer, so the page and syncer
// share one origin and `syncer run` needs no CORS configuration.
//
//   node serve.mjs        # PORT (3000), SYNCER_URL (http://127.0.0.1:8080), NODE_MODULES (./node_modules)
import { createServer, request } from 'node:http';
import { createRequire } from 'node:module';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.data': 'application/octet-stream',
  '.css': 'text/css', '.png': 'image/png', '.svg': 'image/svg+xml', '.woff2': 'font/woff2',
};

/**
 * serve starts the server; resolves to {url, close}.
 * @param {{port?: number, syncerUrl?: string, nodeModules?: string}} o
 */
export function serve(o = {}) {
  const syncer = new URL(o.syncerUrl || 'http://127.0.0.1:8080');
  const modules = resolve(o.nodeModules || join(here, 'node_modules'));
  const mounts = [
    ['/clients/js/', resolve(here, '../../clients/js')],
    ['/vendor/@cesdk/engine/', join(modules, '@cesdk/engine')],
    ['/', here],
  ];
  const srv = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (path === '/vendor/nats-core.mjs') return natsBundle(modules, res);
    const file = isStatic(path) ? lookup(mounts, path) : undefined;
    if (file === undefined) return proxy(syncer, req, res);
    if (file === null) return void res.writeHead(404).end('not found\n');
    try {
      const st = await stat(file);
      if (!st.isFile()) return void res.writeHead(404).end('not found\n');
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream', 'content-length': st.size });
      createReadStream(file).pipe(res);
    } catch {
      res.writeHead(404).end('not found\n');
    }
  });
  return new Promise((ok) => {
    srv.listen(o.port ?? 3000, '127.0.0.1', () => ok({
      url: `http://127.0.0.1:${srv.address().port}/`,
      close: () => new Promise((done) => { srv.closeAllConnections(); srv.close(done); }),
    }));
  });
}

// natsBundle answers an ESM bundle of @nats-io/nats-core, which npm ships as
// CommonJS only (a browser cannot import it as it is); built once with
// esbuild when it is installed.
let bundle;
async function natsBundle(modules, res) {
  try {
    bundle ??= (async () => {
      const req = createRequire(join(modules, 'package.json'));
      const out = await req('esbuild').build({
        entryPoints: [req.resolve('@nats-io/nats-core')], bundle: true, format: 'esm', platform: 'browser',
        write: false, logLevel: 'silent',
      });
      return out.outputFiles[0].contents;
    })();
    const js = await bundle;
    res.writeHead(200, { 'content-type': 'text/javascript', 'content-length': js.length }).end(js);
  } catch (err) {
    bundle = undefined;
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`no NATS bundle (npm install esbuild @nats-io/nats-core): ${err.message}\n`);
  }
}

// Paths the server answers itself; the rest goes to syncer.
function isStatic(path) {
  return path === '/' || /^\/(index\.html|main\.js|clients\/js\/|vendor\/)/.test(path);
}

// lookup maps a path to a file below its mount, or null when it would leave it.
function lookup(mounts, path) {
  if (path === '/') path = '/index.html';
  for (const [prefix, dir] of mounts) {
    if (!path.startsWith(prefix)) continue;
    const file = resolve(dir, '.' + path.slice(prefix.length - 1));
    return file === dir || file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

// proxy forwards to syncer, streaming (Server-Sent Events pass through as
// they come). Host stays the page's, so the absolute URLs syncer hands out
// for local files point back here.
function proxy(syncer, req, res) {
  const up = request({
    host: syncer.hostname, port: syncer.port || 80, method: req.method,
    path: syncer.pathname.replace(/\/$/, '') + req.url, headers: req.headers,
  }, (r) => {
    res.writeHead(r.statusCode, r.headers);
    r.pipe(res);
  });
  up.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`syncer at ${syncer.origin}: ${err.message}\n`);
  });
  res.on('close', () => up.destroy()); // the browser went away: so does the upstream stream
  req.pipe(up);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const s = await serve({ port: Number(process.env.PORT ?? 3000), syncerUrl: process.env.SYNCER_URL, nodeModules: process.env.NODE_MODULES });
  console.log(`editor example at ${s.url} (syncer: ${process.env.SYNCER_URL || 'http://127.0.0.1:8080'})`);
}
