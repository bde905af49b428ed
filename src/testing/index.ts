/**
 * ipip-lab/testing: start a lab of node containers from a spec and drive it from a test (needs Docker and the
 * `testcontainers` package). See the README for a complete example.
 */
export { buildImage, DEFAULT_IMAGE } from './docker.js';
export { LabUnderlay } from './underlay.js';
export { BIRD_IMAGE, BirdHandle, buildBirdImage, type BirdProtocol, type BirdRoute } from './bird.js';
export { SEED_LABS, seedSpecPath, type SeedLab } from './spec-file.js';
export {
  Lab,
  LabNodeHandle,
  StrangerHandle,
  startLab,
  type AgentCapture,
  type AgentCaptureResult,
  type BackgroundCommand,
  type ExecResult,
  type KernelCapture,
  type LabOptions,
  type PingOptions,
  type TappedPacket,
} from './lab.js';
export type { NodeInfo, NodeStatsResponse } from '../node/api.js';
export type { CurlReport, PingReport, TracerouteReport } from '../node/userspace/pod/index.js';
export {
  docker,
  joinSwarm,
  leaveSwarm,
  podsIn,
  SwarmLab,
  unreachablePods,
  until,
  type NodePod,
  type SwarmMembership,
} from './swarm.js';
