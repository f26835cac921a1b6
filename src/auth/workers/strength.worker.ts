// zxcvbn's strength score (0–4) of one password. Runs on the strength
// thread (password-policy.ts) for the HTTP routes, and in-line for the CLI.
import { ZxcvbnFactory } from '@zxcvbn-ts/core';
import * as common from '@zxcvbn-ts/language-common';

/** zxcvbn scores at most this many characters (a longer prefix is strong or it is not). */
const SCORED_LENGTH = 128;

export interface StrengthTask {
  password: string;
  /** Words of the user's own (username, email local part) that make a password weaker. */
  inputs: string[];
}

let zxcvbn: ZxcvbnFactory | undefined;

export default function strengthScore({ password, inputs }: StrengthTask): number {
  zxcvbn ??= new ZxcvbnFactory({ dictionary: common.dictionary, graphs: common.adjacencyGraphs, maxLength: SCORED_LENGTH });
  return zxcvbn.check(password, inputs).score;
}
