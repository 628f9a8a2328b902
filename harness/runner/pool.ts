/**
 * Runs tasks `width` at a time, in order, except that two tasks holding one key (a machine-wide name, such
 * as a WireGuard interface's UAPI socket) never run at once: a worker passes over a task whose key is held
 * and takes the next one that holds none; when every task left is blocked it waits for a running one to
 * end. Resolves when every task ran, or when `stopped()` turns true (no task starts after that).
 */
export async function runPool(
  tasks: ReadonlyArray<{ keys: readonly string[]; run: () => Promise<void> }>,
  width: number,
  stopped: () => boolean = () => false,
): Promise<void> {
  const pending = tasks.map((_, i) => i);
  const held = new Set<string>();
  let waiting: Array<() => void> = [];
  const worker = async () => {
    while (pending.length > 0 && !stopped()) {
      const k = pending.findIndex((i) => !tasks[i]?.keys.some((key) => held.has(key)));
      if (k < 0) {
        // Every task left holds a key a running task holds: that task's end wakes this worker.
        await new Promise<void>((resolve) => waiting.push(resolve));
        continue;
      }
      const task = tasks[pending.splice(k, 1)[0] as number];
      if (!task) continue;
      for (const key of task.keys) held.add(key);
      try {
        await task.run();
      } finally {
        for (const key of task.keys) held.delete(key);
        const woken = waiting;
        waiting = [];
        for (const wake of woken) wake();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(width, tasks.length)) }, worker));
}
