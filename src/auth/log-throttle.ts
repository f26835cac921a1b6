// Repeated log lines, said once: during an outage the same failure happens
// on every request and every retry (a 15 s PostgreSQL outage made 102
// identical "database unavailable" lines per node). Per distinct message,
// the first occurrence is logged at once; the ones after it within the
// window are counted, and the count is logged when the window ends (which
// opens a new window if there were any). A message that stops recurring
// costs nothing after its window.
export const LOG_REPEAT_WINDOW_MS = 10_000;

interface Window {
  count: number;
  summary: (count: number, windowMs: number) => void;
  timer: NodeJS.Timeout;
}

export class LogThrottle {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly windowMs = LOG_REPEAT_WINDOW_MS) {}

  /**
   * `first` logs the message now, when none with this key was logged in the
   * window; otherwise the occurrence is counted, and `summary(count)` logs
   * the count at the window's end.
   */
  log(key: string, first: () => void, summary: (count: number, windowMs: number) => void): void {
    const open = this.windows.get(key);
    if (open) {
      open.count++;
      open.summary = summary;
      return;
    }
    first();
    this.arm(key, summary);
  }

  private arm(key: string, summary: Window['summary']): void {
    const w: Window = { count: 0, summary, timer: setTimeout(() => this.close(key, w), this.windowMs) };
    w.timer.unref();
    this.windows.set(key, w);
  }

  private close(key: string, w: Window): void {
    this.windows.delete(key);
    if (w.count === 0) return;
    w.summary(w.count, this.windowMs);
    this.arm(key, w.summary);
  }

  /** Logs every count still held (at shutdown) and forgets them. */
  flush(): void {
    for (const [key, w] of [...this.windows]) {
      clearTimeout(w.timer);
      this.windows.delete(key);
      if (w.count) w.summary(w.count, this.windowMs);
    }
  }
}

/** The summary line's text: the message, and how often it recurred. */
export const repeated = (msg: string, count: number, windowMs: number) =>
  `${msg} (repeated ${count} more time${count === 1 ? '' : 's'} in ${Math.round(windowMs / 1000)} s)`;
