import assert from 'node:assert/strict'
import { afterEach, test } from 'node:test'
import { request } from '../src/api.js'

const realFetch = globalThis.fetch
afterEach(() => (globalThis.fetch = realFetch))

const respond = (status, body, headers = {}) => {
  const calls = []
  globalThis.fetch = async (url, init) => {
    calls.push([url, init])
    return new Response(body === undefined ? null : JSON.stringify(body), { status, headers })
  }
  return calls
}

test('JSON body, bearer token, no cookies', async () => {
  const calls = respond(201, { message: { id: 1 } })
  const data = await request('https://h/api/webchat/v1/messages', {
    method: 'POST',
    body: { text: 'hi', client_message_id: 'c' },
    token: 'tok',
  })
  assert.deepEqual(data, { message: { id: 1 } })
  const [url, init] = calls[0]
  assert.equal(url, 'https://h/api/webchat/v1/messages')
  assert.equal(init.method, 'POST')
  assert.equal(init.headers.Authorization, 'Bearer tok')
  assert.equal(init.headers['Content-Type'], 'application/json')
  assert.equal(init.credentials, 'omit')
  assert.deepEqual(JSON.parse(init.body), { text: 'hi', client_message_id: 'c' })
})

test('GET sends neither body nor content type', async () => {
  const calls = respond(200, { site: {} })
  await request('https://h/config?site_key=k')
  assert.equal(calls[0][1].method, 'GET')
  assert.equal(calls[0][1].body, undefined)
  assert.deepEqual(calls[0][1].headers, {})
})

test('API errors carry code, status and Retry-After', async () => {
  respond(429, { error: { code: 'rate_limited', message: 'Slow down' } }, { 'Retry-After': '12' })
  await assert.rejects(request('https://h/x'), { code: 'rate_limited', status: 429, retryAfter: 12000, message: 'Slow down' })
  respond(403, { error: { code: 'webchat_disabled', message: 'Off' } })
  await assert.rejects(request('https://h/x'), { code: 'webchat_disabled', status: 403, retryAfter: 0 })
})

test('non-JSON error pages and network failures', async () => {
  globalThis.fetch = async () => new Response('<html>Bad gateway</html>', { status: 502 })
  await assert.rejects(request('https://h/x'), { code: 'http_502', status: 502 })
  globalThis.fetch = async () => {
    throw new TypeError('Failed to fetch')
  }
  await assert.rejects(request('https://h/x'), { code: 'network', status: 0 })
})

test('202 with a body resolves', async () => {
  respond(202, { accepted: 2, rejected: 0 })
  assert.deepEqual(await request('https://h/events', { method: 'POST', body: { events: [] } }), { accepted: 2, rejected: 0 })
})
