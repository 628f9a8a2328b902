/** Names and text of dns2 records and codes, for events and answers. */
import dns2 from 'dns2';
import type { ResolverAnswerInfo } from './events.js';
import type { Dns2Packet } from './upstream.js';

export type Dns2Resource = Dns2Packet['answers'][number];

const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(dns2.Packet.TYPE).map(([k, v]) => [v, k === 'EDNS' ? 'OPT' : k]),
);
export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE${type}`;
}

/** The record's data as a zone file would show it. */
export function rdataText(r: Dns2Resource): string {
  switch (r.type) {
    case dns2.Packet.TYPE.A:
    case dns2.Packet.TYPE.AAAA:
      return r.address ?? '';
    case dns2.Packet.TYPE.CNAME:
    case dns2.Packet.TYPE.PTR:
      return `${r.domain ?? ''}.`;
    case dns2.Packet.TYPE.NS:
      return `${r.ns ?? ''}.`;
    case dns2.Packet.TYPE.TXT:
      return Array.isArray(r.data) ? r.data.join('') : String(r.data ?? '');
    case dns2.Packet.TYPE.SRV:
      return `${r.priority} ${r.weight} ${r.port} ${r.target}.`;
    case dns2.Packet.TYPE.SOA:
      return `${r.primary}. ${r.admin}. ${r.serial} ${r.refresh} ${r.retry} ${r.expiration} ${r.minimum}`;
    default:
      return '';
  }
}

export function answerInfo(records: readonly Dns2Resource[]): ResolverAnswerInfo[] {
  return records.map((r) => ({ name: r.name, type: typeName(r.type), ttl: r.ttl, data: rdataText(r) }));
}

/** A copy of the record with another TTL (dns2 encodes records by their `type`, from their fields). */
export function withTtl(r: Dns2Resource, ttl: number): Dns2Resource {
  return { ...r, ttl };
}
