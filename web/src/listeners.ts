// A set of change listeners, and the hook that re-renders a component on each change.
import { useEffect, useState } from 'preact/hooks';

export class Listeners {
  private readonly fns = new Set<() => void>();
  add(fn: () => void): () => void {
    this.fns.add(fn);
    return () => void this.fns.delete(fn);
  }
  notify(): void {
    for (const fn of this.fns) fn();
  }
}

export function useListeners(listeners: Listeners): void {
  const [, tick] = useState(0);
  useEffect(() => listeners.add(() => tick((n) => n + 1)), [listeners]);
}
