/**
 * Loopback ports a test names in advance (a listener it must know before the gateway
 * starts, or restarts on): src/util/ports.ts, which draws them from below the kernel's
 * ephemeral range so another test's outgoing connection cannot take them first.
 */
import { freePort as freePortOn } from '../../src/util/ports';

/** A free loopback port p such that every p + offset in `alsoFree` is free too. */
export const freePort = (alsoFree: readonly number[] = []): Promise<number> => freePortOn('127.0.0.1', alsoFree);
