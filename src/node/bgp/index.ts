export { BgpSpeaker, type LearnedRoute, type SpeakerConfig, type SpeakerStatus } from './speaker.js';
export {
  BIRD_TIMERS,
  protocolName,
  type BgpTimers,
  type NeighbourConfig,
  type NeighbourState,
  type NeighbourStatus,
  type PeerType,
} from './neighbour.js';
