/**
 * The one loader of uWebSockets.js. The package's own entry point silently falls back
 * to a ws-based JS server when the native binary does not load (shared/design.md), so
 * we require the binary by path and fail loudly instead.
 */
import path from 'node:path';
import type * as UwsModule from '@trufflesuite/uws-js-unofficial';

export type {
  HttpRequest,
  HttpResponse,
  RecognizedString,
  TemplatedApp,
  us_listen_socket,
  us_socket_context_t,
  WebSocket,
  WebSocketBehavior,
} from '@trufflesuite/uws-js-unofficial';

/** App methods the binary has that docs/index.d.ts does not declare. */
export interface UwsAppExtras {
  /** Closes every listen socket and open connection of the app (uWS.js >= 20.27). */
  close(): void;
}
export type UwsApp = UwsModule.TemplatedApp & UwsAppExtras;

export type Uws = Omit<typeof UwsModule, 'App' | 'SSLApp'> & {
  App(options?: UwsModule.AppOptions): UwsApp;
  SSLApp(options: UwsModule.AppOptions): UwsApp;
};

const PACKAGE = '@trufflesuite/uws-js-unofficial';

/** Path of the native binary for this platform and Node ABI. */
export function uwsBinaryPath(): string {
  const dir = path.dirname(require.resolve(`${PACKAGE}/package.json`));
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  return path.join(dir, 'binaries', name);
}

function load(): Uws {
  let file = '(unresolved)';
  try {
    file = uwsBinaryPath();
    const mod = require(file) as Uws;
    if (typeof mod.App !== 'function' || typeof mod.us_socket_local_port !== 'function') {
      throw new Error('the module loaded but does not export App/us_socket_local_port');
    }
    return mod;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(
      `moor: cannot load the uWebSockets.js native binary ${file} (${process.platform}-${process.arch}, ` +
        `Node ABI ${process.versions.modules}): ${why}. moor refuses the slow ws-based fallback; ` +
        `install ${PACKAGE} with a binary for this platform.`,
      { cause: err },
    );
  }
}

/** The native uWS.js module, loaded once at first import. */
export const uws: Uws = load();
