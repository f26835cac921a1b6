// RFC 6238 TOTP computed independently of the service (node:crypto only),
// so tests and the bench check the service against the RFC, not against the
// library it uses.
import { createHmac } from 'node:crypto';
import type { MovableClock } from '../src/clock.js';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Decode(text: string): Buffer {
  const clean = text.replace(/=+$/, '').toUpperCase();
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of clean) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 4226 HOTP with RFC 6238's time counter: SHA-1, `digits` digits, 30 s steps. */
export function totpAt(key: Buffer, timeMs: number, digits = 6, periodS = 30): string {
  const counter = Math.floor(timeMs / 1000 / periodS);
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const bin = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(bin).padStart(digits, '0');
}

/** The code of a base32 secret at the clock's time, `steps` steps away. */
export const codeFor = (secret: string, clock: { now(): number }, steps = 0) => totpAt(base32Decode(secret), clock.now() + steps * 30_000);

/** Moves the clock to the middle of the next 30 s step: codes computed now stay valid while the test runs. */
export function nextStep(clock: MovableClock): void {
  const into = clock.now() % 30_000;
  clock.advance(30_000 - into + 15_000);
}
