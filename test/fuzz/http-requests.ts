import fc from 'fast-check';
import { loopbackOnly, mutated } from './mutate.js';

/**
 * Requests to a CONNECT/forward proxy: CONNECT in authority form and plain-HTTP forwarding in absolute
 * form, with the request-target, version, headers (Host, Proxy-Authorization, Content-Length,
 * Transfer-Encoding, long and malformed lines) and body drawn from valid and broken forms, then mutated,
 * then `loopbackOnly`. `$PORT` is the test's HTTPS target, `$HTTP` its plain HTTP target.
 */

const port = fc.oneof(
  fc.constantFrom('$PORT', '$HTTP', '443', '0', '65536', '99999', '', '-1', '22'),
  fc.nat({ max: 65535 }).map(String),
);
const host = fc.constantFrom(
  '127.0.0.1',
  '127.0.0.9',
  'localhost',
  '[::1]',
  'nohost.invalid',
  '',
  'user:pw@127.0.0.1',
  '127.0.0.1?x=1',
  '%31%32%37.0.0.1',
  'x'.repeat(300),
);
const authority = fc.tuple(host, port).map(([h, p]) => (p === '' ? h : `${h}:${p}`));
const version = fc.constantFrom(
  'HTTP/1.1',
  'HTTP/1.1',
  'HTTP/1.0',
  'HTTP/2.0',
  'HTTP/1.1 extra',
  'HTTP/1',
  '',
);
const base64 = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a).toString('base64'));
const header = fc.oneof(
  authority.map((a) => `Host: ${a}`),
  fc
    .oneof(fc.constant(Buffer.from('edge:secret').toString('base64')), base64)
    .map((b) => `Proxy-Authorization: Basic ${b}`),
  fc.constantFrom(
    'Proxy-Authorization: Digest x',
    'Proxy-Authorization: Basic',
    'Proxy-Connection: keep-alive',
    'Connection: close',
    'Upgrade: websocket',
  ),
  fc
    .oneof(fc.nat().map(String), fc.constantFrom('-1', '1e3', '', '99999999999999999999', '5, 6'))
    .map((n) => `Content-Length: ${n}`),
  fc.constantFrom(
    'Transfer-Encoding: chunked',
    'Transfer-Encoding: gzip, chunked',
    'Transfer-Encoding: identity',
  ),
  fc.constantFrom('NoColonHere', ' folded: continuation', 'X: \u0000', ': empty-name'),
  fc.integer({ min: 1000, max: 70_000 }).map((n) => `X-Long: ${'a'.repeat(n)}`),
);
const body = fc.oneof(fc.constant(''), fc.constant('5\r\nhello\r\n0\r\n\r\n'), fc.string({ maxLength: 100 }));

const request = fc
  .record({
    method: fc.oneof(
      { weight: 3, arbitrary: fc.constant('CONNECT') },
      fc.constantFrom('GET', 'POST', 'HEAD', 'OPTIONS', 'TRACE', 'PRI', 'connect', 'G\u00c9T'),
    ),
    target: fc.oneof(
      authority,
      authority.map((a) => `http://${a}/x`),
      fc.constantFrom('/', '*', 'https://127.0.0.1:$PORT/', 'http:///x', 'ftp://127.0.0.1/'),
    ),
    version,
    headers: fc.array(header, { maxLength: 5 }),
    body,
    /** Bytes a client sends after the head, e.g. a TLS record on a CONNECT tunnel. */
    after: fc.oneof(
      fc.constant(''),
      fc.constant('\u0016\u0003\u0001\u0000\u0005hello'),
      fc.string({ maxLength: 40 }),
    ),
  })
  .map((r) =>
    Buffer.from(
      `${r.method} ${r.target} ${r.version}\r\n${r.headers.map((h) => `${h}\r\n`).join('')}\r\n${r.body}${r.after}`,
      'latin1',
    ),
  );

/** One connection's request bytes (sometimes two pipelined requests). */
export const proxyRequest: fc.Arbitrary<Buffer> = fc
  .array(mutated(request), { minLength: 1, maxLength: 2 })
  .map((rs) => loopbackOnly(Buffer.concat(rs)));
