import assert from 'node:assert/strict'
import { test } from 'node:test'
import { safeHref, tokenize } from '../src/links.js'

test('plain text stays one string', () => {
  assert.deepEqual(tokenize('hello <b>there</b>'), ['hello <b>there</b>'])
  assert.deepEqual(tokenize(''), [])
  assert.deepEqual(tokenize(null), [])
})

test('bare http(s) URLs become links, trailing punctuation stays text', () => {
  assert.deepEqual(tokenize('See https://example.com/a?b=1, or (http://x.org/docs).'), [
    'See ',
    { href: 'https://example.com/a?b=1', text: 'https://example.com/a?b=1' },
    ', or (',
    { href: 'http://x.org/docs', text: 'http://x.org/docs' },
    ').',
  ])
})

test('markdown links keep their label', () => {
  assert.deepEqual(tokenize('Read [our pricing](https://example.com/pricing) now'), [
    'Read ',
    { href: 'https://example.com/pricing', text: 'our pricing' },
    ' now',
  ])
})

test('non-http schemes are never links', () => {
  for (const text of [
    'javascript:alert(1)',
    '[click](javascript:alert(1))',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox',
    '[x](JaVaScRiPt:alert(1))',
    'mailto:a@b.c',
  ]) {
    assert.ok(
      tokenize(text).every((t) => typeof t === 'string'),
      text,
    )
  }
})

test('links never carry quotes or angle brackets out of the URL', () => {
  const tokens = tokenize('go https://example.com/"onmouseover="x <img src=x>')
  assert.deepEqual(tokens[1], { href: 'https://example.com/', text: 'https://example.com/' })
  assert.equal(tokens[2], '"onmouseover="x <img src=x>')
})

test('bare-URL tokens cover the whole text in order', () => {
  const text = 'a https://a.io b\nhttp://d.io/x. (https://e.io/y) javascript:void(0)'
  assert.equal(tokenize(text).map((t) => (typeof t === 'string' ? t : t.text)).join(''), text)
})

test('safeHref accepts only http and https', () => {
  assert.equal(safeHref('https://example.com'), 'https://example.com/')
  assert.equal(safeHref('HTTP://EXAMPLE.com/a'), 'http://example.com/a')
  assert.equal(safeHref('javascript:alert(1)'), null)
  assert.equal(safeHref('//example.com'), null)
  assert.equal(safeHref('not a url'), null)
})

test('parentheses a URL holds stay in it; one it does not open stays text', () => {
  const wiki = 'https://en.wikipedia.org/wiki/Mercury_(planet)'
  assert.deepEqual(tokenize(`See ${wiki} for more`), ['See ', { href: wiki, text: wiki }, ' for more'])
  assert.deepEqual(tokenize(`(see ${wiki})`), ['(see ', { href: wiki, text: wiki }, ')'])
  assert.deepEqual(tokenize('(docs: https://x.test/a).'), ['(docs: ', { href: 'https://x.test/a', text: 'https://x.test/a' }, ').'])
  assert.deepEqual(tokenize(`[Mercury](${wiki})`), [{ href: wiki, text: 'Mercury' }])
})

test('a bare URL ends at CJK punctuation', () => {
  assert.deepEqual(tokenize('詳細はhttps://example.jp/help。ありがとう'), [
    '詳細は',
    { href: 'https://example.jp/help', text: 'https://example.jp/help' },
    '。ありがとう',
  ])
  assert.deepEqual(tokenize('看这里https://example.cn/a，谢谢'), [
    '看这里',
    { href: 'https://example.cn/a', text: 'https://example.cn/a' },
    '，谢谢',
  ])
})
