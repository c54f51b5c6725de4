// The only way the widget builds DOM: createElement + attributes + text nodes.
// Strings passed as children become Text nodes, so message text is never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') el.addEventListener(name, value)
    else if (value != null && value !== false) el.setAttribute(name, value === true ? '' : value)
  }
  el.append(...children.filter((c) => c != null && c !== false))
  return el
}

/** Constructable stylesheets are not subject to the host page's CSP style-src; <style> is the fallback. */
export function addCss(root, css) {
  try {
    const sheet = new CSSStyleSheet()
    sheet.replaceSync(css)
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, sheet]
  } catch {
    root.append(h('style', {}, css))
  }
}
