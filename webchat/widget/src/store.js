// The visitor's session, kept in one localStorage key as JSON. When the site requires
// consent nothing is written (and stale data is not trusted) until consent(true).

export function createStore(key, requireConsent, storage) {
  const data = {}
  let allowed = !requireConsent
  let withdrawn = false // consent(false) here: another tab's stored consent does not undo it

  const write = () => {
    try {
      if (allowed) storage.setItem(key, JSON.stringify(data))
    } catch {
      // quota or blocked storage: the session lives in memory only
    }
  }

  const store = {
    data,
    /** Take what is stored (by this page earlier, or another tab since), in place of what
     * this one has. */
    reload() {
      try {
        const saved = JSON.parse(storage.getItem(key))
        if (saved && (allowed || (saved.consent && !withdrawn))) {
          for (const name of Object.keys(data)) delete data[name]
          Object.assign(data, saved)
          allowed = true
        }
      } catch {
        // no storage (sandboxed iframe, blocked cookies) or unreadable data: keep what we have
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
        for (const [name] of store.list('')) store.drop(name)
        try {
          storage.removeItem(key)
        } catch {
          // nothing stored
        }
      }
    },
    // Entries of their own beside the session ("<key>:<name>", e.g. a message being sent),
    // so that tabs writing at once never overwrite each other's.
    put(name, value) {
      try {
        if (allowed) storage.setItem(key + ':' + name, JSON.stringify(value))
      } catch {
        // memory only
      }
    },
    drop(name) {
      try {
        storage.removeItem(key + ':' + name)
      } catch {
        // nothing stored
      }
    },
    /** [name, value] of the entries whose name starts with `prefix`. */
    list(prefix) {
      const found = []
      try {
        const start = key + ':' + prefix
        for (let i = 0; i < storage.length; i++) {
          const name = storage.key(i)
          if (name && name.startsWith(start)) found.push([name.slice(key.length + 1), JSON.parse(storage.getItem(name))])
        }
      } catch {
        // no storage, or an unreadable entry: what was found so far
      }
      return found
    },
  }
  store.reload()
  return store
}
