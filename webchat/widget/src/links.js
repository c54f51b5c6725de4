// Turns bot/agent text into plain strings and safe links. Only http(s) URLs become links;
// markdown-style [label](https://…) is understood because AI replies use it.

// A URL may hold one level of parentheses ("…/wiki/Mercury_(planet)"); a bare one ends at
// CJK or full-width punctuation ("…/help。ありがとう") as it does at a space.
const LINK =
  /\[([^\]\n]+)\]\((https?:\/\/(?:[^\s()]|\([^\s()]*\))+)\)|https?:\/\/[^\s<>"'\u3000-\u303f\uff00-\uffef]+/gi
const TRAILING = /[.,;:!?'"\]}]+$/

/** `url` without the punctuation that ends the sentence around it, and without a closing
 * parenthesis it does not open itself ("(see https://x.test/a)"). */
function trimmed(url) {
  for (;;) {
    const next = url.replace(TRAILING, '')
    const unmatched = next.endsWith(')') && next.split('(').length < next.split(')').length
    const done = unmatched ? next.slice(0, -1) : next
    if (done === url) return url
    url = done
  }
}

export function safeHref(url) {
  try {
    const u = new URL(url)
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null
  } catch {
    return null
  }
}

/** → array of strings and {href, text} link tokens, in order, covering the whole text. */
export function tokenize(text) {
  text = String(text ?? '')
  const out = []
  let at = 0
  for (const m of text.matchAll(LINK)) {
    const raw = m[1] ? m[0] : trimmed(m[0])
    const href = safeHref(m[1] ? m[2] : raw)
    if (!href) continue
    if (m.index > at) out.push(text.slice(at, m.index))
    out.push({ href, text: m[1] || raw })
    at = m.index + raw.length
  }
  if (at < text.length) out.push(text.slice(at))
  return out
}
