/**
 * Replica identifiers.
 *
 * A replica is one incarnation of one shard: (node name, vsn). The vsn changes at every
 * shard start, so a restarted shard is a different replica. Both parts are packed into one
 * string so that a replica id can be a `Map` key, crosses threads and nodes unchanged and
 * compares with `===`. The separator is `#`; the vsn may not contain it (node names may),
 * so the id splits at its last `#`.
 */

/** An encoded (node name, vsn) pair. Build with {@link replicaId}; never parse by hand. */
export type ReplicaId = string & { readonly __replicaId: unique symbol };

const SEP = "#";

/**
 * Encodes (node name, vsn) as a {@link ReplicaId}.
 * @throws TypeError when `vsn` is empty or contains `#`.
 * @example replicaId("node-a", "k3x9.1") // "node-a#k3x9.1"
 */
export function replicaId(name: string, vsn: string): ReplicaId {
  if (vsn.length === 0 || vsn.includes(SEP)) {
    throw new TypeError(`replica vsn must be non-empty and free of "${SEP}": ${JSON.stringify(vsn)}`);
  }
  return `${name}${SEP}${vsn}` as ReplicaId;
}

/** The node name part of a replica id. */
export function replicaName(id: ReplicaId): string {
  return id.slice(0, id.lastIndexOf(SEP));
}

/** The vsn part of a replica id. */
export function replicaVsn(id: ReplicaId): string {
  return id.slice(id.lastIndexOf(SEP) + 1);
}
