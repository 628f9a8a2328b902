/**
 * The load scripts' settings from `__ENV` (k6 `-e NAME=value`), with the lab service's defaults.
 *
 * | env           | default                | what                                             |
 * | ------------- | ---------------------- | ------------------------------------------------ |
 * | API_URL       | http://127.0.0.1:8080  | management API (OpenTunnel, CloseTunnel)         |
 * | DATA_URL      | ws://127.0.0.1:8443    | data plane (`/tunnel?local-proxy-mode=...`)      |
 * | VUS           | 2                      | virtual users (one tunnel at a time each)        |
 * | DURATION      | 10s                    | how long the scenario runs                       |
 * | PAYLOAD_SIZE  | 1024                   | DATA payload bytes (16 – 64512)                  |
 * | WINDOW        | 16                     | DATA messages in flight per tunnel               |
 * | SESSION       | 5s                     | how long one tunnel streams before a new one     |
 * | SERVICE       | SSH                    | the tunnel's service id                          |
 * | FAIL_THRESHOLD| (unset)                | set: add a threshold that cannot pass (tests)    |
 * | THRESHOLDS    | (thresholds.json)      | JSON `{metric: [expr]}` replacing the file's     |
 */

/** Milliseconds of a k6-style duration (`500ms`, `10s`, `1m30s`, `2h`) or a bare number of seconds. */
export function durationMs(text) {
  const s = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const units = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let matched = '';
  let m = re.exec(s);
  while (m) {
    total += Number(m[1]) * units[m[2]];
    matched += m[0];
    m = re.exec(s);
  }
  if (matched !== s || matched === '') throw new Error(`not a duration: ${text} (use e.g. 10s, 1m30s)`);
  return total;
}

function int(name, fallback, min, max) {
  const raw = __ENV[name];
  const v = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new Error(`${name}=${raw}: expected a whole number from ${min} to ${max}`);
  }
  return v;
}

/** Reads the settings once, in the init context. */
export function config() {
  const duration = __ENV.DURATION || '10s';
  return {
    apiUrl: (__ENV.API_URL || 'http://127.0.0.1:8080').replace(/\/+$/, ''),
    dataUrl: (__ENV.DATA_URL || 'ws://127.0.0.1:8443').replace(/\/+$/, ''),
    vus: int('VUS', 2, 1, 100000),
    duration,
    durationMs: durationMs(duration),
    payloadSize: int('PAYLOAD_SIZE', 1024, 16, 64512),
    window: int('WINDOW', 16, 1, 4096),
    sessionMs: durationMs(__ENV.SESSION || '5s'),
    service: __ENV.SERVICE || 'SSH',
  };
}
