/** Network kinds of protocol.md §4 (`NetworkKind`), as the heartbeat policy sees them. */
export const NetKind = { UNKNOWN: 0, WIFI: 1, ETHERNET: 2, CELL_2G: 3, CELL_3G: 4, CELL_4G: 5, CELL_5G: 6 } as const;
export type NetKindValue = (typeof NetKind)[keyof typeof NetKind];

/** Kinds the policy knows; a kind code outside this range is treated as UNKNOWN. */
export const KIND_COUNT = 7;

/** Metric label per kind code. */
export const KIND_LABELS = ['unknown', 'wifi', 'ethernet', '2g', '3g', '4g', '5g'] as const;
export type KindLabel = (typeof KIND_LABELS)[number];

export function knownKind(kind: number): number {
  return Number.isInteger(kind) && kind > 0 && kind < KIND_COUNT ? kind : NetKind.UNKNOWN;
}

/** Wi-Fi and Ethernet sit behind home and office routers, whose NATs keep mappings longer. */
export function isFixedLine(kind: number): boolean {
  return kind === NetKind.WIFI || kind === NetKind.ETHERNET;
}
