/** The interest bitset (PUBSUB.md 2.3: small with 100k topics × N nodes). */
import { describe, expect, it } from "vitest";
import { PeerInterest } from "../src/internal/peer_interest.js";

describe("PeerInterest", () => {
  it("keeps one entry per topic with a bit per peer slot, beyond 30 slots too", () => {
    const pi = new PeerInterest();
    const slots = Array.from({ length: 40 }, () => pi.alloc());
    expect(slots).toEqual(Array.from({ length: 40 }, (_, i) => i));
    for (const s of slots) pi.add(s, "t");
    pi.add(3, "u");
    expect(pi.size).toBe(2);
    const m = pi.maskOf("t");
    expect(slots.every((s) => pi.hasIn(m, s, "t"))).toBe(true);
    expect(pi.hasIn(pi.maskOf("u"), 4, "u")).toBe(false);
    pi.remove(35, "t");
    expect(pi.hasIn(m, 35, "t")).toBe(false);
    pi.release(3);
    expect(pi.countOf(3)).toBe(0);
    expect(pi.size).toBe(1);
    expect(pi.alloc()).toBe(3); // recycled
    for (const s of slots) pi.clear(s);
    expect(pi.size).toBe(0);
  });

  it("100k topics × 3 peers stay 100k entries", () => {
    const pi = new PeerInterest();
    const s = [pi.alloc(), pi.alloc(), pi.alloc()];
    for (let i = 0; i < 100_000; i++) for (const x of s) pi.add(x, `t${i}`);
    expect(pi.size).toBe(100_000);
    expect(pi.countOf(s[1]!)).toBe(100_000);
    pi.release(s[1]!);
    expect(pi.size).toBe(100_000);
    pi.release(s[0]!);
    pi.release(s[2]!);
    expect(pi.size).toBe(0);
  });
});
