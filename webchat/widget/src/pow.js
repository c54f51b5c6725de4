// Proof of work for init: the smallest integer n ≥ 0 such that SHA-256(salt + n), with n in
// decimal and the string UTF-8 encoded, starts with at least `difficulty` zero bits.

export function leadingZeroBits(bytes) {
  let bits = 0
  for (const b of bytes) {
    if (b) return bits + Math.clz32(b) - 24
    bits += 8
  }
  return bits
}

export async function solvePow({ algorithm, difficulty, salt }, subtle = crypto.subtle, batch = 128) {
  if (algorithm && algorithm !== 'SHA-256') throw new Error('Unsupported proof-of-work algorithm')
  // Browsers give pages served over plain http no crypto.subtle.
  if (!subtle) throw Object.assign(new Error('The chat needs this page to be served over https.'), { code: 'pow_unavailable' })
  const encoder = new TextEncoder()
  for (let start = 0; ; start += batch) {
    const digests = await Promise.all(
      Array.from({ length: batch }, (_, i) => subtle.digest('SHA-256', encoder.encode(salt + (start + i)))),
    )
    const hit = digests.findIndex((d) => leadingZeroBits(new Uint8Array(d)) >= difficulty)
    if (hit >= 0) return start + hit
  }
}
