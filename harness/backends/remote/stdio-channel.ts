import { FieldlabError } from '../../../simulators/common/errors.js';
import type { ControlChannel, ControlReply, ControlRequestBody } from './protocol.js';

interface Pending {
  resolve(reply: ControlReply): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** Requests waiting for their reply at most (a lab sends a few per fault). */
const MAX_PENDING = 1000;

/**
 * Control requests to a worker over its stdin (`write` one JSON line), matched with the replies its
 * owner reads on the worker's stdout and hands to `onReply`. Each request waits a bounded time; when the
 * worker exits, `close` fails what still waits.
 */
export class StdioControlChannel implements ControlChannel {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closedWhy: string | undefined;

  constructor(
    private readonly write: (line: string) => void,
    private readonly what: string,
    private readonly timeoutMs = 10_000,
  ) {}

  request(body: ControlRequestBody): Promise<ControlReply> {
    if (this.closedWhy !== undefined) return Promise.reject(this.error(this.closedWhy));
    if (this.pending.size >= MAX_PENDING) {
      return Promise.reject(this.error(`${MAX_PENDING} control requests are waiting for an answer`));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(this.error(`no answer to ${body.op} in ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.write(`${JSON.stringify({ id, ...body })}\n`);
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(this.error(`cannot write to its stdin: ${(err as Error).message}`));
      }
    });
  }

  /** A reply line from the worker's stdout; true when it answered one of our requests. */
  onReply(reply: ControlReply): boolean {
    if (typeof reply.reply !== 'number') return false;
    const p = this.pending.get(reply.reply);
    if (!p) return false;
    this.pending.delete(reply.reply);
    clearTimeout(p.timer);
    p.resolve(reply);
    return true;
  }

  close(why = 'the worker stopped'): void {
    if (this.closedWhy !== undefined) return;
    this.closedWhy = why;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.error(why));
    }
    this.pending.clear();
  }

  private error(why: string): FieldlabError {
    return new FieldlabError('E_REMOTE_CONTROL', `${this.what}: ${why}`, {
      hint: 'the simulator process stopped or hangs: see its stderr lines in the report',
    });
  }
}
