// Every failed login takes the same time, whichever way it failed (issue 9,
// finding 3): unknown name (a dummy argon2id verification), wrong password
// on an argon2id hash, wrong password on a legacy bcrypt hash (many times
// slower), disabled account. Equalising by doing more hashing would hand
// attackers a CPU amplifier; instead each failure *waits* (no CPU) until a
// floor that sits above the slowest kind of verification seen: a running
// average per kind (argon2, bcrypt at each cost), times a margin. The
// floor is calibrated at start-up with one verification of each usual kind,
// so the first failure is padded like the thousandth.
import { setTimeout as sleep } from 'node:timers/promises';

/** Above the slowest kind's average: noise of one request must not poke through. */
const MARGIN = 1.3;
const SMOOTHING = 0.2;
/** Never pad to more than this (a pathological bcrypt cost must not hold connections for long). */
const MAX_FLOOR_MS = 2_000;

/** The kind of verification a stored hash costs: argon2, or bcrypt at its cost. */
export function hashKind(storedHash: string): string {
  const bcrypt = /^\$2[aby]\$(\d{2})\$/.exec(storedHash);
  return bcrypt ? `bcrypt-${bcrypt[1]}` : 'argon2';
}

export class FailureTiming {
  private readonly averages = new Map<string, number>();

  /** Records how long one verification of this kind took. */
  observe(kind: string, ms: number): void {
    const prev = this.averages.get(kind);
    this.averages.set(kind, prev === undefined ? ms : prev + SMOOTHING * (ms - prev));
  }

  /** The time every failed login is padded to, from its start. */
  floorMs(): number {
    let slowest = 0;
    for (const v of this.averages.values()) slowest = Math.max(slowest, v);
    return Math.min(MAX_FLOOR_MS, slowest * MARGIN);
  }

  /** Waits until `startedAt` (performance.now()) + the floor. */
  async pad(startedAt: number): Promise<void> {
    const wait = startedAt + this.floorMs() - performance.now();
    if (wait > 0) await sleep(wait);
  }
}
