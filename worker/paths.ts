/** The one path that upgrades to a bridged WebSocket (documented in README.md). */
export const BRIDGE_PATH = '/v1';
