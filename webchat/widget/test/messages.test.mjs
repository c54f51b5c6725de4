import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ack, fail, lastId, merge, newestId, seenMark, shownText } from '../src/messages.js'

const msg = (id, sec, extra = {}) => ({
  id,
  direction: 'outbound',
  sender: 'bot',
  text: 'm' + id,
  created_at: `2025-01-01T00:00:${String(sec).padStart(2, '0')}Z`,
  ...extra,
})

test('merge de-duplicates by id and reports only new messages', () => {
  const first = merge([], [msg(1, 1), msg(2, 2)])
  assert.deepEqual(first.added.map((m) => m.id), [1, 2])
  const second = merge(first.list, [msg(2, 2), msg(3, 3), msg(3, 3)])
  assert.deepEqual(second.list.map((m) => m.id), [1, 2, 3])
  assert.deepEqual(second.added.map((m) => m.id), [3])
})

test('merge orders by created_at and keeps unsent messages last', () => {
  const local = { cid: 'c1', text: 'hi', sender: 'visitor', state: 'sending' }
  const { list } = merge([msg(1, 1), local], [msg(3, 3), msg(2, 2)])
  assert.deepEqual(list.map((m) => m.id ?? m.cid), [1, 2, 3, 'c1'])
})

test('merge ignores junk', () => {
  const { list, added } = merge([], [null, { text: 'no id' }, msg(1, 1)])
  assert.deepEqual(list.map((m) => m.id), [1])
  assert.equal(added.length, 1)
})

test('a polled message carrying client_message_id replaces the local copy', () => {
  const local = { cid: 'c1', text: 'hi', sender: 'visitor', state: 'sending' }
  const { list, added } = merge([local], [msg(5, 5, { sender: 'visitor', client_message_id: 'c1' })])
  assert.equal(list.length, 1)
  assert.equal(list[0].id, 5)
  assert.equal(list[0].cid, 'c1')
  assert.equal(list[0].state, undefined)
  assert.equal(added.length, 0)
})

test('replies carrying client_message_id null are added, never matched to a bubble', () => {
  const local = { cid: 'c1', text: 'hi', sender: 'visitor', state: 'sending' }
  const reply = msg(6, 6, { client_message_id: null })
  const { list, added } = merge([local], [reply])
  assert.deepEqual(added, [reply])
  assert.equal(list.length, 2)
  assert.equal(list[0].id, 6)
  assert.equal(list[1].cid, 'c1') // the unsent bubble is untouched, still last
  assert.equal(list[1].state, 'sending')
})

test('ack swaps the local message for the stored one and keeps its key', () => {
  const local = { cid: 'c1', text: 'hi', sender: 'visitor', state: 'sending' }
  const list = ack([msg(1, 1), local], 'c1', msg(2, 2, { sender: 'visitor' }))
  assert.deepEqual(list.map((m) => [m.id, m.cid, m.state]), [
    [1, undefined, undefined],
    [2, 'c1', undefined],
  ])
})

test('ack drops the local copy when a poll already delivered the message', () => {
  const local = { cid: 'c1', text: 'hi', sender: 'visitor', state: 'sending' }
  const list = ack([msg(1, 1), msg(2, 2), local], 'c1', msg(2, 2))
  assert.deepEqual(list.map((m) => m.id), [1, 2])
})

test('ack of a retried send (same message again) does not duplicate', () => {
  let list = ack([{ cid: 'c1', text: 'hi', sender: 'visitor' }], 'c1', msg(2, 2))
  list = ack(list, 'c1', msg(2, 2))
  assert.deepEqual(list.map((m) => m.id), [2])
})

test('lastId is the newest stored message, skipping unsent ones', () => {
  assert.equal(lastId([]), undefined)
  assert.equal(lastId([msg(1, 1), msg(2, 2), { cid: 'x' }]), 2)
})

const QUICK = [
  { label: 'Shipping times', value: 'How long does shipping take?' },
  { label: 'Returns', value: 'returns' },
]
const visitor = (text, extra = {}) => ({ cid: 'c', sender: 'visitor', direction: 'inbound', text, ...extra })

test('a quick-reply answer shows the button label, not the value it sends', () => {
  const offer = msg(1, 1, { quick_replies: QUICK })
  assert.equal(shownText(visitor('How long does shipping take?'), offer), 'Shipping times')
  assert.equal(shownText(visitor('returns'), offer), 'Returns')
  // The stored message after a reload (same text, now with an id) reads the same.
  assert.equal(shownText({ ...visitor('returns'), cid: undefined, id: 2 }, offer), 'Returns')
})

test('other messages show their own text', () => {
  const offer = msg(1, 1, { quick_replies: QUICK })
  assert.equal(shownText(visitor('returns please'), offer), 'returns please')
  assert.equal(shownText(visitor('returns'), msg(1, 1)), 'returns', 'no quick replies before it')
  assert.equal(shownText(visitor('returns'), msg(1, 1, { quick_replies: null })), 'returns')
  assert.equal(shownText(visitor('returns'), undefined), 'returns', 'first message')
  assert.equal(shownText(visitor('returns'), visitor('x', { quick_replies: QUICK })), 'returns')
  assert.equal(shownText(msg(3, 3, { text: 'returns' }), offer), 'returns', 'only visitor bubbles change')
})

test('the poll cursor moves with what polls return, not past a POST answer', () => {
  // the visitor's message (5) and its flow reply (6) came in a POST answer; the AI reply to
  // the question before (4) was committed just before message 5 and no poll has seen it yet
  let list = merge([], [msg(3, 1)]).list
  let cursor = newestId([msg(3, 1)], 0)
  list = ack(list, 'c5', { ...msg(5, 3), sender: 'visitor', direction: 'inbound' })
  list = merge(list, [msg(6, 4)]).list
  assert.equal(lastId(list), 6)
  assert.equal(cursor, 3) // the next poll asks after=3, so 4 still comes
  const polled = [msg(4, 2), msg(5, 3), msg(6, 4)]
  const { list: after, added } = merge(list, polled)
  assert.deepEqual(added.map((m) => m.id), [4]) // 5 and 6 are not shown twice
  assert.deepEqual(after.map((m) => m.id), [3, 4, 5, 6])
  cursor = newestId(polled, cursor)
  assert.equal(cursor, 6)
  assert.equal(newestId([], cursor), 6) // an empty poll keeps it
  assert.equal(newestId([null, { id: null }], undefined), undefined)
})

test('seenMark keeps the poll cursor and the replies shown above it, not the newest id', () => {
  // polled up to 4; the visitor's 6 and its flow reply 7 came with the POST's answer; the
  // agent's 5, committed just before 6, has not been polled yet
  const list = [msg(3, 1), msg(4, 2), msg(6, 4, { sender: 'visitor' }), msg(7, 5), { cid: 'x', sender: 'visitor' }]
  assert.deepEqual(seenMark(list, 4), { seen: 4, shown: [7] })
  assert.deepEqual(seenMark(list.slice(0, 2), 4), { seen: 4, shown: [] })
  // no poll yet: the newest stored id is all there is
  assert.deepEqual(seenMark([msg(2, 1)], undefined), { seen: 2, shown: [] })
  assert.deepEqual(seenMark([], undefined), { seen: undefined, shown: [] })
})

test('a message given up keeps its place: later messages go below it', () => {
  const local = { cid: 'c1', text: 'hi', sender: 'visitor', state: 'sending' }
  const failed = fail([msg(1, 1), msg(2, 2), local], 'c1')
  assert.deepEqual(failed.map((m) => m.id ?? m.cid), [1, 2, 'c1'])
  assert.equal(failed[2].state, 'failed')
  const sending = { cid: 'c2', text: 'again', sender: 'visitor', state: 'sending' }
  const { list } = merge([...failed, sending], [msg(3, 3), msg(4, 4, { sender: 'visitor', client_message_id: 'c2' })])
  assert.deepEqual(list.map((m) => m.id ?? m.cid), [1, 2, 'c1', 3, 4])
  assert.deepEqual(fail([local], 'c1').map((m) => m.cid), ['c1']) // the first message of all
})
