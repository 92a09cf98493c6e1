// The dashboard's pure-JS Ed25519 fallback (web/ed25519.js) against the
// device-signature test vector of the OpenClaw protocol (seed = 32 bytes of
// 0x07), and SHA-2 against FIPS 180 examples. Run: node --test tests/web/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";

// Imported from its source as a data: URL, so any Node with ES modules runs
// it without a package.json.
const source = readFileSync(new URL("../../web/ed25519.js", import.meta.url));
const ed = await import("data:text/javascript;base64," + source.toString("base64"));

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const utf8 = (s) => new TextEncoder().encode(s);

test("SHA-256 and SHA-512 match known digests and node:crypto", () => {
  assert.equal(hex(ed.sha256(utf8("abc"))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(
    hex(ed.sha512(utf8("abc"))),
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
  );
  // Every padding boundary (one and two blocks, lengths around 55/64/111/128).
  for (let n = 0; n < 300; n += 1) {
    const m = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255);
    assert.equal(hex(ed.sha256(m)), createHash("sha256").update(m).digest("hex"), `sha256 of ${n} bytes`);
    assert.equal(hex(ed.sha512(m)), createHash("sha512").update(m).digest("hex"), `sha512 of ${n} bytes`);
  }
});

test("the protocol's device-signature vector (seed = 32 × 0x07)", () => {
  const seed = new Uint8Array(32).fill(7);
  const pub = ed.publicKey(seed);
  assert.equal(b64url(pub), "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw");
  const deviceId = hex(ed.sha256(pub));
  assert.equal(deviceId, "fe812c12f3ab4ce6ac5db69ac352f906cb1b11ef43fb33e252ef7ff552263889");
  const v3 = `v3|${deviceId}|cli|cli|operator|operator.read,operator.write|1737264000000|secret-token|3f0c1a9e-1111-4222-8333-944455556666|linux|`;
  assert.equal(
    b64url(ed.sign(utf8(v3), seed)),
    "0yjtuMM1VQs5L3A-gkve5-ghAvwel-JPIA_6UW0mVFWLWixC80oyMsGMpVoqUn128IkDocavvmgUuQMxVVkTBg",
  );
});

test("signatures verify with node:crypto for random seeds and messages", async () => {
  const { createPublicKey, verify } = await import("node:crypto");
  for (let i = 0; i < 8; i += 1) {
    const seed = crypto.getRandomValues(new Uint8Array(32));
    const msg = crypto.getRandomValues(new Uint8Array(i * 37));
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64url(ed.publicKey(seed)) }, format: "jwk" });
    assert.ok(verify(null, msg, key, ed.sign(msg, seed)), `seed ${hex(seed)}`);
  }
});
