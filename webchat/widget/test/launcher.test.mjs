import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLauncherView } from '../src/launcher.js'

const CHAT_ICON = 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z'

// Just enough of the DOM the loader builds: <button><svg><path d></svg><span>text</span><span.badge>
function fakeElement(attrs = {}) {
  return {
    attrs: { ...attrs },
    hidden: false,
    textContent: '',
    setAttribute(name, value) {
      this.attrs[name] = String(value)
    },
    getAttribute(name) {
      return this.attrs[name] ?? null
    },
  }
}

function fakeLauncher(withText) {
  const path = fakeElement({ d: CHAT_ICON })
  const text = withText ? fakeElement() : null
  const launcher = fakeElement({ 'aria-label': 'Open chat' })
  launcher.querySelector = (selector) => ({ path, 'span:not(.badge)': text })[selector] ?? null
  return { launcher, path, text, badge: fakeElement() }
}

test('open: a close icon and "Close chat"; closed again: the chat icon and "Open chat"', () => {
  const { launcher, path, badge } = fakeLauncher(false)
  const update = createLauncherView(launcher, badge)
  update(true, 0)
  assert.equal(launcher.getAttribute('aria-label'), 'Close chat')
  assert.notEqual(path.getAttribute('d'), CHAT_ICON)
  assert.match(path.getAttribute('d'), /^M19 6\.41/) // the close (X) glyph
  update(false, 0)
  assert.equal(launcher.getAttribute('aria-label'), 'Open chat')
  assert.equal(path.getAttribute('d'), CHAT_ICON)
})

test('the launcher text is hidden while open, so the visible name matches "Close chat"', () => {
  const { launcher, text, badge } = fakeLauncher(true)
  const update = createLauncherView(launcher, badge)
  update(true, 0)
  assert.equal(text.hidden, true)
  update(false, 0)
  assert.equal(text.hidden, false)
})

test('unread messages: a badge and a count in the label', () => {
  const { launcher, badge } = fakeLauncher(false)
  const update = createLauncherView(launcher, badge)
  update(false, 3)
  assert.equal(launcher.getAttribute('aria-label'), 'Open chat, 3 unread')
  assert.equal([badge.textContent, badge.hidden].join(), '3,false')
  update(false, 12)
  assert.equal(badge.textContent, '9+')
  update(true, 0)
  assert.equal([launcher.getAttribute('aria-label'), badge.textContent, badge.hidden].join(), 'Close chat,,true')
})

test('with launcher text, the closed launcher is named by it (the label a user sees)', () => {
  const { launcher, text, badge } = fakeLauncher(true)
  text.textContent = 'Chat with us'
  const update = createLauncherView(launcher, badge)
  update(false, 2)
  assert.equal(launcher.getAttribute('aria-label'), 'Chat with us, 2 unread')
  update(true, 0)
  assert.equal(launcher.getAttribute('aria-label'), 'Close chat')
})
