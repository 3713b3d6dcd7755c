/** Where a server's sessions run: a node's id and the address other nodes forward to. */
export interface NodeAddress {
  nodeId: string;
  url: string;
}

/**
 * Which servers this process runs (DESIGN rule 8). One node alone owns every server and writes
 * unfenced; a node of a cluster owns the servers it holds a lease on (src/cluster/lease-manager.ts).
 */
export interface Ownership {
  readonly clustered: boolean;
  /** This node runs the server's sessions: it holds the lease (its sessions may still be being restored). */
  hosts(serverId: string): boolean;
  /** This node answers for the server: it holds the lease and has restored its sessions and seats. */
  serves(serverId: string): boolean;
  /**
   * The fencing token every write of the server's sessions carries: the epoch of this node's
   * lease, 0 when it holds none (PostgreSQL refuses it), null when writes are not fenced.
   */
  epochOf(serverId: string): bigint | null;
  /** The node that answers for the server, as last read from PostgreSQL, or null (none, or moving). */
  ownerOf(serverId: string): NodeAddress | null;
}

/** One process, every server: no lease, no fencing (the default, and every single-node test). */
export const singleNode: Ownership = {
  clustered: false,
  hosts: () => true,
  serves: () => true,
  epochOf: () => null,
  ownerOf: () => null,
};

/** SQLSTATE of a write PostgreSQL refused for a stale epoch (migration 0013_cluster.sql). */
export const STALE_EPOCH = 'TG409';

export function isStaleEpoch(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === STALE_EPOCH;
}
