// Concurrent calls for the same key share one run: fifty requests for a stopped container start
// it once and all wait for that one start.

export class SingleFlight<K, V> {
  private readonly running = new Map<K, Promise<V>>();

  run(key: K, fn: () => Promise<V>): Promise<V> {
    const existing = this.running.get(key);
    if (existing !== undefined) return existing;
    const promise = (async () => {
      try {
        return await fn();
      } finally {
        this.running.delete(key);
      }
    })();
    this.running.set(key, promise);
    return promise;
  }

  has(key: K): boolean {
    return this.running.has(key);
  }

}
