/** One answer record as events report it. */
export interface AnswerInfo {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

import type { DnsFaultEvents } from '../common/dns-faults.js';

/** What the geo DNS saw, per event name (DESIGN.md: dns `query`); DNS faults as the relay's toxics. */
export type GeoDnsEvents = DnsFaultEvents & {
  /**
   * A query was answered (or dropped: rcode `NONE`). `location` is the client's mapped location
   * (`NA/US/WA`, `unknown`); `reason` says why this answer, e.g. `geolocation NA matched us (client
   * NA/US/WA)`, `no geolocation match for EU/DE and no Default record`, `fault servfail`.
   */
  query: {
    client: string;
    transport: 'udp' | 'tcp';
    name: string;
    type: string;
    ecs?: string;
    location: string;
    rcode: string;
    answers: AnswerInfo[];
    reason: string;
    truncated: boolean;
    /** From the query's arrival to its answer (or drop), ms: the lab's `dns` phase. */
    ms?: number;
  };
  /** A packet that could not be answered normally: FORMERR / NOTIMP sent, or dropped. */
  malformed: { client: string; transport: 'udp' | 'tcp'; bytes: number; action: string };
  /** A record's health changed (TCP health check or `setHealth`). */
  health: { id: string; healthy: boolean; reason: string };
  /** Listening on TCP again after a `tcp-refused` fault failed (the port was taken meanwhile), as a relay's. */
  'listen-error': { code: string; message: string };
  /** A TCP client connected (dns-tcp). */
  connection: { id: string; remote: string };
  /** That TCP connection closed. */
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
};

/** Counters since `start()`. */
export interface GeoDnsStats {
  /** Every packet received (UDP datagrams and TCP messages). */
  queries: number;
  /** Responses sent, by RCODE name. */
  byRcode: Record<string, number>;
  /** UDP responses sent with TC set. */
  truncated: number;
  tcpQueries: number;
  /** Queries not answered: `drop` faults and undecodable packets. */
  dropped: number;
  /** Packets that got FORMERR/NOTIMP or were dropped as unparsable. */
  malformed: number;
  /** Answers served from the encoded-answer cache. */
  cacheHits: number;
}
