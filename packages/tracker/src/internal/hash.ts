/**
 * Topic → shard (TRACKER.md 4): FNV-1a, 32 bit, over the topic's UTF-8 bytes, modulo the pool
 * size. Every node and every scheduler must agree, so the function is pinned by golden vectors
 * in the tests (T47); changing it is a protocol change (bump the shard protocol version).
 *
 * Lone surrogates are encoded as U+FFFD (EF BF BD), as `TextEncoder` and `Buffer.from(s, "utf8")`
 * do, so the result equals FNV-1a of `Buffer.from(topic, "utf8")` for every string.
 */

const OFFSET = 0x811c9dc5;
const PRIME = 0x01000193;

/**
 * FNV-1a (32 bit) of the UTF-8 encoding of `s`, as an unsigned integer.
 *
 * @example
 * ```ts
 * import { topicHash } from "@cinder/tracker";
 * console.log(topicHash("")); // 2166136261
 * console.log(topicHash("foobar").toString(16)); // "bf9cf968"
 * ```
 */
export function topicHash(s: string): number {
  let h = OFFSET;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >> 18)), PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 12) & 0x3f)), PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >> 6) & 0x3f)), PRIME);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), PRIME);
        continue;
      }
      c = 0xfffd; // a lone surrogate
    }
    h = Math.imul(h ^ (0xe0 | (c >> 12)), PRIME);
    h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), PRIME);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), PRIME);
  }
  return h >>> 0;
}

/**
 * The shard of `topic` in a pool of `poolSize` shards: `topicHash(topic) % poolSize`.
 *
 * @example
 * ```ts
 * import { shardOf } from "@cinder/tracker";
 * console.log(shardOf("room:lobby", 1)); // 0
 * console.log(shardOf("foobar", 8)); // 0
 * console.log(shardOf("a", 8)); // 4
 * ```
 */
export function shardOf(topic: string, poolSize: number): number {
  return poolSize === 1 ? 0 : topicHash(topic) % poolSize;
}
