// ReplyBase widget: the panel, messaging, session, polling and telemetry. Loaded by loader.js,
// which hands over what it already has in window.ReplyBase._c.

import { request } from './api.js'
import { addCss, h } from './dom.js'
import { createFailureGate } from './failures.js'
import { createLauncherView } from './launcher.js'
import { tokenize } from './links.js'
import { ack, fail, lastId, merge, newestId, seenMark, shownText } from './messages.js'
import { createOutbox, uuid } from './outbox.js'
import { solvePow } from './pow.js'
import { backoff, pollDelay } from './schedule.js'
import { createStore } from './store.js'
import { createTelemetry } from './telemetry.js'
import css from './widget.css'

const SENDER = { visitor: 'You', bot: 'Bot', agent: 'Agent', system: 'Notice' }
const OFFLINE = "You're offline. Messages will be sent when you're back online."

function mount(R, { api, key, config, configAt, root, box, launcher, badge, emit, events }) {
  const site = config.site
  let storage
  try {
    storage = window.localStorage
  } catch {
    // storage blocked: memory only
  }
  const storeKey = 'replybase:' + key
  const store = createStore(storeKey, site.require_consent, storage)
  const st = store.data // {visitor_id, session_token, conversation_id, seen, shown, consent}

  let msgs = []
  let conversation = st.conversation_id // the one `msgs` and `cursor` belong to
  let cursor // `GET messages?after=`: the newest id a poll or init returned (see newestId)
  let open = false
  let pending = false
  let inited = false // init ran on this page, so the session token is current
  let dead = false
  let unread = 0
  let polling = false
  let pollTimer
  let pollFailures = 0
  let initPromise
  let identity = {}
  let identified = 0 // identify() calls: an init that began before the latest one is stale
  let wake // ends the outbox's current backoff when the browser comes back online
  let serverWait = false // that backoff is the server's (a 429's Retry-After, a 5xx): no network wait
  let quickFor // the message whose quick replies are shown
  // pagehide until pageshow: the browser cuts the requests in flight (after pagehide, in
  // Chromium). Not beforeunload: downloads, mailto: links and cancelled prompts fire it too.
  let unloading = false
  const leaving = () => unloading || document.hidden
  const pollFailed = createFailureGate(leaving)
  const sendFailed = createFailureGate(leaving)
  const elements = new Map() // cid or id → bubble

  // Events go with the session once init ran, else (or if the token went stale) with the site key.
  const telemetry = createTelemetry(
    site.telemetry,
    async (events, keepalive) => {
      if (inited) {
        try {
          return await call('POST', 'events', { events }, st.session_token, keepalive)
        } catch (e) {
          if (e.status !== 401) throw e
        }
      }
      return call('POST', 'events', { site_key: key, events }, null, keepalive)
    },
    events,
  )
  const flushTimer = setInterval(() => telemetry.flush(), 5000)
  addEventListener('pagehide', () => {
    unloading = true
    telemetry.flush(true)
  })
  addEventListener('pageshow', () => (unloading = false)) // back from the back/forward cache

  // ---------- DOM ----------
  const log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', tabindex: 0 })
  const welcome = site.welcome_message && bubble({ sender: 'bot', text: site.welcome_message })
  if (welcome) log.append(welcome)
  const typing = h('div', { class: 'typing', role: 'status', hidden: true }, 'typing…')
  const quick = h('div', { class: 'qr', role: 'group', 'aria-label': 'Suggested replies' })
  const error = h('p', { class: 'err', role: 'alert', hidden: true })
  const input = h('textarea', {
    rows: 1,
    dir: 'auto',
    maxlength: 4000,
    'aria-label': 'Message',
    placeholder: 'Write a message…',
    keydown: (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) submit(e)
    },
    input: grow,
  })
  const panel = h(
    'div',
    {
      id: 'rb-panel',
      class: 'panel',
      role: 'dialog',
      'aria-labelledby': 'rb-title',
      hidden: true,
    },
    h(
      'header',
      {},
      h('h2', { id: 'rb-title' }, site.title || 'Chat'),
      h('button', { class: 'x', type: 'button', 'aria-label': 'Close chat', click: () => hide() }, '×'),
    ),
    log,
    typing,
    quick,
    error,
    h('form', { submit }, input, h('button', { class: 'send', type: 'submit' }, 'Send')),
  )
  addCss(root, css)
  box.append(panel)
  box.addEventListener('keydown', (e) => e.key === 'Escape' && hide())
  launcher.setAttribute('aria-controls', 'rb-panel')

  function bubble(m, before) {
    const parts =
      m.sender === 'visitor'
        ? [shownText(m, before)]
        : tokenize(m.text).map((t) =>
            typeof t === 'string' ? t : h('a', { href: t.href, target: '_blank', rel: 'noopener noreferrer' }, t.text),
          )
    // dir=auto: a bubble reads right to left when its text does; the label has a dir of its
    // own, so it is not what decides.
    return h(
      'div',
      { class: 'm ' + m.sender, dir: 'auto' },
      h('span', { class: 'sr', dir: 'ltr' }, (SENDER[m.sender] || '') + ': '),
      ...parts,
    )
  }

  function grow() {
    input.style.height = 'auto'
    input.style.height = input.scrollHeight + input.offsetHeight - input.clientHeight + 'px'
  }

  // Brings the log in line with `msgs`, touching only what changed so screen readers
  // announce new messages once.
  function render() {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60
    const keys = new Set()
    let prev = welcome
    for (const [i, m] of msgs.entries()) {
      const k = m.cid ?? m.id
      keys.add(k)
      let el = elements.get(k)
      if (!el) elements.set(k, (el = bubble(m, msgs[i - 1])))
      const next = prev ? prev.nextSibling : log.firstChild
      if (next !== el) log.insertBefore(el, next)
      if (el.dataset.s !== m.state) m.state ? (el.dataset.s = m.state) : delete el.dataset.s
      prev = el
    }
    for (const [k, el] of elements) if (!keys.has(k)) el.remove(), elements.delete(k)

    // The buttons of the bot's latest turn: a greeting's stay under the answer that
    // followed it in the same turn ("Hi! Pick a topic:" then the answer to the question).
    let from = null
    for (let i = msgs.length - 1; i >= 0 && msgs[i].sender === 'bot'; i--) {
      if (msgs[i].quick_replies && msgs[i].quick_replies.length) {
        from = msgs[i]
        break
      }
    }
    // Redrawn only when they change, so a keyboard user on a button keeps their place;
    // when the button they were on goes, they go to the composer.
    if (from !== quickFor) {
      const focused = quick.contains(root.activeElement)
      quickFor = from
      quick.replaceChildren(
        ...(from ? from.quick_replies : []).map((o) =>
          h('button', { type: 'button', click: () => (send(o.value || o.label), input.focus()) }, o.label),
        ),
      )
      if (focused) input.focus()
    }
    typing.hidden = !pending
    if (atBottom) log.scrollTop = log.scrollHeight
  }

  // Not seen on this page or an earlier one (see seenMark): what the closed widget counts.
  const unseen = (m) => !(m.id <= st.seen) && !(st.shown || []).includes(m.id)

  function add(incoming) {
    const { list, added } = merge(msgs, incoming)
    msgs = list
    for (const m of added) {
      if (m.sender !== 'visitor') {
        telemetry.track('message_rendered', { id: m.id })
        if (!open && unseen(m)) unread++
      }
      emit('message', m)
    }
    if (open) markSeen()
    updateLauncher()
    render()
  }

  function markSeen() {
    unread = 0
    // Never below what an earlier page saw of this conversation (the mark is reset with it).
    const known = [cursor, st.seen].filter((v) => v != null)
    const { seen, shown } = seenMark(msgs, known.length ? Math.max(...known) : undefined)
    if (seen != null && (seen !== st.seen || String(shown) !== String(st.shown || []))) store.set({ seen, shown })
  }

  const showLauncher = createLauncherView(launcher, badge)
  function updateLauncher() {
    showLauncher(open, unread)
  }

  // `by`: what the notice is about ('poll', 'send', 'off'), so a poll that went through
  // does not clear the notice of a message still waiting to be sent.
  let noticeBy
  function showError(text, by) {
    error.textContent = text || ''
    error.hidden = !text
    noticeBy = text && by
  }

  // ---------- open / close ----------
  function show() {
    if (open || dead) return
    open = true
    panel.hidden = false
    box.classList.add('open')
    launcher.setAttribute('aria-expanded', 'true')
    markSeen()
    updateLauncher()
    fit()
    input.focus()
    telemetry.track('launcher_opened')
    emit('open')
    session().catch(() => {}) // init now for the history; a failure is reported by the poll that follows
    schedule(0)
  }

  function hide() {
    if (!open) return
    const hadFocus = root.activeElement
    open = false
    panel.hidden = true
    box.classList.remove('open')
    launcher.setAttribute('aria-expanded', 'false')
    updateLauncher()
    if (hadFocus) launcher.focus()
    telemetry.track('launcher_closed')
    emit('close')
    if (dead) root.host.remove()
  }

  // On phones the panel tracks the visual viewport, so the on-screen keyboard never covers the composer.
  const viewport = window.visualViewport
  function fit() {
    if (!viewport) return
    box.style.setProperty('--vh', viewport.height + 'px')
    box.style.setProperty('--top', viewport.offsetTop + 'px')
    if (open) log.scrollTop = log.scrollHeight
  }
  if (viewport) for (const type of ['resize', 'scroll']) viewport.addEventListener(type, fit)

  function destroy() {
    dead = true
    clearTimeout(pollTimer)
    clearInterval(flushTimer)
    telemetry.queue.length = 0
    for (const name of ['open', 'close', 'consent', 'identify']) R[name] = () => {}
    emit('disabled')
    if (!open) return root.host.remove()
    // The visitor is in the middle of a chat: tell them, rather than vanish under them. The
    // widget goes when they close the panel.
    input.disabled = true
    showError('The chat is not available right now. Please try again later.', 'off')
  }

  // ---------- API ----------
  async function call(method, path, body, token, keepalive) {
    try {
      return await request(api + path, { method, body, token, keepalive })
    } catch (e) {
      if (e.code === 'webchat_disabled') destroy()
      throw e
    }
  }

  const page = () => {
    const params = new URLSearchParams(location.search)
    const utm = {}
    for (const k of ['source', 'medium', 'campaign', 'term', 'content']) utm[k] = params.get('utm_' + k) || undefined
    return { url: location.href, referrer: document.referrer || undefined, locale: navigator.language, utm }
  }

  const session = () =>
    inited ? Promise.resolve(st.session_token) : (initPromise ||= init().finally(() => (initPromise = null)))

  async function init(attempt = 0) {
    // Another tab may have started or resumed a session since this page loaded: go on with it.
    if (!attempt) {
      store.reload()
      follow(st.conversation_id)
    }
    const asked = identified
    // Challenges are single-use and short-lived: fetch a fresh one when ours is spent or old,
    // and always before a proof of work, whose solving uses up part of the challenge's life.
    if (!config.challenge || config.pow || Date.now() - configAt > 60000) {
      config = await call('GET', 'config?site_key=' + encodeURIComponent(key))
      configAt = Date.now()
    }
    const body = {
      site_key: key,
      challenge: config.challenge,
      visitor_id: st.visitor_id,
      session_token: st.session_token,
      conversation_id: st.conversation_id,
      ...identity,
      page: page(),
    }
    config.challenge = null
    if (config.pow) body.pow_solution = await solvePow(config.pow)
    let r
    try {
      r = await call('POST', 'init', body)
    } catch (e) {
      // A refused challenge (it expired while the proof of work ran, say): again with a fresh
      // one, the session kept. A stale token or a conversation that is gone: again, forgetting
      // the token, then the conversation (the visitor id stays). Other refusals (a wrong
      // user_hash, an origin not allowed) say nothing about the session: it is kept.
      const stale = e.status === 401 || e.code === 'conversation_not_found'
      if (attempt > 1 || dead || !(stale || e.code === 'challenge_invalid')) throw e
      if (e.code !== 'challenge_invalid') {
        const gone = attempt || e.code === 'conversation_not_found'
        store.set({ session_token: undefined, ...(gone && { conversation_id: undefined }) })
      }
      return init(attempt + 1)
    }
    follow(r.conversation_id)
    cursor = newestId(r.messages, cursor ?? 0)
    store.set({
      visitor_id: r.visitor_id,
      session_token: r.session_token,
      conversation_id: r.conversation_id,
      ...(r.conversation_id !== st.conversation_id && { seen: undefined, shown: undefined }),
    })
    // identify() while this init ran: the next call inits again, as that user
    inited = asked === identified
    add(r.messages)
    return r.session_token
  }

  // `msgs` and `cursor` are this conversation's. Another one starts the log over, but for
  // the visitor's messages still being sent (the outbox sends them in the new one).
  function follow(id) {
    if (id === conversation) return
    conversation = id
    msgs = msgs.filter((m) => m.id == null)
    cursor = undefined
  }

  // Bearer call; `lazy` lets a closed widget poll with the stored token without running init.
  // An expired or invalid token triggers one re-init and one retry. The token stays stored
  // until init replaces it (an expired one still resumes the session; init itself forgets
  // one it refuses), so a failed re-init leaves the closed widget something to poll with.
  async function authed(method, path, body, lazy) {
    const token = (lazy && st.session_token) || (await session())
    try {
      return await call(method, path, body, token)
    } catch (e) {
      if (e.status !== 401 || dead) throw e
      if (token === st.session_token) inited = false // not a late answer to a replaced token
      return call(method, path, body, await session())
    }
  }

  function report(e, ms, by) {
    if (dead) return
    telemetry.track('error', { code: e.code })
    emit('error', { code: e.code, message: e.message })
    showError(
      e.status === 429
        ? `Too many messages. Trying again in ${Math.ceil(ms / 1000)} s.`
        : e.code === 'network'
          ? navigator.onLine
            ? 'Connection problem. Retrying…'
            : OFFLINE
          : e.status >= 500
            ? 'Something went wrong. Retrying…'
            : e.message,
      by,
    )
  }

  // ---------- polling ----------
  function schedule(ms) {
    clearTimeout(pollTimer)
    if (!polling && !dead) pollTimer = setTimeout(poll, ms)
  }

  async function poll() {
    if (dead || (!open && !st.session_token)) return
    polling = true
    let delay
    try {
      // Open, the poll waits for init, then starts from the cursor init set (a new
      // conversation's, or the history's newest id), not from one read before it.
      if (open) await session()
      const asked = conversation
      const after = cursor ?? lastId(msgs) ?? st.seen
      const r = await authed('GET', 'messages' + (after != null ? '?after=' + encodeURIComponent(after) : ''), null, !open)
      // An init that moved to another conversation meanwhile: this answer is the old one's.
      if (asked === conversation) {
        pending = !!r.pending_reply
        cursor = newestId(r.messages, after)
        add(r.messages)
      }
      pollFailures = 0
      pollFailed.ok()
      if (noticeBy === 'poll') showError()
    } catch (e) {
      delay = e.retryAfter || backoff(pollFailures)
      pollFailures++
      if (pollFailed.counts(e)) report(e, delay, 'poll')
    }
    polling = false
    schedule(delay || pollDelay({ open, pending, hidden: document.hidden }))
  }

  // ---------- sending ----------
  const outbox = createOutbox({
    online: () => !dead && navigator.onLine,
    wait: (ms) => new Promise((resolve) => setTimeout((wake = resolve), ms)),
    async send(item) {
      const r = await authed('POST', 'messages', { text: item.text, client_message_id: item.cid })
      sendFailed.ok()
      serverWait = false
      return r
    },
    // The server has the message now (201, or 200 for a retry): what follows can only fail
    // here, in the page, and then goes to onSentError. What needs nothing from the answer first.
    sent(item, r) {
      store.drop('out:' + item.cid)
      showError()
      telemetry.track('message_sent')
      pending = !!r.pending_reply
      msgs = ack(msgs, item.cid, r.message)
      add(r.replies)
      schedule(pollDelay({ open, pending }))
    },
    onError(e, item, ms) {
      serverWait = !!ms && e.code !== 'network'
      if (!ms) {
        store.drop('out:' + item.cid)
        msgs = fail(msgs, item.cid)
        render()
      }
      if (sendFailed.counts(e)) report(e, ms, 'send')
    },
    // A bug in handling the answer, not a failed send: the bubble is not "failed" and the
    // visitor sees no notice. The host page hears of it once; a poll now redraws the log and
    // fetches replies the answer's handling missed.
    onSentError(e, item) {
      console.error(e)
      const local = msgs.find((m) => m.cid === item.cid)
      if (local) delete local.state
      if (!dead) {
        telemetry.track('error', { code: 'client_error' })
        emit('error', { code: 'client_error', message: String((e && e.message) || e) })
      }
      schedule(0)
    },
  })

  function send(text) {
    text = text.trim()
    if (!text || dead) return
    const cid = uuid()
    // Kept until the server has it, so a reload or a link followed meanwhile loses nothing.
    store.put('out:' + cid, { text, conversation: st.conversation_id ?? null, at: Date.now() })
    queue(cid, text)
    render()
    if (!navigator.onLine) showError(OFFLINE, 'send')
  }

  function queue(cid, text) {
    msgs = [...msgs, { cid, text, sender: 'visitor', direction: 'inbound', state: 'sending' }]
    outbox.add(text, cid)
  }

  // Messages a reload (or another tab) left still being sent go now, with their
  // client_message_id: the server stores each once, whichever tabs send it. Only into the
  // conversation they were written in, and for a day.
  function resume() {
    for (const [name, item] of store.list('out:')) {
      const cid = name.slice(4)
      const other = item && item.conversation != null && item.conversation !== st.conversation_id
      if (!item || other || !(Date.now() - item.at < 864e5)) store.drop(name)
      else if (!msgs.some((m) => m.cid === cid)) queue(cid, String(item.text))
    }
  }

  function submit(e) {
    e.preventDefault()
    if (dead) return
    send(input.value)
    input.value = ''
    grow()
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) telemetry.flush(true)
    else if (open || st.session_token) schedule(500)
  })
  // Another tab showed this conversation: what it saw counts as seen here too, so this
  // tab's badge does not count a reply the visitor has read there.
  addEventListener('storage', (e) => {
    if (e.key !== storeKey || open) return
    let saved
    try {
      saved = JSON.parse(e.newValue) || {}
    } catch {
      return
    }
    if (saved.conversation_id !== conversation || saved.seen == null) return
    const seen = Math.max(saved.seen, st.seen ?? saved.seen)
    st.seen = seen
    st.shown = [...new Set([...(st.shown || []), ...(saved.shown || [])])].filter((id) => id > seen)
    unread = msgs.filter((m) => m.sender !== 'visitor' && unseen(m)).length
    updateLauncher()
  })
  // Back online: what waited for the network goes now. A wait the server asked for (and its
  // notice) stands, and so does the notice that the chat was switched off.
  addEventListener('online', () => {
    if (dead || serverWait) return
    showError()
    outbox.flush()
    wake && wake()
  })

  // ---------- public API ----------
  Object.assign(R, {
    open: show,
    close: hide,
    // Only `true` is consent: a "false" string (from a cookie, say) must not give it.
    consent(yes) {
      if (typeof yes !== 'boolean') console.warn('ReplyBase: consent() takes true or false')
      store.consent(yes === true)
    },
    identify(user_id, user_hash) {
      const next = { user_id: user_id == null ? undefined : String(user_id), user_hash }
      if (next.user_id === identity.user_id && next.user_hash === identity.user_hash) return
      identity = next
      identified++
      inited = false // the next call re-inits as this user
    },
    _toggle: () => (open ? hide() : show()),
  })
  // The page's queued calls first: an identify() among them is the user a resumed
  // message's init goes as (an anonymous init would start a conversation of its own).
  R.q.splice(0).forEach(([name, ...args]) => R[name] && R[name](...args))
  resume()
  schedule(1000) // a returning visitor's badge
}

const R = window.ReplyBase
if (R && R._c && !R._toggle) mount(R, R._c)
