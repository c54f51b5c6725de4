// Site settings page: reload the live preview as appearance fields change, keep the colour
// picker and the hex field in step, and recompute the WCAG contrast warning (the server
// computes the same on save; see webchat/dashboard_selectors.py).
;(function () {
  var form = document.getElementById('site-form')
  var frame = document.getElementById('preview-frame')
  if (!form || !frame) return
  var FIELDS = ['title', 'color', 'position', 'welcome_message', 'launcher_text', 'require_consent', 'locale']
  var color = form.elements.color
  var picker = document.getElementById('color-picker')
  var warning = document.getElementById('contrast-warning')
  var ok = document.getElementById('contrast-ok')
  var timer

  function luminance(hex) {
    var n = parseInt(hex.slice(1), 16)
    return [n >> 16, (n >> 8) & 255, n & 255]
      .map(function (v) {
        v /= 255
        return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4)
      })
      .reduce(function (sum, v, i) {
        return sum + v * [0.2126, 0.7152, 0.0722][i]
      }, 0)
  }
  function contrast(a, b) {
    var x = luminance(a)
    var y = luminance(b)
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05)
  }

  function updateContrast() {
    var value = (color.value || '').trim().toLowerCase()
    if (!/^#[0-9a-f]{6}$/.test(value)) {
      warning.hidden = ok.hidden = true
      return
    }
    if (picker) picker.value = value
    var white = contrast(value, '#ffffff')
    if (white >= 4.5) {
      warning.hidden = true
      ok.hidden = false
      ok.textContent = 'White text on this colour: ' + white.toFixed(2) + ':1 (WCAG AA needs 4.5:1).'
      return
    }
    var dark = contrast(value, '#111111')
    var text =
      'White text on ' + value + ' has a contrast of ' + white.toFixed(1) +
      ':1, below the WCAG AA minimum of 4.5:1, so the widget will use dark text on it.'
    if (dark < 4.5) text += ' Dark text only reaches ' + dark.toFixed(1) + ':1 either: pick a darker or lighter shade.'
    warning.textContent = text
    warning.hidden = false
    ok.hidden = true
  }

  function refresh() {
    var params = new URLSearchParams()
    FIELDS.forEach(function (name) {
      var el = form.elements[name]
      if (!el) return
      if (el.type === 'checkbox') {
        if (el.checked) params.set(name, 'on')
      } else params.set(name, el.value || '')
    })
    frame.src = frame.dataset.src + '?' + params.toString()
  }

  function changed(event) {
    if (FIELDS.indexOf(event.target.name) < 0 && event.target !== picker) return
    if (event.target === picker) color.value = picker.value
    updateContrast()
    clearTimeout(timer)
    timer = setTimeout(refresh, 350)
  }
  form.addEventListener('input', changed)
  form.addEventListener('change', changed)
})()
