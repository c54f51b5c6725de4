// Turns bot/agent text into plain strings and safe links. Only http(s) URLs become links;
// markdown-style [label](https://…) is understood because AI replies use it.

const LINK = /\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)\)|https?:\/\/[^\s<>"']+/gi
const TRAILING = /[.,;:!?'")\]}]+$/

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
    const raw = m[1] ? m[0] : m[0].replace(TRAILING, '')
    const href = safeHref(m[1] ? m[2] : raw)
    if (!href) continue
    if (m.index > at) out.push(text.slice(at, m.index))
    out.push({ href, text: m[1] || raw })
    at = m.index + raw.length
  }
  if (at < text.length) out.push(text.slice(at))
  return out
}
