// Builds the static site in dist/: the page (www/main.js), its Web Worker (bundled by webpack from
// `new Worker(new URL(...))`), the engine compiled by wasm-pack into pkg/ (`--target web`: the
// page and the worker share one content-hashed .wasm asset, fetched once and cached), and a
// service worker that keeps the site usable offline. Relative public paths (`publicPath: 'auto'`),
// so dist/ works from any sub-path.
const path = require('path');
const HtmlWebpackPlugin = require('html-webpack-plugin');

// Writes precache.json: every file of the build, for the service worker to cache on install, so
// the site works offline after one visit (including the worker's chunks, which the page never
// fetches itself).
class PrecacheManifest {
  apply(compiler) {
    const { Compilation, sources } = compiler.webpack;
    compiler.hooks.thisCompilation.tap('PrecacheManifest', (compilation) => {
      compilation.hooks.processAssets.tap(
        { name: 'PrecacheManifest', stage: Compilation.PROCESS_ASSETS_STAGE_REPORT },
        (assets) => {
          const files = Object.keys(assets).filter((f) => f !== 'sw.js' && !f.endsWith('.map')).sort();
          compilation.emitAsset('precache.json', new sources.RawSource(JSON.stringify(files)));
        },
      );
    });
  }
}

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
      new PrecacheManifest(),
    ],
    devtool: production ? false : 'source-map',
    performance: {
      // The engine is one wasm file of a few hundred KiB; that is the point of the site.
      maxAssetSize: 2 * 1024 * 1024,
      maxEntrypointSize: 2 * 1024 * 1024,
    },
  };
};
