// Visitor messages waiting to be sent. One at a time, in order; each keeps its
// client_message_id across retries so the server stores it once.

import { backoff } from './schedule.js'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export const uuid = () =>
  crypto.randomUUID
    ? crypto.randomUUID()
    : '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) =>
        (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16),
      )

/** Network errors, 429 and 5xx are retried; anything else drops the message. */
export const retryable = (e) => e.code === 'network' || e.status === 429 || e.status >= 500

/**
 * send(item) posts one {cid, text} and resolves with the answer; onError(error, item, waitMs)
 * is told of every failure (waitMs 0: given up). Once send resolved the server has the message,
 * so sent(item, answer), the client's handling of the answer, runs after the item left the
 * queue: what it throws goes to onSentError(error, item), never to onError, and is neither
 * retried nor a reason to give the message up. While online() is false the queue waits for the
 * next flush().
 */
export function createOutbox({
  send,
  sent = () => {},
  onError = () => {},
  onSentError = () => {},
  online = () => true,
  wait = sleep,
}) {
  const items = []
  let busy = false

  async function flush() {
    if (busy) return
    busy = true
    // Failed tries of items[0]; every way past it (sent or dropped) goes through next().
    let attempt = 0
    const next = () => {
      items.shift()
      attempt = 0
    }
    try {
      while (items.length && online()) {
        const item = items[0]
        let answer
        try {
          answer = await send(item)
        } catch (e) {
          const ms = retryable(e) ? e.retryAfter || backoff(attempt) : 0
          if (ms) attempt++
          else next()
          onError(e, item, ms)
          if (ms) await wait(ms)
          continue
        }
        next()
        try {
          await sent(item, answer)
        } catch (e) {
          onSentError(e, item)
        }
      }
    } finally {
      busy = false
    }
  }

  function add(text, cid = uuid()) {
    const item = { cid, text }
    items.push(item)
    flush()
    return item
  }

  return { items, add, flush }
}
