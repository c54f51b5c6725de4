import { retryAfterMs } from './schedule.js'

const apiError = (code, message, status, retryAfter = 0) =>
  Object.assign(new Error(message || code), { code, status, retryAfter })

/**
 * One JSON call to the public widget API. Resolves with the body; rejects with an Error
 * carrying `code` (the API's error code, or "network"), `status` (0 on network errors)
 * and `retryAfter` (ms, from the Retry-After header).
 */
export async function request(url, { method = 'GET', body, token, keepalive } = {}) {
  const headers = {}
  if (body) headers['Content-Type'] = 'application/json'
  if (token) headers.Authorization = 'Bearer ' + token
  let res
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body && JSON.stringify(body),
      keepalive,
      credentials: 'omit',
    })
  } catch {
    throw apiError('network', 'Network error', 0)
  }
  const data = await res.json().catch(() => ({}))
  if (res.ok) return data
  const error = data.error || {}
  throw apiError(
    error.code || 'http_' + res.status,
    error.message,
    res.status,
    retryAfterMs(res.headers.get('Retry-After')),
  )
}
