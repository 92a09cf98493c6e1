// Pure-JS Ed25519 signing (RFC 8032) with SHA-512 and SHA-256, for pages
// that have no WebCrypto Ed25519: a hub opened as http://192.168.1.5 is not
// a secure context, so crypto.subtle is undefined there. gateway.js loads
// this file only then. It does what the dashboard needs and no more: the
// public key of a 32-byte seed, a signature, and SHA-256 for the device id.
//
// BigInt throughout: slow next to native code, but one signature per
// connect takes milliseconds. Not constant-time; the key it guards is a
// revocable device key held by this browser anyway.

// --- SHA-2 -----------------------------------------------------------------

// The first n primes.
function primes(n) {
  const out = [];
  for (let c = 2; out.length < n; c++) if (out.every((p) => c % p)) out.push(c);
  return out;
}

// floor(n ** (1/k)) by Newton's method from above.
function iroot(n, k) {
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / Number(k)) + 1);
  for (;;) {
    const y = ((k - 1n) * x + n / x ** (k - 1n)) / k;
    if (y >= x) return x;
    x = y;
  }
}

// The SHA-2 constants are fractional bits of roots of primes: SHA-512 takes
// 64 of them, SHA-256 the top 32 of the same numbers (FIPS 180-4 §4.2, §5.3).
const M64 = (1n << 64n) - 1n;
const K64 = primes(80).map((p) => iroot(BigInt(p) << 192n, 3n) & M64);
const H64 = primes(8).map((p) => iroot(BigInt(p) << 128n, 2n) & M64);
const K32 = K64.slice(0, 64).map((k) => k >> 32n);
const H32 = H64.map((h) => h >> 32n);

// One SHA-2 of word size w bits. r: the rotations and shifts of σ0, σ1, Σ0, Σ1.
function sha2(msg, w, rounds, K, H, r) {
  const W = BigInt(w);
  const mask = (1n << W) - 1n;
  const size = w / 8; // bytes per word
  const block = size * 16;
  const rotr = (x, n) => ((x >> BigInt(n)) | (x << (W - BigInt(n)))) & mask;
  // Padding: 0x80, zeros, the bit length in the last 2 words.
  const total = Math.ceil((msg.length + 1 + 2 * size) / block) * block;
  const m = new Uint8Array(total);
  m.set(msg);
  m[msg.length] = 0x80;
  let bits = BigInt(msg.length) * 8n;
  for (let i = total - 1; bits; i--, bits >>= 8n) m[i] = Number(bits & 255n);
  const h = H.slice();
  for (let off = 0; off < total; off += block) {
    const x = [];
    for (let t = 0; t < rounds; t++) {
      if (t < 16) {
        let v = 0n;
        for (let b = 0; b < size; b++) v = (v << 8n) | BigInt(m[off + t * size + b]);
        x.push(v);
      } else {
        const a = x[t - 15];
        const b = x[t - 2];
        const s0 = rotr(a, r[0]) ^ rotr(a, r[1]) ^ (a >> BigInt(r[2]));
        const s1 = rotr(b, r[3]) ^ rotr(b, r[4]) ^ (b >> BigInt(r[5]));
        x.push((x[t - 16] + s0 + x[t - 7] + s1) & mask);
      }
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let t = 0; t < rounds; t++) {
      const S1 = rotr(e, r[9]) ^ rotr(e, r[10]) ^ rotr(e, r[11]);
      const t1 = (k + S1 + ((e & f) ^ (~e & mask & g)) + K[t] + x[t]) & mask;
      const S0 = rotr(a, r[6]) ^ rotr(a, r[7]) ^ rotr(a, r[8]);
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) & mask;
      [k, g, f, e, d, c, b, a] = [g, f, e, (d + t1) & mask, c, b, a, (t1 + t2) & mask];
    }
    [a, b, c, d, e, f, g, k].forEach((v, i) => (h[i] = (h[i] + v) & mask));
  }
  const out = new Uint8Array(size * 8);
  h.forEach((v, i) => {
    for (let b = size - 1; b >= 0; b--, v >>= 8n) out[i * size + b] = Number(v & 255n);
  });
  return out;
}

/** SHA-512 of bytes. */
export const sha512 = (m) => sha2(m, 64, 80, K64, H64, [1, 8, 7, 19, 61, 6, 28, 34, 39, 14, 18, 41]);
/** SHA-256 of bytes. */
export const sha256 = (m) => sha2(m, 32, 64, K32, H32, [7, 18, 3, 17, 19, 10, 2, 13, 22, 6, 11, 25]);

// --- Ed25519 ---------------------------------------------------------------

const P = 2n ** 255n - 19n; // the field
const L = 2n ** 252n + 27742317777372353535851937790883648493n; // the group order
const mod = (a, m = P) => ((a % m) + m) % m;
function pow(b, e) {
  let r = 1n;
  for (b = mod(b); e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
  return r;
}
const inv = (x) => pow(x, P - 2n);
const D2 = mod(-2n * 121665n * inv(121666n)); // 2d
// The base point, in extended coordinates (X, Y, Z, T) with T = XY/Z.
const GX = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
const GY = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;
const G = [GX, GY, 1n, mod(GX * GY)];

// Point addition on the twisted Edwards curve (a = -1; "add-2008-hwcd-3"),
// also correct for doubling.
function add([X1, Y1, Z1, T1], [X2, Y2, Z2, T2]) {
  const A = mod((Y1 - X1) * (Y2 - X2));
  const B = mod((Y1 + X1) * (Y2 + X2));
  const C = mod(mod(T1 * T2) * D2);
  const D = mod(2n * Z1 * Z2);
  const E = B - A;
  const F = D - C;
  const H = D + C;
  const I = B + A;
  return [mod(E * F), mod(H * I), mod(F * H), mod(E * I)];
}

function mul(n, p) {
  let r = [0n, 1n, 1n, 0n];
  for (; n > 0n; n >>= 1n, p = add(p, p)) if (n & 1n) r = add(r, p);
  return r;
}

const le = (n) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 255n));
const num = (b) => b.reduceRight((n, byte) => (n << 8n) | BigInt(byte), 0n);
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, at), (at += p.length);
  return out;
}

// A point as 32 bytes: y little-endian, the sign of x in the top bit.
function encode([X, Y, Z]) {
  const z = inv(Z);
  const out = le(mod(Y * z));
  out[31] |= Number(mod(X * z) & 1n) << 7;
  return out;
}

// The secret scalar and the nonce prefix of a seed (RFC 8032 §5.1.5).
function expand(seed) {
  const h = sha512(seed);
  const a = h.slice(0, 32);
  a[0] &= 248;
  a[31] &= 127;
  a[31] |= 64;
  return { a: num(a), prefix: h.slice(32) };
}

/** The 32-byte public key of a 32-byte seed. */
export function publicKey(seed) {
  return encode(mul(expand(seed).a, G));
}

/** The 64-byte signature of message bytes with a 32-byte seed. */
export function sign(message, seed) {
  const { a, prefix } = expand(seed);
  const A = encode(mul(a, G));
  const r = mod(num(sha512(concat(prefix, message))), L);
  const R = encode(mul(r, G));
  const k = mod(num(sha512(concat(R, A, message))), L);
  return concat(R, le(mod(r + k * a, L)));
}
