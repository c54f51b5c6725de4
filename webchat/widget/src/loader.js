// ReplyBase loader: the one <script> a site embeds. It exposes window.ReplyBase (calls are
// queued until the widget runs), fetches the site's config, draws the launcher in a shadow
// root, and loads widget.js on first open or when the browser is idle.

import { request } from './api.js'
import { addCss, h } from './dom.js'
import { backoff } from './schedule.js'
import { normalizeColor, textColor } from './contrast.js'
import css from './launcher.css'

/* global __WIDGET_VERSION__ */

const script = document.currentScript || document.querySelector('script[data-site-key]')
const previous = window.ReplyBase || {}

if (script && !previous._rb) boot(script)
else if (previous._attach) previous._attach() // run again by a page that swapped its <body>

async function boot(script) {
  const started = Date.now()
  const key = script.dataset.siteKey
  const src = new URL(script.src, location.href)
  const api = src.origin + '/api/webchat/v1/'
  const listeners = {}
  let loading = false

  const R = (window.ReplyBase = {
    _rb: 1,
    q: [],
    on: (event, fn) => (listeners[event] ||= []).push(fn),
  })
  for (const name of ['open', 'close', 'consent', 'identify']) {
    R[name] = (...args) => {
      R.q.push([name, ...args])
      if (name === 'open') load()
    }
  }
  // A page may have queued calls on a stub (`ReplyBase = {q: [["on", "open", fn], ...]}`).
  for (const [name, ...args] of previous.q || []) R[name] && R[name](...args)

  const emit = (event, data) => {
    for (const fn of listeners[event] || []) {
      try {
        fn(data)
      } catch (e) {
        console.error(e)
      }
    }
  }

  function load() {
    if (!R._c || loading) return
    loading = true
    const url = new URL('widget.js?v=' + __WIDGET_VERSION__, src).href
    // A page with a nonce-only script CSP gave its nonce to this script: widget.js needs it too.
    const tag = h('script', { src: url, error: () => (loading = false) })
    if (script.nonce) tag.nonce = script.nonce
    document.head.append(tag)
  }

  let config
  for (let attempt = 0; !config; attempt++) {
    try {
      config = await request(api + 'config?site_key=' + encodeURIComponent(key))
    } catch (e) {
      // origin_not_allowed, webchat_disabled, unknown key, or no answer after the retries:
      // stay off the page, and tell the host page's `error` listeners why.
      if ((e.status && e.status !== 429 && e.status < 500) || attempt > 4) {
        console.warn('ReplyBase:', e.code)
        emit('error', { code: e.code, message: e.message })
        return
      }
      await new Promise((resolve) => setTimeout(resolve, e.retryAfter || backoff(attempt)))
    }
  }

  const site = config.site
  const color = normalizeColor(site.color)
  const fg = textColor(color)
  const badge = h('span', { class: 'badge', hidden: true, 'aria-hidden': 'true' })
  const icon = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  icon.setAttribute('viewBox', '0 0 24 24')
  icon.setAttribute('aria-hidden', 'true')
  icon.append(document.createElementNS(icon.namespaceURI, 'path'))
  icon.firstChild.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z')
  const launcher = h(
    'button',
    {
      class: 'launcher',
      type: 'button',
      'aria-label': site.launcher_text || 'Open chat', // the visible text, when there is one
      'aria-expanded': 'false',
      'aria-haspopup': 'dialog',
      click: () => (R._toggle ? R._toggle() : R.open()),
    },
    icon,
    site.launcher_text && h('span', {}, site.launcher_text),
    badge,
  )
  const box = h('div', { class: 'rb ' + (site.position === 'left' ? 'left' : 'right') }, launcher)
  box.style.setProperty('--c', color)
  box.style.setProperty('--fg', fg)

  const host = h('div', { id: 'replybase-widget' })
  const root = host.attachShadow({ mode: 'open' })
  addCss(root, css)
  root.append(box)
  if (!document.body) await new Promise((resolve) => addEventListener('DOMContentLoaded', resolve))
  // Single-page sites (Turbo, PJAX) replace <body> on navigation, the widget with it: it
  // goes into each new one, its state intact.
  R._attach = () => document.body && !host.isConnected && document.body.append(host)
  R._attach()
  if (window.MutationObserver) new MutationObserver(R._attach).observe(document.documentElement, { childList: true })

  R._c = {
    api,
    key,
    config,
    configAt: Date.now(),
    root,
    box,
    launcher,
    badge,
    emit,
    events: [{ type: 'widget_loaded', at: new Date().toISOString(), data: { ms: Date.now() - started } }],
  }
  emit('ready')
  if (R.q.some(([name]) => name === 'open')) load()
  else if (window.requestIdleCallback) requestIdleCallback(load, { timeout: 5000 })
  else setTimeout(load, 3000)
}
