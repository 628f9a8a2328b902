import type { Socket } from 'node:net';
import { FieldlabError } from '../common/index.js';
import { type ClientHelloInfo, scanClientHello } from './client-hello.js';

// Past this many buffered bytes without a complete ClientHello the client is not speaking TLS.
const MAX_BUFFERED = 80 * 1024;

/**
 * Reads from `socket` (after `head`, the bytes that came with the CONNECT request) until a complete
 * ClientHello has arrived, then pauses the socket and puts every byte read back (`unshift`), so a
 * TLSSocket wrapped around it next sees the stream from its first byte.
 *
 * Rejects with `E_BAD_CLIENT_HELLO` (not TLS, or malformed), `E_CLIENT_HELLO_TIMEOUT`, or
 * `E_CLIENT_CLOSED` (the client left before sending a whole ClientHello).
 */
export function readClientHello(socket: Socket, head: Buffer, timeoutMs: number): Promise<ClientHelloInfo> {
  return new Promise((resolve, reject) => {
    let buffered = head;
    const done = (err: FieldlabError | undefined, hello?: ClientHelloInfo) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onClose);
      socket.pause();
      if (err) {
        reject(err);
        return;
      }
      if (buffered.length > 0) socket.unshift(buffered);
      resolve(hello!);
    };
    const check = (): boolean => {
      const scan = scanClientHello(buffered);
      if (scan.status === 'ok') {
        done(undefined, scan.hello);
        return true;
      }
      if (scan.status === 'invalid' || buffered.length > MAX_BUFFERED) {
        const reason = scan.status === 'invalid' ? scan.reason : `no ClientHello in ${buffered.length} bytes`;
        done(
          new FieldlabError('E_BAD_CLIENT_HELLO', `not a TLS ClientHello: ${reason}`, {
            hint: 'the client sent something other than TLS through an intercepted CONNECT tunnel',
          }),
        );
        return true;
      }
      return false;
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      check();
    };
    const onClose = () =>
      done(
        new FieldlabError('E_CLIENT_CLOSED', 'the client closed the tunnel before a complete ClientHello'),
      );
    const timer = setTimeout(
      () =>
        done(
          new FieldlabError('E_CLIENT_HELLO_TIMEOUT', `no complete ClientHello within ${timeoutMs}ms`, {
            hint: 'the client opened the tunnel but did not start TLS',
          }),
        ),
      timeoutMs,
    );
    if (buffered.length > 0 && check()) return;
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
    socket.resume();
  });
}
