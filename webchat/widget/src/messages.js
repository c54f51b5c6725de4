// The message list: server messages keyed by `id`, the visitor's unsent ones by `cid`
// (their client_message_id). Messages being sent stay at the end; one given up keeps its
// place (`at`: the time of the message before it), so what comes later goes below it.

const time = (m) => m.at ?? (Date.parse(m.created_at) || 0)
const waiting = (m) => m.id == null && m.at == null

const sorted = (list) => list.sort((a, b) => waiting(a) - waiting(b) || time(a) - time(b))

/** Adds the messages not seen yet. → {list, added}; `added` holds only new server messages. */
export function merge(list, incoming) {
  const out = list.slice()
  const ids = new Set(out.map((m) => m.id))
  const added = []
  for (const m of incoming || []) {
    if (!m || m.id == null || ids.has(m.id)) continue
    ids.add(m.id)
    // Replies carry client_message_id null: only a visitor's own message can match a bubble.
    const local = m.client_message_id ? out.findIndex((x) => x.cid === m.client_message_id) : -1
    if (local >= 0) out[local] = { ...m, cid: out[local].cid }
    else out.push(m), added.push(m)
  }
  return { list: sorted(out), added }
}

/** The visitor's message `cid` will not be sent: "failed", where it stands now. */
export function fail(list, cid) {
  let at = 0
  for (const m of list) if (!waiting(m)) at = Math.max(at, time(m))
  return sorted(list.map((m) => (m.cid === cid && m.id == null ? { ...m, state: 'failed', at } : m)))
}

/** The server stored the visitor's message `cid` as `message`. */
export function ack(list, cid, message) {
  const local = list.find((m) => m.cid === cid)
  // A poll may have delivered the stored message first: keep that one.
  if (list.some((m) => m.id === message.id && m !== local)) return list.filter((m) => m !== local)
  const acked = { ...message, cid }
  return sorted(local ? list.map((m) => (m === local ? acked : m)) : [...list, acked])
}

/**
 * The poll cursor after a poll (or init) returned `incoming`: the newest id it has seen.
 * Only what a poll or init returned moves it, never a POST's answer: a reply committed just
 * before the visitor's message has a lower id than that message, and must still come.
 */
export function newestId(incoming, cursor) {
  let newest = cursor
  for (const m of incoming || []) if (m && m.id != null && !(m.id <= newest)) newest = m.id
  return newest
}

/**
 * What the visitor has seen once the open panel shows `list`, kept for the next page's badge:
 * `seen`, the poll cursor (every message up to it has been delivered, so shown), and `shown`,
 * the replies above it in the list (a POST's answer brings replies before a poll does). Not
 * the newest id in the list: a reply committed just before the visitor's own message has a
 * lower id than it, and until a poll brings it, it is neither, so it still counts as unread.
 */
export function seenMark(list, cursor) {
  const seen = cursor ?? lastId(list)
  const shown = []
  for (const m of list) if (m.id > seen && m.sender !== 'visitor') shown.push(m.id)
  return { seen, shown }
}

/** The newest stored message in the list. */
export function lastId(list) {
  for (let i = list.length; i--; ) if (list[i].id != null) return list[i].id
}

/**
 * What a message's bubble says. A visitor message that answers the quick replies of the
 * message before it shows the button's label: a click sends the button's value (the bot's
 * flows match on it), and typing that exact value is the same answer to the bot.
 */
export function shownText(m, before) {
  const options = m.sender === 'visitor' && before && before.sender !== 'visitor' && before.quick_replies
  const option = options && options.find((o) => o.value.trim() === m.text.trim())
  return option ? option.label : m.text
}
