// The visitor's session, kept in one localStorage key as JSON. When the site requires
// consent nothing is written (and stale data is not trusted) until consent(true).

export function createStore(key, requireConsent, storage) {
  let data = {}
  let allowed = !requireConsent
  let withdrawn = false // consent(false) here: another tab's stored consent does not undo it
  try {
    const saved = JSON.parse(storage.getItem(key))
    if (saved && (allowed || saved.consent)) (data = saved), (allowed = true)
  } catch {
    // no storage (sandboxed iframe, blocked cookies) or unreadable data: start fresh
  }

  const write = () => {
    try {
      if (allowed) storage.setItem(key, JSON.stringify(data))
    } catch {
      // quota or blocked storage: the session lives in memory only
    }
  }

  return {
    data,
    /** Take what another tab has stored since (same key), in place of what this one read. */
    reload() {
      try {
        const saved = JSON.parse(storage.getItem(key))
        if (saved && (allowed || (saved.consent && !withdrawn))) {
          for (const name of Object.keys(data)) delete data[name]
          Object.assign(data, saved)
          allowed = true
        }
      } catch {
        // nothing readable: keep what this tab has
      }
    },
    set(patch) {
      Object.assign(data, patch)
      write()
    },
    consent(yes) {
      allowed = yes
      withdrawn = !yes
      if (yes) {
        data.consent = true
        write()
      } else {
        delete data.consent
        try {
          storage.removeItem(key)
        } catch {
          // nothing stored
        }
      }
    },
  }
}
