// Builds the static site in dist/: the page (www/main.js), its Web Worker (bundled by webpack from
// `new Worker(new URL(...))`), the engine compiled by wasm-pack into pkg/ (`--target web`: the
// page and the worker share one content-hashed .wasm asset, fetched once and cached), and a
// service worker that keeps the site usable offline. Relative public paths (`publicPath: 'auto'`),
// so dist/ works from any sub-path.
const path = require('path');
const crypto = require('crypto');
const fs = require('fs');
const HtmlWebpackPlugin = require('html-webpack-plugin');

// After webpack has hashed every file: writes precache.json (every file of the build, for the
// service worker to cache on install, so the site works offline after one visit, including the
// worker's chunks, which the page never fetches itself), and stamps sw.js with a build id made
// from those file names (content hashes) and the page: each deploy gets a new service worker
// and a new cache, and the old cache is deleted when it activates.
class PrecacheManifest {
  apply(compiler) {
    const { Compilation, sources } = compiler.webpack;
    compiler.hooks.thisCompilation.tap('PrecacheManifest', (compilation) => {
      compilation.hooks.processAssets.tap(
        { name: 'PrecacheManifest', stage: Compilation.PROCESS_ASSETS_STAGE_REPORT },
        (assets) => {
          // The activation sample (megabytes) is fetched when asked for, not precached.
          const files = Object.keys(assets)
            .filter((f) => f !== 'sw.js' && !f.endsWith('.map') && !SAMPLE_ASSET.test(f))
            .sort();
          const hash = crypto.createHash('sha256');
          for (const f of files) {
            hash.update(f);
            if (!/\.[0-9a-f]{8}\./.test(f)) hash.update(assets[f].source()); // unhashed names: content
          }
          const build = hash.digest('hex').slice(0, 16);
          compilation.emitAsset('precache.json', new sources.RawSource(JSON.stringify(files)));
          if (assets['sw.js']) {
            const text = assets['sw.js'].source().toString();
            if (!text.includes(BUILD_PLACEHOLDER)) {
              throw new Error('sw.js lost its build-id placeholder');
            }
            compilation.updateAsset('sw.js', new sources.RawSource(text.split(BUILD_PLACEHOLDER).join(build)));
          }
        },
      );
    });
  }
}

// The page's Content-Security-Policy, as a meta tag (static hosting sets no headers): scripts,
// workers, the wasm fetch and everything else only from this origin; wasm compilation allowed
// ('wasm-unsafe-eval', not 'unsafe-eval'); styles only from this origin or the page's own
// <style> blocks, each allowed by its SHA-256 (uPlot's stylesheet is inlined here for that).
class ContentSecurityPolicy {
  apply(compiler) {
    const { Compilation, sources } = compiler.webpack;
    compiler.hooks.thisCompilation.tap('ContentSecurityPolicy', (compilation) => {
      HtmlWebpackPlugin.getHooks(compilation).beforeEmit.tap('ContentSecurityPolicy', (data) => {
        const uplotCss = fs.readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
        data.html = data.html
          .replace('</head>', `<style>${uplotCss}</style>\n</head>`)
          .replace('<meta charset="utf-8">', `<meta charset="utf-8">\n${CSP_PLACEHOLDER}`);
        return data;
      });
      // The hashes are taken from the page as emitted (after any minification).
      compilation.hooks.processAssets.tap(
        { name: 'ContentSecurityPolicy', stage: Compilation.PROCESS_ASSETS_STAGE_ANALYSE },
        (assets) => {
          const html = assets['index.html'].source().toString();
          const styleHashes = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map(
            (m) => `'sha256-${crypto.createHash('sha256').update(m[1], 'utf8').digest('base64')}'`,
          );
          if (/\sstyle=/.test(html) || /<script>/.test(html)) {
            throw new Error('index.html has an inline style attribute or script, which the CSP forbids');
          }
          if (!CSP_MARKER.test(html)) throw new Error('no place for the CSP meta tag');
          const policy = [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            `style-src 'self' ${styleHashes.join(' ')}`,
            "img-src 'self' data: blob:",
            "connect-src 'self'",
            "worker-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'none'",
          ].join('; ');
          const meta = `<meta http-equiv="Content-Security-Policy" content="${policy}">`;
          compilation.updateAsset('index.html', new sources.RawSource(html.replace(CSP_MARKER, meta)));
        },
      );
    });
  }
}

// A marker the HTML minifier keeps (it drops comments and may unquote attributes).
const CSP_PLACEHOLDER = '<meta name="csp-placeholder">';
const CSP_MARKER = /<meta name="?csp-placeholder"?\s*\/?>/;
const BUILD_PLACEHOLDER = '__SPARSE_PLAYGROUND_BUILD__';
// The shipped sample of real activations (www/sample/), emitted under its own name.
const SAMPLE_ASSET = /^smollm2-135m-l15\./;

module.exports = (env, argv) => {
  const production = argv.mode !== 'development';
  return {
    entry: {
      main: './www/main.js',
      sw: './www/sw.js',
    },
    output: {
      path: path.resolve(__dirname, 'dist'),
      // The service worker keeps a fixed name so the page can register it; the rest is hashed.
      filename: (pathData) => (pathData.chunk.name === 'sw' ? 'sw.js' : '[name].[contenthash:8].js'),
      chunkFilename: '[name].[contenthash:8].js',
      assetModuleFilename: '[name].[contenthash:8][ext]',
      publicPath: 'auto',
      clean: true,
    },
    module: {
      rules: [
        { test: /\.css$/, type: 'asset/source' },
      ],
    },
    plugins: [
      new HtmlWebpackPlugin({
        template: './www/index.html',
        chunks: ['main'],
        scriptLoading: 'module',
      }),
      new ContentSecurityPolicy(),
      new PrecacheManifest(),
    ],
    devtool: production ? false : 'source-map',
    performance: {
      // The engine is one wasm file of about 2 MiB; the activation sample is loaded on demand.
      maxAssetSize: 3 * 1024 * 1024,
      maxEntrypointSize: 3 * 1024 * 1024,
      assetFilter: (f) => !SAMPLE_ASSET.test(f),
    },
  };
};
