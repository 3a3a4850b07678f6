/**
 * The handler side of the transport contract (`transport.ts`), shared by every transport: the
 * `onFrame` / `onMembership` subscriptions and the calls to them.
 */
import type { MembershipEvent } from "./transport.js";

type FrameHandler = (from: string, channel: string, payload: Uint8Array) => void;
type MembershipHandler = (event: MembershipEvent) => void;

/**
 * A transport's frame and membership handlers, called as the contract asks: every handler of a
 * snapshot of its set (one added or removed during a call takes effect at the next), a throwing
 * handler reported to `onError` while the others are still called. Each subscription is
 * distinct: a function subscribed twice is called twice, and each unsubscribe removes one.
 *
 * @example
 * ```ts
 * import { TransportHandlers } from "@cinder/runtime";
 * const errors: string[] = [];
 * const handlers = new TransportHandlers("a", (_kind, message) => errors.push(message));
 * const got: string[] = [];
 * handlers.onFrame(() => { throw new Error("bad handler"); });
 * const off = handlers.onFrame((from, channel, payload) => got.push(`${from} ${channel} ${payload[0]}`));
 * handlers.emitFrame("b", "pubsub", new Uint8Array([1]));
 * off();
 * handlers.emitFrame("b", "pubsub", new Uint8Array([2]));
 * console.log(got); // ["b pubsub 1"]
 * console.log(errors.length, errors[0]); // [2, "frame handler of node \"a\" threw (channel \"pubsub\")"]
 * ```
 */
export class TransportHandlers {
  private readonly frames = new Set<FrameHandler>();
  private readonly membership = new Set<MembershipHandler>();

  /**
   * @param nodeName the transport's node (named in error messages)
   * @param onError told about each handler that threw: which kind, a message naming the node
   *   and the channel or event, and what was thrown
   */
  constructor(
    readonly nodeName: string,
    private readonly onError: (kind: "frame" | "membership", message: string, error: unknown) => void,
  ) {}

  /** `ClusterTransport.onFrame`: subscribes `handler`; returns its unsubscribe function. */
  onFrame(handler: FrameHandler): () => void {
    const h: FrameHandler = (...args) => handler(...args); // distinct identity per subscription
    this.frames.add(h);
    return () => void this.frames.delete(h);
  }

  /** `ClusterTransport.onMembership`: subscribes `handler`; returns its unsubscribe function. */
  onMembership(handler: MembershipHandler): () => void {
    const h: MembershipHandler = (e) => handler(e);
    this.membership.add(h);
    return () => void this.membership.delete(h);
  }

  /** Hands one incoming frame to every frame handler. */
  emitFrame(from: string, channel: string, payload: Uint8Array): void {
    for (const h of [...this.frames]) {
      try {
        h(from, channel, payload);
      } catch (err) {
        this.onError("frame", `frame handler of node "${this.nodeName}" threw (channel "${channel}")`, err);
      }
    }
  }

  /** Hands one membership event to every membership handler. */
  emitMembership(e: MembershipEvent): void {
    for (const h of [...this.membership]) {
      try {
        h(e);
      } catch (err) {
        this.onError("membership", `membership handler of node "${this.nodeName}" threw (${e.type} ${e.node})`, err);
      }
    }
  }
}
