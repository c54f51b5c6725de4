import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createOutbox, retryable, uuid } from '../src/outbox.js'

const fail = (code, status, retryAfter = 0) => Object.assign(new Error(code), { code, status, retryAfter })
const tick = () => new Promise((resolve) => setImmediate(resolve))

test('messages go out in order, once each', async () => {
  const sent = []
  const outbox = createOutbox({ send: async (item) => sent.push(item) })
  outbox.add('one', 'a')
  outbox.add('two', 'b')
  outbox.add('three', 'c')
  await tick()
  assert.deepEqual(sent.map((i) => [i.cid, i.text]), [['a', 'one'], ['b', 'two'], ['c', 'three']])
  assert.equal(outbox.items.length, 0)
})

test('network errors, 429 and 5xx retry the same message with the same client_message_id', async () => {
  const attempts = []
  const errors = [fail('network', 0), fail('rate_limited', 429, 5000), fail('http_502', 502)]
  const waits = []
  const outbox = createOutbox({
    send: async (item) => {
      attempts.push(item.cid)
      if (errors.length) throw errors.shift()
    },
    wait: async (ms) => waits.push(ms),
  })
  outbox.add('hello', 'cid-1')
  outbox.add('after', 'cid-2')
  await tick()
  assert.deepEqual(attempts, ['cid-1', 'cid-1', 'cid-1', 'cid-1', 'cid-2'])
  assert.equal(waits[1], 5000, 'Retry-After is honoured')
  assert.ok(waits[0] >= 500 && waits[0] <= 1000)
  assert.ok(waits[2] >= 2000 && waits[2] <= 4000, 'backoff grows')
})

test('other errors drop the message and move on', async () => {
  const reported = []
  const sent = []
  const outbox = createOutbox({
    send: async (item) => {
      if (item.text === 'bad') throw fail('validation_error', 400)
      sent.push(item.text)
    },
    onError: (e, item, ms) => reported.push([e.code, item.text, ms]),
  })
  outbox.add('bad')
  outbox.add('good')
  await tick()
  assert.deepEqual(reported, [['validation_error', 'bad', 0]])
  assert.deepEqual(sent, ['good'])
})

// Math.random pinned at 0.5, so backoff(n) is exactly 750 * 2 ** n (750, 1500, 3000, ...).
const pinJitter = (t) => t.mock.method(Math, 'random', () => 0.5)

// A scripted send: each cid's failures in order; once a cid's list is empty it succeeds.
function scripted(script) {
  const attempts = []
  const waits = []
  const reported = []
  const outbox = createOutbox({
    send: async (item) => {
      attempts.push(item.cid)
      const errors = script[item.cid] || []
      if (errors.length) throw errors.shift()
    },
    onError: (e, item, ms) => reported.push([item.cid, e.status, ms]),
    wait: async (ms) => waits.push(ms),
  })
  return { outbox, attempts, waits, reported }
}

test('a dropped message does not carry its retry count into the next message', async (t) => {
  pinJitter(t)
  const { outbox, attempts, waits, reported } = scripted({
    a: [fail('http_503', 503), fail('network', 0), fail('validation_error', 400)],
    b: [fail('http_502', 502), fail('http_502', 502)],
  })
  outbox.add('dropped after two retries', 'a')
  outbox.add('next', 'b')
  await tick()
  assert.deepEqual(attempts, ['a', 'a', 'a', 'b', 'b', 'b'])
  assert.deepEqual(reported, [['a', 503, 750], ['a', 0, 1500], ['a', 400, 0], ['b', 502, 750], ['b', 502, 1500]])
  assert.deepEqual(waits, [750, 1500, 750, 1500], "b's backoff starts again at attempt 0")
  assert.equal(outbox.items.length, 0)
})

test('a message dropped on its first try does not lengthen the next message\'s first retry', async (t) => {
  pinJitter(t)
  const { outbox, waits } = scripted({ a: [fail('webchat_disabled', 403)], b: [fail('network', 0)] })
  outbox.add('refused', 'a')
  outbox.add('next', 'b')
  await tick()
  assert.deepEqual(waits, [750])
})

test('a sent message does not carry its retry count into the next message', async (t) => {
  pinJitter(t)
  const { outbox, attempts, waits } = scripted({
    a: [fail('http_503', 503), fail('rate_limited', 429, 5000), fail('network', 0)],
    b: [fail('network', 0)],
  })
  outbox.add('sent on the fourth try', 'a')
  outbox.add('next', 'b')
  await tick()
  assert.deepEqual(attempts, ['a', 'a', 'a', 'a', 'b', 'b'])
  // Retry-After replaces the backoff but still counts as an attempt, as before.
  assert.deepEqual(waits, [750, 5000, 3000, 750])
})

test('a dropped message resets the count for a message added after the queue emptied', async (t) => {
  pinJitter(t)
  const { outbox, waits } = scripted({ a: [fail('http_500', 500), fail('validation_error', 400)], b: [fail('network', 0)] })
  outbox.add('dropped', 'a')
  await tick()
  outbox.add('later', 'b')
  await tick()
  assert.deepEqual(waits, [750, 750])
})

test('offline messages wait for the next flush and are sent once', async () => {
  let online = false
  const sent = []
  const outbox = createOutbox({ send: async (item) => sent.push(item.cid), online: () => online })
  outbox.add('queued 1', 'q1')
  outbox.add('queued 2', 'q2')
  await tick()
  assert.deepEqual(sent, [])
  assert.equal(outbox.items.length, 2)
  online = true
  outbox.flush()
  outbox.flush() // a second flush while one runs must not double-send
  await tick()
  assert.deepEqual(sent, ['q1', 'q2'])
})

test('retryable classification', () => {
  assert.ok(retryable(fail('network', 0)))
  assert.ok(retryable(fail('rate_limited', 429)))
  assert.ok(retryable(fail('http_503', 503)))
  assert.ok(!retryable(fail('webchat_disabled', 403)))
  assert.ok(!retryable(fail('validation_error', 400)))
})

test('uuid is a v4 UUID', () => {
  assert.match(uuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.notEqual(uuid(), uuid())
})
