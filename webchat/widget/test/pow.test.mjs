import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { leadingZeroBits, solvePow } from '../src/pow.js'

const bits = (salt, n) => leadingZeroBits(createHash('sha256').update(salt + n).digest())

test('leadingZeroBits counts bits, not hex digits', () => {
  assert.equal(leadingZeroBits(new Uint8Array([0x80])), 0)
  assert.equal(leadingZeroBits(new Uint8Array([0x01])), 7)
  assert.equal(leadingZeroBits(new Uint8Array([0x00, 0x10])), 11)
  assert.equal(leadingZeroBits(new Uint8Array([0, 0, 0])), 24)
})

test('solvePow finds the smallest number meeting the difficulty', async () => {
  for (const [salt, difficulty] of [
    ['abc', 0],
    ['abc', 4],
    ['s3cr3t-salt', 10],
    ['ünïcode', 8],
  ]) {
    const n = await solvePow({ algorithm: 'SHA-256', difficulty, salt }, crypto.subtle, 32)
    assert.ok(bits(salt, n) >= difficulty, `${salt}: ${n}`)
    for (let smaller = 0; smaller < n; smaller++) assert.ok(bits(salt, smaller) < difficulty)
  }
})

test('solvePow refuses other algorithms', async () => {
  await assert.rejects(solvePow({ algorithm: 'MD5', difficulty: 1, salt: 'x' }))
})

test('without crypto.subtle (a page served over http) it says so', async () => {
  await assert.rejects(solvePow({ algorithm: 'SHA-256', difficulty: 4, salt: 's' }, null), {
    code: 'pow_unavailable',
    message: /https/,
  })
})
