// widget.js's state machine (init, polls, sends, identify, the badge) against a fake page
// and a scripted API: the cases a browser test cannot time (a token that expired while the
// visitor was away, an init racing a poll, another tab). What it draws is tested in Chromium
// (tests/e2e/test_widget.py).

import assert from 'node:assert/strict'
import { afterEach, beforeEach, mock, test } from 'node:test'
import vm from 'node:vm'
import * as esbuild from 'esbuild'

const built = await esbuild.build({
  entryPoints: [new URL('../src/widget.js', import.meta.url).pathname],
  bundle: true,
  format: 'iife',
  write: false,
  plugins: [{ name: 'css', setup: (b) => b.onLoad({ filter: /\.css$/ }, () => ({ contents: 'export default ""', loader: 'js' })) }],
})
const widgetCode = new vm.Script(built.outputFiles[0].text)

// --- a page just big enough for the widget ---------------------------------------------

class Element {
  constructor(tag) {
    Object.assign(this, { tagName: tag, children: [], attrs: {}, dataset: {}, listeners: {}, parent: null })
    Object.assign(this, { hidden: false, scrollTop: 0, scrollHeight: 0, clientHeight: 0 })
    this.content = 
    this.style = { setProperty() {} }
    this.classList = { add() {}, remove() {}, toggle() {} }
  }
  get textContent() {
    return this.content
  }
  set textContent(value) {
    this.content = String(value) // as the DOM does
  }
  setAttribute(name, value) {
    this.attrs[name] = value
    if (name === 'hidden') this.hidden = true
  }
  getAttribute(name) {
    return this.attrs[name]
  }
  addEventListener(name, f) {
    ;(this.listeners[name] ||= []).push(f)
  }
  append(...children) {
    for (const c of children) {
      const el = typeof c === 'string' ? Object.assign(new Element('#text'), { textContent: c }) : c
      el.remove()
      el.parent = this
      this.children.push(el)
    }
  }
  remove() {
    if (!this.parent) return
    this.parent.children.splice(this.parent.children.indexOf(this), 1)
    this.parent = null
  }
  insertBefore(el, ref) {
    el.remove()
    el.parent = this
    const i = ref ? this.children.indexOf(ref) : -1
    if (i < 0) this.children.push(el)
    else this.children.splice(i, 0, el)
  }
  replaceChildren(...children) {
    for (const c of [...this.children]) c.remove()
    this.append(...children)
  }
  get firstChild() {
    return this.children[0] || null
  }
  get nextSibling() {
    const siblings = this.parent ? this.parent.children : []
    return siblings[siblings.indexOf(this) + 1] || null
  }
  querySelector(selector) {
    return selector === 'path' ? (this.path ||= new Element('path')) : null
  }
  focus() {}
  contains(el) {
    return el === this || this.children.some((c) => c.contains(el))
  }
  get text() {
    return this.tagName === '#text' ? this.textContent : this.children.map((c) => c.text).join('')
  }
  find(test) {
    for (const c of this.children) {
      if (test(c)) return c
      const found = c.find(test)
      if (found) return found
    }
    return null
  }
}

const KEY = 'wk_test'
const STORAGE_KEY = 'replybase:' + KEY
let storage
let listeners // the page's: window's and document's

/** The browser fires `name` (online, storage, …) at the page. */
const fire = (name, event = {}) => (listeners[name] || []).forEach((f) => f(event))

function installPage() {
  storage = new Map()
  listeners = {}
  Object.assign(globalThis, {
    window: globalThis,
    localStorage: {
      getItem: (k) => storage.get(k) ?? null,
      setItem: (k, v) => storage.set(k, String(v)),
      removeItem: (k) => storage.delete(k),
      get length() {
        return storage.size
      },
      key: (i) => [...storage.keys()][i] ?? null,
    },
    document: {
      hidden: false,
      referrer: '',
      createElement: (tag) => new Element(tag),
      addEventListener: (name, f) => (listeners[name] ||= []).push(f),
    },
    location: { search: '', href: 'https://shop.example/page' },
    addEventListener: (name, f) => (listeners[name] ||= []).push(f),
    CSSStyleSheet: class {
      constructor() {
        throw new Error('not in this fake page')
      }
    },
  })
  Object.defineProperty(globalThis, 'navigator', { value: { onLine: true, language: 'en' }, configurable: true })
}

// --- the API, scripted per test ----------------------------------------------------------

const message = (id, sender = 'agent', extra = {}) => ({
  id,
  conversation_id: 7,
  direction: sender === 'visitor' ? 'inbound' : 'outbound',
  sender,
  text: `${sender} ${id}`,
  created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, id)).toISOString(),
  quick_replies: null,
  client_message_id: null,
  ...extra,
})

const initAnswer = (fields = {}) => ({
  session_token: 'T-new',
  expires_at: '2026-01-01T02:00:00Z',
  visitor_id: 'v'.repeat(32),
  conversation_id: 7,
  resumed: true,
  messages: [],
  ...fields,
})

/** `routes[name](request)` answers {status, body} or throws (a network error). */
function serve(routes) {
  const calls = []
  globalThis.fetch = async (url, options) => {
    const path = url.replace('https://api.example/v1/', '')
    const name = path.split('?')[0] + (options.method === 'POST' && path === 'messages' ? ':post' : '')
    const call = {
      name,
      path,
      token: (options.headers.Authorization || '').replace('Bearer ', ''),
      body: options.body && JSON.parse(options.body),
    }
    calls.push(call)
    const route = routes[name] || (() => ({ status: 202, body: {} }))
    const { status, body, headers = {} } = await route(call)
    return { ok: status < 300, status, json: async () => body, headers: { get: (name) => headers[name] ?? null } }
  }
  return calls
}

const config = () => ({ status: 200, body: { site: {}, challenge: 'c-fresh', pow: null } })

const noNews = () => ({ status: 200, body: { messages: [], pending_reply: false } })

/** GET messages: 401 for the expired token 'T-expired', else `messages`. */
const expiredThen =
  (messages) =>
  ({ token }) =>
    token === 'T-expired'
      ? { status: 401, body: { error: { code: 'token_expired', message: 'This session has expired.' } } }
      : { status: 200, body: { messages, pending_reply: false } }

// --- the widget on the page --------------------------------------------------------------

function mountWidget({ stored, queue = [], pow = null, site = {} } = {}) {
  if (stored) storage.set(STORAGE_KEY, JSON.stringify(stored))
  const launcher = new Element('button')
  const badge = new Element('span')
  const box = new Element('div')
  const root = Object.assign(new Element('#shadow-root'), { host: new Element('div'), activeElement: null })
  globalThis.ReplyBase = {
    q: [...queue],
    _c: {
      api: 'https://api.example/v1/',
      key: KEY,
      config: { site: { title: 'Shop', telemetry: false, require_consent: false, ...site }, challenge: 'c0', pow },
      configAt: Date.now(),
      root,
      box,
      launcher,
      badge,
      emit() {},
      events: [],
    },
  }
  widgetCode.runInThisContext()
  const R = globalThis.ReplyBase
  const form = () => box.find((el) => el.tagName === 'form')
  return {
    R,
    badge,
    stored: () => JSON.parse(storage.get(STORAGE_KEY) || 'null'),
    alert: () => box.find((el) => el.attrs.role === 'alert'),
    bubbles: () =>
      (box.find((el) => el.attrs.role === 'log')?.children || [])
        .filter((el) => String(el.attrs.class).startsWith('m '))
        .map((el) => el.text + (el.dataset.s ? ` [${el.dataset.s}]` : '')),
    send(text) {
      const input = form().children[0]
      input.value = text
      form().listeners.submit[0]({ preventDefault() {} })
    },
  }
}

// Timers are mocked; fetch answers are promises: let both run, `ms` of page time.
const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
}
async function advance(ms) {
  for (let t = 0; t < ms; t += 100) {
    mock.timers.tick(100)
    await flush()
  }
}
// Work that is really asynchronous (WebCrypto digests run on libuv's thread pool) ends in
// real time, not on the mocked clock: on a busy machine it outlasts any fixed advance().
async function until(done, realMs = 10_000) {
  const end = performance.now() + realMs
  while (!done() && performance.now() < end) await advance(100)
}

beforeEach(() => {
  installPage()
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] })
})
afterEach(() => mock.timers.reset())

// --- the cases ---------------------------------------------------------------------------

test('a returning visitor whose token expired still gets the badge for a reply', async () => {
  // they saw up to 100; an agent answered (105) while they were away for longer than a token lasts
  const calls = serve({
    messages: expiredThen([message(105)]),
    config,
    init: () => ({ status: 200, body: initAnswer({ messages: [message(100, 'visitor'), message(105)] }) }),
  })
  const w = mountWidget({ stored: { visitor_id: 'v'.repeat(32), session_token: 'T-expired', conversation_id: 7, seen: 100, shown: [] } })
  await advance(1500)
  assert.deepEqual(
    calls.map((c) => c.name),
    ['messages', 'init', 'messages'],
  )
  assert.equal(calls[1].body.session_token, 'T-expired') // an expired token still resumes
  assert.equal(w.badge.textContent, '1')
  assert.equal(w.badge.hidden, false)
})

test('a closed widget keeps polling after a re-init that failed', async () => {
  let initFailures = 1
  const calls = serve({
    messages: expiredThen([message(9)]),
    config,
    init: () => {
      if (initFailures-- > 0) throw new TypeError('Failed to fetch')
      return { status: 200, body: initAnswer() }
    },
  })
  const w = mountWidget({ stored: { visitor_id: 'v'.repeat(32), session_token: 'T-expired', conversation_id: 7, seen: 5 } })
  await advance(1500) // the first poll: 401, and the re-init fails (the network)
  assert.deepEqual(calls.map((c) => c.name), ['messages', 'init'])
  assert.equal(w.stored().session_token, 'T-expired') // kept until an init replaces it
  await advance(30_000) // the retry, after its backoff: 401 again, a new challenge, init, poll
  assert.deepEqual(calls.slice(2).map((c) => c.name), ['messages', 'config', 'init', 'messages'])
  assert.equal(w.stored().session_token, 'T-new')
  assert.equal(w.badge.textContent, '1')
})

test('identify() while the first init runs makes the next call init again as that user', async () => {
  const calls = serve({
    config,
    init: () => ({ status: 200, body: initAnswer({ resumed: false }) }),
    messages: noNews,
    'messages:post': ({ body }) => ({
      status: 201,
      body: { message: message(20, 'visitor', { text: body.text, client_message_id: body.client_message_id }), replies: [], pending_reply: false },
    }),
  })
  const w = mountWidget({ queue: [['open'], ['identify', 'user-42', 'hash-42']] })
  const inits = () => calls.filter((c) => c.name === 'init').map((c) => c.body)
  await advance(1500)
  assert.deepEqual(
    inits().map((b) => b.user_id),
    [undefined, 'user-42'],
  )
  assert.equal(inits()[1].session_token, 'T-new')
  w.R.identify('user-42', 'hash-42') // the same user again: nothing to redo
  w.send('hello')
  await advance(500)
  assert.equal(inits().length, 2)
})

test('a new conversation from init keeps the bubble the visitor is still sending', async () => {
  // a first visit: the message is typed before init answers, and the server refuses it
  let answerInit
  serve({
    config,
    init: () => new Promise((resolve) => (answerInit = () => resolve({ status: 200, body: initAnswer({ conversation_id: 8, resumed: false }) }))),
    'messages:post': () => ({ status: 400, body: { error: { code: 'invalid_request', message: 'text: too long.' } } }),
    messages: noNews,
  })
  const w = mountWidget({ queue: [['open']] })
  await advance(100)
  w.send('my order number is 1234')
  assert.deepEqual(w.bubbles(), ['You: my order number is 1234 [sending]'])
  answerInit()
  await advance(500)
  assert.deepEqual(w.bubbles(), ['You: my order number is 1234 [failed]'])
})

test('a poll answered after init moved to another conversation adds nothing', async () => {
  let answerPoll
  serve({
    messages: ({ token }) =>
      token === 'T-old'
        ? new Promise((resolve) => (answerPoll = () => resolve({ status: 200, body: { messages: [message(150)], pending_reply: false } })))
        : noNews(),
    config,
    init: () => ({ status: 200, body: initAnswer({ conversation_id: 9, resumed: false }) }),
  })
  const w = mountWidget({ stored: { visitor_id: 'v'.repeat(32), session_token: 'T-old', conversation_id: 7, seen: 140 } })
  await advance(1100) // the closed widget's poll of conversation 7 is on its way
  w.R.open() // conversation 7 was resolved: init starts 9
  await advance(100)
  answerPoll()
  await advance(500)
  assert.deepEqual(w.bubbles(), [])
  assert.equal(w.stored().conversation_id, 9)
})

test('init uses the session another tab started after this page loaded', async () => {
  const calls = serve({ config, init: () => ({ status: 200, body: initAnswer() }), messages: noNews })
  const w = mountWidget() // nothing stored yet
  storage.set(STORAGE_KEY, JSON.stringify({ visitor_id: 'v'.repeat(32), session_token: 'T-tab', conversation_id: 7, seen: 3 }))
  w.R.open()
  await advance(500)
  const inits = calls.filter((c) => c.name === 'init').map((c) => c.body)
  assert.equal(inits.length, 1)
  assert.deepEqual(
    [inits[0].visitor_id, inits[0].session_token, inits[0].conversation_id],
    ['v'.repeat(32), 'T-tab', 7],
  )
  assert.equal(w.stored().seen, 3) // the same conversation: what that tab saw stays seen
})

test('a proof of work is solved on a challenge fetched just before, not the one of the page load', async () => {
  const pow = { algorithm: 'SHA-256', difficulty: 1, salt: 'salt' }
  const calls = serve({
    config: () => ({ status: 200, body: { site: {}, challenge: 'c-fresh', pow } }),
    init: () => ({ status: 200, body: initAnswer({ resumed: false }) }),
    messages: noNews,
  })
  mountWidget({ queue: [['open']], pow })
  await until(() => calls.some((c) => c.name === 'init'))
  assert.deepEqual(calls.slice(0, 2).map((c) => c.name), ['config', 'init'])
  assert.equal(calls[1].body.challenge, 'c-fresh')
  assert.equal(typeof calls[1].body.pow_solution, 'number')
})

test('a challenge refused at init is fetched again, the session kept', async () => {
  let refusals = 1
  const calls = serve({
    config,
    init: () =>
      refusals-- > 0
        ? { status: 403, body: { error: { code: 'challenge_invalid', message: 'Expired.' } } }
        : { status: 200, body: initAnswer() },
    messages: noNews,
  })
  mountWidget({ stored: { visitor_id: 'v'.repeat(32), session_token: 'T-old', conversation_id: 7 }, queue: [['open']] })
  await advance(1500)
  const inits = calls.filter((c) => c.name === 'init').map((c) => c.body)
  assert.equal(inits.length, 2)
  assert.deepEqual([inits[1].session_token, inits[1].conversation_id, inits[1].challenge], ['T-old', 7, 'c-fresh'])
})

test('a closed widget with a conversation but no token does not start a session in the background', async () => {
  const calls = serve({ config, init: () => ({ status: 200, body: initAnswer() }), messages: noNews })
  mountWidget({ stored: { visitor_id: 'v'.repeat(32), conversation_id: 7, seen: 4 } })
  await advance(60_000)
  assert.deepEqual(calls, [])
})

test('an init refused for a wrong user_hash keeps the stored session and is not retried', async () => {
  // identify() with a hash the site's server did not compute: the visitor's anonymous
  // session is not stale, so it is neither forgotten nor re-inited without it in a loop.
  const calls = serve({
    config,
    init: ({ body }) =>
      body.user_id
        ? { status: 403, body: { error: { code: 'identity_invalid', message: 'The user_hash does not match user_id.' } } }
        : { status: 200, body: initAnswer() },
    messages: noNews,
  })
  const stored = { visitor_id: 'v'.repeat(32), session_token: 'T-old', conversation_id: 7, seen: 4 }
  const w = mountWidget({ stored, queue: [['identify', 'user-42', 'wrong'], ['open']] })
  await advance(500)
  assert.equal(calls.filter((c) => c.name === 'init').length, 1)
  assert.deepEqual(
    [w.stored().session_token, w.stored().conversation_id],
    ['T-old', 7],
  )
})

test('consent() is given only by true: a string such as "false" from a cookie does not give it', async () => {
  serve({ config, init: () => ({ status: 200, body: initAnswer({ resumed: false }) }), messages: noNews })
  const w = mountWidget({ site: { require_consent: true }, queue: [['open']] })
  await advance(500)
  for (const value of ['false', 'no', 0, 1, {}, undefined]) {
    w.R.consent(value)
    assert.equal(w.stored(), null, `consent(${JSON.stringify(value)}) stored the session`)
  }
  w.R.consent(true)
  assert.equal(w.stored().consent, true)
  w.R.consent('true') // not a yes either: the consent given is withdrawn
  assert.equal(w.stored(), null)
})

test('a message that was not delivered stays where it was sent, above the messages after it', async () => {
  let id = 20
  serve({
    config,
    init: () => ({ status: 200, body: initAnswer({ resumed: false }) }),
    messages: noNews,
    'messages:post': ({ body }) =>
      // a lone bidi override: the server strips it, and refuses the empty message
      body.text === '\u202e'
        ? { status: 400, body: { error: { code: 'invalid_request', message: 'text: write something.' } } }
        : {
            status: 201,
            body: {
              message: message(++id, 'visitor', { text: body.text, client_message_id: body.client_message_id }),
              replies: [message(++id, 'bot')],
              pending_reply: false,
            },
          },
  })
  const w = mountWidget({ queue: [['open']] })
  await advance(500)
  w.send('hello')
  await advance(500)
  w.send('\u202e')
  await advance(500)
  w.send('are you there?')
  await advance(500)
  assert.deepEqual(w.bubbles(), [
    'You: hello',
    'Bot: bot 22',
    'You: \u202e [failed]',
    'You: are you there?',
    'Bot: bot 24',
  ])
})

test("coming back online does not cut short a 429's Retry-After, nor clear its notice", async () => {
  let limited = 1
  const calls = serve({
    config,
    init: () => ({ status: 200, body: initAnswer({ resumed: false }) }),
    messages: noNews,
    'messages:post': ({ body }) =>
      limited-- > 0
        ? { status: 429, headers: { 'Retry-After': '30' }, body: { error: { code: 'rate_limited', message: 'Slow down.' } } }
        : { status: 201, body: { message: message(20, 'visitor', { text: body.text, client_message_id: body.client_message_id }), replies: [], pending_reply: false } },
  })
  const w = mountWidget({ queue: [['open']] })
  await advance(500)
  w.send('hello')
  await advance(500)
  assert.match(w.alert().textContent, /Trying again in 30 s/)
  fire('online') // a blip of the connection while the widget waits out the rate limit
  await advance(1000)
  assert.equal(calls.filter((c) => c.name === 'messages:post').length, 1)
  assert.match(w.alert().textContent, /Trying again in 30 s/)
  await advance(30_000)
  assert.equal(calls.filter((c) => c.name === 'messages:post').length, 2)
  assert.deepEqual(w.bubbles(), ['You: hello'])
})

test('coming back online keeps the notice that the chat was switched off', async () => {
  serve({
    config,
    init: () => ({ status: 200, body: initAnswer({ resumed: false }) }),
    messages: noNews,
    'messages:post': () => ({ status: 403, body: { error: { code: 'webchat_disabled', message: 'Off.' } } }),
  })
  const w = mountWidget({ queue: [['open']] })
  await advance(500)
  w.send('hello')
  await advance(500)
  const notice = 'The chat is not available right now. Please try again later.'
  assert.equal(w.alert().textContent, notice)
  fire('online')
  assert.equal(w.alert().textContent, notice)
  assert.equal(w.alert().hidden, false)
})

// --- messages being sent survive a reload ----------------------------------------------

const OUT = STORAGE_KEY + ':out:'
const echo = ({ body }) => ({
  status: 201,
  body: { message: message(30, 'visitor', { text: body.text, client_message_id: body.client_message_id }), replies: [], pending_reply: false },
})

test('a message is kept in storage until the server has it', async () => {
  let up = false
  serve({ config, init: () => ({ status: 200, body: initAnswer() }), messages: noNews, 'messages:post': (call) => (up ? echo(call) : { status: 503, body: {} }) })
  const w = mountWidget({ queue: [['open']] })
  await advance(200)
  w.send('where is my order?')
  await advance(100)
  const [[name, kept]] = [...storage].filter(([k]) => k.startsWith(OUT))
  assert.deepEqual([kept && JSON.parse(kept).text, JSON.parse(kept).conversation], ['where is my order?', 7])
  up = true
  await advance(5000)
  assert.equal(storage.has(name), false)
  assert.deepEqual(w.bubbles(), ['You: where is my order?'])
})

test('a message a reload caught being sent goes once, with its client_message_id', async () => {
  const calls = serve({ config, init: () => ({ status: 200, body: initAnswer() }), messages: noNews, 'messages:post': echo })
  storage.set(OUT + 'cid-1', JSON.stringify({ text: 'still here?', conversation: 7, at: Date.now() }))
  storage.set(OUT + 'cid-old', JSON.stringify({ text: 'last week', conversation: 7, at: Date.now() - 2 * 864e5 }))
  storage.set(OUT + 'cid-other', JSON.stringify({ text: 'other chat', conversation: 6, at: Date.now() }))
  mountWidget({ stored: { visitor_id: 'v'.repeat(32), session_token: 'T-old', conversation_id: 7 }, queue: [['open']] })
  await advance(1000)
  const posts = calls.filter((c) => c.name === 'messages:post').map((c) => c.body)
  assert.deepEqual(posts, [{ text: 'still here?', client_message_id: 'cid-1' }])
  assert.deepEqual([...storage.keys()].filter((k) => k.startsWith(OUT)), [])
})

test('without consent nothing of a message is stored, and withdrawing it forgets them', async () => {
  serve({ config, init: () => ({ status: 200, body: initAnswer() }), messages: noNews, 'messages:post': () => ({ status: 503, body: {} }) })
  const w = mountWidget({ queue: [['open']], site: { require_consent: true } })
  await advance(200)
  w.send('no consent yet')
  await advance(100)
  assert.deepEqual([...storage.keys()], [])
  w.R.consent(true)
  w.send('with consent')
  await advance(100)
  assert.equal([...storage.keys()].filter((k) => k.startsWith(OUT)).length, 1)
  w.R.consent(false)
  assert.deepEqual([...storage.keys()], [])
})

test('a message a reload caught being sent goes as the user the page identifies', async () => {
  // identify() is called before the widget loads (queued): the resent message must not go
  // through an anonymous init, which starts a conversation apart from the user's own
  const calls = serve({ config, init: () => ({ status: 200, body: initAnswer({ session_token: 'T-user' }) }), messages: noNews, 'messages:post': echo })
  storage.set(OUT + 'cid-1', JSON.stringify({ text: 'still here?', conversation: 7, at: Date.now() }))
  mountWidget({
    stored: { visitor_id: 'v'.repeat(32), session_token: 'T-old', conversation_id: 7 },
    queue: [['identify', 'user-42', 'hash-42']],
  })
  await advance(1000)
  const inits = calls.filter((c) => c.name === 'init').map((c) => c.body.user_id)
  assert.deepEqual(inits, ['user-42'])
  const posts = calls.filter((c) => c.name === 'messages:post')
  assert.deepEqual(posts.map((c) => [c.body.client_message_id, c.token]), [['cid-1', 'T-user']])
})
