/** The moor/1 device client library: MoorClient for devices, RawConnection for tests and tools. */
export { Backoff, type BackoffOptions } from './backoff';
export { type ClientCloseInfo, type ClientState, MoorClient, type MoorClientEvents, type ReconnectInfo } from './client';
export { describeEndpoint, type Endpoint, endpointFrom } from './endpoint';
export { type ClientErrorCode, GatewayError, MoorClientError } from './errors';
export type { MoorClientOptions } from './options';
export { hello, type RawClosed, RawConnection, type RawFrame } from './raw';
