// Widget telemetry, batched for `POST events`. Nothing is queued when the site disables it.
// A batch lost to a network error is queued again (the queue is capped); others are dropped.
// After such a loss the periodic flushes wait out a growing backoff (an outage is not
// hammered every 5 s by every open page); leaving the page (keepalive) still tries.

import { backoff } from './schedule.js'

const CAP = 100

export function createTelemetry(enabled, send, initial = [], max = 20, now = () => Date.now()) {
  const queue = enabled ? initial.slice() : []
  let failures = 0
  let resumeAt = 0
  return {
    queue,
    track(type, data) {
      if (enabled && queue.length < CAP) queue.push({ type, at: new Date().toISOString(), ...(data && { data }) })
    },
    /** Sends everything queued, at most `max` events a request (keepalive bodies are capped at 64 KB). */
    flush(keepalive) {
      if (!keepalive && now() < resumeAt) return
      while (queue.length) {
        const batch = queue.splice(0, max)
        Promise.resolve(send(batch, keepalive)).then(
          () => (failures = 0),
          (e) => {
            if (!(e && e.code === 'network')) return
            queue.unshift(...batch.slice(0, CAP - queue.length))
            resumeAt = now() + backoff(failures++)
          },
        )
      }
    },
  }
}
