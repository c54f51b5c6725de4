// Builds static/webchat/loader.js and static/webchat/widget.js.
//   node build.mjs [--outdir DIR]   build (default: ../../static/webchat)
//   node build.mjs --check-size     fail when the built files pass the gzip budgets
// Output is deterministic, so a rebuild can be compared byte for byte with the committed files.

import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'

const LOADER_BUDGET = 3 * 1024
const TOTAL_BUDGET = 15 * 1024

const args = process.argv.slice(2)
const flag = args.indexOf('--outdir')
const outdir = flag >= 0 ? args[flag + 1] : fileURLToPath(new URL('../../static/webchat/', import.meta.url))
const src = (name) => fileURLToPath(new URL('src/' + name, import.meta.url))

// CSS is minified and imported as a string, so each entry ships as one file.
const cssAsText = {
  name: 'css-as-text',
  setup(build) {
    build.onLoad({ filter: /\.css$/ }, async (args) => {
      const { code } = await esbuild.transform(readFileSync(args.path, 'utf8'), { loader: 'css', minify: true })
      return { contents: `export default ${JSON.stringify(code.trim())}`, loader: 'js' }
    })
  },
}

async function bundle(entry, define = {}) {
  const result = await esbuild.build({
    entryPoints: [src(entry)],
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2019',
    legalComments: 'none',
    write: false,
    define,
    plugins: [cssAsText],
  })
  return result.outputFiles[0].contents
}

async function build() {
  const widget = await bundle('widget.js')
  // The loader asks for widget.js?v=<hash>, so a new widget is never served from a stale cache.
  const version = createHash('sha256').update(widget).digest('hex').slice(0, 10)
  const loader = await bundle('loader.js', { __WIDGET_VERSION__: JSON.stringify(version) })
  mkdirSync(outdir, { recursive: true })
  writeFileSync(join(outdir, 'widget.js'), widget)
  writeFileSync(join(outdir, 'loader.js'), loader)
  report()
}

function report() {
  const gz = (name) => gzipSync(readFileSync(join(outdir, name)), { level: 9 }).length
  const loader = gz('loader.js')
  const total = loader + gz('widget.js')
  console.log(`loader.js ${loader} B gz (budget ${LOADER_BUDGET}); loader + widget ${total} B gz (budget ${TOTAL_BUDGET})`)
  return loader <= LOADER_BUDGET && total <= TOTAL_BUDGET
}

if (args.includes('--check-size')) {
  if (!report()) {
    console.error('Widget bundle is over its size budget.')
    process.exit(1)
  }
} else {
  await build()
}
