/**
 * @cinder/runtime — a mini-OTP for TypeScript: nodes, processes with mailboxes, links,
 * monitors, timers, names, GenServer, Supervisor, DynamicSupervisor, Task, Agent, Registry,
 * and the cluster transport contract.
 */
export { CinderNode, startNode, type StartNodeOptions } from "./node.js";
export type { NodeOptions, TimerRef, Router } from "./internal/node_core.js";
export { Process, type Behaviour, type Body, type Handler, type ReceiveOptions, type SpawnOptions } from "./internal/process.js";
export {
  Timeout,
  isPid,
  type Pid,
  type Ref,
  type MessageOf,
  type MonitorRef,
  type ExitReason,
  type ExitMessage,
  type DownMessage,
  type SystemMessage,
  type Dest,
  type Via,
  type ViaResolver,
} from "./internal/types.js";
export { CinderError, NoProcError, TimeoutError, BadArgError, ExitError, formatReason, type CinderErrorCode } from "./internal/errors.js";
export { consoleLogger, silentLogger, type Logger } from "./internal/logger.js";
export { type From, type ReplyEnvelope, type Context } from "./internal/request.js";
export {
  GenServer,
  AlreadyStartedError,
  InitError,
  type GenServerBehaviour,
  type GenMsg,
  type ServerRef,
  type ServerName,
  type CallResult,
  type NoReply,
  type ServerSelf,
  type StartOptions,
} from "./gen_server.js";
export {
  Supervisor,
  type SupervisorOptions,
  type SupervisorRef,
  type Strategy,
  type ChildSpec,
  type ChildInfo,
  type ChildCounts,
  type Restart,
  type Shutdown,
} from "./supervisor.js";
export type { ClusterTransport, MembershipEvent, TransportStats } from "./cluster/transport.js";
export { spawnOn, startGenServerOn, type SpawnOnOptions, type ModuleRef, type Placement, type WatchdogOptions, type BlockedReport, type WorkerOptions } from "./placement.js";
export { Dirty, type DirtyResult } from "./dirty.js";
export type { NodeSchedulerStats } from "./node.js";
export { Registry, RegistryRef, AlreadyRegisteredError, type RegistryOptions, type RegistryKeys, type RegistryEntry } from "./registry.js";
export {
  DynamicSupervisor,
  MaxChildrenError,
  type DynamicSupervisorOptions,
  type DynamicSupervisorRef,
  type DynamicSupervisorName,
  type DynamicChildSpec,
  type DynamicChildInfo,
} from "./dynamic_supervisor.js";
export { Task, type TaskResult, type TaskFn } from "./task.js";
export { Agent, type AgentRef, type AgentName } from "./agent.js";
// cluster: codec, membership, in-memory cluster (used by @cinder/pubsub and @cinder/redis)
export { encodeFrame, decodeFrame, FrameDecodeError, FrameEncodeError, CODEC_VERSION, SUPPORTED_CODEC_VERSIONS, type FrameDecodeReason } from "./cluster/codec.js";
export { PeerTable, type PeerTableOptions } from "./cluster/membership.js";
export { TransportHandlers } from "./cluster/handlers.js";
export { MemoryCluster, MemoryTransport, NO_FAULTS, type LinkFaults, type MemoryClusterOptions, type MemoryClusterStats } from "./cluster/memory.js";
export type { TransportLogger } from "./cluster/transport.js";
export type { ThreadContext, ServiceHandler } from "./internal/threads.js";
