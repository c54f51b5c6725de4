// Copy buttons: <button class="copy" data-copy="#element-id"> copies that element's text.
;(function () {
  function fallback(text) {
    var area = document.createElement('textarea')
    area.value = text
    area.setAttribute('readonly', '')
    area.style.position = 'fixed'
    area.style.opacity = '0'
    document.body.appendChild(area)
    area.select()
    var ok = false
    try {
      ok = document.execCommand('copy')
    } catch (e) {}
    area.remove()
    return ok ? Promise.resolve() : Promise.reject(new Error('copy failed'))
  }

  document.addEventListener('click', function (event) {
    var button = event.target.closest('button.copy[data-copy]')
    if (!button) return
    var source = document.querySelector(button.dataset.copy)
    if (!source) return
    var text = source.textContent
    var done = navigator.clipboard && window.isSecureContext ? navigator.clipboard.writeText(text).catch(function () { return fallback(text) }) : fallback(text)
    var label = button.dataset.label || button.textContent
    button.dataset.label = label
    done.then(
      function () { button.textContent = 'Copied ✓' },
      function () { button.textContent = 'Press Ctrl+C to copy' },
    )
    setTimeout(function () { button.textContent = label }, 2000)
  })

  // Forms with data-confirm ask before they submit.
  document.addEventListener('submit', function (event) {
    var message = event.target.dataset && event.target.dataset.confirm
    if (message && !window.confirm(message)) event.preventDefault()
  })
})()
