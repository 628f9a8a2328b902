import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { FieldlabError } from '../../../simulators/common/errors.js';
import { answerControl, errorReply, type RelayDirectory } from './dispatch.js';
import { type ControlReply, MAX_CONTROL_REQUEST } from './protocol.js';

/**
 * A worker's control over its stdin: one JSON request a line, each answered by one reply line (through
 * `write`, beside the ready line and the events). A line that is not a request gets an `ok: false`
 * reply naming what is wrong, and the worker goes on serving. `onEnd` runs when the input closes (the
 * lab that spawned the worker is gone).
 */
export function serveStdioControl(
  lab: RelayDirectory,
  input: Readable,
  write: (reply: ControlReply) => void,
  onEnd: () => void,
): void {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    if (line.length > MAX_CONTROL_REQUEST) {
      write(
        errorReply(
          null,
          new FieldlabError('E_BAD_CONTROL', `a control request is at most ${MAX_CONTROL_REQUEST} bytes`),
        ),
      );
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      write(
        errorReply(
          null,
          new FieldlabError(
            'E_BAD_CONTROL',
            `a control request is one JSON object a line: ${(err as Error).message}`,
            {
              hint: '{"id": 1, "op": "list", "target": "<simulator>"}',
            },
          ),
        ),
      );
      return;
    }
    write(answerControl(lab, parsed));
  });
  lines.once('close', onEnd);
}
