/**
 * The constants of the `moor/1` wire protocol, mirrored from shared/protocol.md.
 * One table per concept; every other module imports from here.
 */

/** Sent first by a raw TCP client, before any frame. */
export const TCP_PREFACE = Buffer.from('MOOR/1\r\n', 'latin1');
/** WebSocket subprotocol token. */
export const WS_SUBPROTOCOL = 'moor.v1';

export const DEFAULT_MAX_FRAME = 65_536;
export const MAX_MAX_FRAME = 16 * 1024 * 1024;
/** type u8 + flags u8 + two 5-byte varints. */
export const MAX_HEADER_BYTES = 12;

export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  PING: 0x03,
  PONG: 0x04,
  PUSH: 0x05,
  ACK: 0x06,
  REQUEST: 0x07,
  RESPONSE: 0x08,
  SYNC: 0x09,
  SYNC_DONE: 0x0a,
  GOAWAY: 0x0b,
  ERROR: 0x0c,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];
export const MAX_FRAME_TYPE = 0x0c;

/** Name of a type code, for logs and metric labels. */
export const FRAME_TYPE_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(FrameType)) names[code] = name;
  return names;
})();

/** Frame types a device may send; anything else from a device is PROTOCOL_ERROR. */
export const DEVICE_TO_GATEWAY: ReadonlySet<number> = new Set([
  FrameType.HELLO,
  FrameType.PING,
  FrameType.ACK,
  FrameType.REQUEST,
  FrameType.SYNC,
]);

/** flags bits 0-1: payload codec. Bits 2-7 are reserved and must be 0. */
export const FlagCodec = { IDENTITY: 0, LZ4: 1, ZSTD: 2 } as const;
export const FLAG_CODEC_MASK = 0x03;
export const FLAG_RESERVED_MASK = 0xfc;

/**
 * Error codes (protocol.md §4), one table: the numeric code on the wire, and the
 * WebSocket close code the gateway uses when it closes after sending that ERROR.
 */
export const ErrorCode = {
  PROTOCOL_ERROR: 1,
  AUTH_FAILED: 2,
  FRAME_TOO_LARGE: 3,
  RATE_LIMITED: 4,
  OVERLOADED: 5,
  REDIRECT: 6,
  UNSUPPORTED: 7,
  INTERNAL: 8,
  REPLACED: 9,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;
export type ErrorCodeValue = (typeof ErrorCode)[ErrorCodeName];

export const ERROR_CODE_NAMES: readonly string[] = (() => {
  const names: string[] = [];
  for (const [name, code] of Object.entries(ErrorCode)) names[code] = name;
  return names;
})();

/** WebSocket close code sent after ERROR with each code (RFC 6455 §7.4.1 where one fits). */
export const WS_CLOSE_FOR_ERROR: Readonly<Record<ErrorCodeValue, number>> = {
  [ErrorCode.PROTOCOL_ERROR]: 1002,
  [ErrorCode.AUTH_FAILED]: 1008,
  [ErrorCode.FRAME_TOO_LARGE]: 1009,
  [ErrorCode.RATE_LIMITED]: 1008,
  [ErrorCode.OVERLOADED]: 1013,
  [ErrorCode.REDIRECT]: 1000,
  [ErrorCode.UNSUPPORTED]: 1003,
  [ErrorCode.INTERNAL]: 1011,
  [ErrorCode.REPLACED]: 1000,
};
/** A text WebSocket message is a protocol error closed with 1003 (protocol.md §1). */
export const WS_CLOSE_TEXT_MESSAGE = 1003;

export const GoAwayReason = { DRAINING: 1, REBALANCE: 2, SHUTDOWN: 3 } as const;

/**
 * Why the decoder rejected a stream, finer than the wire code. Both codecs
 * (native and TypeScript) report the same detail at the same place.
 */
export const DecodeFault = {
  NONE: 0,
  VARINT_OVERFLOW: 1,
  RESERVED_FLAGS: 2,
  UNKNOWN_TYPE: 3,
  TOO_LARGE: 4,
  BAD_CODEC: 5,
} as const;
export type DecodeFaultValue = (typeof DecodeFault)[keyof typeof DecodeFault];

export const DECODE_FAULT_MESSAGES: Readonly<Record<DecodeFaultValue, string>> = {
  [DecodeFault.NONE]: '',
  [DecodeFault.VARINT_OVERFLOW]: 'varint longer than 5 bytes or not below 2^32',
  [DecodeFault.RESERVED_FLAGS]: 'reserved flag bits 2-7 are set',
  [DecodeFault.UNKNOWN_TYPE]: 'unknown frame type',
  [DecodeFault.TOO_LARGE]: 'declared payload length exceeds max_frame',
  [DecodeFault.BAD_CODEC]: 'codec bits name no codec (3)',
};

/** Wire code for each decoder fault. */
export function errorCodeForFault(fault: DecodeFaultValue): ErrorCodeValue {
  return fault === DecodeFault.TOO_LARGE ? ErrorCode.FRAME_TOO_LARGE : ErrorCode.PROTOCOL_ERROR;
}
