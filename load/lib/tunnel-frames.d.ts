/** Types for tunnel-frames.js (the k6 scripts' frame codec), for the TypeScript tests and tools. */

export declare const MessageType: {
  readonly UNKNOWN: 0;
  readonly DATA: 1;
  readonly STREAM_START: 2;
  readonly STREAM_RESET: 3;
  readonly SESSION_RESET: 4;
  readonly SERVICE_IDS: 5;
  readonly CONNECTION_START: 6;
  readonly CONNECTION_RESET: 7;
};
export declare const MAX_PAYLOAD_BYTES: number;
export declare const MAX_MESSAGE_BYTES: number;
export declare const SUBPROTOCOL: string;

export interface JsTunnelMessage {
  type: number;
  streamId: number;
  ignorable: boolean;
  payload: Uint8Array;
  serviceId: string;
  availableServiceIds: string[];
  connectionId: number;
}

export type JsTunnelMessageInput = Partial<Omit<JsTunnelMessage, 'type'>> & { type: number };

export declare function utf8Encode(s: string): Uint8Array;
export declare function utf8Decode(buf: Uint8Array, start: number, end: number): string;
export declare function encodeMessage(msg: JsTunnelMessageInput): Uint8Array;
export declare function decodeMessage(buf: Uint8Array, start?: number, end?: number): JsTunnelMessage;
export declare class FrameDecoder {
  push(chunk: Uint8Array | ArrayBuffer): JsTunnelMessage[];
  readonly buffered: number;
  end(): void;
}
export declare function messageTypeName(type: number): string;
