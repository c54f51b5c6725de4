// The launcher button (drawn by loader.js) while the widget runs: a close icon, "Close chat"
// and no launcher text while the panel is open (what it shows is what it does), the chat
// icon and "Open chat" otherwise (the site's launcher text when it has one: the name a
// voice-control user says is the one they see), and the unread count.

const CLOSE_ICON = 'M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z'

/** → update(open, unread) */
export function createLauncherView(launcher, badge) {
  const icon = launcher.querySelector('path')
  const chatIcon = icon.getAttribute('d')
  const text = launcher.querySelector('span:not(.badge)') // the site's launcher_text, if any
  return (open, unread) => {
    icon.setAttribute('d', open ? CLOSE_ICON : chatIcon)
    if (text) text.hidden = open
    badge.textContent = unread > 9 ? '9+' : unread || ''
    badge.hidden = !unread
    const closed = (text && text.textContent.trim()) || 'Open chat'
    launcher.setAttribute('aria-label', (open ? 'Close chat' : closed) + (unread ? `, ${unread} unread` : ''))
  }
}
