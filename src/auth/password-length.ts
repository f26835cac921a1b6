// The one measure of a password's length: Unicode code points, as the
// policy counts them (an emoji is one character, not two UTF-16 units).
export function passwordLength(password: string): number {
  let n = 0;
  for (const _ of password) n++;
  return n;
}

/** Whether a password is longer than `max` code points, without counting a huge one to its end. */
export function exceedsLength(password: string, max: number): boolean {
  // Code points ≤ UTF-16 units ≤ 2 × code points.
  if (password.length <= max) return false;
  if (password.length > 2 * max) return true;
  return passwordLength(password) > max;
}
