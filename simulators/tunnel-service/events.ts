import type { SimulatorEvents } from '../common/events.js';
import type { AuthFailureReason } from './sigv4.js';

/** Why a handshake's access token was refused. */
export type TokenRejectReason =
  | 'missing'
  | 'ambiguous'
  | 'used'
  | 'revoked'
  | 'unknown'
  | 'closed'
  | 'mode-mismatch';

/** Events of the tunnel-service simulator. */
export interface TunnelServiceEvents {
  [key: string]: unknown;
  /** A TCP connection to the data plane. */
  connection: { id: string; remote: string };
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
  'tls-client-error': { remote: string; alert?: string; code?: string; message: string };
  /** A client's TLS handshake with the data plane completed (`tls` option). */
  'tls-established': { remote: string; protocol: string | null; alpn: string | false };
  /** A management API call, with the access key id of its Authorization header. */
  'api-request': { operation: string; status: number; errorType?: string; accessKeyId?: string };
  /** `auth: sigv4` refused a management API call: why, and what AWS answers (error type, status). */
  'auth-rejected': {
    operation: string;
    reason: AuthFailureReason;
    errorType: string;
    status: number;
    message: string;
    accessKeyId?: string;
  };
  'tunnel-opened': { tunnelId: string; thingName?: string; services: string[] };
  'tunnel-closed': { tunnelId: string; reason: 'api' | 'deleted' | 'lifetime' | 'stopped' };
  'tokens-rotated': { tunnelId: string; modes: Array<'source' | 'destination'> };
  /**
   * A destination token was handed to the `notify` hook for `$aws/things/<thing>/tunnels/notify` (the
   * broker accepted the publish): on OpenTunnel (`opened`) or on a DESTINATION/ALL rotation (`rotated`).
   */
  notified: { tunnelId: string; thingName: string; topic: string; reason: 'opened' | 'rotated' };
  /** The notify hook failed (the tunnel still opened). */
  'notify-error': { tunnelId: string; topic: string; message: string };
  /** A data plane handshake refused before the upgrade. */
  'handshake-rejected': { remote: string; status: number; reason: string };
  'token-rejected': {
    tunnelId?: string;
    mode?: string;
    reason: TokenRejectReason;
    status: number;
    /** E_TUNNEL_TOKEN_USED, E_TUNNEL_TOKEN_REVOKED, E_TUNNEL_TOKEN_UNKNOWN, E_TUNNEL_CLOSED... */
    code: string;
  };
  'peer-connected': {
    tunnelId: string;
    mode: 'source' | 'destination';
    protocol: number;
    clientToken?: string;
    replaced: boolean;
  };
  'peer-disconnected': {
    tunnelId: string;
    mode: 'source' | 'destination';
    code: number;
    reason: string;
  };
  'stream-start': { tunnelId: string; streamId: number; serviceId: string; connectionId: number };
  'stream-reset': { tunnelId: string; streamId: number; serviceId: string; from: string };
  'connection-start': { tunnelId: string; streamId: number; serviceId: string; connectionId: number };
  'connection-reset': { tunnelId: string; streamId: number; serviceId: string; connectionId: number };
  /** Aggregated DATA relayed since the last report, by sender side. */
  data: { tunnelId: string; from: 'source' | 'destination'; bytes: number; frames: number };
  'protocol-violation': {
    tunnelId: string;
    mode: 'source' | 'destination';
    reason: string;
    code: string;
    closeCode: number;
  };
}

export interface TunnelServiceStats {
  [key: string]: unknown;
  tunnelsOpen: number;
  /** Tunnels closed since start (a counter; closed tunnels are forgotten after the retention). */
  tunnelsClosed: number;
  /** Tunnels the registry holds: open ones and closed ones within the retention. */
  registrySize: number;
  /** Access tokens indexed for handshakes: two per open tunnel, none for closed ones. */
  tokenMapSize: number;
  peers: number;
  /** DATA payload-carrying message bytes (prefix included) relayed. */
  bytesRelayed: number;
  /** Messages of any type relayed to the other side. */
  framesRelayed: number;
  /** Stale messages dropped (wrong stream or connection id, DATA racing a reset). */
  framesDropped: number;
  handshakesRejected: number;
  violations: number;
}

export type Emitter = SimulatorEvents<TunnelServiceEvents>;
