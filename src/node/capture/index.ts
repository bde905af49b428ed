/** Capture taps: a tcpdump-like filter language and sessions that turn tap events into pcapng or pcap streams. */
export { parseFilter, type CompiledFilter } from './filter.js';
export { CaptureSession, type CaptureOptions, type CaptureStats, type TapSource } from './session.js';
