/**
 * The batching fold (DiffBatch) against the real phoenix.js client (Presence.syncState /
 * syncDiff of phoenix 1.8.16): a batched diff brings any client state along the window to the
 * state at its end, applying it twice changes nothing, an update stays one diff with both halves.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Presence as PhxPresence } from "phoenix";
import { DiffBatch, checkFetched, emptyState, group } from "../src/internal/diff.js";
import type { PresenceMeta, PresenceState } from "@cinder/presence";
import { applyDiff, applyState, view } from "./support.js";

type Row = { key: string; meta: PresenceMeta };

/** The server's state as rows keyed by ref, in insertion order. */
function stateOf(rows: Map<string, Row>): PresenceState {
  return group(rows.values());
}

const meta = (ref: string, extra: Record<string, unknown> = {}): PresenceMeta => ({ ...extra, phx_ref: ref });

describe("DiffBatch", () => {
  it("folds joins and leaves of one window into one diff with both halves always present", () => {
    const b = new DiffBatch();
    expect(b.toDiff()).toEqual({ joins: {}, leaves: {} });
    b.join("ann", meta("r1"));
    b.join("bob", meta("r2"));
    b.join("ann", meta("r3"));
    const d = b.toDiff();
    expect(JSON.parse(JSON.stringify(d))).toEqual({ joins: { ann: { metas: [meta("r1"), meta("r3")] }, bob: { metas: [meta("r2")] } }, leaves: {} });
    expect(Object.getPrototypeOf(d.joins)).toBeNull();
  });

  it("an update (leave of the old ref, join of the new one) is one diff: new meta with phx_ref_prev in joins, old meta in leaves", () => {
    const b = new DiffBatch();
    b.leave("bob", meta("Fb2", { status: "online" }));
    b.join("bob", { ...meta("Fb3", { status: "away" }), phx_ref_prev: "Fb2" });
    expect(JSON.parse(JSON.stringify(b.toDiff()))).toEqual({
      joins: { bob: { metas: [{ status: "away", phx_ref: "Fb3", phx_ref_prev: "Fb2" }] } },
      leaves: { bob: { metas: [{ status: "online", phx_ref: "Fb2" }] } },
    });
    // phoenix.js: one onJoin and one onLeave of the key, which never disappears
    let client = applyState({}, { bob: { metas: [meta("Fb2", { status: "online" })] } });
    const events: string[] = [];
    client = PhxPresence.syncDiff(client as any, JSON.parse(JSON.stringify(b.toDiff())), (k?: string) => void events.push(`join ${k}`), (k?: string, cur?: any) => void events.push(`leave ${k} ${cur.metas.length}`)) as any;
    expect(events).toEqual(["join bob", "leave bob 1"]);
    expect(view(client)).toEqual([["bob", ["Fb3"]]]);
  });

  it("a ref that joined then left within the window is sent as a leave, not cancelled: a client whose snapshot has it drops it (no ghost)", () => {
    const b = new DiffBatch();
    b.join("ann", meta("r1"));
    // a client joins now: its presence_state has r1
    const snapshot = applyState({}, { ann: { metas: [meta("r1")] } });
    b.leave("ann", meta("r1"));
    const d = b.toDiff();
    expect(Object.keys(d.joins)).toEqual([]);
    expect(view(applyDiff(snapshot, d))).toEqual([]);
    expect(view(applyDiff({}, d))).toEqual([]); // harmless for a client that never saw it
  });

  it("a ref that left and came back within the window (its replica down, then up) is a join: a client whose snapshot lacks it gets it back", () => {
    const b = new DiffBatch();
    b.leave("ann", meta("r1"));
    const snapshot = applyState({}, {});
    b.join("ann", meta("r1"));
    const d = b.toDiff();
    expect(Object.keys(d.leaves)).toEqual([]);
    expect(view(applyDiff(snapshot, d))).toEqual([["ann", ["r1"]]]);
    expect(view(applyDiff(applyState({}, { ann: { metas: [meta("r1")] } }), d))).toEqual([["ann", ["r1"]]]);
  });

  it("property: for any events, any client state along the window (its start, or a presence_state taken inside it) plus the batched diff, applied once or twice, is the state at the end", () => {
    type Op = { t: "track"; key: number } | { t: "untrack"; i: number } | { t: "update"; i: number } | { t: "down"; i: number } | { t: "up"; i: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ t: fc.constant("track" as const), key: fc.nat(3) }),
      fc.record({ t: fc.constant("untrack" as const), i: fc.nat(20) }),
      fc.record({ t: fc.constant("update" as const), i: fc.nat(20) }),
      fc.record({ t: fc.constant("down" as const), i: fc.nat(20) }),
      fc.record({ t: fc.constant("up" as const), i: fc.nat(20) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 6 }), fc.array(op, { maxLength: 25 }), fc.nat(), (before, during, at) => {
        let serial = 0;
        const rows = new Map<string, Row>();
        const hidden = new Map<string, Row>();
        const keys = ["ann", "bob", "__proto__", "constructor"];
        /** applies one op to the server; reports it as a tracker diff (leaves, joins) */
        const run = (o: Op, b: DiffBatch | null) => {
          const present = [...rows.keys()];
          const pick = <T>(xs: T[], i: number) => (xs.length === 0 ? undefined : xs[i % xs.length]);
          const leaves: Row[] = [];
          const joins: Row[] = [];
          if (o.t === "track") {
            const r = { key: keys[o.key]!, meta: meta(`r${++serial}`, { n: serial }) };
            rows.set(r.meta.phx_ref, r);
            joins.push(r);
          } else if (o.t === "up") {
            const ref = pick([...hidden.keys()], o.i);
            if (ref === undefined) return;
            const r = hidden.get(ref)!;
            hidden.delete(ref);
            rows.set(ref, r);
            joins.push(r);
          } else {
            const ref = pick(present, o.i);
            if (ref === undefined) return;
            const r = rows.get(ref)!;
            rows.delete(ref);
            leaves.push(r);
            if (o.t === "down") hidden.set(ref, r);
            if (o.t === "update") {
              const n = { key: r.key, meta: { ...meta(`r${++serial}`, { n: serial }), phx_ref_prev: ref } };
              rows.set(n.meta.phx_ref, n);
              joins.push(n);
            }
          }
          if (b !== null) {
            for (const l of leaves) b.leave(l.key, l.meta);
            for (const j of joins) b.join(j.key, j.meta);
          }
        };
        for (const o of before) run(o, null);
        const b = new DiffBatch();
        const snapshots: PresenceState[] = [stateOf(rows)];
        for (const o of during) {
          run(o, b);
          snapshots.push(stateOf(rows));
        }
        const end = view(stateOf(rows));
        const diff = b.toDiff();
        const snap = snapshots[at % snapshots.length]!;
        const client = applyDiff(applyState({}, snap), diff);
        expect(view(client)).toEqual(end);
        expect(view(applyDiff(client, diff))).toEqual(end); // twice: harmless
        // the window's start state too (a client subscribed all along)
        expect(view(applyDiff(applyState({}, snapshots[0]!), diff))).toEqual(end);
      }),
      { numRuns: 500 },
    );
  });
});

describe("checkFetched", () => {
  it("keeps what fetch returned for the keys it was given; a dropped or broken key keeps its entry, an added key is ignored", () => {
    const given = emptyState();
    given.a = { metas: [meta("1")] };
    given.b = { metas: [meta("2")] };
    given.c = { metas: [meta("3")] };
    const { state, bad } = checkFetched(given, { a: { metas: [meta("1")], user: "A" }, c: { nope: true }, z: { metas: [] } });
    expect(bad).toBe(2);
    expect(JSON.parse(JSON.stringify(state))).toEqual({ a: { metas: [meta("1")], user: "A" }, b: { metas: [meta("2")] }, c: { metas: [meta("3")] } });
    expect(checkFetched(given, null).bad).toBe(3);
  });
});
