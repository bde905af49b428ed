/** Simulated pods: a Linux pod's IPv4 stack in userspace, and the ping, traceroute and curl run inside it. */
export { SimulatedPod, type PodOptions, type RawSendResult } from './pod.js';
export { systemClock, type Clock, type SetTimer, type Timer } from './clock.js';
export { POD_DROP_REASONS, type PodCounters, type PodDropReason } from './counters.js';
export type { PingOptions, PingReport, PingResult } from './ping.js';
export type { TracerouteHop, TracerouteOptions, TracerouteProbe, TracerouteReport } from './traceroute.js';
export type { CurlOptions, CurlReport } from './curl.js';
export { HELLO_APP_PORT, helloAppBody } from '../../hello-app.js';
export { formatCurl, formatPing, formatTraceroute } from './report-text.js';
