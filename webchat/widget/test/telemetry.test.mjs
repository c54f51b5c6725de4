import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createTelemetry } from '../src/telemetry.js'

test('events are batched, at most `max` per request', () => {
  const batches = []
  const t = createTelemetry(true, (batch, keepalive) => batches.push([batch.map((e) => e.type), keepalive]), [
    { type: 'widget_loaded', at: '2025-01-01T00:00:00Z' },
  ], 2)
  t.track('launcher_opened')
  t.track('message_sent', { n: 1 })
  t.flush(true)
  assert.deepEqual(batches, [
    [['widget_loaded', 'launcher_opened'], true],
    [['message_sent'], true],
  ])
  assert.equal(t.queue.length, 0)
})

test('events carry type, ISO time and optional data', () => {
  let sent
  const t = createTelemetry(true, (batch) => (sent = batch))
  t.track('error', { code: 'network' })
  t.track('launcher_closed')
  t.flush()
  assert.deepEqual(Object.keys(sent[0]), ['type', 'at', 'data'])
  assert.deepEqual(sent[0].data, { code: 'network' })
  assert.ok(!('data' in sent[1]))
  assert.ok(!Number.isNaN(Date.parse(sent[1].at)))
})

test('disabled telemetry queues and sends nothing, including the loader events', () => {
  let calls = 0
  const t = createTelemetry(false, () => calls++, [{ type: 'widget_loaded', at: 'x' }])
  t.track('launcher_opened')
  t.flush()
  assert.equal(calls, 0)
})

test('a batch lost to the network is queued again, other failures drop it', async () => {
  const fail = (code) => async () => {
    throw Object.assign(new Error(code), { code })
  }
  const offline = createTelemetry(true, fail('network'))
  offline.track('launcher_opened')
  offline.flush()
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(offline.queue.map((e) => e.type), ['launcher_opened'])
  const refused = createTelemetry(true, fail('validation_error'))
  refused.track('launcher_opened')
  refused.flush()
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(refused.queue.length, 0)
})

test('the queue never grows past 100 events while offline', async () => {
  const t = createTelemetry(true, async () => {
    throw Object.assign(new Error(), { code: 'network' })
  })
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 60; i++) t.track('message_rendered', { i })
    t.flush()
    await new Promise((resolve) => setImmediate(resolve))
  }
  assert.ok(t.queue.length <= 100, String(t.queue.length))
})

test('flush with nothing queued sends nothing; failures are swallowed', async () => {
  let calls = 0
  const t = createTelemetry(true, async () => {
    calls++
    throw new Error('offline')
  })
  t.flush()
  assert.equal(calls, 0)
  t.track('launcher_opened')
  t.flush()
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(calls, 1)
})

test('after a network loss the periodic flushes back off; leaving the page still tries', async () => {
  let clock = 0
  const sent = []
  let down = true
  const t = createTelemetry(
    true,
    (batch, keepalive) => {
      sent.push(keepalive ? 'keepalive' : 'flush')
      return down ? Promise.reject({ code: 'network' }) : Promise.resolve()
    },
    [],
    20,
    () => clock,
  )
  t.track('launcher_opened')
  t.flush()
  await new Promise(setImmediate)
  for (const at of [100, 300, 400]) {
    clock = at
    t.flush() // within the first backoff (0.5-1 s): nothing sent
  }
  assert.deepEqual(sent, ['flush'])
  t.flush(true)
  await new Promise(setImmediate)
  assert.deepEqual(sent, ['flush', 'keepalive'])
  clock = 5000 // past the second backoff (1-2 s after the keepalive's loss)
  down = false
  t.flush()
  await new Promise(setImmediate)
  assert.deepEqual(sent, ['flush', 'keepalive', 'flush'])
  assert.equal(t.queue.length, 0)
})
