import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DEFAULT_COLOR, contrast, normalizeColor, textColor } from '../src/contrast.js'

test('normalizeColor accepts hex only', () => {
  assert.equal(normalizeColor('#ABC'), '#aabbcc')
  assert.equal(normalizeColor('0F62FE'), '#0f62fe')
  assert.equal(normalizeColor(' #123456 '), '#123456')
  for (const bad of ['red', 'url(x)', '#12345', '#1234567', '', null, 'red;}body{display:none']) {
    assert.equal(normalizeColor(bad), DEFAULT_COLOR)
  }
})

test('contrast ratios match WCAG', () => {
  assert.equal(contrast('#000000', '#ffffff').toFixed(2), '21.00')
  assert.equal(contrast('#ffffff', '#ffffff'), 1)
  assert.equal(contrast('#777777', '#ffffff').toFixed(2), '4.48')
  assert.equal(contrast('#767676', '#ffffff').toFixed(2), '4.54')
})

test('white text only when it reaches 4.5:1, dark text otherwise', () => {
  assert.equal(textColor('#767676'), '#ffffff')
  assert.equal(textColor('#777777'), '#111111')
  assert.equal(textColor('#2563eb'), '#ffffff')
  assert.equal(textColor('#ffd400'), '#111111')
  assert.equal(textColor('#00ff00'), '#111111')
  assert.equal(textColor('#000080'), '#ffffff')
  assert.ok(contrast(DEFAULT_COLOR, '#ffffff') >= 4.5)
})
