/**
 * The HTTP API's view of training (POST /v1/dicts, `moor dict train`): the outcome as
 * JSON, failures as API errors.
 */
import { ApiError } from '../api/errors';
import type { GatewayCompression } from './gateway';
import { TrainError } from './train';

/** POST /v1/dicts: train, install, answer what was made. */
export async function trainForApi(comp: GatewayCompression, maxBytes: number | undefined): Promise<Record<string, unknown>> {
  if (comp.native === null) throw new ApiError('COMPRESSION_UNAVAILABLE', 'this gateway runs without the native module: it cannot train dictionaries');
  try {
    return { ...(await comp.train(maxBytes)) };
  } catch (err) {
    if (err instanceof TrainError) throw new ApiError(err.code, err.message);
    throw err;
  }
}
