import type { DnsFaultEvents } from '../common/dns-faults.js';

/** How a client reached the resolver. */
export type ResolverTransport = 'udp' | 'tcp' | 'dot' | 'doh';

/** One answer record as events report it. */
export interface ResolverAnswerInfo {
  name: string;
  type: string;
  ttl: number;
  data: string;
}

/** Where an answer came from. */
export type AnswerSource = 'cache' | 'upstream' | 'stale' | 'hosts' | 'none';

/**
 * What the resolver saw, per event name; DNS faults as the relay's toxics (`toxic-applied` per query
 * hit), and the `answer` that follows names the fault in its `reason` (rcode `NONE`: dropped).
 */
export type ResolverEvents = DnsFaultEvents & {
  /** A client's query arrived. */
  query: { client: string; transport: ResolverTransport; name: string; type: string; rd: boolean };
  /** A cache lookup found a usable record set (`stale`: expired, served under RFC 8767). */
  'cache-hit': { name: string; type: string; subnet: string; scope: string; ttl: number; stale: boolean };
  /** A cache lookup found nothing for this client's subnet. */
  'cache-miss': { name: string; type: string; subnet: string };
  /** A query sent to an authoritative server. */
  'upstream-query': {
    server: string;
    egress: string;
    transport: 'udp' | 'tcp';
    name: string;
    type: string;
    /** The client subnet sent (RFC 7871), when ECS is on. */
    ecs?: string;
    attempt: number;
  };
  /** Its answer; `scope` is the ECS scope the server returned (`0` when it sent none). */
  'upstream-answer': {
    server: string;
    name: string;
    type: string;
    rcode: string;
    scope?: number;
    answers: ResolverAnswerInfo[];
    ms: number;
  };
  /** No answer within `timeout` (or the server unreachable: `error` says which). */
  'upstream-timeout': {
    server: string;
    name: string;
    type: string;
    attempt: number;
    ms: number;
    error?: string;
  };
  /** The answer sent to the client; `reason` says why this one. */
  answer: {
    client: string;
    transport: ResolverTransport;
    name: string;
    type: string;
    rcode: string;
    source: AnswerSource;
    answers: ResolverAnswerInfo[];
    reason: string;
    /** From the query's arrival to the answer, ms. */
    ms: number;
  };
  /**
   * The lab's check of a forwarded answer (the `check` option): what the authoritative `server` gives
   * the client's own location (`clientLocation`, e.g. `EU/DE`) beside what this resolver (`resolver`:
   * persona, location, ECS) answered. `agrees: false` is a device sent by its resolver to another
   * location's records: a public resolver without ECS in another country, a cached answer.
   */
  'answer-check': {
    client: string;
    name: string;
    type: string;
    resolver: string;
    answers: ResolverAnswerInfo[];
    server: string;
    clientLocation: string;
    expected: ResolverAnswerInfo[];
    agrees: boolean;
  };
  /** A packet that could not be answered normally (FORMERR sent, or dropped). */
  malformed: { client: string; transport: ResolverTransport; bytes: number; action: string };
  /** DNS over TCP could not listen again after a `tcp-refused` fault ended (the port was taken). */
  'listen-error': { code: string; message: string };
  /** A client's TLS handshake (DoT, DoH) failed. */
  'tls-client-error': { remote: string; alert?: string; code?: string; message: string };
};

/** Counters since `start()`. */
export interface ResolverStats {
  queries: number;
  byTransport: Record<ResolverTransport, number>;
  /** Answers sent, by RCODE name. */
  byRcode: Record<string, number>;
  cacheHits: number;
  cacheMisses: number;
  staleServed: number;
  upstreamQueries: number;
  upstreamTimeouts: number;
  /** Entries in the cache now. */
  cacheEntries: number;
  malformed: number;
  /** Queries a `drop` fault left unanswered. */
  dropped: number;
}
