// Timing comparisons that hold on a slow or a fast machine, idle or loaded.
// Each round times every kind of request once, back to back, in an order that
// rotates from round to round (no kind always runs first, or right after
// another); kinds are compared through each round's own ratio, so samples
// taken a few milliseconds apart share whatever load the machine had then,
// and the median over the rounds drops the rounds that a stall hit.

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Milliseconds each kind took, round by round (index i of every list is round i). */
export async function interleavedTimes<K extends string>(kinds: Record<K, () => Promise<unknown>>, rounds: number): Promise<Record<K, number[]>> {
  const names = Object.keys(kinds) as K[];
  const times = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < names.length; j++) {
      const k = names[(round + j) % names.length]!;
      const t = performance.now();
      await kinds[k]();
      times[k].push(performance.now() - t);
    }
  }
  return times;
}

/** The median over rounds of a[i] / b[i]. */
export function medianRatio(a: number[], b: number[]): number {
  return median(a.map((x, i) => x / b[i]!));
}

/** A one-line summary for assertion messages: the median of each kind. */
export function report(times: Record<string, number[]>): string {
  return Object.entries(times)
    .map(([k, xs]) => `${k} ${median(xs).toFixed(1)} ms`)
    .join(', ');
}
