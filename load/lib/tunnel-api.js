/**
 * The tunnel service's management API for k6: AWS JSON 1.1 over `http.post` (`X-Amz-Target:
 * IoTSecuredTunneling.<Op>`). The lab service does not verify SigV4, so requests go unsigned.
 */
import http from 'k6/http';

function call(apiUrl, op, body) {
  return http.post(`${apiUrl}/`, JSON.stringify(body), {
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': `IoTSecuredTunneling.${op}`,
    },
    tags: { name: op },
  });
}

/**
 * OpenTunnel with one service: `{ tunnelId, sourceAccessToken, destinationAccessToken }`, or
 * `{ error }` with the status and AWS error type.
 */
export function openTunnel(apiUrl, service) {
  const res = call(apiUrl, 'OpenTunnel', {
    description: 'fieldlab load',
    destinationConfig: { services: [service] },
    timeoutConfig: { maxLifetimeTimeoutMinutes: 30 },
  });
  if (res.status !== 200) {
    return { error: `OpenTunnel: HTTP ${res.status} ${res.headers['X-Amzn-Errortype'] || ''} ${res.body}` };
  }
  return JSON.parse(res.body);
}

/** CloseTunnel (`delete: true`); true on success. */
export function closeTunnel(apiUrl, tunnelId) {
  return call(apiUrl, 'CloseTunnel', { tunnelId, delete: true }).status === 200;
}

/** Both sides' WebSocket URLs and params (header `access-token`, the V2 subprotocol). */
export function peerUrl(dataUrl, mode) {
  return `${dataUrl}/tunnel?local-proxy-mode=${mode}`;
}

/** Thresholds for a script from thresholds.json (shared with the Node driver), plus FAIL_THRESHOLD. */
export function thresholdsFor(all, script, failMetric) {
  // THRESHOLDS='{"metric":["p(95)<500"]}': a scenario's own thresholds (fieldlab run) replace the file's.
  const t = __ENV.THRESHOLDS ? JSON.parse(__ENV.THRESHOLDS) : JSON.parse(JSON.stringify(all[script]));
  // FAIL_THRESHOLD=1 adds a threshold that cannot pass: proves a failed threshold fails the run (exit 99).
  if (__ENV.FAIL_THRESHOLD) t[failMetric] = (t[failMetric] || []).concat(['p(95)<0']);
  return t;
}
