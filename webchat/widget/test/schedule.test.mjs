import assert from 'node:assert/strict'
import { test } from 'node:test'
import { backoff, pollDelay, retryAfterMs } from '../src/schedule.js'

test('backoff doubles from 0.5–1 s and caps at 30 s', () => {
  const low = () => 0
  const high = () => 1
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 10].map((n) => backoff(n, high)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
  )
  assert.deepEqual(
    [0, 1, 2, 5].map((n) => backoff(n, low)),
    [500, 1000, 2000, 15000],
  )
  for (let i = 0; i < 50; i++) {
    const ms = backoff(3)
    assert.ok(ms >= 4000 && ms <= 8000, String(ms))
  }
})

test('polling is fast while a reply is pending and slow when closed or hidden', () => {
  assert.equal(pollDelay({ open: true, pending: true, hidden: false }), 2000)
  assert.equal(pollDelay({ open: true, pending: false, hidden: false }), 7000)
  assert.equal(pollDelay({ open: false, pending: true, hidden: false }), 7000)
  assert.equal(pollDelay({ open: false, pending: false, hidden: false }), 30000)
  assert.equal(pollDelay({ open: true, pending: true, hidden: true }), 60000)
})

test('Retry-After in seconds or as an HTTP date', () => {
  assert.equal(retryAfterMs('7'), 7000)
  assert.equal(retryAfterMs('0'), 0)
  assert.equal(retryAfterMs(null), 0)
  assert.equal(retryAfterMs('soon'), 0)
  const now = Date.parse('2025-01-01T00:00:00Z')
  assert.equal(retryAfterMs('Wed, 01 Jan 2025 00:00:30 GMT', now), 30000)
  assert.equal(retryAfterMs('Tue, 31 Dec 2024 23:00:00 GMT', now), 0)
})
