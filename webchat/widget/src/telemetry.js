// Widget telemetry, batched for `POST events`. Nothing is queued when the site disables it.
// A batch lost to a network error is queued again (the queue is capped); others are dropped.

const CAP = 100

export function createTelemetry(enabled, send, initial = [], max = 20) {
  const queue = enabled ? initial.slice() : []
  return {
    queue,
    track(type, data) {
      if (enabled && queue.length < CAP) queue.push({ type, at: new Date().toISOString(), ...(data && { data }) })
    },
    /** Sends everything queued, at most `max` events a request (keepalive bodies are capped at 64 KB). */
    flush(keepalive) {
      while (queue.length) {
        const batch = queue.splice(0, max)
        Promise.resolve(send(batch, keepalive)).catch((e) => {
          if (e && e.code === 'network') queue.unshift(...batch.slice(0, CAP - queue.length))
        })
      }
    },
  }
}
