import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createFailureGate } from '../src/failures.js'

const network = Object.assign(new Error('Network error'), { code: 'network', status: 0 })
const http = (status, code) => Object.assign(new Error(code), { code, status })

test('one network failure that the next attempt recovers from is not reported', () => {
  const gate = createFailureGate(() => false)
  assert.equal(gate.counts(network), false)
  gate.ok()
  assert.equal(gate.counts(network), false, 'a success in between starts over')
})

test('a network failure is reported when the next attempt fails too: two in a row → one report', () => {
  const gate = createFailureGate(() => false)
  assert.deepEqual([gate.counts(network), gate.counts(network)], [false, true])
  assert.equal(gate.counts(network), true, 'a lasting outage keeps being reported')
  gate.ok()
  assert.deepEqual([gate.counts(network), gate.counts(network)], [false, true])
})

test('HTTP error answers are always reported, and a network failure after one counts', () => {
  const gate = createFailureGate(() => false)
  assert.equal(gate.counts(http(500, 'http_500')), true)
  assert.equal(gate.counts(network), true)
  gate.ok()
  assert.equal(gate.counts(http(429, 'rate_limited')), true)
  gate.ok()
  assert.equal(gate.counts(http(400, 'validation_error')), true)
})

test('a request cut while the page is left or hidden is never reported and does not count', () => {
  let leaving = false
  const gate = createFailureGate(() => leaving)
  assert.equal(gate.counts(network), false) // a real blip
  leaving = true
  assert.equal(gate.counts(network), false, 'aborted by the unload, not reported')
  assert.equal(gate.counts(network), false)
  leaving = false // back from the back/forward cache: the next attempt succeeds
  gate.ok()
  assert.equal(gate.counts(network), false)
  leaving = true
  assert.equal(gate.counts(http(503, 'http_503')), true, 'an HTTP answer is a real error even then')
})
