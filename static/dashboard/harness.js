// Test harness: "Start a new conversation" forgets this browser's widget session for the site.
;(function () {
  var button = document.getElementById('harness-reset')
  var data = document.getElementById('harness-data')
  if (!button || !data) return
  button.addEventListener('click', function () {
    try {
      localStorage.removeItem(data.dataset.storageKey)
    } catch (e) {}
    location.reload()
  })
})()
