// The password policy of API.md: length bounds, not a common password, not
// containing the username or the email's local part, and a zxcvbn strength
// score at or above the configured minimum. Returns every failed rule.
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';

export interface PolicyOptions {
  minLength: number;
  maxLength: number;
  minScore: number;
}

export interface PolicyFailure {
  path: string;
  message: string;
}

const commonPasswords = new Set<string>(common.dictionary['passwords-common'] as string[]);
const zxcvbn = new ZxcvbnFactory({
  dictionary: common.dictionary,
  graphs: common.adjacencyGraphs,
});

export function checkPasswordPolicy(
  password: string,
  context: { username?: string; email?: string },
  opts: PolicyOptions,
  path = '/password',
): PolicyFailure[] {
  const failures: PolicyFailure[] = [];
  const length = [...password].length;
  if (length < opts.minLength) failures.push({ path, message: `must be at least ${opts.minLength} characters` });
  if (length > opts.maxLength) {
    // Nothing more is computed on an over-long password (zxcvbn cost grows with length).
    failures.push({ path, message: `must be at most ${opts.maxLength} characters` });
    return failures;
  }
  const lower = password.toLowerCase();
  if (commonPasswords.has(lower)) failures.push({ path, message: 'is a commonly used password' });
  const username = context.username?.toLowerCase();
  if (username && username.length >= 3 && lower.includes(username)) {
    failures.push({ path, message: 'must not contain the username' });
  }
  const local = context.email?.split('@')[0]?.toLowerCase();
  if (local && local.length >= 3 && lower.includes(local)) {
    failures.push({ path, message: 'must not contain the email address' });
  }
  if (length > 0) {
    const inputs = [username, local].filter((s): s is string => !!s);
    const result = zxcvbn.check(password, inputs);
    if (result.score < opts.minScore) {
      failures.push({ path, message: `is too weak (strength ${result.score} of 4, needs ${opts.minScore})` });
    }
  }
  return failures;
}
