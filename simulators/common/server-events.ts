import type { Socket } from 'node:net';
import type { TLSSocket, Server as TlsServer } from 'node:tls';
import { errorCode } from './errors.js';
import { type EventMap, preciseNow, type SimulatorEvents } from './events.js';
import { hostPort } from './net.js';
import { alertFromError } from './tls-alerts.js';

/** The connection events every TCP server emits (the harness reads them for timings). */
export interface ConnectionEvents extends EventMap {
  connection: { id: string; remote: string };
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
}

/** Why a client's TLS handshake with a server failed, as the server saw it. */
export interface TlsClientErrorEvent {
  remote: string;
  /** The alert the client sent (`unknown_ca`, `certificate_expired`...); absent when it sent none. */
  alert?: string;
  code?: string;
  message: string;
}

/** A client's TLS handshake with a server completed (the end of the lab's `tls` phase). */
export interface TlsEstablishedEvent {
  /** The client's address, as in the `connection` event of the same socket. */
  remote: string;
  protocol: string | null;
  alpn: string | false;
}

/** Emits `tls-established` for every handshake `server` (tls or https) completes. */
export function announceTlsEstablished(
  events: SimulatorEvents<{ 'tls-established': TlsEstablishedEvent }>,
  server: TlsServer,
): void {
  server.on('secureConnection', (tls: TLSSocket) =>
    events.emitEvent('tls-established', {
      remote: hostPort(tls.remoteAddress ?? '?', tls.remotePort ?? 0),
      protocol: tls.getProtocol(),
      alpn: tls.alpnProtocol ?? false,
    }),
  );
}

/** Emits `connection` now and `closed` (bytes each way, duration) when the socket goes away. */
export function announceConnection(
  events: SimulatorEvents<ConnectionEvents>,
  socket: Socket,
  id: string,
): void {
  const started = preciseNow();
  events.emitEvent('connection', {
    id,
    remote: hostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0),
  });
  socket.once('close', () =>
    events.emitEvent('closed', {
      id,
      bytesIn: socket.bytesRead,
      bytesOut: socket.bytesWritten,
      durationMs: preciseNow() - started,
    }),
  );
}

/**
 * A TLS server's `tlsClientError` as an event: OpenSSL clients (curl, mosquitto, openssl) name their
 * reason in an alert; Node clients verify after the handshake and send none (the server sees a reset).
 */
export function describeTlsClientError(err: Error, tls: TLSSocket): TlsClientErrorEvent {
  const alert = alertFromError(err);
  const code = errorCode(err);
  return {
    remote: hostPort(tls.remoteAddress ?? '?', tls.remotePort ?? 0),
    ...(alert ? { alert } : {}),
    ...(code ? { code } : {}),
    message: err.message,
  };
}
