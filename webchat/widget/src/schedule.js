// Timing rules shared by polling, sending and config retries.

const MAX_BACKOFF = 30000

/** Exponential backoff with jitter: attempt 0 waits 0.5–1 s, doubling up to 15–30 s. */
export const backoff = (attempt, rand = Math.random) =>
  Math.round(Math.min(MAX_BACKOFF, 1000 * 2 ** attempt) * (0.5 + rand() / 2))

/** How long to wait before the next `GET messages`. */
export const pollDelay = ({ open, pending, hidden }) =>
  hidden ? 60000 : pending ? (open ? 2000 : 7000) : open ? 7000 : 30000

/** Retry-After header (delta-seconds or HTTP date) in milliseconds; 0 when absent or unreadable. */
export function retryAfterMs(value, now = Date.now()) {
  if (!value) return 0
  const seconds = Number(value)
  return seconds >= 0 ? seconds * 1000 : Math.max(0, Date.parse(value) - now) || 0
}
