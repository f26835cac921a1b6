// Runs on a hashing thread (thread-pool.ts): one argon2id hash, or one
// argon2 or bcrypt verification. Synchronous on purpose: the thread does
// nothing else, at a lower priority than the event loop.
import { hashSync, verifySync, type Options } from '@node-rs/argon2';
import bcrypt from 'bcryptjs';

export type HashTask =
  | { op: 'argon2-hash'; password: string; options: Options }
  | { op: 'argon2-verify' | 'bcrypt-verify'; password: string; hash: string };

export default function hashTask(task: HashTask): string | boolean {
  if (task.op === 'argon2-hash') return hashSync(task.password, task.options);
  try {
    return task.op === 'argon2-verify' ? verifySync(task.hash, task.password) : bcrypt.compareSync(task.password, task.hash);
  } catch {
    return false; // a corrupt stored hash is a mismatch
  }
}
