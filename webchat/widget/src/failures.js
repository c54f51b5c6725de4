// Which failed calls become `error` events (and the visitor's error notice).
// A network failure (the fetch rejected, no HTTP answer) is often a blip, or the browser
// cancelling requests as the page goes away: it counts only when the attempt before it
// failed too, so a single failure that the next attempt recovers from is never reported.
// One that happens while the page is being left or is hidden never counts at all.
// HTTP error answers always count.

/** One per retry loop. `leaving()` is true while the page unloads or is hidden. */
export function createFailureGate(leaving) {
  let failing = false // the last attempt failed
  return {
    ok() {
      failing = false
    },
    /** Records a failed attempt → whether to report it. */
    counts(e) {
      if (e.code !== 'network') return (failing = true)
      if (leaving()) return false
      const again = failing
      failing = true
      return again
    },
  }
}
