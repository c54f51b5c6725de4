// Inside the dashboard's live-preview frame: feeds the real widget (loader.js + widget.js)
// the appearance from the site form through a simulated public API, so the preview needs no
// allowed domain, starts no session and sends nothing to the real API. Runs before loader.js.
;(function () {
  var site = JSON.parse(document.getElementById('rb-preview').textContent)
  var later = new Date(Date.now() + 3600e3).toISOString()
  var nextId = 1
  var realFetch = window.fetch.bind(window)

  function reply(body, status) {
    return Promise.resolve(
      new Response(JSON.stringify(body), {
        status: status || 200,
        headers: { 'Content-Type': 'application/json' },
      }),
    )
  }

  function message(sender, text, cid) {
    return {
      id: nextId++,
      conversation_id: 1,
      direction: sender === 'visitor' ? 'inbound' : 'outbound',
      sender: sender,
      text: text,
      created_at: new Date().toISOString(),
      client_message_id: cid,
    }
  }

  window.fetch = function (input, init) {
    init = init || {}
    var url = new URL(typeof input === 'string' ? input : input.url, location.href)
    var at = url.pathname.indexOf('/api/webchat/v1/')
    if (at < 0) return realFetch(input, init)
    var route = url.pathname.slice(at + '/api/webchat/v1/'.length)
    var method = (init.method || 'GET').toUpperCase()
    if (route === 'config') {
      return reply({ site: site, challenge: 'preview', challenge_expires_at: later, pow: null })
    }
    if (route === 'init') {
      return reply({
        session_token: 'preview',
        expires_at: later,
        visitor_id: 'preview-visitor',
        conversation_id: 1,
        messages: [],
        resumed: false,
      })
    }
    if (route === 'messages' && method === 'POST') {
      var body = JSON.parse(init.body || '{}')
      return reply(
        {
          message: message('visitor', body.text, body.client_message_id),
          replies: [
            message('bot', 'This is the preview: answers from your bot appear in the test harness.'),
          ],
          pending_reply: false,
        },
        201,
      )
    }
    if (route === 'messages') return reply({ messages: [], pending_reply: false })
    if (route === 'events') return reply({ accepted: 0, rejected: 0 }, 202)
    return reply({ error: { code: 'not_found', message: 'Not part of the preview.' } }, 404)
  }

  // The widget focuses its composer when it opens; here that must never take the keyboard
  // away from the form being edited, so programmatic focus only works once the visitor
  // (the staff member) has clicked into the preview.
  var focus = HTMLElement.prototype.focus
  HTMLElement.prototype.focus = function () {
    if (document.hasFocus()) return focus.apply(this, arguments)
  }

  // Open the panel as soon as the widget is there (the loader replays queued calls).
  window.ReplyBase = { q: [['open']] }
})()
