// WCAG 2 contrast, used to pick white or dark text on the site's brand colour.

export const DEFAULT_COLOR = '#2563eb'
const DARK_TEXT = '#111111'

/** "#abc" / "abc" / "#aabbcc" → "#aabbcc"; anything else → the default colour. */
export function normalizeColor(color) {
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(String(color || '').trim())
  if (!m) return DEFAULT_COLOR
  const hex = m[1].length === 3 ? m[1].replace(/./g, '$&$&') : m[1]
  return '#' + hex.toLowerCase()
}

export function luminance(color) {
  const n = parseInt(normalizeColor(color).slice(1), 16)
  const [r, g, b] = [n >> 16, (n >> 8) & 255, n & 255].map((v) => {
    v /= 255
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4
  })
  return 0.2126 * r + 0.7152 * g + 0.0722 * b
}

export function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x)
  return (hi + 0.05) / (lo + 0.05)
}

/** White text when it reaches 4.5:1 on `background`, dark text otherwise. */
export const textColor = (background) =>
  contrast(background, '#ffffff') >= 4.5 ? '#ffffff' : DARK_TEXT
