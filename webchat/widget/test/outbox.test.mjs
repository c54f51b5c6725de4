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

// The widget's use: send() is the POST, sent() applies its answer (ack, replies, render,
// telemetry). Once the POST resolved the server has the message; a throw in sent() is a
// client-side bug, not a failed send.
test('a message the server accepted is not given up when handling its answer throws', async () => {
  const posted = []
  const handled = []
  const failures = []
  const bugs = []
  const waits = []
  const outbox = createOutbox({
    send: async (item) => {
      posted.push(item.cid)
      return { message: { id: posted.length, client_message_id: item.cid } }
    },
    sent: (item, answer) => {
      handled.push([item.cid, answer.message.id])
      if (item.cid === 'a') throw new TypeError("Cannot read properties of undefined (reading 'id')")
    },
    onError: (e, item, ms) => failures.push([item.cid, ms]),
    onSentError: (e, item) => bugs.push([item.cid, e.name]),
    wait: async (ms) => waits.push(ms),
  })
  outbox.add('accepted, then the widget throws', 'a')
  outbox.add('next', 'b')
  await tick()
  assert.deepEqual(failures, [], 'not a failed send: nothing is marked failed or retried')
  assert.deepEqual(bugs, [['a', 'TypeError']], 'reported once, as what it is')
  assert.deepEqual(posted, ['a', 'b'], 'posted once; the next message still goes out')
  assert.deepEqual(handled, [['a', 1], ['b', 2]])
  assert.deepEqual(waits, [])
  assert.equal(outbox.items.length, 0)
})

test('an async sent() that rejects is handled the same way, and a later failure still retries', async (t) => {
  pinJitter(t)
  const bugs = []
  const failures = []
  const errors = { b: [fail('network', 0)] }
  const waits = []
  const outbox = createOutbox({
    send: async (item) => {
      if (errors[item.cid]?.length) throw errors[item.cid].shift()
      return {}
    },
    sent: async (item) => {
      if (item.cid === 'a') throw new Error('render failed')
    },
    onError: (e, item, ms) => failures.push([item.cid, e.code, ms]),
    onSentError: (e, item) => bugs.push([item.cid, e.message]),
    wait: async (ms) => waits.push(ms),
  })
  outbox.add('one', 'a')
  outbox.add('two', 'b')
  await tick()
  assert.deepEqual(bugs, [['a', 'render failed']])
  assert.deepEqual(failures, [['b', 'network', 750]], 'no retry count carried over from a')
  assert.deepEqual(waits, [750])
  assert.equal(outbox.items.length, 0)
})

test('a failed send never reaches sent()', async () => {
  const handled = []
  const outbox = createOutbox({
    send: async () => {
      throw fail('validation_error', 400)
    },
    sent: (item) => handled.push(item.cid),
  })
  outbox.add('refused', 'a')
  await tick()
  assert.deepEqual(handled, [])
  assert.equal(outbox.items.length, 0)
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
