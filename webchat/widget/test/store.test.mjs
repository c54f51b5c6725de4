import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createStore } from '../src/store.js'

const fakeStorage = (initial = {}) => {
  const data = { ...initial }
  return {
    data,
    writes: 0,
    getItem: (k) => (k in data ? data[k] : null),
    setItem(k, v) {
      this.writes++
      data[k] = String(v)
    },
    removeItem: (k) => delete data[k],
  }
}

test('without a consent requirement the session persists and resumes', () => {
  const storage = fakeStorage()
  createStore('replybase:k', false, storage).set({ visitor_id: 'v1', session_token: 't1', conversation_id: 'c1' })
  assert.deepEqual(JSON.parse(storage.data['replybase:k']), { visitor_id: 'v1', session_token: 't1', conversation_id: 'c1' })
  assert.equal(createStore('replybase:k', false, storage).data.session_token, 't1')
})

test('with require_consent nothing is written until consent(true)', () => {
  const storage = fakeStorage()
  const store = createStore('replybase:k', true, storage)
  store.set({ visitor_id: 'v1', session_token: 't1' })
  assert.equal(storage.writes, 0)
  assert.equal(store.data.session_token, 't1', 'kept in memory')
  store.consent(true)
  assert.deepEqual(JSON.parse(storage.data['replybase:k']), { visitor_id: 'v1', session_token: 't1', consent: true })
  // the next page load trusts what was stored with consent
  assert.equal(createStore('replybase:k', true, storage).data.visitor_id, 'v1')
})

test('consent(false) removes stored data and stops writing', () => {
  const storage = fakeStorage()
  const store = createStore('replybase:k', true, storage)
  store.consent(true)
  store.set({ visitor_id: 'v1' })
  store.consent(false)
  assert.equal(storage.data['replybase:k'], undefined)
  store.set({ session_token: 't2' })
  assert.equal(storage.data['replybase:k'], undefined)
})

test('data stored without consent is not trusted once consent is required', () => {
  const storage = fakeStorage({ 'replybase:k': JSON.stringify({ visitor_id: 'old' }) })
  const store = createStore('replybase:k', true, storage)
  assert.equal(store.data.visitor_id, undefined)
  store.set({ visitor_id: 'new' })
  assert.equal(JSON.parse(storage.data['replybase:k']).visitor_id, 'old', 'untouched until consent')
})

test('missing, throwing or corrupt storage falls back to memory', () => {
  const throwing = { getItem: () => { throw new Error('SecurityError') }, setItem: () => { throw new Error('quota') }, removeItem() {} }
  for (const storage of [undefined, throwing, fakeStorage({ 'replybase:k': '{not json' })]) {
    const store = createStore('replybase:k', false, storage)
    store.set({ visitor_id: 'v' })
    assert.equal(store.data.visitor_id, 'v')
  }
})

test('reload takes what another tab stored since, in the same object', () => {
  const storage = fakeStorage()
  const store = createStore('replybase:k', false, storage)
  const data = store.data
  store.set({ seen: 3 })
  storage.data['replybase:k'] = JSON.stringify({ visitor_id: 'v2', session_token: 't2', conversation_id: 9 })
  store.reload()
  assert.equal(store.data, data)
  assert.deepEqual(data, { visitor_id: 'v2', session_token: 't2', conversation_id: 9 })
  storage.data['replybase:k'] = '{not json'
  store.reload()
  assert.equal(data.session_token, 't2') // unreadable: kept
})

test('reload reads nothing stored without consent, and takes a session another tab consented to', () => {
  const storage = fakeStorage({ 'replybase:k': JSON.stringify({ visitor_id: 'v1' }) })
  const store = createStore('replybase:k', true, storage)
  store.reload()
  assert.deepEqual(store.data, {})
  storage.data['replybase:k'] = JSON.stringify({ visitor_id: 'v2', consent: true })
  store.reload()
  assert.equal(store.data.visitor_id, 'v2')
  store.set({ seen: 1 }) // consent given in the other tab: this one writes too
  assert.equal(JSON.parse(storage.data['replybase:k']).seen, 1)
})

test('consent withdrawn in this tab is not given back by the consent another tab stored', () => {
  const storage = fakeStorage()
  const store = createStore('replybase:k', true, storage)
  store.consent(true)
  store.consent(false)
  storage.data['replybase:k'] = JSON.stringify({ visitor_id: 'v2', consent: true }) // the other tab
  store.reload()
  assert.equal(store.data.visitor_id, undefined)
  store.set({ seen: 1 })
  assert.equal(JSON.parse(storage.data['replybase:k']).seen, undefined) // this tab writes nothing
})
